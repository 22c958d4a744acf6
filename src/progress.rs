//! A live one-line progress report on stderr, for people at a terminal.
//!
//! Drawn only when stderr is a terminal and stdout is not one: a line
//! redrawn in place with `\r` would land in the middle of the JSON lines if
//! both went to the same screen, and someone reading the JSON on a terminal
//! has its LOG lines for progress anyway. When stderr is not a terminal
//! (Airbyte, PyAirbyte, a log file) nothing is written at all: stderr stays
//! empty on success.
//!
//! Each stream ends with one line of its own, kept on screen: its counts
//! when it completed, or that it failed and why in a few words.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Redraw at most this often: a terminal is slower than a sync.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// A rate over less time than this is mostly noise (3 records in 1 ms is
/// not "3,000 records/s"), so none is shown before it.
const RATE_AFTER: Duration = Duration::from_secs(1);

/// The longest reason a failed stream's final line quotes; the whole
/// message is in the TRACE ERROR on stdout.
const REASON_CHARS: usize = 80;

/// "1 page", "2 pages".
pub fn count(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// Whether a person watches stderr while stdout goes elsewhere: the one
/// layout where a line redrawn in place cannot touch stdout's lines.
fn wanted(stderr_is_terminal: bool, stdout_is_terminal: bool) -> bool {
    stderr_is_terminal && !stdout_is_terminal
}

/// The live line of one stream at a time.
pub struct Progress {
    /// The stream being read; empty between streams.
    stream: String,
    /// When the stream's first request went out.
    started: Instant,
    /// When the live line was last drawn, to keep redraws rare.
    last_draw: Option<Instant>,
    /// Pages of the stream so far.
    pages: u64,
    /// Records of the stream so far.
    records: u64,
    /// Why the sync is waiting, while it waits (a retry, a rate window).
    waiting: Option<String>,
    /// A line without its newline is on screen (to clear at the end).
    open: bool,
}

impl Progress {
    /// A reporter, if stderr is a terminal and stdout is not.
    pub fn for_terminal() -> Option<Progress> {
        wanted(
            std::io::stderr().is_terminal(),
            std::io::stdout().is_terminal(),
        )
        .then(|| Progress {
            stream: String::new(),
            started: Instant::now(),
            last_draw: None,
            pages: 0,
            records: 0,
            waiting: None,
            open: false,
        })
    }

    /// A stream is about to send its first request: name it on screen and
    /// start its clock.
    pub fn start(&mut self, stream: &str) {
        self.stream = stream.to_string();
        self.started = Instant::now();
        self.pages = 0;
        self.records = 0;
        self.waiting = None;
        self.draw();
    }

    /// The counts of the stream being read, after a page.
    pub fn page(&mut self, stream: &str, pages: u64, records: u64) {
        if self.stream != stream {
            // No `start` for this stream: its clock starts here instead.
            self.start(stream);
        }
        self.pages = pages;
        self.records = records;
        self.waiting = None;
        if self.last_draw.is_none_or(|t| t.elapsed() >= REDRAW_EVERY) {
            self.draw();
        }
    }

    /// The sync is about to sleep: say why, at once.
    pub fn wait(&mut self, why: &str) {
        self.waiting = Some(why.to_string());
        self.draw();
    }

    /// The stream completed: its final line, kept on screen.
    pub fn done(&mut self, stream: &str, pages: u64, records: u64) {
        self.page(stream, pages, records);
        let secs = self.started.elapsed().as_secs_f64();
        let mut line = format!(
            "{}: {}, {}, done in {secs:.1} s",
            self.stream,
            count(self.records, "record"),
            count(self.pages, "page"),
        );
        if let Some(rate) = self.rate() {
            line.push_str(&format!(", {rate}"));
        }
        self.finish(&line);
    }

    /// The stream failed: its final line, kept on screen. `records` is what
    /// it wrote before failing; `message` is the error, of which the line
    /// keeps the first clause.
    pub fn failed(&mut self, stream: &str, records: u64, message: &str) {
        let why = reason(stream, message);
        let line = if self.stream == stream {
            format!(
                "{stream}: FAILED after {}, {}: {why}",
                count(records, "record"),
                count(self.pages, "page"),
            )
        } else {
            // Failed before its first request (a bad state, an unknown name).
            format!("{stream}: FAILED: {why}")
        };
        self.finish(&line);
    }

    /// Records per second, once there has been time enough to measure.
    fn rate(&self) -> Option<String> {
        let elapsed = self.started.elapsed();
        (elapsed >= RATE_AFTER).then(|| {
            format!(
                "{:.0} records/s",
                self.records as f64 / elapsed.as_secs_f64()
            )
        })
    }

    /// The live line: counts, a rate once measurable, and why it waits.
    fn draw(&mut self) {
        let mut line = if self.stream.is_empty() {
            // Outside a stream (`check`): the reason names the request.
            String::new()
        } else {
            format!(
                "{}: {}, {}",
                self.stream,
                count(self.records, "record"),
                count(self.pages, "page")
            )
        };
        if let Some(rate) = self.rate().filter(|_| !self.stream.is_empty()) {
            line.push_str(&format!(", {rate}"));
        }
        if let Some(why) = &self.waiting {
            let sep = if line.is_empty() { "" } else { "; " };
            line.push_str(&format!("{sep}waiting: {why}"));
        }
        self.put(&line, false);
        self.last_draw = Some(Instant::now());
    }

    /// Replaces the live line by `line` for good and ends the stream.
    fn finish(&mut self, line: &str) {
        self.put(line, true);
        self.stream.clear();
        self.waiting = None;
        self.last_draw = None;
    }

    /// Writes `line` over the current one; with `end`, ends it with a newline.
    fn put(&mut self, line: &str, end: bool) {
        let end = if end { "\n" } else { "" };
        // \r and "erase line" redraw in place; errors here are not worth a failure.
        let _ = write!(std::io::stderr().lock(), "\r\x1b[2K{line}{end}");
        self.open = end.is_empty();
    }
}

impl Drop for Progress {
    /// A live line still on screen at exit is stale (a wait that ended in
    /// a failure outside any stream): clear it rather than leave the
    /// shell's prompt after it.
    fn drop(&mut self) {
        if self.open {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }
}

/// The gist of a stream's error for its final line: the message without
/// the stream's own name (the line starts with it), up to the first `;`
/// (what follows is advice, in the TRACE ERROR), at most `REASON_CHARS`.
fn reason(stream: &str, message: &str) -> String {
    let named = format!("stream {stream}");
    let rest = message.strip_prefix(named.as_str()).unwrap_or(message);
    let rest = rest.trim_start_matches([',', ':', ' ']);
    let gist = rest.split("; ").next().unwrap_or(rest).trim();
    if gist.chars().count() <= REASON_CHARS {
        return gist.to_string();
    }
    let cut: String = gist.chars().take(REASON_CHARS - 3).collect();
    format!("{}...", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_only_when_stderr_alone_is_a_terminal() {
        assert!(wanted(true, false));
        assert!(!wanted(true, true), "stdout's lines would be drawn over");
        assert!(!wanted(false, false));
        assert!(!wanted(false, true));
    }

    #[test]
    fn the_reason_is_the_first_clause_without_the_stream_name() {
        assert_eq!(
            reason("users", "stream users, page 1: HTTP 503 (after 3 tries)"),
            "page 1: HTTP 503 (after 3 tries)"
        );
        assert_eq!(
            reason(
                "users",
                "stream users, page 2: PersistIq's rate limit was still exceeded after 3 tries; try again later"
            ),
            "page 2: PersistIq's rate limit was still exceeded after 3 tries"
        );
        assert_eq!(reason("x", "not a stream"), "not a stream");
        let long = reason("x", &"é".repeat(500));
        assert_eq!(long.chars().count(), REASON_CHARS);
        assert!(long.ends_with("..."));
    }
}
