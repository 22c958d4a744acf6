//! Command-line flags, parsed into one plain struct.

use std::ffi::OsString;
use std::path::PathBuf;

/// What the user asked for.
#[derive(Debug)]
pub enum Command {
    Spec,
    Check {
        config: PathBuf,
    },
    Discover {
        config: PathBuf,
    },
    Read(ReadArgs),
    /// `doctor`: the way to the API, step by step; `json` for one document.
    Doctor {
        config: PathBuf,
        json: bool,
    },
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
            Command::Doctor { .. } => "doctor",
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
       source-persistiq doctor   --config FILE [--json]
       source-persistiq --help | --version";

/// What `--version` prints: the version, the commit the binary was built
/// from ("unknown" outside a git checkout) and its Rust target, both from
/// build.rs, so that a bug report names the exact build.
pub const VERSION_LINE: &str = concat!(
    "source-persistiq ",
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SPQ_COMMIT"),
    ", ",
    env!("SPQ_TARGET"),
    ")\n"
);

/// The commands, in the order `--help` lists them.
const COMMANDS: [&str; 5] = ["spec", "check", "discover", "read", "doctor"];

/// The options `command` takes, besides `--help`, `--version`, `--debug`.
fn options_of(command: &str) -> &'static [&'static str] {
    match command {
        "spec" => &[],
        "read" => &["--config", "--catalog", "--streams", "--state"],
        "doctor" => &["--config", "--json"],
        _ => &["--config"],
    }
}

/// What follows a flag in the usage text.
fn placeholder(flag: &str) -> &'static str {
    match flag {
        "--streams" => "NAME,...",
        _ => "FILE",
    }
}

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
        .map_err(|_| "the command is not valid UTF-8 text".to_string())?
        .ok_or("a command is required first: spec, check, discover, read or doctor")?;
    if !COMMANDS.contains(&name.as_str()) {
        return Err(match closest(&name, COMMANDS) {
            Some(near) => format!("unknown command `{name}`; did you mean `{near}`?"),
            None => {
                format!(
                    "unknown command `{name}`; the commands are spec, check, discover, read and \
                     doctor"
                )
            }
        });
    }
    let config = once(&mut args, "--config")?;
    let json = name == "doctor" && args.contains("--json");
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
            no_such_option(&name, &extra)
        } else if config.is_none() && name != "spec" {
            format!("unexpected argument `{extra}`; did you mean `--config {extra}`?")
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
        "doctor" => Command::Doctor { config, json },
        _ => Command::Read(ReadArgs { config, ..read }),
    })
}

/// The refusal of `option` (as typed, perhaps `--flag=value`) after
/// `command`, with the option meant when one is close or another command's.
fn no_such_option(command: &str, option: &str) -> String {
    let flag = option.split('=').next().unwrap_or(option);
    let refusal = format!("`{command}` has no option `{flag}`");
    let own = options_of(command).iter().copied();
    if let Some(near) = closest(flag, own.chain(["--help", "--version"])) {
        return format!("{refusal}; did you mean `{near}`?");
    }
    match COMMANDS.iter().find(|c| options_of(c).contains(&flag)) {
        Some(other) => format!("{refusal}; only `{other}` takes it"),
        None if options_of(command).is_empty() => format!("{refusal}; it takes none"),
        None => format!("{refusal}; it takes {}", options_of(command).join(", ")),
    }
}

/// The value of `flag`, if given; given twice is an error rather than a
/// silent pick of one of them.
fn once(args: &mut pico_args::Arguments, flag: &'static str) -> Result<Option<String>, String> {
    let missing = || format!("{flag} needs a value: {flag} {}", placeholder(flag));
    // From &str, not &OsStr: only the &str form understands `--flag=FILE`.
    let mut value = || {
        let found = args
            .opt_value_from_fn(flag, |s| Ok::<_, String>(s.to_string()))
            .map_err(|e| match e {
                pico_args::Error::OptionWithoutAValue(_) => missing(),
                _ => format!("the value of {flag} is not valid UTF-8 text"),
            })?;
        match found {
            // `--config --streams x`: the value was forgotten, and the next
            // option would otherwise be taken for a file name.
            Some(v) if v.starts_with("--") => Err(format!("{}, not `{v}`", missing())),
            found => Ok(found),
        }
    };
    let first = value()?;
    if first.is_some() && value()?.is_some() {
        return Err(format!("{flag} is given twice"));
    }
    Ok(first)
}

/// The candidate closest to `word` (ignoring case and leading dashes), if
/// it is close enough to be the likely meaning: within one edit in three
/// characters, at least one.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let bare = |s: &str| s.trim_start_matches('-').to_lowercase();
    let word = bare(word);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word, &bare(c)), c))
        .filter(|(d, c)| *d <= (bare(c).chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance: single-character insertions, deletions and
/// substitutions that turn `a` into `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
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
  doctor     walk the way to the API step by step (config, DNS, TCP, proxy,
             TLS, the key, the rate limit, each stream's first page, drift
             from the schemas) and print one row per step, with what to do
             when one fails; plain text, not Airbyte messages

Options:
  --config FILE    config JSON (see below)
  --catalog FILE   Airbyte configured catalog: which streams to read, in order
  --streams LIST   read only these streams, comma-separated (instead of --catalog);
                   without either, read every stream
  --state FILE     state from a previous run: its STATE lines as they are
                   (grep '\"type\":\"STATE\"' out.jsonl > state.json; the last
                   of each stream wins), or a JSON array of them or of their
                   `state` objects (as Airbyte passes it); a file it cannot
                   use is an error. With --streams (or no selection) the
                   incremental streams go on from it, and a full read that
                   was stopped goes on from its last page; without it every
                   stream is read in full
  --json           (doctor) one JSON document instead of rows, for a support
                   ticket
  --debug          accepted and ignored, as Airbyte may pass it
  -h, --help       print this help
  -V, --version    print the version, the commit built from and the target

Config keys:
  api_key                 (required) the PersistIq API key; sent only in the
                          x-api-key header, only to base_url's origin
  base_url                default {DEFAULT_BASE_URL}; https only, plain http only
                          for loopback hosts
  retry_schedule_seconds  default [{schedule}]: sleeps between tries
                          of one request on 429, 408, 5xx or a network fault
  timeout_seconds         default {DEFAULT_TIMEOUT_SECONDS}: the longest one request may take
  start_date              {start_date}
  ca_certificate          PEM of the CA(s) that sign the API's certificate on
                          your network; replaces the compiled-in roots
  proxy_url               http://[user:password@]host:port, the proxy to tunnel
                          through; overrides HTTPS_PROXY (a secret, never printed)

Streams: {streams}

Exit codes:
  0  success (check: also when the API key is rejected; the answer is in
     CONNECTION_STATUS)
  1  failure, described by a TRACE ERROR on stdout and one line on stderr;
     or stdout closed, full, or left early by its reader (`| head`): one
     line on stderr
  2  usage error (unknown command or flag), described on stderr
  doctor: 0 when every step passed, 1 when one failed (its row says what
  to do), 2 on a usage error

Example:
  umask 077   # config.json holds the key: readable by you alone
  echo '{{\"api_key\": \"...\"}}' > config.json
  source-persistiq read --config config.json --streams leads \\
    | jq -c 'select(.type == \"RECORD\") | .record.data'
",
        version = env!("CARGO_PKG_VERSION"),
        schedule = schedule.join(", "),
        streams = crate::streams::names(),
        start_date = wrapped(&spec_description("start_date"), 50, 26),
    )
}

/// A config key's description in the spec: one text for `spec`, `--help`
/// and the README (a test holds the README to it).
fn spec_description(key: &str) -> String {
    let spec: serde_json::Value =
        serde_json::from_str(crate::config::SPEC_JSON).unwrap_or_default();
    let text = spec["properties"][key]["description"].as_str();
    text.unwrap_or_default().to_string()
}

/// `text` in lines of at most `width` characters (a longer word stays
/// whole), each after the first indented by `indent` spaces.
fn wrapped(text: &str, width: usize, indent: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines.join(&format!("\n{}", " ".repeat(indent)))
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
            "`read` has no option `--bogus`; it takes --config, --catalog, --streams, --state"
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
            "`discover` has no option `--streams`; only `read` takes it"
        );
        assert_eq!(
            refusal(&["frobnicate", "--config", "c"]),
            "unknown command `frobnicate`; the commands are spec, check, discover, read and doctor"
        );
    }

    #[test]
    fn a_close_name_is_suggested() {
        assert_eq!(
            refusal(&["check", "--confg", "c.json"]),
            "`check` has no option `--confg`; did you mean `--config`?"
        );
        assert_eq!(
            refusal(&["read", "--config", "c", "--stream=users"]),
            "`read` has no option `--stream`; did you mean `--streams`?"
        );
        assert_eq!(
            refusal(&["Check", "--config", "c"]),
            "unknown command `Check`; did you mean `check`?"
        );
        assert_eq!(
            refusal(&["check", "config.json"]),
            "unexpected argument `config.json`; did you mean `--config config.json`?"
        );
        assert_eq!(
            refusal(&["read", "--config", "c", "--catalog"]),
            "--catalog needs a value: --catalog FILE"
        );
        assert_eq!(
            refusal(&["read", "--config", "--streams", "users"]),
            "--config needs a value: --config FILE, not `--streams`"
        );
        assert_eq!(closest("lead", ["users", "leads", "events"]), Some("leads"));
        assert_eq!(closest("replys", ["replies", "tags"]), Some("replies"));
        assert_eq!(closest("foo", ["users", "leads", "tags"]), None);
        assert_eq!(closest("--catalog", ["--config", "--state"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
