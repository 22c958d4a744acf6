//! The integration tests: one test binary, each file a module of it.
//!
//! With LTO in the release profile every test binary is one more
//! whole-program optimisation of std, serde_json and the mock, so there is
//! only this one (`autotests = false` in Cargo.toml). A new file must be
//! listed here: `every_test_file_is_a_module_here` checks.
//!
//! One file's tests: `cargo test --release --test all terminal::`.

mod support;

mod connector;
mod docs;
mod doctor;
mod echo;
mod faults;
mod golden;
mod inputs;
mod living;
mod network;
mod packaging;
mod replies;
mod resume;
mod state;
mod streams;
mod terminal;
mod trust;

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
