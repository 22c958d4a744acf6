//! A live one-line progress report on stderr, for people at a terminal.
//!
//! When stderr is not a terminal (Airbyte, PyAirbyte, a log file) nothing is
//! written at all: stderr stays empty on success.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Redraw at most this often: a terminal is slower than a sync.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// "1 page", "2 pages".
pub fn count(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

pub struct Progress {
    stream: String,
    started: Instant,
    last_draw: Option<Instant>,
    pages: u64,
    records: u64,
    /// Why the sync is waiting, while it waits (a retry, a rate window).
    waiting: Option<String>,
}

impl Progress {
    /// A reporter, if stderr is a terminal.
    pub fn for_terminal() -> Option<Progress> {
        std::io::stderr().is_terminal().then(|| Progress {
            stream: String::new(),
            started: Instant::now(),
            last_draw: None,
            pages: 0,
            records: 0,
            waiting: None,
        })
    }

    /// The counts of the stream being read, after a page.
    pub fn page(&mut self, stream: &str, pages: u64, records: u64) {
        if self.stream != stream {
            self.stream = stream.to_string();
            self.started = Instant::now();
        }
        self.pages = pages;
        self.records = records;
        self.waiting = None;
        if self.last_draw.is_none_or(|t| t.elapsed() >= REDRAW_EVERY) {
            self.draw(false);
        }
    }

    /// The sync is about to sleep: say why, at once.
    pub fn wait(&mut self, why: &str) {
        self.waiting = Some(why.to_string());
        self.draw(false);
    }

    /// The stream ended: leave its final line on screen.
    pub fn done(&mut self, stream: &str, pages: u64, records: u64) {
        self.page(stream, pages, records);
        self.draw(true);
        self.stream.clear();
    }

    fn draw(&mut self, last: bool) {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            self.records as f64 / secs
        } else {
            0.0
        };
        let mut line = format!(
            "{}: {}, {}, {:.0} records/s",
            self.stream,
            count(self.records, "record"),
            count(self.pages, "page"),
            rate
        );
        if let Some(why) = &self.waiting {
            line.push_str(&format!("; waiting: {why}"));
        }
        let end = if last { "\n" } else { "" };
        // \r and "erase line" redraw in place; errors here are not worth a failure.
        let _ = write!(std::io::stderr().lock(), "\r\x1b[2K{line}{end}");
        self.last_draw = Some(Instant::now());
    }
}
