//! source-persistiq: an Airbyte source for the PersistIq REST API.
//!
//! `main` parses the flags, runs one command, and is the one place where a
//! failure becomes a TRACE ERROR and an exit code.

// Unsafe code is allowed only where a module says why it needs it.
#![deny(unsafe_code)]

mod catalog;
mod cli;
mod config;
mod doctor;
mod drift;
mod error;
mod http;
mod input;
mod network;
mod output;
mod page;
mod progress;
mod secret;
mod signals;
mod streams;
mod sync;
mod text;
mod time;
mod url;

use catalog::{State, SyncMode};
use cli::{Command, ReadArgs};
use config::Config;
use error::{Error, Result};
use input::read_json_file;
use output::Out;
use serde::Serialize;
use serde_json::value::RawValue;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// One line on stderr. Not `eprintln!`, which panics when stderr is a pipe
/// whose reader left too (`2>&1 | head`): the exit code says enough then.
macro_rules! say {
    ($($line:tt)+) => {{
        let _ = writeln!(std::io::stderr(), $($line)+);
    }};
}

/// `check` answers within about this much: Airbyte waits a minute for it.
const CHECK_BUDGET: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    signals::install();
    let command = match cli::parse(std::env::args_os().skip(1).collect()) {
        Ok(c) => c,
        Err(usage) => {
            say!(
                "source-persistiq: {usage}\n\n{}\n\nRun `source-persistiq --help` for more.",
                cli::USAGE
            );
            return ExitCode::from(2);
        }
    };
    let name = command.name();
    // A closed fd 1 (`>&-`) would be taken by the next file or socket
    // opened, and the messages written into it: stop before opening any.
    if !matches!(command, Command::Help | Command::Version) && !output::stdout_is_open() {
        say!(
            "source-persistiq: {name} failed: stdout is closed (`>&-`), so no message can be \
             written; send it to a file (`> messages.jsonl`), a pipe or /dev/null"
        );
        return ExitCode::from(1);
    }
    let mut out = Out::new();
    let code = match run(command, &mut out) {
        Ok(code) => code,
        Err(e) if e.output_closed => return stdout_failed(name, &e, out),
        Err(e) => {
            out.trace_error(&e, None);
            1
        }
    };
    match out.flush() {
        Err(e) => stdout_failed(name, &e, out),
        Ok(()) => {
            let line = failure_line(name, out.failures(), out.not_read());
            // After the live progress line, if any, is cleared (on drop).
            drop(out);
            if let Some(line) = line {
                say!("{line}");
            }
            ExitCode::from(code)
        }
    }
}

/// stdout failed (its reader left, its disk is full): stderr is the one
/// place left to say so, after the live line is cleared.
fn stdout_failed(command: &str, e: &error::Error, out: Out) -> ExitCode {
    drop(out);
    say!(
        "source-persistiq: {command} failed: {}",
        progress::printable(&e.message)
    );
    ExitCode::from(1)
}

/// The one plain line on stderr for a command that failed (or a check that
/// answered FAILED): stdout may be a file nobody reads at once, or a pipe
/// into a program that drops what is not a record. The whole story stays
/// in the TRACE ERRORs on stdout.
fn failure_line(
    command: &str,
    failures: &[output::Failure],
    not_read: &[String],
) -> Option<String> {
    let first = failures.first()?;
    let mut line = format!("source-persistiq: {command} failed: {}", first.message);
    let streams: Vec<&str> = failures
        .iter()
        .filter_map(|f| f.stream.as_deref())
        .collect();
    if streams.len() > 1 {
        line.push_str(&format!(" (failed streams: {})", streams.join(", ")));
    }
    if !not_read.is_empty() {
        line.push_str(&format!(" (not read: {})", not_read.join(", ")));
    }
    Some(progress::printable(&line))
}

/// Runs one command; `Ok` carries the exit code.
fn run(command: Command, out: &mut Out) -> Result<u8> {
    match command {
        // Plain text, not messages; a reader that leaves early is no error.
        Command::Help => {
            let _ = std::io::stdout().write_all(cli::help().as_bytes());
        }
        Command::Version => {
            let _ = std::io::stdout().write_all(cli::VERSION_LINE.as_bytes());
        }
        Command::Spec => spec(out),
        Command::Check { config } => check(&config, out)?,
        Command::Discover { config } => {
            load_config(&config, out)?;
            discover(out)?;
        }
        Command::Read(args) => return read(&args, out),
        // Rows for a person (or one JSON document), not Airbyte messages.
        Command::Doctor { config, json } => return Ok(doctor::run(&config, json)),
    }
    Ok(0)
}

/// Reads and checks the config, and warns of what it ignores.
fn load_config(path: &Path, out: &mut Out) -> Result<Config> {
    let config = Config::from_json(&read_config_json(path)?)?;
    warn_of(&config, out);
    Ok(config)
}

/// Each config warning, in a LOG and on stderr: a person at a shell reads
/// stderr; the platform shows the LOG.
fn warn_of(config: &Config, out: &mut Out) {
    for warning in &config.warnings {
        out.warn_loudly(warning);
    }
}

/// Reads the config file; from here on the key is masked in text from
/// outside, even if the rest of the config turns out to be wrong.
fn read_config_json(path: &Path) -> Result<serde_json::Value> {
    let value = read_json_file(path, "config")?;
    if let Some(key) = value.get("api_key").and_then(|k| k.as_str()) {
        secret::protect(key);
    }
    Ok(value)
}

fn spec(out: &mut Out) {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Spec<'a> {
        documentation_url: &'a str,
        connection_specification: &'a RawValue,
    }
    let schema = minified(config::SPEC_JSON);
    let spec = Spec {
        documentation_url: "https://github.com/source-persistiq/source-persistiq#readme",
        connection_specification: &schema,
    };
    out.message(output::Kind::Spec, &spec);
}

/// A pretty JSON text compiled into the binary, as one line.
fn minified(pretty: &str) -> Box<RawValue> {
    let mut compact = Vec::with_capacity(pretty.len());
    page::minify_into(&mut compact, pretty.as_bytes());
    let text = String::from_utf8(compact).unwrap_or_default();
    RawValue::from_string(text).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// One CONNECTION_STATUS, exit 0, whenever the config file held JSON; it
/// comes within `CHECK_BUDGET`, whatever the API does.
fn check(path: &Path, out: &mut Out) -> Result<()> {
    let value = read_config_json(path)?;
    let config = match Config::from_json(&value) {
        Ok(c) => {
            warn_of(&c, out);
            c
        }
        Err(e) => {
            out.trace_error(&e, None);
            out.connection_status(false, Some(&e.message));
            return Ok(());
        }
    };
    let mut client = http::client::Client::new(&config, Some(CHECK_BUDGET));
    let probe = client.get_page(
        &mut http::client::Request {
            path_query: "users?page=1",
            what: "check (GET users)",
            collection: "users",
            field: None,
            paged: false,
            seen: None,
        },
        &mut output::Told {
            out: &mut *out,
            stream: None,
        },
    );
    match probe.map(drop) {
        Ok(()) => out.connection_status(true, None),
        Err(e) => out.connection_status(false, Some(&e.message)),
    }
    Ok(())
}

fn discover(out: &mut Out) -> Result<()> {
    #[derive(Serialize)]
    struct Stream<'a> {
        name: &'a str,
        json_schema: Box<RawValue>,
        supported_sync_modes: &'a [&'a str],
        #[serde(skip_serializing_if = "Option::is_none")]
        source_defined_cursor: Option<bool>,
        /// Only a cursor that is a record field is named: the leads cursor
        /// (the sync's start time) is not in the records, and Airbyte's
        /// acceptance tests require a named cursor to exist in the schema.
        #[serde(skip_serializing_if = "Option::is_none")]
        default_cursor_field: Option<[&'a str; 1]>,
        source_defined_primary_key: [[&'a str; 1]; 1],
        is_resumable: bool,
    }
    let streams: Vec<Stream> = streams::STREAMS
        .iter()
        .map(|s| Stream {
            name: s.name,
            json_schema: minified(s.schema),
            supported_sync_modes: match s.incremental {
                Some(_) => &["full_refresh", "incremental"],
                None => &["full_refresh"],
            },
            // The protocol asks for a source-defined cursor on every
            // resumable stream: for a full read, the page is that cursor.
            source_defined_cursor: s.is_resumable().then_some(true),
            default_cursor_field: s
                .incremental
                .and_then(|inc| inc.cursor.record_field().map(|field| [field])),
            source_defined_primary_key: [["id"]],
            is_resumable: s.is_resumable(),
        })
        .collect();
    #[derive(Serialize)]
    struct Catalog<'a> {
        streams: Vec<Stream<'a>>,
    }
    out.message(output::Kind::Catalog, &Catalog { streams });
    Ok(())
}

fn read(args: &ReadArgs, out: &mut Out) -> Result<u8> {
    let config = load_config(&args.config, out)?;
    let state = match &args.state {
        Some(path) => {
            let text = std::fs::read(path).map_err(|e| Error::unreadable("state", path, &e))?;
            State::parse(&text, path)?
        }
        None => State::default(),
    };
    // Without a catalog, a state file asks for the incremental streams to
    // go on from it (how a cron job keeps `--streams leads` incremental),
    // but a full read it stopped goes on as one.
    let mode = |name: &str| match args.state {
        Some(_)
            if !state
                .get(name)
                .is_some_and(|s| sync::full_read_stopped(name, s)) =>
        {
            SyncMode::Incremental
        }
        _ => SyncMode::FullRefresh,
    };
    let selected = match (&args.catalog, &args.streams) {
        (Some(path), _) => catalog::parse_catalog(&read_json_file(path, "catalog")?)?,
        (None, Some(names)) => catalog::select_by_name(names, mode)?,
        (None, None) => streams::STREAMS
            .iter()
            .map(|s| catalog::selected(s.name, mode(s.name)))
            .collect(),
    };
    if !state.unknown.is_empty() {
        out.warn_loudly(&format!(
            "the state file holds states of streams this source does not have, which were \
             ignored: {}; its streams are: {}",
            state.unknown.join(", "),
            streams::names()
        ));
    }
    let mut client = http::client::Client::new(&config, None);
    let all_complete = sync::read(
        &mut client,
        &selected,
        &state,
        config.start_date.as_ref(),
        out,
    )?;
    Ok(if all_complete { 0 } else { 1 })
}
