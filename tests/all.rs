//! Every integration test file, as a module of one test binary.
//!
//! With LTO in the release profile each test binary is one more whole-
//! program optimisation of std, serde_json and the mock: seven binaries
//! took 131 s of CPU to build (`cargo test --release --no-run -j1`, this
//! package's targets only), one takes 73 s. The files stay as they were;
//! `autotests = false` in Cargo.toml makes this the only test binary, so a
//! new file must be listed here: `every_test_file_is_a_module_here` checks.
//!
//! One file's tests: `cargo test --release --test all terminal::`.

// Each file keeps its own `mod support;`, as when it was a binary of its
// own, so support/ is compiled once per file: left as it is so that the
// files merge with work written against the old layout.
#![allow(clippy::duplicate_mod)]

#[path = "connector.rs"]
mod connector;
#[path = "echo.rs"]
mod echo;
#[path = "faults.rs"]
mod faults;
#[path = "golden.rs"]
mod golden;
#[path = "inputs.rs"]
mod inputs;
#[path = "living.rs"]
mod living;
#[path = "network.rs"]
mod network;
#[path = "packaging.rs"]
mod packaging;
#[path = "replies.rs"]
mod replies;
#[path = "streams.rs"]
mod streams;
#[path = "terminal.rs"]
mod terminal;
#[path = "trust.rs"]
mod trust;

/// A test file left out of this list would silently never run.
#[test]
fn every_test_file_is_a_module_here() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let listed = include_str!("all.rs");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".rs") && name != "all.rs" {
            assert!(
                listed.contains(&format!("#[path = \"{name}\"]")),
                "tests/{name} is not a module of tests/all.rs, so it never runs"
            );
        }
    }
}
