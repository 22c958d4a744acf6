//! Terminal and script ergonomics: live progress only at a terminal,
//! `--streams`, `--help` and `--version`.

mod support;

use std::process::Command;
use support::mock::{Action, Fault, MockServer, Options};
use support::*;

/// Runs `command` with a pseudo-terminal as its stderr (through util-linux
/// `script`), its stdout sent to /dev/null; returns what the terminal showed.
fn on_a_terminal(command: &str) -> String {
    let out = Command::new("script")
        .args(["-qefc", &format!("{command} >/dev/null"), "/dev/null"])
        .output()
        .expect("util-linux script runs the command under a pty");
    assert!(out.status.success(), "{command}: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    assert!(
        screen.contains("leads: 1234 records, 13 pages"),
        "{screen:?}"
    );
    assert!(screen.contains("users: 3 records, 1 page,"), "{screen:?}");
    assert!(screen.contains("records/s"), "{screen:?}");
    assert!(
        screen.contains("waiting: stream users, page 1: HTTP 503; retry 1 of 2"),
        "{screen:?}"
    );
    assert!(!screen.contains(support::mock::API_KEY));
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
