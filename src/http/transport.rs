//! The wire: one keep-alive ureq agent and one try of one GET. What an
//! answer means (retry, fail, use it) is for `client` and `retry` to say.

use crate::config::{BaseUrl, Config};
use crate::secret::ApiKey;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ureq::http::{HeaderMap, Uri};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    ConnectionDetails, Connector, DefaultConnector, NextTimeout, Transport as Conn,
};

/// The most we read of one response body; a page is far smaller.
pub const MAX_BODY_BYTES: u64 = 64 << 20;

/// The longest a connection may take to open (TCP, a proxy's tunnel, the
/// TLS handshake), unless `timeout_seconds` is shorter: a network that
/// drops packets (a firewall that blocks the host) would otherwise hold
/// each try for the whole `timeout_seconds`. Opening one to the API takes
/// well under a second, even through a proxy; 30 s (Go's default dial
/// timeout) leaves room for a host whose first addresses are dead, since
/// ureq shares this budget among a host's addresses.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A body buffer that grew past this for one huge answer is not kept for
/// the next one.
const BUFFER_KEPT_BYTES: usize = 8 << 20;

/// The agent, with the key and the origin every request goes to.
pub struct Transport {
    agent: ureq::Agent,
    resolver: CachingResolver,
    /// How far the current try got toward a connection.
    reach: Arc<Reach>,
    base_url: BaseUrl,
    api_key: ApiKey,
    /// The agent's own timeout (`timeout_seconds`).
    timeout: Duration,
    /// How long a connection may take to open (`Config::connect_timeout`).
    connect_timeout: Duration,
    /// Where the trusted CAs come from, for messages.
    trust: String,
    /// The proxy, for messages: `http://host:port` and where it was set.
    proxy: Option<(String, String)>,
}

/// The head of an answer; its body went into the caller's buffer.
pub struct Head {
    pub status: u16,
    pub headers: HeaderMap,
    /// How reading the body ended.
    pub body: BodyRead,
}

/// A try that ended before an answer.
#[derive(Debug)]
pub struct Failure {
    pub error: ureq::Error,
    /// Whether the try had a connection to the host (or the proxy): one
    /// from the pool, or one it opened. Without one, the name was not
    /// found or no connection opened in time (refused, no route, packets
    /// dropped, the proxy's tunnel or the TLS handshake not completed).
    pub connected: bool,
    /// The host the resolver said has no such name (not "try again"): the
    /// API's, or the proxy's.
    pub no_such_host: Option<String>,
}

/// How reading a body ended.
#[derive(Debug)]
pub enum BodyRead {
    Whole,
    /// Longer than `MAX_BODY_BYTES`: no retry will make it shorter.
    TooLarge,
    /// The connection failed or timed out partway.
    BrokeOff(String),
}

impl Transport {
    pub fn new(config: &Config) -> Transport {
        let mut builder = ureq::Agent::config_builder()
            // Statuses are ours to judge, and a redirect is never followed:
            // it could carry the x-api-key header to another origin.
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(config.timeout))
            .timeout_connect(Some(config.connect_timeout))
            .user_agent(concat!("source-persistiq/", env!("CARGO_PKG_VERSION")))
            .accept("application/json");
        // Always set, so that ureq's own reading of the environment (which
        // differs from curl's) never applies: the config decided. Plain
        // http only ever goes to loopback; a proxy would see the key.
        // Always set, even to none (for plain http the config chose none).
        builder = builder.proxy(config.proxy.as_ref().map(|p| p.proxy.clone()));
        if let Some(roots) = &config.trust.roots {
            let tls = ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots.clone())))
                .build();
            builder = builder.tls_config(tls);
        }
        let reach = Arc::new(Reach::default());
        let resolver = CachingResolver {
            reach: reach.clone(),
            ..CachingResolver::default()
        };
        let connector = WatchedConnector {
            inner: DefaultConnector::new(),
            reach: reach.clone(),
        };
        Transport {
            agent: ureq::Agent::with_parts(builder.build(), connector, resolver.clone()),
            resolver,
            reach,
            base_url: config.base_url.clone(),
            api_key: config.api_key.clone(),
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            trust: config.trust.source.clone(),
            proxy: config
                .proxy
                .as_ref()
                .map(|p| (p.shown.clone(), p.source.clone())),
        }
    }

    /// How long a connection may take to open.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Where the trusted CAs come from ("the built-in Mozilla roots").
    pub fn trust(&self) -> &str {
        &self.trust
    }

    /// " through the proxy http://host:port (from HTTPS_PROXY)", or nothing.
    pub fn via(&self) -> String {
        self.proxy
            .as_ref()
            .map(|(shown, source)| format!(" through the proxy {shown} (from {source})"))
            .unwrap_or_default()
    }

    /// base_url's host, as certificates name it.
    pub fn host(&self) -> &str {
        self.base_url.host()
    }

    /// base_url, as the config normalised it.
    pub fn base_url(&self) -> &str {
        self.base_url.as_str()
    }

    /// GETs `path_query` (relative to base_url) within `timeout`, reading
    /// the whole body into `body` before returning, so that no later delay
    /// of ours (a slow reader of stdout) counts against the request.
    pub fn get(
        &mut self,
        path_query: &str,
        timeout: Duration,
        body: &mut Vec<u8>,
    ) -> Result<Head, Failure> {
        if body.capacity() > BUFFER_KEPT_BYTES {
            *body = Vec::with_capacity(1 << 20);
        }
        body.clear();
        let request = self
            .agent
            .get(format!("{}{}", self.base_url.as_str(), path_query))
            .header("x-api-key", self.api_key.expose());
        self.reach.reset();
        // A request-level config copies the agent's: only when it differs.
        let called = if timeout == self.timeout {
            request.call()
        } else {
            request
                .config()
                .timeout_global(Some(timeout))
                .build()
                .call()
        };
        let response = called.map_err(|error| Failure {
            error,
            connected: self.reach.connected(),
            no_such_host: self.reach.no_such_host(),
        })?;
        let (head, reader) = response.into_parts();
        // One byte past the cap tells a body at the cap from one over it.
        let read = reader
            .into_reader()
            .take(MAX_BODY_BYTES + 1)
            .read_to_end(body);
        let body = match read {
            Err(e) => BodyRead::BrokeOff(ureq::Error::from(e).to_string()),
            Ok(_) if body.len() as u64 > MAX_BODY_BYTES => BodyRead::TooLarge,
            Ok(_) => BodyRead::Whole,
        };
        Ok(Head {
            status: head.status.as_u16(),
            headers: head.headers,
            body,
        })
    }

    /// Looks the host up afresh at the next request: after a failed try
    /// the host may have moved (DNS failover).
    pub fn forget_host(&self) {
        self.resolver.forget();
    }

    /// `scheme://host:port` of base_url, to say where a request went.
    pub fn origin(&self) -> &str {
        self.base_url.origin()
    }
}

/// How far one try got toward a connection, as ureq's resolver and
/// connector saw it: ureq's errors do not say (a DNS failure is a bare io
/// error, and a connect that outlasts the whole request's timeout is that
/// timeout's).
#[derive(Debug, Default)]
struct Reach {
    lookup_failed: AtomicBool,
    /// The host a lookup found to have no such name.
    no_such_host: Mutex<Option<String>>,
    /// A new connection was asked for: none in the pool would do.
    dialled: AtomicBool,
    opened: AtomicBool,
}

impl Reach {
    fn reset(&self) {
        for flag in [&self.lookup_failed, &self.dialled, &self.opened] {
            flag.store(false, Ordering::Relaxed);
        }
        if let Ok(mut host) = self.no_such_host.lock() {
            *host = None;
        }
    }

    fn no_such_host(&self) -> Option<String> {
        self.no_such_host.lock().ok().and_then(|h| h.clone())
    }

    /// Whether the try had a connection: a pooled one, or one it opened.
    fn connected(&self) -> bool {
        let flag = |f: &AtomicBool| f.load(Ordering::Relaxed);
        !flag(&self.lookup_failed) && (!flag(&self.dialled) || flag(&self.opened))
    }
}

/// ureq's own connectors (TCP, proxy, TLS), telling `Reach` whether they
/// opened a connection.
#[derive(Debug)]
struct WatchedConnector {
    inner: DefaultConnector,
    reach: Arc<Reach>,
}

impl Connector for WatchedConnector {
    type Out = Box<dyn Conn>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        self.reach.dialled.store(true, Ordering::Relaxed);
        let conn = self.inner.connect(details, chained)?;
        if conn.is_some() {
            self.reach.opened.store(true, Ordering::Relaxed);
        }
        Ok(conn)
    }
}

/// Looks the API host up once and reuses the answer until a try fails.
///
/// ureq 3 resolves the host before every request, even on a pooled
/// connection, and with a timeout set it does so on a thread of its own:
/// against the real API that is one DNS query and one thread per page.
/// (`ureq::unversioned` is outside ureq's semver promise, hence the exact
/// ureq version in Cargo.toml.)
#[derive(Clone, Debug, Default)]
struct CachingResolver {
    cache: Arc<Mutex<Option<Cached>>>,
    reach: Arc<Reach>,
}

/// The addresses of one `scheme://authority`.
#[derive(Debug)]
struct Cached {
    origin: String,
    addrs: ResolvedSocketAddrs,
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
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or(""),
            uri.authority().map_or("", |a| a.as_str())
        );
        if let Ok(cache) = self.cache.lock() {
            if let Some(hit) = cache.as_ref().filter(|c| c.origin == origin) {
                return Ok(hit.addrs.clone());
            }
        }
        let addrs = DefaultResolver::default()
            .resolve(uri, config, timeout)
            .inspect_err(|e| {
                self.reach.lookup_failed.store(true, Ordering::Relaxed);
                if no_such_name(e) {
                    if let Ok(mut host) = self.reach.no_such_host.lock() {
                        *host = uri.host().map(str::to_string);
                    }
                }
            })?;
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some(Cached {
                origin,
                addrs: addrs.clone(),
            });
        }
        Ok(addrs)
    }
}

/// Whether a failed lookup is the resolver's "no such name" (NXDOMAIN,
/// or a name without addresses), which no retry changes, rather than its
/// "try again" (EAI_AGAIN: no DNS server answered), which a retry may.
/// std reports getaddrinfo's code only as the C library's text for it, so
/// the text is compared with the C library's own for those codes.
fn no_such_name(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::HostNotFound => true,
        ureq::Error::Io(io) => {
            let text = io.to_string();
            #[cfg(target_os = "linux")]
            let codes = [libc::EAI_NONAME, libc::EAI_NODATA];
            #[cfg(not(target_os = "linux"))]
            let codes = [libc::EAI_NONAME];
            codes
                .into_iter()
                .filter(|&code| code != libc::EAI_AGAIN)
                .filter_map(gai_text)
                .any(|said| text.ends_with(&format!(": {said}")))
        }
        _ => false,
    }
}

/// The C library's text for a getaddrinfo error code.
#[allow(unsafe_code)] // gai_strerror has no safe wrapper
fn gai_text(code: libc::c_int) -> Option<String> {
    // SAFETY: gai_strerror returns a pointer to a static NUL-terminated
    // string (musl, glibc), or null; it is only read, at once.
    let text = unsafe { libc::gai_strerror(code) };
    if text.is_null() {
        return None;
    }
    // SAFETY: not null, NUL-terminated and static, as above.
    let text = unsafe { std::ffi::CStr::from_ptr(text) };
    // musl says "Unknown error" for a code it does not use (EAI_NODATA).
    Some(text.to_string_lossy().into_owned()).filter(|t| !t.starts_with("Unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_such_name_is_told_from_try_again() {
        let said = |code| {
            let text = format!(
                "failed to lookup address information: {}",
                gai_text(code).unwrap()
            );
            ureq::Error::Io(std::io::Error::other(text))
        };
        assert!(no_such_name(&said(libc::EAI_NONAME)));
        assert!(!no_such_name(&said(libc::EAI_AGAIN)), "a retry may find it");
        assert!(!no_such_name(&said(libc::EAI_FAIL)));
        assert!(no_such_name(&ureq::Error::HostNotFound));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!no_such_name(&ureq::Error::Io(refused)));
    }

    #[test]
    fn a_try_is_connected_with_a_pooled_or_opened_connection_only() {
        let reach = Reach::default();
        assert!(reach.connected(), "a pooled connection: nothing dialled");
        reach.dialled.store(true, Ordering::Relaxed);
        assert!(!reach.connected(), "dialled, never opened");
        reach.opened.store(true, Ordering::Relaxed);
        assert!(reach.connected());
        reach.reset();
        reach.lookup_failed.store(true, Ordering::Relaxed);
        assert!(!reach.connected(), "the name was not found");
    }
}
