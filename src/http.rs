//! Talking to the PersistIq API: one keep-alive agent, the key on every
//! request and nowhere else, and retries on a fixed sleep schedule.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::output::Out;
use std::fmt;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use ureq::http::{HeaderMap, Uri};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    time, Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, Transport,
};
use ureq::Body;

/// The most we read of one response body; a page is far smaller.
const MAX_BODY_BYTES: u64 = 256 << 20;

/// A rate-limit reset further away than this is not waited for (a broken
/// clock or header); the retry schedule applies instead.
const MAX_RESET_WAIT: Duration = Duration::from_secs(120);

/// Added to a server-given reset time: the two clocks are not in step.
const RESET_MARGIN: Duration = Duration::from_millis(500);

/// How much of an unexpected body an error message may quote.
const QUOTE_BYTES: usize = 200;

/// Round trips longer than this are not worth overlapping with a page's
/// check (tens of microseconds, lost in them anyway), while overlapping
/// holds a checked page's records back for one more round trip.
const OVERLAP_MAX_ROUND_TRIP: Duration = Duration::from_millis(5);

/// How many recent round trips judge whether the link is fast: the fastest
/// of them counts, so that one stalled answer does not turn the overlap off.
const ROUND_TRIPS_KEPT: usize = 4;

/// The pause after an early answer that was a 429 without a reset time,
/// and was dropped (so no retry schedule applies to it).
const DROPPED_429_PAUSE: Duration = Duration::from_secs(1);

/// A body buffer that grew past this for one huge answer is not kept for
/// the next one.
const BUFFER_KEPT_BYTES: usize = 8 << 20;

/// What one try of a request came to.
enum Outcome<T> {
    Done(T),
    /// Worth another try; `wait` overrides the schedule's next sleep.
    Retry {
        why: String,
        kind: RetryKind,
        wait: Option<Duration>,
    },
    Fail(Error),
}

/// Why a try is repeated, which decides how the last failure is reported.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RetryKind {
    /// HTTP 429.
    RateLimited,
    /// 408, 5xx, the network: the API or the way to it is down for now.
    Unavailable,
    /// A 200 whose body is no list page: the API answered, but uselessly.
    BadBody,
}

impl<T> Outcome<T> {
    fn retry(kind: RetryKind, why: String) -> Outcome<T> {
        Outcome::Retry {
            why,
            kind,
            wait: None,
        }
    }
}

/// The API client. Reuses one connection and one body buffer across pages.
pub struct Client {
    conn: Conn,
    schedule: Vec<Duration>,
    body: Vec<u8>,
}

/// The sending half of the client. A body handler gets it so that it can
/// send the next page's request before it is done with the current page.
pub struct Conn {
    agent: ureq::Agent,
    resolver: CachingResolver,
    base_url: String,
    api_key: String,
    /// Set when the server said the rate window is used up: no request before it.
    quiet_until: Option<SystemTime>,
    meanwhile: Meanwhile,
    /// How long recent requests waited for the heads of their answers
    /// (`Duration::MAX` before there were any), the latest at `round_trip_at`.
    round_trips: [Duration; ROUND_TRIPS_KEPT],
    round_trip_at: usize,
    /// The buffer the next answer's body is read into. It and the client's
    /// current body trade places, so two buffers serve every page.
    spare: Vec<u8>,
}

/// A GET that has gone out, with its whole answer, or why there is none.
pub struct Sent {
    path_query: String,
    answer: std::result::Result<Answer, ureq::Error>,
}

/// An answer as received: its body is read in full (or broke off) at once,
/// so no later delay of ours counts against the request's timeout.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
    body_read: std::io::Result<()>,
}

impl Client {
    pub fn new(config: &Config) -> Client {
        let mut builder = ureq::Agent::config_builder()
            // Statuses are ours to judge, and a redirect is never followed:
            // it could carry the x-api-key header to another origin.
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(config.timeout))
            .user_agent(concat!("source-persistiq/", env!("CARGO_PKG_VERSION")))
            .accept("application/json");
        if config.base_url.starts_with("http://") {
            // Plain http only ever goes to loopback; a proxy would see the key.
            builder = builder.proxy(None);
        }
        let resolver = CachingResolver::default();
        let meanwhile = Meanwhile::default();
        Client {
            conn: Conn {
                agent: ureq::Agent::with_parts(
                    builder.build(),
                    DefaultConnector::new().chain(meanwhile.clone()),
                    resolver.clone(),
                ),
                resolver,
                base_url: config.base_url.clone(),
                api_key: config.api_key.clone(),
                quiet_until: None,
                meanwhile,
                round_trips: [Duration::MAX; ROUND_TRIPS_KEPT],
                round_trip_at: 0,
                spare: Vec::with_capacity(1 << 20),
            },
            schedule: config.retry_schedule.clone(),
            body: Vec::with_capacity(1 << 20),
        }
    }

    /// GETs `path_query` (relative to base_url) and hands the body to
    /// `on_body`. A body that `on_body` refuses counts as a failed try, so
    /// `on_body` must have no effect when it returns `Err`.
    ///
    /// `what` names the request in logs and errors ("stream leads, page 3").
    pub fn get<T>(
        &mut self,
        path_query: &str,
        what: &str,
        out: &mut Out,
        mut on_body: impl FnMut(&[u8], &mut Out) -> Result<T, String>,
    ) -> Result<T> {
        self.get_overlapped(None, path_query, what, out, |_, body, out| {
            on_body(body, out)
        })
    }

    /// `get`, for a request that may have been sent already (`sent`, from
    /// `Conn::send_overlapped`), and with a body handler that may send the
    /// next one. The handler may take the body out of its `Vec` for a while
    /// but must put it back.
    pub fn get_overlapped<T>(
        &mut self,
        sent: Option<Sent>,
        path_query: &str,
        what: &str,
        out: &mut Out,
        mut on_body: impl FnMut(&mut Conn, &mut Vec<u8>, &mut Out) -> Result<T, String>,
    ) -> Result<T> {
        let mut sent = match sent {
            Some(s) if s.path_query != path_query => {
                self.conn.discard(s);
                None
            }
            sent => sent,
        };
        let mut retries = 0;
        loop {
            let answer = match sent.take() {
                Some(sent) => sent.answer,
                None => {
                    self.conn.wait_for_rate_window(what, out)?;
                    self.conn.send(path_query).answer
                }
            };
            let (why, kind, wait) = match self.judge(answer, what, out, &mut on_body) {
                Outcome::Done(value) => return Ok(value),
                Outcome::Fail(err) => return Err(err),
                Outcome::Retry { why, kind, wait } => (why, kind, wait),
            };
            // The host may have moved (DNS failover): look it up again.
            self.conn.resolver.forget();
            let Some(step) = self.schedule.get(retries) else {
                return Err(give_up(what, &why, kind, retries));
            };
            retries += 1;
            let sleep = wait.unwrap_or(*step);
            let note = format!(
                "{what}: {why}; retry {retries} of {} in {:.2} s",
                self.schedule.len(),
                sleep.as_secs_f64()
            );
            out.pause("WARN", &note, sleep)?;
        }
    }

    /// Lets go of an answer nobody will use; see `Conn::discard`.
    pub fn discard(&mut self, sent: Sent) {
        self.conn.discard(sent);
    }

    /// What one answer comes to: its body handled, a retry, or a failure.
    fn judge<T>(
        &mut self,
        answer: std::result::Result<Answer, ureq::Error>,
        what: &str,
        out: &mut Out,
        on_body: &mut impl FnMut(&mut Conn, &mut Vec<u8>, &mut Out) -> Result<T, String>,
    ) -> Outcome<T> {
        let mut answer = match answer {
            Ok(a) => a,
            Err(e) => return transport_outcome(e, &self.conn.base_url),
        };
        // The answer's buffer becomes the current body; the previous one
        // waits for the next answer.
        std::mem::swap(&mut self.body, &mut answer.body);
        self.conn.spare = std::mem::take(&mut answer.body);
        let status = answer.status;
        self.conn.note_rate_window(&answer.headers, status);
        if (200..300).contains(&status) {
            if let Err(e) = answer.body_read {
                let why = format!("the response body broke off ({e})");
                return Outcome::retry(RetryKind::Unavailable, why);
            }
            return match on_body(&mut self.conn, &mut self.body, out) {
                Ok(value) => Outcome::Done(value),
                Err(why) => Outcome::retry(
                    RetryKind::BadBody,
                    format!(
                        "HTTP {status} with an unusable body: {why}; body starts {}",
                        quote(&self.body, &self.conn.api_key)
                    ),
                ),
            };
        }
        let api_key = &self.conn.api_key;
        let reset = reset_wait(&answer.headers);
        let location = answer
            .headers
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(|l| format!(" to {}", clip(l, QUOTE_BYTES, api_key)))
            .unwrap_or_default();
        // An error body is quoted as far as it arrived.
        match status {
            429 => Outcome::Retry {
                why: "HTTP 429: rate limited".into(),
                kind: RetryKind::RateLimited,
                wait: reset,
            },
            408 | 500..=599 => Outcome::retry(
                RetryKind::Unavailable,
                format!("HTTP {status}{}", api_reason(&self.body, api_key)),
            ),
            401 | 403 => Outcome::Fail(
                Error::config(format!(
                    "the API key was rejected (HTTP {status}): check the API key in the config (PersistIq: Settings > Integrations > API Key)"
                ))
                .with_internal(format!("{what}: HTTP {status}{}", api_reason(&self.body, api_key)))
                .with_status(status),
            ),
            300..=399 => Outcome::Fail(Error::system(format!(
                "{what}: the API answered HTTP {status}, a redirect{location}; redirects are not followed so that the API key stays with base_url's origin. Check base_url"
            )).with_status(status)),
            _ => Outcome::Fail(
                Error::system(format!(
                    "{what}: the API answered HTTP {status}{}",
                    api_reason(&self.body, api_key)
                ))
                .with_status(status),
            ),
        }
    }
}

impl Conn {
    /// Sends a GET for `path_query` and receives the whole answer.
    fn send(&mut self, path_query: &str) -> Sent {
        let started = Instant::now();
        let result = self
            .agent
            .get(format!("{}{}", self.base_url, path_query))
            .header("x-api-key", &self.api_key)
            .call();
        self.round_trip_at = (self.round_trip_at + 1) % ROUND_TRIPS_KEPT;
        self.round_trips[self.round_trip_at] = started.elapsed();
        let answer = result.map(|response| {
            let (head, body) = response.into_parts();
            let mut buffer = std::mem::take(&mut self.spare);
            if buffer.capacity() > BUFFER_KEPT_BYTES {
                buffer = Vec::with_capacity(1 << 20);
            }
            buffer.clear();
            let body_read = read_body(body, &mut buffer);
            Answer {
                status: head.status.as_u16(),
                headers: head.headers,
                body: buffer,
                body_read,
            }
        });
        Sent {
            path_query: path_query.to_string(),
            answer,
        }
    }

    /// Whether the next request may go out before the current page is
    /// checked: no rate window to wait for, and round trips short enough
    /// for the overlap to matter (`OVERLAP_MAX_ROUND_TRIP`).
    pub fn may_send_early(&self) -> bool {
        let fastest = self.round_trips.iter().min().copied();
        self.quiet_until.is_none() && fastest.is_some_and(|t| t < OVERLAP_MAX_ROUND_TRIP)
    }

    /// Sends a GET for `path_query` and computes `work(&input)` while the
    /// server prepares the answer, on this thread: the connection runs the
    /// work when it would otherwise block waiting for the answer's head.
    /// Returns the answer, `input` and the work's result.
    pub fn send_overlapped<I, R, F>(&mut self, path_query: &str, input: I, work: F) -> (Sent, I, R)
    where
        I: Default + Send + 'static,
        R: Send + 'static,
        F: Fn(&I) -> R + Send + 'static,
    {
        let job = Arc::new(Mutex::new(Deferred {
            input,
            output: None,
            work,
        }));
        self.meanwhile.set(job.clone());
        let sent = self.send(path_query);
        self.meanwhile.clear();
        let mut job = lock(&job);
        let job = &mut *job;
        // The connection may have failed before it had to wait: then the
        // work is done now.
        let output = match job.output.take() {
            Some(output) => output,
            None => (job.work)(&job.input),
        };
        (sent, std::mem::take(&mut job.input), output)
    }

    /// Lets go of an answer that was sent for early and is not needed after
    /// all. Its rate-limit headers still count, so that the next request
    /// waits if this one used up the window.
    pub fn discard(&mut self, sent: Sent) {
        let Ok(answer) = sent.answer else {
            return;
        };
        if answer.status == 429 {
            // Without a reset time, a short pause rather than none.
            let wait = reset_wait(&answer.headers).unwrap_or(DROPPED_429_PAUSE);
            self.quiet_until = Some(SystemTime::now() + wait);
        } else {
            self.note_rate_window(&answer.headers, answer.status);
        }
        self.spare = answer.body;
    }

    /// Records a spent rate window (`X-RateLimit-Remaining: 0`) so that the
    /// next request waits for its reset instead of running into a 429.
    fn note_rate_window(&mut self, headers: &HeaderMap, status: u16) {
        if status == 429 {
            return;
        }
        let spent = header_u64(headers, "x-ratelimit-remaining") == Some(0);
        self.quiet_until = spent
            .then(|| reset_wait(headers))
            .flatten()
            .map(|wait| SystemTime::now() + wait);
    }

    fn wait_for_rate_window(&mut self, what: &str, out: &mut Out) -> Result<()> {
        let Some(until) = self.quiet_until.take() else {
            return Ok(());
        };
        if let Ok(wait) = until.duration_since(SystemTime::now()) {
            let note = format!(
                "{what}: the API's rate window is used up; pausing {:.2} s until it resets",
                wait.as_secs_f64()
            );
            out.pause("INFO", &note, wait)?;
        }
        Ok(())
    }
}

/// Looks the API host up once and reuses the answer until a try fails.
///
/// ureq 3 resolves the host before every request, even on a pooled
/// connection, and with a timeout set it does so on a thread of its own:
/// that was 40% of a sync's CPU, and against the real API it would be one
/// DNS lookup per page. (`ureq::unversioned` is outside ureq's semver
/// promise, hence the exact ureq version in Cargo.toml.)
#[derive(Clone, Debug, Default)]
struct CachingResolver {
    cache: Arc<Mutex<Option<(String, ResolvedSocketAddrs)>>>,
}

impl CachingResolver {
    fn forget(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            *cache = None;
        }
    }
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or(""),
            uri.authority().map_or("", |a| a.as_str())
        );
        if let Ok(cache) = self.cache.lock() {
            if let Some((cached_key, addrs)) = cache.as_ref() {
                if *cached_key == key {
                    return Ok(addrs.clone());
                }
            }
        }
        let addrs = DefaultResolver::default().resolve(uri, config, timeout)?;
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((key, addrs.clone()));
        }
        Ok(addrs)
    }
}

/// Work for the connection to do, once, the next time it would block
/// waiting for the server. A link in the agent's connector chain, so that
/// it wraps every connection the agent opens, plain or TLS.
#[derive(Clone, Default)]
struct Meanwhile(Arc<Mutex<Option<Job>>>);

/// A job shared by the connection, which may run it, and its owner, who
/// collects the result.
type Job = Arc<Mutex<dyn Pending>>;

/// A computation that can be done ahead of when its result is needed.
trait Pending: Send {
    fn run(&mut self);
}

/// `work(&input)`, kept with its input until its owner collects both.
struct Deferred<I, R, F> {
    input: I,
    output: Option<R>,
    work: F,
}

impl<I: Send, R: Send, F: Fn(&I) -> R + Send> Pending for Deferred<I, R, F> {
    fn run(&mut self) {
        if self.output.is_none() {
            self.output = Some((self.work)(&self.input));
        }
    }
}

impl Meanwhile {
    fn set(&self, job: Job) {
        *lock(&self.0) = Some(job);
    }

    fn clear(&self) {
        lock(&self.0).take();
    }

    /// Runs the job, if one is waiting; returns the time it took.
    fn run(&self) -> Option<Duration> {
        // Taken out first: the job runs without the slot locked.
        let job = lock(&self.0).take()?;
        let started = Instant::now();
        lock(&job).run();
        Some(started.elapsed())
    }
}

impl fmt::Debug for Meanwhile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Meanwhile")
    }
}

impl Connector<Box<dyn Transport>> for Meanwhile {
    type Out = MeanwhileTransport;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> std::result::Result<Option<MeanwhileTransport>, ureq::Error> {
        Ok(chained.map(|inner| MeanwhileTransport {
            inner,
            meanwhile: self.clone(),
        }))
    }
}

/// A connection that runs the pending `Meanwhile` job before it blocks on a read.
#[derive(Debug)]
struct MeanwhileTransport {
    inner: Box<dyn Transport>,
    meanwhile: Meanwhile,
}

impl Transport for MeanwhileTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: NextTimeout,
    ) -> std::result::Result<(), ureq::Error> {
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, mut timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        if let Some(spent) = self.meanwhile.run() {
            // The job's time comes out of this wait's budget.
            if let time::Duration::Exact(left) = timeout.after {
                let left = left.saturating_sub(spent);
                if left.is_zero() {
                    return Err(ureq::Error::Timeout(timeout.reason));
                }
                timeout.after = time::Duration::Exact(left);
            }
        }
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// The mutex's value even if a holder panicked: the slot it guards holds a
/// job or a result, and either is still whole.
fn lock<T: ?Sized>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read_body(mut body: Body, into: &mut Vec<u8>) -> std::io::Result<()> {
    body.with_config()
        .limit(MAX_BODY_BYTES)
        .reader()
        .read_to_end(into)
        .map(drop)
}

/// `scheme://host:port` of a URL, to say where a request went.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// Sorts a transport failure: configuration mistakes fail, the rest retry.
fn transport_outcome<T>(e: ureq::Error, url: &str) -> Outcome<T> {
    match e {
        ureq::Error::BadUri(_)
        | ureq::Error::Http(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::RequireHttpsOnly(_) => Outcome::Fail(Error::config(format!(
            "the request could not be made ({e}); check base_url"
        ))),
        // A certificate that does not verify will not verify in a minute either.
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => {
            Outcome::Fail(Error::config(format!(
                "TLS with base_url's host failed ({e}); check base_url"
            )))
        }
        e => Outcome::retry(
            RetryKind::Unavailable,
            format!("request to {} failed: {e}", origin(url)),
        ),
    }
}

fn give_up(what: &str, why: &str, kind: RetryKind, retries: usize) -> Error {
    let tries = format!(
        "after {} tr{}",
        retries + 1,
        if retries == 0 { "y" } else { "ies" }
    );
    match kind {
        RetryKind::RateLimited => Error::transient(format!(
            "{what}: PersistIq's rate limit was still exceeded {tries}; try again later or lengthen retry_schedule_seconds"
        )),
        RetryKind::BadBody => Error::system(format!("{what}: {why} ({tries})")),
        RetryKind::Unavailable => Error::transient(format!("{what}: {why} ({tries})")),
    }
}

/// How long until `X-RateLimit-Reset` (epoch seconds), if it is soon enough
/// to wait for.
fn reset_wait(headers: &HeaderMap) -> Option<Duration> {
    let secs = header_u64(headers, "x-ratelimit-reset")?;
    // checked: the header is the server's to set, up to u64::MAX.
    let reset = UNIX_EPOCH.checked_add(Duration::from_secs(secs))?;
    // A reset already past says nothing about when to try again (a clock
    // behind, a stale header): the schedule applies, as with no header.
    let wait = reset.duration_since(SystemTime::now()).ok()?;
    (wait <= MAX_RESET_WAIT).then_some(wait + RESET_MARGIN)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// ": <reason>: <message>" from the API's error envelope, or a quote of the body.
fn api_reason(body: &[u8], secret: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Option<Detail>,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        reason: Option<String>,
        message: Option<String>,
    }
    if body.is_empty() {
        return String::new();
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { error: Some(d) }) => {
            let parts: Vec<&str> = [d.reason.as_deref(), d.message.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            format!(": {}", clip(&parts.join(": "), 2 * QUOTE_BYTES, secret))
        }
        _ => format!(": body starts {}", quote(body, secret)),
    }
}

/// The first bytes of a body, fit for a one-line message.
fn quote(body: &[u8], secret: &str) -> String {
    // Enough bytes that a key straddling the cut is still whole when masked.
    let head = &body[..body.len().min(QUOTE_BYTES + secret.len())];
    format!(
        "{:?}",
        clip(&String::from_utf8_lossy(head), QUOTE_BYTES, secret)
    )
}

/// `text` with the key masked, then cut to `max` bytes: in that order, or a
/// key cut in two would no longer be recognised, and half of it would show.
fn clip(text: &str, max: usize, secret: &str) -> String {
    let masked = if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "[redacted]")
    };
    truncate(&masked, max).to_string()
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Percent-encodes a query value or a path segment: everything but ASCII
/// letters, digits, `-` and `_`, so that no value can add a path step
/// (`/`, `..`), a query or an authority to a URL.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_quotes() {
        assert_eq!(
            encode("2024-01-02T03:04:05+00:00"),
            "2024-01-02T03%3A04%3A05%2B00%3A00"
        );
        assert_eq!(encode("../x@y"), "%2E%2E%2Fx%40y");
        let body = br#"{"status":"error","error":{"reason":"bad_params","message":"no"}}"#;
        assert_eq!(api_reason(body, "k"), ": bad_params: no");
        assert!(api_reason(b"<html>oops", "k").contains("<html>oops"));
        assert_eq!(truncate("h\u{e9}llo", 2), "h");
        assert_eq!(quote(&[b'a'; 500], "secret").len(), QUOTE_BYTES + 2);
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin("https://api.persistiq.com/v1/leads?page=2"),
            "https://api.persistiq.com"
        );
        assert_eq!(origin("http://127.0.0.1:8/v1/"), "http://127.0.0.1:8");
        assert_eq!(origin("no-scheme"), "no-scheme");
    }

    #[test]
    fn a_key_cut_by_a_quote_is_masked_whole() {
        let key = "SECRETKEY1234567890";
        let mut body = vec![b'x'; QUOTE_BYTES - 5];
        body.extend_from_slice(key.as_bytes());
        let quoted = quote(&body, key);
        assert!(!quoted.contains("SECRE"), "{quoted}");
        let message = format!(
            r#"{{"error":{{"message":"{}{key}"}}}}"#,
            "y".repeat(2 * QUOTE_BYTES - 6)
        );
        let reason = api_reason(message.as_bytes(), key);
        assert!(!reason.contains("SECRE"), "{reason}");
    }

    #[test]
    fn rate_limit_reset_headers() {
        let headers = |reset: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-ratelimit-reset", reset.parse().unwrap());
            h
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let soon = reset_wait(&headers(&(now + 2).to_string())).unwrap();
        assert!(soon > RESET_MARGIN && soon <= Duration::from_secs(2) + RESET_MARGIN);
        // Past, far, absurd and malformed resets all fall back to the schedule.
        for reset in [
            "1000",
            &(now + 3600).to_string(),
            "18446744073709551615",
            "9223372036854775808",
            "soon",
        ] {
            assert_eq!(reset_wait(&headers(reset)), None, "{reset}");
        }
    }
}
