//! Packaging: the static musl binary (size, linkage, an empty root) and the
//! Airbyte image files (Dockerfile, metadata.yaml) checked against each other
//! and against Cargo.toml, without a container engine. The image itself is
//! built by .ci/build-image and tested by tests/python/test_image.py.
//!
//! The musl binary is not built by `cargo test`; build it first:
//!
//!   cargo build --release --target x86_64-unknown-linux-musl
//!
//! Where it is missing, or chroot is not permitted, the binary's tests skip
//! with a message on stderr. `SPQ_MUSL_BIN=path` (what .ci/run sets) makes
//! every such skip a failure, and so does `CI` for a chroot that is refused,
//! because CI runs as root.

use crate::support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::mock::{MockServer, Options};
use support::*;

/// The static musl target of the architecture these tests are built for:
/// the binary they check is that architecture's.
const MUSL_TARGET: &str = if cfg!(target_arch = "aarch64") {
    "aarch64-unknown-linux-musl"
} else {
    "x86_64-unknown-linux-musl"
};
/// The Rust target the Dockerfile's build stage must pick per TARGETARCH.
const IMAGE_TARGETS: [(&str, &str); 2] = [
    ("amd64", "x86_64-unknown-linux-musl"),
    ("arm64", "aarch64-unknown-linux-musl"),
];
const NAME: &str = env!("CARGO_PKG_NAME");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// The size budget of the static binary: 2 MiB.
const SIZE_LIMIT: u64 = 2 * 1024 * 1024;
/// Airbyte's own (Python, low-code) PersistIq connector.
const AIRBYTE_DEFINITION_ID: &str = "3052c77e-8b91-47e2-97a0-a29a22794b4b";
const AIRBYTE_REPOSITORY: &str = "airbyte/source-persistiq";

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(REPO).join(name))
        .unwrap_or_else(|e| panic!("read {name}: {e}"))
}

// ---------------------------------------------------------------------------
// metadata.yaml

/// metadata.yaml, parsed by a YAML 1.2 parser.
struct Metadata(yaml_rust2::Yaml);

impl Metadata {
    /// The node at a dotted `path`, which must exist.
    fn node(&self, path: &str) -> &yaml_rust2::Yaml {
        let node = path.split('.').fold(&self.0, |node, key| &node[key]);
        assert!(!node.is_badvalue(), "metadata.yaml has no {path}");
        node
    }

    /// The string at `path` (YAML may read an unquoted `1.0` or `0.1.0` as
    /// a number or a string; either way it is its text here).
    fn get(&self, path: &str) -> String {
        match self.node(path) {
            yaml_rust2::Yaml::String(s) => s.clone(),
            yaml_rust2::Yaml::Real(r) => r.clone(),
            yaml_rust2::Yaml::Integer(i) => i.to_string(),
            other => panic!("metadata.yaml {path} is not a scalar: {other:?}"),
        }
    }

    /// The list of strings at `path`.
    fn list(&self, path: &str) -> Vec<String> {
        let items = self.node(path).as_vec();
        let items = items.unwrap_or_else(|| panic!("metadata.yaml {path} is not a list"));
        items
            .iter()
            .map(|i| i.as_str().expect("a string item").to_string())
            .collect()
    }
}

fn metadata() -> Metadata {
    let mut docs = yaml_rust2::YamlLoader::load_from_str(&repo_file("metadata.yaml"))
        .expect("metadata.yaml is YAML");
    assert_eq!(docs.len(), 1, "one YAML document");
    Metadata(docs.remove(0))
}

fn is_uuid_v4(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && s.chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
        && groups[2].starts_with('4')
        && groups[3].starts_with(['8', '9', 'a', 'b'])
}

#[test]
fn metadata_yaml_is_airbyte_connector_metadata_for_this_crate() {
    let m = metadata();
    assert_eq!(m.get("metadataSpecVersion"), "1.0");
    assert_eq!(m.get("data.connectorType"), "source");
    assert_eq!(m.get("data.connectorSubtype"), "api");
    let id = m.get("data.definitionId");
    assert!(
        is_uuid_v4(&id),
        "definitionId {id} is not a lowercase UUID v4"
    );
    assert_ne!(
        id, AIRBYTE_DEFINITION_ID,
        "that id is Airbyte's connector's"
    );
    let repository = m.get("data.dockerRepository");
    assert_ne!(repository, AIRBYTE_REPOSITORY, "that image is Airbyte's");
    assert!(
        repository.ends_with(&format!("/{NAME}")) && !repository.contains([':', '@', ' ']),
        "dockerRepository {repository} should be an untagged image name ending in /{NAME}"
    );
    assert_eq!(m.get("data.dockerImageTag"), VERSION, "vs Cargo.toml");
    assert_eq!(m.get("data.license"), env!("CARGO_PKG_LICENSE"));
    assert!(["alpha", "beta", "generally_available", "custom"]
        .contains(&m.get("data.releaseStage").as_str()));
    assert!(["community", "certified", "archived"].contains(&m.get("data.supportLevel").as_str()));
    assert!(!m.get("data.name").is_empty());
    assert!(m.list("data.tags").iter().any(|t| t == "language:rust"));
    assert_eq!(m.list("data.allowedHosts.hosts"), ["api.persistiq.com"]);

    // What the binary says of itself must agree.
    let spec = run(&["spec"]);
    assert_eq!(spec.code, Some(0));
    let spec = &spec.messages[0]["spec"];
    assert_eq!(
        spec["documentationUrl"].as_str(),
        Some(m.get("data.documentationUrl").as_str())
    );
    let default_url = spec["connectionSpecification"]["properties"]["base_url"]["default"]
        .as_str()
        .expect("base_url default");
    let host = default_url
        .strip_prefix("https://")
        .and_then(|r| r.split('/').next())
        .expect("an https base_url default");
    assert!(
        m.list("data.allowedHosts.hosts").iter().any(|h| h == host),
        "allowedHosts lacks the default API host {host}"
    );
}

// ---------------------------------------------------------------------------
// Dockerfile

#[derive(Debug)]
struct Instruction {
    /// 0 for the first FROM's stage, 1 for the next, ...
    stage: usize,
    keyword: String,
    args: String,
}

/// Instructions with continuation lines joined and comments dropped.
fn parse_dockerfile(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut stage = None;
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && pending.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            None => pending.push_str(t),
        }
        let logical = std::mem::take(&mut pending);
        let (keyword, args) = logical
            .split_once(char::is_whitespace)
            .unwrap_or((&logical, ""));
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            stage = Some(stage.map_or(0, |s| s + 1));
        }
        out.push(Instruction {
            stage: stage.expect("an instruction before the first FROM"),
            keyword,
            args: args.trim().to_string(),
        });
    }
    assert!(pending.is_empty(), "the Dockerfile ends in a continuation");
    out
}

/// Splits on whitespace outside double quotes; quotes are removed.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    assert!(!quoted, "unbalanced quotes: {s}");
    if any {
        out.push(cur);
    }
    out
}

/// `KEY=value KEY2="a b"` (ENV, LABEL). The legacy `ENV KEY value` form is
/// refused: it reads differently and is deprecated.
fn key_values(args: &str) -> Vec<(String, String)> {
    words(args)
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => panic!("not KEY=value: {args}"),
        })
        .collect()
}

struct Dockerfile {
    instructions: Vec<Instruction>,
}

impl Dockerfile {
    fn load() -> Dockerfile {
        Dockerfile {
            instructions: parse_dockerfile(&repo_file("Dockerfile")),
        }
    }

    fn final_stage(&self) -> usize {
        self.instructions.last().expect("an empty Dockerfile").stage
    }

    fn in_stage<'a>(&'a self, stage: usize, keyword: &'a str) -> impl Iterator<Item = &'a str> {
        self.instructions
            .iter()
            .filter(move |i| i.stage == stage && i.keyword == keyword)
            .map(|i| i.args.as_str())
    }

    /// `image` and the stage's name (`FROM image AS name`).
    fn from(&self, stage: usize) -> (String, Option<String>) {
        let args = self.in_stage(stage, "FROM").next().expect("FROM");
        let w = words(args);
        match w.as_slice() {
            [image] => (image.clone(), None),
            [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
                (image.clone(), Some(name.clone()))
            }
            _ => panic!("FROM {args}"),
        }
    }

    fn stage_named(&self, name: &str) -> usize {
        (0..=self.final_stage())
            .find(|&s| self.from(s).1.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no stage named {name}"))
    }

    /// Every `KEY=value` of `keyword` in `stage`, the last one winning.
    fn pairs(&self, stage: usize, keyword: &str) -> BTreeMap<String, String> {
        self.in_stage(stage, keyword).flat_map(key_values).collect()
    }

    /// The shell commands of the stage's RUNs, split at `&&` and `;`.
    fn commands(&self, stage: usize) -> Vec<Vec<String>> {
        self.in_stage(stage, "RUN")
            .flat_map(|run| run.split("&&").flat_map(|c| c.split(';')))
            .map(words)
            .filter(|w| !w.is_empty())
            .collect()
    }
}

/// Whether one command has all of `want`'s words, in that order.
fn has_command(commands: &[Vec<String>], want: &[&str]) -> bool {
    commands.iter().any(|c| {
        let mut words = c.iter();
        want.iter().all(|w| words.any(|x| x == w))
    })
}

#[test]
fn dockerfile_parser_joins_continuations_and_splits_quoted_words() {
    let d = parse_dockerfile(
        "# c\nFROM a AS b\nRUN x \\\n  && y\n\nFROM c\nENV K=\"v w\" L=1\nENTRYPOINT [\"/p\"]\n",
    );
    let kinds: Vec<(usize, &str)> = d.iter().map(|i| (i.stage, i.keyword.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (0, "FROM"),
            (0, "RUN"),
            (1, "FROM"),
            (1, "ENV"),
            (1, "ENTRYPOINT")
        ]
    );
    assert_eq!(d[1].args, "x  && y");
    assert_eq!(
        key_values(&d[3].args),
        [("K".into(), "v w".into()), ("L".into(), "1".into())]
    );
    assert!(std::panic::catch_unwind(|| key_values("K v")).is_err());
}

#[test]
fn dockerfile_agrees_with_metadata_yaml_and_cargo_toml() {
    let d = Dockerfile::load();
    let m = metadata();
    let last = d.final_stage();
    assert!(
        last >= 1,
        "a multi-stage build: build, then a small runtime"
    );

    // The runtime image: the platform runs `sh -c` with `sleep` and `kill`.
    let (base, _) = d.from(last);
    assert!(
        base.starts_with("busybox:") || base.starts_with("alpine:"),
        "final image {base}: busybox or alpine, with a shell, pinned to a tag"
    );

    // ENTRYPOINT in exec form, an absolute path, and AIRBYTE_ENTRYPOINT its
    // space-joined form (CAT's test_image_environment_variables).
    let entry: Vec<String> = serde_json::from_str(
        d.in_stage(last, "ENTRYPOINT")
            .last()
            .expect("an ENTRYPOINT"),
    )
    .expect("ENTRYPOINT in exec form, a JSON array");
    assert!(entry[0].starts_with('/'), "{} is not absolute", entry[0]);
    assert!(entry[0].ends_with(&format!("/{NAME}")));
    let env = d.pairs(last, "ENV");
    assert_eq!(env.get("AIRBYTE_ENTRYPOINT"), Some(&entry.join(" ")));

    // Nothing runs while the final stage is built: no emulation for the
    // other platform, and no builder re-executed per RUN. Its user is
    // numeric (Kubernetes checks runAsNonRoot only against a number), and
    // /airbyte is that user's from a COPY --chown.
    assert_eq!(
        d.in_stage(last, "RUN").count(),
        0,
        "a RUN in the final stage"
    );
    assert_eq!(d.in_stage(last, "USER").last(), Some("1000:1000"));
    assert!(
        d.in_stage(last, "COPY").map(words).any(|w| w
            == [
                "--from=build",
                "--chown=1000:1000",
                "/src/target/image/airbyte",
                "/airbyte"
            ]),
        "/airbyte is copied from the build stage's target/image/airbyte, owned by 1000:1000"
    );

    // Labels, the user and /airbyte are checked on the built image
    // (tests/python/test_image.py); what no image build runs here is the
    // build stage, checked below.
    assert_eq!(m.get("data.dockerImageTag"), VERSION);

    // The binary comes from a stage that builds the musl target of the
    // platform asked for, and leaves it at one path for every platform.
    let copy = d
        .in_stage(last, "COPY")
        .map(words)
        .find(|w| w.last() == Some(&entry[0]))
        .expect("a COPY of the entrypoint binary");
    let from = copy[0]
        .strip_prefix("--from=")
        .expect("the binary is copied from the build stage");
    let build = d.stage_named(from);
    let workdir = d.in_stage(build, "WORKDIR").last().expect("a WORKDIR");
    let image_path = format!("{workdir}/target/image/{NAME}");
    assert_eq!(copy[1..], [image_path.clone(), entry[0].clone()]);
    assert!(
        d.in_stage(build, "ARG").any(|a| a.trim() == "TARGETARCH"),
        "the build stage declares ARG TARGETARCH"
    );
    let build_run = d.commands(build);
    for cmd in [
        &["apt-get", "install", "musl-tools"][..],
        &["rustup", "target", "add", "$target"],
        &[
            "cargo",
            "build",
            "--release",
            "--locked",
            "--target",
            "$target",
        ],
        &[
            "cp",
            "target/$target/release/source-persistiq",
            "target/image/source-persistiq",
        ],
        &["mkdir", "-p", "target/image/airbyte"],
    ] {
        assert!(has_command(&build_run, cmd), "build stage lacks {cmd:?}");
    }
    for (arch, target) in IMAGE_TARGETS {
        assert_eq!(
            build_stage_target(&d, build, arch),
            Ok(target.to_string()),
            "TARGETARCH={arch}"
        );
    }
    assert!(build_stage_target(&d, build, "riscv64").is_err());

    // The builder's Rust is at least Cargo.toml's rust-version.
    let (rust_image, _) = d.from(build);
    let tag = rust_image.strip_prefix("rust:").expect("a rust: image");
    let version = |s: &str| -> Vec<u32> {
        s.split('.')
            .map(|n| n.parse().expect("a version"))
            .collect()
    };
    let image_rust = version(tag.split('-').next().unwrap());
    assert!(
        image_rust >= version(env!("CARGO_PKG_RUST_VERSION")),
        "{rust_image} is older than rust-version"
    );

    // The build context it copies holds everything the build reads.
    let copied: Vec<String> = d
        .in_stage(build, "COPY")
        .map(words)
        .flat_map(|w| {
            assert!(!w[0].starts_with("--from"), "{w:?}");
            w[..w.len() - 1].to_vec()
        })
        .collect();
    for needed in ["Cargo.toml", "Cargo.lock", "build.rs", ".cargo", "src"] {
        assert!(copied.iter().any(|c| c == needed), "{needed} not copied");
    }
    // The context has no .git: the commit `--version` names comes in as a
    // build argument, which build.rs reads from the environment.
    assert!(
        d.in_stage(build, "ARG")
            .any(|a| a.trim().split('=').next() == Some("SPQ_COMMIT")),
        "the build stage declares ARG SPQ_COMMIT"
    );
    for path in &copied {
        assert!(
            Path::new(REPO).join(path).exists(),
            "COPY {path}: no such file"
        );
    }
    for included in included_files(&Path::new(REPO).join("src")) {
        assert!(
            copied.iter().any(|c| included.starts_with(c)),
            "src includes {} but the Dockerfile does not copy it",
            included.display()
        );
    }
}

/// The Rust target the build stage's first RUN picks for `targetarch`: its
/// `case ... esac`, run by sh as the build would run it, then `$target`.
fn build_stage_target(d: &Dockerfile, build: usize, targetarch: &str) -> Result<String, String> {
    let run = d.in_stage(build, "RUN").next().expect("a RUN");
    let end = run
        .find("esac")
        .expect("a `case \"$TARGETARCH\" in ... esac`")
        + "esac".len();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{} && printf %s \"$target\"", &run[..end]))
        .env("TARGETARCH", targetarch)
        .output()
        .expect("run sh");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Files that `include_str!`/`include_bytes!` under `dir` read, relative to
/// the repository.
fn included_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(included_files(&path));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for part in text.split("include_").skip(1) {
            let Some(rest) = part
                .strip_prefix("str!(\"")
                .or_else(|| part.strip_prefix("bytes!(\""))
            else {
                continue;
            };
            let file = &rest[..rest.find('"').unwrap()];
            let resolved = path.parent().unwrap().join(file).canonicalize().unwrap();
            let root = Path::new(REPO).canonicalize().unwrap();
            out.push(resolved.strip_prefix(&root).unwrap().to_path_buf());
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The static musl binary

fn required() -> bool {
    std::env::var_os("SPQ_MUSL_BIN").is_some_and(|v| !v.is_empty())
}

/// Skips the calling test with a message (on the real stderr, which the test
/// harness does not capture), or fails where skipping is not allowed.
fn skip(test: &str, reason: &str, allowed: bool) {
    assert!(allowed, "{test} cannot run: {reason}");
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// The release musl binary: `$SPQ_MUSL_BIN`, or the one next to this test's
/// own release build.
fn musl_binary(test: &str) -> Option<PathBuf> {
    let path = match std::env::var_os("SPQ_MUSL_BIN").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => {
            let bin = Path::new(BIN);
            let profile_dir = bin.parent().unwrap();
            if profile_dir.parent().unwrap().ends_with(MUSL_TARGET) {
                bin.to_path_buf()
            } else {
                let target_dir = profile_dir.parent().unwrap();
                target_dir.join(MUSL_TARGET).join("release").join(NAME)
            }
        }
    };
    if path.is_file() {
        return Some(path);
    }
    skip(
        test,
        &format!(
            "no musl binary at {}; build it with `cargo build --release --target {MUSL_TARGET}`",
            path.display()
        ),
        !required(),
    );
    None
}

/// What `file` says of `path` (CI installs it; see .ci/run).
fn file_says(path: &Path) -> String {
    let out = Command::new("file")
        .arg(path)
        .output()
        .expect("run `file` (apt-get install file)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `file` tells a dynamic build from a static one, so the check below could
/// fail: this test binary's own connector is dynamic on glibc and static on
/// musl (a build for a musl target, e.g. the suite built for aarch64).
#[test]
fn file_sees_the_dynamic_glibc_build() {
    let says = file_says(Path::new(BIN));
    if cfg!(target_env = "musl") {
        assert!(
            says.contains("statically linked") || says.contains("static-pie linked"),
            "{says}"
        );
    } else {
        assert!(says.contains("dynamically linked"), "{says}");
    }
}

#[test]
fn musl_binary_is_static_small_and_carries_its_tls_roots() {
    let test = "musl_binary_is_static_small_and_carries_its_tls_roots";
    let Some(path) = musl_binary(test) else {
        return;
    };
    let elf = std::fs::read(&path).unwrap();
    assert!(
        elf.len() as u64 <= SIZE_LIMIT,
        "{} is {} bytes, over {SIZE_LIMIT}",
        path.display(),
        elf.len()
    );
    let says = file_says(&path);
    // rustc's aarch64 musl target has no static-pie: a static binary at a
    // fixed address there.
    let linked = if cfg!(target_arch = "aarch64") {
        "statically linked"
    } else {
        "static-pie linked"
    };
    assert!(says.contains(linked), "{says}");
    let ldd = Command::new("ldd").arg(&path).output().expect("run ldd");
    let ldd =
        String::from_utf8_lossy(&ldd.stdout).into_owned() + &String::from_utf8_lossy(&ldd.stderr);
    assert!(
        ldd.contains("not a dynamic executable") || ldd.contains("statically linked"),
        "ldd: {ldd}"
    );
    // webpki-roots compiles the CA subjects in; no CA file on the host is read.
    let root = b"ISRG Root X1";
    assert!(
        elf.windows(root.len()).any(|w| w == root),
        "no embedded TLS roots"
    );
}

fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Runs the copied binary as `/source-persistiq` inside `root`, with an empty
/// environment, as a minimal container would.
fn chrooted(chroot: &Path, root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(chroot)
        .arg(root)
        .arg(format!("/{NAME}"))
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .expect("run chroot")
}

#[test]
fn musl_binary_runs_in_an_empty_root() {
    let test = "musl_binary_runs_in_an_empty_root";
    let Some(musl) = musl_binary(test) else {
        return;
    };
    // Skipping is fine on a developer's machine, not where the binary was
    // named explicitly or in CI, which runs as root.
    let allowed = !required() && std::env::var_os("CI").is_none();
    if euid() != Some(0) {
        skip(test, "chroot needs root", allowed);
        return;
    }
    let Some(chroot) = ["/usr/sbin/chroot", "/sbin/chroot", "/usr/bin/chroot"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
    else {
        skip(test, "no chroot command", allowed);
        return;
    };

    let root = TempDir::new();
    std::fs::copy(&musl, root.0.join(NAME)).unwrap();
    let mock = MockServer::start(Options::default());
    // An IP address: there is no /etc/resolv.conf or /etc/hosts in there.
    assert!(mock.base_url().starts_with("http://127.0.0.1:"));
    root.json("config.json", &config(&mock.base_url()));
    root.json(
        "catalog.json",
        &catalog(&["users", "leads", "campaigns"], "full_refresh"),
    );
    let mut entries: Vec<String> = std::fs::read_dir(&root.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["catalog.json", "config.json", NAME]);

    let spec = chrooted(chroot, &root.0, &["spec"]);
    let stderr = String::from_utf8_lossy(&spec.stderr);
    if !spec.status.success() && stderr.contains("Operation not permitted") {
        skip(test, &format!("chroot refused: {}", stderr.trim()), allowed);
        return;
    }
    let spec = finish(spec, &[]);
    assert_eq!(
        spec.code,
        Some(0),
        "spec in the empty root: {}",
        spec.stderr
    );
    // The same output as the host build's: the musl binary is this source.
    assert_eq!(
        spec.stdout,
        run(&["spec"]).stdout,
        "{} is stale: rebuild it with `cargo build --release --target {MUSL_TARGET}`",
        musl.display()
    );

    let read = chrooted(
        chroot,
        &root.0,
        &[
            "read",
            "--config",
            "/config.json",
            "--catalog",
            "/catalog.json",
        ],
    );
    let read = finish(read, &[support::mock::API_KEY]);
    assert_eq!(
        read.code,
        Some(0),
        "read in the empty root: {}",
        read.stderr
    );
    assert!(read.stderr.is_empty(), "{}", read.stderr);
    for stream in ["users", "leads", "campaigns"] {
        let expected = mock.records(stream);
        assert!(!expected.is_empty());
        assert_eq!(read.record_data(stream), expected, "{stream}");
        assert_eq!(
            read.statuses(stream).last().map(String::as_str),
            Some("COMPLETE")
        );
    }
    // Each stream ends with its complete state, as the host build's does.
    for stream in ["users", "leads", "campaigns"] {
        assert_eq!(
            final_state(&read, stream),
            serde_json::json!({"__ab_full_refresh_sync_complete": true})
        );
    }
}

// ---------------------------------------------------------------------------
// The version: Cargo.toml, metadata.yaml, the image's labels, `--version`

/// Whether `v` is a semver release version, MAJOR.MINOR.PATCH, without
/// leading zeros (Airbyte's QA checks ask for semver).
fn is_semver(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        })
}

/// The commit `--version` should name: git's short commit of this checkout,
/// or "unknown" where git cannot tell (no git, not a checkout), as build.rs
/// decides.
fn expected_commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(REPO)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let top = git(&["rev-parse", "--show-toplevel"]);
    let is_top = top
        .is_some_and(|t| Path::new(&t).canonicalize().ok() == Path::new(REPO).canonicalize().ok());
    match git(&["rev-parse", "--short=12", "--verify", "HEAD"]) {
        Some(commit) if is_top => commit,
        _ => "unknown".to_string(),
    }
}

/// The `--version` line of a binary built for `target` from this checkout.
fn expected_version_line(target: &str) -> String {
    format!(
        "{NAME} {VERSION} (commit {}, {target})\n",
        expected_commit()
    )
}

/// The Rust target these tests (and the connector they run) are built for.
fn own_target() -> String {
    let env = if cfg!(target_env = "musl") {
        "musl"
    } else {
        "gnu"
    };
    format!("{}-unknown-linux-{env}", std::env::consts::ARCH)
}

#[test]
fn version_is_semver_and_one_in_cargo_toml_metadata_the_image_and_version() {
    assert!(is_semver(VERSION), "Cargo.toml's version {VERSION}");
    let m = metadata();
    assert_eq!(m.get("data.dockerImageTag"), VERSION, "vs Cargo.toml");
    let d = Dockerfile::load();
    let labels = d.pairs(d.final_stage(), "LABEL");
    assert_eq!(
        labels.get("io.airbyte.version").map(String::as_str),
        Some(VERSION),
        "the image's io.airbyte.version label"
    );
    assert_eq!(
        labels.get("io.airbyte.name"),
        Some(&m.get("data.dockerRepository")),
        "the image's io.airbyte.name label"
    );
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        expected_version_line(&own_target())
    );
}

#[test]
fn musl_binary_names_its_version_commit_and_target() {
    let test = "musl_binary_names_its_version_commit_and_target";
    let Some(musl) = musl_binary(test) else {
        return;
    };
    let out = Command::new(&musl).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        expected_version_line(MUSL_TARGET),
        "{} is not this checkout's build: rebuild it with `cargo build --release --target \
         {MUSL_TARGET}`",
        musl.display()
    );
}

/// build.rs compiled on its own, as cargo would, and run with `env`; its
/// `cargo:` lines.
fn build_script_says(exe: &Path, dir: &Path, env: &[(&str, &str)]) -> Vec<String> {
    let mut cmd = Command::new(exe);
    cmd.current_dir(dir)
        .env("CARGO_MANIFEST_DIR", dir)
        .env("TARGET", "riscv64gc-unknown-linux-musl")
        .env_remove("SPQ_COMMIT")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the build script");
    assert!(out.status.success(), "{:?}", out);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn build_script_names_the_commit_from_git_or_its_environment_else_unknown() {
    let tmp = TempDir::new();
    let exe = tmp.0.join("build-script");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let built = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "-O",
            "--crate-name",
            "build_script_build",
        ])
        .arg(Path::new(REPO).join("build.rs"))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("run rustc");
    assert!(built.status.success(), "{built:?}");
    let commit = |lines: &[String]| -> String {
        lines
            .iter()
            .find_map(|l| l.strip_prefix("cargo:rustc-env=SPQ_COMMIT="))
            .expect("SPQ_COMMIT set")
            .to_string()
    };

    // Outside any checkout: "unknown", the target as cargo gave it, and no
    // file to watch but the script (a missing one would rerun every build).
    let empty = tmp.0.join("no-git");
    std::fs::create_dir(&empty).unwrap();
    let said = build_script_says(&exe, &empty, &[]);
    assert_eq!(commit(&said), "unknown");
    assert!(said.contains(&"cargo:rustc-env=SPQ_TARGET=riscv64gc-unknown-linux-musl".into()));
    let watched: Vec<&String> = said
        .iter()
        .filter(|l| l.starts_with("cargo:rerun-if-changed="))
        .collect();
    assert_eq!(watched, ["cargo:rerun-if-changed=build.rs"]);
    assert!(said.contains(&"cargo:rerun-if-env-changed=SPQ_COMMIT".into()));

    // A commit given in the environment wins; anything else there does not.
    let given = [("SPQ_COMMIT", "0123456789ab")];
    assert_eq!(
        commit(&build_script_says(&exe, &empty, &given)),
        "0123456789ab"
    );
    let bogus = [("SPQ_COMMIT", "$(reboot)")];
    assert_eq!(commit(&build_script_says(&exe, &empty, &bogus)), "unknown");

    // A folder inside a checkout is not a checkout of its own: a crate
    // unpacked in someone else's repository must not take its commit.
    let inner = Path::new(REPO).join("tests");
    assert_eq!(commit(&build_script_says(&exe, &inner, &[])), "unknown");

    // This checkout: git's commit, and HEAD among the files watched, all of
    // which exist.
    let said = build_script_says(&exe, Path::new(REPO), &[]);
    assert_eq!(commit(&said), expected_commit());
    if expected_commit() != "unknown" {
        let watched: Vec<&str> = said
            .iter()
            .filter_map(|l| l.strip_prefix("cargo:rerun-if-changed="))
            .collect();
        assert!(watched.iter().any(|w| w.ends_with("HEAD")), "{watched:?}");
        for w in watched {
            assert!(
                Path::new(REPO).join(w).is_file(),
                "watches {w}, no such file"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// CHANGELOG.md

/// One `## [VERSION] - DATE` section of CHANGELOG.md: the version, the date
/// and its `### Kind` headings with their bullet counts.
#[derive(Debug)]
struct Release {
    version: String,
    date: String,
    kinds: Vec<(String, usize)>,
}

/// CHANGELOG.md's released sections, in file order; `## [Unreleased]` is
/// allowed first and skipped.
fn changelog_releases(text: &str) -> Vec<Release> {
    let mut out: Vec<Release> = Vec::new();
    let mut unreleased = false;
    for line in text.lines() {
        if let Some(head) = line.strip_prefix("## ") {
            if head == "[Unreleased]" {
                assert!(out.is_empty(), "[Unreleased] comes first");
                unreleased = true;
                continue;
            }
            unreleased = false;
            let (version, date) = head
                .strip_prefix('[')
                .and_then(|h| h.split_once("] - "))
                .unwrap_or_else(|| panic!("not `## [VERSION] - YYYY-MM-DD`: {line}"));
            out.push(Release {
                version: version.to_string(),
                date: date.to_string(),
                kinds: Vec::new(),
            });
        } else if let Some(kind) = line.strip_prefix("### ") {
            if unreleased {
                continue;
            }
            let release = out.last_mut().expect("a ### heading before the first ##");
            release.kinds.push((kind.to_string(), 0));
        } else if line.starts_with("- ") && !unreleased {
            if let Some(kind) = out.last_mut().and_then(|r| r.kinds.last_mut()) {
                kind.1 += 1;
            }
        }
    }
    out
}

fn semver_key(v: &str) -> Vec<u64> {
    v.split('.').map(|n| n.parse().unwrap()).collect()
}

#[test]
fn changelog_has_a_section_for_this_version_newest_first() {
    let text = repo_file("CHANGELOG.md");
    assert!(text.starts_with("# Changelog\n"), "a `# Changelog` title");
    let releases = changelog_releases(&text);
    assert_eq!(
        releases.first().map(|r| r.version.as_str()),
        Some(VERSION),
        "CHANGELOG.md's newest section is not Cargo.toml's version {VERSION}"
    );
    assert_eq!(releases.last().map(|r| r.version.as_str()), Some("0.1.0"));
    for pair in releases.windows(2) {
        let (newer, older) = (&pair[0], &pair[1]);
        assert!(
            semver_key(&newer.version) > semver_key(&older.version),
            "{} is listed before {}",
            newer.version,
            older.version
        );
        assert!(newer.date >= older.date, "{newer:?} dated before {older:?}");
    }
    let kinds = [
        "Added",
        "Changed",
        "Deprecated",
        "Removed",
        "Fixed",
        "Security",
    ];
    for r in &releases {
        assert!(is_semver(&r.version), "{r:?}");
        let d = r.date.as_bytes();
        assert!(
            d.len() == 10
                && d[4] == b'-'
                && d[7] == b'-'
                && d.iter()
                    .enumerate()
                    .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit()),
            "{}: date {} is not YYYY-MM-DD",
            r.version,
            r.date
        );
        assert!(!r.kinds.is_empty(), "{} says nothing", r.version);
        for (kind, bullets) in &r.kinds {
            assert!(kinds.contains(&kind.as_str()), "{}: ### {kind}", r.version);
            assert!(*bullets > 0, "{}: ### {kind} has no entry", r.version);
        }
    }
}

#[test]
fn changelog_parser_reads_sections_kinds_and_entries() {
    let releases = changelog_releases(
        "# Changelog\n\n## [Unreleased]\n### Added\n- soon\n\n## [0.2.0] - 2026-12-07\n\
         ### Added\n- a\n- b\n### Fixed\n- c\n\n## [0.1.0] - 2026-11-01\n### Added\n- d\n",
    );
    // "version date kind:entries ...", one line per release.
    let seen: Vec<String> = releases
        .iter()
        .map(|r| {
            let kinds = r.kinds.iter().map(|(k, n)| format!(" {k}:{n}"));
            format!("{} {}{}", r.version, r.date, kinds.collect::<String>())
        })
        .collect();
    assert_eq!(
        seen,
        [
            "0.2.0 2026-12-07 Added:2 Fixed:1",
            "0.1.0 2026-11-01 Added:1"
        ]
    );
    assert!(std::panic::catch_unwind(|| changelog_releases("## 0.1.0\n")).is_err());
    assert!(is_semver("0.2.0") && is_semver("10.0.1"));
    assert!(!is_semver("0.2") && !is_semver("01.2.3") && !is_semver("1.2.3-rc1"));
}

// ---------------------------------------------------------------------------
// metadata.yaml: maxSecondsBetweenMessages

/// A `Duration` constant of a source file, in seconds: `pub const NAME:
/// Duration = Duration::from_secs(N);` (or `from_millis`), as written.
fn duration_const(file: &str, name: &str) -> f64 {
    let text = repo_file(file);
    let decl = format!("const {name}: Duration = Duration::from_");
    let rest = &text[text
        .find(&decl)
        .unwrap_or_else(|| panic!("{file} has no `{decl}...`"))
        + decl.len()..];
    let (unit, rest) = rest.split_once('(').unwrap();
    let number: f64 = rest[..rest.find(')').unwrap()]
        .replace('_', "")
        .parse()
        .unwrap();
    match unit {
        "secs" => number,
        "millis" => number / 1000.0,
        _ => panic!("{file} {name}: Duration::from_{unit}"),
    }
}

/// The longest the connector can go without writing a message, in seconds,
/// for the longest sleep and request timeout it accepts. Every sleep (a
/// retry, a rate window) is announced by a LOG just before it; the request
/// after it can take up to timeout_seconds (connecting included) before its
/// records or the next LOG are written. One sleep, then one request.
fn longest_silence(longest_sleep_item: f64, timeout: f64) -> f64 {
    let server_wait = duration_const("src/http/rate.rs", "MAX_SERVER_WAIT")
        + duration_const("src/http/rate.rs", "RESET_MARGIN");
    longest_sleep_item.max(server_wait) + timeout
}

#[test]
fn metadata_max_seconds_between_messages_outlasts_the_longest_silence() {
    let spec = run(&["spec"]);
    let props = &spec.messages[0]["spec"]["connectionSpecification"]["properties"];
    let number = |v: &serde_json::Value| v.as_f64().unwrap_or_else(|| panic!("{v}"));
    let sleep_max = number(&props["retry_schedule_seconds"]["items"]["maximum"]);
    let timeout_max = number(&props["timeout_seconds"]["maximum"]);
    let sleep_default = props["retry_schedule_seconds"]["default"]
        .as_array()
        .unwrap()
        .iter()
        .map(number)
        .fold(0.0, f64::max);
    let timeout_default = number(&props["timeout_seconds"]["default"]);

    let m = metadata();
    let max_seconds = match m.node("data.maxSecondsBetweenMessages") {
        yaml_rust2::Yaml::Integer(i) => *i as f64,
        other => panic!("maxSecondsBetweenMessages is not an integer: {other:?}"),
    };
    // The defaults: a 120 s rate window (plus its margin), then 60 s.
    let by_default = longest_silence(sleep_default, timeout_default);
    assert_eq!(by_default, 180.25);
    // The longest a config may ask for: the platform must not take a sync
    // that waits as configured for a stuck one.
    let at_most = longest_silence(sleep_max, timeout_max);
    assert!(
        max_seconds > at_most,
        "maxSecondsBetweenMessages {max_seconds} is not above the longest silence {at_most} s"
    );
    // Nor so far above it that a stuck source would go unnoticed for long
    // after: within 10%, so that a change of the limits changes it too.
    assert!(
        max_seconds <= at_most * 1.1,
        "maxSecondsBetweenMessages {max_seconds} is far above the longest silence {at_most} s"
    );
}

// ---------------------------------------------------------------------------
// The release's SBOMs (dist/, written by .ci/release)

/// Cargo.lock's registry packages: (name, version) to checksum.
fn lock_checksums() -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for block in repo_file("Cargo.lock").split("[[package]]").skip(1) {
        let field = |key: &str| {
            block.lines().find_map(|l| {
                l.strip_prefix(&format!("{key} = \""))
                    .and_then(|v| v.strip_suffix('"'))
                    .map(str::to_string)
            })
        };
        if let (Some(name), Some(version), Some(sum)) =
            (field("name"), field("version"), field("checksum"))
        {
            out.insert((name, version), sum);
        }
    }
    out
}

/// Every package compiled into the binary for `target`, this one aside, as
/// cargo's own resolver says: normal dependencies, features as a build of
/// the binary has them (no dev-dependency's), no build-only crates.
fn binary_crates(target: &str) -> Vec<(String, String)> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(REPO)
        .args(["tree", "--locked", "--edges", "normal", "--prefix", "none"])
        .args(["--format", "{p}", "--target", target])
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "{out:?}");
    let mut crates: Vec<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let version = words.next()?.strip_prefix('v')?;
            (name != NAME).then(|| (name.to_string(), version.to_string()))
        })
        .collect();
    crates.sort();
    crates.dedup();
    crates
}

#[test]
fn sbom_lists_every_crate_of_the_binary_with_its_lock_version_licence_and_checksum() {
    let test = "sbom_lists_every_crate_of_the_binary_with_its_lock_version_licence_and_checksum";
    let dist = Path::new(REPO).join("dist");
    let file = format!("{NAME}-{MUSL_TARGET}.cdx.json");
    let path = dist.join(&file);
    if !path.is_file() {
        skip(
            test,
            &format!("no {}; .ci/release writes it", path.display()),
            !required(),
        );
        return;
    }
    let sbom: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("JSON");
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["specVersion"], "1.5");
    let described = &sbom["metadata"]["component"];
    assert_eq!(described["name"], NAME);
    assert_eq!(described["version"], VERSION);
    assert_eq!(described["type"], "application");
    let triple = sbom["metadata"]["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "cdx:rustc:sbom:target:triple");
    assert_eq!(triple.map(|p| &p["value"]), Some(&MUSL_TARGET.into()));

    let lock = lock_checksums();
    let mut listed: Vec<(String, String)> = Vec::new();
    for c in sbom["components"].as_array().expect("components") {
        let name = c["name"].as_str().expect("a name").to_string();
        let version = c["version"].as_str().expect("a version").to_string();
        let key = (name.clone(), version.clone());
        let sum = lock
            .get(&key)
            .unwrap_or_else(|| panic!("{name} {version} is not in Cargo.lock"));
        assert_eq!(
            c["hashes"],
            serde_json::json!([{"alg": "SHA-256", "content": sum}]),
            "{name} {version}: the checksum is not Cargo.lock's"
        );
        let licence = c["licenses"][0]["expression"].as_str().unwrap_or_default();
        assert!(!licence.is_empty(), "{name} {version} has no licence");
        assert_eq!(
            c["purl"],
            format!("pkg:cargo/{name}@{version}").as_str(),
            "{name}"
        );
        listed.push(key);
    }
    listed.sort();
    // Exactly the crates compiled into it: none left out, none added (a
    // dev-dependency, another platform's crate, a build script's tool).
    assert_eq!(listed, binary_crates(MUSL_TARGET));
    for dev_only in ["yaml-rust2", "rcgen", "cc"] {
        assert!(
            listed.iter().all(|(n, _)| n != dev_only),
            "{dev_only} is listed"
        );
    }

    // SHA256SUMS covers it, and holds.
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).expect("dist/SHA256SUMS");
    assert!(
        sums.lines().any(|l| l.ends_with(&format!("  {file}"))),
        "SHA256SUMS lacks {file}:\n{sums}"
    );
    let check = Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&dist)
        .output()
        .expect("run sha256sum");
    assert!(check.status.success(), "{check:?}");
}

#[test]
fn cargo_lock_parser_reads_registry_packages() {
    let lock = lock_checksums();
    let serde_json_version = lock
        .keys()
        .find(|(n, _)| n == "serde_json")
        .map(|(_, v)| v.clone())
        .expect("serde_json in Cargo.lock");
    let sum = &lock[&("serde_json".to_string(), serde_json_version)];
    assert!(sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit()));
    // This package is no registry package: it has no checksum.
    assert!(lock.keys().all(|(n, _)| n != NAME));
}

// ---------------------------------------------------------------------------
// icon.svg

/// The value of `attr="..."` in the SVG's root element.
fn svg_root_attr(svg: &str, attr: &str) -> Option<String> {
    let root = &svg[svg.find("<svg")?..];
    let root = &root[..root.find('>')?];
    let start = root.find(&format!(" {attr}=\""))? + attr.len() + 3;
    Some(root[start..start + root[start..].find('"')?].to_string())
}

#[test]
fn icon_svg_is_square_small_and_self_contained() {
    // Airbyte's QA checks and registry read icon.svg at the connector's top.
    let svg = repo_file("icon.svg");
    assert!(svg.len() <= 4096, "icon.svg is {} bytes", svg.len());
    assert!(svg.trim_start().starts_with("<svg"), "an SVG document");
    let view_box = svg_root_attr(&svg, "viewBox").expect("a viewBox");
    let numbers: Vec<f64> = view_box
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        numbers.len() == 4 && numbers[2] == numbers[3] && numbers[2] > 0.0,
        "viewBox {view_box} is not square"
    );
    assert_eq!(svg_root_attr(&svg, "width"), svg_root_attr(&svg, "height"));
    // Drawn by itself: no script, no font it may lack, nothing fetched.
    for banned in ["<script", "<text", "<image", "href=", "@import", "url(http"] {
        assert!(!svg.contains(banned), "icon.svg has {banned}");
    }
}
