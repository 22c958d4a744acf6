//! Terminal and script ergonomics: live progress only at a terminal,
//! `--streams`, `--help` and `--version`, usage messages, and the demo.

use crate::support;

use std::process::Command;
use std::time::Duration;
use support::mock::{Action, Fault, MockServer, Options};
use support::*;

/// Runs `command` under a pseudo-terminal (through util-linux `script`),
/// its stdout sent to /dev/null so that the terminal is its stderr alone;
/// returns what the terminal showed.
fn on_a_terminal(command: &str) -> String {
    on_a_terminal_with_code(&format!("{command} >/dev/null"), 0)
}

/// Runs `command` with stdout and stderr both on one pseudo-terminal,
/// expecting exit code `code`; returns what the terminal showed.
fn on_a_terminal_with_code(command: &str, code: i32) -> String {
    let out = Command::new("script")
        .args(["-qefc", command, "/dev/null"])
        .output()
        .expect("util-linux script runs the command under a pty");
    assert_eq!(out.status.code(), Some(code), "{command}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The screen's lines as a person sees them: each line's last redraw
/// (what follows its last `\r\x1b[2K`), with the pty's `\r\n` undone.
fn final_lines(screen: &str) -> Vec<String> {
    screen
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .map(|l| l.rsplit("\r\x1b[2K").next().unwrap_or(l).to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The one final line of `stream`, which must end with a newline.
fn final_line(screen: &str, stream: &str) -> String {
    let prefix = format!("{stream}: ");
    let ends: Vec<String> = final_lines(screen)
        .into_iter()
        .filter(|l| l.starts_with(&prefix))
        .collect();
    assert_eq!(ends.len(), 1, "{stream}: {screen:?}");
    assert!(
        screen.contains(&format!("{}\r\n", ends[0])),
        "no newline after {:?}: {screen:?}",
        ends[0]
    );
    ends[0].clone()
}

/// `N records/s` in a progress line, if it shows a rate.
fn rate_in(line: &str) -> Option<f64> {
    let before = line
        .split(" records/s")
        .next()
        .filter(|_| line.contains(" records/s"))?;
    before.rsplit(' ').next()?.parse().ok()
}

/// The seconds of a final line's `done in X s`.
fn done_in(line: &str) -> f64 {
    let after = line.split("done in ").nth(1).expect(line);
    after.split(' ').next().unwrap().parse().expect(line)
}

/// The mock, with the first users request answered 503 (a retry to show).
fn users_fail_once_with_503() -> MockServer {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new(
        "users",
        None,
        1,
        Action::Status(503, vec![], String::new()),
    ));
    mock
}

/// The mock, with leads page 3 answered 503 always (a stream that fails
/// after writing two pages).
fn leads_fail_for_good_at_page_3() -> MockServer {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::new(
        "leads",
        Some(3),
        usize::MAX,
        Action::Status(503, vec![], String::new()),
    ));
    mock
}

#[test]
fn progress_is_drawn_on_a_terminal_stderr() {
    let mock = users_fail_once_with_503();
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let screen = on_a_terminal(&format!("{BIN} read --config {cfg} --streams users,leads"));
    assert!(
        screen.contains("\r\x1b[2K"),
        "no in-place redraw: {screen:?}"
    );
    let users = final_line(&screen, "users");
    let leads = final_line(&screen, "leads");
    assert!(
        users.starts_with("users: 3 records, 1 page, done in"),
        "{users}"
    );
    assert!(
        leads.starts_with("leads: 1234 records, 13 pages, done in"),
        "{leads}"
    );
    // The wait is named after its stream, even before its first page.
    assert!(
        screen.contains(
            "users: 0 records, 0 pages; waiting: stream users, page 1: HTTP 503; retry 1 of 2"
        ),
        "{screen:?}"
    );
    assert!(
        !screen.contains("\x1b[2K:"),
        "a line without its stream: {screen:?}"
    );
    // Under a second there is no rate to speak of.
    for line in [&users, &leads] {
        if done_in(line) < 1.0 {
            assert_eq!(rate_in(line), None, "{line}");
        }
    }
    assert!(!screen.contains(support::mock::API_KEY));
}

/// The clock starts at the stream's first request, not after its first
/// page: a slow first answer counts in the rate.
#[test]
fn the_rate_counts_from_the_first_request_and_only_once_measurable() {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::stall("users", 1, Duration::from_millis(1300)));
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let screen = on_a_terminal(&format!("{BIN} read --config {cfg} --streams users"));
    let users = final_line(&screen, "users");
    assert!(done_in(&users) >= 1.3, "{users}");
    let rate = rate_in(&users).unwrap_or_else(|| panic!("no rate after 1.3 s: {users}"));
    assert!(rate <= 3.0 / 1.3, "3 records in 1.3 s or more: {users}");
}

/// A failed stream says so in its own final line, with what it wrote and
/// why; the next stream still gets its line; nothing is left unfinished.
#[test]
fn a_failed_stream_ends_with_a_line_naming_it_and_why() {
    let mock = leads_fail_for_good_at_page_3();
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let cat = dir.json(
        "cat.json",
        &catalog(&["leads", "nope", "users"], "full_refresh"),
    );
    let screen = on_a_terminal_with_code(
        &format!("{BIN} read --config {cfg} --catalog {cat} >/dev/null"),
        1,
    );
    assert_eq!(
        final_line(&screen, "leads"),
        "leads: FAILED after 200 records, 2 pages: page 3: HTTP 503 (after 3 tries)"
    );
    assert_eq!(
        final_line(&screen, "nope"),
        "nope: FAILED: not a stream of this source"
    );
    assert!(final_line(&screen, "users").starts_with("users: 3 records, 1 page, done in"));
    assert!(screen.ends_with("\r\n"), "an unfinished line: {screen:?}");
}

/// stdout on the same terminal as stderr, or through a pipe whose reader
/// prints there (`| jq`, `| cat`): no progress at all, so every line on
/// screen is a whole message (a reader's lines would otherwise run into the
/// live line and be erased by its next redraw).
#[test]
fn no_progress_when_stdout_ends_on_the_same_terminal() {
    let mock = users_fail_once_with_503();
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    for tail in ["", " | cat"] {
        let screen = on_a_terminal_with_code(
            &format!("{BIN} read --config {cfg} --streams users,leads{tail}"),
            0,
        );
        assert!(
            !screen.contains('\x1b'),
            "{tail:?}: progress drawn: {screen:?}"
        );
        let lines: Vec<&str> = screen.split_terminator("\r\n").collect();
        assert!(lines.len() > 1234, "{tail:?}: {} lines", lines.len());
        for line in lines {
            let message: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{tail:?}: not a whole message ({e}): {line:?}"));
            assert!(message["type"].is_string(), "{line}");
        }
    }
}

/// The summary counts the records a failed stream wrote before it failed,
/// and says "1 record", not "1 records".
#[test]
fn the_summary_counts_every_record_written() {
    let mock = leads_fail_for_good_at_page_3();
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["users", "leads"]));
    assert_eq!(run.code, Some(1));
    assert_eq!(run.of_type("RECORD").len(), 203);
    let summary = run
        .logs("ERROR")
        .into_iter()
        .find(|m| m.starts_with("sync finished"));
    let summary = summary.expect("an ERROR summary");
    assert!(
        summary.contains(": 203 records, 1 of 2 streams complete; failed: leads"),
        "{summary}"
    );

    let one = MockServer::start(Options::default());
    one.add_fault(Fault::new(
        "users",
        None,
        usize::MAX,
        Action::Body(r#"{"users": [{"id": "u1"}], "has_more": false}"#.into()),
    ));
    let run = read(&dir, &config(&one.base_url()), Some(&["users"]));
    assert_eq!(run.code, Some(0));
    let info = run.logs("INFO");
    let summary = info
        .iter()
        .find(|m| m.starts_with("sync finished"))
        .expect("a summary");
    assert!(
        summary.contains(": 1 record, 1 of 1 streams complete"),
        "{summary}"
    );
}

/// Usage errors name the flag that is wrong.
#[test]
fn usage_errors_name_what_is_wrong() {
    let cases: [(&[&str], &str); 5] = [
        (&["read", "--bogus", "x"], "`read` has no option `--bogus`"),
        (
            &["read", "--config", "a.json", "--config", "b.json"],
            "--config is given twice",
        ),
        (
            &[
                "read",
                "--config",
                "a.json",
                "--streams",
                "users",
                "--streams",
                "tags",
            ],
            "--streams is given twice",
        ),
        (&["read"], "`read` needs --config FILE"),
        (&["frobnicate"], "unknown command `frobnicate`"),
    ];
    for (args, says) in cases {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or_default();
        assert_eq!(first, format!("source-persistiq: {says}"), "{args:?}");
    }
}

/// The demo example, next to the connector this test runs (`cargo test`
/// builds the examples).
fn demo() -> Command {
    let bin = std::path::Path::new(BIN);
    let demo = bin.with_file_name("examples").join("demo");
    assert!(
        demo.exists(),
        "no {}: run `cargo test` (it builds the examples)",
        demo.display()
    );
    let mut command = Command::new(demo);
    // The demo builds the connector with $CARGO first; it is built already.
    command.env("CARGO", "true");
    command
}

/// `--serve` with a port that is not a number, out of range or taken: one
/// line that says so and what to do, exit 2, never a panic.
#[test]
fn the_demo_explains_a_bad_port_in_one_line_and_exits_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for (arg, says) in [
        ("http", "--serve takes a port number"),
        ("70000", "--serve takes a port number"),
        (port.as_str(), "stop what uses it or pick another port"),
    ] {
        let out = demo().args(["--serve", arg]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--serve {arg}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "--serve {arg}: {stderr}");
        assert!(
            stderr.starts_with("demo: ") && stderr.contains(says),
            "--serve {arg}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "--serve {arg}");
    }
}

/// The demo sums up messages only when there are messages.
#[test]
fn the_demo_summary_fits_what_the_connector_printed() {
    let help = demo().arg("--help").output().unwrap();
    let stderr = String::from_utf8_lossy(&help.stderr);
    assert_eq!(help.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("plain text, not Airbyte messages"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not a message") && !stderr.contains("messages by type"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage:"));

    let unknown = demo().arg("frobnicate").output().unwrap();
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown command `frobnicate`"), "{stderr}");
    assert!(stderr.contains("no output on stdout"), "{stderr}");
    assert!(!stderr.contains("messages by type"), "{stderr}");

    let check = demo().arg("check").output().unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("messages by type:\n       1  CONNECTION_STATUS\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("building the connector first: cargo build"),
        "{stderr}"
    );
}

#[test]
fn nothing_is_written_to_stderr_when_it_is_not_a_terminal() {
    let mock = users_fail_once_with_503();
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), Some(&["users", "leads"]));
    assert_eq!(run.code, Some(0));
    assert_eq!(run.stderr, "");
    assert_eq!(
        run.logs("WARN").len(),
        1,
        "the retry is still reported, on stdout"
    );
}

#[test]
fn streams_flag_picks_streams_and_names_the_valid_ones() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let run = run(&["read", "--config", &cfg, "--streams", "tags,users,tags"]);
    assert_eq!(run.code, Some(0));
    assert_eq!(run.record_data("tags"), mock.records("tags"));
    assert_eq!(run.record_data("users"), mock.records("users"));
    assert_eq!(run.of_type("RECORD").len(), mock.records("tags").len() + 3);
    let first = run.of_type("RECORD")[0]["record"]["stream"].clone();
    assert_eq!(first, "tags", "--streams keeps the order given");

    let bad = support::run(&["read", "--config", &cfg, "--streams", "users,lesds"]);
    assert_eq!(bad.code, Some(1));
    let message = bad.errors()[0]["message"].as_str().unwrap().to_string();
    assert!(message.contains("lesds"), "{message}");
    for name in ["users", "leads", "campaign_leads", "events"] {
        assert!(message.contains(name), "{message}");
    }
    let empty = support::run(&["read", "--config", &cfg, "--streams", ""]);
    assert_eq!(
        empty.code,
        Some(1),
        "an empty --streams is a mistake, not 'all'"
    );
    assert!(empty.errors()[0]["message"]
        .as_str()
        .unwrap()
        .contains("names no stream"));
    assert!(mock.seen().len() == 2, "no request for a bad --streams");
    // `--config=FILE` works as well as `--config FILE`.
    let eq = support::run(&["read", &format!("--config={cfg}"), "--streams=users"]);
    assert_eq!(eq.code, Some(0));
    assert_eq!(eq.record_data("users"), mock.records("users"));
}

#[test]
fn help_lists_commands_config_keys_defaults_and_exit_codes() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "spec",
        "check",
        "discover",
        "read",
        "--streams",
        "--catalog",
        "--state",
        "api_key",
        "base_url",
        "https://api.persistiq.com/v1/",
        "retry_schedule_seconds",
        "[1, 2, 5, 10, 20, 30]",
        "timeout_seconds",
        "start_date",
        "Exit codes",
        "Example",
        "campaign_leads",
        "umask 077",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    let version = Command::new(BIN).arg("-V").output().unwrap();
    assert_eq!(
        String::from_utf8(version.stdout).unwrap(),
        format!("source-persistiq {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_and_version_into_a_closed_pipe_exit_quietly() {
    for flag in ["--help", "--version"] {
        let out = Command::new("bash")
            .args([
                "-c",
                &format!("set -o pipefail; (sleep 0.3; {BIN} {flag}) | true"),
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
