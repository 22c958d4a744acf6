//! Every record or a loud failure, in bounded time: stale pages, waits
//! that must not outlast `check`, `Retry-After`, rate-limit statuses, the
//! key and proxies, and the state a cron job keeps. Through the release
//! binary against the loopback mock.

use crate::support;

use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::mock::{Action, Fault, MockServer, Options, RateLimit, Trap, API_KEY};
use support::*;

fn epoch_secs_from_now(secs: u64) -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs
}

/// Requests the mock saw for `path` page `page`, with their arrival times.
fn requests_for(mock: &MockServer, path: &str, page: u64) -> Vec<SystemTime> {
    let query = format!("page={page}");
    mock.seen()
        .into_iter()
        .filter(|s| s.path == path && s.query == query)
        .map(|s| s.at)
        .collect()
}

#[test]
fn a_stale_copy_of_the_page_before_is_retried_not_skipped() {
    let mock = MockServer::start(Options::default());
    // Page 2 of campaigns comes back once as page 1 (a proxy's stale copy).
    mock.add_fault(Fault::new("campaigns", Some(2), 1, Action::RepeatFirstPage));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["campaigns"]));
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.record_data("campaigns"), mock.records("campaigns"));
    let warns = run.logs("WARN");
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(
        warns[0].contains("page 2") && warns[0].contains("repeats"),
        "{}",
        warns[0]
    );
    assert_eq!(requests_for(&mock, "campaigns", 2).len(), 2);
}

#[test]
fn a_stale_page_that_persists_fails_the_stream_naming_the_page() {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new(
        "campaigns",
        Some(2),
        usize::MAX,
        Action::RepeatFirstPage,
    ));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["campaigns"]));
    run.the_error_saying("system_error", "campaigns, page 2");
    assert_eq!(
        run.record_data("campaigns"),
        mock.records("campaigns")[..100]
    );
    assert_eq!(run.statuses("campaigns").last().unwrap(), "INCOMPLETE");
}

#[test]
fn an_empty_page_that_still_says_has_more_is_retried_once_then_taken() {
    let mock = MockServer::start(Options::default());
    // Once: a glitch, mended by the retry.
    mock.add_fault(Fault::new("leads", Some(3), 1, Action::EmptyHasMore));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["leads"]));
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.record_data("leads"), mock.records("leads"));
    assert_eq!(run.logs("WARN").len(), 1, "{:?}", run.logs("WARN"));

    // Twice: taken as real (a server that filters after paging), warned
    // about, and the sync goes on to page 4.
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new("leads", Some(3), 2, Action::EmptyHasMore));
    let run = read(&dir, &config(&mock.base_url()), Some(&["leads"]));
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    let all = mock.records("leads");
    let mut expected = all[..200].to_vec();
    expected.extend_from_slice(&all[300..]);
    assert_eq!(run.record_data("leads"), expected);
    let warns = run.logs("WARN");
    assert_eq!(warns.len(), 2, "{warns:?}");
    assert!(warns[1].contains("taken as it is"), "{warns:?}");
}

/// `check` against a 429 whose reset is 100 s away answers at once.
#[test]
fn check_does_not_wait_past_its_budget_for_a_rate_limit() {
    let mock = MockServer::start(Options::default());
    let reset = epoch_secs_from_now(100);
    mock.add_fault(Fault::new(
        "users",
        None,
        usize::MAX,
        Action::Status(
            429,
            vec![("X-RateLimit-Reset".into(), reset.to_string())],
            r#"{"error":{"reason":"too_many_requests","message":"slow down"}}"#.into(),
        ),
    ));
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let started = Instant::now();
    let run = run(&["check", "--config", &cfg]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(run.code, Some(0));
    let status = &run.of_type("CONNECTION_STATUS")[0]["connectionStatus"];
    assert_eq!(status["status"], "FAILED");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("rate limited by the API until"),
        "{message}"
    );
    assert!(message.contains("try again then"), "{message}");
}

/// `check` against a server that never answers gives up within its budget.
#[test]
fn check_answers_within_its_budget_when_the_api_hangs() {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new(
        "users",
        None,
        usize::MAX,
        Action::Stall(Duration::from_secs(300)),
    ));
    let dir = TempDir::new();
    let mut cfg = config(&mock.base_url());
    cfg["retry_schedule_seconds"] = json!([]);
    cfg["timeout_seconds"] = json!(600);
    let cfg = dir.json("c.json", &cfg);
    let started = Instant::now();
    let run = run(&["check", "--config", &cfg]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(33), "took {took:?}");
    assert_eq!(run.code, Some(0));
    let status = &run.of_type("CONNECTION_STATUS")[0]["connectionStatus"];
    assert_eq!(status["status"], "FAILED");
}

/// A server that refuses everything for 2 s and says so only in
/// `Retry-After` (no `X-RateLimit-*`): the retry waits for it.
#[test]
fn retry_after_is_waited_for_in_seconds_and_as_a_date() {
    for (status, http_date) in [(429, false), (503, false), (503, true)] {
        let mock = MockServer::start(Options::default());
        mock.add_fault(Fault::new(
            "leads",
            Some(2),
            1,
            Action::CloseFor(Duration::from_secs(2), status, http_date),
        ));
        let dir = TempDir::new();
        let run = read(&dir, &config(&mock.base_url()), Some(&["leads"]));
        let case = format!("{status} (date: {http_date})");
        assert_eq!(run.code, Some(0), "{case}: {}", run.stdout);
        assert_eq!(run.record_data("leads"), mock.records("leads"), "{case}");
        let tries = requests_for(&mock, "leads", 2);
        assert_eq!(tries.len(), 2, "{case}: one refusal, then the page");
        let waited = tries[1].duration_since(tries[0]).unwrap();
        assert!(
            waited >= Duration::from_millis(1000),
            "{case}: waited {waited:?}"
        );
    }
}

/// While a stream waits on a rate limit its status says RATE_LIMITED,
/// with the reset time when the server gave one: after a 429, and when an
/// answer said the window is spent (here users', paid by leads' first page).
#[test]
fn rate_limit_waits_are_stream_statuses_with_the_reset_time() {
    let limited = |reset: u64| {
        Action::Status(
            429,
            vec![("X-RateLimit-Reset".into(), reset.to_string())],
            "{}".into(),
        )
    };
    let spent = |reset: u64| {
        Action::Headers(vec![
            ("X-RateLimit-Remaining".into(), "0".into()),
            ("X-RateLimit-Reset".into(), reset.to_string()),
        ])
    };
    for (case, path, fault) in [
        ("429", "leads", limited as fn(u64) -> Action),
        ("spent", "users", spent),
    ] {
        let mock = MockServer::start(Options::default());
        let reset = epoch_secs_from_now(2);
        let page = if path == "leads" { 2 } else { 1 };
        mock.add_fault(Fault::new(path, Some(page), 1, fault(reset)));
        let dir = TempDir::new();
        let run = read(&dir, &config(&mock.base_url()), Some(&["users", "leads"]));
        assert_eq!(run.code, Some(0), "{case}: {}", run.stdout);
        assert!(run.status_reasons("users").is_empty(), "{case}");
        let reasons = run.status_reasons("leads");
        assert_eq!(reasons.len(), 1, "{case}: {reasons:?}");
        assert_eq!(reasons[0][0]["type"], "RATE_LIMITED");
        let quota_reset = reasons[0][0]["rate_limited"]["quota_reset"]
            .as_u64()
            .unwrap();
        assert!(
            (reset * 1000..=reset * 1000 + 1000).contains(&quota_reset),
            "{case}: {quota_reset} vs {reset}"
        );
        let statuses = run.statuses("leads");
        assert_eq!(statuses.first().unwrap(), "STARTED", "{case}");
        assert_eq!(statuses.last().unwrap(), "COMPLETE", "{case}");
        assert_eq!(run.record_data("leads"), mock.records("leads"), "{case}");
    }
}

/// A window of 5 requests per 2 s, enforced: the sync paces itself on the
/// headers and never runs into a 429.
#[test]
fn an_enforced_rate_window_is_kept_without_a_429() {
    let mock = MockServer::start(Options {
        leads: 1200,
        rate_limit: Some(RateLimit {
            limit: 5,
            window_secs: 2,
        }),
        ..Options::default()
    });
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["leads"]));
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.record_data("leads"), mock.records("leads"));
    assert_eq!(mock.rate_limited(), 0, "429s served");
    assert!(!run.status_reasons("leads").is_empty());
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

/// A cron job's `--streams leads --state FILE` keeps leads incremental.
#[test]
fn streams_with_state_read_incrementally_from_it() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let empty = dir.file("empty.json", "[]");
    let first = run(&[
        "read",
        "--config",
        &cfg,
        "--streams",
        "leads,users",
        "--state",
        &empty,
    ]);
    assert_eq!(first.code, Some(0), "{}", first.stdout);
    let leads_state: Vec<&Value> = first
        .of_type("STATE")
        .into_iter()
        .filter(|m| m["state"]["stream"]["stream_descriptor"]["name"] == "leads")
        .collect();
    let cursor = &leads_state.last().unwrap()["state"]["stream"]["stream_state"]["updated_after"];
    assert!(cursor.is_string(), "{leads_state:?}");
    let states: Vec<Value> = first.of_type("STATE").into_iter().cloned().collect();
    let state = dir.json("state.json", &Value::Array(states));
    let second = run(&[
        "read",
        "--config",
        &cfg,
        "--streams",
        "leads",
        "--state",
        &state,
    ]);
    assert_eq!(second.code, Some(0), "{}", second.stdout);
    let query = mock.seen().last().unwrap().query.clone();
    assert!(query.contains("updated_after="), "{query}");
    assert!(
        second.record_data("leads").is_empty(),
        "nothing changed since"
    );
}

/// The connector's own words stay whole whatever the key is, and the key
/// is masked in every form the server may echo it in.
#[test]
fn masking_touches_only_text_from_outside() {
    // Like the connector's words, but without whitespace: a key has none.
    let key = "leads,page\"2\"/x";
    let mock = MockServer::start(Options {
        api_key: key.into(),
        ..Options::default()
    });
    let escaped = serde_json::to_string(key).unwrap();
    let percent = "leads%2Cpage%222%22%2Fx";
    let body = format!(
        r#"{{"error":{{"reason":"oops","message":"key {} url ?k={percent}"}}}}"#,
        escaped.trim_matches('"')
    );
    mock.add_fault(Fault::new(
        "leads",
        Some(2),
        1,
        Action::Status(503, vec![], body),
    ));
    let dir = TempDir::new();
    let mut cfg = config(&mock.base_url());
    cfg["api_key"] = json!(key);
    let cfg = dir.json("c.json", &cfg);
    let output = Command::new(BIN)
        .args(["read", "--config", &cfg, "--streams", "leads"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = finish(output, &[key, percent, escaped.trim_matches('"')]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    let warn = &run.logs("WARN")[0];
    assert!(
        warn.starts_with("stream leads, page 2: HTTP 503: oops: key [redacted] url ?k=[redacted]"),
        "{warn}"
    );
}

#[test]
fn a_key_too_short_to_mask_is_refused_as_truncated() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let mut cfg = config(&mock.base_url());
    cfg["api_key"] = json!("k");
    let cfg = dir.json("c.json", &cfg);
    let run = run(&["read", "--config", &cfg]);
    run.the_error_saying("config_error", "truncated");
    assert!(mock.seen().is_empty(), "a request was made");
}

#[test]
fn a_state_page_past_the_bound_is_a_config_error() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    for page in [json!(18446744073709551615u64), json!(1_000_001), json!(0)] {
        let resume = json!({"updated_after": null, "resume": {"page": page, "cursor": null}});
        let run = read_incremental(&mock, &dir, "leads", Some(&stream_state("leads", resume)));
        run.the_error_saying("config_error", "resume.page");
    }
    assert!(mock.seen().is_empty(), "a request was made");
}

#[test]
fn a_body_over_the_cap_fails_at_once_saying_too_large() {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new(
        "users",
        Some(1),
        usize::MAX,
        Action::Huge((64 << 20) + 10),
    ));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["users"]));
    run.the_error_saying("system_error", "too large (over 64 MiB)");
    assert_eq!(mock.seen().len(), 1, "no retry");
}

/// A rejected key ends the sync at the first stream: one error, and every
/// stream INCOMPLETE.
#[test]
fn a_rejected_key_stops_at_the_first_stream() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let mut cfg = config(&mock.base_url());
    cfg["api_key"] = json!("the-wrong-key-42");
    let run = read(&dir, &cfg, Some(&["users", "leads", "campaigns"]));
    run.the_error_saying("config_error", "rejected");
    for stream in ["users", "leads", "campaigns"] {
        assert_eq!(
            run.statuses(stream).last().unwrap(),
            "INCOMPLETE",
            "{stream}"
        );
    }
    assert_eq!(mock.seen().len(), 1, "one request");
}

#[test]
fn a_timeout_says_which_setting_it_was() {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::stall("users", 1, Duration::from_secs(5)));
    let dir = TempDir::new();
    let mut cfg = config(&mock.base_url());
    cfg["timeout_seconds"] = json!(0.5);
    cfg["retry_schedule_seconds"] = json!([]);
    let run = read(&dir, &cfg, Some(&["users"]));
    run.the_error_saying("transient_error", "within timeout_seconds (0.5 s)");
}

/// A saved cursor later than the sync's start (no sync can have seen that
/// far) is said, on stderr too; the stream reads from the sync's ceiling
/// on (no record of the past, as Airbyte's abnormal-state test expects),
/// and the cursor comes back to it rather than filtering every record out
/// for good.
#[test]
fn a_cursor_from_the_future_is_said_and_moves_back_to_the_sync_start() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let future = "2099-01-01T00:00:00Z";
    for (stream, key, param) in [
        ("leads", "updated_after", "updated_after"),
        ("events", "created_at", "start_at"),
    ] {
        let state = json!([{"type": "STREAM", "stream": {
            "stream_descriptor": {"name": stream},
            "stream_state": {key: future}}}]);
        let state = dir.json("s.json", &state);
        let run = run(&[
            "read",
            "--config",
            &cfg,
            "--streams",
            stream,
            "--state",
            &state,
        ]);
        assert_eq!(run.code, Some(0), "{}", run.stdout);
        assert!(run.record_data(stream).is_empty(), "{stream}");
        let said =
            |text: &str| text.contains(future) && text.contains("later than this sync's start");
        assert!(
            run.logs("WARN").iter().any(|w| said(w)),
            "{stream}: {:?}",
            run.logs("WARN")
        );
        assert!(
            said(&run.stderr),
            "{stream}: stderr says so: {}",
            run.stderr
        );
        let asked = mock.seen().last().unwrap().param(param).unwrap_or_default();
        let last = final_state(&run, stream);
        let cursor = last[key].as_str().unwrap().to_string();
        assert!(
            cursor.as_str() < "2099" && !cursor.is_empty(),
            "{stream}: {last}"
        );
        assert!(
            asked.starts_with(&cursor[..10]),
            "{stream}: asked from {asked}, cursor {cursor}"
        );
    }
}

/// A record stamped after the sync began (here from the future) does not
/// carry the cursor past the sync's start, less its margin: records beside
/// it that are not yet visible would fall behind the cursor for good.
#[test]
fn a_field_cursor_stops_at_the_start_of_the_sync() {
    let mock = MockServer::start(Options::default());
    let body = r#"{"status":"success","errors":[],"has_more":false,"next_page":null,"events":[{"id":"evt_future","event_type":"lead_created","data":{},"created_at":"2099-01-01T00:00:00Z"}]}"#;
    mock.add_fault(Fault::new("events", Some(1), 1, Action::Body(body.into())));
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let cat = dir.json("cat.json", &catalog(&["events"], "incremental"));
    let before = support::mock::time::now_secs();
    let run = run(&["read", "--config", &cfg, "--catalog", &cat]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.record_data("events").len(), 1);
    let last = run.of_type("STATE").last().unwrap()["state"]["stream"]["stream_state"].clone();
    let cursor = last["created_at"].as_str().unwrap();
    let secs = support::mock::time::parse(cursor).unwrap().secs;
    assert!(
        (before - 310..=before - 290).contains(&secs),
        "the cursor {cursor} is not the sync's start less 5 minutes"
    );
}

/// A resumed run keeps the first attempt's start as the ceiling: the
/// parents it skips were read then, not now.
#[test]
fn a_resumed_run_keeps_the_first_attempts_ceiling() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let started = "2000-01-01T00:00:00Z";
    let resume = json!({"parent": "c_000000", "page": 1, "cursor": null, "started": started});
    let state = stream_state("replies", json!({"sent_at": null, "resume": resume}));
    let run = read_incremental(&mock, &dir, "replies", Some(&state));
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.record_data("replies"), mock.replies());
    assert_eq!(final_state(&run, "replies"), json!({"sent_at": started}));
}

/// A glitch of an empty page after a retry for another trouble still gets
/// its own retry; and an empty page taken as it is keeps the cursor where
/// it was, since it may have hidden records.
#[test]
fn an_empty_page_gets_its_own_retry_and_a_taken_one_holds_the_cursor() {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new(
        "leads",
        Some(3),
        1,
        Action::Status(503, vec![], "{}".into()),
    ));
    mock.add_fault(Fault::new("leads", Some(3), 1, Action::EmptyHasMore));
    let dir = TempDir::new();
    let retried = read(&dir, &config(&mock.base_url()), Some(&["leads"]));
    assert_eq!(retried.code, Some(0), "{}", retried.stdout);
    assert_eq!(
        retried.record_data("leads"),
        mock.records("leads"),
        "page 3 retried"
    );

    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new("leads", Some(3), 2, Action::EmptyHasMore));
    let since = "2025-01-01T00:00:00Z";
    let state = stream_state("leads", json!({"updated_after": since}));
    let run = read_incremental(&mock, &dir, "leads", Some(&state));
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    let last = final_state(&run, "leads");
    assert_eq!(last, json!({"updated_after": since}), "the cursor moved");
    assert!(
        run.logs("WARN").iter().any(|w| w.contains("cursor stays")),
        "{:?}",
        run.logs("WARN")
    );
}

/// A 503 whose answer names a rate-window reset far off is retried on the
/// schedule: the reset says nothing of when a failing server is back.
#[test]
fn a_5xx_waits_for_retry_after_only() {
    let reset = epoch_secs_from_now(60);
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new(
        "users",
        Some(1),
        1,
        Action::Status(
            503,
            vec![("X-RateLimit-Reset".into(), reset.to_string())],
            "{}".into(),
        ),
    ));
    let dir = TempDir::new();
    let started = Instant::now();
    let run = read(&dir, &config(&mock.base_url()), Some(&["users"]));
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
