//! The connector's config: parsed once, checked key by key, so that every
//! later step can trust it.

use crate::error::{Error, Result};
use crate::input::json_kind;
use crate::network::{self, ProxyChoice, Trust};
use crate::secret::{self, ApiKey};
use serde_json::{Map, Value};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Where the API lives unless the config says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://api.persistiq.com/v1/";

/// Sleeps between tries of one request. The API's rate window is one
/// minute, so the schedule spans more than a minute (68 s) before giving up.
pub const DEFAULT_RETRY_SCHEDULE: [f64; 6] = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0];

/// The longest one HTTP request may take, connect to last body byte.
pub const DEFAULT_TIMEOUT_SECONDS: f64 = 60.0;

/// The longest sleep of the retry schedule: an hour. The connector writes
/// nothing while it sleeps, and metadata.yaml's `maxSecondsBetweenMessages`
/// (how long the platform waits for a message before it takes a source for
/// stuck) must outlast a sleep and then a request.
pub const MAX_SLEEP_SECONDS: f64 = 3_600.0;

/// The longest request timeout: ten minutes, far past any page's answer.
pub const MAX_TIMEOUT_SECONDS: f64 = 600.0;

/// The shortest request timeout that can work at all.
const MIN_TIMEOUT_SECONDS: f64 = 0.01;

/// The connectionSpecification that `spec` prints.
pub const SPEC_JSON: &str = include_str!("spec.json");

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    pub api_key: ApiKey,
    /// Where every request URL starts.
    pub base_url: BaseUrl,
    pub retry_schedule: Vec<Duration>,
    pub timeout: Duration,
    /// How long a connection may take to open: `timeout` up to
    /// `transport::CONNECT_TIMEOUT`, or up to SOURCE_PERSISTIQ_CONNECT_TIMEOUT
    /// seconds when the environment sets it (a network that needs longer;
    /// a test that must not wait 30 s).
    pub connect_timeout: Duration,
    /// Lower bound of the first incremental sync, normalised to UTC.
    pub start_date: Option<crate::time::Stamp>,
    /// The CAs the API's certificate must chain to.
    pub trust: Trust,
    /// The proxy the API's tunnel goes through, if any.
    pub proxy: Option<ProxyChoice>,
    /// What to warn of: keys this connector does not know, which it ignores.
    pub warnings: Vec<String>,
}

impl Config {
    /// Checks a parsed config object, with the process's environment (CA
    /// files, proxies); the error names the key or variable at fault.
    pub fn from_json(value: &Value) -> Result<Config> {
        Config::from_json_with_env(value, &|name| std::env::var(name).ok())
    }

    /// `from_json` with the environment variables `env` gives.
    pub fn from_json_with_env(
        value: &Value,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        let obj = value.as_object().ok_or_else(|| {
            Error::config(format!(
                "config must be a JSON object, found {}",
                json_kind(value)
            ))
        })?;
        let base = base_url(obj)?;
        let api_key = api_key(obj)?;
        let ca_certificate = optional_text(obj, "ca_certificate")?;
        let proxy_url = optional_text(obj, "proxy_url")?;
        // The one plain-http rule: it only ever goes to loopback, and no
        // proxy is chosen for it, as a proxy would see the key.
        let proxy = match base.plain_http {
            true => None,
            false => network::proxy(proxy_url.as_deref(), &base.host, env)?,
        };
        // Nor does it use TLS: a CA file the environment names for other
        // programs cannot fail it (the config's own CA is still checked).
        let no_env = |_: &str| None;
        let trust_env: &dyn Fn(&str) -> Option<String> = match base.plain_http {
            true => &no_env,
            false => env,
        };
        let timeout = timeout(obj)?;
        Ok(Config {
            api_key,
            base_url: base,
            retry_schedule: retry_schedule(obj)?,
            timeout,
            connect_timeout: timeout.min(connect_cap(env)?),
            start_date: start_date(obj)?,
            trust: network::trust(ca_certificate.as_deref(), trust_env)?,
            proxy,
            warnings: unknown_keys(obj),
        })
    }
}

/// A warning for each key the spec does not have: a misspelt optional key
/// (`start_dat`) would otherwise be ignored in silence, its default used.
fn unknown_keys(obj: &Map<String, Value>) -> Vec<String> {
    let spec: Value = serde_json::from_str(SPEC_JSON).unwrap_or_default();
    let Some(known) = spec["properties"].as_object() else {
        return Vec::new();
    };
    obj.keys()
        .filter(|key| !known.contains_key(key.as_str()))
        .map(|key| {
            let key = secret::mask(key);
            let guess = crate::cli::closest(&key, known.keys().map(String::as_str))
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            format!(
                "config key `{key}` is not one this connector knows{guess}; it is ignored. \
                 Known keys: {}",
                known
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect()
}

fn api_key(obj: &Map<String, Value>) -> Result<ApiKey> {
    let key =
        match obj.get("api_key") {
            None | Some(Value::Null) => return Err(Error::config(
                "config key `api_key` is missing: set it to the key from PersistIq's Settings > \
                 Integrations",
            )),
            // Whitespace around a key is a paste's, not the key's.
            Some(Value::String(s)) => s.trim(),
            Some(other) => {
                return Err(Error::config(format!(
                    "config key `api_key` must be a string, found {}",
                    json_kind(other)
                )))
            }
        };
    if key.is_empty() {
        return Err(Error::config("config key `api_key` is empty"));
    }
    // A key that cannot travel in an HTTP header would fail every request.
    if key.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(Error::config(
            "config key `api_key` contains control characters",
        ));
    }
    if key.chars().any(char::is_whitespace) {
        return Err(Error::config(
            "config key `api_key` has whitespace inside it; a PersistIq key has none: copy the \
             whole key again from PersistIq's Settings > Integrations",
        ));
    }
    // Masking a key this short in server text would garble it, and no
    // PersistIq key is this short: a paste cut off is likelier.
    let chars = key.chars().count();
    if chars < secret::MIN_KEY_CHARS {
        return Err(Error::config(format!(
            "config key `api_key` is only {}; it looks truncated: copy the whole key from \
             PersistIq's Settings > Integrations",
            crate::text::count(chars as u64, "character")
        )));
    }
    Ok(ApiKey::new(key.to_string()))
}

/// An optional string key; empty counts as not set (a cleared form field).
fn optional_text(obj: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::config(format!(
            "config key `{key}` must be a string, found {}",
            json_kind(other)
        ))),
    }
}

/// A checked base_url: https, or plain http to a loopback host.
#[derive(Debug, Clone)]
pub struct BaseUrl {
    /// Absolute, ending in `/`, scheme and host in lower case.
    url: String,
    /// The host in lower case, as certificates name it (an IPv6 address
    /// in brackets).
    host: String,
    /// `scheme://host[:port]`: where `url`'s path starts.
    origin_end: usize,
    /// The port requests go to, said or the scheme's.
    port: u16,
    plain_http: bool,
}

impl BaseUrl {
    /// The URL itself: every request URL starts with it.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The host, as certificates name it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `scheme://host[:port]`, to say where a request went.
    pub fn origin(&self) -> &str {
        &self.url[..self.origin_end]
    }

    /// The port requests go to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Plain http, and so a loopback host: no TLS, and never a proxy (the
    /// config chooses none).
    pub fn plain_http(&self) -> bool {
        self.plain_http
    }
}

fn base_url(obj: &Map<String, Value>) -> Result<BaseUrl> {
    let raw = match obj.get("base_url") {
        None | Some(Value::Null) => DEFAULT_BASE_URL,
        Some(Value::String(s)) => s.trim(),
        Some(other) => {
            return Err(Error::config(format!(
                "config key `base_url` must be a string, found {}",
                json_kind(other)
            )))
        }
    };
    check_base_url(raw).map_err(|why| {
        Error::config(format!(
            "config key `base_url` is not usable ({why}); expected e.g. {DEFAULT_BASE_URL}"
        ))
    })
}

/// The base URL rebuilt from its parsed parts, or why it is refused.
///
/// Every decision (https or loopback http, proxy or not) is made on the
/// parsed scheme and host, compared without regard to case, and the URL
/// requests are built on is the normalised one, so that no spelling of a
/// URL (`HTTP://`, `LocalHost`) can pass one rule and dodge another.
fn check_base_url(raw: &str) -> Result<BaseUrl, String> {
    let uri: ureq::http::Uri = raw.parse().map_err(|_| "not a URL".to_string())?;
    let host = uri.host().ok_or("no host")?;
    let authority = uri.authority().ok_or("no host")?;
    if authority.as_str().contains('@') {
        return Err("credentials in the URL are not allowed".into());
    }
    if uri.query().is_some() || raw.contains('#') {
        return Err("a query or fragment is not allowed".into());
    }
    let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
    let plain_http = match scheme.as_str() {
        "https" => false,
        "http" if is_loopback(host) => true,
        "http" => return Err("plain http is allowed only for loopback hosts; use https".into()),
        _ => return Err("the scheme must be https".into()),
    };
    let port = uri.port().map(|p| format!(":{p}")).unwrap_or_default();
    let origin = format!("{scheme}://{}{port}", host.to_ascii_lowercase());
    let mut url = format!("{origin}{}", uri.path());
    if !url.ends_with('/') {
        url.push('/');
    }
    Ok(BaseUrl {
        url,
        host: host.to_ascii_lowercase(),
        origin_end: origin.len(),
        port: uri.port_u16().unwrap_or(if plain_http { 80 } else { 443 }),
        plain_http,
    })
}

/// Loopback hosts, where plain http cannot leak the key off the machine.
pub fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return v4.is_loopback();
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<Ipv6Addr>().is_ok_and(|v6| v6.is_loopback())
}

fn retry_schedule(obj: &Map<String, Value>) -> Result<Vec<Duration>> {
    let items = match obj.get("retry_schedule_seconds") {
        None | Some(Value::Null) => {
            return Ok(DEFAULT_RETRY_SCHEDULE
                .iter()
                .map(|s| Duration::from_secs_f64(*s))
                .collect())
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(Error::config(format!(
                "config key `retry_schedule_seconds` must be an array of seconds such as [1, 5, \
                 30], found {}",
                json_kind(other)
            )))
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            seconds(item, false, MAX_SLEEP_SECONDS).ok_or_else(|| {
                Error::config(format!(
                    "config key `retry_schedule_seconds` item {i} must be a number of seconds \
                     from 0 to {MAX_SLEEP_SECONDS}, found {item}"
                ))
            })
        })
        .collect()
}

fn timeout(obj: &Map<String, Value>) -> Result<Duration> {
    match obj.get("timeout_seconds") {
        None | Some(Value::Null) => Ok(Duration::from_secs_f64(DEFAULT_TIMEOUT_SECONDS)),
        Some(v) => seconds(v, true, MAX_TIMEOUT_SECONDS)
            .filter(|t| t.as_secs_f64() >= MIN_TIMEOUT_SECONDS)
            .ok_or_else(|| {
                Error::config(format!(
                    "config key `timeout_seconds` must be a number of seconds from \
                     {MIN_TIMEOUT_SECONDS} to {MAX_TIMEOUT_SECONDS}, found {v}"
                ))
            }),
    }
}

/// The cap on opening a connection, from the environment or the default.
fn connect_cap(env: &dyn Fn(&str) -> Option<String>) -> Result<Duration> {
    const VAR: &str = "SOURCE_PERSISTIQ_CONNECT_TIMEOUT";
    let Some(text) = env(VAR) else {
        return Ok(crate::http::transport::CONNECT_TIMEOUT);
    };
    // serde_json's number parser, already in the binary: core's float
    // parsing would be kilobytes more.
    serde_json::from_str::<Value>(text.trim())
        .ok()
        .and_then(|v| seconds(&v, true, MAX_TIMEOUT_SECONDS))
        .ok_or_else(|| {
            Error::config(format!(
                "{VAR} must be a number of seconds from 0 to {MAX_TIMEOUT_SECONDS}, found {:?}",
                secret::mask(&text)
            ))
        })
}

fn start_date(obj: &Map<String, Value>) -> Result<Option<crate::time::Stamp>> {
    let bad = |found: &str| {
        Error::config(format!(
            "config key `start_date` must be an ISO-8601 date or time such as 2024-01-31 or \
             2024-01-31T12:00:00Z, found {found}"
        ))
    };
    match obj.get("start_date") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => match crate::time::parse(s) {
            // Whole seconds, as written in UTC.
            Some(at) => Ok(Some(crate::time::Stamp::utc(at.secs))),
            None => Err(bad(&format!("{:?}", secret::mask(s)))),
        },
        Some(other) => Err(bad(json_kind(other))),
    }
}

/// A JSON number as a duration, if it is finite and in range (up to `max`).
fn seconds(value: &Value, positive: bool, max: f64) -> Option<Duration> {
    let s = value.as_f64()?;
    let low_ok = if positive { s > 0.0 } else { s >= 0.0 };
    (low_ok && s <= max).then(|| Duration::from_secs_f64(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "a-test-key-123";

    /// The spec says the limits the config holds a value to, and each is
    /// held: the metadata's `maxSecondsBetweenMessages` is derived from
    /// the spec's (tests/packaging.rs).
    #[test]
    fn the_spec_states_the_limits_config_keeps() {
        let spec: Value = serde_json::from_str(SPEC_JSON).unwrap();
        let props = &spec["properties"];
        let sleep = &props["retry_schedule_seconds"]["items"]["maximum"];
        assert_eq!(sleep.as_f64(), Some(MAX_SLEEP_SECONDS));
        assert_eq!(
            props["timeout_seconds"]["maximum"].as_f64(),
            Some(MAX_TIMEOUT_SECONDS)
        );
        let with = |key: &str, v: f64| {
            let mut cfg = json!({"api_key": KEY});
            cfg[key] = if key == "timeout_seconds" {
                json!(v)
            } else {
                json!([v])
            };
            Config::from_json(&cfg)
        };
        assert!(with("retry_schedule_seconds", MAX_SLEEP_SECONDS).is_ok());
        assert!(with("retry_schedule_seconds", MAX_SLEEP_SECONDS + 1.0).is_err());
        assert!(with("timeout_seconds", MAX_TIMEOUT_SECONDS).is_ok());
        assert!(with("timeout_seconds", MAX_TIMEOUT_SECONDS + 1.0).is_err());
    }

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "127.0.0.1", "127.8.9.10", "[::1]", "LOCALHOST"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1",
            "128.0.0.1",
            "[::2]",
            "localhost.evil",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn base_url_rules() {
        let ok = |u: &str| Config::from_json(&json!({"api_key": KEY, "base_url": u}));
        let url = |u: &str| ok(u).unwrap().base_url;
        assert_eq!(
            url("http://127.0.0.1:9/v1").as_str(),
            "http://127.0.0.1:9/v1/"
        );
        // Decided on the parsed URL: any case of the scheme is plain http.
        let upper = url("HTTP://LocalHost:9/v1/");
        assert_eq!(upper.as_str(), "http://localhost:9/v1/");
        assert!(upper.plain_http());
        assert_eq!(
            (upper.origin(), upper.host(), upper.port()),
            ("http://localhost:9", "localhost", 9)
        );
        let api = url("HTTPS://API.persistiq.com/v1");
        assert!(!api.plain_http());
        assert_eq!(
            (api.origin(), api.port()),
            ("https://api.persistiq.com", 443)
        );
        assert!(ok("HTTP://example.com/v1/").is_err());
        let v6 = url("http://[::1]:9/v1");
        assert_eq!((v6.as_str(), v6.host()), ("http://[::1]:9/v1/", "[::1]"));
        assert!(ok("https://api.persistiq.com/v1/").is_ok());
        for bad in [
            "http://example.com/v1/",
            "ftp://x/",
            "not a url",
            "https://u:p@h/",
            "https://h/?a=1",
        ] {
            let e = ok(bad).unwrap_err();
            assert_eq!(e.failure, crate::error::FailureType::Config, "{bad}");
            assert!(e.message.contains("base_url"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn defaults_and_limits() {
        let c = Config::from_json(&json!({"api_key": KEY, "extra": 1})).unwrap();
        assert_eq!(c.base_url.as_str(), DEFAULT_BASE_URL);
        let total: f64 = c.retry_schedule.iter().map(Duration::as_secs_f64).sum();
        assert!(total >= 60.0);
        assert!(
            Config::from_json(&json!({"api_key": KEY, "retry_schedule_seconds": [-1]})).is_err()
        );
        assert!(
            Config::from_json(&json!({"api_key": KEY, "retry_schedule_seconds": [1e300]})).is_err()
        );
        assert!(Config::from_json(&json!({"api_key": KEY, "timeout_seconds": 0})).is_err());
        assert!(Config::from_json(&json!({"api_key": KEY, "timeout_seconds": 1e-300})).is_err());
        let short = Config::from_json(&json!({"api_key": "k"})).unwrap_err();
        assert!(short.message.contains("truncated"), "{}", short.message);
        assert!(format!("{c:?}").contains("[redacted]"));
        assert!(!format!("{c:?}").contains(KEY));
        assert!(Config::from_json(&json!({"api_key": ""})).is_err());
        assert!(Config::from_json(&json!({"api_key": 5})).is_err());
        assert!(Config::from_json(&json!([])).is_err());
        let dated = |d: Value| Config::from_json(&json!({"api_key": KEY, "start_date": d}));
        assert_eq!(
            dated(json!("2024-01-31"))
                .unwrap()
                .start_date
                .map(|s| s.text)
                .as_deref(),
            Some("2024-01-31T00:00:00Z")
        );
        assert_eq!(
            dated(json!("2024-01-31T12:00:00-02:00"))
                .unwrap()
                .start_date
                .map(|s| s.text)
                .as_deref(),
            Some("2024-01-31T14:00:00Z")
        );
        assert!(dated(json!("last week"))
            .unwrap_err()
            .message
            .contains("start_date"));
        assert!(dated(json!(20240131)).is_err());
    }
}
