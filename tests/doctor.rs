//! `doctor` through the release binary: a healthy API over HTTP, HTTPS and
//! a proxy, then one case for each step that can fail, each failing at its
//! own row with its own advice and skipping the rows after it; and the
//! drift warnings of `read`.

use crate::support;

use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::mock::{Action, Fault, MockServer, Options, RateLimit, API_KEY};
use support::tls::{ConnectProxy, ProxyMode, Staller, TestCa, MOCK_NAMES};
use support::*;

/// The variables that could change how the binary reaches the mock.
const NETWORK_VARS: [&str; 10] = [
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// What one `doctor` run said: exit code, the JSON document, and the rows
/// of a second run without `--json`.
struct Diagnosis {
    code: Option<i32>,
    doc: Value,
    rows: String,
    took: Duration,
}

impl Diagnosis {
    /// The step called `name`, checked to have `status`; its result and advice.
    fn step(&self, name: &str, status: &str) -> (String, String) {
        let steps = self.doc["steps"].as_array().expect("steps");
        let step = steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name}: {}", self.doc));
        assert_eq!(step["status"], status, "{name}: {}", self.rows);
        let text = |k: &str| step[k].as_str().unwrap_or("").to_string();
        (text("result"), text("advice"))
    }

    /// Checks every step after `failed` is skipped, and the exit code 1.
    fn fails_at(&self, failed: &str) {
        assert_eq!(self.code, Some(1), "{}", self.rows);
        assert_eq!(self.doc["ok"], false);
        let steps = self.doc["steps"].as_array().unwrap();
        let at = steps.iter().position(|s| s["step"] == failed).unwrap();
        assert_eq!(steps[at]["status"], "failed", "{}", self.rows);
        for s in &steps[..at] {
            assert_eq!(s["status"], "ok", "{}", self.rows);
        }
        for s in &steps[at + 1..] {
            assert_eq!(s["status"], "skipped", "{}", self.rows);
            assert_eq!(
                s["result"],
                format!("skipped: {failed} failed"),
                "{}",
                self.rows
            );
        }
        let line = self
            .rows
            .lines()
            .find(|l| l.starts_with("[FAIL]"))
            .expect("a FAIL row");
        assert!(line.contains(failed), "{}", self.rows);
        assert!(self.rows.contains("what to do: "), "{}", self.rows);
    }

    /// Checks that every step passed, exit code 0.
    fn healthy(&self) {
        assert_eq!(self.code, Some(0), "{}", self.rows);
        assert_eq!(self.doc["ok"], true);
        for s in self.doc["steps"].as_array().unwrap() {
            assert_eq!(s["status"], "ok", "{}", self.rows);
        }
        assert!(!self.rows.contains("[FAIL]"), "{}", self.rows);
    }
}

/// Runs `doctor` on `cfg` with exactly `env` of the network variables,
/// with and without `--json`; no secret may appear in either.
fn doctor(cfg: &Value, env: &[(&str, &str)], secrets: &[&str]) -> Diagnosis {
    let dir = TempDir::new();
    let path = dir.json("config.json", cfg);
    let once = |json: bool| {
        let mut cmd = Command::new(BIN);
        cmd.args(["doctor", "--config", &path]).stdin(Stdio::null());
        if json {
            cmd.arg("--json");
        }
        for var in NETWORK_VARS {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        let started = Instant::now();
        let out = cmd.output().expect("run the binary");
        let took = started.elapsed();
        let stdout = String::from_utf8(out.stdout).expect("UTF-8");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        for secret in [API_KEY].iter().chain(secrets) {
            assert!(!stdout.contains(secret), "{secret} leaked: {stdout}");
            assert!(!stderr.contains(secret), "{secret} leaked: {stderr}");
        }
        // Rows are plain text when stdout is not a terminal.
        assert!(!stdout.contains('\x1b'), "{stdout}");
        (out.status.code(), stdout, took)
    };
    let (code, text, took) = once(true);
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let (row_code, rows, _) = once(false);
    // `SHOW_DOCTOR_ROWS=1 cargo test --release --test all doctor:: --
    // --nocapture --test-threads 1` prints every case's rows, for the docs.
    if std::env::var_os("SHOW_DOCTOR_ROWS").is_some() {
        eprintln!("{rows}");
    }
    assert_eq!(code, row_code, "{rows}");
    assert_eq!(
        rows.lines().filter(|l| l.starts_with('[')).count(),
        doc["steps"].as_array().unwrap().len(),
        "{rows}"
    );
    Diagnosis {
        code,
        doc,
        rows,
        took,
    }
}

#[test]
fn a_healthy_api_over_http_passes_every_step_with_its_figures() {
    let mock = MockServer::start(Options::default());
    let d = doctor(&config(&mock.base_url()), &[], &[]);
    d.healthy();
    let steps: Vec<&str> = d.doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    let mut expected = vec![
        "config",
        "dns",
        "tcp",
        "proxy",
        "tls",
        "api key",
        "rate limit",
    ];
    let streams: Vec<String> = STREAMS.iter().map(|s| format!("stream {s}")).collect();
    expected.extend(streams.iter().map(String::as_str));
    expected.push("drift");
    assert_eq!(steps, expected);
    let (config, _) = d.step("config", "ok");
    assert!(
        config.contains("keys api_key, base_url, retry_schedule_seconds"),
        "{config}"
    );
    assert!(d.step("dns", "ok").0.contains("127.0.0.1"));
    assert!(d.step("tcp", "ok").0.starts_with("connected to 127.0.0.1:"));
    assert!(d.step("api key", "ok").0.contains("HTTP 200"));
    let (rate, _) = d.step("rate limit", "ok");
    assert!(rate.starts_with("not sent"), "{rate}");
    let (leads, _) = d.step("stream leads", "ok");
    assert!(leads.contains("100 records, has_more true"), "{leads}");
    let (replies, _) = d.step("stream campaign_leads", "ok");
    assert!(replies.contains("(campaign c_000000)"), "{replies}");
    assert!(d.step("drift", "ok").0.contains("10 first pages"));
    // Aligned: each row's result starts at the same column.
    let starts: Vec<usize> = d
        .rows
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| l.find(" ms  ").expect("a time"))
        .collect();
    assert!(starts.windows(2).all(|w| w[0] == w[1]), "{}", d.rows);
    assert!(d.took < Duration::from_secs(10), "{:?}", d.took);
}

#[test]
fn a_healthy_api_over_https_and_through_a_proxy() {
    let https = Https::start(&MOCK_NAMES, false);
    let cfg = config(&https.front.base_url("localhost"));
    let d = doctor(&cfg, &[("SSL_CERT_FILE", &https.ca_file)], &[]);
    d.healthy();
    let (tls, _) = d.step("tls", "ok");
    assert!(
        tls.starts_with("TLS 1.3, certificate trusted by the CAs in SSL_CERT_FILE"),
        "{tls}"
    );
    assert!(tls.contains("(1 CA)"), "{tls}");
    assert!(tls.contains("certificate SHA-256 "), "{tls}");
    assert_eq!(
        d.step("proxy", "ok").0,
        "none (no proxy_url, HTTPS_PROXY or ALL_PROXY set)"
    );

    // NO_PROXY names the host: the proxy (which would refuse) is bypassed.
    let refusing = ConnectProxy::start(ProxyMode::Refuse(403));
    let url = refusing.url(None);
    let env = [
        ("SSL_CERT_FILE", https.ca_file.as_str()),
        ("HTTPS_PROXY", url.as_str()),
        ("NO_PROXY", "localhost"),
    ];
    let d = doctor(&cfg, &env, &[]);
    d.healthy();
    assert_eq!(
        d.step("proxy", "ok").0,
        "none: NO_PROXY exempts localhost from HTTPS_PROXY"
    );

    // Through a proxy, with credentials: the proxy resolves the API's name.
    let password = "pr0xy-pa55word-42";
    let proxy = ConnectProxy::start(ProxyMode::Tunnel {
        host: "api.persistiq.test".into(),
        to: https.front.addr,
        auth: Some(format!(
            "Basic {}",
            base64(&format!("corp-user:{password}"))
        )),
    });
    let mut cfg = config(&https.front.base_url("api.persistiq.test"));
    cfg["proxy_url"] = json!(proxy.url(Some(&format!("corp-user:{password}"))));
    let d = doctor(&cfg, &[("SSL_CERT_FILE", &https.ca_file)], &[password]);
    d.healthy();
    let (dns, _) = d.step("dns", "ok");
    assert_eq!(dns, "the proxy 127.0.0.1: 127.0.0.1");
    let (tunnel, _) = d.step("proxy", "ok");
    let port = https.front.addr.port();
    assert_eq!(
        tunnel,
        format!(
            "http://127.0.0.1:{} (from proxy_url): CONNECT api.persistiq.test:{port} answered 200, the tunnel is open",
            proxy.addr.port()
        )
    );
    assert!(!proxy.sent_text().contains(API_KEY));
}

#[test]
fn a_host_that_does_not_resolve_fails_at_dns() {
    let d = doctor(&config("https://does-not-exist.invalid/v1/"), &[], &[]);
    d.fails_at("dns");
    let (result, advice) = d.step("dns", "failed");
    assert!(
        result.starts_with("does-not-exist.invalid: no such name"),
        "{result}"
    );
    assert!(
        advice.contains("check the host name in base_url"),
        "{advice}"
    );
    assert!(d.took < Duration::from_secs(15), "{:?}", d.took);
}

#[test]
fn a_refused_port_fails_at_tcp() {
    // Nothing listens on port 9 of loopback.
    let d = doctor(&config("http://127.0.0.1:9/v1/"), &[], &[]);
    d.fails_at("tcp");
    let (result, advice) = d.step("tcp", "failed");
    assert_eq!(result, "127.0.0.1 (127.0.0.1:9) refused the connection");
    assert!(advice.starts_with("nothing listens there"), "{advice}");
}

#[test]
fn a_proxy_that_refuses_connect_fails_at_proxy() {
    let https = Https::start(&MOCK_NAMES, false);
    let cfg = config(&https.front.base_url("api.persistiq.test"));
    let refusing = ConnectProxy::start(ProxyMode::Refuse(403));
    let url = refusing.url(None);
    let env = [
        ("SSL_CERT_FILE", https.ca_file.as_str()),
        ("HTTPS_PROXY", url.as_str()),
    ];
    let d = doctor(&cfg, &env, &[]);
    d.fails_at("proxy");
    let (result, advice) = d.step("proxy", "failed");
    assert!(
        result.contains("(from HTTPS_PROXY): CONNECT api.persistiq.test:")
            && result.ends_with("answered HTTP 403"),
        "{result}"
    );
    assert!(
        advice.contains("ask the network team to allow it"),
        "{advice}"
    );

    // Credentials it does not take: 407, and the password never shown.
    let password = "wr0ng-pa55word-99";
    let proxy = ConnectProxy::start(ProxyMode::Tunnel {
        host: "api.persistiq.test".into(),
        to: https.front.addr,
        auth: Some("Basic nobody-has-this".into()),
    });
    let mut cfg = cfg.clone();
    cfg["proxy_url"] = json!(proxy.url(Some(&format!("corp-user:{password}"))));
    let d = doctor(&cfg, &env[..1], &[password]);
    d.fails_at("proxy");
    let (result, advice) = d.step("proxy", "failed");
    assert!(result.contains("HTTP 407"), "{result}");
    assert!(
        advice.contains("http://user:password@host:port"),
        "{advice}"
    );
}

#[test]
fn an_untrusted_ca_fails_at_tls_saying_which_ca_to_give() {
    let https = Https::start(&MOCK_NAMES, false);
    let other = https
        .dir
        .file("other.pem", &TestCa::new("Some Other CA").pem);
    let cfg = config(&https.front.base_url("localhost"));
    let d = doctor(&cfg, &[("SSL_CERT_FILE", &other)], &[]);
    d.fails_at("tls");
    let (result, advice) = d.step("tls", "failed");
    assert!(
        result.contains("unknown issuer; trusted: the CAs in SSL_CERT_FILE")
            && result.contains("(1 CA)"),
        "{result}"
    );
    assert!(result.contains("certificate SHA-256 "), "{result}");
    assert!(advice.contains("`ca_certificate`"), "{advice}");
    // The bundled roots do not know the test CA either.
    let d = doctor(&cfg, &[], &[]);
    let (result, _) = d.step("tls", "failed");
    assert!(
        result.contains("trusted: the built-in Mozilla roots ("),
        "{result}"
    );
}

#[test]
fn a_certificate_for_another_host_fails_at_tls_naming_it() {
    let https = Https::start(&["other.test"], false);
    let cfg = config(&https.front.base_url("localhost"));
    let d = doctor(&cfg, &[("SSL_CERT_FILE", &https.ca_file)], &[]);
    d.fails_at("tls");
    let (result, advice) = d.step("tls", "failed");
    assert!(
        result.contains("not valid for this host name (it is for other.test)"),
        "{result}"
    );
    assert!(advice.starts_with("check base_url"), "{advice}");
}

#[test]
fn an_expired_certificate_fails_at_tls_with_its_dates() {
    let https = Https::start(&MOCK_NAMES, true);
    let mut cfg = config(&https.front.base_url("localhost"));
    cfg["ca_certificate"] = json!(std::fs::read_to_string(&https.ca_file).unwrap());
    let d = doctor(&cfg, &[], &[]);
    d.fails_at("tls");
    let (result, advice) = d.step("tls", "failed");
    assert!(
        result.contains("expired at 2020-01-03T00:00:00Z (the time here is "),
        "{result}"
    );
    assert!(advice.starts_with("check this machine's clock"), "{advice}");
    assert!(d
        .step("config", "ok")
        .0
        .contains("CAs: the CA in config key `ca_certificate`"));
}

#[test]
fn a_rejected_key_fails_at_the_key_with_persistiqs_reason() {
    let mock = MockServer::start(Options::default());
    let mut cfg = config(&mock.base_url());
    let wrong = "not-the-right-key-123";
    cfg["api_key"] = json!(wrong);
    let d = doctor(&cfg, &[], &[wrong]);
    d.fails_at("api key");
    let (result, advice) = d.step("api key", "failed");
    assert_eq!(
        result,
        "GET users: HTTP 401 (unauthorized); no x-request-id"
    );
    assert!(
        advice.contains("Settings > Integrations > API Key"),
        "{advice}"
    );
}

#[test]
fn the_rate_limit_is_read_from_its_headers_and_a_used_up_one_fails() {
    let mock = MockServer::start(Options {
        rate_limit: Some(RateLimit {
            limit: 100,
            window_secs: 60,
        }),
        ..Options::default()
    });
    let d = doctor(&config(&mock.base_url()), &[], &[]);
    d.healthy();
    let (rate, _) = d.step("rate limit", "ok");
    assert!(
        rate.starts_with("limit 100, remaining 99, resets 20"),
        "{rate}"
    );
    assert!(rate.contains(" s)"), "{rate}");

    let mock = MockServer::start(Options::default());
    let reset = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 30)
        .to_string();
    let spent = vec![
        ("X-RateLimit-Limit".to_string(), "100".to_string()),
        ("X-RateLimit-Remaining".to_string(), "0".to_string()),
        ("X-RateLimit-Reset".to_string(), reset),
    ];
    mock.add_fault(Fault::new("users", None, 2, Action::Headers(spent)));
    let d = doctor(&config(&mock.base_url()), &[], &[]);
    assert_eq!(d.code, Some(1), "{}", d.rows);
    let (rate, advice) = d.step("rate limit", "failed");
    assert!(
        rate.starts_with("limit 100, remaining 0, resets "),
        "{rate}"
    );
    assert!(advice.starts_with("the rate window is used up"), "{advice}");
    // The streams are still asked for.
    d.step("stream tags", "ok");
}

#[test]
fn a_stream_whose_first_page_fails_fails_alone_with_its_request_id() {
    let mock = MockServer::start(Options::default());
    let id = ("x-request-id".to_string(), "6f1c2a9e-77b0-4c1d".to_string());
    let body = r#"{"status":"error","error":{"reason":"oops","message":"broken"}}"#;
    mock.add_fault(Fault::new(
        "tags",
        None,
        usize::MAX,
        Action::Status(500, vec![id], body.into()),
    ));
    let d = doctor(&config(&mock.base_url()), &[], &[]);
    assert_eq!(d.code, Some(1), "{}", d.rows);
    let (result, advice) = d.step("stream tags", "failed");
    assert_eq!(
        result,
        "GET tags?page=1: HTTP 500 (oops); request id 6f1c2a9e-77b0-4c1d"
    );
    assert!(advice.contains("quote the request id"), "{advice}");
    for other in ["users", "leads", "events", "replies"] {
        d.step(&format!("stream {other}"), "ok");
    }
    d.step("drift", "ok");
}

/// A first page of leads with a field the schema does not declare and one
/// whose type it does not allow, in both of its two records.
fn drifted_leads(mock: &MockServer) {
    let body = r#"{"leads":[
        {"id":"l_1","status":"new","sent_count":"7","linkedin_url":"https://x"},
        {"id":"l_2","status":"new","sent_count":"9","linkedin_url":null}
    ],"has_more":false}"#;
    mock.add_fault(Fault::new(
        "leads",
        Some(1),
        usize::MAX,
        Action::Body(body.into()),
    ));
}

#[test]
fn a_drifted_field_fails_the_drift_row_naming_stream_and_field() {
    let mock = MockServer::start(Options::default());
    drifted_leads(&mock);
    let d = doctor(&config(&mock.base_url()), &[], &[]);
    assert_eq!(d.code, Some(1), "{}", d.rows);
    d.step("stream leads", "ok");
    let (result, advice) = d.step("drift", "failed");
    assert_eq!(
        result,
        "leads: `sent_count` is string, which the schema does not allow (it allows null, \
         integer); leads: `linkedin_url` (string) is not declared in the schema"
    );
    assert!(
        advice.contains("typed destination drops undeclared columns"),
        "{advice}"
    );
}

#[test]
fn read_warns_once_per_stream_and_field_of_drift() {
    let mock = MockServer::start(Options::default());
    drifted_leads(&mock);
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["leads", "users"]));
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.record_data("leads").len(), 2);
    let warns: Vec<String> = run
        .logs("WARN")
        .into_iter()
        .filter(|w| w.contains("schema"))
        .collect();
    assert_eq!(warns.len(), 2, "{warns:?}");
    // In the record's order.
    assert!(
        warns[0].starts_with(
            "stream leads: field `sent_count` is string, which the schema does not allow (it \
             allows null, integer); a typed destination may fail to type the column"
        ),
        "{}",
        warns[0]
    );
    assert!(
        warns[1].starts_with(
            "stream leads: field `linkedin_url` (string) is not declared in the schema; it \
             reaches the destination inside each record, but a typed destination"
        ),
        "{}",
        warns[1]
    );
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("source-persistiq: warning: stream leads: field"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    // The mock's usual records hold nothing the schemas do not declare.
    let run = read(&dir, &config(&mock.base_url()), None);
    assert!(
        run.logs("WARN")
            .iter()
            .filter(|w| w.contains("schema"))
            .count()
            == 2,
        "{:?}",
        run.logs("WARN")
    );
}

/// Standard base64, for the expected `Proxy-Authorization`.
fn base64(text: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ABC[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[test]
fn the_config_row_names_unknown_keys_and_a_bad_one_stops_the_way() {
    let mock = MockServer::start(Options::default());
    let mut cfg = config(&mock.base_url());
    cfg["proxy_ur"] = json!("http://proxy.corp:3128");
    let d = doctor(&cfg, &[], &[]);
    assert_eq!(d.code, Some(1), "{}", d.rows);
    let (result, advice) = d.step("config", "failed");
    assert!(result.ends_with("; unknown keys: proxy_ur"), "{result}");
    assert!(
        advice.contains("check their spelling") && advice.contains("proxy_url"),
        "{advice}"
    );
    // A misspelt key does not stop the way: every other step runs.
    d.step("stream users", "ok");

    cfg["base_url"] = json!("http://example.com/v1/");
    let d = doctor(&cfg, &[], &[]);
    d.fails_at("config");
    let (result, _) = d.step("config", "failed");
    assert!(
        result.contains("plain http is allowed only for loopback hosts"),
        "{result}"
    );
}

#[test]
fn a_stalled_handshake_fails_at_tls_within_its_bound() {
    // Accepts the connection and never answers the ClientHello.
    let staller = Staller::start();
    let cfg = config(&format!("https://127.0.0.1:{}/v1/", staller.addr.port()));
    let dir = TempDir::new();
    let path = dir.json("c.json", &cfg);
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["doctor", "--config", &path, "--json"])
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "{took:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(out.status.code(), Some(1));
    let tls = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "tls")
        .unwrap();
    assert_eq!(tls["status"], "failed", "{doc}");
    assert_eq!(tls["result"], "no TLS answer within 10 s", "{doc}");
}
