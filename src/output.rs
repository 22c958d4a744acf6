//! Airbyte messages on stdout, one JSON object per line.
//!
//! Lines gather in one reusable buffer and reach stdout only whole, at the
//! end of each page or message group; a signal cannot cut a write short (see
//! `signals`). The API key is masked where text from outside is quoted
//! (`secret::mask`), so messages are written as they are.

use crate::error::{Error, Result};
use crate::http::client::Report;
use crate::page::Record;
use crate::progress::Progress;
use crate::signals;
use crate::time::now_ms;
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::fmt;
use std::io::Write;

/// Whether fd 1 was open when the process started, and is.
pub fn stdout_is_open() -> bool {
    use std::os::fd::AsFd;
    !signals::stdout_was_closed() && std::io::stdout().as_fd().try_clone_to_owned().is_ok()
}

/// The stream a message belongs to, pre-rendered once per stream.
#[derive(Clone, Debug)]
pub struct StreamId {
    pub name: String,
    /// `{"name":..,"namespace":..}`, namespace kept exactly as the catalog had it.
    descriptor: Box<RawValue>,
    /// The start of every RECORD line of the stream, up to `"data":`.
    record_prefix: Vec<u8>,
}

impl StreamId {
    pub fn new(name: &str, namespace: Option<&str>) -> StreamId {
        let descriptor = match namespace {
            Some(ns) => json!({"name": name, "namespace": ns}),
            None => json!({"name": name}),
        };
        // A Value always serialises, so the raw text is always valid.
        let descriptor = serde_json::value::to_raw_value(&descriptor)
            .unwrap_or_else(|_| RawValue::NULL.to_owned());
        let mut record_prefix = br#"{"type":"RECORD","record":{"#.to_vec();
        if let Some(ns) = namespace {
            record_prefix.extend_from_slice(format!("\"namespace\":{},", json!(ns)).as_bytes());
        }
        record_prefix.extend_from_slice(format!("\"stream\":{},\"data\":", json!(name)).as_bytes());
        StreamId {
            name: name.to_string(),
            descriptor,
            record_prefix,
        }
    }
}

/// The end of a RECORD line, `,"emitted_at":<ms>}}` and the newline: made
/// once per page, as every record of a page arrives at the same moment.
pub struct RecordEnd(Vec<u8>);

impl RecordEnd {
    pub fn now() -> RecordEnd {
        RecordEnd(format!(",\"emitted_at\":{}}}}}\n", now_ms()).into_bytes())
    }
}

/// The Airbyte messages written, each with its `type` and the key of its
/// payload (RECORD lines are written apart: `Out::record`).
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Spec,
    Catalog,
    State,
    Log,
    Trace,
    ConnectionStatus,
}

impl Kind {
    /// The message's `type` and the key its payload goes under.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Kind::Spec => ("SPEC", "spec"),
            Kind::Catalog => ("CATALOG", "catalog"),
            Kind::State => ("STATE", "state"),
            Kind::Log => ("LOG", "log"),
            Kind::Trace => ("TRACE", "trace"),
            Kind::ConnectionStatus => ("CONNECTION_STATUS", "connectionStatus"),
        }
    }
}

/// STREAM_STATUS values.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Started,
    Running,
    Complete,
    Incomplete,
}

/// Why a stream is in its status; only RATE_LIMITED is ever said.
#[derive(Serialize)]
struct Reason {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limited: Option<RateLimited>,
}

/// When the API's rate window opens again.
#[derive(Serialize)]
struct RateLimited {
    /// Epoch milliseconds.
    quota_reset: u64,
}

/// What the client tells while it waits, said for one stream, or for none
/// (`check`): LOG lines, the live line, and the stream's rate-limited
/// STREAM_STATUS.
pub struct Told<'a> {
    pub out: &'a mut Out,
    pub stream: Option<&'a StreamId>,
}

impl Report for Told<'_> {
    fn taken(&mut self, note: &str) {
        self.out.log(Level::Warn, note);
    }

    fn waiting(&mut self, why: &str, retry: bool, rate_limited: Option<Option<u64>>) -> Result<()> {
        if let (Some(stream), Some(until)) = (self.stream, rate_limited) {
            self.out.rate_limited(stream, until);
        }
        let level = if retry { Level::Warn } else { Level::Info };
        self.out.waiting(level, why)
    }
}

/// A formatted LOG line: `log!(out, Warn, "stream {name}: ...")`.
macro_rules! log {
    ($out:expr, $level:ident, $($format:tt)+) => {
        $out.log($crate::output::Level::$level, format_args!($($format)+))
    };
}
pub(crate) use log;

/// The level of a LOG message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// The stdout writer. Everything the connector says goes through it.
pub struct Out {
    buf: Vec<u8>,
    progress: Option<Progress>,
    /// Every failure written (TRACE ERROR, CONNECTION_STATUS FAILED), for
    /// the one plain line on stderr at exit.
    failures: Vec<Failure>,
    /// Streams not tried after an error no stream could avoid, for that
    /// line too.
    not_read: Vec<String>,
}

/// A failure told on stdout, remembered for the line on stderr.
#[derive(Debug)]
pub struct Failure {
    /// The stream it ended, if it ended one stream only.
    pub stream: Option<String>,
    pub message: String,
}

impl Out {
    pub fn new() -> Out {
        Out {
            buf: Vec::with_capacity(1 << 20),
            progress: Progress::for_terminal(),
            failures: Vec::new(),
            not_read: Vec::new(),
        }
    }

    /// The failures written so far, in order.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// The streams not tried so far, in order.
    pub fn not_read(&self) -> &[String] {
        &self.not_read
    }

    /// A stream not tried, `why` (the error before it stops the sync): its
    /// INCOMPLETE status and its progress line.
    pub fn stream_not_read(&mut self, stream: &StreamId, why: &str) {
        self.status(stream, Status::Incomplete);
        self.progress_failed(&stream.name, 0, &format!("not read: {why}"));
        self.not_read.push(stream.name.clone());
    }

    /// A RECORD whose `data` is the API's own JSON for one record.
    pub fn record(&mut self, stream: &StreamId, record: &Record, end: &RecordEnd) {
        self.buf.extend_from_slice(&stream.record_prefix);
        record.write_to(&mut self.buf);
        self.buf.extend_from_slice(&end.0);
    }

    /// A per-stream STATE; `records` counts the stream's records since its previous STATE.
    pub fn state(&mut self, stream: &StreamId, stream_state: &serde_json::Value, records: u64) {
        #[derive(Serialize)]
        struct State<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            stream: StreamState<'a>,
            #[serde(rename = "sourceStats")]
            source_stats: SourceStats,
        }
        #[derive(Serialize)]
        struct StreamState<'a> {
            stream_descriptor: &'a RawValue,
            stream_state: &'a serde_json::Value,
        }
        #[derive(Serialize)]
        struct SourceStats {
            /// A number with a decimal point in the protocol's schema:
            /// serde_json writes a whole f64 as `12.0`.
            #[serde(rename = "recordCount")]
            record_count: f64,
        }
        let state = State {
            kind: "STREAM",
            stream: StreamState {
                stream_descriptor: &stream.descriptor,
                stream_state,
            },
            source_stats: SourceStats {
                record_count: records as f64,
            },
        };
        self.message(Kind::State, &state);
    }

    /// A STREAM_STATUS without reasons.
    pub fn status(&mut self, stream: &StreamId, status: Status) {
        self.stream_status(stream, status, None);
    }

    /// STREAM_STATUS RUNNING with the reason RATE_LIMITED: the stream waits
    /// for the API's rate window, until `quota_reset` (epoch ms) if known.
    /// The platform shows it until records flow again.
    pub fn rate_limited(&mut self, stream: &StreamId, quota_reset: Option<u64>) {
        let reason = Reason {
            kind: "RATE_LIMITED",
            rate_limited: quota_reset.map(|quota_reset| RateLimited { quota_reset }),
        };
        self.stream_status(stream, Status::Running, Some(reason));
    }

    fn stream_status(&mut self, stream: &StreamId, status: Status, reason: Option<Reason>) {
        #[derive(Serialize)]
        struct Trace<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            emitted_at: u64,
            stream_status: StreamStatus<'a>,
        }
        #[derive(Serialize)]
        struct StreamStatus<'a> {
            stream_descriptor: &'a RawValue,
            status: Status,
            #[serde(skip_serializing_if = "Option::is_none")]
            reasons: Option<[Reason; 1]>,
        }
        let trace = Trace {
            kind: "STREAM_STATUS",
            emitted_at: now_ms(),
            stream_status: StreamStatus {
                stream_descriptor: &stream.descriptor,
                status,
                reasons: reason.map(|r| [r]),
            },
        };
        self.message(Kind::Trace, &trace);
    }

    /// A LOG line: `out.log(Level::Warn, format_args!("..."))`.
    pub fn log(&mut self, level: Level, message: impl fmt::Display) {
        #[derive(Serialize)]
        struct Log<'a> {
            level: Level,
            message: &'a str,
        }
        let message = message.to_string();
        self.message(
            Kind::Log,
            &Log {
                level,
                message: &message,
            },
        );
    }

    /// A LOG WARN that must also reach a person when stdout goes to a file
    /// or through a filter that drops it: written on stderr too, at once.
    pub fn warn_loudly(&mut self, message: &str) {
        self.log(Level::Warn, message);
        if let Some(p) = &mut self.progress {
            p.clear();
        }
        // Not `eprintln!`, which panics when stderr is a closed pipe.
        let _ = writeln!(
            std::io::stderr(),
            "source-persistiq: warning: {}",
            crate::progress::printable(message)
        );
    }

    /// A TRACE ERROR carrying the error's failure_type (and stream, if any).
    pub fn trace_error(&mut self, err: &Error, stream: Option<&StreamId>) {
        #[derive(Serialize)]
        struct Trace<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            emitted_at: u64,
            error: ErrorBody<'a>,
        }
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            internal_message: Option<&'a str>,
            failure_type: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            stream_descriptor: Option<&'a RawValue>,
        }
        let trace = Trace {
            kind: "ERROR",
            emitted_at: now_ms(),
            error: ErrorBody {
                message: &err.message,
                internal_message: err.internal.as_deref(),
                failure_type: err.failure.as_str(),
                stream_descriptor: stream.map(|s| &*s.descriptor),
            },
        };
        self.message(Kind::Trace, &trace);
        self.failures.push(Failure {
            stream: stream.map(|s| s.name.clone()),
            message: err.message.clone(),
        });
    }

    pub fn connection_status(&mut self, ok: bool, message: Option<&str>) {
        #[derive(Serialize)]
        struct ConnectionStatus<'a> {
            status: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            message: Option<&'a str>,
        }
        let status = ConnectionStatus {
            status: if ok { "SUCCEEDED" } else { "FAILED" },
            message,
        };
        self.message(Kind::ConnectionStatus, &status);
        if !ok {
            self.failures.push(Failure {
                stream: None,
                message: message.unwrap_or("the check failed").to_string(),
            });
        }
    }

    /// `{"type":kind,"<key>":payload}` on one line.
    pub fn message(&mut self, kind: Kind, payload: &impl Serialize) {
        let (kind, key) = kind.names();
        self.buf.extend_from_slice(b"{\"type\":\"");
        self.buf.extend_from_slice(kind.as_bytes());
        self.buf.extend_from_slice(b"\",\"");
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"\":");
        // Plain data serialises into a Vec without fail.
        let _ = serde_json::to_writer(&mut self.buf, payload);
        self.buf.extend_from_slice(b"}\n");
    }

    /// Live progress: `stream` is about to send its first request. Starts
    /// the clock of its rate and names it on screen, also while it waits.
    pub fn progress_start(&mut self, stream: &str) {
        if let Some(p) = &mut self.progress {
            p.start(stream);
        }
    }

    /// Live progress after a page, for a person at a terminal.
    pub fn progress_page(&mut self, stream: &str, pages: u64, records: u64) {
        if let Some(p) = &mut self.progress {
            p.page(stream, pages, records);
        }
    }

    /// Says why the sync is about to wait: a LOG at `level`, the progress
    /// line, and everything gathered so far out on stdout. The caller waits.
    pub fn waiting(&mut self, level: Level, why: &str) -> Result<()> {
        self.log(level, why);
        if let Some(p) = &mut self.progress {
            p.wait(why);
        }
        self.flush()
    }

    /// Live progress: a stream's final counts.
    pub fn progress_done(&mut self, stream: &str, pages: u64, records: u64) {
        if let Some(p) = &mut self.progress {
            p.done(stream, pages, records);
        }
    }

    /// Live progress: a stream's final line when it failed (or was never
    /// read), with the `records` it wrote and the gist of `message`.
    pub fn progress_failed(&mut self, stream: &str, records: u64, message: &str) {
        if let Some(p) = &mut self.progress {
            p.failed(stream, records, message);
        }
    }

    /// The lines written since the last flush, taken: what a test of a
    /// module that writes through `Out` reads back.
    #[cfg(test)]
    pub fn take_text(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.buf)).unwrap_or_default()
    }

    /// Hands every whole line gathered so far to stdout.
    pub fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = signals::while_writing(|| {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&self.buf).and_then(|_| stdout.flush())
        });
        self.buf.clear();
        written.map_err(|e| Error::stdout(&e))
    }
}
