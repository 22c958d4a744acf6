//! HTTPS end to end, through the release binary: the mock served over TLS
//! with a CA made for this run, each way of trusting a CA and which wins,
//! certificate errors that fail at once saying what to do, CONNECT proxies
//! (from the environment and from `proxy_url`), and handshakes that stall.

use crate::support;

use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::mock::{Action, Fault, MockServer, Options, Trap, API_KEY};
use support::tls::{ConnectProxy, ProxyMode, SilentPort, Staller, TestCa, MOCK_NAMES};
use support::*;

/// Every variable that could change how the binary reaches the mock; the
/// tests' own environment must not leak into a case.
const NETWORK_VARS: [&str; 12] = [
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
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
];

/// What the network tests do with the HTTPS mock.
impl Https {
    fn check(&self, cfg: &Value, env: &[(&str, &str)]) -> Run {
        let path = self.dir.json("check.json", cfg);
        connector(&["check", "--config", &path], env, &[])
    }

    fn read(&self, cfg: &Value, streams: &[&str], env: &[(&str, &str)]) -> Run {
        let path = self.dir.json("read.json", cfg);
        let cat = self.dir.json("cat.json", &catalog(streams, "full_refresh"));
        connector(&["read", "--config", &path, "--catalog", &cat], env, &[])
    }
}

/// Runs the binary with exactly `env` of the network variables; checks that
/// neither the key nor any of `secrets` appears in its output.
fn connector(args: &[&str], env: &[(&str, &str)], secrets: &[&str]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for var in NETWORK_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let mut all = vec![API_KEY];
    all.extend_from_slice(secrets);
    finish(cmd.output().expect("run the binary"), &all)
}

/// The CONNECTION_STATUS of a check run.
fn status(run: &Run) -> (String, String) {
    let s = &run.of_type("CONNECTION_STATUS")[0]["connectionStatus"];
    (
        s["status"].as_str().unwrap().to_string(),
        s["message"].as_str().unwrap_or("").to_string(),
    )
}

fn succeeded(run: &Run, case: &str) {
    assert_eq!(status(run).0, "SUCCEEDED", "{case}: {}", run.stdout);
}

/// The check's FAILED message, after checking it came in under `within`.
fn failed_at_once(run: &Run, took: Duration, case: &str) -> String {
    let (s, message) = status(run);
    assert_eq!(s, "FAILED", "{case}: {}", run.stdout);
    assert!(
        took < Duration::from_secs(3),
        "{case}: took {took:?}: {message}"
    );
    assert!(
        run.logs("WARN").is_empty(),
        "{case}: retried: {}",
        run.stdout
    );
    message
}

/// Every RECORD line, with its `emitted_at` cut off.
fn record_lines(run: &Run) -> Vec<String> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with(r#"{"type":"RECORD""#))
        .map(|l| l[..l.rfind(r#","emitted_at":"#).expect("emitted_at")].to_string())
        .collect()
}

#[test]
fn every_stream_over_https_is_byte_for_byte_what_http_gives() {
    let https = Https::usual();
    let dir = TempDir::new();
    let plain = read(&dir, &config(&https.mock.base_url()), None);
    assert_eq!(plain.code, Some(0), "{}", plain.stdout);
    let cfg = https.dir.json("c.json", &https.config("localhost"));
    let tls = connector(
        &["read", "--config", &cfg],
        &[("SSL_CERT_FILE", &https.ca_file)],
        &[],
    );
    assert_eq!(tls.code, Some(0), "{}", tls.stdout);
    for stream in STREAMS {
        assert!(!tls.record_data(stream).is_empty(), "{stream}: no records");
        assert_eq!(
            tls.statuses(stream),
            plain.statuses(stream),
            "{stream} statuses"
        );
    }
    let (over_tls, over_http) = (record_lines(&tls), record_lines(&plain));
    assert_eq!(over_tls.len(), over_http.len());
    assert!(over_tls == over_http, "the records differ");
}

/// Resumable full refresh the way users connect: over HTTPS, trusting the
/// CA from the config, killed midway and given its last STATE back.
#[test]
fn a_full_read_over_https_killed_midway_goes_on_from_its_checkpoint() {
    let https = Https::usual();
    let mut cfg = https.config("localhost");
    cfg["ca_certificate"] = json!(https.ca.pem);
    let cfg = https.dir.json("resume.json", &cfg);
    let cat = https
        .dir
        .json("resume-cat.json", &catalog(&["leads"], "full_refresh"));
    https
        .mock
        .add_fault(Fault::stall("leads", 6, Duration::from_secs(30)));
    let page_6 = |s: &support::mock::Seen| s.is("leads", 6);
    let argv = ["read", "--config", &cfg, "--catalog", &cat];
    let (first, _) = interrupt_when(&https.mock, page_6, "TERM", &argv);
    assert_ne!(first.code, Some(0), "{}", first.stdout);
    let state = https.dir.json("state.json", &state_file(&first));
    let from = https.mock.seen().len();
    let second = connector(&[&argv[..], &["--state", &state]].concat(), &[], &[]);
    assert_eq!(second.code, Some(0), "{}", second.stdout);
    let asked = https.mock.seen()[from..]
        .iter()
        .find(|s| s.path == "leads")
        .and_then(|s| s.param("page"));
    assert_eq!(
        asked.as_deref(),
        Some("5"),
        "the resumed read starts at page 5"
    );
    let mut together = first.record_data("leads");
    together.extend(second.record_data("leads"));
    let mut unique = ids(&together);
    unique.dedup();
    assert_eq!(unique, ids(&https.mock.records("leads")));
}

/// The state contract over HTTPS: a full-refresh checkpoint of an earlier
/// release (no `last`), handed back as a STATE line the way a shell script
/// does, after 150 leads were deleted before it: the list is read from
/// page 1, nothing is lost, and what came twice is said.
#[test]
fn an_old_checkpoint_as_a_state_line_over_https_loses_nothing() {
    let https = Https::usual();
    let mut cfg = https.config("localhost");
    cfg["ca_certificate"] = json!(https.ca.pem);
    let cfg = https.dir.json("old.json", &cfg);
    let cat = https
        .dir
        .json("old-cat.json", &catalog(&["leads"], "full_refresh"));
    let leads = https.mock.records("leads");
    let at = (0..150).map(|k| k + (k / 75) * 25).collect();
    https.mock.change(&support::mock::Change::DeleteRecords {
        path: "leads".into(),
        at,
    });
    let line = r#"{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"leads"},"stream_state":{"full_refresh":{"page":5}}}}}"#;
    let state = https.dir.file("state.jsonl", line);
    let run = connector(
        &[
            "read",
            "--config",
            &cfg,
            "--catalog",
            &cat,
            "--state",
            &state,
        ],
        &[],
        &[],
    );
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    let mut together = leads[..500].to_vec();
    together.extend(run.record_data("leads"));
    let mut unique = ids(&together);
    unique.dedup();
    let now = ids(&https.mock.records("leads"));
    assert!(
        now.iter().all(|id| unique.binary_search(id).is_ok()),
        "a lead lost"
    );
    assert!(run.stderr.contains("came a second time"), "{}", run.stderr);
}

#[test]
fn plain_http_to_loopback_ignores_the_environments_ca_file() {
    // A CA file set for other programs (or gone) cannot fail a read that
    // makes no TLS connection, such as one from the mock.
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let run = connector(
        &["read", "--config", &cfg, "--streams", "users"],
        &[("SSL_CERT_FILE", "/nonexistent/ca.pem")],
        &[],
    );
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.record_data("users"), mock.records("users"));
}

#[test]
fn an_api_that_cannot_be_reached_says_what_to_check() {
    // Nothing listens on port 9 of loopback: refused at once, each try.
    let dir = TempDir::new();
    let mut cfg = config("http://127.0.0.1:9/v1/");
    cfg["retry_schedule_seconds"] = json!([0]);
    let cfg = dir.json("c.json", &cfg);
    let run = connector(&["read", "--config", &cfg, "--streams", "users"], &[], &[]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let message = run.the_error_saying("transient_error", "127.0.0.1:9");
    assert!(message.contains("check base_url"), "{message}");
    // With stdout in a file, stderr alone still says what to do.
    assert!(run.stderr.contains("check base_url"), "{}", run.stderr);
}

#[test]
fn an_api_that_cannot_be_reached_stops_the_sync_at_the_first_stream() {
    // Each later stream would spend the whole schedule on the same closed
    // port: minutes per stream with the default schedule.
    let dir = TempDir::new();
    let mut cfg = config("http://127.0.0.1:9/v1/");
    cfg["retry_schedule_seconds"] = json!([0.05, 0.05]);
    let run = read(&dir, &cfg, Some(&["users", "leads", "campaigns"]));
    let message = run.the_error_saying("transient_error", "127.0.0.1:9");
    assert!(message.contains("after 3 tries"), "{message}");
    assert_eq!(run.errors()[0]["stream_descriptor"]["name"], "users");
    assert_eq!(run.statuses("users"), ["STARTED", "INCOMPLETE"]);
    for stream in ["leads", "campaigns"] {
        assert_eq!(run.statuses(stream), ["INCOMPLETE"], "{stream}");
    }
    // The only retries were the first stream's.
    let retries = run.logs("WARN");
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert!(
        retries.iter().all(|w| w.contains("stream users")),
        "{retries:?}"
    );
    let summary = run.logs("ERROR").pop().unwrap_or_default();
    assert!(
        summary.ends_with(
            "0 of 3 streams complete; failed: users; not read, as no connection could be \
             opened to the API: leads, campaigns"
        ),
        "{summary}"
    );
    // The shell's one line says so too.
    assert!(
        run.stderr
            .trim_end()
            .ends_with("(not read: leads, campaigns)"),
        "{}",
        run.stderr
    );
}

#[test]
fn each_ca_source_is_trusted() {
    let https = Https::usual();
    let cfg = https.config("localhost");
    for var in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"] {
        succeeded(&https.check(&cfg, &[(var, &https.ca_file)]), var);
    }
    let mut with_key = cfg.clone();
    with_key["ca_certificate"] = json!(https.ca.pem);
    succeeded(&https.check(&with_key, &[]), "ca_certificate");
    // A bundle of several certificates: the one that signed is not first.
    let bundle = https.dir.file(
        "bundle.pem",
        &format!("{}{}", TestCa::new("First In Bundle").pem, https.ca.pem),
    );
    succeeded(&https.check(&cfg, &[("SSL_CERT_FILE", &bundle)]), "bundle");
    // An IP address in base_url is checked against the certificate's too.
    let by_ip = https.config("127.0.0.1");
    succeeded(
        &https.check(&by_ip, &[("SSL_CERT_FILE", &https.ca_file)]),
        "by IP",
    );
}

/// `ca_certificate` wins over `SSL_CERT_FILE`, which wins over
/// `REQUESTS_CA_BUNDLE`; whichever is used replaces the others.
#[test]
fn the_ca_sources_replace_each_other_in_order() {
    let https = Https::usual();
    let other = https.other_ca_file();
    let cfg = https.config("localhost");
    let run = https.check(
        &cfg,
        &[
            ("SSL_CERT_FILE", &other),
            ("REQUESTS_CA_BUNDLE", &https.ca_file),
        ],
    );
    let (s, message) = status(&run);
    assert_eq!(s, "FAILED", "SSL_CERT_FILE wins: {}", run.stdout);
    assert!(
        message.contains(&format!("trusted: the CAs in SSL_CERT_FILE ({other})")),
        "{message}"
    );
    succeeded(
        &https.check(
            &cfg,
            &[
                ("SSL_CERT_FILE", &https.ca_file),
                ("REQUESTS_CA_BUNDLE", &other),
            ],
        ),
        "SSL_CERT_FILE over REQUESTS_CA_BUNDLE",
    );
    let mut with_key = cfg.clone();
    with_key["ca_certificate"] = json!(https.ca.pem);
    succeeded(
        &https.check(&with_key, &[("SSL_CERT_FILE", &other)]),
        "ca_certificate over SSL_CERT_FILE",
    );
    with_key["ca_certificate"] = json!(TestCa::new("Not The Mock's").pem);
    let run = https.check(&with_key, &[("SSL_CERT_FILE", &https.ca_file)]);
    let (s, message) = status(&run);
    assert_eq!(s, "FAILED", "ca_certificate replaces: {}", run.stdout);
    assert!(message.contains("config key `ca_certificate`"), "{message}");
}

#[test]
fn an_unusable_ca_is_a_config_error_naming_its_source() {
    let https = Https::usual();
    let cfg = https.config("localhost");
    let empty = https.dir.file("empty.pem", "# no certificates here\n");
    let garbage = https.dir.file(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    );
    let cases = [
        (
            "SSL_CERT_FILE",
            "/nonexistent/ca.pem".to_string(),
            "SSL_CERT_FILE (/nonexistent/ca.pem) cannot be read",
        ),
        ("REQUESTS_CA_BUNDLE", empty.clone(), "holds no certificate"),
        (
            "SSL_CERT_FILE",
            garbage.clone(),
            "certificate 1 of 1 cannot be parsed",
        ),
    ];
    for (var, path, words) in &cases {
        let run = https.check(&cfg, &[(var, path)]);
        let (s, message) = status(&run);
        assert_eq!(s, "FAILED", "{var}={path}");
        assert!(
            message.contains(var) && message.contains(words),
            "{message}"
        );
        // read fails the same way, as a config error, before any request.
        let run = https.read(&cfg, &["users"], &[(var, path)]);
        run.the_error_saying("config_error", words);
    }
    let mut bad_key = cfg.clone();
    bad_key["ca_certificate"] = json!("MIIB...pasted without its BEGIN line");
    let run = https.read(&bad_key, &["users"], &[]);
    run.the_error_saying("config_error", "`ca_certificate` holds no certificate");
    assert!(https.mock.seen().is_empty(), "a request was made");
}

/// What a user behind a company proxy that re-signs TLS sees first: fast,
/// one error, what to do.
#[test]
fn an_untrusted_ca_fails_at_once_saying_what_to_do() {
    let https = Https::usual();
    // The default retry schedule: a retried certificate error takes minutes.
    let cfg = json!({"api_key": API_KEY, "base_url": https.front.base_url("localhost")});
    let started = Instant::now();
    let run = https.check(&cfg, &[]);
    let message = failed_at_once(&run, started.elapsed(), "check");
    for words in [
        "certificate of localhost",
        "unknown issuer",
        "trusted: the built-in Mozilla roots",
        "ca_certificate",
        "SSL_CERT_FILE",
    ] {
        assert!(message.contains(words), "{words}: {message}");
    }
    let started = Instant::now();
    let run = https.read(&cfg, &["users", "leads", "campaigns"], &[]);
    assert!(started.elapsed() < Duration::from_secs(3), "read retried");
    run.the_error_saying("config_error", "unknown issuer");
    for stream in ["users", "leads", "campaigns"] {
        assert_eq!(
            run.statuses(stream).last().unwrap(),
            "INCOMPLETE",
            "{stream}"
        );
    }
}

#[test]
fn a_certificate_for_another_host_fails_at_once_naming_both() {
    let https = Https::start(&["other.test"], false);
    let cfg = json!({"api_key": API_KEY, "base_url": https.front.base_url("localhost")});
    let env = [("SSL_CERT_FILE", https.ca_file.as_str())];
    let started = Instant::now();
    let message = failed_at_once(&https.check(&cfg, &env), started.elapsed(), "check");
    assert!(
        message.contains(
            "presented for localhost is not valid for that host name (it is for other.test)"
        ) && message.contains("base_url"),
        "{message}"
    );
    let run = https.read(&cfg, &["users", "tags"], &env);
    run.the_error_saying("config_error", "not valid for that host name");
}

#[test]
fn an_expired_certificate_fails_at_once_saying_when() {
    let https = Https::start(&MOCK_NAMES, true);
    let cfg = json!({"api_key": API_KEY, "base_url": https.front.base_url("localhost")});
    let env = [("SSL_CERT_FILE", https.ca_file.as_str())];
    let started = Instant::now();
    let message = failed_at_once(&https.check(&cfg, &env), started.elapsed(), "check");
    assert!(
        message.contains("certificate of localhost expired at 2020-01-03T00:00:00Z")
            && message.contains("clock"),
        "{message}"
    );
    let run = https.read(&cfg, &["users"], &env);
    run.the_error_saying("config_error", "expired at 2020-01-03");
}

/// A host only the proxy knows: the binary cannot resolve it, so every
/// record came through the tunnel, and the proxy saw only CONNECT.
#[test]
fn the_environments_proxy_carries_the_tunnel_and_sees_no_key() {
    let https = Https::usual();
    let cfg = https.config("api.persistiq.test");
    for var in ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        let proxy = ConnectProxy::start(ProxyMode::Tunnel {
            host: "api.persistiq.test".into(),
            to: https.front.addr,
            auth: None,
        });
        let url = proxy.url(None);
        let run = https.read(
            &cfg,
            &["users", "campaigns"],
            &[(var, &url), ("SSL_CERT_FILE", &https.ca_file)],
        );
        assert_eq!(run.code, Some(0), "{var}: {}", run.stdout);
        assert_eq!(
            run.record_data("campaigns"),
            https.mock.records("campaigns")
        );
        let heads = proxy.heads();
        assert!(!heads.is_empty(), "{var}: the proxy saw nothing");
        let connect = format!(
            "CONNECT api.persistiq.test:{} HTTP/1.1",
            https.front.addr.port()
        );
        for head in &heads {
            assert!(head.starts_with(&connect), "{var}: {head}");
        }
        // One tunnel, reused for every page.
        assert_eq!(heads.len(), 1, "{var}: {heads:?}");
        let sent = proxy.sent_text();
        assert!(!sent.contains(API_KEY), "{var}: the proxy saw the key");
        assert!(!sent.contains("x-api-key"), "{var}: the proxy saw a header");
    }
    // The mock behind the tunnel did get the key.
    assert!(https
        .mock
        .seen()
        .iter()
        .all(|s| s.api_key.as_deref() == Some(API_KEY)));
}

/// `proxy_url` with credentials: they go to the proxy only, and are never
/// printed; it wins over the environment's proxy.
#[test]
fn proxy_url_with_credentials_carries_the_tunnel() {
    let https = Https::usual();
    let password = "pr0xy-pa55word-77";
    let expected = format!(
        "Basic {}",
        base64(format!("corp-user:{password}").as_bytes())
    );
    let proxy = ConnectProxy::start(ProxyMode::Tunnel {
        host: "api.persistiq.test".into(),
        to: https.front.addr,
        auth: Some(expected.clone()),
    });
    let refusing = ConnectProxy::start(ProxyMode::Refuse(403));
    let mut cfg = https.config("api.persistiq.test");
    cfg["proxy_url"] = json!(proxy.url(Some(&format!("corp-user:{password}"))));
    cfg["ca_certificate"] = json!(https.ca.pem);
    let path = https.dir.json("c.json", &cfg);
    let refusing_url = refusing.url(None);
    let run = connector(
        &["read", "--config", &path, "--streams", "users,tags"],
        &[("HTTPS_PROXY", &refusing_url)],
        &[password],
    );
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.record_data("tags"), https.mock.records("tags"));
    let heads = proxy.heads();
    assert!(
        heads[0].contains(&format!("Proxy-Authorization: {expected}")),
        "{heads:?}"
    );
    assert!(!proxy.sent_text().contains(API_KEY));
    assert!(
        refusing.heads().is_empty(),
        "the environment's proxy was used"
    );
}

#[test]
fn no_proxy_exempts_the_host_as_curl_does() {
    let https = Https::usual();
    let trap = ConnectProxy::start(ProxyMode::Refuse(403));
    let url = trap.url(None);
    let cfg = https.config("localhost");
    for no_proxy in ["localhost", "example.com, LOCALHOST", "*"] {
        let run = https.check(
            &cfg,
            &[
                ("HTTPS_PROXY", &url),
                ("NO_PROXY", no_proxy),
                ("SSL_CERT_FILE", &https.ca_file),
            ],
        );
        succeeded(&run, no_proxy);
    }
    // A name that is not the host's (nor a domain of it) exempts nothing.
    let run = https.check(
        &cfg,
        &[
            ("HTTPS_PROXY", &url),
            ("no_proxy", "calhost"),
            ("SSL_CERT_FILE", &https.ca_file),
        ],
    );
    assert_eq!(status(&run).0, "FAILED", "{}", run.stdout);
    assert_eq!(trap.heads().len(), 1);
}

/// A proxy that wants credentials, or refuses the host: a config error at
/// once, naming the proxy and its answer, never the credentials.
#[test]
fn a_proxy_that_refuses_says_so_at_once() {
    let https = Https::usual();
    let proxy = ConnectProxy::start(ProxyMode::Tunnel {
        host: "api.persistiq.test".into(),
        to: https.front.addr,
        auth: Some("Basic nobody-has-this".into()),
    });
    let password = "wr0ng-pa55word-99";
    let env = [("SSL_CERT_FILE", https.ca_file.as_str())];
    let mut cfg = https.config("api.persistiq.test");
    cfg["retry_schedule_seconds"] = json!([1, 2, 5]);
    cfg["proxy_url"] = json!(proxy.url(Some(&format!("corp-user:{password}"))));
    let path = https.dir.json("c.json", &cfg);
    let started = Instant::now();
    let run = connector(&["check", "--config", &path], &env, &[password]);
    let message = failed_at_once(&run, started.elapsed(), "407");
    let shown = format!("http://127.0.0.1:{} (from proxy_url)", proxy.addr.port());
    assert!(
        message.contains(&format!(
            "the proxy {shown} refused to open a tunnel to api.persistiq.test"
        )) && message.contains("HTTP 407"),
        "{message}"
    );
    let run = connector(
        &["read", "--config", &path, "--streams", "users,tags"],
        &env,
        &[password],
    );
    run.the_error_saying("config_error", "HTTP 407");

    let refusing = ConnectProxy::start(ProxyMode::Refuse(403));
    let mut cfg = https.config("api.persistiq.test");
    cfg["retry_schedule_seconds"] = json!([1, 2, 5]);
    let url = refusing.url(None);
    let started = Instant::now();
    let run = https.check(&cfg, &[("HTTPS_PROXY", &url), env[0]]);
    let message = failed_at_once(&run, started.elapsed(), "403");
    assert!(
        message.contains("(from HTTPS_PROXY)") && message.contains("HTTP 403"),
        "{message}"
    );
}

/// A proxy that hangs up is a network fault: retried, then named.
#[test]
fn a_proxy_that_hangs_up_is_retried_and_named() {
    let https = Https::usual();
    let proxy = ConnectProxy::start(ProxyMode::Hangup);
    let url = proxy.url(None);
    let cfg = https.config("api.persistiq.test");
    let run = https.read(&cfg, &["users"], &[("HTTPS_PROXY", &url)]);
    let message =
        run.the_error_saying("transient_error", "closed the connection without an answer");
    assert!(message.contains(&format!("the proxy {url}")), "{message}");
    assert_eq!(proxy.heads().len(), 3, "one try and two retries");
}

/// A server that accepts and never completes the handshake: bounded by
/// timeout_seconds, retried like any timeout.
#[test]
fn a_stalled_handshake_times_out_and_is_retried() {
    let staller = Staller::start();
    let dir = TempDir::new();
    let mut cfg = config(&format!("https://127.0.0.1:{}/v1/", staller.addr.port()));
    cfg["timeout_seconds"] = json!(0.3);
    let started = Instant::now();
    let run = read(&dir, &cfg, Some(&["users"]));
    let took = started.elapsed();
    run.the_error_saying("transient_error", "within timeout_seconds (0.3 s)");
    assert_eq!(run.logs("WARN").len(), 2, "two retries: {}", run.stdout);
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// A firewall that drops packets: no connection opens, so no later stream
/// tries either. ureq calls this a timeout of the whole request, like one
/// of a server that went quiet; only the connection tells them apart.
#[test]
fn a_connection_that_never_opens_stops_the_sync() {
    let silent = SilentPort::start();
    let dir = TempDir::new();
    let mut cfg = config(&format!("http://127.0.0.1:{}/v1/", silent.port));
    cfg["timeout_seconds"] = json!(0.5);
    cfg["retry_schedule_seconds"] = json!([0.05]);
    let run = read(&dir, &cfg, Some(&["users", "leads"]));
    run.the_error_saying("transient_error", "no connection to http://127.0.0.1:");
    run.the_error_saying(
        "transient_error",
        "opened within timeout_seconds (0.5 s) (after 2 tries)",
    );
    assert_eq!(run.statuses("leads"), ["INCOMPLETE"]);
}

/// Opening a connection gets 30 s of a longer timeout_seconds (a firewall
/// that drops packets held each try for the whole 60 s), or what
/// SOURCE_PERSISTIQ_CONNECT_TIMEOUT says: here 2 s, so that the test does
/// not wait 30.
#[test]
fn opening_a_connection_is_given_up_after_its_cap() {
    let silent = SilentPort::start();
    let dir = TempDir::new();
    let mut cfg = config(&format!("http://127.0.0.1:{}/v1/", silent.port));
    cfg["timeout_seconds"] = json!(60);
    cfg["retry_schedule_seconds"] = json!([]);
    let cfg = dir.json("c.json", &cfg);
    let started = Instant::now();
    let run = connector(
        &["read", "--config", &cfg, "--streams", "users"],
        &[("SOURCE_PERSISTIQ_CONNECT_TIMEOUT", "2")],
        &[],
    );
    let took = started.elapsed();
    run.the_error_saying("transient_error", "opened within 2 s (after 1 try)");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(15),
        "took {took:?}"
    );
    // Not a number of seconds: said, before any request.
    let run = connector(
        &["read", "--config", &cfg, "--streams", "users"],
        &[("SOURCE_PERSISTIQ_CONNECT_TIMEOUT", "soon")],
        &[],
    );
    run.the_error_saying("config_error", "SOURCE_PERSISTIQ_CONNECT_TIMEOUT must be");
}

/// A host name that does not exist (`.invalid` never does, RFC 6761):
/// no retry will find it, so `check` and `read` say so at once, naming
/// the host, as curl does; with the default schedule they took 18 s and
/// 68 s. The later streams are not tried.
#[test]
fn a_host_that_does_not_exist_fails_at_once_naming_it() {
    let dir = TempDir::new();
    let cfg = dir.json(
        "c.json",
        &json!({"api_key": API_KEY, "base_url": "https://api.persistiq.invalid/v1/"}),
    );
    let said = "the host api.persistiq.invalid of base_url does not exist: the DNS has no such \
                name; check base_url";
    let started = Instant::now();
    let run = connector(&["check", "--config", &cfg], &[], &[]);
    let message = failed_at_once(&run, started.elapsed(), "check");
    assert_eq!(message, said);
    let started = Instant::now();
    let run = connector(
        &["read", "--config", &cfg, "--streams", "users,leads"],
        &[],
        &[],
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "read took {took:?}");
    assert!(run.logs("WARN").is_empty(), "retried: {}", run.stdout);
    assert_eq!(run.the_error_saying("config_error", "does not exist"), said);
    assert_eq!(run.statuses("leads"), ["INCOMPLETE"]);
    assert!(run.stderr.contains(said), "{}", run.stderr);
}

/// A port nothing listens on (a wrong port in base_url, most often) is
/// tried again for a few seconds only, not the whole schedule: `check`
/// answers within 5 s, `read` fails within 10 s, both with the cause.
#[test]
fn a_refused_port_fails_check_within_5_s_and_read_within_10_s() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = TempDir::new();
    // The default schedule (1, 2, 5, 10, 20, 30 s): 68 s before.
    let cfg = dir.json(
        "c.json",
        &json!({"api_key": API_KEY, "base_url": format!("http://127.0.0.1:{port}/v1/")}),
    );
    for (command, within) in [("check", 5), ("read", 10)] {
        let started = Instant::now();
        let run = connector(
            &[command, "--config", &cfg, "--streams", "users"]
                [..if command == "check" { 3 } else { 5 }],
            &[],
            &[],
        );
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(within),
            "{command}: took {took:?}"
        );
        assert!(
            run.stderr
                .contains(&format!("request to http://127.0.0.1:{port} failed"))
                && run.stderr.contains("Connection refused"),
            "{command}: {}",
            run.stderr
        );
        assert!(!run.logs("WARN").is_empty(), "{command}: never retried");
    }
}

/// A connection that opened and then got no answer is the server's
/// trouble with one request, not the network's: the next stream tries.
#[test]
fn an_answer_that_never_comes_lets_the_next_stream_try() {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new(
        "users",
        None,
        usize::MAX,
        Action::Stall(Duration::from_secs(5)),
    ));
    let dir = TempDir::new();
    let mut cfg = config(&mock.base_url());
    cfg["timeout_seconds"] = json!(0.3);
    cfg["retry_schedule_seconds"] = json!([]);
    let run = read(&dir, &cfg, Some(&["users", "tags"]));
    run.the_error_saying("transient_error", "no answer from http://127.0.0.1:");
    assert_eq!(run.statuses("tags"), ["STARTED", "RUNNING", "COMPLETE"]);
    assert_eq!(run.record_data("tags"), mock.records("tags"));
}

/// PersistIq's support asks for the request id of a failed request.
#[test]
fn an_api_error_gives_its_request_id() {
    let mock = MockServer::start(Options::default());
    let id = ("x-request-id".to_string(), "6f1c2a9e-77b0-4c1d".to_string());
    let body = r#"{"status":"error","error":{"reason":"oops","message":"broken"}}"#;
    mock.add_fault(Fault::new(
        "users",
        None,
        usize::MAX,
        Action::Status(500, vec![id.clone()], body.into()),
    ));
    mock.add_fault(Fault::new(
        "tags",
        None,
        usize::MAX,
        Action::Status(401, vec![id], body.into()),
    ));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["users"]));
    run.the_error_saying(
        "transient_error",
        "HTTP 500: oops: broken; request id 6f1c2a9e-77b0-4c1d",
    );
    let run = read(&dir, &config(&mock.base_url()), Some(&["tags"]));
    run.the_error_saying("config_error", "request id 6f1c2a9e-77b0-4c1d");
}

/// Standard base64, for the expected `Proxy-Authorization`.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The two new keys as the platform shows them: the proxy URL (which may
/// hold a password) secret, the CA multiline and not secret.
#[test]
fn the_spec_marks_the_proxy_secret_and_the_ca_multiline() {
    let run = run(&["spec"]);
    let spec = &run.of_type("SPEC")[0]["spec"]["connectionSpecification"]["properties"];
    assert_eq!(spec["proxy_url"]["airbyte_secret"], true);
    assert_eq!(spec["ca_certificate"]["multiline"], true);
    assert!(spec["ca_certificate"]["airbyte_secret"].is_null());
    let why = spec["ca_certificate"]["description"].as_str().unwrap();
    assert!(why.contains("instead of"), "{why}");
}

/// `HTTP://` is plain http too: no proxy may see the request (and its key).
#[test]
fn no_spelling_of_plain_http_goes_through_a_proxy() {
    let mock = MockServer::start(Options::default());
    let proxy = Trap::start("127.0.0.1:0");
    let dir = TempDir::new();
    for scheme in ["HTTP", "Http", "http"] {
        let mut cfg = config(&mock.base_url());
        cfg["base_url"] = json!(format!("{scheme}://{}/v1/", mock.addr));
        let cfg = dir.json("c.json", &cfg);
        let proxy_url = format!("http://{}", proxy.addr);
        let output = Command::new(BIN)
            .args(["read", "--config", &cfg, "--streams", "users"])
            .env("HTTP_PROXY", &proxy_url)
            .env("http_proxy", &proxy_url)
            .env("HTTPS_PROXY", &proxy_url)
            .env("ALL_PROXY", &proxy_url)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let run = finish(output, &[API_KEY]);
        assert_eq!(run.code, Some(0), "{scheme}: {}", run.stdout);
        assert_eq!(run.record_data("users"), mock.records("users"), "{scheme}");
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        proxy.hits.lock().unwrap().is_empty(),
        "the proxy saw a request"
    );
}
