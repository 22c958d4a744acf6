//! A full sync with no API key and no network: the tests' mock PersistIq
//! server on loopback, and the release connector reading from it.
//!
//!   cargo run --release --example demo                 # read every stream
//!   cargo run --release --example demo -- check        # any connector command
//!   cargo run --release --example demo -- --serve 8765 # only the mock server
//!
//! The connector's Airbyte messages go to stdout; a summary goes to stderr.

#[path = "../tests/support/mock.rs"]
mod mock;
#[path = "shared/connector.rs"]
mod shared;

use mock::{MockServer, Options};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        return serve(args.get(1).map(String::as_str).unwrap_or("0"));
    }
    let server = MockServer::start(Options::default());
    let dir = std::env::temp_dir().join(format!("source-persistiq-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    let config = dir.join("config.json");
    let config_json = format!(
        r#"{{"api_key":"{}","base_url":"{}","retry_schedule_seconds":[0.1,0.5]}}"#,
        mock::API_KEY,
        server.base_url()
    );
    std::fs::write(&config, config_json).expect("write the demo config");

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
    let connector = shared::connector_binary().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("demo: mock PersistIq API at {}", server.base_url());
    eprintln!("demo: {} {}", connector.display(), command.join(" "));

    let mut child = Command::new(&connector)
        .args(&command)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", connector.display()));
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut stdout = std::io::stdout().lock();
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
        let Ok(line) = line else { break };
        let kind = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| {
                let t = v["type"].as_str()?.to_string();
                Some(match v["record"]["stream"].as_str() {
                    Some(stream) => format!("{t} {stream}"),
                    None => t,
                })
            })
            .unwrap_or_else(|| "not a message!".into());
        *counts.entry(kind).or_default() += 1;
        if writeln!(stdout, "{line}").is_err() {
            break;
        }
    }
    let status = child.wait().expect("wait for the connector");
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("demo: connector exited with {status}; messages by type:");
    for (kind, n) in counts {
        eprintln!("  {n:>6}  {kind}");
    }
    ExitCode::from(status.code().unwrap_or(1) as u8)
}

/// Runs only the mock server, until killed; prints its base_url first.
fn serve(port: &str) -> ExitCode {
    let server = MockServer::start_on(&format!("127.0.0.1:{port}"), Options::default());
    println!("{}", server.base_url());
    let _ = std::io::stdout().flush();
    eprintln!(
        "demo: serving the mock PersistIq API; api_key is {}",
        mock::API_KEY
    );
    loop {
        std::thread::park();
    }
}
