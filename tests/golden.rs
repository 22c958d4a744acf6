//! The connector's output, byte for byte, against a golden file:
//! optimisations must not change a single byte of what is emitted.
//! Timestamps and LOG lines (which carry timings) are masked; everything
//! else is compared as is.
//!
//! `SPQ_BLESS=1 cargo test --release --test all golden::` rewrites the file, for a
//! deliberate change of output.

use crate::support;

use support::mock::{MockServer, Options};
use support::*;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/read-all.jsonl");

fn small_account() -> Options {
    Options {
        leads: 250,
        campaigns: 12,
        events: 600,
        dnc_domains: 120,
        ..Options::default()
    }
}

/// stdout with `"emitted_at":<ms>` zeroed and LOG lines dropped.
fn masked(stdout: &str) -> String {
    let mut out = String::with_capacity(stdout.len());
    for line in stdout
        .lines()
        .filter(|l| !l.starts_with(r#"{"type":"LOG""#))
    {
        let mut rest = line;
        while let Some(i) = rest.find(r#""emitted_at":"#) {
            let (head, tail) = rest.split_at(i + r#""emitted_at":"#.len());
            out.push_str(head);
            out.push('0');
            rest = tail.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

fn check(options: Options, what: &str) {
    let mock = MockServer::start(options);
    let dir = TempDir::new();
    let run = read(&dir, &config(&mock.base_url()), None);
    assert_eq!(run.code, Some(0), "{what}: {}", run.stdout);
    let got = masked(&run.stdout);
    if std::env::var_os("SPQ_BLESS").is_some() {
        std::fs::write(GOLDEN, &got).unwrap();
    }
    let want = std::fs::read_to_string(GOLDEN).expect("the golden file");
    assert!(
        got.lines().count() > 1000,
        "{what}: too little output to compare"
    );
    if got != want {
        let line = got.lines().zip(want.lines()).position(|(a, b)| a != b);
        panic!("{what}: output differs from {GOLDEN} (first differing line: {line:?})");
    }
}

#[test]
fn output_is_byte_identical_to_the_golden_file() {
    check(small_account(), "compact pages");
}

#[test]
fn pretty_printed_pages_give_the_same_bytes() {
    // CRLF, tabs and spaces around every token: still one line per message,
    // and the very same bytes as from compact pages.
    check(
        Options {
            pretty: true,
            ..small_account()
        },
        "pretty pages",
    );
}
