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

impl Command {
    /// The command's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Spec => "spec",
            Command::Check { .. } => "check",
            Command::Discover { .. } => "discover",
            Command::Read(_) => "read",
            Command::Help => "--help",
            Command::Version => "--version",
        }
    }
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
    if !matches!(name.as_str(), "spec" | "check" | "discover" | "read") {
        return Err(format!("unknown command `{name}`"));
    }
    let config = once(&mut args, "--config")?;
    let mut read = ReadArgs {
        config: PathBuf::new(),
        catalog: None,
        state: None,
        streams: None,
    };
    if name == "read" {
        read.catalog = once(&mut args, "--catalog")?.map(PathBuf::from);
        read.state = once(&mut args, "--state")?.map(PathBuf::from);
        read.streams = once(&mut args, "--streams")?.map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        });
    }
    // What is left is wrong whatever else is missing: `read --bogus x`
    // must hear about `--bogus`, not about a missing --config.
    if let Some(extra) = args.finish().first() {
        let extra = extra.to_string_lossy();
        return Err(if extra.starts_with('-') {
            format!("`{name}` has no option `{extra}`")
        } else {
            format!("unexpected argument `{extra}`")
        });
    }
    if read.catalog.is_some() && read.streams.is_some() {
        return Err("use either --catalog or --streams, not both".into());
    }
    let config = match (name.as_str(), config) {
        ("spec", None) => return Ok(Command::Spec),
        ("spec", Some(_)) => return Err("`spec` takes no --config".into()),
        (_, None) => return Err(format!("`{name}` needs --config FILE")),
        (_, Some(config)) => PathBuf::from(config),
    };
    Ok(match name.as_str() {
        "check" => Command::Check { config },
        "discover" => Command::Discover { config },
        _ => Command::Read(ReadArgs { config, ..read }),
    })
}

/// The value of `flag`, if given; given twice is an error rather than a
/// silent pick of one of them.
fn once(args: &mut pico_args::Arguments, flag: &'static str) -> Result<Option<String>, String> {
    // From &str, not &OsStr: only the &str form understands `--flag=FILE`.
    let mut value = || {
        args.opt_value_from_fn(flag, |s| Ok::<_, String>(s.to_string()))
            .map_err(|e| e.to_string())
    };
    let first = value()?;
    if first.is_some() && value()?.is_some() {
        return Err(format!("{flag} is given twice"));
    }
    Ok(first)
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
  umask 077   # config.json holds the key: readable by you alone
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

    /// The usage message `args` get.
    fn refusal(args: &[&str]) -> String {
        match parse_str(args) {
            Err(message) => message,
            Ok(command) => panic!("{args:?} was accepted: {command:?}"),
        }
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        assert_eq!(
            refusal(&["read", "--bogus", "x"]),
            "`read` has no option `--bogus`"
        );
        assert_eq!(
            refusal(&["read", "--config", "a", "--config", "b"]),
            "--config is given twice"
        );
        assert_eq!(
            refusal(&["read", "--config=a", "--streams", "x", "--streams=y"]),
            "--streams is given twice"
        );
        assert_eq!(refusal(&["check"]), "`check` needs --config FILE");
        assert_eq!(
            refusal(&["check", "--config", "c", "x"]),
            "unexpected argument `x`"
        );
        assert_eq!(
            refusal(&["discover", "--config", "c", "--streams", "x"]),
            "`discover` has no option `--streams`"
        );
        assert_eq!(
            refusal(&["frobnicate", "--config", "c"]),
            "unknown command `frobnicate`"
        );
    }
}
