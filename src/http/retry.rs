//! The retry policy: from what went wrong with one try and how many retries
//! came before it, whether to try again and after how long. Pure, so that
//! tests can walk it without a server.

use super::rate::ServerWait;
use crate::error::Error;
use std::time::Duration;

/// How often an answer that may be a glitch (an empty page that still says
/// `has_more`) is asked for again before it is taken as it is.
pub const SUSPECT_RETRIES: usize = 1;

/// Why a try did not give a usable page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// HTTP 429.
    RateLimited,
    /// 408, 5xx, a timeout, a body that broke off: the API or the way to it
    /// is down for now.
    Unavailable,
    /// No connection to the API's host or the proxy: the name is not found,
    /// or none opened in time (refused, no route, packets dropped, the
    /// tunnel or TLS handshake not completed). Retried like `Unavailable`;
    /// if it lasts, no other stream can be read either.
    NoConnection,
    /// A 200 that is no usable page (not JSON, no record array, a stale
    /// repeat of the page before): the API answered, but uselessly.
    BadBody,
    /// A page that may be a glitch or may be real (empty, yet `has_more`):
    /// asked for again a little, then taken.
    Suspect,
}

/// One failed try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trouble {
    pub kind: Kind,
    /// What happened, for the log line and the final error.
    pub why: String,
    /// The wait the server asked for (`Retry-After`, `X-RateLimit-Reset`).
    pub server_wait: Option<ServerWait>,
    /// What to do if it lasts, for the final error only.
    pub advice: Option<&'static str>,
    /// The host refused the connection: nothing listens on the port, most
    /// often a wrong port in base_url; retried for a few seconds only.
    pub refused: bool,
}

impl Trouble {
    pub fn new(kind: Kind, why: impl Into<String>) -> Trouble {
        Trouble {
            kind,
            why: why.into(),
            server_wait: None,
            advice: None,
            refused: false,
        }
    }

    /// `why`, with the advice when there is some: the final error's words.
    pub fn why_and_advice(&self) -> String {
        format!("{}{}", self.why, self.advice_suffix())
    }

    /// "; " and the advice, or nothing.
    fn advice_suffix(&self) -> String {
        self.advice.map(|a| format!("; {a}")).unwrap_or_default()
    }
}

/// What to do after a failed try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try again after this sleep.
    Retry(Duration),
    /// The retries are used up: fail.
    GiveUp,
    /// A suspect answer that stayed the same through its retries: use it.
    Accept,
    /// The sleep would end after the command must have answered: fail now.
    OutOfTime,
}

/// The decision after a failed try, given the retries already made and, if
/// the command has a deadline, the time left until it.
///
/// A wait the server asked for replaces the schedule's sleep, and counts as
/// one retry of the schedule like any other.
pub fn next(
    schedule: &[Duration],
    trouble: &Trouble,
    retries: usize,
    time_left: Option<Duration>,
) -> Next {
    if trouble.kind == Kind::Suspect && retries >= SUSPECT_RETRIES.min(schedule.len()) {
        return Next::Accept;
    }
    let Some(step) = schedule.get(retries) else {
        return Next::GiveUp;
    };
    let sleep = trouble.server_wait.map_or(*step, |s| s.wait);
    match time_left {
        Some(left) if sleep >= left => Next::OutOfTime,
        _ => Next::Retry(sleep),
    }
}

/// The error once the retries are used up; `tries` counts every try made.
pub fn give_up(what: &str, trouble: &Trouble, tries: usize) -> Error {
    let tries = format!("after {tries} tr{}", if tries == 1 { "y" } else { "ies" });
    let why = &trouble.why;
    let advice = trouble.advice_suffix();
    let error = match trouble.kind {
        Kind::RateLimited => Error::transient(format!(
            "{what}: PersistIq's rate limit was still exceeded {tries}; try again later or \
             lengthen retry_schedule_seconds"
        )),
        Kind::BadBody | Kind::Suspect => Error::system(format!("{what}: {why} ({tries})")),
        Kind::Unavailable | Kind::NoConnection => {
            Error::transient(format!("{what}: {why} ({tries}){advice}"))
        }
    };
    if trouble.kind == Kind::NoConnection {
        error.stopping_sync(NO_CONNECTION)
    } else {
        error
    }
}

/// Why the streams after one that could not connect are not tried: each
/// would spend the whole retry schedule on the same closed door.
pub const NO_CONNECTION: &str = "no connection could be opened to the API";

/// What an HTTP status asks of the client, before its body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 2xx: a page, to be checked.
    Page,
    /// 429: wait for the rate window, then try again.
    RateLimited,
    /// 408, 5xx: the server failed this once; try again.
    Unavailable,
    /// 401, 403: the key was rejected; no try will mend it.
    Rejected,
    /// 404: a wrong path, or a record deleted.
    NotFound,
    /// 3xx: never followed, so that the key stays with base_url's origin.
    Redirect,
    /// Any other status: a request the API refuses.
    Refused,
}

/// The answer a status is.
pub fn answer_to(status: u16) -> Answer {
    match status {
        200..=299 => Answer::Page,
        429 => Answer::RateLimited,
        408 | 500..=599 => Answer::Unavailable,
        401 | 403 => Answer::Rejected,
        404 => Answer::NotFound,
        300..=399 => Answer::Redirect,
        _ => Answer::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_is_one_answer() {
        for (status, answer) in [
            (200, Answer::Page),
            (204, Answer::Page),
            (429, Answer::RateLimited),
            (408, Answer::Unavailable),
            (500, Answer::Unavailable),
            (599, Answer::Unavailable),
            (401, Answer::Rejected),
            (403, Answer::Rejected),
            (404, Answer::NotFound),
            (301, Answer::Redirect),
            (308, Answer::Redirect),
            (400, Answer::Refused),
            (422, Answer::Refused),
            (100, Answer::Refused),
        ] {
            assert_eq!(answer_to(status), answer, "HTTP {status}");
        }
    }
    use std::time::UNIX_EPOCH;

    fn secs(s: &[u64]) -> Vec<Duration> {
        s.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    fn trouble(kind: Kind) -> Trouble {
        Trouble::new(kind, "HTTP 503")
    }

    #[test]
    fn the_schedule_then_give_up() {
        let schedule = secs(&[1, 2, 5]);
        let t = trouble(Kind::Unavailable);
        let steps: Vec<Next> = (0..4).map(|r| next(&schedule, &t, r, None)).collect();
        assert_eq!(
            steps,
            [
                Next::Retry(Duration::from_secs(1)),
                Next::Retry(Duration::from_secs(2)),
                Next::Retry(Duration::from_secs(5)),
                Next::GiveUp
            ]
        );
        assert_eq!(next(&[], &t, 0, None), Next::GiveUp);
    }

    #[test]
    fn a_server_wait_replaces_the_step_and_counts_as_a_retry() {
        let schedule = secs(&[1, 2]);
        let mut t = trouble(Kind::RateLimited);
        t.server_wait = Some(ServerWait {
            wait: Duration::from_secs(7),
            until: UNIX_EPOCH + Duration::from_secs(7),
        });
        assert_eq!(
            next(&schedule, &t, 0, None),
            Next::Retry(Duration::from_secs(7))
        );
        assert_eq!(next(&schedule, &t, 2, None), Next::GiveUp);
    }

    #[test]
    fn a_sleep_past_the_deadline_answers_now() {
        let schedule = secs(&[10]);
        let t = trouble(Kind::RateLimited);
        let left = Some(Duration::from_secs(5));
        assert_eq!(next(&schedule, &t, 0, left), Next::OutOfTime);
        assert_eq!(
            next(&schedule, &t, 0, Some(Duration::from_secs(11))),
            Next::Retry(Duration::from_secs(10))
        );
    }

    #[test]
    fn a_suspect_page_is_asked_for_again_once_then_taken() {
        let schedule = secs(&[1, 1, 1, 1]);
        let t = trouble(Kind::Suspect);
        assert_eq!(
            next(&schedule, &t, 0, None),
            Next::Retry(Duration::from_secs(1))
        );
        assert_eq!(next(&schedule, &t, 1, None), Next::Accept);
        // With no retries configured it is taken at once.
        assert_eq!(next(&[], &t, 0, None), Next::Accept);
    }

    #[test]
    fn the_final_error_says_who_should_act() {
        use crate::error::FailureType;
        let rate = give_up("stream leads, page 2", &trouble(Kind::RateLimited), 3);
        assert_eq!(rate.failure, FailureType::Transient);
        assert!(rate.message.contains("after 3 tries"), "{}", rate.message);
        let bad = give_up("stream leads, page 2", &trouble(Kind::BadBody), 1);
        assert_eq!(bad.failure, FailureType::System);
        assert!(bad.message.ends_with("(after 1 try)"), "{}", bad.message);
        // Only a connection that never opened stops the sync: a server
        // that answers badly may answer the next stream well.
        let down = give_up("stream leads, page 2", &trouble(Kind::Unavailable), 5);
        assert_eq!(down.stops_sync, None);
        let closed = give_up("stream leads, page 2", &trouble(Kind::NoConnection), 5);
        assert_eq!(closed.failure, FailureType::Transient);
        assert_eq!(closed.stops_sync, Some(NO_CONNECTION));
    }
}
