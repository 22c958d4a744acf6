//! `doctor`: the way to the API, one step at a time (config, DNS, TCP, the
//! proxy's tunnel, TLS, the key, the rate limit, each stream's first page,
//! drift from the schemas), each timed and, when it fails, with what to do.
//!
//! The network steps are made here with std and rustls rather than through
//! ureq, which does them all in one call: a user behind a company network
//! needs to know which one failed. The steps from the key on go through the
//! connector's own transport, as a sync does.

use crate::config::Config;
use crate::drift::{Drift, Schema};
use crate::http::transport::Transport;
use crate::page;
use crate::secret;
use crate::streams::{Paging, STREAMS};
use crate::time;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;
use std::io::{ErrorKind, IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// All of `doctor` ends within this, as `check` does, whatever the network.
const BUDGET: Duration = Duration::from_secs(60);

/// The longest one network step (a lookup, a connect, a handshake) waits.
const STEP_WAIT: Duration = Duration::from_secs(10);

/// What the TLS advice says when the issuer is not trusted.
const GIVE_CA: &str = "if your network inspects HTTPS with its own CA (a company proxy or \
                       firewall), give that CA's certificate (PEM) in the config key \
                       `ca_certificate`, or as a file named by SSL_CERT_FILE; otherwise check \
                       base_url";

/// How a step ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Failed,
    Skipped,
}

/// One row: a step, what it found, how long it took, what to do.
struct Step {
    step: String,
    status: Status,
    result: String,
    ms: Option<u64>,
    advice: Option<String>,
}

impl Step {
    /// The step as JSON, for `--json`.
    fn json(&self) -> Value {
        let status = match self.status {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        };
        let mut step = serde_json::json!({
            "step": self.step,
            "status": status,
            "result": self.result,
        });
        if let Some(ms) = self.ms {
            step["ms"] = ms.into();
        }
        if let Some(advice) = &self.advice {
            step["advice"] = advice.as_str().into();
        }
        step
    }
}

/// The steps so far, and when `doctor` must be done.
struct Report {
    steps: Vec<Step>,
    deadline: Instant,
    /// The step that failed and stops the way, if one did.
    blocked: Option<String>,
}

impl Report {
    /// Time left, at most one step's wait.
    fn wait(&self) -> Duration {
        self.left().min(STEP_WAIT)
    }

    /// Time left until the deadline (never zero: a zero timeout means none).
    fn left(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    }

    /// A step that passed, timed from `started`.
    fn ok(&mut self, step: &str, started: Instant, result: String) {
        self.push(step, Status::Ok, Some(started), result, None);
    }

    /// A failed step; the steps after it on the way are skipped.
    fn failed(&mut self, step: &str, started: Instant, result: String, advice: String) {
        self.push(step, Status::Failed, Some(started), result, Some(advice));
        self.blocked.get_or_insert_with(|| step.to_string());
    }

    /// A step that cannot run because `blocked` failed.
    fn skip(&mut self, step: &str) {
        let result = format!(
            "skipped: {} failed",
            self.blocked.as_deref().unwrap_or("a step before")
        );
        self.push(step, Status::Skipped, None, result, None);
    }

    /// One row, its texts masked.
    fn push(
        &mut self,
        step: &str,
        status: Status,
        started: Option<Instant>,
        result: String,
        advice: Option<String>,
    ) {
        self.steps.push(Step {
            step: step.to_string(),
            status,
            // Text from the server or the network, masked before it is shown.
            result: secret::mask(&result),
            ms: started.map(|s| s.elapsed().as_millis() as u64),
            advice: advice.map(|a| secret::mask(&a)),
        });
    }
}

/// The steps of the way to the API, in order.
const WAY: [&str; 5] = ["dns", "tcp", "proxy", "tls", "api key"];

/// Runs every step, prints the rows (or one JSON document); the exit code.
pub fn run(path: &Path, json: bool) -> u8 {
    let mut report = Report {
        steps: Vec::new(),
        deadline: Instant::now() + BUDGET,
        blocked: None,
    };
    let config = config_step(path, &mut report);
    match config {
        Some(config) => walk(&config, &mut report),
        None => {
            for step in WAY.into_iter().chain(["rate limit", "streams", "drift"]) {
                report.skip(step);
            }
        }
    }
    let ok = report.steps.iter().all(|s| s.status == Status::Ok);
    let text = if json {
        let steps: Vec<Value> = report.steps.iter().map(Step::json).collect();
        let doc = serde_json::json!({
            "ok": ok,
            "version": env!("CARGO_PKG_VERSION"),
            "steps": steps,
        });
        // One line, as every other JSON the connector writes.
        format!("{doc}\n")
    } else {
        rows(&report.steps)
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    u8::from(!ok)
}

/// Aligned rows: status, step, time, result; the advice under a failure.
fn rows(steps: &[Step]) -> String {
    let width = steps.iter().map(|s| s.step.len()).max().unwrap_or(0);
    // Colour only for a person at a terminal; a file or a ticket gets none.
    let colour = std::io::stdout().is_terminal();
    let mut out = String::new();
    for s in steps {
        let (tag, paint) = match s.status {
            Status::Ok => ("[ OK ]", "32"),
            Status::Failed => ("[FAIL]", "31"),
            Status::Skipped => ("[SKIP]", "2"),
        };
        let tag = match colour {
            true => format!("\x1b[{paint}m{tag}\x1b[0m"),
            false => tag.to_string(),
        };
        let ms = s.ms.map(|m| format!("{m} ms")).unwrap_or_default();
        out.push_str(&format!(
            "{tag} {:width$}  {ms:>8}  {}\n",
            s.step,
            crate::progress::printable(&s.result)
        ));
        if let Some(advice) = &s.advice {
            let pad = " ".repeat(width + 19);
            out.push_str(&format!(
                "{pad}what to do: {}\n",
                crate::progress::printable(advice)
            ));
        }
    }
    out
}

/// The config: read, checked as every command checks it, its keys named.
fn config_step(path: &Path, report: &mut Report) -> Option<Config> {
    let started = Instant::now();
    let value = match crate::input::read_json_file(path, "config") {
        Ok(v) => v,
        Err(e) => {
            let advice = "give --config a JSON file such as {\"api_key\": \"...\"}".into();
            report.failed("config", started, e.message, advice);
            return None;
        }
    };
    if let Some(key) = value.get("api_key").and_then(Value::as_str) {
        secret::protect(key);
    }
    let config = match Config::from_json(&value) {
        Ok(c) => c,
        Err(e) => {
            let advice = "fix that key (`source-persistiq --help` lists them)".into();
            report.failed("config", started, e.message, advice);
            return None;
        }
    };
    let spec: Value = serde_json::from_str(crate::config::SPEC_JSON).unwrap_or_default();
    let known = spec["properties"].as_object();
    let keys: Vec<&String> = value
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let unknown: Vec<&str> = keys
        .iter()
        .filter(|k| known.is_none_or(|p| !p.contains_key(k.as_str())))
        .map(|k| k.as_str())
        .collect();
    let keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    let mut result = format!(
        "keys {}; base_url {}; CAs: {}",
        keys.join(", "),
        config.base_url,
        config.trust.source
    );
    if unknown.is_empty() {
        report.ok("config", started, result);
    } else {
        result.push_str(&format!("; unknown keys: {}", unknown.join(", ")));
        let advice = format!(
            "unknown keys are ignored: check their spelling against `source-persistiq --help` \
             ({})",
            known
                .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        );
        report.failed("config", started, result, advice);
        // A misspelt key is no reason not to try the way to the API.
        report.blocked = None;
    }
    Some(config)
}

/// Where base_url points: host (brackets off) and port.
fn target(config: &Config) -> (String, u16) {
    let host = config.host.trim_start_matches('[').trim_end_matches(']');
    let uri: Option<ureq::http::Uri> = config.base_url.parse().ok();
    let default = if config.plain_http { 80 } else { 443 };
    let port = uri.and_then(|u| u.port_u16()).unwrap_or(default);
    (host.to_string(), port)
}

/// Every step from DNS on.
fn walk(config: &Config, report: &mut Report) {
    let (host, port) = target(config);
    // Through a proxy, this machine resolves and reaches the proxy; the
    // proxy resolves the API's host.
    let proxy = config.proxy.as_ref().filter(|_| !config.plain_http);
    let (dial_host, dial_port) = match proxy {
        Some(p) => (p.proxy.host().to_string(), p.proxy.port()),
        None => (host.clone(), port),
    };
    let addrs = dns_step(&dial_host, dial_port, proxy.is_some(), report);
    let stream = match addrs {
        Some(addrs) => tcp_step(&addrs, &dial_host, proxy.is_some(), report),
        None => {
            report.skip("tcp");
            None
        }
    };
    let stream = match stream {
        Some(stream) => proxy_step(config, stream, &host, port, report),
        None => {
            report.skip("proxy");
            None
        }
    };
    match stream {
        Some(stream) if !config.plain_http => tls_step(config, stream, &host, report),
        Some(_) => {
            let result = "none: plain http to a loopback host".to_string();
            report.ok("tls", Instant::now(), result);
        }
        None => report.skip("tls"),
    }
    if report.blocked.is_some() {
        for step in ["api key", "rate limit", "streams", "drift"] {
            report.skip(step);
        }
        return;
    }
    api_steps(config, report);
}

/// The addresses of `host`, looked up on a thread so that a resolver that
/// does not answer is waited for a bounded time.
fn dns_step(host: &str, port: u16, proxy: bool, report: &mut Report) -> Option<Vec<SocketAddr>> {
    let started = Instant::now();
    // An IPv6 address is written in brackets before its port.
    let asked = match host.contains(':') {
        true => format!(
            "[{}]:{port}",
            host.trim_start_matches('[').trim_end_matches(']')
        ),
        false => format!("{host}:{port}"),
    };
    // Not joined if it outlasts the wait: a resolver may never answer.
    let lookup =
        std::thread::spawn(move || asked.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
    let whose = if proxy { "the proxy " } else { "" };
    let wait = report.wait();
    while !lookup.is_finished() && started.elapsed() < wait {
        std::thread::sleep(Duration::from_millis(1));
    }
    let answer = match lookup.is_finished() {
        true => lookup.join().map_err(drop),
        false => Err(()),
    };
    match answer {
        Ok(Ok(addrs)) if !addrs.is_empty() => {
            let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            report.ok(
                "dns",
                started,
                format!("{whose}{host}: {}", shown.join(", ")),
            );
            Some(addrs)
        }
        Ok(Ok(_)) => {
            let advice = "check the host name in base_url (or the proxy's)".to_string();
            report.failed("dns", started, format!("{whose}{host}: no address"), advice);
            None
        }
        Ok(Err(e)) => {
            let text = e.to_string();
            let lower = text.to_ascii_lowercase();
            let no_such = ["not known", "does not resolve", "no address", "nodename"]
                .iter()
                .any(|w| lower.contains(w));
            let (result, advice) = if no_such {
                (
                    format!("{whose}{host}: no such name ({text})"),
                    "check the host name in base_url (or in the proxy setting); on a company \
                     network the API may be reachable only through a proxy: set HTTPS_PROXY or \
                     proxy_url"
                        .to_string(),
                )
            } else {
                (
                    format!("{whose}{host}: the resolver did not answer ({text})"),
                    "check this machine's DNS settings (/etc/resolv.conf) and network, then \
                     try again"
                        .to_string(),
                )
            };
            report.failed("dns", started, result, advice);
            None
        }
        Err(_) => {
            let result = format!(
                "{whose}{host}: the resolver did not answer within {} s",
                wait.as_secs()
            );
            let advice = "check this machine's DNS settings (/etc/resolv.conf) and network, \
                          then try again"
                .to_string();
            report.failed("dns", started, result, advice);
            None
        }
    }
}

/// A TCP connection to the first address that takes one.
fn tcp_step(
    addrs: &[SocketAddr],
    host: &str,
    proxy: bool,
    report: &mut Report,
) -> Option<TcpStream> {
    let started = Instant::now();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, report.wait()) {
            Ok(stream) => {
                let whose = if proxy { " (the proxy)" } else { "" };
                report.ok("tcp", started, format!("connected to {addr}{whose}"));
                return Some(stream);
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    let (addr, e) = last?;
    let (result, advice) = match e.kind() {
        ErrorKind::ConnectionRefused => (
            format!("{host} ({addr}) refused the connection"),
            "nothing listens there: check the port in base_url (or the proxy's), or ask \
             whether a firewall rejects it",
        ),
        ErrorKind::TimedOut | ErrorKind::WouldBlock => (
            format!(
                "no answer from {host} ({addr}) within {} s",
                report.wait().as_secs()
            ),
            "a firewall may drop the packets: on a company network, go through its proxy \
             (HTTPS_PROXY or proxy_url), or ask the network team to allow the host",
        ),
        _ => (
            format!("{host} ({addr}) cannot be reached ({e})"),
            "check this machine's network and routes, then try again",
        ),
    };
    report.failed("tcp", started, result, advice.to_string());
    None
}

/// The proxy in use, if any, and its tunnel to the API (CONNECT).
fn proxy_step(
    config: &Config,
    mut stream: TcpStream,
    host: &str,
    port: u16,
    report: &mut Report,
) -> Option<TcpStream> {
    let started = Instant::now();
    let Some(p) = config.proxy.as_ref().filter(|_| !config.plain_http) else {
        let result = if config.plain_http {
            "none: plain http to a loopback host never goes through a proxy".to_string()
        } else {
            no_proxy_note(&config.host)
        };
        report.ok("proxy", started, result);
        return Some(stream);
    };
    let from = format!("{} (from {})", p.shown, p.source);
    if !p.shown.starts_with("http://") {
        let advice = "doctor opens tunnels through http:// proxies only; the steps from the key \
                      on go through this one as a sync does"
            .to_string();
        let result = format!("{from}: not tested here");
        report.failed("proxy", started, result, advice);
        // The connector's own transport can still go through it.
        report.blocked = None;
        return None;
    }
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut ask = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let (Some(user), Some(password)) = (p.proxy.username(), p.proxy.password()) {
        let basic = base64(format!("{user}:{password}").as_bytes());
        ask.push_str(&format!("Proxy-Authorization: Basic {basic}\r\n"));
    }
    ask.push_str("\r\n");
    let _ = stream.set_read_timeout(Some(report.wait()));
    let _ = stream.set_write_timeout(Some(report.wait()));
    let head = stream
        .write_all(ask.as_bytes())
        .and_then(|()| read_head(&mut stream, Instant::now() + report.wait()));
    let status = match &head {
        Ok(head) => head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok()),
        Err(_) => None,
    };
    match (status, head) {
        (Some(200..=299), _) => {
            let result = format!("{from}: CONNECT {authority} answered 200, the tunnel is open");
            report.ok("proxy", started, result);
            return Some(stream);
        }
        (Some(407), _) => report.failed(
            "proxy",
            started,
            format!("{from}: CONNECT {authority} answered HTTP 407 (authentication required)"),
            "give the proxy's user name and password in the proxy URL: \
             http://user:password@host:port"
                .into(),
        ),
        (Some(code @ 400..=499), _) => report.failed(
            "proxy",
            started,
            format!("{from}: CONNECT {authority} answered HTTP {code}"),
            format!(
                "the proxy does not allow {host}: ask the network team to allow it, or check \
                 the proxy setting"
            ),
        ),
        (Some(code), _) => report.failed(
            "proxy",
            started,
            format!("{from}: CONNECT {authority} answered HTTP {code}"),
            "the proxy could not reach the API: try again later, or ask the network team".into(),
        ),
        (None, Ok(_)) => report.failed(
            "proxy",
            started,
            format!("{from}: the answer to CONNECT is not HTTP"),
            "check the proxy URL: it must name an HTTP proxy".into(),
        ),
        (None, Err(e)) => report.failed(
            "proxy",
            started,
            format!("{from}: no answer to CONNECT {authority} ({e})"),
            "check the proxy URL, or ask the network team whether the proxy is up".into(),
        ),
    }
    None
}

/// Why no proxy is used: none set, or `NO_PROXY` exempting the host.
fn no_proxy_note(host: &str) -> String {
    let env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    let set = ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
        .into_iter()
        .find(|var| env(var).is_some());
    match set {
        Some(var) => {
            let exempt = ["no_proxy", "NO_PROXY"]
                .into_iter()
                .find(|v| env(v).is_some())
                .unwrap_or("NO_PROXY");
            format!("none: {exempt} exempts {host} from {var}")
        }
        None => "none (no proxy_url, HTTPS_PROXY or ALL_PROXY set)".to_string(),
    }
}

/// An answer's head, up to its blank line (at most 16 KiB), by `until`:
/// the socket's timeout bounds each read, this the trickle of them all.
fn read_head(stream: &mut TcpStream, until: Instant) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte: whatever follows the head is the tunnel's, not ours.
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 << 10 {
        if Instant::now() > until {
            return Err(ErrorKind::TimedOut.into());
        }
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                "the proxy closed the connection",
            ));
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Standard base64, with padding.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            out.push(match i <= chunk.len() {
                true => ABC[(n >> (18 - 6 * i) & 63) as usize] as char,
                false => '=',
            });
        }
    }
    out
}

/// The checks ureq's agent makes of a certificate (rustls' WebPKI
/// verifier without revocation lists, as `with_root_certificates` builds
/// it), noting the certificate so that its fingerprint can be shown even
/// when it is refused. Made of rustls' public parts rather than its
/// verifier builder, which would link in revocation-list parsing.
#[derive(Debug)]
struct Noting {
    roots: rustls::RootCertStore,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
    seen: Mutex<Option<Vec<u8>>>,
}

impl rustls::client::danger::ServerCertVerifier for Noting {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(end_entity.to_vec());
        }
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        rustls::client::verify_server_name(&cert, server_name)?;
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The TLS handshake with the API's host, with the roots ureq's agent
/// trusts (`network::trust`).
fn tls_step(config: &Config, mut stream: TcpStream, host: &str, report: &mut Report) {
    let started = Instant::now();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match &config.trust.roots {
        Some(certs) => {
            let ders = certs.iter().map(|c| CertificateDer::from(c.der()));
            roots.add_parsable_certificates(ders);
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let cas = crate::text::count(roots.len() as u64, "CA");
    let trust = format!("{} ({cas})", config.trust.source);
    let Ok(name) = ServerName::try_from(host.to_string()) else {
        let result = format!("{host} is not a name a certificate can be for");
        report.failed("tls", started, result, "check base_url".into());
        return;
    };
    let noting = Arc::new(Noting {
        roots,
        algorithms: provider.signature_verification_algorithms,
        seen: Mutex::new(None),
    });
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(noting.clone())
                .with_no_client_auth()
        });
    let conn = tls.map_err(|e| e.to_string()).and_then(|tls| {
        rustls::ClientConnection::new(Arc::new(tls), name).map_err(|e| e.to_string())
    });
    let mut conn = match conn {
        Ok(c) => c,
        Err(e) => {
            let result = format!("no TLS client could be made ({e})");
            report.failed("tls", started, result, "check base_url and the CAs".into());
            return;
        }
    };
    let _ = stream.set_read_timeout(Some(report.wait()));
    let _ = stream.set_write_timeout(Some(report.wait()));
    let mut outcome = Ok(());
    // Each read is bounded by the socket's timeout; a server that trickles
    // bytes is bounded by this.
    let until = Instant::now() + report.wait();
    while conn.is_handshaking() {
        if Instant::now() > until {
            outcome = Err(ErrorKind::TimedOut.into());
            break;
        }
        if let Err(e) = conn.complete_io(&mut stream) {
            outcome = Err(e);
            break;
        }
    }
    let fingerprint = noting
        .seen
        .lock()
        .ok()
        .and_then(|s| s.as_deref().map(sha256_hex))
        .map(|f| format!("; certificate SHA-256 {f}"))
        .unwrap_or_default();
    let e = match outcome {
        Ok(()) => {
            let version = match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
                _ => "TLS",
            };
            let result = format!("{version}, certificate trusted by {trust}{fingerprint}");
            report.ok("tls", started, result);
            return;
        }
        Err(e) => e,
    };
    let (result, advice) = match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(cert)) => certificate_refused(cert, &trust),
        Some(other) => (
            format!("the TLS handshake failed ({other})"),
            "check base_url: it must name an HTTPS server".to_string(),
        ),
        None if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => (
            format!("no TLS answer within {} s", report.wait().as_secs()),
            "check base_url: it must name an HTTPS server; a proxy or firewall may hold the \
             connection"
                .to_string(),
        ),
        None => (
            format!("the TLS handshake failed ({e})"),
            "check base_url: it must name an HTTPS server".to_string(),
        ),
    };
    report.failed("tls", started, format!("{result}{fingerprint}"), advice);
}

/// What rustls said of a certificate it refused, and the fix.
fn certificate_refused(cert: &rustls::CertificateError, trust: &str) -> (String, String) {
    use rustls::CertificateError as C;
    let date = |t: &UnixTime| time::format_utc(t.as_secs() as i64);
    let clock = "check this machine's clock; if it is right, the server's certificate must be \
                 renewed (or base_url names the wrong server)"
        .to_string();
    match cert {
        C::UnknownIssuer => (
            format!("the certificate is signed by a CA not trusted here (unknown issuer; trusted: {trust})"),
            GIVE_CA.to_string(),
        ),
        C::NotValidForNameContext { presented, .. } => {
            let names: Vec<&str> = presented.iter().map(|p| bare_name(p)).collect();
            (
                format!("the certificate is not valid for this host name (it is for {})", names.join(", ")),
                "check base_url, or whether something else (a proxy, a captive portal) answers \
                 in the API's place"
                    .to_string(),
            )
        }
        C::NotValidForName => (
            "the certificate is not valid for this host name".to_string(),
            "check base_url, or whether something else answers in the API's place".to_string(),
        ),
        C::ExpiredContext { time, not_after } => (
            format!("the certificate expired at {} (the time here is {})", date(not_after), date(time)),
            clock,
        ),
        C::NotValidYetContext { time, not_before } => (
            format!("the certificate is valid only from {} (the time here is {})", date(not_before), date(time)),
            clock,
        ),
        C::Expired | C::NotValidYet => ("the certificate's dates do not include now".to_string(), clock),
        other => (
            format!("the certificate was refused ({other:?}; trusted: {trust})"),
            GIVE_CA.to_string(),
        ),
    }
}

/// `other.test` of rustls' `DnsName("other.test")`.
fn bare_name(presented: &str) -> &str {
    let inner = presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(presented);
    inner.trim_matches('"')
}

/// SHA-256 of `der` as colon-separated hex, by the hash rustls already has.
fn sha256_hex(der: &[u8]) -> String {
    use rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    let rustls::SupportedCipherSuite::Tls13(suite) = TLS13_AES_128_GCM_SHA256 else {
        return String::new();
    };
    let digest = suite.common.hash_provider.hash(der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// A first page as the API answered it.
struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

/// The key, the rate limit, each stream's first page and drift, through
/// the connector's own transport.
fn api_steps(config: &Config, report: &mut Report) {
    let mut transport = Transport::new(config);
    let mut get = |path: &str, report: &Report| {
        let timeout = config.timeout.min(report.left());
        let mut body = Vec::new();
        transport
            .get(path, timeout, &mut body)
            .map(|head| Answer {
                status: head.status,
                headers: head.headers,
                body,
            })
            .map_err(|f| f.error.to_string())
    };
    let started = Instant::now();
    let users = get("users?page=1", report);
    let answer = match users {
        Err(e) => {
            let result = format!("GET users failed: {e}");
            let advice = "check the rows above; try again, and if it persists, send this \
                          report (run on the failing sync's network) to support"
                .to_string();
            report.failed("api key", started, result, advice);
            for step in ["rate limit", "streams", "drift"] {
                report.skip(step);
            }
            return;
        }
        Ok(a) => a,
    };
    let id = request_id(&answer.headers);
    match answer.status {
        200..=299 => report.ok(
            "api key",
            started,
            format!("GET users: HTTP {}, the key is accepted{id}", answer.status),
        ),
        status @ (401 | 403) => report.failed(
            "api key",
            started,
            format!("GET users: HTTP {status}{}{id}", api_reason(&answer.body)),
            "the API key was rejected: copy it again from PersistIq (Settings > Integrations > \
             API Key) into the config's api_key"
                .into(),
        ),
        429 => report.failed(
            "api key",
            started,
            format!("GET users: HTTP 429, rate limited{id}"),
            "the key's rate window is used up: wait for its reset (the next row), and check \
             that no other program uses the same key"
                .into(),
        ),
        status => report.failed(
            "api key",
            started,
            format!("GET users: HTTP {status}{}{id}", api_reason(&answer.body)),
            "the API did not answer as expected: check base_url, or try again later and quote \
             the request id to PersistIq's support"
                .into(),
        ),
    }
    // A refused key says nothing of the rate window; a 429 says when.
    if matches!(answer.status, 401 | 403) {
        for step in ["rate limit", "streams", "drift"] {
            report.skip(step);
        }
        return;
    }
    let key_failed = report.blocked.take();
    rate_step(&answer, report);
    if key_failed.is_some() {
        report.blocked = key_failed;
    }
    if report.blocked.is_some() {
        report.skip("streams");
        report.skip("drift");
        return;
    }
    let mut drifts: Vec<String> = Vec::new();
    let mut first_campaign: Option<String> = None;
    let mut checked = 0;
    for def in STREAMS {
        let step = format!("stream {}", def.name);
        let started = Instant::now();
        let mut path = def.path.to_string();
        if def.parent.is_some() {
            let Some(campaign) = &first_campaign else {
                let result = "skipped: no campaign to ask about".to_string();
                report.push(&step, Status::Skipped, None, result, None);
                continue;
            };
            path = path.replace("{parent_id}", &crate::url::encode(campaign));
        }
        if def.paging == Paging::Pages {
            path.push_str("?page=1");
        }
        let answer = if def.name == "users" {
            Ok(Answer {
                status: answer.status,
                headers: answer.headers.clone(),
                body: answer.body.clone(),
            })
        } else {
            get(&path, report)
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                let result = format!("GET {path} failed: {e}");
                let advice = "try again; if it persists, send this report to support".into();
                report.failed(&step, started, result, advice);
                continue;
            }
        };
        let id = request_id(&answer.headers);
        if !(200..300).contains(&answer.status) {
            let result = format!(
                "GET {path}: HTTP {}{}{id}",
                answer.status,
                api_reason(&answer.body)
            );
            let advice = match answer.status {
                429 => "rate limited: wait for the rate window to reset, then run doctor again",
                _ => {
                    "a sync would fail on this stream: try again later, and quote the request \
                      id to PersistIq's support if it persists"
                }
            };
            report.failed(&step, started, result, advice.into());
            continue;
        }
        let layout = match page::scan(&answer.body, def.collection, None) {
            Ok(l) => l,
            Err(why) => {
                let result = format!(
                    "GET {path}: HTTP {}, an unusable page: {why}{id}",
                    answer.status
                );
                let advice = "base_url may point at something other than PersistIq's API; \
                              check it, or quote the request id to support"
                    .into();
                report.failed(&step, started, result, advice);
                continue;
            }
        };
        let page = layout.page(&answer.body);
        if def.name == "campaigns" {
            first_campaign = page
                .records
                .first()
                .and_then(|r| r.id_text())
                .map(|t| t.into_owned());
        }
        let on = match def.parent {
            Some(_) => format!(" (campaign {})", first_campaign.as_deref().unwrap_or("")),
            None => String::new(),
        };
        report.ok(
            &step,
            started,
            format!(
                "HTTP {}{on}: {}, has_more {}{id}",
                answer.status,
                crate::text::count(page.records.len() as u64, "record"),
                page.has_more
            ),
        );
        checked += 1;
        let schema = Schema::of(def.schema);
        let mut seen: Vec<Drift> = Vec::new();
        for record in &page.records {
            for d in schema.check(record.json) {
                if !seen.iter().any(|s| s.field == d.field) {
                    seen.push(d);
                }
            }
        }
        drifts.extend(
            seen.iter()
                .map(|d| format!("{}: {}", def.name, d.describe())),
        );
    }
    let started = Instant::now();
    if drifts.is_empty() {
        let result = format!(
            "every field of {} is declared in its schema, with a type it allows",
            crate::text::count(checked, "first page")
        );
        report.ok("drift", started, result);
    } else {
        let advice = "the records still carry these fields, but a typed destination drops \
                      undeclared columns and may fail to type a changed one: report them (this \
                      output) to the connector's maintainers"
            .to_string();
        report.failed("drift", started, drifts.join("; "), advice);
    }
}

/// The rate limit, from the answer's `X-RateLimit-*` headers.
fn rate_step(answer: &Answer, report: &mut Report) {
    let started = Instant::now();
    let header = |name: &str| {
        answer
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
    };
    let limit = header("x-ratelimit-limit");
    let remaining = header("x-ratelimit-remaining");
    let reset = header("x-ratelimit-reset");
    if limit.is_none() && remaining.is_none() && reset.is_none() {
        let result = "not sent (no X-RateLimit-* headers): a sync paces itself by the API's 429s"
            .to_string();
        report.ok("rate limit", started, result);
        return;
    }
    let reset_at = reset
        .as_deref()
        .and_then(|r| r.parse::<i64>().ok())
        .map(|secs| {
            let left = secs - time::now_secs();
            format!("{} (in {left} s)", time::format_utc(secs))
        });
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "not sent".into());
    let result = format!(
        "limit {}, remaining {}, resets {}",
        shown(&limit),
        shown(&remaining),
        reset_at.unwrap_or_else(|| shown(&reset))
    );
    if remaining.as_deref() == Some("0") {
        let advice = "the rate window is used up: a sync now would wait for it; run after the \
                      reset, and check that no other program uses the same key"
            .to_string();
        report.failed("rate limit", started, result, advice);
        // The streams can still be asked for, and say when they are refused.
        report.blocked = None;
    } else {
        report.ok("rate limit", started, result);
    }
}

/// "; request id X" when the answer names one: what PersistIq's support
/// asks for.
fn request_id(headers: &ureq::http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().chars().take(100).collect::<String>())
        .filter(|v| !v.is_empty())
        .map(|v| format!("; request id {v}"))
        .unwrap_or_else(|| "; no x-request-id".to_string())
}

/// ": reason" from PersistIq's error envelope; only its `reason`, as a
/// rejection's message may echo the key in a form masking does not know.
fn api_reason(body: &[u8]) -> String {
    let value: Value = serde_json::from_slice(body).unwrap_or_default();
    match value["error"]["reason"].as_str() {
        Some(reason) => format!(" ({})", reason.chars().take(100).collect::<String>()),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    }

    #[test]
    fn sha256_of_a_known_text() {
        assert_eq!(
            sha256_hex(b"abc").replace(':', ""),
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        );
    }
}
