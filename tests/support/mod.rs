//! Shared helpers of the integration tests: run the real binary, write
//! input files, and read its output back as Airbyte messages.

pub mod mock;
pub mod tls;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const BIN: &str = env!("CARGO_BIN_EXE_source-persistiq");

/// Every stream of the source, in the order `discover` lists them.
pub const STREAMS: [&str; 10] = [
    "users",
    "leads",
    "campaigns",
    "lead_statuses",
    "lead_fields",
    "dnc_domains",
    "tags",
    "events",
    "campaign_leads",
    "replies",
];

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "spq-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes `content` to `name` and returns the path as a string.
    pub fn file(&self, name: &str, content: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, content).unwrap();
        p.to_string_lossy().into_owned()
    }

    pub fn json(&self, name: &str, value: &Value) -> String {
        self.file(name, &value.to_string())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config for the mock, with a short retry schedule so tests stay fast.
pub fn config(base_url: &str) -> Value {
    json!({
        "api_key": mock::API_KEY,
        "base_url": base_url,
        "retry_schedule_seconds": [0.05, 0.05],
    })
}

/// A configured catalog naming `streams` in this order.
pub fn catalog(streams: &[&str], sync_mode: &str) -> Value {
    let entries: Vec<Value> = streams
        .iter()
        .map(|name| {
            json!({
                "stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
                "sync_mode": sync_mode,
                "destination_sync_mode": "overwrite",
            })
        })
        .collect();
    json!({ "streams": entries })
}

/// What one run of the binary did.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub messages: Vec<Value>,
}

/// Runs the binary; checks that stdout holds only JSON objects, one a line,
/// and that no secret appears anywhere in its output.
pub fn run(args: &[&str]) -> Run {
    let output = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    finish(output, &[mock::API_KEY])
}

pub fn finish(output: Output, secrets: &[&str]) -> Run {
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    for secret in secrets {
        assert!(
            !stdout.contains(secret),
            "the API key leaked to stdout:\n{stdout}"
        );
        assert!(
            !stderr.contains(secret),
            "the API key leaked to stderr:\n{stderr}"
        );
    }
    let messages = stdout
        .lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v.is_object() && v["type"].is_string(), "not a message: {l}");
            v
        })
        .collect();
    Run {
        code: output.status.code(),
        stdout,
        stderr,
        messages,
    }
}

impl Run {
    pub fn of_type(&self, kind: &str) -> Vec<&Value> {
        self.messages.iter().filter(|m| m["type"] == kind).collect()
    }

    /// The `data` of every RECORD of `stream`, as the exact bytes written.
    pub fn record_data(&self, stream: &str) -> Vec<String> {
        let prefix = format!(r#"{{"type":"RECORD","record":{{"stream":"{stream}","data":"#);
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|rest| {
                let end = rest
                    .rfind(r#","emitted_at":"#)
                    .expect("emitted_at after data");
                rest[..end].to_string()
            })
            .collect()
    }

    /// The `reasons` of the STREAM_STATUS messages of `stream` that have any.
    pub fn status_reasons(&self, stream: &str) -> Vec<Value> {
        self.messages
            .iter()
            .filter(|m| m["type"] == "TRACE" && m["trace"]["type"] == "STREAM_STATUS")
            .map(|m| &m["trace"]["stream_status"])
            .filter(|s| s["stream_descriptor"]["name"] == stream && !s["reasons"].is_null())
            .map(|s| s["reasons"].clone())
            .collect()
    }

    /// STREAM_STATUS values of `stream`, in order.
    pub fn statuses(&self, stream: &str) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m["type"] == "TRACE" && m["trace"]["type"] == "STREAM_STATUS")
            .filter(|m| m["trace"]["stream_status"]["stream_descriptor"]["name"] == stream)
            .map(|m| {
                m["trace"]["stream_status"]["status"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    /// The run's one TRACE ERROR, after checking that the run failed with
    /// exit code 1 and exactly one error, of `failure_type`. `case` names
    /// the case in a failure message.
    pub fn the_error(&self, failure_type: &str, case: &str) -> &Value {
        assert_eq!(self.code, Some(1), "{case}: {}", self.stdout);
        let errors = self.errors();
        assert_eq!(errors.len(), 1, "{case}: {}", self.stdout);
        assert_eq!(errors[0]["failure_type"], failure_type, "{case}");
        errors[0]
    }

    /// `the_error`'s message, checked to contain `words`.
    pub fn the_error_saying(&self, failure_type: &str, words: &str) -> &str {
        let message = self.the_error(failure_type, words)["message"]
            .as_str()
            .expect("a message");
        assert!(message.contains(words), "{message}");
        message
    }

    pub fn errors(&self) -> Vec<&Value> {
        self.messages
            .iter()
            .filter(|m| m["type"] == "TRACE" && m["trace"]["type"] == "ERROR")
            .map(|m| &m["trace"]["error"])
            .collect()
    }

    pub fn logs(&self, level: &str) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m["type"] == "LOG" && m["log"]["level"] == level)
            .map(|m| m["log"]["message"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Runs the binary until the mock sees a request whose query starts with
/// `query`, then sends it `signal` ("TERM", "INT"). Returns its run and how
/// long it took to exit after the signal. Stdout is drained meanwhile, or
/// the connector would block on a full pipe.
pub fn interrupt_at(
    mock: &mock::MockServer,
    query: &str,
    signal: &str,
    args: &[&str],
) -> (Run, std::time::Duration) {
    interrupt_when(mock, |s| s.query.starts_with(query), signal, args)
}

/// Runs the binary until the mock sees a request for which `until` holds,
/// then sends it `signal`, as `interrupt_at` does. Fails, with the
/// binary's output, if it exits before such a request comes.
pub fn interrupt_when(
    mock: &mock::MockServer,
    until: impl Fn(&mock::Seen) -> bool,
    signal: &str,
    args: &[&str],
) -> (Run, std::time::Duration) {
    use std::io::Read;
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the binary");
    let mut pipe = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        pipe.read_to_end(&mut text).expect("read stdout");
        text
    });
    while !mock.seen().iter().any(&until) {
        if child.try_wait().expect("poll the binary").is_some() {
            let output = child.wait_with_output().expect("wait for the binary");
            let stdout =
                String::from_utf8_lossy(&reader.join().expect("stdout reader")).into_owned();
            panic!(
                "the binary exited ({}) before the awaited request:\n{stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let sent = std::time::Instant::now();
    let kill = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let mut output = child.wait_with_output().expect("wait for the binary");
    let took = sent.elapsed();
    output.stdout = reader.join().expect("stdout reader");
    (finish(output, &[mock::API_KEY]), took)
}

/// A read of `stream` in `mode` (with `state`, a state file's JSON, if
/// given), killed with SIGTERM once the mock sees the request `stalled`
/// names (a path and a page), which it stalls; the run so far.
pub fn killed_read(
    mock: &mock::MockServer,
    dir: &TempDir,
    stream: &str,
    mode: &str,
    state: Option<&Value>,
    stalled: (&str, u64),
) -> Run {
    let (path, page) = stalled;
    mock.add_fault(mock::Fault::stall(
        path,
        page,
        std::time::Duration::from_secs(30),
    ));
    let cfg = dir.json("c.json", &config(&mock.base_url()));
    let cat = dir.json("cat.json", &catalog(&[stream], mode));
    let mut argv = vec!["read", "--config", &cfg, "--catalog", &cat];
    let st;
    if let Some(state) = state {
        st = dir.json("state.json", state);
        argv.extend(["--state", &st]);
    }
    let hit = |s: &mock::Seen| s.is(path, page);
    let before = mock.seen().iter().filter(|s| hit(s)).count();
    let (run, _) = interrupt_when(
        mock,
        |_| mock.seen().iter().filter(|s| hit(s)).count() > before,
        "TERM",
        &argv,
    );
    assert_ne!(
        run.code,
        Some(0),
        "the read was to be killed: {}",
        run.stdout
    );
    run
}

/// When the mock saw each request for page `page` of `path`.
pub fn requests_for(mock: &mock::MockServer, path: &str, page: u64) -> Vec<std::time::SystemTime> {
    mock.seen()
        .into_iter()
        .filter(|s| s.is(path, page))
        .map(|s| s.at)
        .collect()
}

/// Runs `read` against a config and (optionally) a catalog of `streams`.
pub fn read(dir: &TempDir, config: &Value, streams: Option<&[&str]>) -> Run {
    let cfg = dir.json("config.json", config);
    match streams {
        Some(s) => {
            let cat = dir.json("catalog.json", &catalog(s, "full_refresh"));
            run(&["read", "--config", &cfg, "--catalog", &cat])
        }
        None => run(&["read", "--config", &cfg]),
    }
}

/// Runs `read` of `streams` in `mode` against the mock, with `state` (a
/// JSON array) if given, and `extra` config keys.
pub fn read_mode(
    mock: &mock::MockServer,
    dir: &TempDir,
    streams: &[&str],
    mode: &str,
    state: Option<&Value>,
    extra: Value,
) -> Run {
    let mut cfg = config(&mock.base_url());
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let cfg = dir.json("c.json", &cfg);
    let cat = dir.json("cat.json", &catalog(streams, mode));
    let mut args = vec!["read", "--config", &cfg, "--catalog", &cat];
    let st;
    if let Some(state) = state {
        st = dir.json("state.json", state);
        args.extend(["--state", &st]);
    }
    run(&args)
}

/// An incremental read of one stream, from `state` if given.
pub fn read_incremental(
    mock: &mock::MockServer,
    dir: &TempDir,
    stream: &str,
    state: Option<&Value>,
) -> Run {
    read_mode(mock, dir, &[stream], "incremental", state, json!({}))
}

/// A state file (a JSON array) with one per-stream state.
pub fn stream_state(stream: &str, state: Value) -> Value {
    json!([{"type": "STREAM", "stream": {
        "stream_descriptor": {"name": stream}, "stream_state": state}}])
}

/// The `stream_state` of a stream's last STATE.
pub fn final_state(run: &Run, stream: &str) -> Value {
    states(run, stream).pop().expect("a STATE").0
}

/// The STATE messages of a stream, in order, as (stream_state, recordCount).
pub fn states(run: &Run, stream: &str) -> Vec<(Value, f64)> {
    run.of_type("STATE")
        .into_iter()
        .filter(|m| m["state"]["stream"]["stream_descriptor"]["name"] == stream)
        .map(|m| {
            (
                m["state"]["stream"]["stream_state"].clone(),
                m["state"]["sourceStats"]["recordCount"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// A state file holding the last STATE each stream emitted, as Airbyte keeps it.
pub fn state_file(run: &Run) -> Value {
    let mut last: Vec<(String, Value)> = Vec::new();
    for m in run.of_type("STATE") {
        let name = m["state"]["stream"]["stream_descriptor"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        last.retain(|(n, _)| *n != name);
        last.push((name, m["state"].clone()));
    }
    Value::Array(last.into_iter().map(|(_, s)| s).collect())
}

pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The ids of records (JSON texts), sorted: equal lists mean every record
/// exactly once.
pub fn ids(records: &[String]) -> Vec<String> {
    let mut ids: Vec<String> = records
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_str(r).expect("a record is JSON");
            v["id"].as_str().expect("a record id").to_string()
        })
        .collect();
    ids.sort();
    ids
}

/// The mock behind a TLS front whose certificate a CA of this run signed.
pub struct Https {
    pub mock: mock::MockServer,
    pub front: tls::TlsFront,
    pub ca: tls::TestCa,
    pub dir: TempDir,
    /// The CA's certificate in a file.
    pub ca_file: String,
}

impl Https {
    pub fn start(names: &[&str], expired: bool) -> Https {
        let mock = mock::MockServer::start(mock::Options::default());
        let ca = tls::TestCa::new("Test Corp Inspection CA");
        let front = tls::TlsFront::start(mock.addr, &ca.server_cert(names, expired));
        let dir = TempDir::new();
        let ca_file = dir.file("corp-ca.pem", &ca.pem);
        Https {
            mock,
            front,
            ca,
            dir,
            ca_file,
        }
    }

    pub fn usual() -> Https {
        Https::start(&tls::MOCK_NAMES, false)
    }

    /// The test config for `https://HOST:PORT/v1/`.
    pub fn config(&self, host: &str) -> Value {
        config(&self.front.base_url(host))
    }

    /// A file holding another CA's certificate, one the mock's is not from.
    pub fn other_ca_file(&self) -> String {
        self.dir
            .file("other-ca.pem", &tls::TestCa::new("Some Other CA").pem)
    }
}
