//! What the server says about when to ask again: `X-RateLimit-Remaining`
//! and `X-RateLimit-Reset` (PersistIq's own), and `Retry-After` (proxies,
//! CDNs). Pure functions of the headers and the clock.

use crate::time;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use ureq::http::HeaderMap;

/// A server-given time further away than this is not waited for (a broken
/// clock or header): the retry schedule applies instead.
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(120);

/// Added to a server-given reset time: the two clocks are not in step, and
/// `X-RateLimit-Reset` counts whole seconds.
pub const RESET_MARGIN: Duration = Duration::from_millis(250);

/// A wait the server asked for: until `until`, `wait` from now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerWait {
    pub wait: Duration,
    pub until: SystemTime,
}

impl ServerWait {
    /// Epoch milliseconds of `until`, as the protocol's `quota_reset`.
    pub fn until_ms(&self) -> u64 {
        self.until
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// What one answer's headers say about the next request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Advice {
    /// When the rate window resets (`X-RateLimit-Reset`), if soon enough.
    pub reset: Option<ServerWait>,
    /// The answer said the window is used up (`X-RateLimit-Remaining: 0`).
    pub spent: bool,
    /// `Retry-After`, if present, valid and soon enough.
    pub retry_after: Option<ServerWait>,
    /// A server time was given but lies beyond `MAX_SERVER_WAIT`: the
    /// earliest such time, for a caller that would rather say so than wait.
    pub too_far: Option<SystemTime>,
}

impl Advice {
    /// Reads the rate headers of an answer received at `now`.
    pub fn of(headers: &HeaderMap, now: SystemTime) -> Advice {
        let mut advice = Advice {
            spent: header_u64(headers, "x-ratelimit-remaining") == Some(0),
            ..Advice::default()
        };
        let reset = header_u64(headers, "x-ratelimit-reset")
            .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
            .map(|at| at + RESET_MARGIN);
        let retry_after = header(headers, "retry-after").and_then(|v| retry_after(v, now));
        advice.reset = reset.and_then(|at| advice.near(at, now));
        advice.retry_after = retry_after.and_then(|at| advice.near(at, now));
        advice
    }

    /// `at` as a wait from `now` if it is within `MAX_SERVER_WAIT`; notes
    /// it in `too_far` when it is further. A time already past says nothing
    /// about when to try again (a clock behind, a stale header).
    fn near(&mut self, at: SystemTime, now: SystemTime) -> Option<ServerWait> {
        let wait = at.duration_since(now).ok().filter(|w| !w.is_zero())?;
        if wait > MAX_SERVER_WAIT {
            self.too_far = Some(self.too_far.map_or(at, |t| t.min(at)));
            return None;
        }
        Some(ServerWait { wait, until: at })
    }

    /// The wait before retrying a refused request (429, 5xx): the later of
    /// `Retry-After` and the reset time, when the server gave either.
    pub fn before_retry(&self) -> Option<ServerWait> {
        match (self.reset, self.retry_after) {
            (Some(a), Some(b)) => Some(if a.until >= b.until { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// The wait before the next request after a successful answer: the
    /// reset time, when the answer said the window is used up.
    pub fn before_next(&self) -> Option<ServerWait> {
        if self.spent {
            self.reset
        } else {
            None
        }
    }
}

/// The time a `Retry-After` value names: delta-seconds or an HTTP date.
fn retry_after(value: &str, now: SystemTime) -> Option<SystemTime> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return now.checked_add(Duration::from_secs(secs));
    }
    let secs = u64::try_from(time::parse_http_date(value)?).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header(headers, name)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const NOW_SECS: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW_SECS) + Duration::from_millis(400)
    }

    #[test]
    fn reset_times() {
        let soon = Advice::of(
            &headers(&[("x-ratelimit-reset", (NOW_SECS + 2).to_string())]),
            now(),
        );
        let wait = soon.before_retry().unwrap().wait;
        assert_eq!(wait, Duration::from_millis(1600) + RESET_MARGIN);
        assert_eq!(soon.before_next(), None, "not spent");
        // Past, far, absurd and malformed resets fall back to the schedule.
        for reset in [
            "1000".to_string(),
            (NOW_SECS + 3600).to_string(),
            "18446744073709551615".into(),
            "9223372036854775808".into(),
            "soon".into(),
        ] {
            let advice = Advice::of(&headers(&[("x-ratelimit-reset", reset.clone())]), now());
            assert_eq!(advice.before_retry(), None, "{reset}");
        }
        let far = Advice::of(
            &headers(&[("x-ratelimit-reset", (NOW_SECS + 3600).to_string())]),
            now(),
        );
        assert!(far.too_far.is_some());
    }

    #[test]
    fn a_spent_window_paces_the_next_request() {
        let advice = Advice::of(
            &headers(&[
                ("x-ratelimit-remaining", "0".into()),
                ("x-ratelimit-reset", (NOW_SECS + 5).to_string()),
            ]),
            now(),
        );
        assert!(advice.before_next().unwrap().wait > Duration::from_secs(4));
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date_and_the_later_wins() {
        let secs = Advice::of(&headers(&[("retry-after", "2".into())]), now());
        assert_eq!(secs.before_retry().unwrap().wait, Duration::from_secs(2));
        let http_date = "Fri, 15 Jan 2027 08:00:10 GMT"; // NOW_SECS + 10
        let dated = Advice::of(&headers(&[("retry-after", http_date.into())]), now());
        assert_eq!(
            dated.before_retry().unwrap().wait,
            Duration::from_millis(9600)
        );
        let both = Advice::of(
            &headers(&[
                ("retry-after", "30".into()),
                ("x-ratelimit-reset", (NOW_SECS + 5).to_string()),
            ]),
            now(),
        );
        assert_eq!(both.before_retry().unwrap().wait, Duration::from_secs(30));
        let bad = Advice::of(&headers(&[("retry-after", "-1".into())]), now());
        assert_eq!(bad.before_retry(), None);
    }
}
