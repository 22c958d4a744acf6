//! Finding the release connector from an example (demo, bench).
#![allow(dead_code)] // each example uses a different part of it

use std::path::PathBuf;
use std::process::Command;

/// The connector binary next to the running example, built first (a no-op
/// when fresh): cargo builds examples without the package's binary.
/// Says on stderr what it builds, and lets cargo show how it goes: the
/// first build takes a minute, which must not look like a hang.
/// `Err` says what went wrong, for the example to report its own way.
pub fn connector_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or("the example is not under target/<profile>/examples")?;
    let bin = profile_dir.join(format!("source-persistiq{}", std::env::consts::EXE_SUFFIX));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
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
    let release = profile_dir.ends_with("release");
    if release {
        build.arg("--release");
    }
    // Named after the example that prints it: demo or bench.
    let example = exe.file_stem().map(|s| s.to_string_lossy().into_owned());
    eprintln!(
        "{}: building the connector first: cargo build{} --bin source-persistiq",
        example.as_deref().unwrap_or("example"),
        if release { " --release" } else { "" }
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
