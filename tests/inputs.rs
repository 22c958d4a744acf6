//! Bad input is refused clearly, garbage never panics, and the process
//! behaves in pipelines and under signals.

use crate::support;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::mock::{Action, Fault, MockServer, Options, API_KEY};
use support::*;

/// Config files that parse as JSON but are wrong, with the key the error must name.
fn invalid_configs() -> Vec<(Value, &'static str)> {
    let ok = |changes: Value| {
        let mut c = json!({"api_key": API_KEY, "base_url": "http://127.0.0.1:9/v1/"});
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    vec![
        (json!([1, 2]), "JSON object"),
        (json!("text"), "JSON object"),
        (ok(json!({"api_key": null})), "api_key"),
        (ok(json!({"api_key": ""})), "api_key"),
        (ok(json!({"api_key": 12345})), "api_key"),
        (ok(json!({"api_key": ["k"]})), "api_key"),
        (ok(json!({"base_url": "not a url"})), "base_url"),
        (
            ok(json!({"base_url": "http://api.persistiq.com/v1/"})),
            "base_url",
        ),
        (ok(json!({"base_url": "http://10.0.0.8/v1/"})), "base_url"),
        (ok(json!({"base_url": "ftp://127.0.0.1/v1/"})), "base_url"),
        (ok(json!({"base_url": 7})), "base_url"),
        (
            ok(json!({"retry_schedule_seconds": 5})),
            "retry_schedule_seconds",
        ),
        (
            ok(json!({"retry_schedule_seconds": [1, -2]})),
            "retry_schedule_seconds",
        ),
        (
            ok(json!({"retry_schedule_seconds": ["1"]})),
            "retry_schedule_seconds",
        ),
        (ok(json!({"timeout_seconds": 0})), "timeout_seconds"),
        (ok(json!({"timeout_seconds": -1})), "timeout_seconds"),
        (ok(json!({"timeout_seconds": "60"})), "timeout_seconds"),
    ]
}

#[test]
fn check_with_an_invalid_config_says_which_key_and_exits_0() {
    let dir = TempDir::new();
    for (cfg, key) in invalid_configs() {
        let path = dir.json("c.json", &cfg);
        let run = run(&["check", "--config", &path]);
        assert_eq!(run.code, Some(0), "{cfg}");
        let errors = run.errors();
        assert_eq!(errors.len(), 1, "{cfg}");
        assert_eq!(errors[0]["failure_type"], "config_error");
        assert!(
            errors[0]["message"].as_str().unwrap().contains(key),
            "{cfg}: {}",
            errors[0]
        );
        let status = run.of_type("CONNECTION_STATUS");
        assert_eq!(status.len(), 1);
        assert_eq!(status[0]["connectionStatus"]["status"], "FAILED");
    }
}

#[test]
fn discover_and_read_with_an_invalid_config_exit_1() {
    let dir = TempDir::new();
    for (cfg, key) in invalid_configs() {
        let path = dir.json("c.json", &cfg);
        for args in [
            vec!["discover", "--config", &path],
            vec!["read", "--config", &path],
        ] {
            let run = run(&args);
            let error = run.the_error("config_error", &format!("{args:?} {cfg}"));
            assert!(error["message"].as_str().unwrap().contains(key), "{cfg}");
            assert!(run.of_type("CATALOG").is_empty() && run.of_type("RECORD").is_empty());
        }
    }
}

#[test]
fn unreadable_or_non_json_config_files_exit_1() {
    let dir = TempDir::new();
    let not_json = dir.file("c.json", "api_key = 1");
    let empty = dir.file("e.json", "");
    let a_dir = path_str(&dir.0);
    for path in [
        not_json.as_str(),
        empty.as_str(),
        a_dir.as_str(),
        "/no/such/file.json",
    ] {
        for cmd in ["check", "discover", "read"] {
            let run = run(&[cmd, "--config", path]);
            let error = run.the_error("config_error", &format!("{cmd} {path}"));
            assert!(error["message"].as_str().unwrap().contains("config file"));
        }
    }
}

#[test]
fn a_file_that_cannot_be_read_is_named_for_what_it_is() {
    let dir = TempDir::new();
    let config = dir.json("config.json", &json!({"api_key": API_KEY}));
    let a_dir = path_str(&dir.0);
    for path in [a_dir.as_str(), "/no/such/file.json"] {
        let words = format!("cannot read the config file {path}");
        run(&["read", "--config", path]).the_error_saying("config_error", &words);
        for what in ["catalog", "state"] {
            let run = run(&["read", "--config", &config, &format!("--{what}"), path]);
            let words = format!("cannot read the {what} file {path}");
            run.the_error_saying("config_error", &words);
        }
    }
}

#[test]
fn bad_catalogs_fail_before_any_request() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let invalid_mode = json!({"streams": [{
        "stream": {"name": "__AIRBYTE__stream_that_does_not_exist", "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
        "sync_mode": "INVALID", "destination_sync_mode": "overwrite"}]});
    let cases = [
        ("/no/such/catalog.json".to_string(), "catalog file"),
        (dir.file("a.json", "{not json"), "catalog file"),
        (dir.json("b.json", &json!({"stream": []})), "streams"),
        (
            dir.json(
                "c2.json",
                &json!({"streams": [{"sync_mode": "full_refresh"}]}),
            ),
            "stream",
        ),
        (dir.json("d.json", &invalid_mode), "INVALID"),
        (
            dir.json(
                "f.json",
                &json!({"type": "CATALOG", "catalog": {"streams": []}}),
            ),
            "configured catalog",
        ),
        (
            dir.json(
                "e.json",
                &catalog(&["users", "tags", "users"], "full_refresh"),
            ),
            "twice",
        ),
    ];
    for (path, words) in cases {
        let run = run(&["read", "--config", &cfg, "--catalog", &path]);
        let error = run.the_error("config_error", &path.to_string());
        assert!(
            error["message"].as_str().unwrap().contains(words),
            "{}",
            error
        );
    }
    assert!(
        mock.seen().is_empty(),
        "a request was made despite a bad catalog"
    );
}

#[test]
fn state_files_are_lenient_but_must_be_json() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let cat = dir.json("cat.json", &catalog(&["users"], "full_refresh"));
    let accepted = [
        "[]",
        "null",
        r#"[{"type":"STREAM","stream":{"stream_descriptor":{"name":"users","namespace":null},"stream_state":null},"global_":null,"data":null,"sourceStats":null}]"#,
        r#"[{"type":"STREAM","stream":{"stream_descriptor":{"name":"not_ours"},"stream_state":{"x":1}}}]"#,
        r#"[{"type":"GLOBAL","global":{"shared_state":{},"stream_states":[]}}]"#,
    ];
    for state in accepted {
        let st = dir.file("s.json", state);
        let run = run(&["read", "--config", &cfg, "--catalog", &cat, "--state", &st]);
        assert_eq!(run.code, Some(0), "{state}: {}", run.stdout);
        assert_eq!(run.record_data("users"), mock.records("users"));
    }
    for state in ["[{", "\"a string\"", "[1]"] {
        let st = dir.file("s.json", state);
        let run = run(&["read", "--config", &cfg, "--catalog", &cat, "--state", &st]);
        assert_eq!(run.code, Some(1), "{state}");
        assert_eq!(run.errors()[0]["failure_type"], "config_error", "{state}");
        assert!(run.of_type("RECORD").is_empty());
    }
}

/// `read ... | head -1`: the reader leaves; the connector stops at once,
/// exits 1 and says so on stderr (a shell's `pipefail` sees it).
#[test]
fn a_closed_stdout_ends_the_sync_with_a_line_on_stderr() {
    let mock = MockServer::start(Options {
        leads: 5000,
        ..Options::default()
    });
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let mut child = Command::new(BIN)
        .args(["read", "--config", &cfg, "--streams", "leads"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with(r#"{"type":"#));
    drop(stdout);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.starts_with("source-persistiq: read failed: the reader of stdout closed it")
            && stderr.lines().count() == 1,
        "stderr: {stderr}"
    );
    assert!(
        mock.seen().len() < 50,
        "it went on syncing after its reader left"
    );
}

/// `read ... 2>&1 | head -c 10`: stdout and stderr are one pipe whose
/// reader left. The line for stderr cannot be written either; the exit
/// code still says so, and nothing panics (`eprintln!` would, exit 101).
#[test]
fn a_closed_pipe_for_both_outputs_exits_1_without_a_panic() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let out = Command::new("bash")
        .args([
            "-c",
            &format!(
                "{BIN} read --config {cfg} 2>&1 | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}"
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}

/// `>&-` and `> /dev/full`: exit 1 and one line on stderr saying what to
/// do, before any request for a closed stdout (whose fd the next socket
/// would take).
#[test]
fn a_closed_or_full_stdout_fails_with_a_line_on_stderr() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    for command in ["spec", "check", "discover", "read"] {
        for (to, words) in [
            (">&-", "stdout is closed (`>&-`)"),
            ("> /dev/full", "No space left on device"),
        ] {
            let args = if command == "spec" {
                String::new()
            } else {
                format!("--config {cfg}")
            };
            let out = Command::new("bash")
                .args(["-c", &format!("exec {BIN} {command} {args} {to}")])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let case = format!("{command} {to}: {stderr}");
            assert_eq!(out.status.code(), Some(1), "{case}");
            assert!(
                stderr.starts_with(&format!("source-persistiq: {command} failed: "))
                    && stderr.contains(words)
                    && stderr.lines().count() == 1,
                "{case}"
            );
        }
    }
    let requests = mock.seen();
    assert!(
        requests.len() <= 2,
        "only check and read to /dev/full ask the API: {}",
        requests.len()
    );
}

/// Any signal whose default is to end the process, mid-sync: gone within
/// a second, of that signal, whole lines only.
#[test]
fn a_signal_stops_the_sync_at_once_leaving_whole_lines() {
    // QUIT too, in `living::any_ending_signal_during_a_blocked_write_...`,
    // where no core file can be written (`ulimit -c 0`).
    for signal in ["HUP", "INT", "TERM", "ALRM", "USR1", "USR2"] {
        let mock = MockServer::start(Options::default());
        // Page 4 takes forever: the signal arrives while the connector
        // waits; pages 1-3 are out, each written as soon as it was checked.
        mock.add_fault(Fault::stall("leads", 4, Duration::from_secs(20)));
        let dir = TempDir::new();
        let cfg = dir.json("c.json", &config(&mock.base_url()));
        let args = ["read", "--config", &cfg, "--streams", "leads"];
        let (run, took) = interrupt_at(&mock, "page=4", signal, &args);
        assert!(took < Duration::from_secs(1), "SIG{signal}: took {took:?}");
        assert_eq!(run.code, None, "SIG{signal}: not killed by it");
        assert!(
            run.stdout.ends_with('\n'),
            "SIG{signal}: a partial line was left"
        );
        assert_eq!(
            run.record_data("leads"),
            mock.records("leads")[..300],
            "SIG{signal}"
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

/// Garbage everywhere: the process always ends with a clean exit code
/// (never an abort) and no panic text.
#[test]
fn garbage_never_panics() {
    let garbage_bodies: Vec<String> = vec![
        String::new(),
        "\u{0}\u{1}\u{2}".into(),
        "[".repeat(10_000),
        r#"{"leads": {}}"#.into(),
        r#"{"leads": [null, "x", 1e999]}"#.into(),
        r#"{"leads": [{"id": 1e400}], "has_more": "sure"}"#.into(),
        r#"{"leads": [], "has_more": true, "next_page": 42}"#.into(),
        format!(r#"{{"leads": [{{"id": "{}"}}]}}"#, "\u{fffd}".repeat(1000)),
        "{\"leads\": [{\"bad\": \"\\ud800\"}]}".into(),
        "\u{feff}{\"leads\": []}".into(),
    ];
    for body in &garbage_bodies {
        let mock = MockServer::start(Options::default());
        mock.add_fault(Fault::new(
            "leads",
            None,
            usize::MAX,
            Action::Body(body.clone()),
        ));
        let dir = TempDir::new();
        // `read` checks that every stdout line is strict JSON: a lone
        // surrogate escape or a number beyond a double must not pass.
        let run = read(&dir, &config(&mock.base_url()), Some(&["leads"]));
        assert!(
            matches!(run.code, Some(0) | Some(1)),
            "body {body:.40}: exit {:?}",
            run.code
        );
        // A failed read says why in one line; a sync that went on, nothing.
        let lines = if run.code == Some(0) { 0 } else { 1 };
        assert_eq!(run.stderr.lines().count(), lines, "{}", run.stderr);
        assert!(run.stdout.ends_with('\n'));
    }
    let dir = TempDir::new();
    let garbage_json = [
        "null",
        "0",
        "-1e999",
        "\"\\u0000\"",
        "{}",
        "[]",
        "[[[[[]]]]]",
        "{\"streams\": null}",
        "{\"streams\": [null]}",
        "{\"streams\": [{\"stream\": {\"name\": 5}, \"sync_mode\": 1}]}",
    ];
    let good_cfg = dir.json(
        "good.json",
        &json!({"api_key": "test-key-123", "base_url": "http://127.0.0.1:9/"}),
    );
    for text in garbage_json {
        let f = dir.file("g.json", text);
        for args in [
            vec!["check", "--config", &f],
            vec!["discover", "--config", &f],
            vec!["read", "--config", &f],
            vec!["read", "--config", &good_cfg, "--catalog", &f],
            vec![
                "read",
                "--config",
                &good_cfg,
                "--streams",
                "nope",
                "--state",
                &f,
            ],
        ] {
            let out = Command::new(BIN).args(&args).output().unwrap();
            let code = out.status.code();
            assert!(
                matches!(code, Some(0) | Some(1)),
                "{args:?} {text}: {code:?}"
            );
            assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
        }
    }
}

/// `trap '' INT` (or nohup) before exec: the ignored signal stays ignored.
#[test]
fn an_ignored_sigint_stays_ignored() {
    let mock = MockServer::start(Options::default());
    mock.add_fault(Fault::stall("leads", 4, Duration::from_millis(1500)));
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    // Output to a file: a pipe nobody reads yet would fill and stall the sync.
    let out_path = dir.0.join("out.jsonl");
    let script = format!("trap '' INT; exec {BIN} read --config {cfg} --streams leads");
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while !mock.seen().iter().any(|s| s.query == "page=4") {
        std::thread::sleep(Duration::from_millis(10));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut output = child.wait_with_output().unwrap();
    output.stdout = std::fs::read(&out_path).unwrap();
    let run = finish(output, &[API_KEY]);
    assert_eq!(run.code, Some(0), "SIGINT was not ignored");
    assert_eq!(run.record_data("leads"), mock.records("leads"));
}

/// A misspelt optional key would be ignored in silence, its default used:
/// a WARN in a LOG and on stderr names it and the key it is closest to.
#[test]
fn an_unknown_config_key_is_a_warning_naming_the_closest_key() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let mut cfg = config(&mock.base_url());
    cfg["start_dat"] = json!("2024-01-01T00:00:00Z");
    cfg["colour"] = json!("blue");
    let cfg = dir.json("c.json", &cfg);
    for command in ["check", "discover", "read"] {
        let args = [command, "--config", &cfg, "--streams", "users"];
        let run = run(&args[..if command == "read" { 5 } else { 3 }]);
        assert_eq!(run.code, Some(0), "{command}: {}", run.stderr);
        let warnings = run.logs("WARN");
        let said = "config key `start_dat` is not one this connector knows (did you mean \
                    `start_date`?); it is ignored";
        assert!(
            warnings.iter().any(|w| w.starts_with(said)),
            "{command}: {warnings:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("config key `colour` is not one this connector knows; it is ignored. Known keys: api_key, ")),
            "{command}: {warnings:?}"
        );
        assert!(
            run.stderr
                .contains(&format!("source-persistiq: warning: {said}")),
            "{command}: {}",
            run.stderr
        );
    }
}

/// base_url without its `/v1/`: the first request's 404 says what to fix,
/// instead of a bare "HTTP 404".
#[test]
fn a_404_on_the_first_request_says_base_url_must_end_in_v1() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let root = mock.base_url().trim_end_matches("v1/").to_string();
    let cfg = dir.json("c.json", &config(&root));
    let said = format!(
        "the API answered HTTP 404 (not found) to the first request, to {}; check base_url: it \
         must end in /v1/ (it is {root}; PersistIq's API is at https://api.persistiq.com/v1/)",
        root.trim_end_matches('/')
    );
    let check = run(&["check", "--config", &cfg]);
    let status = &check.of_type("CONNECTION_STATUS")[0]["connectionStatus"];
    assert_eq!(status["status"], "FAILED");
    assert!(
        status["message"].as_str().unwrap().ends_with(&said),
        "{status}"
    );
    let read = run(&["read", "--config", &cfg, "--streams", "users,leads"]);
    assert!(read
        .the_error_saying("config_error", "404")
        .ends_with(&said));
    assert_eq!(
        read.statuses("leads"),
        ["INCOMPLETE"],
        "the next stream would 404 too"
    );
    assert!(read.stderr.contains(&said), "{}", read.stderr);
    assert_eq!(mock.seen().len(), 2, "one request each, no retry");
}

/// A config written under `umask 077` by one user, read by a process
/// running as another (the image's uid 1000): the error says who it runs
/// as and who owns the file.
#[test]
fn an_unreadable_config_names_the_user_it_runs_as() {
    let dir = TempDir::new();
    let cfg = dir.json("c.json", &config("http://127.0.0.1:9/v1/"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let root = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    // Root reads any file: run as uid 1000, as the image does.
    let mut command = if root.unwrap_or(false) {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", "1000", "--regid", "1000", "--clear-groups", BIN]);
        c
    } else {
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o000)).unwrap();
        Command::new(BIN)
    };
    let out = command.args(["check", "--config", &cfg]).output().unwrap();
    let run = finish(out, &[API_KEY]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let message = run.the_error_saying("config_error", "Permission denied");
    assert!(
        message.contains("; this process runs as uid ")
            && message.contains("the Docker image runs as uid 1000"),
        "{message}"
    );
    assert!(
        run.stderr.contains("this process runs as uid"),
        "{}",
        run.stderr
    );
}
