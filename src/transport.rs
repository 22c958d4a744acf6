//! The wire: one keep-alive ureq agent and one try of one GET. What an
//! answer means (retry, fail, use it) is for `client` and `retry` to say.

use crate::config::Config;
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
    base_url: String,
    /// base_url's host, as certificates name it.
    host: String,
    api_key: String,
    /// The agent's own timeout (`timeout_seconds`).
    timeout: Duration,
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

/// How long a connection may take to open, given `timeout_seconds`.
fn connect_timeout(timeout: Duration) -> Duration {
    timeout.min(CONNECT_TIMEOUT)
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
            .timeout_connect(Some(connect_timeout(config.timeout)))
            .user_agent(concat!("source-persistiq/", env!("CARGO_PKG_VERSION")))
            .accept("application/json");
        // Always set, so that ureq's own reading of the environment (which
        // differs from curl's) never applies: the config decided. Plain
        // http only ever goes to loopback; a proxy would see the key.
        let proxy = config.proxy.as_ref().filter(|_| !config.plain_http);
        builder = builder.proxy(proxy.map(|p| p.proxy.clone()));
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
            host: config.host.clone(),
            api_key: config.api_key.expose().to_string(),
            timeout: config.timeout,
            trust: config.trust.source.clone(),
            proxy: config
                .proxy
                .as_ref()
                .map(|p| (p.shown.clone(), p.source.clone())),
        }
    }

    /// How long a connection may take to open.
    pub fn connect_timeout(&self) -> Duration {
        connect_timeout(self.timeout)
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
        &self.host
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
            .get(format!("{}{}", self.base_url, path_query))
            .header("x-api-key", &self.api_key);
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
        let url = &self.base_url;
        let after_scheme = url.find("://").map_or(0, |i| i + 3);
        let end = url[after_scheme..]
            .find('/')
            .map_or(url.len(), |i| after_scheme + i);
        &url[..end]
    }
}

/// How far one try got toward a connection, as ureq's resolver and
/// connector saw it: ureq's errors do not say (a DNS failure is a bare io
/// error, and a connect that outlasts the whole request's timeout is that
/// timeout's).
#[derive(Debug, Default)]
struct Reach {
    lookup_failed: AtomicBool,
    /// A new connection was asked for: none in the pool would do.
    dialled: AtomicBool,
    opened: AtomicBool,
}

impl Reach {
    fn reset(&self) {
        for flag in [&self.lookup_failed, &self.dialled, &self.opened] {
            flag.store(false, Ordering::Relaxed);
        }
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
            .inspect_err(|_| self.reach.lookup_failed.store(true, Ordering::Relaxed))?;
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some(Cached {
                origin,
                addrs: addrs.clone(),
            });
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
