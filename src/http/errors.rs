//! The wording of network and API errors: what went wrong on the way to
//! the API or in its answer, in words that say what to do next. The
//! client decides what an answer means; this says it.

use super::retry::{Kind, Trouble};
use crate::error::Error;
use crate::secret;
use crate::time;
use std::time::{SystemTime, UNIX_EPOCH};

/// The host of `config::DEFAULT_BASE_URL`, offered for a base_url host
/// that does not exist and is close to it.
pub(super) const API_HOST: &str = "api.persistiq.com";

/// How much of an unexpected body an error message may quote.
pub(super) const QUOTE_BYTES: usize = 200;

/// A network fault: the API could not be reached, or did not answer.
pub(super) fn unreachable(kind: Kind, why: String) -> Trouble {
    let mut trouble = Trouble::new(kind, why);
    trouble.advice = Some(
        "check base_url, this machine's network and any proxy (HTTPS_PROXY, proxy_url), \
         then try again",
    );
    trouble
}

/// " (did you mean api.persistiq.com?)" for a host close to the API's.
pub(super) fn did_you_mean(host: &str) -> String {
    crate::cli::closest(host, [API_HOST])
        .filter(|h| !h.eq_ignore_ascii_case(host))
        .map(|h| format!(" (did you mean {h}?)"))
        .unwrap_or_default()
}

/// The error of a command whose next wait would outlast its budget.
pub(super) fn out_of_time(what: &str, trouble: &Trouble) -> Error {
    match (trouble.kind, trouble.server_wait) {
        (Kind::RateLimited, Some(wait)) => rate_limited_until(wait.until),
        (Kind::RateLimited, None) => {
            Error::transient("rate limited by the API; try again in a minute".to_string())
        }
        _ => Error::transient(format!(
            "{what}: {}; no time left to retry within this command's budget",
            trouble.why_and_advice()
        )),
    }
}

pub(super) fn rate_limited_until(until: SystemTime) -> Error {
    let secs = until
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs_f64().ceil() as i64);
    Error::transient(format!(
        "rate limited by the API until {}; try again then",
        time::format_utc(secs)
    ))
}

/// The TLS library's error inside a ureq error: ureq hands a failed
/// handshake over as an `io::Error` that wraps it.
pub(super) fn rustls_error(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(tls) => Some(tls),
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

/// A TLS failure with the API's host: a certificate that does not verify
/// will not verify on a retry either, and no other stream would fare better.
/// Says which check failed and what to do.
pub(super) fn tls_failure(e: &rustls::Error, host: &str, via: &str, trust: &str) -> Error {
    use rustls::CertificateError as C;
    let give_ca = "If your network inspects HTTPS with its own CA (a company proxy or \
                   firewall), give that CA's certificate (PEM) in the config key \
                   `ca_certificate`, or as a file named by SSL_CERT_FILE; otherwise check base_url";
    let date = |t: rustls::pki_types::UnixTime| time::format_utc(t.as_secs() as i64);
    let message = match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => format!(
                "the TLS certificate of {host}{via} is signed by a CA this connector does not \
                 trust (unknown issuer; trusted: {trust}). {give_ca}"
            ),
            C::NotValidForName => format!(
                "the TLS certificate presented for {host}{via} is not valid for that host name. \
                 Check base_url, or whether something else answers in the API's place"
            ),
            C::NotValidForNameContext { presented, .. } => format!(
                "the TLS certificate presented for {host}{via} is not valid for that host name \
                 (it is for {}). Check base_url, or whether something else answers in the API's \
                 place",
                clip(
                    &presented
                        .iter()
                        .map(|p| bare_name(p))
                        .collect::<Vec<_>>()
                        .join(", "),
                    QUOTE_BYTES
                )
            ),
            C::Expired => format!(
                "the TLS certificate of {host}{via} has expired. Check this machine's clock; if \
                 it is right, the server's certificate must be renewed (or check base_url)"
            ),
            C::ExpiredContext { time, not_after } => format!(
                "the TLS certificate of {host}{via} expired at {} (the time here is {}). Check \
                 this machine's clock; if it is right, the server's certificate must be renewed \
                 (or check base_url)",
                date(*not_after),
                date(*time)
            ),
            C::NotValidYet => format!(
                "the TLS certificate of {host}{via} is not valid yet. Check this machine's clock"
            ),
            C::NotValidYetContext { time, not_before } => format!(
                "the TLS certificate of {host}{via} is valid only from {} (the time here is {}). \
                 Check this machine's clock",
                date(*not_before),
                date(*time)
            ),
            other => format!(
                "the TLS certificate of {host}{via} was refused ({}; trusted: {trust}). {give_ca}",
                secret::mask(&format!("{other:?}"))
            ),
        },
        other => format!(
            "the TLS handshake with {host}{via} failed ({}). Check base_url: it must name an \
             HTTPS server",
            secret::mask(&other.to_string())
        ),
    };
    Error::config(message).stopping_sync("TLS with the API's host failed")
}

/// `other.test` of the TLS library's `DnsName("other.test")` (and
/// `127.0.0.1` of `IpAddress(127.0.0.1)`).
pub(crate) fn bare_name(presented: &str) -> &str {
    let inner = presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(presented);
    inner.trim_matches('"')
}

/// The status a proxy answered a CONNECT with, from ureq's words for it
/// ("proxy server responded 407/407").
pub(super) fn proxy_status(answer: &str) -> Option<u16> {
    let rest = answer.split("responded ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// "; request id ..." when the answer names one: PersistIq's support asks
/// for it.
pub(crate) fn request_id(headers: &ureq::http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| format!("; request id {}", clip(v, 100)))
        .unwrap_or_default()
}

/// ": <reason>: <message>" from the API's error envelope, or a quote of the body.
pub(super) fn api_reason(body: &[u8]) -> String {
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
            format!(": {}", clip(&parts.join(": "), 2 * QUOTE_BYTES))
        }
        _ => format!(": body starts {}", quote(body)),
    }
}

/// The first bytes of a body, fit for a one-line message.
pub(super) fn quote(body: &[u8]) -> String {
    // Enough bytes that a key straddling the cut is still whole when masked.
    let head = &body[..body.len().min(QUOTE_BYTES + secret::longest_form())];
    format!("{:?}", clip(&String::from_utf8_lossy(head), QUOTE_BYTES))
}

/// Text from the server with the key masked, then cut to `max` bytes: in
/// that order, or a key cut in two would no longer be recognised.
pub(super) fn clip(text: &str, max: usize) -> String {
    // Only what can be shown is masked (a body's message may be megabytes),
    // with enough past the cut for a key that straddles it.
    let masked = secret::mask(truncate(text, max + secret::longest_form()));
    truncate(&masked, max).to_string()
}

pub(super) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_close_to_the_apis_gets_a_guess() {
        assert!(crate::config::DEFAULT_BASE_URL.contains(&format!("//{API_HOST}/")));
        for typo in [
            "api.persistiq.co",
            "api.persitiq.com",
            "app.persistiq.com",
            "persistiq.com",
        ] {
            assert_eq!(
                did_you_mean(typo),
                " (did you mean api.persistiq.com?)",
                "{typo}"
            );
        }
        for other in [
            "api.persistiq.com",
            "API.PersistIq.com",
            "example.invalid",
            "localhost",
        ] {
            assert_eq!(did_you_mean(other), "", "{other}");
        }
    }

    #[test]
    fn api_reasons_and_quotes() {
        let body = br#"{"status":"error","error":{"reason":"bad_params","message":"no"}}"#;
        assert_eq!(api_reason(body), ": bad_params: no");
        assert!(api_reason(b"<html>oops").contains("<html>oops"));
        assert_eq!(truncate("h\u{e9}llo", 2), "h");
        assert_eq!(quote(&[b'a'; 500]).len(), QUOTE_BYTES + 2);
    }
}
