//! The API client: asks for one list page and gives back the checked page,
//! retrying on the schedule until it has one or must fail. One request in
//! flight, the key on every request and nowhere else.
//!
//! A page is checked inside the retry loop because a 200 can be a bad
//! answer (an HTML error page, a stale copy of the page before) that a
//! retry may mend; the check is `page::scan`, a pure function of the body.

use super::errors::{
    api_reason, clip, did_you_mean, out_of_time, proxy_status, quote, rate_limited_until,
    request_id, rustls_error, tls_failure, unreachable, QUOTE_BYTES,
};
use super::rate::{Advice, ServerWait};
use super::retry::{self, Answer, Kind, Next, Trouble};
use super::transport::{BodyRead, Failure, Head, Transport, MAX_BODY_BYTES};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::page::{self, Layout, Page};
use crate::secret;
use std::time::{Duration, Instant, SystemTime};

/// One list page to ask for, and what its answer must be.
pub struct Request<'a> {
    /// Path and query under base_url (`leads?page=3`).
    pub path_query: &'a str,
    /// Names the request in logs and errors ("stream leads, page 3").
    pub what: &'a str,
    /// The envelope key of the record array.
    pub collection: &'a str,
    /// A record member to find while the page is checked (`Record::field`).
    pub field: Option<&'a str>,
    /// Whether the list is paged; only then can an answer be stale.
    pub paged: bool,
    /// The record sets of the list's earlier pages, for a paged list: ids
    /// are unique, so an answer with the ids of one of them is a stale copy.
    pub seen: Option<&'a mut Fingerprints>,
}

/// A 64-bit hash of the set of record ids of each page a list has served:
/// memory stays flat (8 bytes a page) however long the list. A set, not
/// the bytes: a server that ignores `page` may shuffle the records or
/// change a field on each answer (a view count, a timestamp) and still
/// serve the same records. Noted by the client as a page is judged, so
/// that each page is hashed once.
#[derive(Default)]
pub struct Fingerprints(std::collections::HashSet<u64>);

impl Fingerprints {
    /// Four lanes of eight bytes a step, each step a bijection of its
    /// lane for a given word, and the lanes folded in order: two arrays of
    /// one length that differ in one word never collide. Not SipHash:
    /// nobody chooses these bytes to collide (a collision would only fail
    /// the sync loudly), and every page is hashed, which at SipHash's speed
    /// cost a tenth of a sync's instructions; four lanes run side by side.
    fn of(items: &[u8]) -> u64 {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        // The multiply carries a difference only upward; the shift brings
        // it back down, so that the next word cannot cancel it.
        let step = |h: u64, word: u64| {
            let x = (h.rotate_left(5) ^ word).wrapping_mul(K);
            x ^ (x >> 32)
        };
        let word = |bytes: &[u8]| {
            let mut word = [0u8; 8];
            word[..bytes.len()].copy_from_slice(bytes);
            u64::from_le_bytes(word)
        };
        let mut lanes = [1u64, 2, 3, 4];
        let mut blocks = items.chunks_exact(32);
        for block in &mut blocks {
            for (lane, bytes) in lanes.iter_mut().zip(block.chunks_exact(8)) {
                *lane = step(*lane, word(bytes));
            }
        }
        let mut h = step(0, items.len() as u64);
        for lane in lanes {
            h = step(h, lane);
        }
        for bytes in blocks.remainder().chunks(8) {
            h = step(h, word(bytes));
        }
        h ^ (h >> 29)
    }

    /// The set of a page's records, from what tells each apart
    /// (`Layout::identities`): the wrapping sum of their hashes, so that
    /// no order changes it, folded with their count.
    fn of_set<'a>(records: impl Iterator<Item = &'a [u8]>) -> u64 {
        let (mut sum, mut n) = (0u64, 0u64);
        for record in records {
            sum = sum.wrapping_add(Fingerprints::of(record));
            n += 1;
        }
        let mut both = [0u8; 16];
        both[..8].copy_from_slice(&sum.to_le_bytes());
        both[8..].copy_from_slice(&n.to_le_bytes());
        Fingerprints::of(&both)
    }

    /// Notes a page's records; false if the same set was served before.
    pub fn note<'a>(&mut self, records: impl Iterator<Item = &'a [u8]>) -> bool {
        self.0.insert(Fingerprints::of_set(records))
    }
}

/// What the client tells while it retries and waits, for its caller to say
/// in its own terms (the sync: LOG lines, a rate-limited STREAM_STATUS, the
/// live line). The client itself writes nothing.
pub trait Report {
    /// A page that stayed suspect through its retries is taken as it is.
    fn taken(&mut self, note: &str);
    /// The client is about to sleep, for `why`: after a failed try
    /// (`retry`), or before the next request while the rate window is used
    /// up. `rate_limited`: a rate limit is the reason, with the time the
    /// window opens again (ms since the epoch) when the server gave one.
    fn waiting(&mut self, why: &str, retry: bool, rate_limited: Option<Option<u64>>) -> Result<()>;
}

/// The client. Reuses one connection and one body buffer across pages.
pub struct Client {
    transport: Transport,
    schedule: Vec<Duration>,
    timeout: Duration,
    /// When the command must have answered (`check`), if it must.
    deadline: Option<Instant>,
    /// No request before this: the server said its rate window is used up.
    quiet_until: Option<ServerWait>,
    body: Vec<u8>,
    /// How long a request's tries go on while the host refuses them.
    refused_for: Duration,
    /// The API has answered 2xx: base_url is right, a 404 is a page's own.
    reached_api: bool,
}

/// How long a refused port is tried again: `check` answers within 5 s and
/// `read` fails within 10 s (a server restarting is back within that; a
/// wrong port never is, and curl gives up at once). The schedule's sleeps
/// that fit in it are slept.
const REFUSED_FOR_CHECK: Duration = Duration::from_secs(4);
const REFUSED_FOR_READ: Duration = Duration::from_secs(9);

/// What one try came to.
enum Attempt {
    Page(Layout),
    /// A page that may be a glitch: used if it stays so through its retries.
    Suspect(Layout, Trouble),
    Retry(Trouble),
    Fail(Error),
}

impl Client {
    /// A client for `config`; with a `budget`, every request and wait of it
    /// ends within that time from now.
    pub fn new(config: &Config, budget: Option<Duration>) -> Client {
        Client {
            transport: Transport::new(config),
            schedule: config.retry_schedule.clone(),
            timeout: config.timeout,
            deadline: budget.map(|b| Instant::now() + b),
            quiet_until: None,
            body: Vec::with_capacity(1 << 20),
            // Only `check` has a budget.
            refused_for: budget.map_or(REFUSED_FOR_READ, |_| REFUSED_FOR_CHECK),
            reached_api: false,
        }
    }

    /// Gets the page `req` asks for, checked, retrying on the schedule.
    pub fn get_page(&mut self, req: &mut Request, report: &mut impl Report) -> Result<Page<'_>> {
        let mut retries = 0;
        // Counted apart: a suspect page gets its own retries even after
        // retries for other troubles.
        let mut suspect_retries = 0;
        let first_try = Instant::now();
        loop {
            self.wait_for_rate_window(req, report)?;
            let (trouble, suspect) = match self.try_once(req) {
                Attempt::Page(layout) => return Ok(layout.page(&self.body)),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(trouble) => (trouble, None),
                Attempt::Suspect(layout, trouble) => (trouble, Some(layout)),
            };
            let tries_of_kind = if suspect.is_some() {
                suspect_retries
            } else {
                retries
            };
            let next = match retry::next(&self.schedule, &trouble, tries_of_kind, self.time_left())
            {
                Next::Retry(sleep)
                    if trouble.refused && first_try.elapsed() + sleep > self.refused_for =>
                {
                    Next::GiveUp
                }
                next => next,
            };
            let sleep = match (next, suspect) {
                (Next::Retry(sleep), _) => sleep,
                (_, Some(layout)) => {
                    let note = format!("{}: {}; taken as it is", req.what, trouble.why);
                    report.taken(&note);
                    return Ok(layout.page(&self.body));
                }
                (Next::OutOfTime, None) => return Err(out_of_time(req.what, &trouble)),
                (Next::GiveUp | Next::Accept, None) => {
                    return Err(retry::give_up(req.what, &trouble, retries + 1))
                }
            };
            // The host may have moved (DNS failover): look it up again.
            self.transport.forget_host();
            retries += 1;
            if trouble.kind == Kind::Suspect {
                suspect_retries += 1;
            }
            let note = format!(
                "{}: {}; retry {retries} of {} in {:.2} s",
                req.what,
                trouble.why,
                self.schedule.len(),
                sleep.as_secs_f64()
            );
            let rate_limited = (trouble.kind == Kind::RateLimited)
                .then(|| trouble.server_wait.map(|w| w.until_ms()));
            report.waiting(&note, true, rate_limited)?;
            std::thread::sleep(sleep);
        }
    }

    /// Time left until the deadline, if there is one.
    fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// One request and what its answer comes to.
    fn try_once(&mut self, req: &mut Request) -> Attempt {
        let timeout = self
            .time_left()
            .map_or(self.timeout, |left| left.min(self.timeout));
        if timeout.is_zero() {
            return Attempt::Fail(Error::transient(format!(
                "{}: no time left to ask the API",
                req.what
            )));
        }
        let head = match self.transport.get(req.path_query, timeout, &mut self.body) {
            Ok(head) => head,
            Err(e) => return self.transport_failure(e, timeout),
        };
        let advice = Advice::of(&head.headers, SystemTime::now());
        let status = head.status;
        let answer = retry::answer_to(status);
        if answer == Answer::RateLimited {
            let mut trouble = Trouble::new(Kind::RateLimited, "HTTP 429: rate limited");
            trouble.server_wait = advice.before_retry();
            return Attempt::Retry(self.too_far(trouble, &advice));
        }
        self.quiet_until = advice.before_next();
        if answer == Answer::Page {
            self.reached_api = true;
            return self.judge_page(req, &head);
        }
        let request_id = request_id(&head.headers);
        match answer {
            Answer::Unavailable => {
                let reason = format!("{}{request_id}", api_reason(&self.body));
                let mut trouble = Trouble::new(Kind::Unavailable, format!("HTTP {status}{reason}"));
                // Only Retry-After: a rate window's reset says nothing of
                // when a server that failed will be back.
                trouble.server_wait = advice.retry_after;
                Attempt::Retry(trouble)
            }
            // The body of a rejection is never quoted: it may echo the key
            // in a form masking does not know.
            Answer::Rejected => Attempt::Fail(
                Error::config(format!(
                    "the API key was rejected (HTTP {status}{request_id}): check the API key in \
                     the config (PersistIq: Settings > Integrations > API Key)"
                ))
                .with_internal(format!("{}: HTTP {status}{request_id}", req.what))
                .with_status(status)
                .stopping_sync("the API key was rejected"),
            ),
            // Before any 2xx, and with base_url not ending in the API's
            // version, a 404 says more of base_url than of the page.
            Answer::NotFound
                if !self.reached_api && !self.transport.base_url().ends_with("/v1/") =>
            {
                Attempt::Fail(self.not_the_api(req.what, &request_id))
            }
            Answer::Redirect => {
                let location = head
                    .headers
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .map(|l| format!(" to {}", clip(l, QUOTE_BYTES)))
                    .unwrap_or_default();
                Attempt::Fail(
                    Error::system(format!(
                        "{}: the API answered HTTP {status}, a redirect{location}{request_id}; \
                     redirects are not followed so that the API key stays with base_url's origin. \
                     Check base_url",
                        req.what
                    ))
                    .with_status(status),
                )
            }
            _ => Attempt::Fail(
                Error::system(format!(
                    "{}: the API answered HTTP {status}{}{request_id}",
                    req.what,
                    api_reason(&self.body)
                ))
                .with_status(status),
            ),
        }
    }

    /// A server wait beyond what is waited for still names its time, so
    /// that a command out of time can say until when it is refused.
    fn too_far(&self, mut trouble: Trouble, advice: &Advice) -> Trouble {
        if trouble.server_wait.is_none() && self.deadline.is_some() {
            if let Some(until) = advice.too_far {
                let wait = until.duration_since(SystemTime::now()).unwrap_or_default();
                trouble.server_wait = Some(ServerWait { wait, until });
            }
        }
        trouble
    }

    /// A 2xx answer: a usable page, or why not.
    fn judge_page(&self, req: &mut Request, head: &Head) -> Attempt {
        match &head.body {
            BodyRead::Whole => {}
            BodyRead::TooLarge => {
                return Attempt::Fail(Error::system(format!(
                    "{}: the answer is too large (over {} MiB); no page of the API is that large, \
                     so base_url may point at something else",
                    req.what,
                    MAX_BODY_BYTES >> 20
                )))
            }
            BodyRead::BrokeOff(e) => {
                let why = format!("the response body broke off ({})", secret::mask(e));
                return Attempt::Retry(Trouble::new(Kind::Unavailable, why));
            }
        }
        let status = head.status;
        let layout = match page::scan(&self.body, req.collection, req.field) {
            Ok(layout) => layout,
            Err(why) => {
                let why = format!(
                    "HTTP {status} with an unusable body: {why}; body starts {}",
                    quote(&self.body)
                );
                return Attempt::Retry(Trouble::new(Kind::BadBody, why));
            }
        };
        if !req.paged {
            return Attempt::Page(layout);
        }
        let seen = req.seen.as_deref_mut();
        if !layout.is_empty() && seen.is_some_and(|s| !s.note(layout.identities(&self.body))) {
            let why = "the page repeats the records of an earlier page (the same ids: a stale \
                       copy from a cache or proxy, or a server that ignores `page`?)";
            return Attempt::Retry(Trouble::new(Kind::BadBody, why));
        }
        if layout.is_empty() && layout.has_more() {
            let why = "the page is empty, yet the API says more pages follow";
            return Attempt::Suspect(layout, Trouble::new(Kind::Suspect, why));
        }
        Attempt::Page(layout)
    }

    /// Sorts a transport failure: configuration mistakes, certificates
    /// and proxies that refuse fail at once, the rest retry.
    fn transport_failure(&self, failure: Failure, timeout: Duration) -> Attempt {
        let Failure {
            error: e,
            connected,
            no_such_host,
        } = failure;
        let text = secret::mask(&e.to_string());
        let origin = self.transport.origin();
        let via = self.transport.via();
        if let Some(host) = no_such_host {
            return Attempt::Fail(self.no_such_host(&host));
        }
        let kind = if connected {
            Kind::Unavailable
        } else {
            Kind::NoConnection
        };
        if let Some(tls) = rustls_error(&e) {
            return Attempt::Fail(tls_failure(
                tls,
                self.transport.host(),
                &via,
                self.transport.trust(),
            ));
        }
        match e {
            ureq::Error::BadUri(_)
            | ureq::Error::Http(_)
            | ureq::Error::InvalidProxyUrl
            | ureq::Error::RequireHttpsOnly(_) => Attempt::Fail(Error::config(format!(
                "the request could not be made ({text}); check base_url"
            ))),
            ureq::Error::Tls(_) | ureq::Error::Pem(_) => Attempt::Fail(Error::config(format!(
                "TLS with {} failed{via} ({text}); check base_url",
                self.transport.host()
            ))),
            ureq::Error::ConnectProxyFailed(ref answer) => {
                let status = proxy_status(answer);
                let refused = format!(
                    "the proxy{} refused to open a tunnel to {}",
                    via.trim_start_matches(" through the proxy"),
                    self.transport.host()
                );
                match status {
                    Some(407) => Attempt::Fail(
                        Error::config(format!(
                            "{refused}: it answered HTTP 407 (proxy authentication required); \
                             give the proxy's user name and password in the proxy URL, as \
                             http://user:password@host:port"
                        ))
                        .stopping_sync("the proxy refused the connection"),
                    ),
                    Some(code @ 400..=499) => Attempt::Fail(
                        Error::config(format!(
                            "{refused}: it answered HTTP {code}; the proxy does not allow this \
                             host: ask the network's administrators to allow it, or check the \
                             proxy setting"
                        ))
                        .stopping_sync("the proxy refused the connection"),
                    ),
                    Some(code) => Attempt::Retry(Trouble::new(
                        Kind::Unavailable,
                        format!("{refused}: it answered HTTP {code}"),
                    )),
                    None => Attempt::Retry(Trouble::new(
                        Kind::Unavailable,
                        format!("{refused}: it closed the connection without an answer"),
                    )),
                }
            }
            ureq::Error::Timeout(_) => {
                let connect = self.transport.connect_timeout();
                let within = if !connected && connect < timeout {
                    format!("{} s", connect.as_secs_f64())
                } else if timeout < self.timeout {
                    format!("the {:.1} s left to this command", timeout.as_secs_f64())
                } else {
                    format!("timeout_seconds ({} s)", self.timeout.as_secs_f64())
                };
                let why = if connected {
                    format!("no answer from {origin}{via} within {within}")
                } else {
                    format!("no connection to {origin}{via} opened within {within}")
                };
                Attempt::Retry(unreachable(kind, why))
            }
            _ => {
                let mut trouble =
                    unreachable(kind, format!("request to {origin}{via} failed: {text}"));
                trouble.refused = matches!(&e, ureq::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::ConnectionRefused);
                Attempt::Retry(trouble)
            }
        }
    }

    /// The error for a 404 to the first request when base_url lacks the
    /// API's `/v1/`: every other request would 404 too.
    fn not_the_api(&self, what: &str, request_id: &str) -> Error {
        Error::config(format!(
            "{what}: the API answered HTTP 404 (not found) to the first request, to {}; check \
             base_url: it must end in /v1/ (it is {}; PersistIq's API is at {}){request_id}",
            self.transport.origin(),
            self.transport.base_url(),
            crate::config::DEFAULT_BASE_URL,
        ))
        .with_status(404)
        .stopping_sync("base_url does not lead to the API")
    }

    /// The error for a host the resolver says does not exist: no retry
    /// will find it, so it is said at once (curl does the same), with the
    /// API's host name when the name is close to it.
    fn no_such_host(&self, host: &str) -> Error {
        let host = secret::mask(host);
        let message = if host == self.transport.host() {
            let guess = did_you_mean(&host);
            format!(
                "the host {host} of base_url does not exist: the DNS has no such name{guess}; \
                 check base_url"
            )
        } else {
            format!(
                "the proxy's host {host} does not exist: the DNS has no such name; check the \
                 proxy URL (proxy_url, or HTTPS_PROXY)"
            )
        };
        Error::config(message).stopping_sync("the API's host does not exist")
    }

    /// Waits while the server's rate window is used up, as its last answer said.
    fn wait_for_rate_window(&mut self, req: &Request, report: &mut impl Report) -> Result<()> {
        let Some(quiet) = self.quiet_until.take() else {
            return Ok(());
        };
        let Ok(wait) = quiet.until.duration_since(SystemTime::now()) else {
            return Ok(());
        };
        if self.time_left().is_some_and(|left| wait >= left) {
            return Err(rate_limited_until(quiet.until));
        }
        let note = format!(
            "{}: the API's rate window is used up; pausing {:.2} s until it resets",
            req.what,
            wait.as_secs_f64()
        );
        report.waiting(&note, false, Some(Some(quiet.until_ms())))?;
        std::thread::sleep(wait);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `then` is a repeat of `first`, two pages' record arrays.
    fn seen_only(first: &str, then: &str) -> bool {
        let ids = |items: &str| {
            let body = format!(r#"{{"leads":{items}}}"#);
            let layout = crate::page::scan(body.as_bytes(), "leads", None).unwrap();
            Fingerprints::of_set(layout.identities(body.as_bytes()))
        };
        ids(first) == ids(then)
    }

    #[test]
    fn a_page_repeats_another_when_it_holds_the_same_ids() {
        let page = r#"[{"id":"l_1","n":"a"},{"id":"l_2","n":"b"},{"id":7,"n":"c"}]"#;
        assert!(seen_only(page, page));
        // Shuffled, or with other fields changed: the same records.
        let shuffled = r#"[{"id":7,"n":"c"},{"n":"x","id":"l_2"},{"id":"l_1","n":"a2"}]"#;
        assert!(seen_only(page, shuffled));
        // One id more, less or other: another page.
        assert!(!seen_only(page, r#"[{"id":"l_1"},{"id":"l_2"}]"#));
        assert!(!seen_only(
            page,
            r#"[{"id":"l_1"},{"id":"l_2"},{"id":7},{"id":8}]"#
        ));
        assert!(!seen_only(page, r#"[{"id":"l_1"},{"id":"l_3"},{"id":7}]"#));
        assert!(!seen_only(
            page,
            r#"[{"id":"l_1"},{"id":"l_2"},{"id":"7"}]"#
        ));
        // An id given twice: the one serde_json reads, the last.
        assert!(seen_only(r#"[{"id":"a"}]"#, r#"[{"id":"x","id":"a"}]"#));
        // Records without an id are told apart by all their bytes.
        assert!(seen_only(r#"[{"n":1},{"n":2}]"#, r#"[{"n":2},{"n":1}]"#));
        assert!(!seen_only(r#"[{"n":1},{"n":2}]"#, r#"[{"n":1},{"n":3}]"#));
        // The same id twice is not the same as once.
        assert!(!seen_only(r#"[{"id":"a"}]"#, r#"[{"id":"a"},{"id":"a"}]"#));
    }

    #[test]
    fn fingerprints_tell_bytes_apart_by_any_byte_and_length() {
        let page = br#"[{"id":"l_000001","name":"a"},{"id":"l_000002","name":"b"}]"#.to_vec();
        for i in 0..page.len() {
            let mut other = page.clone();
            other[i] ^= 1;
            assert_ne!(
                Fingerprints::of(&page),
                Fingerprints::of(&other),
                "byte {i}"
            );
        }
        assert_ne!(
            Fingerprints::of(&page),
            Fingerprints::of(&page[..page.len() - 1])
        );
        // Zero bytes added at the end still change the length.
        assert_ne!(Fingerprints::of(b"ab"), Fingerprints::of(b"ab\0"));
        // Two bytes changed together, in words folded one after another:
        // two lanes, the last lane and the first leftover word, two
        // leftover words.
        for (a, b) in [(7, 15), (31, 39), (39, 47)] {
            let mut hashes = std::collections::HashSet::new();
            for x in 0..=255u8 {
                for y in 0..=255u8 {
                    let mut other = page.clone();
                    other[a] = x;
                    other[b] = y;
                    hashes.insert(Fingerprints::of(&other));
                }
            }
            assert_eq!(hashes.len(), 65_536, "bytes {a} and {b}");
        }
    }
}
