//! Every signal whose default is to end the process (HUP: a closed
//! terminal or ssh session; INT, QUIT, TERM, ALRM, USR1, USR2): stop at
//! once, but never in the middle of a line.
//!
//! Outside a write to stdout the handler ends the process on the spot (the
//! default action), so a sync blocked in a slow request or a retry sleep
//! stops within a second. While a write is under way it only records the
//! signal; the writer finishes its whole lines and then re-raises it, so
//! the process still dies of that signal (the parent sees which) and
//! stdout ends with a STATE a resume can use. SIGPIPE stays ignored, as
//! Rust leaves it: a reader that left is a failed write, said on stderr.
#![allow(unsafe_code)] // calls into the C library: a SAFETY note on each

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::SeqCst};

static WRITING: AtomicBool = AtomicBool::new(false);
/// A live progress line is on stderr without its newline.
static LIVE_LINE: AtomicBool = AtomicBool::new(false);
static PENDING: AtomicI32 = AtomicI32::new(0);

/// Whether `sig` is ignored, as the parent left it: read without changing
/// it, so that there is no moment in which an ignored signal is handled.
#[cfg(unix)]
fn is_ignored(sig: libc::c_int) -> bool {
    // SAFETY: struct sigaction is plain data (a handler, a mask, flags, on
    // some systems a restorer), for which all-zero bytes are a valid value.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null `act` only reads the disposition into `old`, a live
    // local of the C library's own struct sigaction, as libc declares it.
    let read = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
    read == 0 && old.sa_sigaction == libc::SIG_IGN
}

/// Die of `sig` as the default action would, so parents see "killed by signal".
#[cfg(unix)]
fn die_of(sig: libc::c_int) {
    if LIVE_LINE.load(SeqCst) {
        // Cleared, as `Progress` clears it at exit, so that the shell's
        // prompt does not land after a stale line.
        let clear = b"\r\x1b[2K";
        // SAFETY: write() is async-signal-safe; the buffer is a static
        // byte string of the length given.
        unsafe {
            libc::write(2, clear.as_ptr().cast(), clear.len());
        }
    }
    // SAFETY: signal() and raise() are async-signal-safe, and SIG_DFL is a
    // disposition the C library defines for every signal.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

#[cfg(unix)]
extern "C" fn on_signal(sig: libc::c_int) {
    if WRITING.load(SeqCst) {
        PENDING.store(sig, SeqCst);
    } else {
        die_of(sig);
    }
}

/// fd 1 was closed when the process started (`>&-`).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Asked before `main`: Rust's start-up puts /dev/null on a closed fd 1,
/// after which `>&-` cannot be told from `> /dev/null`. The C library runs
/// `.init_array` entries before that start-up.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static NOTE_STDOUT: extern "C" fn() = {
    extern "C" fn note() {
        // SAFETY: F_GETFD only reads fd 1's flags; it fails with EBADF on
        // a closed fd and touches no memory.
        if unsafe { libc::fcntl(1, libc::F_GETFD) } == -1 {
            STDOUT_CLOSED.store(true, SeqCst);
        }
    }
    note
};

/// Whether fd 1 was closed when the process started.
pub fn stdout_was_closed() -> bool {
    STDOUT_CLOSED.load(SeqCst)
}

/// Installs the handlers; call once at start-up. A signal the parent set
/// to be ignored (`nohup`, `trap '' INT`) stays ignored: its disposition is
/// read first and left alone.
pub fn install() {
    #[cfg(unix)]
    for sig in [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGALRM,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        if is_ignored(sig) {
            continue;
        }
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler has the C signature signal() expects and
        // touches only atomics and async-signal-safe calls.
        unsafe {
            libc::signal(sig, handler);
        }
    }
}

/// Notes whether a live progress line is on stderr without its newline.
pub fn live_line(open: bool) {
    LIVE_LINE.store(open, SeqCst);
}

/// Runs `write` with termination held back until it returns.
pub fn while_writing<T>(write: impl FnOnce() -> T) -> T {
    WRITING.store(true, SeqCst);
    let result = write();
    WRITING.store(false, SeqCst);
    let sig = PENDING.swap(0, SeqCst);
    if sig != 0 {
        #[cfg(unix)]
        die_of(sig);
    }
    result
}
