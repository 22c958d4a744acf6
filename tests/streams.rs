//! The streams beyond Airbyte's three, and incremental leads and events:
//! complete and exact records, cursors that move only when a stream
//! completes, and resumption from a mid-stream checkpoint.

use crate::support;

use serde_json::{json, Value};
use std::time::Duration;
use support::mock::{time, Action, Fault, MockServer, Options};
use support::*;

#[test]
fn every_new_stream_arrives_complete_and_exact() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), None);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    // campaign_leads, which has no single list path, is checked below;
    // replies, read per campaign too, in tests/replies.rs.
    for stream in STREAMS
        .into_iter()
        .filter(|s| !["campaign_leads", "replies"].contains(s))
    {
        let expected = mock.records(stream);
        assert!(!expected.is_empty(), "{stream}");
        assert_eq!(run.record_data(stream), expected, "{stream}");
        assert_eq!(
            run.statuses(stream),
            ["STARTED", "RUNNING", "COMPLETE"],
            "{stream}"
        );
    }
    assert_eq!(run.record_data("campaign_leads"), mock.campaign_leads());
    assert!(
        mock.campaign_leads().len() > 200,
        "the big campaign spans two pages"
    );
    // Unpaged lists are asked for once, without a page parameter.
    for path in ["lead_statuses", "lead_fields"] {
        let asked: Vec<_> = mock.seen().into_iter().filter(|s| s.path == path).collect();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].query, "");
    }
    // Events come 500 a page: 1234 events are 3 pages.
    assert_eq!(mock.seen().iter().filter(|s| s.path == "events").count(), 3);
}

#[test]
fn a_campaign_deleted_mid_sync_is_skipped_with_a_warning() {
    let mock = MockServer::start(Options::default());
    let gone = "campaigns/c_000004/leads";
    let gone_records = mock.records(gone);
    assert!(!gone_records.is_empty());
    let all = mock.campaign_leads();
    // Deleted once listed, just before its leads are asked for.
    mock.add_fault(Fault::new(
        gone,
        None,
        1,
        Action::Change(support::mock::Change::DeleteCampaign(4)),
    ));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["campaign_leads"]));
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    let expected: Vec<String> = all
        .into_iter()
        .filter(|r| !gone_records.contains(r))
        .collect();
    assert_eq!(run.record_data("campaign_leads"), expected);
    let warns = run.logs("WARN");
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(warns[0].contains("c_000004"), "{warns:?}");
    assert_eq!(
        run.statuses("campaign_leads"),
        ["STARTED", "RUNNING", "COMPLETE"]
    );
}

#[test]
fn discover_declares_the_incremental_cursors() {
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &json!({"api_key": "test-key-123"}));
    let run = run(&["discover", "--config", &cfg]);
    let streams = run.messages[0]["catalog"]["streams"]
        .as_array()
        .unwrap()
        .clone();
    let get = |n: &str| streams.iter().find(|s| s["name"] == n).unwrap().clone();
    let events = get("events");
    assert_eq!(events["source_defined_cursor"], true);
    assert_eq!(events["default_cursor_field"], json!(["created_at"]));
    assert!(events["json_schema"]["properties"]["created_at"].is_object());
    let leads = get("leads");
    assert_eq!(leads["source_defined_cursor"], true);
    // The leads cursor is the sync's start time, not a record field: none is named.
    assert!(leads["default_cursor_field"].is_null());
    // A paged full-refresh stream's cursor is its page: declared, not named.
    assert_eq!(get("tags")["source_defined_cursor"], true);
    assert!(get("tags")["default_cursor_field"].is_null());
    assert!(get("lead_statuses")["source_defined_cursor"].is_null());
}

#[test]
fn events_second_incremental_run_gets_only_new_events() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let first = read_incremental(&mock, &dir, "events", Some(&json!([])));
    assert_eq!(first.code, Some(0));
    let all = mock.records("events");
    assert_eq!(first.record_data("events"), all);
    // A checkpoint after each page but the last, then the final state.
    let st = states(&first, "events");
    assert_eq!(st.len(), 3, "{st:?}");
    let started = &st[0].0["resume"]["started"];
    assert_eq!(
        st[0].0,
        json!({"created_at": null, "resume": {"page": 2, "cursor": "2026-03-01T08:19:00.000Z", "started": started}})
    );
    // When the sync started, less 5 minutes: the cursor's ceiling.
    let started = support::mock::time::parse(started.as_str().unwrap())
        .unwrap()
        .secs;
    let now = support::mock::time::now_secs();
    assert!(
        (now - 400..=now - 300).contains(&started),
        "{started} vs {now}"
    );
    assert_eq!(st.iter().map(|(_, n)| n).sum::<f64>(), all.len() as f64);
    let last_created: Value = serde_json::from_str(all.last().unwrap()).unwrap();
    assert_eq!(st[2].0, json!({"created_at": last_created["created_at"]}));

    mock.add_events(7);
    // The STATE lines as the run printed them, saved whole, are a state file too.
    let printed: Vec<Value> = first.of_type("STATE").into_iter().cloned().collect();
    let second = read_incremental(&mock, &dir, "events", Some(&Value::Array(printed)));
    assert!(second.logs("WARN").is_empty(), "{:?}", second.logs("WARN"));
    assert_eq!(second.code, Some(0));
    let now_all = mock.records("events");
    // The API resends the event at the cursor (start_at is inclusive), then the new ones.
    assert_eq!(second.record_data("events"), now_all[all.len() - 1..]);
    let asked = mock
        .seen()
        .into_iter()
        .rev()
        .find(|s| s.path == "events")
        .unwrap();
    assert_eq!(
        asked.query,
        "page=1&start_at=2026-03-01T20%3A33%3A00%2E000Z"
    );
}

#[test]
fn events_before_the_cursor_are_never_emitted_twice() {
    let dir = TempDir::new();
    // A server that ignores start_at resends everything: nothing before the cursor is re-emitted.
    let state = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "events"},
        "stream_state": {"created_at": "2026-03-01T20:00:00.000Z"}}}]);
    let mock = MockServer::start(Options::default());
    let all = mock.records("events");
    let unfiltered = format!(
        r#"{{"status":"success","errors":[],"has_more":false,"next_page":null,"events":[{}]}}"#,
        all.join(",")
    );
    mock.add_fault(Fault::new("events", Some(1), 1, Action::Body(unfiltered)));
    let run = read_incremental(&mock, &dir, "events", Some(&state));
    assert_eq!(run.code, Some(0));
    let expected: Vec<String> = all
        .iter()
        .filter(|r| {
            serde_json::from_str::<Value>(r).unwrap()["created_at"]
                .as_str()
                .unwrap()
                >= "2026-03-01T20:00:00.000Z"
        })
        .cloned()
        .collect();
    assert_eq!(expected.len(), all.len() - 1200);
    assert_eq!(run.record_data("events"), expected);
}

#[test]
fn leads_second_incremental_run_gets_only_updated_leads() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let before = std::time::SystemTime::now();
    let first = read_incremental(&mock, &dir, "leads", Some(&json!([])));
    assert_eq!(first.code, Some(0));
    assert_eq!(first.record_data("leads"), mock.records("leads"));
    let st = states(&first, "leads");
    assert_eq!(st.len(), 13, "12 checkpoints and the final state");
    let cursor = st.last().unwrap().0["updated_after"]
        .as_str()
        .unwrap()
        .to_string();
    // The cursor is this sync's start, set back by the 5-minute safety margin.
    let started = before
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let cursor_secs = time::parse(&cursor).unwrap().secs;
    assert!(
        (started - 302..=started - 298).contains(&cursor_secs),
        "{cursor}"
    );
    // Every checkpoint carries the cursor this run started from (none) and
    // the one it will set, so a resumed run cannot move it early.
    assert_eq!(
        st[0].0,
        json!({"updated_after": null, "resume": {"page": 2, "cursor": cursor}})
    );

    mock.touch_leads(&[3, 500, 1200]);
    let second = read_incremental(&mock, &dir, "leads", Some(&state_file(&first)));
    assert_eq!(second.code, Some(0));
    let now_all = mock.records("leads");
    assert_eq!(
        second.record_data("leads"),
        [
            now_all[3].clone(),
            now_all[500].clone(),
            now_all[1200].clone()
        ]
    );
    let asked = mock
        .seen()
        .into_iter()
        .rev()
        .find(|s| s.path == "leads")
        .unwrap();
    assert!(
        asked.query.starts_with("page=1&updated_after="),
        "{}",
        asked.query
    );
}

#[test]
fn start_date_bounds_the_first_incremental_run() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let run = read_mode(
        &mock,
        &dir,
        &["events", "leads"],
        "incremental",
        None,
        json!({"start_date": "2026-03-01T20:00:00Z"}),
    );
    assert_eq!(run.code, Some(0));
    assert_eq!(run.record_data("events").len(), 1234 - 1200);
    let events_q = mock
        .seen()
        .into_iter()
        .find(|s| s.path == "events")
        .unwrap()
        .query;
    assert_eq!(events_q, "page=1&start_at=2026-03-01T20%3A00%3A00Z");
    let leads_q = mock
        .seen()
        .into_iter()
        .find(|s| s.path == "leads")
        .unwrap()
        .query;
    assert_eq!(leads_q, "page=1&updated_after=2026-03-01T20%3A00%3A00Z");
    // Every mock lead was last updated before the start date.
    assert!(run.record_data("leads").is_empty());
    // Full refresh ignores start_date.
    let full = read_mode(
        &mock,
        &dir,
        &["events"],
        "full_refresh",
        None,
        json!({"start_date": "2026-03-01T20:00:00Z"}),
    );
    assert_eq!(full.record_data("events"), mock.records("events"));
}

/// A run killed mid-stream and resumed from its last STATE has, together
/// with the first run, emitted every record exactly once.
#[test]
fn a_killed_incremental_run_resumes_from_its_last_checkpoint() {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::stall("leads", 6, Duration::from_secs(30)));
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let cat = dir.json("cat.json", &catalog(&["leads"], "incremental"));
    let (first, _) = interrupt_at(
        &mock,
        "page=6",
        "TERM",
        &["read", "--config", &cfg, "--catalog", &cat],
    );
    // A checkpoint after each of pages 1-5, written with the page.
    let first_states = states(&first, "leads");
    assert_eq!(first_states.len(), 5, "one checkpoint per page");
    for (page, state) in first_states.iter().enumerate() {
        assert_eq!(state.0["resume"]["page"], page + 2);
    }

    let second = read_incremental(&mock, &dir, "leads", Some(&state_file(&first)));
    assert_eq!(second.code, Some(0));
    let mut together = first.record_data("leads");
    together.extend(second.record_data("leads"));
    assert_eq!(
        together,
        mock.records("leads"),
        "every lead exactly once across the two runs"
    );
    assert!(second.logs("INFO").iter().any(|m| m.contains("resuming")));
    // The cursor set at the end is the interrupted run's start, not the resumed run's.
    let final_state = states(&second, "leads").last().unwrap().0.clone();
    assert_eq!(
        final_state["updated_after"],
        first_states[0].0["resume"]["cursor"]
    );
}

#[test]
fn malformed_incremental_state_is_a_config_error() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    for bad in [
        json!({"created_at": "yesterday"}),
        json!({"created_at": 17}),
        json!("a string"),
        json!({"created_at": null, "resume": {"page": 0}}),
        json!({"created_at": null, "resume": "page 3"}),
    ] {
        let run = read_incremental(&mock, &dir, "events", Some(&stream_state("events", bad)));
        run.the_error_saying("config_error", "state of stream events");
        assert!(run.of_type("RECORD").is_empty());
    }
    assert!(mock.seen().is_empty());
}

#[test]
fn a_child_endpoint_that_is_404_for_every_parent_fails_the_stream() {
    let mock = MockServer::start(Options {
        campaigns: 4,
        ..Options::default()
    });
    for c in 0..4 {
        mock.add_fault(Fault::new(
            &format!("campaigns/c_00000{c}/leads"),
            None,
            usize::MAX,
            Action::Status(404, vec![], "{}".into()),
        ));
    }
    let dir = TempDir::new();
    let run = read(
        &dir,
        &config(&mock.base_url()),
        Some(&["campaign_leads", "tags"]),
    );
    assert_eq!(run.code, Some(1));
    let errors = run.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["failure_type"], "system_error");
    // The first campaign is still listed: its 404 is no deletion.
    assert!(errors[0]["message"]
        .as_str()
        .unwrap()
        .contains("c_000000 is still listed"));
    assert_eq!(
        run.statuses("campaign_leads"),
        ["STARTED", "RUNNING", "INCOMPLETE"]
    );
    assert_eq!(run.statuses("tags"), ["STARTED", "RUNNING", "COMPLETE"]);
}

#[test]
fn a_next_page_url_without_has_more_means_more_pages() {
    let mock = MockServer::start(Options::default());
    let tags = mock.records("tags");
    let (first, second) = tags.split_at(5);
    let page = |records: &[String], next: &str| {
        format!(
            r#"{{"status":"success","errors":[],{next}"tags":[{}]}}"#,
            records.join(",")
        )
    };
    let next = r#""next_page":"https://api.persistiq.com/v1/tags?page=2","#;
    mock.add_fault(Fault::new(
        "tags",
        Some(1),
        1,
        Action::Body(page(first, next)),
    ));
    mock.add_fault(Fault::new(
        "tags",
        Some(2),
        1,
        Action::Body(page(second, "")),
    ));
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["tags"]));
    assert_eq!(run.code, Some(0));
    assert_eq!(run.record_data("tags"), tags);
    assert_eq!(
        mock.seen().len(),
        2,
        "no third page without has_more or next_page"
    );
}
