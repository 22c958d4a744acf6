//! Command-line flags, parsed into one plain struct.

use std::ffi::OsString;
use std::path::PathBuf;

/// What the user asked for.
#[derive(Debug)]
pub enum Command {
    Spec,
    Check { config: PathBuf },
    Discover { config: PathBuf },
    Read(ReadArgs),
    Help,
    Version,
}

#[derive(Debug)]
pub struct ReadArgs {
    pub config: PathBuf,
    /// Airbyte's configured catalog; without it every stream is read.
    pub catalog: Option<PathBuf>,
    pub state: Option<PathBuf>,
    /// `--streams a,b`: read just these (instead of a catalog).
    pub streams: Option<Vec<String>>,
}

pub const USAGE: &str = "\
Usage: source-persistiq spec
       source-persistiq check    --config FILE
       source-persistiq discover --config FILE
       source-persistiq read     --config FILE [--catalog FILE | --streams NAME,...] [--state FILE]
       source-persistiq --help | --version";

/// Parses the process arguments; `Err` is a usage message (exit 2).
pub fn parse(args: Vec<OsString>) -> Result<Command, String> {
    let mut args = pico_args::Arguments::from_vec(args);
    if args.contains(["-h", "--help"]) {
        return Ok(Command::Help);
    }
    if args.contains(["-V", "--version"]) {
        return Ok(Command::Version);
    }
    // The CDK accepts --debug everywhere; Airbyte may pass it.
    let _ = args.contains("--debug");
    let name = args
        .subcommand()
        .map_err(|e| e.to_string())?
        .ok_or("a command is required")?;
    let path = |args: &mut pico_args::Arguments, flag: &'static str| {
        // From &str, not &OsStr: only the &str form understands `--flag=FILE`.
        args.opt_value_from_fn(flag, |s| Ok::<_, String>(PathBuf::from(s)))
            .map_err(|e| e.to_string())
    };
    let required = |p: Option<PathBuf>, flag: &str| p.ok_or(format!("`{name}` needs {flag} FILE"));
    let command = match name.as_str() {
        "spec" => Command::Spec,
        "check" => Command::Check {
            config: required(path(&mut args, "--config")?, "--config")?,
        },
        "discover" => Command::Discover {
            config: required(path(&mut args, "--config")?, "--config")?,
        },
        "read" => {
            let config = required(path(&mut args, "--config")?, "--config")?;
            let catalog = path(&mut args, "--catalog")?;
            let state = path(&mut args, "--state")?;
            let streams: Option<String> = args
                .opt_value_from_str("--streams")
                .map_err(|e| e.to_string())?;
            if catalog.is_some() && streams.is_some() {
                return Err("use either --catalog or --streams, not both".into());
            }
            Command::Read(ReadArgs {
                config,
                catalog,
                state,
                streams: streams.map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                }),
            })
        }
        other => return Err(format!("unknown command `{other}`")),
    };
    let rest = args.finish();
    if let Some(extra) = rest.first() {
        return Err(format!("unexpected argument `{}`", extra.to_string_lossy()));
    }
    Ok(command)
}

/// The `--help` text.
pub fn help() -> String {
    use crate::config::{DEFAULT_BASE_URL, DEFAULT_RETRY_SCHEDULE, DEFAULT_TIMEOUT_SECONDS};
    let schedule: Vec<String> = DEFAULT_RETRY_SCHEDULE
        .iter()
        .map(|s| s.to_string())
        .collect();
    format!(
        "source-persistiq {version}: Airbyte source for the PersistIq API.
Writes Airbyte protocol messages to stdout, one JSON object per line.

{USAGE}

Commands:
  spec       print the connector's config specification (SPEC)
  check      test the config and API key against the API (CONNECTION_STATUS)
  discover   list the streams with their JSON schemas (CATALOG)
  read       sync the streams: RECORD, STATE, LOG and TRACE messages

Options:
  --config FILE    config JSON (see below)
  --catalog FILE   Airbyte configured catalog: which streams to read, in order
  --streams LIST   read only these streams, comma-separated (instead of --catalog);
                   without either, read every stream
  --state FILE     state from a previous run: a JSON array of the `state`
                   objects of its STATE messages, or of the STATE lines whole;
                   with --streams (or no selection) the incremental streams
                   go on from it, without it every stream is read in full
  --debug          accepted and ignored, as Airbyte may pass it
  -h, --help       print this help
  -V, --version    print the version

Config keys:
  api_key                 (required) the PersistIq API key; sent only in the
                          x-api-key header, only to base_url's origin
  base_url                default {DEFAULT_BASE_URL}; https only, plain http only
                          for loopback hosts
  retry_schedule_seconds  default [{schedule}]: sleeps between tries
                          of one request on 429, 408, 5xx or a network fault
  timeout_seconds         default {DEFAULT_TIMEOUT_SECONDS}: the longest one request may take
  start_date              optional ISO-8601 date or time: where the first
                          incremental sync of leads and events starts

Streams: {streams}

Exit codes:
  0  success (check: also when the API key is rejected; the answer is in
     CONNECTION_STATUS), or stdout closed early by its reader
  1  failure, described by a TRACE ERROR on stdout
  2  usage error (unknown command or flag), described on stderr

Example:
  echo '{{\"api_key\": \"...\"}}' > config.json
  source-persistiq read --config config.json --streams leads \\
    | jq -c 'select(.type == \"RECORD\") | .record.data'
",
        version = env!("CARGO_PKG_VERSION"),
        schedule = schedule.join(", "),
        streams = crate::streams::names(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn commands() {
        assert!(matches!(parse_str(&["spec"]), Ok(Command::Spec)));
        assert!(matches!(
            parse_str(&["check", "--config", "c", "--debug"]),
            Ok(Command::Check { .. })
        ));
        let Ok(Command::Read(r)) =
            parse_str(&["read", "--config", "c", "--streams", "leads, users"])
        else {
            panic!("read")
        };
        assert_eq!(r.streams.unwrap(), ["leads", "users"]);
        assert!(parse_str(&["check"]).is_err());
        assert!(parse_str(&["frobnicate"]).is_err());
        assert!(parse_str(&["spec", "--bogus"]).is_err());
        assert!(parse_str(&[]).is_err());
    }
}
