//! Resumable full refresh: a full read that is killed goes on, given its
//! last STATE, from where it stopped; `discover` tells the platform so.
//! Every case runs the release binary against the mock.

use crate::support;

use serde_json::{json, Value};
use support::mock::{self, Change, MockServer, Options, BIG_REPLIES_CAMPAIGN};
use support::*;

/// Records of `want` that `got` lacks, and records `got` holds twice.
fn missing_and_twice(got: &[String], want: &[String]) -> (usize, usize) {
    let (got, want) = (ids(got), ids(want));
    let missing = want
        .iter()
        .filter(|i| got.binary_search(i).is_err())
        .count();
    let twice = got.windows(2).filter(|w| w[0] == w[1]).count();
    (missing, twice)
}

/// A full read of `stream`, from `state` (a state file) if given.
fn full_read(mock: &MockServer, dir: &TempDir, stream: &str, state: Option<&Value>) -> Run {
    read_mode(mock, dir, &[stream], "full_refresh", state, json!({}))
}

/// A full read of `stream` (with `state` if given), killed while the mock
/// stalls the request `stalled` names; the run so far.
fn killed_full_read(
    mock: &MockServer,
    dir: &TempDir,
    stream: &str,
    state: Option<&Value>,
    stalled: (&str, u64),
) -> Run {
    killed_read(mock, dir, stream, "full_refresh", state, stalled)
}

/// The requests the mock saw for `path` from request number `from` on.
fn pages_asked(mock: &MockServer, from: usize, path: &str) -> Vec<u64> {
    mock.seen()[from..]
        .iter()
        .filter(|s| s.path == path)
        .map(|s| s.param("page").and_then(|p| p.parse().ok()).unwrap_or(1))
        .collect()
}

#[test]
fn discover_declares_every_paged_stream_resumable() {
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config("http://127.0.0.1:9/v1/"));
    let run = run(&["discover", "--config", &cfg]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let catalog = run.of_type("CATALOG");
    let streams = catalog[0]["catalog"]["streams"].as_array().unwrap();
    for s in streams {
        let name = s["name"].as_str().unwrap();
        let unpaged = matches!(name, "lead_statuses" | "lead_fields");
        assert_eq!(s["is_resumable"], json!(!unpaged), "{name}: {s}");
        // The protocol requires a source-defined cursor on a resumable stream.
        if unpaged {
            assert!(s.get("source_defined_cursor").is_none(), "{name}: {s}");
        } else {
            assert_eq!(s["source_defined_cursor"], json!(true), "{name}: {s}");
        }
    }
    assert_eq!(streams.len(), 10);
}

#[test]
fn a_killed_full_read_of_a_paged_list_goes_on_from_its_last_page() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let first = killed_full_read(&mock, &dir, "leads", None, ("leads", 6));
    // A STATE after each page written, the page to go on from: the last
    // page written, so that records deleted meanwhile cannot slip past it,
    // with the last record written there, to find it again.
    let written: Vec<Value> = states(&first, "leads").into_iter().map(|s| s.0).collect();
    let last_lead = ids(&first.record_data("leads")).pop().unwrap();
    assert_eq!(
        written.last(),
        Some(&json!({"full_refresh": {"page": 5, "last": last_lead}})),
        "{written:?}"
    );
    assert_eq!(written.len(), 5, "one STATE per page: {written:?}");
    assert_eq!(first.record_data("leads").len(), 5 * mock::PAGE_SIZE);

    let from = mock.seen().len();
    let second = full_read(&mock, &dir, "leads", Some(&state_file(&first)));
    assert_eq!(second.code, Some(0), "{}", second.stdout);
    let asked = pages_asked(&mock, from, "leads");
    assert_eq!(
        asked.first(),
        Some(&5),
        "the resumed read starts at page 5: {asked:?}"
    );
    assert!(
        second
            .logs("INFO")
            .iter()
            .any(|l| l.contains("resuming an interrupted full refresh")),
        "{:?}",
        second.logs("INFO")
    );
    assert_eq!(
        final_state(&second, "leads"),
        json!({"__ab_full_refresh_sync_complete": true})
    );
    let mut together = first.record_data("leads");
    together.extend(second.record_data("leads"));
    let (missing, twice) = missing_and_twice(&together, &mock.records("leads"));
    assert_eq!(missing, 0);
    assert_eq!(twice, mock::PAGE_SIZE, "only page 5 is read twice");
}

#[test]
fn a_killed_full_read_of_campaign_leads_goes_on_from_the_campaign_it_stopped_in() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let campaigns = mock.campaign_ids();
    let c40 = format!("campaigns/{}/leads", campaigns[40]);
    let first = killed_full_read(&mock, &dir, "campaign_leads", None, (&c40, 1));
    let last = states(&first, "campaign_leads").pop().expect("a STATE").0;
    let done = last["full_refresh"]["done"].as_array().expect("done").len();
    assert!(done >= 20, "campaigns before the 41st are done: {last}");
    assert!(last["full_refresh"].get("page").is_none(), "{last}");

    let from = mock.seen().len();
    let second = full_read(&mock, &dir, "campaign_leads", Some(&state_file(&first)));
    assert_eq!(second.code, Some(0), "{}", second.stdout);
    let asked_again = mock.seen()[from..]
        .iter()
        .filter(|s| s.path == format!("campaigns/{}/leads", campaigns[1]))
        .count();
    assert_eq!(
        asked_again, 0,
        "a campaign read to its end is not read again"
    );
    let mut together = first.record_data("campaign_leads");
    together.extend(second.record_data("campaign_leads"));
    // The campaign it stopped in had written nothing: exactly once.
    assert_eq!(missing_and_twice(&together, &mock.campaign_leads()), (0, 0));
    assert_eq!(ids(&together).len(), mock.campaign_leads().len());
}

#[test]
fn a_killed_full_read_of_replies_goes_on_from_the_page_of_its_campaign() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let big = mock::replies_path(BIG_REPLIES_CAMPAIGN);
    let first = killed_full_read(&mock, &dir, "replies", None, (&big, 3));
    let last = states(&first, "replies").pop().expect("a STATE").0;
    assert_eq!(last["full_refresh"]["page"], json!(2), "{last}");
    assert_eq!(last["full_refresh"]["parent"], json!("c_000005"), "{last}");

    let from = mock.seen().len();
    let second = full_read(&mock, &dir, "replies", Some(&state_file(&first)));
    assert_eq!(second.code, Some(0), "{}", second.stdout);
    assert_eq!(pages_asked(&mock, from, &big).first(), Some(&2));
    let mut together = first.record_data("replies");
    together.extend(second.record_data("replies"));
    let (missing, twice) = missing_and_twice(&together, &mock.replies());
    assert_eq!(missing, 0);
    assert_eq!(
        twice,
        mock::PAGE_SIZE,
        "only page 2 of the big campaign twice"
    );
}

#[test]
fn a_complete_or_empty_state_reads_everything_from_page_1() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    for given in [
        json!({"__ab_full_refresh_sync_complete": true}),
        json!({"__ab_no_cursor_state_message": true}),
        json!({}),
        // An incremental checkpoint: its pages are of a filtered list.
        json!({"updated_after": null, "resume": {"page": 7, "cursor": null}}),
    ] {
        let from = mock.seen().len();
        let run = full_read(
            &mock,
            &dir,
            "leads",
            Some(&stream_state("leads", given.clone())),
        );
        assert_eq!(run.code, Some(0), "{given}: {}", run.stdout);
        assert_eq!(
            pages_asked(&mock, from, "leads").first(),
            Some(&1),
            "{given}"
        );
        assert_eq!(
            ids(&run.record_data("leads")),
            ids(&mock.records("leads")),
            "{given}"
        );
    }
}

#[test]
fn malformed_full_refresh_states_are_config_errors_naming_the_stream() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let cases = [
        ("leads", json!([1]), "must be a JSON object"),
        (
            "leads",
            json!({"full_refresh": 5}),
            "`full_refresh` must be an object",
        ),
        (
            "leads",
            json!({"full_refresh": {"page": 0}}),
            "`full_refresh.page`",
        ),
        (
            "tags",
            json!({"full_refresh": {"page": "2"}}),
            "`full_refresh.page`",
        ),
        (
            "campaign_leads",
            json!({"full_refresh": {"page": 2}}),
            "`full_refresh.parent`",
        ),
        (
            "campaign_leads",
            json!({"full_refresh": {"done": "c_000001"}}),
            "`full_refresh.done`",
        ),
        (
            "leads",
            json!({"full_refresh": {"page": 2, "last": 7}}),
            "`full_refresh.last`",
        ),
        (
            "replies",
            json!({"full_refresh": {"parent": "c_000005", "page": 2, "done": ["c_000005"]}}),
            "also in `full_refresh.done`",
        ),
    ];
    for (stream, given, words) in cases {
        let run = full_read(
            &mock,
            &dir,
            stream,
            Some(&stream_state(stream, given.clone())),
        );
        assert_ne!(run.code, Some(0), "{stream} {given}");
        let message = run.the_error_saying("config_error", words);
        assert!(message.contains(stream), "{stream} {given}: {message}");
        assert!(run.of_type("RECORD").is_empty(), "{stream} {given}");
    }
}

#[test]
fn a_state_whose_campaign_is_gone_reads_every_campaign_not_done_with_a_warning() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let done: Vec<String> = mock.campaign_ids()[..10].to_vec();
    let state = json!({"full_refresh": {"parent": "c_gone00", "page": 3, "done": done}});
    let run = full_read(
        &mock,
        &dir,
        "campaign_leads",
        Some(&stream_state("campaign_leads", state)),
    );
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert!(
        run.logs("WARN")
            .iter()
            .any(|l| l.contains("no longer listed")),
        "{:?}",
        run.logs("WARN")
    );
    let want: Vec<String> = mock
        .campaign_leads()
        .into_iter()
        .filter(|r| {
            !done
                .iter()
                .any(|c| r.contains(&format!("\"campaign_id\":\"{c}\"")))
        })
        .collect();
    assert_eq!(ids(&run.record_data("campaign_leads")), ids(&want));
}

#[test]
fn an_incremental_resume_page_past_the_end_is_not_read_again() {
    // An incremental checkpoint names the next page, never read: empty, it
    // ends the list, and what the run wrote before is not written again.
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let state = json!({"created_at": null, "resume": {"page": 40, "cursor": null}});
    let run = read_mode(
        &mock,
        &dir,
        &["events"],
        "incremental",
        Some(&stream_state("events", state)),
        json!({}),
    );
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert!(run.record_data("events").is_empty());
    assert!(run.logs("WARN").is_empty(), "{:?}", run.logs("WARN"));
}

#[test]
fn a_resume_page_now_past_the_end_reads_the_list_again_with_a_warning() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let run = full_read(
        &mock,
        &dir,
        "leads",
        Some(&stream_state(
            "leads",
            json!({"full_refresh": {"page": 40}}),
        )),
    );
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert!(
        run.logs("WARN").iter().any(|l| l.contains("past the end")),
        "{:?}",
        run.logs("WARN")
    );
    assert_eq!(ids(&run.record_data("leads")), ids(&mock.records("leads")));
}

/// Deletions between the killed run and its resume, before the resume
/// point, move records back across page bounds. Measured here; the README
/// quotes it. Fewer than a page: the page read again holds them. More: the
/// last record written is no longer on that page, and the list is read
/// again from page 1. No record is lost either way.
#[test]
fn records_deleted_before_the_resume_point_cost_no_record() {
    for deleted in [10, 100, 150] {
        let mock = MockServer::start(Options::default());
        let dir = TempDir::new();
        let first = killed_full_read(&mock, &dir, "leads", None, ("leads", 6));
        mock.change(&Change::DeleteRecords {
            path: "leads".into(),
            at: (0..deleted).collect(),
        });
        let second = full_read(&mock, &dir, "leads", Some(&state_file(&first)));
        assert_eq!(second.code, Some(0), "{}", second.stdout);
        let mut together = first.record_data("leads");
        together.extend(second.record_data("leads"));
        let now = mock.records("leads");
        let (missing, twice) = missing_and_twice(&together, &now);
        println!(
            "{deleted} leads deleted from page 1 before resuming at page 5: {missing} of the {} \
             remaining never written, {twice} written twice",
            now.len()
        );
        assert_eq!(missing, 0, "{deleted} deleted");
        let again = second
            .logs("WARN")
            .iter()
            .any(|l| l.contains("no longer holds record") && l.contains("from page 1"));
        let written_first = 5 * mock::PAGE_SIZE;
        if deleted < mock::PAGE_SIZE {
            assert!(!again, "{deleted} deleted: {:?}", second.logs("WARN"));
            assert_eq!(twice, mock::PAGE_SIZE - deleted);
        } else {
            assert!(again, "{deleted} deleted: {:?}", second.logs("WARN"));
            assert_eq!(twice, written_first - deleted);
        }
    }
}
