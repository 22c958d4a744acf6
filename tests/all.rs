//! The integration tests: one test binary, each file a module of it.
//!
//! With LTO in the release profile every test binary is one more
//! whole-program optimisation of std, serde_json and the mock, so there is
//! only this one (`autotests = false` in Cargo.toml). A new file must be
//! listed here: `every_test_file_is_a_module_here` checks.
//!
//! One file's tests: `cargo test --release --test all terminal::`.

mod support;

/// spec, check, discover and read as Airbyte calls them; the protocol's messages and exit codes
mod connector;
/// README.md and docs/: every relative link and anchor resolves
mod docs;
/// `doctor`: each step's row, passed and failed, over HTTP, HTTPS and a proxy
mod doctor;
/// the API key: never printed, whatever form a server echoes it back in, and its checks
mod echo;
/// one request's faults and waits: 429s and rate windows, 5xx and Retry-After, resets, stalls, bodies too short or too large, empty pages, a rejected key, and `check`'s budget
mod faults;
/// a full read's output, byte for byte, against a file written before
mod golden;
/// the config, catalog and state files and the command line, and what is wrong with them
mod inputs;
/// an account that changes during a sync; stale and endless pages; whole lines under signals
mod living;
/// HTTPS, CAs, proxies, connections that never open, hosts that do not exist
mod network;
/// the release binaries, the image's Dockerfile, metadata.yaml, the changelog and SBOMs
mod packaging;
/// `replies`: per campaign, incremental, resumed through changes
mod replies;
/// resumable full refresh: a killed read goes on from its checkpoint
mod resume;
/// the state as a contract: every earlier shape, the shell's forms, cursors, what comes twice is said
mod state;
/// each stream's records, paging and incremental reads
mod streams;
/// the live line and stderr at a terminal (pty)
mod terminal;

/// A test file left out of this list would silently never run.
#[test]
fn every_test_file_is_a_module_here() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let listed = include_str!("all.rs");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(module) = name.strip_suffix(".rs").filter(|m| *m != "all") {
            assert!(
                listed.contains(&format!("\nmod {module};\n")),
                "tests/{name} is not a module of tests/all.rs, so it never runs"
            );
        }
    }
}
