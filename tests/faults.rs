//! Every fault the network and the API can throw, case by case, through the
//! release binary: retried faults end with exactly the records of a clean
//! run, the others fail loudly, and the key never leaks.

use crate::support;

use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::mock::{Action, Fault, MockServer, Options, RateLimit, Trap, API_KEY};
use support::*;

/// The key may appear in a request only as the value of `x-api-key`.
fn assert_key_only_in_header(mock: &MockServer) {
    for seen in mock.seen() {
        for line in seen.head.lines().filter(|l| l.contains(API_KEY)) {
            assert_eq!(
                line.trim(),
                format!("x-api-key: {API_KEY}"),
                "key outside its header: {line}"
            );
        }
        assert!(!seen.query.contains(API_KEY));
    }
}

/// Whole epoch seconds `secs` from now, as `X-RateLimit-Reset` counts them.
/// The fraction is dropped, so a reset meant to be waited for is set 2 s
/// ahead: 1 s ahead can be over a few milliseconds later.
fn epoch_secs_from_now(secs: u64) -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs
}

/// Injects `action` on leads page 2, `times` times, and checks that the
/// sync retries its way to exactly the records of a clean run.
fn assert_retried(action: Action, times: usize, config_changes: Value) -> Run {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new("leads", Some(2), times, action.clone()));
    let dir = TempDir::new();
    let mut cfg = config(&mock.base_url());
    cfg["retry_schedule_seconds"] = json!([0.05, 0.05, 0.05]);
    for (k, v) in config_changes.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let run = read(&dir, &cfg, Some(&["leads"]));
    assert_eq!(run.code, Some(0), "{action:?}: {}", run.stdout);
    assert_eq!(
        run.record_data("leads"),
        mock.records("leads"),
        "{action:?}: records differ"
    );
    let warns = run.logs("WARN");
    assert_eq!(warns.len(), times, "{action:?}: {warns:?}");
    for w in &warns {
        assert!(
            w.contains("page 2") && w.contains("retry"),
            "{action:?}: {w}"
        );
    }
    let tries = mock
        .seen()
        .iter()
        .filter(|s| s.path == "leads" && s.query == "page=2")
        .count();
    assert_eq!(tries, times + 1, "{action:?}");
    assert_key_only_in_header(&mock);
    run
}

fn status(code: u16, body: &str) -> Action {
    Action::Status(code, vec![], body.to_string())
}

#[test]
fn server_errors_and_408_are_retried() {
    for code in [500, 502, 503, 504, 408] {
        let run = assert_retried(status(code, "oops"), 2, json!({}));
        assert!(run.logs("WARN")[0].contains(&format!("HTTP {code}")));
    }
}

#[test]
fn a_429_waits_for_the_reset_time_the_server_gives() {
    let reset = epoch_secs_from_now(2);
    let action = Action::Status(
        429,
        vec![("X-RateLimit-Reset".into(), reset.to_string())],
        r#"{"error":{"reason":"too_many_requests","message":"Limit will be reseted at {reset}."}}"#
            .into(),
    );
    let run = assert_retried(action, 1, json!({}));
    // The wait follows the header (1.5 to 2.5 s), not the 0.05 s schedule.
    let warn = &run.logs("WARN")[0];
    assert!(!warn.contains("in 0.05 s"), "{warn}");
    let secs: f64 = warn
        .rsplit("in ")
        .next()
        .unwrap()
        .trim_end_matches(" s")
        .parse()
        .unwrap();
    assert!((0.4..=2.6).contains(&secs), "{warn}");
}

#[test]
fn a_429_with_a_far_reset_falls_back_to_the_schedule() {
    let action = Action::Status(
        429,
        vec![(
            "X-RateLimit-Reset".into(),
            epoch_secs_from_now(3600).to_string(),
        )],
        "{}".into(),
    );
    let run = assert_retried(action, 2, json!({}));
    assert!(run.logs("WARN").iter().all(|w| w.contains("in 0.05 s")));
}

#[test]
fn a_spent_rate_window_pauses_until_reset_without_a_429() {
    let mock = MockServer::start(Options::default());
    let reset = epoch_secs_from_now(2);
    mock.add_fault(Fault::new(
        "leads",
        Some(2),
        1,
        Action::Headers(vec![
            ("X-RateLimit-Limit".into(), "100".into()),
            ("X-RateLimit-Remaining".into(), "0".into()),
            ("X-RateLimit-Reset".into(), reset.to_string()),
        ]),
    ));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["leads"]));
    assert_eq!(run.code, Some(0));
    assert_eq!(run.record_data("leads"), mock.records("leads"));
    let seen = mock.seen();
    let page3 = seen.iter().find(|s| s.query == "page=3").unwrap();
    assert!(
        page3.at >= UNIX_EPOCH + Duration::from_secs(reset),
        "page 3 came before the reset"
    );
    assert!(run.logs("INFO").iter().any(|m| m.contains("rate window")));
    assert!(run.logs("WARN").is_empty(), "no 429 and no retry expected");
}

#[test]
fn broken_connections_are_retried() {
    assert_retried(Action::ResetMidBody, 2, json!({}));
    assert_retried(Action::ShortBody, 2, json!({}));
}

#[test]
fn a_stalled_response_times_out_and_is_retried() {
    let started = Instant::now();
    assert_retried(
        Action::Stall(Duration::from_secs(3)),
        1,
        json!({"timeout_seconds": 0.5}),
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the stall was waited out"
    );
}

#[test]
fn unusable_200_bodies_are_retried() {
    assert_retried(Action::Body("not json at all".into()), 2, json!({}));
    assert_retried(
        Action::Body(r#"{"status":"success","errors":[]}"#.into()),
        1,
        json!({}),
    );
    assert_retried(Action::Body(r#"{"leads":[1,2]}"#.into()), 1, json!({}));
}

#[test]
fn an_unusable_body_that_persists_fails_naming_stream_and_page() {
    let mock = MockServer::start(Options::default());
    // An HTML error page that quotes the key back, longer than any quote may be.
    let html = format!(
        "<html><body>Bad gateway for key {API_KEY}{}</body></html>",
        "x".repeat(2000)
    );
    mock.add_fault(Fault::new(
        "leads",
        Some(4),
        usize::MAX,
        Action::Status(200, vec![("Content-Type".into(), "text/html".into())], html),
    ));
    let dir = TempDir::new();
    let run = read(
        &dir,
        &config(&mock.base_url()),
        Some(&["leads", "campaigns"]),
    );
    let error = run.the_error("system_error", "");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("stream leads, page 4"), "{message}");
    assert!(message.contains("<html>"), "{message}");
    assert!(
        !message.contains(&"x".repeat(201)),
        "quoted more than 200 bytes: {message}"
    );
    // The three pages before the failure stay whole, valid lines.
    assert_eq!(run.record_data("leads"), mock.records("leads")[..300]);
    assert_eq!(run.statuses("leads"), ["STARTED", "RUNNING", "INCOMPLETE"]);
    // The next stream is still attempted.
    assert_eq!(
        run.statuses("campaigns"),
        ["STARTED", "RUNNING", "COMPLETE"]
    );
    assert_key_only_in_header(&mock);
}

#[test]
fn client_errors_fail_at_once_with_the_apis_reason() {
    for code in [400, 404, 422] {
        let mock = MockServer::start(Options::default());
        let body = r#"{"status":"error","error":{"reason":"bad_params","message":"page is out of range"}}"#;
        mock.add_fault(Fault::new("leads", Some(2), usize::MAX, status(code, body)));
        let dir = TempDir::new();
        let run = read(&dir, &config(&mock.base_url()), Some(&["leads"]));
        assert_eq!(run.code, Some(1), "{code}");
        let errors = run.errors();
        assert_eq!(errors[0]["failure_type"], "system_error", "{code}");
        let message = errors[0]["message"].as_str().unwrap();
        assert!(message.contains(&format!("HTTP {code}")), "{message}");
        assert!(
            message.contains("bad_params: page is out of range"),
            "{message}"
        );
        let tries = mock.seen().iter().filter(|s| s.query == "page=2").count();
        assert_eq!(tries, 1, "{code} was retried");
    }
}

#[test]
fn a_403_is_a_rejected_key() {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new("users", None, usize::MAX, status(403, "{}")));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["users"]));
    assert_eq!(run.code, Some(1));
    assert_eq!(run.errors()[0]["failure_type"], "config_error");
    assert!(run.errors()[0]["message"]
        .as_str()
        .unwrap()
        .contains("the API key was rejected"));
    assert_eq!(mock.seen().len(), 1);
}

#[test]
fn redirects_are_never_followed() {
    let trap = Trap::start("127.0.0.1:0");
    for code in [301, 302, 307, 308] {
        let mock = MockServer::start(Options::default());
        let location = format!("http://{}/v1/leads?page=2", trap.addr);
        mock.add_fault(Fault::new(
            "leads",
            Some(2),
            usize::MAX,
            Action::Status(code, vec![("Location".into(), location)], String::new()),
        ));
        let dir = TempDir::new();
        let run = read(&dir, &config(&mock.base_url()), Some(&["leads"]));
        assert_eq!(run.code, Some(1), "{code}");
        let errors = run.errors();
        assert_eq!(errors[0]["failure_type"], "system_error");
        assert!(
            errors[0]["message"].as_str().unwrap().contains("redirect"),
            "{code}"
        );
        assert_eq!(
            mock.seen().iter().filter(|s| s.query == "page=2").count(),
            1
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        trap.hits.lock().unwrap().is_empty(),
        "a redirect was followed"
    );
}

#[test]
fn retries_exhausted_on_network_faults_is_transient() {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new(
        "leads",
        Some(2),
        usize::MAX,
        Action::ResetMidBody,
    ));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["leads"]));
    assert_eq!(run.code, Some(1));
    assert_eq!(run.errors()[0]["failure_type"], "transient_error");
    assert_eq!(run.record_data("leads"), mock.records("leads")[..100]);
    assert!(run.stdout.ends_with('\n'));
}

#[test]
fn connection_refused_is_retried_until_the_server_is_up() {
    // Reserve a port, free it, and bring the API up there only after a while.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let later = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        MockServer::start_on(&bind, Options::default())
    });
    let dir = TempDir::new();
    let mut cfg = config(&format!("http://127.0.0.1:{port}/v1/"));
    cfg["retry_schedule_seconds"] = json!([0.2, 0.4, 0.8, 1.6]);
    let run = read(&dir, &cfg, Some(&["users"]));
    let mock = later.join().unwrap();
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.record_data("users"), mock.records("users"));
    assert!(
        run.logs("WARN").iter().any(|w| w.contains("refused")),
        "{:?}",
        run.logs("WARN")
    );
}

#[test]
fn connection_refused_for_good_is_a_transient_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new();
    let run = read(
        &dir,
        &config(&format!("http://127.0.0.1:{port}/v1/")),
        Some(&["users"]),
    );
    assert_eq!(run.code, Some(1));
    assert_eq!(run.errors()[0]["failure_type"], "transient_error");
    assert_eq!(run.logs("WARN").len(), 2);
}

#[test]
fn absurd_rate_limit_headers_are_survived() {
    // Far past u64 seconds as a SystemTime: once a crash (overflow, abort).
    let huge = "18446744073709551615".to_string();
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new(
        "users",
        None,
        1,
        Action::Headers(vec![
            ("X-RateLimit-Remaining".into(), "5".into()),
            ("X-RateLimit-Reset".into(), huge.clone()),
        ]),
    ));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["users"]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.record_data("users"), mock.records("users"));
    // On a 429 it is no reset time to wait for: the schedule applies.
    let run = assert_retried(
        Action::Status(429, vec![("X-RateLimit-Reset".into(), huge)], "{}".into()),
        1,
        json!({}),
    );
    assert!(
        run.logs("WARN")[0].contains("in 0.05 s"),
        "{:?}",
        run.logs("WARN")
    );
}

#[test]
fn a_429_whose_reset_time_has_passed_follows_the_schedule() {
    let past = epoch_secs_from_now(0) - 30;
    let action = Action::Status(
        429,
        vec![("X-RateLimit-Reset".into(), past.to_string())],
        "{}".into(),
    );
    let run = assert_retried(action, 2, json!({}));
    assert!(run.logs("WARN").iter().all(|w| w.contains("in 0.05 s")));
}

/// How many times the mock was asked for leads page `page`.
fn leads_requests(mock: &MockServer, page: u64) -> usize {
    let query = format!("page={page}");
    mock.seen()
        .iter()
        .filter(|s| s.path == "leads" && s.query == query)
        .count()
}

/// A last page whose envelope says `has_more: true` before its records and
/// `false` after them: which copy counts is a guess, so the page is refused
/// (as `scan` refuses the collection, `has_more` or `next_page` given
/// twice) and asked for again; the good copy ends the stream, with every
/// record once and no request past the end.
#[test]
fn has_more_given_twice_is_refused_and_asked_for_again() {
    let mock = MockServer::start(Options::default());
    let last = mock.page_count("leads") as u64;
    let records = mock.records("leads");
    let tail = &records[(last as usize - 1) * support::mock::PAGE_SIZE..];
    let body = format!(
        r#"{{"has_more":true,"leads":[{}],"has_more":false}}"#,
        tail.join(",")
    );
    mock.add_fault(Fault::new("leads", Some(last), 1, Action::Body(body)));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["leads"]));
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.record_data("leads"), records);
    let warns = run.logs("WARN");
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(warns[0].contains("`has_more` given twice"), "{warns:?}");
    assert_eq!(leads_requests(&mock, last), 2);
    assert_eq!(
        leads_requests(&mock, last + 1),
        0,
        "no request past the end"
    );
}

/// A checked page's records go out at once, before the next page is asked
/// for. With page 4 stalled, pages 1-3 are out when the signal comes.
#[test]
fn on_a_slow_link_records_are_not_held_for_the_next_page() {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::stall("leads", 4, Duration::from_secs(20)));
    mock.add_fault(Fault::new(
        "leads",
        None,
        usize::MAX,
        Action::Stall(Duration::from_millis(20)),
    ));
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let args = ["read", "--config", &cfg, "--streams", "leads"];
    let (run, _) = interrupt_at(&mock, "page=4", "TERM", &args);
    assert_eq!(run.record_data("leads"), mock.records("leads")[..300]);
}

/// A reader that stops reading for longer than `timeout_seconds` (the
/// destination is busy) must not make a request time out: every answer is
/// read in full before the connector writes anything.
#[test]
fn a_reader_that_pauses_longer_than_the_timeout_costs_no_retry() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    // Events pages, pretty-printed, are larger than ureq's read buffer.
    let mock = MockServer::start(Options {
        pretty: true,
        ..Options::default()
    });
    let dir = TempDir::new();
    let mut cfg = config(&mock.base_url());
    cfg["timeout_seconds"] = json!(1);
    cfg["retry_schedule_seconds"] = json!([]);
    let cfg = dir.json("c.json", &cfg);
    let mut child = Command::new(BIN)
        .args(["read", "--config", &cfg, "--streams", "events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let mut text = Vec::new();
    stdout.read_to_end(&mut text).unwrap();
    let mut output = child.wait_with_output().unwrap();
    output.stdout = text;
    let run = finish(output, &[API_KEY]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert!(run.logs("WARN").is_empty(), "{:?}", run.logs("WARN"));
    assert_eq!(run.record_data("events"), mock.records("events"));
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
