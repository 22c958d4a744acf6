//! The steps on the way to the API, each timed: the name looked up, the
//! connection, the proxy's tunnel, and the TLS handshake with what the
//! certificate and the trust store say.

use super::{Report, GIVE_CA};
use crate::config::Config;
use crate::http::errors::bare_name;
use crate::time;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The addresses of `host`, looked up on a thread so that a resolver that
/// does not answer is waited for a bounded time.
pub(super) fn dns_step(
    host: &str,
    port: u16,
    proxy: bool,
    report: &mut Report,
) -> Option<Vec<SocketAddr>> {
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
pub(super) fn tcp_step(
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
pub(super) fn proxy_step(
    config: &Config,
    mut stream: TcpStream,
    host: &str,
    port: u16,
    report: &mut Report,
) -> Option<TcpStream> {
    let started = Instant::now();
    let Some(p) = config.proxy.as_ref() else {
        let result = if config.base_url.plain_http() {
            "none: plain http to a loopback host never goes through a proxy".to_string()
        } else {
            no_proxy_note(config.base_url.host())
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
pub(super) fn no_proxy_note(host: &str) -> String {
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
pub(super) fn read_head(stream: &mut TcpStream, until: Instant) -> std::io::Result<String> {
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
pub(super) fn base64(bytes: &[u8]) -> String {
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
pub(super) struct Noting {
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
pub(super) fn tls_step(config: &Config, mut stream: TcpStream, host: &str, report: &mut Report) {
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
pub(super) fn certificate_refused(
    cert: &rustls::CertificateError,
    trust: &str,
) -> (String, String) {
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

/// SHA-256 of `der` as colon-separated hex, by the hash rustls already has.
pub(super) fn sha256_hex(der: &[u8]) -> String {
    use rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    let rustls::SupportedCipherSuite::Tls13(suite) = TLS13_AES_128_GCM_SHA256 else {
        return String::new();
    };
    let digest = suite.common.hash_provider.hash(der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
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
