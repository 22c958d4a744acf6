//! Airbyte messages on stdout, one JSON object per line.
//!
//! Lines gather in one reusable buffer and reach stdout only whole, at the
//! end of each page or message group; a signal cannot cut a write short (see
//! `signals`). The API key is masked where text from outside is quoted
//! (`secret::mask`), so messages are written as they are.

use crate::error::{Error, Result};
use crate::page::Record;
use crate::progress::Progress;
use crate::signals;
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as the protocol's timestamps want.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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

/// STREAM_STATUS values.
#[derive(Clone, Copy, Debug)]
pub enum Status {
    Started,
    Running,
    Complete,
    Incomplete,
}

/// The stdout writer. Everything the connector says goes through it.
pub struct Out {
    buf: Vec<u8>,
    progress: Option<Progress>,
    /// Every failure written (TRACE ERROR, CONNECTION_STATUS FAILED), for
    /// the one plain line on stderr at exit.
    failures: Vec<Failure>,
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
        }
    }

    /// The failures written so far, in order.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// A RECORD whose `data` is the API's own JSON for one record.
    pub fn record(&mut self, stream: &StreamId, record: &Record, end: &RecordEnd) {
        self.buf.extend_from_slice(&stream.record_prefix);
        record.write_to(&mut self.buf);
        self.buf.extend_from_slice(&end.0);
    }

    /// A per-stream STATE; `records` counts the stream's records since its previous STATE.
    pub fn state(&mut self, stream: &StreamId, stream_state: &serde_json::Value, records: u64) {
        let state = stream_state.to_string();
        // recordCount is a double that must carry a decimal point.
        let line = format!(
            "{{\"type\":\"STATE\",\"state\":{{\"type\":\"STREAM\",\"stream\":{{\"stream_descriptor\":{},\"stream_state\":{}}},\"sourceStats\":{{\"recordCount\":{}.0}}}}}}\n",
            stream.descriptor.get(),
            state,
            records
        );
        self.buf.extend_from_slice(line.as_bytes());
    }

    pub fn status(&mut self, stream: &StreamId, status: Status) {
        let status = match status {
            Status::Started => "STARTED",
            Status::Running => "RUNNING",
            Status::Complete => "COMPLETE",
            Status::Incomplete => "INCOMPLETE",
        };
        self.stream_status(stream, status, "");
    }

    /// STREAM_STATUS RUNNING with the reason RATE_LIMITED: the stream waits
    /// for the API's rate window, until `quota_reset` (epoch ms) if known.
    /// The platform shows it until records flow again.
    pub fn rate_limited(&mut self, stream: &StreamId, quota_reset: Option<u64>) {
        let reason = match quota_reset {
            Some(ms) => format!(
                ",\"reasons\":[{{\"type\":\"RATE_LIMITED\",\"rate_limited\":{{\"quota_reset\":{ms}}}}}]"
            ),
            None => ",\"reasons\":[{\"type\":\"RATE_LIMITED\"}]".to_string(),
        };
        self.stream_status(stream, "RUNNING", &reason);
    }

    /// A STREAM_STATUS line; `extra` is more members of `stream_status`.
    fn stream_status(&mut self, stream: &StreamId, status: &str, extra: &str) {
        let line = format!(
            "{{\"type\":\"TRACE\",\"trace\":{{\"type\":\"STREAM_STATUS\",\"emitted_at\":{},\"stream_status\":{{\"stream_descriptor\":{},\"status\":\"{}\"{}}}}}}}\n",
            now_ms(),
            stream.descriptor.get(),
            status,
            extra
        );
        self.buf.extend_from_slice(line.as_bytes());
    }

    pub fn log(&mut self, level: &str, message: &str) {
        #[derive(Serialize)]
        struct Log<'a> {
            level: &'a str,
            message: &'a str,
        }
        self.message("LOG", "log", &Log { level, message });
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
        self.message("TRACE", "trace", &trace);
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
        self.message("CONNECTION_STATUS", "connectionStatus", &status);
        if !ok {
            self.failures.push(Failure {
                stream: None,
                message: message.unwrap_or("the check failed").to_string(),
            });
        }
    }

    /// `{"type":kind,"<key>":payload}` on one line.
    pub fn message(&mut self, kind: &str, key: &str, payload: &impl Serialize) {
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

    /// Says why the sync waits (a LOG at `level`, and on the progress
    /// line), then waits.
    pub fn pause(&mut self, level: &str, why: &str, wait: Duration) -> Result<()> {
        self.log(level, why);
        if let Some(p) = &mut self.progress {
            p.wait(why);
        }
        self.flush()?;
        std::thread::sleep(wait);
        Ok(())
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
        written.map_err(Error::from)
    }
}
