//! SIGTERM and SIGINT: stop at once, but never in the middle of a line.
//!
//! Outside a write to stdout the handler ends the process on the spot (the
//! default action), so a sync blocked in a slow request or a retry sleep
//! stops within a second. While a write is under way it only records the
//! signal; the writer finishes its whole lines and then re-raises it.
#![allow(unsafe_code)] // calls into the C library: a SAFETY note on each

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::SeqCst};

static WRITING: AtomicBool = AtomicBool::new(false);
static PENDING: AtomicI32 = AtomicI32::new(0);

#[cfg(unix)]
mod sys {
    use std::os::raw::c_int;
    pub const SIGINT: c_int = 2;
    pub const SIGTERM: c_int = 15;
    pub const SIG_DFL: usize = 0;
    pub const SIG_IGN: usize = 1;

    /// Enough of `struct sigaction` to read a disposition: on Linux (glibc
    /// and musl alike) the handler comes first. The rest is room for the
    /// mask, flags and restorer, with spare, since only the C library
    /// writes it.
    #[cfg(target_os = "linux")]
    #[repr(C)]
    pub struct SigAction {
        pub handler: usize,
        rest: [u64; 32],
    }

    #[cfg(target_os = "linux")]
    impl SigAction {
        pub fn empty() -> SigAction {
            SigAction {
                handler: SIG_DFL,
                rest: [0; 32],
            }
        }
    }

    extern "C" {
        pub fn signal(signum: c_int, handler: usize) -> usize;
        pub fn raise(signum: c_int) -> c_int;
        #[cfg(target_os = "linux")]
        pub fn sigaction(signum: c_int, act: *const SigAction, old: *mut SigAction) -> c_int;
    }
}

/// Whether `sig` is ignored, as the parent left it: read without changing
/// it, so that there is no moment in which an ignored signal is handled.
#[cfg(unix)]
fn is_ignored(sig: std::os::raw::c_int) -> bool {
    #[cfg(target_os = "linux")]
    {
        let mut old = sys::SigAction::empty();
        // SAFETY: a null `act` only reads the disposition into `old`, which
        // is larger than the C library's struct sigaction.
        let read = unsafe { sys::sigaction(sig, std::ptr::null(), &mut old) };
        read == 0 && old.handler == sys::SIG_IGN
    }
    #[cfg(not(target_os = "linux"))]
    // SAFETY: signal() is async-signal-safe; elsewhere the disposition is
    // read by setting it to ignored and back, a window this cannot avoid.
    unsafe {
        let old = sys::signal(sig, sys::SIG_IGN);
        if old != sys::SIG_IGN {
            sys::signal(sig, old);
        }
        old == sys::SIG_IGN
    }
}

/// Die of `sig` as the default action would, so parents see "killed by signal".
#[cfg(unix)]
fn die_of(sig: i32) {
    // SAFETY: signal() and raise() are async-signal-safe libc calls.
    unsafe {
        sys::signal(sig, sys::SIG_DFL);
        sys::raise(sig);
    }
}

#[cfg(unix)]
extern "C" fn on_signal(sig: std::os::raw::c_int) {
    if WRITING.load(SeqCst) {
        PENDING.store(sig, SeqCst);
    } else {
        die_of(sig);
    }
}

/// Installs the handlers; call once at start-up. A signal the parent set
/// to be ignored (`nohup`, `trap '' INT`) stays ignored: its disposition is
/// read first and left alone.
pub fn install() {
    #[cfg(unix)]
    for sig in [sys::SIGTERM, sys::SIGINT] {
        if is_ignored(sig) {
            continue;
        }
        let handler = on_signal as extern "C" fn(std::os::raw::c_int) as usize;
        // SAFETY: the handler touches only atomics and async-signal-safe calls.
        unsafe {
            sys::signal(sig, handler);
        }
    }
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
