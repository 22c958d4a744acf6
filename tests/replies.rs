//! The `replies` stream: every campaign's replies, read per
//! campaign like `campaign_leads`, in full refresh and incrementally on
//! `sent_at`. One cursor for the whole stream, sent as `start_at` (on or
//! after: inclusive) to every campaign's list; a checkpoint after every
//! page that says which campaign and which page to resume at; a campaign
//! deleted mid-sync (404) skipped with a WARN.

use crate::support;

use serde_json::{json, Value};
use std::time::Duration;
use support::mock::{self, time, Fault, MockServer, Options, BIG_REPLIES_CAMPAIGN, PAGE_SIZE};
use support::*;

const STREAM: &str = "replies";

/// Replies in the default mock account: 230 in campaign 5 (three pages),
/// c % 4 in every other campaign c (tests/python/expected.py agrees).
const REPLIES: usize = 452;

fn campaigns() -> usize {
    Options::default().campaigns
}

/// The id of the mock's campaign c, e.g. c_000005.
fn campaign_id(c: usize) -> String {
    let path = mock::replies_path(c);
    path["campaigns/".len()..path.len() - "/replies".len()].to_string()
}

/// Fails, saying why, unless the run read the replies stream to its end.
fn assert_complete(run: &Run) {
    assert_known(run);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(
        run.statuses(STREAM),
        ["STARTED", "RUNNING", "COMPLETE"],
        "{}",
        run.stdout
    );
}

/// Fails while the source has no replies stream.
fn assert_known(run: &Run) {
    let unknown: Vec<String> = run
        .logs("WARN")
        .into_iter()
        .filter(|w| w.contains("not a stream of this source"))
        .collect();
    assert!(
        unknown.is_empty(),
        "unknown stream replies (src/streams.rs has no such row yet): {unknown:?}"
    );
}

/// Fails unless `got` is `want`, naming the replies by id (one reply is a
/// kilobyte of text).
fn assert_replies(got: &[String], want: &[String], what: &str) {
    if got == want {
        return;
    }
    let id = |r: Option<&String>| r.map(|r| parse(r)["id"].as_str().unwrap_or("?").to_string());
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: {} replies, expected {}; the first difference is at {at}: {:?} where {:?} was \
         expected",
        got.len(),
        want.len(),
        id(got.get(at)),
        id(want.get(at))
    );
}

fn parse(record: &str) -> Value {
    serde_json::from_str(record).expect("a reply is JSON")
}

/// A reply's `sent_at`, as the API wrote it.
fn sent_at(record: &str) -> String {
    parse(record)["sent_at"]
        .as_str()
        .expect("every mock reply has a sent_at")
        .to_string()
}

fn instant(text: &str) -> time::Moment {
    time::parse(text).unwrap_or_else(|| panic!("not an ISO-8601 time: {text}"))
}

/// The greatest `sent_at` of these replies, by time, as the API wrote it.
fn greatest_sent_at(replies: &[String]) -> Option<String> {
    replies
        .iter()
        .map(|r| sent_at(r))
        .max_by_key(|t| instant(t))
}

/// Those of `replies` sent on or after `since`.
fn sent_since(replies: &[String], since: &str) -> Vec<String> {
    replies
        .iter()
        .filter(|r| instant(&sent_at(r)) >= instant(since))
        .cloned()
        .collect()
}

/// Every campaign's list as the mock serves it now, filtered to `since`:
/// (campaign id, replies in page order), in campaign order.
fn served(mock: &MockServer, since: Option<&str>) -> Vec<(String, Vec<String>)> {
    (0..campaigns())
        .map(|c| {
            let all = mock.records(&mock::replies_path(c));
            let kept = match since {
                Some(since) => sent_since(&all, since),
                None => all,
            };
            (campaign_id(c), kept)
        })
        .collect()
}

/// The run's replies RECORDs (their `data`, as written) and STATEs (their
/// `stream_state`), in output order.
enum Line {
    Record(String),
    State(Value),
}

fn replies_output(run: &Run) -> Vec<Line> {
    let prefix = format!(r#"{{"type":"RECORD","record":{{"stream":"{STREAM}","data":"#);
    run.stdout
        .lines()
        .filter_map(|l| {
            if let Some(rest) = l.strip_prefix(prefix.as_str()) {
                let end = rest.rfind(r#","emitted_at":"#).expect("emitted_at");
                return Some(Line::Record(rest[..end].to_string()));
            }
            let m: Value = serde_json::from_str(l).ok()?;
            (m["type"] == "STATE" && m["state"]["stream"]["stream_descriptor"]["name"] == STREAM)
                .then(|| Line::State(m["state"]["stream"]["stream_state"].clone()))
        })
        .collect()
}

/// Where an in-progress checkpoint resumes.
struct At {
    /// The campaign and page to go on at; none between two campaigns.
    parent: Option<(String, usize)>,
    /// The campaigns read to their end.
    done: Vec<String>,
    cursor: Value,
}

/// An in-progress checkpoint, after checking its shape: `{"sent_at":
/// <since>, "resume": {"parent": "<campaign id>", "page": N, "done":
/// [<campaign ids>], "cursor": <greatest sent_at so far or null>,
/// "started": <time>}}`, without parent and page between campaigns.
fn resume_of(state: &Value, since: Option<&str>) -> At {
    let keys: Vec<&String> = state.as_object().expect("state object").keys().collect();
    assert_eq!(keys, ["resume", "sent_at"], "{state}");
    assert_eq!(
        state["sent_at"],
        json!(since),
        "the cursor moved mid-stream: {state}"
    );
    let resume = state["resume"].as_object().expect("resume object");
    let mut keys: Vec<&String> = resume.keys().collect();
    keys.sort();
    let parent = if resume.contains_key("parent") {
        assert_eq!(
            keys,
            ["cursor", "done", "page", "parent", "started"],
            "{state}"
        );
        let parent = resume["parent"]
            .as_str()
            .expect("resume.parent: a campaign id");
        let page = resume["page"]
            .as_u64()
            .filter(|p| *p >= 1)
            .expect("resume.page: from 1");
        Some((parent.to_string(), page as usize))
    } else {
        assert_eq!(keys, ["cursor", "done", "started"], "{state}");
        None
    };
    let done = resume["done"]
        .as_array()
        .expect("resume.done: campaign ids")
        .iter()
        .map(|id| id.as_str().expect("a campaign id").to_string())
        .collect();
    assert!(
        resume["cursor"].is_null() || resume["cursor"].is_string(),
        "{state}"
    );
    At {
        parent,
        done,
        cursor: resume["cursor"].clone(),
    }
}

/// What a run started from no checkpoint has written once it may resume
/// at `at`: every list done, and the pages before the resume page of the
/// list in progress, in list order.
fn written_before(lists: &[(String, Vec<String>)], at: &At) -> Vec<String> {
    let mut out = Vec::new();
    for (id, list) in lists {
        if at.done.contains(id) {
            out.extend_from_slice(list);
        } else if let Some((parent, page)) = &at.parent {
            if parent == id {
                out.extend_from_slice(&list[..list.len().min((page - 1) * PAGE_SIZE)]);
            }
        }
    }
    out
}

/// Checks every in-progress checkpoint of a run that started from no
/// checkpoint, with cursor `since`, reading `lists`: its shape, that its
/// cursor is the greatest sent_at written before it, and that it resumes
/// exactly after what was written before it.
fn check_checkpoints(run: &Run, lists: &[(String, Vec<String>)], since: Option<&str>) -> usize {
    let mut written = Vec::new();
    let mut checkpoints = 0;
    for line in replies_output(run) {
        match line {
            Line::Record(r) => written.push(r),
            Line::State(state) if state.get("resume").is_some() => {
                checkpoints += 1;
                let at = resume_of(&state, since);
                assert_eq!(at.cursor, json!(greatest_sent_at(&written)), "{state}");
                let expected = written_before(lists, &at);
                assert!(
                    written == expected,
                    "{state} after {} replies; resuming there would read {} of them",
                    written.len(),
                    expected.len()
                );
            }
            Line::State(_) => {}
        }
    }
    checkpoints
}

/// The requests for replies lists among `seen`, as (campaign index, query).
fn replies_requests(seen: &[mock::Seen]) -> Vec<(usize, mock::Seen)> {
    seen.iter()
        .filter_map(|s| {
            (0..campaigns())
                .find(|c| s.path == mock::replies_path(*c))
                .map(|c| (c, s.clone()))
        })
        .collect()
}

fn catalog_args(dir: &TempDir, mock: &MockServer, mode: &str) -> (String, String) {
    (
        dir.json("c.json", &config(&mock.base_url())),
        dir.json("cat.json", &catalog(&[STREAM], mode)),
    )
}

#[test]
fn the_mock_replies_have_awkward_text_and_mixed_offsets() {
    let mock = MockServer::start(Options::default());
    let all = mock.replies();
    assert_eq!(all.len(), REPLIES);
    let big = mock::replies_path(BIG_REPLIES_CAMPAIGN);
    assert_eq!(mock.page_count(&big), 3, "more than one page of replies");
    let has = |what: &str, pred: &dyn Fn(&str, &Value) -> bool| {
        assert!(
            all.iter().any(|r| pred(r, &parse(r))),
            "no mock reply has {what}"
        );
    };
    has("null cc_emails", &|_, v| v["cc_emails"].is_null());
    has("two cc_emails", &|_, v| {
        v["cc_emails"].as_array().is_some_and(|a| a.len() == 2)
    });
    has("a null subject", &|_, v| v["subject"].is_null());
    has("a null sentiment", &|_, v| v["sentiment"].is_null());
    has("a null body", &|_, v| v["body"].is_null());
    has("a null lead_id", &|_, v| v["lead_id"].is_null());
    has("an HTML body", &|r, v| {
        r.contains("<blockquote") && v["body"].is_string()
    });
    has("a Rails-escaped HTML body", &|r, _| {
        r.contains(r"\u003cblockquote")
    });
    has("newlines and quotes", &|_, v| {
        v["body"]
            .as_str()
            .is_some_and(|b| b.contains("\n> ") && b.contains('"'))
    });
    has("emoji", &|r, _| r.contains('\u{1f680}'));
    has("U+2028, escaped", &|r, v| {
        r.contains(r"\u2028") && v["body"].as_str().is_some_and(|b| b.contains('\u{2028}'))
    });
    has("a -07:00 sent_at", &|_, v| {
        v["sent_at"].as_str().unwrap().ends_with("-07:00")
    });
    has("a UTC sent_at", &|_, v| {
        v["sent_at"].as_str().unwrap().ends_with('Z')
    });
    // A later text is not always a later time: a cursor must compare times.
    let big_list = mock.records(&big);
    let (earlier, later) = (sent_at(&big_list[121]), sent_at(&big_list[122]));
    assert!(earlier > later && instant(&earlier) < instant(&later));
    let latest = greatest_sent_at(&all).unwrap();
    // The list filters on start_at (inclusive) and end_at, and 404s when gone.
    let lists = served(&mock, Some(&latest));
    let kept: Vec<&String> = lists.iter().flat_map(|(_, l)| l).collect();
    assert_eq!(
        kept.len(),
        1,
        "only the latest reply is sent on or after it"
    );
    mock.add_replies(3, 2);
    let added = &mock.records(&mock::replies_path(3))[3..];
    assert_eq!(added.len(), 2);
    for r in added {
        assert!(instant(&sent_at(r)) > instant(&latest));
    }
    assert_eq!(mock.delete_replies(3).len(), 5);
    assert!(mock.records(&mock::replies_path(3)).is_empty());
}

#[test]
fn discover_declares_replies_incremental_on_sent_at() {
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &json!({"api_key": "test-key-123"}));
    let run = run(&["discover", "--config", &cfg]);
    assert_eq!(run.code, Some(0));
    let streams = run.messages[0]["catalog"]["streams"].as_array().unwrap();
    let names: Vec<&str> = streams.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(
        names.last(),
        Some(&STREAM),
        "replies is listed last: {names:?}"
    );
    let replies = streams.iter().find(|s| s["name"] == STREAM).unwrap();
    assert_eq!(
        replies["supported_sync_modes"],
        json!(["full_refresh", "incremental"])
    );
    assert_eq!(replies["source_defined_cursor"], true);
    assert_eq!(replies["default_cursor_field"], json!(["sent_at"]));
    assert_eq!(replies["source_defined_primary_key"], json!([["id"]]));
    assert_eq!(replies["is_resumable"], true);
    let schema = &replies["json_schema"];
    assert_eq!(schema["properties"]["sent_at"]["format"], "date-time");
    assert_eq!(schema["properties"]["id"]["type"], "string");
    assert_eq!(
        schema["properties"]["cc_emails"]["type"],
        json!(["null", "array"])
    );
}

#[test]
fn every_reply_of_every_campaign_arrives_once_and_exact() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let run = read_mode(&mock, &dir, &[STREAM], "full_refresh", None, json!({}));
    assert_complete(&run);
    let all = mock.replies();
    assert_eq!(all.len(), REPLIES);
    assert_replies(
        &run.record_data(STREAM),
        &all,
        "campaign order, then page order",
    );
    // Every campaign's list, every page of it once, without a time filter.
    let asked = replies_requests(&mock.seen());
    for c in 0..campaigns() {
        let path = mock::replies_path(c);
        let queries: Vec<&str> = asked
            .iter()
            .filter(|(i, _)| *i == c)
            .map(|(_, s)| s.query.as_str())
            .collect();
        let pages: Vec<String> = (1..=mock.page_count(&path))
            .map(|p| format!("page={p}"))
            .collect();
        assert_eq!(queries, pages, "{path}");
    }
    assert_eq!(run.logs("WARN"), Vec::<String>::new());
}

#[test]
fn a_first_incremental_run_reads_everything_and_keeps_the_greatest_sent_at() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let run = read_incremental(&mock, &dir, STREAM, Some(&json!([])));
    assert_complete(&run);
    let all = mock.replies();
    assert_replies(&run.record_data(STREAM), &all, "every reply");
    let st = states(&run, STREAM);
    let greatest = greatest_sent_at(&all).unwrap();
    assert_eq!(
        st.last().unwrap().0,
        json!({"sent_at": greatest}),
        "the greatest sent_at, by time, as the API wrote it"
    );
    assert_eq!(st.iter().map(|(_, n)| n).sum::<f64>(), all.len() as f64);
    // A checkpoint after every page that wrote replies (an empty list
    // moves nothing a resume could skip), each saying where to resume:
    // right after what was written before it.
    let lists = served(&mock, None);
    let checkpoints = check_checkpoints(&run, &lists, None);
    let pages_with_replies: usize = lists.iter().map(|(_, r)| r.len().div_ceil(100)).sum();
    assert_eq!(checkpoints, pages_with_replies, "checkpoints");
    assert_eq!(checkpoints, st.len() - 1);
    // No cursor yet, so no campaign's list was filtered.
    for (_, s) in replies_requests(&mock.seen()) {
        assert_eq!(s.param("start_at"), None, "{}", s.query);
    }
}

#[test]
fn a_second_incremental_run_asks_every_campaign_from_the_cursor() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let first = read_incremental(&mock, &dir, STREAM, Some(&json!([])));
    assert_complete(&first);
    let cursor = greatest_sent_at(&mock.replies()).unwrap();
    let asked_before = mock.seen().len();

    mock.add_replies(3, 2);
    mock.add_replies(BIG_REPLIES_CAMPAIGN, 1);
    mock.add_replies(campaigns() - 1, 1);
    // The STATE lines as the run printed them, saved whole, are a state file too.
    let printed: Vec<Value> = first.of_type("STATE").into_iter().cloned().collect();
    let second = read_incremental(&mock, &dir, STREAM, Some(&Value::Array(printed)));
    assert_complete(&second);
    assert_eq!(second.logs("WARN"), Vec::<String>::new());
    // The reply at the cursor comes again (start_at is inclusive; the
    // destination dedups by id), then the new ones, in campaign order.
    let expected = sent_since(&mock.replies(), &cursor);
    assert_eq!(expected.len(), 5);
    assert_eq!(sent_at(&expected[2]), cursor, "the boundary reply");
    assert_replies(&second.record_data(STREAM), &expected, "the second run");
    let new_greatest = greatest_sent_at(&expected).unwrap();
    assert_eq!(
        states(&second, STREAM).last().unwrap().0,
        json!({"sent_at": new_greatest})
    );
    check_checkpoints(&second, &served(&mock, Some(&cursor)), Some(&cursor));
    // Every campaign's list was asked for from the cursor, as the API wrote it.
    let asked = replies_requests(&mock.seen()[asked_before..]);
    for c in 0..campaigns() {
        let queries: Vec<&mock::Seen> = asked
            .iter()
            .filter(|(i, _)| *i == c)
            .map(|(_, s)| s)
            .collect();
        assert!(!queries.is_empty(), "campaign {c} was not asked");
        assert_eq!(queries[0].param("page").as_deref(), Some("1"));
        for s in queries {
            assert_eq!(
                s.param("start_at").as_deref(),
                Some(cursor.as_str()),
                "{}",
                s.query
            );
        }
    }
}

#[test]
fn replies_before_the_cursor_are_never_emitted_again() {
    // A server that ignores start_at sends the big campaign's replies all
    // at once: only those sent on or after the cursor are written. The
    // cursor is compared as a time, not as text (offsets differ).
    let mock = MockServer::start(Options::default());
    let path = mock::replies_path(BIG_REPLIES_CAMPAIGN);
    let big = mock.records(&path);
    let cursor = sent_at(&big[122]);
    let unfiltered = format!(
        r#"{{"status":"success","errors":[],"has_more":false,"next_page":null,"replies":[{}]}}"#,
        big.join(",")
    );
    mock.add_fault(Fault::new(
        &path,
        Some(1),
        1,
        mock::Action::Body(unfiltered),
    ));
    let state = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": STREAM},
        "stream_state": {"sent_at": cursor}}}]);
    let dir = TempDir::new();
    let run = read_incremental(&mock, &dir, STREAM, Some(&state));
    assert_complete(&run);
    let expected = sent_since(&big, &cursor);
    assert_eq!(expected.len(), big.len() - 122);
    assert!(
        big[..122].iter().any(|r| sent_at(r) > cursor),
        "some older reply's text sorts after the cursor"
    );
    assert_replies(
        &run.record_data(STREAM),
        &expected,
        "on or after the cursor",
    );
}

#[test]
fn start_date_bounds_the_first_incremental_run() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let start = "2026-03-05T00:00:00Z";
    let run = read_mode(
        &mock,
        &dir,
        &[STREAM],
        "incremental",
        None,
        json!({"start_date": start}),
    );
    assert_complete(&run);
    let expected = sent_since(&mock.replies(), start);
    assert_eq!(
        expected.len(),
        230 - 72,
        "the big campaign's replies from hour 72"
    );
    assert_replies(&run.record_data(STREAM), &expected, "from start_date");
    let asked = replies_requests(&mock.seen());
    for c in 0..campaigns() {
        assert!(
            asked.iter().any(|(i, _)| *i == c),
            "campaign {c} was not asked"
        );
    }
    for (_, s) in asked {
        assert_eq!(s.param("start_at").as_deref(), Some(start), "{}", s.query);
    }
}

/// A first incremental run, killed (SIGTERM) while it waits for page 3 of
/// the big campaign's replies.
fn killed_at_the_big_campaigns_page_3(mock: &MockServer, dir: &TempDir) -> Run {
    let path = mock::replies_path(BIG_REPLIES_CAMPAIGN);
    mock.add_fault(Fault::stall(&path, 3, Duration::from_secs(30)));
    let (cfg, cat) = catalog_args(dir, mock, "incremental");
    let (first, _) = interrupt_when(
        mock,
        |s| s.is(&path, 3),
        "TERM",
        &["read", "--config", &cfg, "--catalog", &cat],
    );
    first
}

/// A run killed in the middle of the big campaign and resumed from its
/// last STATE: together they wrote every reply exactly once.
#[test]
fn a_run_killed_mid_campaign_resumes_at_that_campaigns_page() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let first = killed_at_the_big_campaigns_page_3(&mock, &dir);
    check_checkpoints(&first, &served(&mock, None), None);
    let last = states(&first, STREAM)
        .last()
        .expect("a checkpoint")
        .0
        .clone();
    let (parent, page) = resume_of(&last, None)
        .parent
        .expect("a campaign in progress");
    assert_eq!(parent, campaign_id(BIG_REPLIES_CAMPAIGN), "{last}");
    // Page 3's answer never came; on a fast link page 2 waited for it.
    assert!([2, 3].contains(&page), "{last}");
    let asked_before = mock.seen().len();

    let second = read_incremental(&mock, &dir, STREAM, Some(&state_file(&first)));
    assert_complete(&second);
    assert!(second.logs("INFO").iter().any(|m| m.contains("resuming")));
    let mut together = first.record_data(STREAM);
    together.extend(second.record_data(STREAM));
    assert_replies(
        &together,
        &mock.replies(),
        "every reply exactly once across the two runs",
    );
    // The resumed run starts at the checkpoint's campaign and page.
    let asked = replies_requests(&mock.seen()[asked_before..]);
    assert_eq!(asked[0].0, BIG_REPLIES_CAMPAIGN);
    assert_eq!(asked[0].1.param("page"), Some(page.to_string()));
    assert!(asked.iter().all(|(c, _)| *c >= BIG_REPLIES_CAMPAIGN));
    // Its checkpoints keep the first run's (no) cursor; the end sets the greatest.
    for (state, _) in &states(&second, STREAM)[..states(&second, STREAM).len() - 1] {
        resume_of(state, None);
    }
    assert_eq!(
        states(&second, STREAM).last().unwrap().0,
        json!({"sent_at": greatest_sent_at(&mock.replies())})
    );
}

/// A second incremental run killed between campaigns and resumed: the new
/// replies and the boundary reply each arrive once, from the same cursor.
#[test]
fn a_run_killed_between_campaigns_resumes_at_the_next_campaign() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let first = read_incremental(&mock, &dir, STREAM, Some(&json!([])));
    assert_complete(&first);
    let cursor = greatest_sent_at(&mock.replies()).unwrap();
    for (c, n) in [(3, 1), (7, 2), (9, 1), (campaigns() - 1, 1)] {
        mock.add_replies(c, n);
    }
    let stalled = mock::replies_path(9);
    mock.add_fault(Fault::stall(&stalled, 1, Duration::from_secs(30)));
    let state = dir.json("first.json", &state_file(&first));
    let (cfg, cat) = catalog_args(&dir, &mock, "incremental");
    let (second, _) = interrupt_when(
        &mock,
        |s| s.path == stalled && s.param("start_at").is_some(),
        "TERM",
        &[
            "read",
            "--config",
            &cfg,
            "--catalog",
            &cat,
            "--state",
            &state,
        ],
    );
    check_checkpoints(&second, &served(&mock, Some(&cursor)), Some(&cursor));
    let written = second.record_data(STREAM);
    assert_eq!(
        written.len(),
        4,
        "campaign 3's new reply, the boundary, campaign 7's two"
    );
    let asked_before = mock.seen().len();

    let third = read_incremental(&mock, &dir, STREAM, Some(&state_file(&second)));
    assert_complete(&third);
    let mut together = written;
    together.extend(third.record_data(STREAM));
    let expected = sent_since(&mock.replies(), &cursor);
    assert_eq!(expected.len(), 6);
    assert_replies(
        &together,
        &expected,
        "each new reply and the boundary reply once",
    );
    let asked = replies_requests(&mock.seen()[asked_before..]);
    assert!(
        asked.iter().all(|(c, _)| *c >= 7),
        "no campaign before the checkpoint's"
    );
    for (_, s) in &asked {
        assert_eq!(s.param("start_at").as_deref(), Some(cursor.as_str()));
    }
    assert_eq!(
        states(&third, STREAM).last().unwrap().0,
        json!({"sent_at": greatest_sent_at(&expected)})
    );
}

#[test]
fn a_campaign_deleted_mid_sync_is_skipped_with_a_warning() {
    for mode in ["full_refresh", "incremental"] {
        let mock = MockServer::start(Options::default());
        // Deleted just before its replies are asked for: the list is 404
        // and a fresh listing of the campaigns no longer has it.
        mock.add_fault(Fault::new(
            &mock::replies_path(3),
            None,
            1,
            mock::Action::Change(mock::Change::DeleteCampaign(3)),
        ));
        let dir = TempDir::new();
        let run = read_mode(&mock, &dir, &[STREAM], mode, None, json!({}));
        assert_complete(&run);
        assert_replies(&run.record_data(STREAM), &mock.replies(), mode);
        assert_eq!(mock.replies().len(), REPLIES - 3);
        let warns = run.logs("WARN");
        assert_eq!(warns.len(), 1, "{mode}: {warns:?}");
        assert!(warns[0].contains("c_000003"), "{mode}: {warns:?}");
        if mode == "incremental" {
            assert_eq!(
                states(&run, STREAM).last().unwrap().0,
                json!({"sent_at": greatest_sent_at(&mock.replies())})
            );
        }
    }
}

#[test]
fn a_resume_campaign_deleted_since_is_skipped_and_the_rest_read() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let first = killed_at_the_big_campaigns_page_3(&mock, &dir);
    mock.change(&mock::Change::DeleteCampaign(BIG_REPLIES_CAMPAIGN));
    let second = read_incremental(&mock, &dir, STREAM, Some(&state_file(&first)));
    assert_complete(&second);
    let warns = second.logs("WARN");
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(
        warns[0].contains(&campaign_id(BIG_REPLIES_CAMPAIGN)),
        "{warns:?}"
    );
    let after: Vec<String> = served(&mock, None)
        .into_iter()
        .skip(BIG_REPLIES_CAMPAIGN + 1)
        .flat_map(|(_, l)| l)
        .collect();
    assert_replies(
        &second.record_data(STREAM),
        &after,
        "after the deleted campaign",
    );
}

/// The campaign a resume names is no longer listed at all: rather than
/// skip every campaign looking for it, the run reads them all (duplicates
/// of what the interrupted run wrote, but nothing lost).
#[test]
fn a_resume_campaign_no_longer_listed_reads_every_campaign() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let state = json!([{"type": "STREAM", "stream": {
        "stream_descriptor": {"name": STREAM},
        "stream_state": {"sent_at": null, "resume": {"parent": "c_gone00", "page": 2, "cursor": null, "done": []}}}}]);
    let second = read_incremental(&mock, &dir, STREAM, Some(&state));
    assert_complete(&second);
    let warns = second.logs("WARN");
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(
        warns[0].contains("c_gone00") && warns[0].contains("again"),
        "{warns:?}"
    );
    assert_replies(&second.record_data(STREAM), &mock.replies(), "every reply");
}

#[test]
fn malformed_replies_state_is_a_config_error() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    for bad in [
        json!({"sent_at": "yesterday"}),
        json!({"sent_at": 17}),
        json!({"sent_at": null, "resume": {"parent": "c_000005", "page": 0, "cursor": null}}),
        json!({"sent_at": null, "resume": {"parent": 5, "page": 2, "cursor": null}}),
        json!({"sent_at": null, "resume": {"parent": "c_000005", "page": 2, "cursor": "soon"}}),
    ] {
        let run = read_incremental(&mock, &dir, STREAM, Some(&stream_state(STREAM, bad)));
        assert_known(&run);
        run.the_error_saying("config_error", "state of stream replies");
        assert!(run.of_type("RECORD").is_empty());
    }
    assert!(mock.seen().is_empty());
}

/// The README's stream tables list exactly the streams `discover` lists.
#[test]
fn the_readme_stream_tables_match_discover() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    // The rows of the first table after `heading`: (first cell, last cell).
    let table = |heading: &str| -> Vec<(String, String)> {
        let at = readme
            .find(heading)
            .unwrap_or_else(|| panic!("no {heading}"));
        readme[at..]
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
                (cells[0].trim_matches('`').to_string(), l.to_string())
            })
            .collect()
    };
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &json!({"api_key": "test-key-123"}));
    let run = run(&["discover", "--config", &cfg]);
    let streams = run.messages[0]["catalog"]["streams"]
        .as_array()
        .unwrap()
        .clone();
    let streams_table = table("\n## Streams\n");
    let names: Vec<&str> = streams_table.iter().map(|(n, _)| n.as_str()).collect();
    let discovered: Vec<&str> = streams
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, discovered, "README streams table");
    let incremental_table = table("\n### Incremental sync\n");
    for s in &streams {
        let name = s["name"].as_str().unwrap();
        let incremental = s["supported_sync_modes"]
            .as_array()
            .unwrap()
            .contains(&json!("incremental"));
        let row = &streams_table.iter().find(|(n, _)| n == name).unwrap().1;
        let modes = row.rsplit(" | ").next().unwrap();
        assert_eq!(modes.contains("incremental"), incremental, "{row}");
        let in_table = incremental_table.iter().find(|(n, _)| n == name);
        assert_eq!(
            in_table.is_some(),
            incremental,
            "{name} in the incremental table"
        );
        if let (Some((_, row)), Some(cursor)) = (in_table, s["default_cursor_field"][0].as_str()) {
            assert!(row.contains(&format!("`{cursor}`")), "{row}");
        }
    }
}
