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

#[test]
fn an_interrupted_sync_clears_its_live_line() {
    // Killed while it waits on a page, the sync must not leave its line
    // for the shell's prompt to land after.
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::stall("leads", 3, Duration::from_secs(30)));
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let screen = on_a_terminal_with_code(
        &format!(
            "timeout -s INT 1.5 {BIN} read --config {cfg} --streams leads >/dev/null; printf END"
        ),
        0,
    );
    let before = screen.strip_suffix("END").expect("END last");
    assert!(before.contains("leads: "), "no live line: {screen:?}");
    assert!(before.ends_with("\r\x1b[2K"), "the line stays: {screen:?}");
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
        screen.contains("users: 0 records, 0 pages; waiting: page 1: HTTP 503; retry 1 of 2"),
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

/// Usage errors name the flag that is wrong, suggest the one meant when
/// one is close, and are all in the connector's own words.
#[test]
fn usage_errors_name_what_is_wrong() {
    let cases: [(&[&str], &str); 13] = [
        (
            &["read", "--bogus", "x"],
            "`read` has no option `--bogus`; it takes --config, --catalog, --streams, --state",
        ),
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
        (
            &["frobnicate"],
            "unknown command `frobnicate`; the commands are spec, check, discover, read and doctor",
        ),
        (
            &["chek", "--config", "c.json"],
            "unknown command `chek`; did you mean `check`?",
        ),
        (
            &["check", "--confg", "c.json"],
            "`check` has no option `--confg`; did you mean `--config`?",
        ),
        (
            &["read", "--config", "c.json", "--stream", "users"],
            "`read` has no option `--stream`; did you mean `--streams`?",
        ),
        (
            &["check", "--config", "c.json", "--catalog", "cat.json"],
            "`check` has no option `--catalog`; only `read` takes it",
        ),
        (
            &["check", "config.json"],
            "unexpected argument `config.json`; did you mean `--config config.json`?",
        ),
        (
            &["read", "--config", "c.json", "--catalog"],
            "--catalog needs a value: --catalog FILE",
        ),
        (
            &["read", "--config", "c.json", "--streams"],
            "--streams needs a value: --streams NAME,...",
        ),
        (
            &["read", "--config", "--streams", "users"],
            "--config needs a value: --config FILE, not `--streams`",
        ),
    ];
    for (args, says) in cases {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or_default();
        assert_eq!(first, format!("source-persistiq: {says}"), "{args:?}");
        // pico-args' own words ("the '--catalog' option doesn't have an
        // associated value") are never shown.
        assert!(!stderr.contains('\''), "{args:?}: {stderr}");
    }
}

/// `--streams lead` points at `leads`; a name close to none gets the list.
#[test]
fn a_mistyped_stream_name_gets_the_closest_one() {
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config("http://127.0.0.1:9/v1/"));
    for (typed, meant) in [
        ("lead", Some("leads")),
        ("users,campaign_lead", Some("campaign_leads")),
        ("Replies", Some("replies")),
        ("nothing_like_it", None),
    ] {
        let run = support::run(&["read", "--config", &cfg, "--streams", typed]);
        let message = run.the_error_saying("config_error", "there is no stream");
        let line = run.stderr.trim_end();
        match meant {
            Some(name) => {
                let hint = format!("did you mean `{name}`?");
                assert!(message.contains(&hint), "{typed}: {message}");
                assert!(line.contains(&hint), "{typed}: {line}");
            }
            None => assert!(!message.contains("did you mean"), "{message}"),
        }
        assert!(message.contains("campaign_leads"), "the list: {message}");
    }
}

/// The demo example's path, next to the connector this test runs
/// (`cargo test` builds the examples).
fn demo_path() -> std::path::PathBuf {
    let bin = std::path::Path::new(BIN);
    let demo = bin.with_file_name("examples").join("demo");
    assert!(
        demo.exists(),
        "no {}: run `cargo test` (it builds the examples)",
        demo.display()
    );
    demo
}

/// The demo as the quick start runs it: directly, not by `cargo run`
/// (which sets $CARGO, also for this test).
fn demo() -> Command {
    let mut command = Command::new(demo_path());
    command.env_remove("CARGO");
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
    assert!(!stderr.contains("building the connector"), "{stderr}");
}

/// The quick start builds the demo and the connector in one cargo
/// invocation and runs the demo directly: it builds nothing more. Only
/// under `cargo run --example demo` (which builds no binary of the
/// package) does it build the connector first; without one, it says how.
#[test]
fn the_demo_builds_the_connector_only_under_cargo_run() {
    let check = demo().arg("check").output().unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("cargo build"), "{stderr}");

    // $CARGO as `cargo run` sets it; `true` builds nothing, successfully.
    let under_cargo = demo().arg("check").env("CARGO", "true").output().unwrap();
    let stderr = String::from_utf8_lossy(&under_cargo.stderr);
    assert_eq!(under_cargo.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "demo: building the connector first: cargo build --release --bin source-persistiq"
        ),
        "{stderr}"
    );

    // A demo without its connector next to it: one line saying how to
    // build both at once, and no cargo run behind the user's back.
    let dir = TempDir::new();
    let examples = dir.0.join("release").join("examples");
    std::fs::create_dir_all(&examples).unwrap();
    std::fs::copy(demo_path(), examples.join("demo")).unwrap();
    let alone = Command::new(examples.join("demo"))
        .arg("check")
        .env_remove("CARGO")
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&alone.stderr);
    assert_eq!(alone.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("demo: no connector at ")
            && stderr.contains("cargo build --release --bin source-persistiq --example demo"),
        "{stderr}"
    );
}

/// The README's quick start: `demo > messages.jsonl` at a terminal shows
/// the connector's live progress; the messages are in the file, counted
/// in the summary, also when the file is appended to.
#[test]
fn the_demo_into_a_file_shows_the_live_progress() {
    let dir = TempDir::new();
    let file = dir.0.join("messages.jsonl");
    let demo = demo_path();
    let run = format!("env -u CARGO {} > {}", demo.display(), file.display());
    let screen = on_a_terminal_with_code(&run, 0);
    assert!(screen.contains("\r\x1b[2K"), "no live line: {screen:?}");
    for stream in support::STREAMS {
        let line = final_line(&screen, stream);
        assert!(line.contains(", done in "), "{line}");
    }
    assert!(final_line(&screen, "leads").starts_with("leads: 1234 records, 13 pages, done in"));
    assert!(screen.contains("    1234  RECORD leads\r\n"), "{screen:?}");
    let written = std::fs::read_to_string(&file).unwrap();
    let leads = written
        .lines()
        .filter(|l| l.starts_with(r#"{"type":"RECORD","record":{"stream":"leads""#))
        .count();
    assert_eq!(leads, 1234);
    assert!(!screen.contains(r#"{"type""#), "messages on the terminal");

    // `>>`: only this run's messages are counted.
    let again = format!("env -u CARGO {} >> {}", demo.display(), file.display());
    let screen = on_a_terminal_with_code(&again, 0);
    assert!(screen.contains("    1234  RECORD leads\r\n"), "{screen:?}");
    let appended = std::fs::read_to_string(&file).unwrap();
    assert!(appended.starts_with(&written) && appended.len() > written.len() + 100);
}

/// The README's lines of the live display ("At a terminal"), each as the
/// program prints it (numbers aside), from one read of users (a 503 first),
/// leads (slow, then failing at page 3) and a stream that does not exist.
#[test]
fn the_readme_shows_the_terminal_as_it_is() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n### At a terminal\n")
        .nth(1)
        .expect("README has '### At a terminal'");
    let section = section.split("\n#").next().unwrap();
    let shown: Vec<&str> = section
        .split("```")
        .skip(1)
        .step_by(2)
        .flat_map(|block| block.lines())
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(shown.len() >= 5, "{shown:?}");

    let mock = leads_fail_for_good_at_page_3();
    mock.add_fault(Fault::new(
        "users",
        None,
        1,
        Action::Status(503, vec![], String::new()),
    ));
    mock.add_fault(Fault::stall("leads", 2, Duration::from_millis(1100)));
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let cat = dir.json(
        "cat.json",
        &catalog(&["users", "leads", "nope"], "full_refresh"),
    );
    let screen = on_a_terminal_with_code(
        &format!(
            "{BIN} read --config {cfg} --catalog {cat} > {}",
            dir.0.join("out.jsonl").display()
        ),
        1,
    );
    let drawn: Vec<String> = screen
        .split("\r\n")
        .flat_map(|l| l.split("\r\x1b[2K"))
        .map(String::from)
        .collect();
    for line in shown {
        let wanted = same_but_numbers(line);
        assert!(
            drawn.iter().any(|d| same_but_numbers(d) == wanted),
            "the README shows {line:?}; the program drew {drawn:#?}"
        );
    }
}

/// `text` with every number (`12`, `0.05`, `8130`) as `#`.
fn same_but_numbers(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_digit() || *c == '.')
            {
                chars.next();
            }
            out.push('#');
        } else {
            out.push(c);
        }
    }
    out
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
    // Every config key of the spec, so that --help cannot fall behind it.
    let spec: serde_json::Value = serde_json::from_str(include_str!("../src/spec.json")).unwrap();
    let keys = spec["properties"]
        .as_object()
        .expect("the spec's properties");
    assert!(keys.len() >= 7);
    for key in keys.keys() {
        assert!(
            help.contains(key.as_str()),
            "--help lacks config key {key}:\n{help}"
        );
    }
    let version = Command::new(BIN).arg("-V").output().unwrap();
    assert_eq!(
        String::from_utf8(version.stdout).unwrap(),
        format!(
            "source-persistiq {} (commit {}, {})\n",
            env!("CARGO_PKG_VERSION"),
            env!("SPQ_COMMIT"),
            env!("SPQ_TARGET")
        )
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

/// Where a failing command's stdout goes in `the_stderr_line`.
#[derive(Clone, Copy, Debug)]
enum StdoutTo {
    File,
    Pipe,
}

/// Runs the binary with stdout to a file or a pipe and stderr captured;
/// returns the exit code and stderr.
fn stderr_of(args: &[&str], to: StdoutTo) -> (Option<i32>, String) {
    let dir = TempDir::new();
    let mut command = Command::new(BIN);
    command.args(args).stdin(std::process::Stdio::null());
    let out_path = dir.0.join("out.jsonl");
    if let StdoutTo::File = to {
        command.stdout(std::fs::File::create(&out_path).unwrap());
    }
    let out = command.output().unwrap();
    let stdout = match to {
        StdoutTo::File => std::fs::read_to_string(&out_path).unwrap(),
        StdoutTo::Pipe => String::from_utf8(out.stdout).unwrap(),
    };
    assert!(
        stdout.lines().all(|l| l.starts_with("{\"type\":")),
        "{args:?}: {stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains(support::mock::API_KEY), "{stderr}");
    (out.status.code(), stderr)
}

/// The one plain line a failing command leaves on stderr, checked to be
/// one whole line saying `words`, whether stdout is a file or a pipe.
fn the_stderr_line(args: &[&str], code: i32, words: &[&str]) -> String {
    let mut lines = Vec::new();
    for to in [StdoutTo::File, StdoutTo::Pipe] {
        let (got, stderr) = stderr_of(args, to);
        assert_eq!(got, Some(code), "{args:?} ({to:?}): {stderr}");
        assert!(
            stderr.ends_with('\n') && stderr.lines().count() == 1,
            "{args:?} ({to:?}): not one line: {stderr:?}"
        );
        assert!(
            stderr.starts_with("source-persistiq: "),
            "{args:?} ({to:?}): {stderr}"
        );
        for w in words {
            assert!(stderr.contains(w), "{args:?} ({to:?}): no {w:?}: {stderr}");
        }
        lines.push(stderr);
    }
    lines.swap_remove(0)
}

/// `read --config missing.json > out.jsonl` and friends: the reason is on
/// stderr too, not only in the TRACE ERROR in the file.
#[test]
fn a_failing_command_says_why_on_stderr_in_one_line() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let no_key = dir.json(
        "nokey.json",
        &serde_json::json!({"base_url": mock.base_url()}),
    );
    let bad_catalog = dir.file("cat.json", "{not json");
    let bad_state = dir.file("state.json", "[1]");
    let missing = "/no/such/config.json";

    // Config: a file that is not there, and one without the key.
    for command in ["check", "discover", "read"] {
        the_stderr_line(
            &[command, "--config", missing],
            1,
            &[&format!("{command} failed: "), "config file", missing],
        );
    }
    the_stderr_line(
        &["read", "--config", &no_key],
        1,
        &["read failed: ", "api_key"],
    );
    the_stderr_line(&["discover", "--config", &no_key], 1, &["api_key"]);
    // check answers FAILED with exit 0: still one line saying why.
    the_stderr_line(
        &["check", "--config", &no_key],
        0,
        &["check failed: ", "api_key"],
    );
    // Catalog and state.
    the_stderr_line(
        &["read", "--config", &cfg, "--catalog", &bad_catalog],
        1,
        &["catalog file"],
    );
    the_stderr_line(
        &[
            "read",
            "--config",
            &cfg,
            "--streams",
            "leads",
            "--state",
            &bad_state,
        ],
        1,
        &["state"],
    );
    the_stderr_line(
        &["read", "--config", &cfg, "--streams", "lead"],
        1,
        &["lead"],
    );
    assert!(mock.seen().is_empty(), "a request despite bad input");

    // Network: nothing listens on the port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable = dir.json("net.json", &config(&format!("http://127.0.0.1:{port}/v1/")));
    the_stderr_line(
        &["read", "--config", &unreachable, "--streams", "users"],
        1,
        &["read failed: stream users"],
    );
    the_stderr_line(&["check", "--config", &unreachable], 0, &["check failed: "]);

    // The API: a rejected key, and an answer that is no page.
    let wrong = dir.json(
        "wrong.json",
        &serde_json::json!({"api_key": "wrong-key-0123456789", "base_url": mock.base_url()}),
    );
    the_stderr_line(
        &["read", "--config", &wrong, "--streams", "users,tags"],
        1,
        &["read failed: ", "API key was rejected"],
    );
    the_stderr_line(
        &["check", "--config", &wrong],
        0,
        &["check failed: ", "API key"],
    );
    mock.add_fault(Fault::new(
        "users",
        None,
        usize::MAX,
        Action::Status(404, vec![], String::new()),
    ));
    mock.add_fault(Fault::new(
        "tags",
        None,
        usize::MAX,
        Action::Status(404, vec![], String::new()),
    ));
    let line = the_stderr_line(
        &[
            "read",
            "--config",
            &cfg,
            "--streams",
            "users,lead_statuses,tags",
        ],
        1,
        &[
            "read failed: stream users",
            "404",
            "(failed streams: users, tags)",
        ],
    );
    assert!(!line.contains("lead_statuses"), "{line}");

    // Success: nothing on stderr, stdout in a file or on a pipe.
    for to in [StdoutTo::File, StdoutTo::Pipe] {
        let (code, stderr) = stderr_of(
            &["read", "--config", &cfg, "--streams", "lead_statuses"],
            to,
        );
        assert_eq!(code, Some(0), "{to:?}: {stderr}");
        assert_eq!(stderr, "", "{to:?}");
    }
}

/// `start_date` is described once, in the spec: `--help` prints that
/// text, and the README's config table says the same (code marks aside).
#[test]
fn start_date_is_described_alike_in_the_spec_help_and_readme() {
    let spec = support::run(&["spec"]);
    let spec = &spec.of_type("SPEC")[0]["spec"]["connectionSpecification"];
    let described = spec["properties"]["start_date"]["description"]
        .as_str()
        .unwrap();
    for stream in ["leads", "events", "replies"] {
        assert!(described.contains(stream), "{described}");
    }
    let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let help = Command::new(BIN).arg("--help").output().unwrap();
    let help = words(&String::from_utf8(help.stdout).unwrap());
    assert!(
        help.contains(&format!("start_date {described}")),
        "--help: {help}"
    );
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `start_date` |"))
        .expect("README's config table has start_date");
    let meaning = row.trim_end_matches('|').rsplit('|').next().unwrap();
    assert_eq!(words(&meaning.replace('`', "")), described, "README: {row}");
}

/// The live lines drawn on `screen` (each redraw not ended by a newline),
/// and the final lines (ended by one).
fn live_and_final(screen: &str) -> (Vec<String>, Vec<String>) {
    let (mut live, mut last) = (Vec::new(), Vec::new());
    for drawn in screen.split("\r\x1b[2K").filter(|d| !d.is_empty()) {
        match drawn.strip_suffix("\r\n") {
            Some(line) => last.push(line.to_string()),
            None => live.push(drawn.to_string()),
        }
    }
    (live, last)
}

/// A rate-limited read whose reason is long, on a terminal `setup` sizes
/// (`stty cols N;` runs on the pty the connector draws on).
fn long_waits_on_a_terminal(setup: &str, schedule: &[f64]) -> String {
    let mock = MockServer::start(Options::default());
    let body = format!(
        r#"{{"status":"error","error":{{"reason":"rate_limited","message":"{}"}}}}"#,
        "the upstream cluster is busy, please slow down and try again later ".repeat(2)
    );
    mock.add_fault(Fault::new(
        "users",
        None,
        usize::MAX,
        Action::Status(503, vec![], body),
    ));
    let dir = TempDir::new();
    let mut cfg = config(&mock.base_url());
    cfg["retry_schedule_seconds"] = serde_json::json!(schedule);
    let cfg = dir.json("c.json", &cfg);
    on_a_terminal_with_code(
        &format!("{setup} {BIN} read --config {cfg} --streams users >/dev/null"),
        1,
    )
}

/// A live line never wraps, or each redraw would leave its first rows
/// behind: it is cut to the window with an ellipsis, keeping the retry
/// count; the stream's final line stays whole.
#[test]
fn the_live_line_fits_a_narrow_and_a_very_narrow_window() {
    for cols in [60usize, 24, 3] {
        let screen = long_waits_on_a_terminal(&format!("stty cols {cols};"), &[0.05, 0.05]);
        let (live, last) = live_and_final(&screen);
        assert!(live.len() >= 2, "{cols}: {screen:?}");
        for line in &live {
            assert!(
                line.chars().count() < cols,
                "{cols} columns: {line:?} ({} chars)",
                line.chars().count()
            );
        }
        if cols == 60 {
            assert!(
                live.iter()
                    .any(|l| l.contains('\u{2026}') && l.ends_with("; retry 2 of 2 in 0.05 s")),
                "{live:#?}"
            );
        }
        assert!(
            last.iter()
                .any(|l| l.starts_with("users: FAILED after 0 records")),
            "{cols}: {screen:?}"
        );
    }
}

/// Narrowed while it waits: the next draw fits the new width.
#[test]
fn the_live_line_follows_a_resize() {
    let screen = long_waits_on_a_terminal(
        "stty cols 120; (sleep 1; stty cols 30 </dev/tty) &",
        &[2.0, 2.0],
    );
    let (live, _) = live_and_final(&screen);
    let last = live.last().expect("a live line");
    assert!(live.iter().all(|l| l.chars().count() < 120), "{live:#?}");
    assert!(last.chars().count() < 30, "after the resize: {live:#?}");
    // Drawn before the resize (1 s into a 2 s wait), wider than 30.
    assert!(live.iter().any(|l| l.chars().count() >= 30), "{live:#?}");
}
