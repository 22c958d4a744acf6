//! The way to the API: which CAs are trusted and which proxy, if any,
//! carries the tunnel. Decided once, from the config and the environment,
//! so that a CA file that cannot be used or a proxy URL that cannot work is
//! a config error before the first request, never a setting ignored.

use crate::error::{Error, Result};
use std::fmt;
use ureq::tls::{Certificate, PemItem};

/// The environment variables that name a CA bundle, in the order they win:
/// OpenSSL's and curl's, then Python requests' (what Airbyte's Python
/// connectors honour).
pub const CA_FILE_VARS: [&str; 2] = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"];

/// The CAs that may sign the API's certificate.
#[derive(Clone)]
pub struct Trust {
    /// `None`: the Mozilla roots compiled into the binary.
    pub roots: Option<Vec<Certificate<'static>>>,
    /// Where the roots come from, for messages.
    pub source: String,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Trust({})", self.source)
    }
}

/// A proxy the API's tunnel goes through.
#[derive(Clone)]
pub struct ProxyChoice {
    pub proxy: ureq::Proxy,
    /// `http://host:port`, without credentials: safe to print.
    pub shown: String,
    /// Where it was set (`proxy_url`, `HTTPS_PROXY`, ...).
    pub source: String,
}

impl fmt::Debug for ProxyChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({} from {})", self.shown, self.source)
    }
}

/// The trusted CAs: the config's `ca_certificate`, else the bundle named by
/// `SSL_CERT_FILE`, else by `REQUESTS_CA_BUNDLE`, else the Mozilla roots.
/// Whichever is used replaces the others, as `--cacert`, `SSL_CERT_FILE` and
/// requests' `verify=` do for curl, OpenSSL and Python.
pub fn trust(ca_certificate: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<Trust> {
    if let Some(pem) = ca_certificate {
        let name = "config key `ca_certificate`";
        return Ok(Trust {
            roots: Some(certificates(pem.as_bytes(), name)?),
            source: "the CA in config key `ca_certificate`".into(),
        });
    }
    for var in CA_FILE_VARS {
        let Some(path) = env(var).filter(|p| !p.is_empty()) else {
            continue;
        };
        let name = format!("{var} ({path})");
        let pem = std::fs::read(&path)
            .map_err(|e| Error::config(format!("{name} cannot be read: {e}")))?;
        return Ok(Trust {
            roots: Some(certificates(&pem, &name)?),
            source: format!("the CAs in {name}"),
        });
    }
    Ok(Trust {
        roots: None,
        source: "the built-in Mozilla roots".into(),
    })
}

/// Every certificate of a PEM text, each checked the way the TLS library
/// will take it as a root: it drops a certificate it cannot parse without
/// a word, and a CA the user gave that is silently not trusted would fail
/// later as an unknown issuer, far from its cause.
fn certificates(pem: &[u8], name: &str) -> Result<Vec<Certificate<'static>>> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => return Err(Error::config(format!("{name} is not valid PEM ({e})"))),
        }
    }
    if certs.is_empty() {
        return Err(Error::config(format!(
            "{name} holds no certificate: expected PEM text with one or more -----BEGIN \
             CERTIFICATE----- blocks"
        )));
    }
    for (i, cert) in certs.iter().enumerate() {
        let mut store = rustls::RootCertStore::empty();
        let der = rustls::pki_types::CertificateDer::from(cert.der());
        if store.add(der).is_err() {
            return Err(Error::config(format!(
                "{name}: certificate {} of {} cannot be parsed as a CA certificate",
                i + 1,
                certs.len()
            )));
        }
    }
    Ok(certs)
}

/// The proxy for an https base_url on `host`: the config's `proxy_url`,
/// else, as curl does, `https_proxy`/`HTTPS_PROXY`, else
/// `all_proxy`/`ALL_PROXY`, unless `no_proxy`/`NO_PROXY` names the host.
/// (`HTTP_PROXY` is for http URLs: curl ignores it for https, and so does
/// this.) `NO_PROXY` is for the environment's proxies; `proxy_url` is set
/// for this connector alone and always applies.
pub fn proxy(
    proxy_url: Option<&str>,
    host: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ProxyChoice>> {
    if let Some(url) = proxy_url {
        return parse_proxy(url, "proxy_url").map(Some).map_err(|why| {
            Error::config(format!(
                "config key `proxy_url` is not usable ({why}); expected \
                 http://[user:password@]host:port"
            ))
        });
    }
    let pick = ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
        .into_iter()
        .find_map(|var| env(var).filter(|v| !v.is_empty()).map(|v| (var, v)));
    let Some((var, url)) = pick else {
        return Ok(None);
    };
    let no_proxy = ["no_proxy", "NO_PROXY"]
        .into_iter()
        .find_map(env)
        .unwrap_or_default();
    if no_proxy_matches(&no_proxy, host) {
        return Ok(None);
    }
    parse_proxy(&url, var).map(Some).map_err(|why| {
        Error::config(format!(
            "the environment variable {var} is not a usable proxy URL ({why}); expected \
             http://[user:password@]host:port"
        ))
    })
}

/// A proxy URL checked and parsed; the reason never quotes the URL, which
/// may hold a password.
fn parse_proxy(url: &str, source: &str) -> Result<ProxyChoice, String> {
    let url = url.trim();
    // Without a scheme, curl takes a proxy to be http.
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let uri: ureq::http::Uri = full.parse().map_err(|_| "not a URL".to_string())?;
    let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err("the scheme must be http or https".into());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("a proxy URL has no path or query".into());
    }
    let proxy = ureq::Proxy::new(&full).map_err(|_| "not a proxy URL".to_string())?;
    if let Some(password) = proxy.password() {
        crate::secret::protect_also(password);
    }
    let shown = format!("{scheme}://{}:{}", proxy.host(), proxy.port());
    Ok(ProxyChoice {
        proxy,
        shown,
        source: source.to_string(),
    })
}

/// Whether curl's `NO_PROXY` rules exempt `host`: `*` exempts every host;
/// otherwise each comma-separated name exempts itself and its subdomains
/// (a leading dot changes nothing), and an IP address exempts itself.
pub fn no_proxy_matches(no_proxy: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    no_proxy
        .split(',')
        .map(|e| e.trim().trim_start_matches('.').trim_end_matches('.'))
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase();
            host == entry
                || host
                    .strip_suffix(entry.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_as_curl_reads_it() {
        let yes = [
            ("*", "api.persistiq.com"),
            ("persistiq.com", "api.persistiq.com"),
            (".persistiq.com", "api.persistiq.com"),
            ("example.org, API.PersistIq.com", "api.persistiq.com"),
            ("127.0.0.1", "127.0.0.1"),
            ("::1", "[::1]"),
        ];
        for (list, host) in yes {
            assert!(no_proxy_matches(list, host), "{list} / {host}");
        }
        let no = [
            ("", "api.persistiq.com"),
            ("iq.com", "api.persistiq.com"),
            ("api.persistiq.com.evil", "api.persistiq.com"),
            ("other.com", "api.persistiq.com"),
        ];
        for (list, host) in no {
            assert!(!no_proxy_matches(list, host), "{list} / {host}");
        }
    }

    #[test]
    fn proxies_from_config_and_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let host = "api.persistiq.com";
        let none = env(&[]);
        assert!(proxy(None, host, &none).unwrap().is_none());
        let https = env(&[("HTTPS_PROXY", "proxy.corp:3128"), ("ALL_PROXY", "x:1")]);
        let p = proxy(None, host, &https).unwrap().unwrap();
        assert_eq!(
            (p.shown.as_str(), p.source.as_str()),
            ("http://proxy.corp:3128", "HTTPS_PROXY")
        );
        let all = env(&[
            ("ALL_PROXY", "http://all:8080"),
            ("HTTP_PROXY", "http://h:1"),
        ]);
        assert_eq!(
            proxy(None, host, &all).unwrap().unwrap().source,
            "ALL_PROXY"
        );
        assert!(proxy(None, host, &env(&[("HTTP_PROXY", "http://h:1")]))
            .unwrap()
            .is_none());
        let exempt = env(&[("HTTPS_PROXY", "http://p:1"), ("NO_PROXY", "persistiq.com")]);
        assert!(proxy(None, host, &exempt).unwrap().is_none());
        // The config's proxy is this connector's own setting: NO_PROXY is not for it.
        let own = proxy(Some("http://u:pw-secret-1@p:3128"), host, &exempt)
            .unwrap()
            .unwrap();
        assert_eq!(own.shown, "http://p:3128");
        assert!(!format!("{own:?}").contains("pw-secret-1"));
        let bad = proxy(Some("socks5://u:pw-secret-2@p:1"), host, &none).unwrap_err();
        assert!(bad.message.contains("proxy_url"), "{}", bad.message);
        assert!(!bad.message.contains("pw-secret-2"), "{}", bad.message);
        let bad_env = proxy(None, host, &env(&[("HTTPS_PROXY", "http://p:1/path")])).unwrap_err();
        assert!(
            bad_env.message.contains("HTTPS_PROXY"),
            "{}",
            bad_env.message
        );
    }

    #[test]
    fn unusable_ca_text_names_its_source() {
        let none = |_: &str| None;
        let empty = trust(Some("no pem here"), &none).unwrap_err();
        assert!(
            empty
                .message
                .contains("`ca_certificate` holds no certificate"),
            "{}",
            empty.message
        );
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let bad = trust(Some(garbage), &none).unwrap_err();
        assert!(
            bad.message.contains("certificate 1 of 1"),
            "{}",
            bad.message
        );
        let missing =
            |k: &str| (k == "REQUESTS_CA_BUNDLE").then(|| "/nonexistent/ca.pem".to_string());
        let e = trust(None, &missing).unwrap_err();
        assert!(
            e.message
                .contains("REQUESTS_CA_BUNDLE (/nonexistent/ca.pem) cannot be read"),
            "{}",
            e.message
        );
        assert!(trust(None, &none).unwrap().roots.is_none());
    }
}
