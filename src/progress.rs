//! A live one-line progress report on stderr, for people at a terminal.
//!
//! Drawn only when stderr is a terminal and stdout goes to a file or a
//! device that is no terminal (`> out.jsonl`, `> /dev/null`). A line
//! redrawn in place with `\r` would land in the middle of the JSON lines if
//! both went to the same screen, and a pipe (`| jq`) most often ends on
//! that screen too, where the reader's lines would run into the live line
//! and be erased by its next redraw. Someone reading the JSON on a terminal
//! has its LOG lines for progress anyway. When stderr is not a terminal
//! (Airbyte, PyAirbyte, a log file) nothing is written at all: stderr stays
//! empty on success.
//!
//! Each stream ends with one line of its own, kept on screen: its counts
//! when it completed, or that it failed and why in a few words.
//!
//! The live line never wraps: `\r` and "erase line" clear one row only, so
//! a wrapped line would leave its first rows behind at every redraw. Each
//! draw asks the terminal its width (a resize is seen at the next draw)
//! and cuts the line to fit, keeping the end of a wait's reason (`retry 2
//! of 6 in 1.00 s`), the part that changes.

use crate::text::count;
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

/// Where stdout goes, as far as the live line cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stdout {
    Terminal,
    /// A regular file, or a device that is no terminal (`/dev/null`).
    FileOrDevice,
    /// A pipe or a socket: its reader may print to the same screen.
    Pipe,
}

impl Stdout {
    fn now() -> Stdout {
        use std::os::fd::AsFd;
        if std::io::stdout().is_terminal() {
            return Stdout::Terminal;
        }
        // A duplicate of fd 1, to ask what it is (fstat) without owning it.
        let kind = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map(std::fs::File::from)
            .and_then(|f| f.metadata())
            .map(|m| m.file_type());
        match kind {
            Ok(t) if t.is_file() || is_device(&t) => Stdout::FileOrDevice,
            _ => Stdout::Pipe,
        }
    }
}

#[cfg(unix)]
fn is_device(t: &std::fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    t.is_char_device() || t.is_block_device()
}

#[cfg(not(unix))]
fn is_device(_: &std::fs::FileType) -> bool {
    false
}

/// Whether a person watches stderr while stdout goes where a line redrawn
/// in place cannot touch stdout's lines.
fn wanted(stderr_is_terminal: bool, stdout: Stdout) -> bool {
    stderr_is_terminal && stdout == Stdout::FileOrDevice
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
    /// A reporter, if stderr is a terminal and stdout a file or `/dev/null`.
    pub fn for_terminal() -> Option<Progress> {
        wanted(std::io::stderr().is_terminal(), Stdout::now()).then(|| Progress {
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

    /// The sync is about to sleep: say why, at once. The line starts
    /// with the stream's name already: the reason does not repeat it.
    pub fn wait(&mut self, why: &str) {
        let named = format!("stream {}", self.stream);
        let why = match why.strip_prefix(named.as_str()) {
            Some(rest) if !self.stream.is_empty() => rest.trim_start_matches([',', ':', ' ']),
            _ => why,
        };
        self.waiting = Some(printable(why));
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
        let why = printable(&reason(stream, message));
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
        let line = fit(&line, terminal_columns().saturating_sub(1));
        self.put(&line, false);
        self.last_draw = Some(Instant::now());
    }

    /// Takes the live line off the screen, so that a line of its own can
    /// be written there; the next page draws it again.
    pub fn clear(&mut self) {
        if self.open {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            self.open = false;
            crate::signals::live_line(false);
        }
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
        crate::signals::live_line(self.open);
    }
}

/// The width of the terminal on stderr, in columns; 80 when it does not
/// say (a pty nobody sized).
fn terminal_columns() -> usize {
    #[cfg(unix)]
    #[allow(unsafe_code)] // TIOCGWINSZ has no safe wrapper in std
    {
        // SAFETY: struct winsize is four u16s, valid when zeroed.
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one struct winsize to the pointer,
        // a live local of that type; on a bad fd it fails and writes nothing.
        let asked = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut size) };
        if asked == 0 && size.ws_col > 0 {
            return usize::from(size.ws_col);
        }
    }
    80
}

/// How many columns `c` takes on a terminal: 0 for a combining mark or a
/// zero-width character, 2 for East Asian wide ones and emoji, else 1.
/// The main ranges only: a line that would still overflow is rare, and a
/// full width table is too large for the binary's budget.
fn columns(c: char) -> usize {
    match u32::from(c) {
        0x300..=0x36f | 0x200b..=0x200f | 0xfe00..=0xfe0f => 0,
        0x1100..=0x115f
        | 0x2e80..=0xa4cf
        | 0xac00..=0xd7a3
        | 0xf900..=0xfaff
        | 0xfe30..=0xfe4f
        | 0xff00..=0xff60
        | 0xffe0..=0xffe6
        | 0x1f300..=0x1f64f
        | 0x1f900..=0x1f9ff
        | 0x20000..=0x3fffd => 2,
        _ => 1,
    }
}

/// The columns `text` takes.
fn width(text: &str) -> usize {
    text.chars().map(columns).sum()
}

/// The longest start of `text` that takes at most `max` columns.
fn cut(text: &str, max: usize) -> &str {
    let mut used = 0;
    for (i, c) in text.char_indices() {
        used += columns(c);
        if used > max {
            return &text[..i];
        }
    }
    text
}

/// `line` in at most `max` columns: whole if it fits; else its last clause
/// (after the last `; `: a retry's count and delay) kept and what comes
/// before cut with an ellipsis; in a window too narrow for that, its
/// start and an ellipsis.
fn fit(line: &str, max: usize) -> String {
    if width(line) <= max {
        return line.to_string();
    }
    if max == 0 {
        return String::new();
    }
    if let Some(at) = line.rfind("; ") {
        let tail = &line[at..];
        // Room for the stream's name at least, or the tail alone means little.
        if width(tail) + 16 <= max {
            let head = cut(&line[..at], max - width(tail) - 1);
            return format!("{}\u{2026}{tail}", head.trim_end());
        }
    }
    format!("{}\u{2026}", cut(line, max - 1).trim_end())
}

/// `text` with control characters (newlines, escapes: from a server's error
/// message, say) replaced by spaces, so that it stays on its one line.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
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
        assert!(wanted(true, Stdout::FileOrDevice));
        assert!(
            !wanted(true, Stdout::Terminal),
            "stdout's lines would be drawn over"
        );
        assert!(
            !wanted(true, Stdout::Pipe),
            "`| jq` prints to the same screen"
        );
        assert!(!wanted(false, Stdout::FileOrDevice));
        assert!(!wanted(false, Stdout::Terminal));
    }

    #[test]
    fn a_line_is_cut_to_the_window_keeping_the_retry_count() {
        let line = "users: 0 records, 0 pages; waiting: page 1: HTTP 503: unavailable: \
                    the upstream is down; retry 1 of 6 in 1.00 s";
        assert_eq!(fit(line, 200), line);
        let fitted = fit(line, 59);
        assert_eq!(width(&fitted), 59, "{fitted}");
        assert!(
            fitted.ends_with("\u{2026}; retry 1 of 6 in 1.00 s"),
            "{fitted}"
        );
        assert!(fitted.starts_with("users: 0 records"), "{fitted}");
        assert_eq!(fit(line, 20), "users: 0 records, 0\u{2026}");
        assert_eq!(fit(line, 1), "\u{2026}");
        assert_eq!(fit(line, 0), "");
        // Wide characters count twice, combining marks not at all.
        assert_eq!(width("\u{65e5}\u{672c}e\u{301}"), 5);
        assert_eq!(cut("\u{65e5}\u{672c}", 3), "\u{65e5}");
        assert!(width(&fit(&"\u{65e5}".repeat(50), 9)) <= 9);
    }

    #[test]
    fn server_text_cannot_move_the_cursor() {
        assert_eq!(printable("a\nb\u{1b}[2Jc\rd\u{7f}"), "a b [2Jc d ");
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
                "stream users, page 2: PersistIq's rate limit was still exceeded after 3 tries; \
                 try again later"
            ),
            "page 2: PersistIq's rate limit was still exceeded after 3 tries"
        );
        assert_eq!(reason("x", "not a stream"), "not a stream");
        let long = reason("x", &"é".repeat(500));
        assert_eq!(long.chars().count(), REASON_CHARS);
        assert!(long.ends_with("..."));
    }
}
