//! Names the build for `--version`: the commit the binary was built from and
//! its Rust target, so that a bug report can say which build it came from.
//!
//! Sets `SPQ_COMMIT` (git's short commit, 12 digits, or "unknown" outside a
//! git checkout of this package) and `SPQ_TARGET` for the package's code.
//! `SPQ_COMMIT` in the environment wins: a build from a source tree without
//! `.git` (a container build) can be told its commit. Cheap on purpose: two
//! `git` calls, and it runs again only when HEAD or the ref it names moves,
//! not on every edit of the sources.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SPQ_COMMIT");
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    println!("cargo:rustc-env=SPQ_TARGET={target}");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let commit = match std::env::var("SPQ_COMMIT") {
        Ok(given) if is_commit(&given) => given,
        _ => git_commit(&dir).unwrap_or_else(|| "unknown".to_string()),
    };
    println!("cargo:rustc-env=SPQ_COMMIT={commit}");
}

/// Hexadecimal digits, as many as a short or a full commit id has.
fn is_commit(s: &str) -> bool {
    (7..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The short commit of `dir`'s checkout, and the files that change when it
/// moves told to cargo; `None` when git is missing or `dir` is not the top
/// of a checkout (a crate unpacked inside someone else's repository would
/// otherwise get that repository's commit).
fn git_commit(dir: &Path) -> Option<String> {
    let paths = git(
        dir,
        &["--show-toplevel", "--git-path", "HEAD", "--git-common-dir"],
    )?;
    let [top, head, common] = paths.lines().collect::<Vec<_>>()[..] else {
        return None;
    };
    let same = |a: &Path, b: &Path| a.canonicalize().ok() == b.canonicalize().ok();
    if !same(Path::new(top), dir) {
        return None;
    }
    // Relative paths from git are relative to `dir`, the script's cwd.
    let head = dir.join(head);
    let common = dir.join(common);
    watch(&head);
    // A branch checked out: its ref moves on a commit, loose or packed.
    if let Some(name) = std::fs::read_to_string(&head)
        .ok()
        .and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_string()))
    {
        watch(&common.join(name));
        watch(&common.join("packed-refs"));
    }
    let commit = git(dir, &["--short=12", "--verify", "HEAD"])?;
    let commit = commit.trim();
    is_commit(commit).then(|| commit.to_string())
}

/// Reruns the script when `path` changes. Only for files that exist: cargo
/// treats a missing one as changed, and would rerun on every build.
fn watch(path: &Path) {
    if path.is_file() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// `git rev-parse ARGS` in `dir`: its stdout, or `None` on any failure.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("rev-parse")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).ok())
        .flatten()
}
