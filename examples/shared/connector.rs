//! Finding the release connector from an example (demo, bench).
#![allow(dead_code)] // each example uses a different part of it

use std::path::PathBuf;
use std::process::Command;

/// The connector binary next to the running example.
///
/// Run directly (`target/release/examples/demo`, after the one cargo
/// invocation `cargo build --release --bin source-persistiq --example
/// demo` built both), nothing is built. Run by `cargo run --example`
/// (`$CARGO` is set), which builds an example without the package's
/// binary, the connector is built first with a nested `cargo build` (a
/// no-op when fresh); it says so, and lets cargo show how it goes: a first
/// build takes a minute, which must not look like a hang.
/// `Err` says what went wrong, for the example to report its own way.
pub fn connector_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or("the example is not under target/<profile>/examples")?;
    let bin = profile_dir.join(format!("source-persistiq{}", std::env::consts::EXE_SUFFIX));
    let release = profile_dir.ends_with("release");
    let profile = if release { " --release" } else { "" };
    // Named after the example that prints it: demo or bench.
    let example = exe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "demo".into());
    let Some(cargo) = std::env::var_os("CARGO") else {
        return if bin.exists() {
            Ok(bin)
        } else {
            Err(format!(
                "no connector at {}; build it with this example, in one go: cargo build{profile} --bin source-persistiq --example {example}",
                bin.display()
            ))
        };
    };
    let mut build = Command::new(cargo);
    build.args(["build", "--bin", "source-persistiq"]);
    // `cargo run` gives us the package's CARGO_PKG_* and CARGO_MANIFEST_*;
    // ring's build script reruns when any of those changes, so passing them
    // on would rebuild ring here and again at the next `cargo run`.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&&*key)
        {
            build.env_remove(&*key);
        }
    }
    if release {
        build.arg("--release");
    }
    eprintln!(
        "{example}: building the connector first: cargo build{profile} --bin source-persistiq"
    );
    match build.status() {
        Ok(s) if s.success() => Ok(bin),
        _ if bin.exists() => Ok(bin),
        _ => Err("could not build the connector; run `cargo build --release` first".into()),
    }
}

/// Whether the example runs from a release build.
pub fn is_release() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(|p| p.ends_with("release")))
        .unwrap_or(false)
}
