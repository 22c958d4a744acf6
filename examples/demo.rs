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

#[path = "../tests/support/mock.rs"]
mod mock;
#[path = "shared/connector.rs"]
mod shared;
#[path = "../tests/support/tls.rs"]
mod tls;

use mock::{MockServer, Options};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, IsTerminal, Read, Write};
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

    let mut child = Command::new(&connector)
        .args(&command)
        .stdout(Stdio::piped())
        .stderr(connector_stderr())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", connector.display()))?;
    // The connector's stderr, when piped, is passed on line by line.
    let relay = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            let _ = std::io::stderr().write_all(&text);
        })
    });
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let (mut messages, mut lines) = (0u64, 0u64);
    let mut stdout = std::io::stdout().lock();
    if let Some(pipe) = child.stdout.take() {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            lines += 1;
            if let Some(kind) = message_kind(&line) {
                messages += 1;
                *counts.entry(kind).or_default() += 1;
            }
            if writeln!(stdout, "{line}").is_err() {
                break;
            }
        }
    }
    drop(stdout);
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for the connector: {e}"))?;
    if let Some(relay) = relay {
        let _ = relay.join();
    }
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
        for (kind, n) in &counts {
            eprintln!("  {n:>6}  {kind}");
        }
        if lines > messages {
            eprintln!("  {:>6}  lines that are not messages!", lines - messages);
        }
    }
    Ok(ExitCode::from(status.code().unwrap_or(1) as u8))
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

/// The connector's stderr: the demo's own, so that its progress line is
/// live, unless the demo's stdout is a terminal too. Then the connector's
/// progress (drawn because its stdout is our pipe) would be drawn over the
/// messages we print, so it gets a pipe instead, which turns progress off.
fn connector_stderr() -> Stdio {
    if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
        Stdio::piped()
    } else {
        Stdio::inherit()
    }
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
                    "--serve PORT takes only `--rate LIMIT/SECONDS` and `--tls CA_FILE` after it, not {rest:?}"
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
