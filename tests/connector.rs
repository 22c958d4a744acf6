//! spec, check, discover and read, through the release binary, against the
//! loopback mock.

use crate::support;

use serde_json::{json, Value};
use support::mock::{Action, Fault, MockServer, Options, API_KEY};
use support::*;

#[test]
fn spec_documents_every_config_key() {
    let run = run(&["spec"]);
    assert_eq!(run.code, Some(0));
    assert_eq!(run.messages.len(), 1);
    let spec = &run.messages[0]["spec"]["connectionSpecification"];
    assert_eq!(run.messages[0]["type"], "SPEC");
    for key in [
        "api_key",
        "base_url",
        "retry_schedule_seconds",
        "timeout_seconds",
    ] {
        assert!(
            spec["properties"][key]["description"].is_string(),
            "{key} undocumented"
        );
    }
    assert_eq!(spec["properties"]["api_key"]["airbyte_secret"], true);
    assert_eq!(spec["required"], json!(["api_key"]));
    let sum: f64 = spec["properties"]["retry_schedule_seconds"]["default"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!(sum >= 60.0, "default retry schedule spans only {sum} s");
    assert!(run.stderr.is_empty());
}

#[test]
fn check_accepts_a_good_key() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let run = run(&["check", "--config", &cfg]);
    assert_eq!(run.code, Some(0));
    assert_eq!(run.messages.len(), 1, "{}", run.stdout);
    assert_eq!(run.messages[0]["connectionStatus"]["status"], "SUCCEEDED");
    let seen = mock.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "users");
    assert_eq!(seen[0].api_key.as_deref(), Some(API_KEY));
    assert!(run.stderr.is_empty());
}

#[test]
fn check_reports_a_rejected_key_without_leaking_it() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let wrong = "wrong-key-0123456789";
    let mut cfg = config(&mock.base_url());
    cfg["api_key"] = json!(wrong);
    let path = dir.json("c.json", &cfg);
    let output = std::process::Command::new(BIN)
        .args(["check", "--config", &path])
        .output()
        .unwrap();
    // The mock, like PersistIq, echoes the key it was sent in its 401 body.
    let run = finish(output, &[wrong, API_KEY]);
    assert_eq!(run.code, Some(0));
    let status = run.of_type("CONNECTION_STATUS");
    assert_eq!(status.len(), 1);
    assert_eq!(status[0]["connectionStatus"]["status"], "FAILED");
    let message = status[0]["connectionStatus"]["message"].as_str().unwrap();
    assert!(message.contains("check the API key"), "{message}");
    assert_eq!(mock.seen().len(), 1, "a rejected key must not be retried");
}

#[test]
fn check_without_a_readable_json_config_is_a_config_error() {
    let dir = TempDir::new();
    let not_json = dir.file("c.json", "{api_key: nope");
    for path in [not_json.as_str(), "/nonexistent/config.json"] {
        let run = run(&["check", "--config", path]);
        run.the_error("config_error", path);
        assert!(run.of_type("CONNECTION_STATUS").is_empty());
    }
}

#[test]
fn discover_lists_the_streams_with_their_schemas() {
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &json!({"api_key": "test-key-123"}));
    let run = run(&["discover", "--config", &cfg]);
    assert_eq!(run.code, Some(0));
    assert_eq!(run.messages.len(), 1);
    let streams = run.messages[0]["catalog"]["streams"].as_array().unwrap();
    let names: Vec<&str> = streams
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, STREAMS);
    for s in streams {
        let name = s["name"].as_str().unwrap();
        assert_eq!(s["source_defined_primary_key"], json!([["id"]]));
        let incremental = ["leads", "events", "replies"].contains(&name);
        let modes = if incremental {
            json!(["full_refresh", "incremental"])
        } else {
            json!(["full_refresh"])
        };
        assert_eq!(s["supported_sync_modes"], modes, "{name}");
        // Every paged stream can go on from a checkpoint, in either mode.
        let unpaged = ["lead_statuses", "lead_fields"].contains(&name);
        assert_eq!(s["is_resumable"], !unpaged, "{name}");
        let file = std::fs::read_to_string(format!(
            "{}/schemas/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let on_disk: Value = serde_json::from_str(&file).unwrap();
        assert_eq!(
            s["json_schema"], on_disk,
            "{name}: schema differs from schemas/"
        );
    }
    // The fixes over Airbyte's schemas.
    let by_name = |n: &str| streams.iter().find(|s| s["name"] == n).unwrap()["json_schema"].clone();
    let leads = by_name("leads");
    assert_eq!(
        leads["properties"]["owner_id"]["type"],
        json!(["null", "string"])
    );
    assert_eq!(leads["properties"]["data"]["additionalProperties"], true);
    let campaigns = by_name("campaigns");
    assert!(campaigns["properties"]["stats"]["properties"]["total_prospects"].is_object());
    assert!(campaigns["properties"]["stats"]["properties"]["total_contacted"].is_null());
    assert!(by_name("users")["properties"]["mailboxes"]["items"].is_object());
}

/// Every record exactly once, byte for byte as the API sent it, in order.
#[test]
fn read_syncs_every_record_of_every_page_exactly_once() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let run = read(
        &dir,
        &config(&mock.base_url()),
        Some(&["users", "leads", "campaigns"]),
    );
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert!(run.stderr.is_empty(), "stderr on success: {}", run.stderr);
    for stream in ["users", "leads", "campaigns"] {
        let expected = mock.records(stream);
        assert!(!expected.is_empty());
        assert_eq!(
            run.record_data(stream),
            expected,
            "{stream}: records differ"
        );
    }
    assert_eq!(mock.records("leads").len(), 1234);
    // 13 pages of leads: page 10 and beyond (where Airbyte's connector broke) were read.
    let lead_pages: Vec<String> = mock
        .seen()
        .iter()
        .filter(|s| s.path == "leads")
        .map(|s| s.query.clone())
        .collect();
    let wanted: Vec<String> = (1..=13).map(|n| format!("page={n}")).collect();
    assert_eq!(lead_pages, wanted);
    assert!(mock
        .seen()
        .iter()
        .all(|s| s.api_key.as_deref() == Some(API_KEY)));
}

#[test]
fn read_emits_the_protocol_sequence_per_stream() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let run = read(
        &dir,
        &config(&mock.base_url()),
        Some(&["campaigns", "users"]),
    );
    assert_eq!(run.code, Some(0));
    // Only the catalog's streams, in catalog order.
    let order: Vec<&str> = run
        .of_type("RECORD")
        .iter()
        .map(|m| m["record"]["stream"].as_str().unwrap())
        .fold(Vec::new(), |mut acc, s| {
            if acc.last() != Some(&s) {
                acc.push(s);
            }
            acc
        });
    assert_eq!(order, ["campaigns", "users"]);
    for stream in ["campaigns", "users"] {
        let kinds: Vec<String> = run
            .messages
            .iter()
            .filter_map(|m| match m["type"].as_str().unwrap() {
                "RECORD" if m["record"]["stream"] == stream => Some("RECORD".to_string()),
                "STATE" if m["state"]["stream"]["stream_descriptor"]["name"] == stream => {
                    Some("STATE".into())
                }
                "TRACE" if m["trace"]["stream_status"]["stream_descriptor"]["name"] == stream => {
                    Some(
                        m["trace"]["stream_status"]["status"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                    )
                }
                _ => None,
            })
            .collect();
        // A full read checkpoints after each page but the last, whose
        // records the final STATE covers.
        let n = mock.records(stream).len();
        let pages = n.div_ceil(support::mock::PAGE_SIZE);
        let mut expected = vec!["STARTED".to_string(), "RUNNING".to_string()];
        for page in 0..pages {
            let on_page = (n - page * support::mock::PAGE_SIZE).min(support::mock::PAGE_SIZE);
            expected.extend(std::iter::repeat_n("RECORD".to_string(), on_page));
            expected.push("STATE".to_string());
        }
        expected.push("COMPLETE".to_string());
        assert_eq!(kinds, expected, "{stream}");
    }
    // recordCount is a number with a decimal point, the records sent
    // since the stream's previous STATE: together, every record.
    let mut counted = std::collections::HashMap::new();
    for line in run
        .stdout
        .lines()
        .filter(|l| l.starts_with(r#"{"type":"STATE""#))
    {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["state"]["type"], "STREAM");
        let name = v["state"]["stream"]["stream_descriptor"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let n = v["state"]["sourceStats"]["recordCount"].as_f64().unwrap();
        assert!(line.contains(&format!(r#""recordCount":{n:.1}"#)), "{line}");
        *counted.entry(name).or_insert(0.0) += n;
    }
    for stream in ["campaigns", "users"] {
        assert_eq!(
            counted[stream],
            mock.records(stream).len() as f64,
            "{stream}"
        );
    }
    for rec in run.of_type("RECORD") {
        assert!(
            rec["record"]["emitted_at"].is_u64(),
            "emitted_at must be integer ms"
        );
        assert!(rec["record"]["emitted_at"].as_u64().unwrap() > 1_700_000_000_000);
    }
    assert!(!run.logs("INFO").is_empty(), "a summary LOG is expected");
    assert!(
        mock.seen().iter().all(|s| s.path != "leads"),
        "leads was not in the catalog"
    );
}

#[test]
fn read_keeps_record_keys_in_the_order_the_api_sent_them() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["leads"]));
    let first = &run.record_data("leads")[0];
    // Not alphabetical: a sorted map would put "bounced" first.
    assert!(
        first.starts_with(r#"{"id":"l_000000","status":"#),
        "{first}"
    );
}

#[test]
fn read_logs_progress_pages_and_records() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["leads"]));
    let info = run.logs("INFO");
    assert!(
        info.iter()
            .any(|m| m.contains("10 pages, 1000 records so far")),
        "{info:?}"
    );
    assert!(
        info.iter().any(|m| m.contains("1234 records in 13 pages")),
        "{info:?}"
    );
    assert!(
        info.iter().any(|m| m.starts_with("sync finished")),
        "{info:?}"
    );
}

#[test]
fn empty_streams_still_report_running_state_and_complete() {
    let mock = MockServer::start(Options {
        leads: 0,
        campaigns: 0,
        ..Options::default()
    });
    let dir = TempDir::new();
    let run = read(
        &dir,
        &config(&mock.base_url()),
        Some(&["leads", "campaigns"]),
    );
    assert_eq!(run.code, Some(0));
    assert!(run.of_type("RECORD").is_empty());
    for stream in ["leads", "campaigns"] {
        assert_eq!(run.statuses(stream), ["STARTED", "RUNNING", "COMPLETE"]);
    }
    assert_eq!(run.stdout.matches(r#""recordCount":0.0"#).count(), 2);
}

#[test]
fn an_unknown_stream_is_incomplete_and_the_run_goes_on() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let run = read(
        &dir,
        &config(&mock.base_url()),
        Some(&["no_such_stream", "users"]),
    );
    assert_eq!(run.code, Some(0));
    assert_eq!(run.statuses("no_such_stream"), ["INCOMPLETE"]);
    assert!(run
        .logs("WARN")
        .iter()
        .any(|m| m.contains("no_such_stream")));
    assert_eq!(run.statuses("users"), ["STARTED", "RUNNING", "COMPLETE"]);
    assert_eq!(run.record_data("users"), mock.records("users"));
}

#[test]
fn incremental_mode_and_pyairbyte_state_files_are_accepted() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let cat = dir.json("cat.json", &catalog(&["users"], "incremental"));
    let states = [
        "[]".to_string(),
        json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "users", "namespace": null},
            "stream_state": {"__ab_no_cursor_state_message": true}}, "global_": null, "data": null}])
        .to_string(),
    ];
    for state in states {
        let st = dir.file("state.json", &state);
        let run = run(&["read", "--config", &cfg, "--catalog", &cat, "--state", &st]);
        assert_eq!(run.code, Some(0), "{state}: {}", run.stdout);
        assert_eq!(run.record_data("users"), mock.records("users"));
    }
}

#[test]
fn read_with_a_rejected_key_fails_the_stream_as_a_config_error() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let wrong = "not-the-key-5551212";
    let mut cfg = config(&mock.base_url());
    cfg["api_key"] = json!(wrong);
    let cfg = dir.json("c.json", &cfg);
    let cat = dir.json("cat.json", &catalog(&["leads"], "full_refresh"));
    let output = std::process::Command::new(BIN)
        .args(["read", "--config", &cfg, "--catalog", &cat])
        .output()
        .unwrap();
    let run = finish(output, &[wrong]);
    let error = run.the_error("config_error", "");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("the API key was rejected"));
    assert_eq!(error["stream_descriptor"]["name"], "leads");
    assert_eq!(run.statuses("leads"), ["STARTED", "INCOMPLETE"]);
    assert_eq!(mock.seen().len(), 1, "401 must not be retried");
}

#[test]
fn a_429_is_retried_and_no_record_is_lost_or_doubled() {
    let mock = MockServer::start(Options::default());
    let body = r#"{"error":{"reason":"too_many_requests","message":"You performed more than 100 requests per minute."}}"#;
    mock.add_fault(Fault::new(
        "leads",
        Some(3),
        2,
        Action::Status(429, vec![], body.into()),
    ));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["leads"]));
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.record_data("leads"), mock.records("leads"));
    let warns = run.logs("WARN");
    assert_eq!(warns.len(), 2, "{warns:?}");
    assert!(
        warns[0].contains("page 3") && warns[0].contains("429"),
        "{warns:?}"
    );
    let page3 = mock
        .seen()
        .iter()
        .filter(|s| s.path == "leads" && s.query == "page=3")
        .count();
    assert_eq!(page3, 3);
}

#[test]
fn a_429_that_never_ends_fails_with_a_transient_error() {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new(
        "leads",
        Some(2),
        usize::MAX,
        Action::Status(429, vec![], "{}".into()),
    ));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["leads", "users"]));
    assert_ne!(run.code, Some(0));
    let errors = run.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["failure_type"], "transient_error");
    // Each wait on the rate limit says so; without a reset time, no quota_reset.
    assert_eq!(
        run.statuses("leads"),
        ["STARTED", "RUNNING", "RUNNING", "RUNNING", "INCOMPLETE"]
    );
    let limited = run.status_reasons("leads");
    assert_eq!(limited, vec![json!([{"type": "RATE_LIMITED"}]); 2]);
    // Page 1 was written before the failure; the next stream still ran.
    assert_eq!(run.record_data("leads").len(), 100);
    assert_eq!(run.statuses("users"), ["STARTED", "RUNNING", "COMPLETE"]);
    // One try and the schedule's two retries.
    let tries = mock
        .seen()
        .iter()
        .filter(|s| s.path == "leads" && s.query == "page=2")
        .count();
    assert_eq!(tries, 3);
}

#[test]
fn next_page_is_never_followed_off_origin() {
    let trap = mock::Trap::start("127.0.0.1:0");
    let mock = MockServer::start(Options::default());
    // The last page claims more pages follow, at another host.
    mock.add_fault(Fault::new(
        "campaigns",
        Some(2),
        1,
        Action::NextPage(format!("http://{}/v1/campaigns?page=3", trap.addr)),
    ));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["campaigns"]));
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.record_data("campaigns"), mock.records("campaigns"));
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        trap.hits.lock().unwrap().is_empty(),
        "the connector contacted next_page's host"
    );
    // Page 3 was asked of the configured origin instead (and was empty).
    assert!(mock
        .seen()
        .iter()
        .any(|s| s.path == "campaigns" && s.query == "page=3"));
}

#[test]
fn endless_empty_pages_end_in_an_error_not_a_hang() {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new(
        "campaigns",
        None,
        usize::MAX,
        Action::EmptyHasMore,
    ));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["campaigns"]));
    run.the_error("system_error", "");
    // Three empty pages, each asked for again once in case it was a glitch.
    assert!(mock.seen().len() <= 6, "{} requests", mock.seen().len());
}

#[test]
fn usage_errors_exit_2_with_a_message_on_stderr() {
    for args in [&["frobnicate"][..], &["read"], &["spec", "--bogus"], &[]] {
        let run = run(args);
        assert_eq!(run.code, Some(2), "{args:?}");
        assert!(run.stdout.is_empty(), "{args:?}");
        assert!(run.stderr.contains("Usage:"), "{args:?}: {}", run.stderr);
    }
    let help = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8(help.stdout).unwrap();
    for word in [
        "spec",
        "check",
        "discover",
        "read",
        "api_key",
        "retry_schedule_seconds",
        "Exit codes",
    ] {
        assert!(help.contains(word), "--help lacks {word}");
    }
    let version = std::process::Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap();
    // The commit and the target are build.rs's, checked against git in
    // tests/packaging.rs.
    assert_eq!(
        String::from_utf8(version.stdout).unwrap().trim(),
        format!(
            "source-persistiq {} (commit {}, {})",
            env!("CARGO_PKG_VERSION"),
            env!("SPQ_COMMIT"),
            env!("SPQ_TARGET")
        )
    );
}
