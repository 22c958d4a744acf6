//! A full sync with no API key and no network: the tests' mock PersistIq
//! server on loopback, and the release connector reading from it.
//!
//!   cargo run --release --example demo                 # read every stream
//!   cargo run --release --example demo -- check        # any connector command
//!   cargo run --release --example demo -- --serve 8765 # only the mock server
//!   cargo run --release --example demo -- --serve 0 --rate 5/2  # ... rate limited
//!   cargo run --release --example demo -- --serve 0 --tls ca.pem # ... over HTTPS
//!
//! With `--tls CA_FILE` the mock serves HTTPS with a certificate from a CA
//! made for this run, whose certificate goes to CA_FILE (for SSL_CERT_FILE
//! or the config's `ca_certificate`); it is valid for localhost, 127.0.0.1
//! and api.persistiq.test.
//!
//! The connector's Airbyte messages go to stdout; a summary goes to stderr.
//! With stdout sent to a file (`> messages.jsonl`) the connector writes the
//! file itself and, at a terminal, draws its live progress on stderr.

#[path = "../tests/support/mock.rs"]
mod mock;
#[path = "shared/connector.rs"]
mod shared;
#[path = "../tests/support/tls.rs"]
mod tls;

use mock::{MockServer, Options};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::process::{Command, ExitCode, Stdio};

/// The exit code of a demo that could not do its job (not the connector's).
const DEMO_FAILED: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("--serve") {
        serve(
            args.get(1).map(String::as_str).unwrap_or("0"),
            &args[2.min(args.len())..],
        )
    } else {
        demo(args)
    };
    // One line saying what is wrong and what to do; never a panic.
    result.unwrap_or_else(|why| {
        eprintln!("demo: {why}");
        ExitCode::from(DEMO_FAILED)
    })
}

/// Runs one connector command against the mock and sums up its messages.
fn demo(args: Vec<String>) -> Result<ExitCode, String> {
    let server = MockServer::try_start_on("127.0.0.1:0", Options::default())
        .map_err(|e| format!("cannot start the mock server on loopback: {e}"))?;
    let dir = std::env::temp_dir().join(format!("source-persistiq-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let config = dir.join("config.json");
    let config_json = format!(
        r#"{{"api_key":"{}","base_url":"{}","retry_schedule_seconds":[0.1,0.5]}}"#,
        mock::API_KEY,
        server.base_url()
    );
    std::fs::write(&config, config_json)
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;

    let mut command: Vec<String> = if args.is_empty() {
        vec!["read".into()]
    } else {
        args
    };
    if matches!(command[0].as_str(), "check" | "discover" | "read") {
        command.extend([
            "--config".to_string(),
            config.to_string_lossy().into_owned(),
        ]);
    }
    let connector = shared::connector_binary()?;
    eprintln!("demo: mock PersistIq API at {}", server.base_url());
    eprintln!("demo: {} {}", connector.display(), command.join(" "));

    let mut connector_command = Command::new(&connector);
    connector_command.args(&command);
    let counted = match StdoutFile::of_this_process() {
        // `demo > messages.jsonl`: the connector writes the file itself, so
        // that it sees a file on stdout and a terminal on stderr, and draws
        // its live progress there; the messages are counted from the file
        // afterwards.
        Some(file) => {
            let status = connector_command
                .status()
                .map_err(|e| format!("cannot run {}: {e}", connector.display()))?;
            let mut counts = Counts::default();
            file.written_since()?.lines().for_each(|l| counts.add(l));
            (status, counts)
        }
        None => relay(&mut connector_command, &connector)?,
    };
    let (
        status,
        Counts {
            by_kind,
            messages,
            lines,
        },
    ) = counted;
    let _ = std::fs::remove_dir_all(&dir);
    if messages == 0 {
        // --help, --version, a usage error: plain text or nothing, no table.
        let what = if lines == 0 {
            "no output on stdout".to_string()
        } else {
            format!("{lines} lines of plain text, not Airbyte messages")
        };
        eprintln!("demo: connector exited with {status}; {what}");
    } else {
        eprintln!("demo: connector exited with {status}; messages by type:");
        for (kind, n) in &by_kind {
            eprintln!("  {n:>6}  {kind}");
        }
        if lines > messages {
            eprintln!("  {:>6}  lines that are not messages!", lines - messages);
        }
    }
    Ok(ExitCode::from(status.code().unwrap_or(1) as u8))
}

/// Airbyte messages by type, among all lines.
#[derive(Default)]
struct Counts {
    by_kind: BTreeMap<String, u64>,
    messages: u64,
    lines: u64,
}

impl Counts {
    fn add(&mut self, line: &str) {
        self.lines += 1;
        if let Some(kind) = message_kind(line) {
            self.messages += 1;
            *self.by_kind.entry(kind).or_default() += 1;
        }
    }
}

/// The demo's stdout, when it is a regular file, and its length before
/// the connector writes to it (`>>` appends after what was there).
struct StdoutFile {
    file: std::fs::File,
    start: u64,
}

impl StdoutFile {
    fn of_this_process() -> Option<StdoutFile> {
        use std::os::fd::AsFd;
        let fd = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
        let meta = std::fs::File::from(fd)
            .metadata()
            .ok()
            .filter(|m| m.is_file())?;
        // `>` opens it write-only: read it through a new open of the same
        // file. Where that fails the messages go through the demo instead.
        let file = std::fs::File::open("/proc/self/fd/1").ok()?;
        Some(StdoutFile {
            file,
            start: meta.len(),
        })
    }

    /// What was written to the file since `of_this_process`; read at an
    /// offset, so that the shared file position does not move.
    fn written_since(&self) -> Result<String, String> {
        use std::os::unix::fs::FileExt;
        let end = self
            .file
            .metadata()
            .map_err(|e| format!("cannot read back stdout: {e}"))?
            .len();
        let mut bytes = vec![0; end.saturating_sub(self.start) as usize];
        self.file
            .read_exact_at(&mut bytes, self.start)
            .map_err(|e| format!("cannot read back stdout: {e}"))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Runs the connector with its stdout through the demo (to a terminal or
/// a pipe), counting the messages on the way. Its stderr is passed on
/// after it exits: at a terminal its lines would otherwise land among the
/// messages. (It draws no progress: its stdout is a pipe.)
fn relay(
    command: &mut Command,
    connector: &std::path::Path,
) -> Result<(std::process::ExitStatus, Counts), String> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", connector.display()))?;
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            text
        })
    });
    let mut counts = Counts::default();
    let mut stdout = std::io::stdout().lock();
    if let Some(pipe) = child.stdout.take() {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            counts.add(&line);
            if writeln!(stdout, "{line}").is_err() {
                break;
            }
        }
    }
    drop(stdout);
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for the connector: {e}"))?;
    if let Some(text) = stderr.and_then(|t| t.join().ok()) {
        let _ = std::io::stderr().write_all(&text);
    }
    Ok((status, counts))
}

/// "RECORD users", "STATE", ...: what the line is, if it is a message.
fn message_kind(line: &str) -> Option<String> {
    let v = serde_json::from_str::<serde_json::Value>(line).ok()?;
    let t = v["type"].as_str()?;
    Some(match v["record"]["stream"].as_str() {
        Some(stream) => format!("{t} {stream}"),
        None => t.to_string(),
    })
}

/// Runs only the mock server, until killed; prints its base_url first.
/// `--rate LIMIT/SECONDS` after the port enforces a rate window, with
/// `X-RateLimit-*` headers, as PersistIq does.
fn serve(port: &str, rest: &[String]) -> Result<ExitCode, String> {
    let port: u16 = port.parse().map_err(|_| {
        format!("--serve takes a port number from 0 to 65535 (0: any free port), not `{port}`")
    })?;
    let mut rate_limit = None;
    let mut tls_ca_file = None;
    let mut flags = rest.iter();
    while let Some(flag) = flags.next() {
        let value = flags.next();
        match (flag.as_str(), value) {
            ("--rate", Some(rate)) => {
                let parsed = rate.split_once('/').and_then(|(l, w)| {
                    Some(mock::RateLimit {
                        limit: l.parse().ok()?,
                        window_secs: w.parse().ok().filter(|w: &u64| *w > 0)?,
                    })
                });
                rate_limit = Some(parsed.ok_or_else(|| {
                    format!("--rate takes LIMIT/SECONDS, e.g. 5/2, not `{rate}`")
                })?);
            }
            ("--tls", Some(path)) => tls_ca_file = Some(path.clone()),
            _ => {
                return Err(format!(
                    "--serve PORT takes only `--rate LIMIT/SECONDS` and `--tls CA_FILE` after it, \
                     not {rest:?}"
                ))
            }
        }
    }
    let options = Options {
        rate_limit,
        ..Options::default()
    };
    let bind = format!("127.0.0.1:{port}");
    // Over TLS, the plain server takes any free port behind the front.
    let plain_bind = match tls_ca_file {
        Some(_) => "127.0.0.1:0".to_string(),
        None => bind.clone(),
    };
    let cannot_serve = |e: std::io::Error| {
        let hint = match e.kind() {
            ErrorKind::AddrInUse => {
                "; stop what uses it or pick another port (--serve 0 picks a free one)"
            }
            ErrorKind::PermissionDenied => "; ports below 1024 need root: pick a higher one",
            _ => "",
        };
        format!("cannot serve on {bind}: {e}{hint}")
    };
    let server = MockServer::try_start_on(&plain_bind, options).map_err(cannot_serve)?;
    let mut _front = None;
    let base_url = match tls_ca_file {
        None => server.base_url(),
        Some(path) => {
            let ca = tls::TestCa::new("source-persistiq demo CA");
            std::fs::write(&path, &ca.pem).map_err(|e| format!("cannot write {path}: {e}"))?;
            let cert = ca.server_cert(&tls::MOCK_NAMES, false);
            let front = tls::TlsFront::start_on(&bind, server.addr, &cert).map_err(cannot_serve)?;
            let url = front.base_url("localhost");
            _front = Some(front);
            url
        }
    };
    println!("{base_url}");
    let _ = std::io::stdout().flush();
    eprintln!(
        "demo: serving the mock PersistIq API; api_key is {}",
        mock::API_KEY
    );
    loop {
        std::thread::park();
    }
}
