//! The key as servers echo it back: trimmed, JSON-escaped in every way,
//! percent-encoded in any case. No form of it may reach the output.

use crate::support;

use serde_json::json;
use std::process::{Command, Stdio};
use support::mock::{Action, Fault, MockServer, Options};
use support::*;

/// Keys with `&`, `/`, `+`, `é` and whitespace around them, as pasted.
const KEYS: [&str; 3] = [
    "piq&key/with+plus-\u{e9}-4f8a2c91 ",
    " K3y+\u{e9}/&Zz09-trailing\n",
    "\u{e9}\u{e9}/++&&/piq-key-end\t ",
];

/// Every form a server may echo `key` in.
fn echoes(key: &str) -> Vec<String> {
    let escape = |upper: bool| -> String {
        key.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_string()
                } else if upper {
                    format!("\\u{:04X}", c as u32)
                } else {
                    format!("\\u{:04x}", c as u32)
                }
            })
            .collect()
    };
    let percent = |case: u8| -> String {
        let mut n = 0;
        key.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'-' {
                    (b as char).to_string()
                } else {
                    n += 1;
                    let hex = format!("{b:02x}");
                    match case {
                        0 => format!("%{hex}"),
                        1 => format!("%{}", hex.to_uppercase()),
                        _ if n % 2 == 0 => format!("%{}{}", &hex[..1], hex[1..].to_uppercase()),
                        _ => format!("%{}{}", hex[..1].to_uppercase(), &hex[1..]),
                    }
                }
            })
            .collect()
    };
    let json = serde_json::to_string(key).unwrap();
    vec![
        key.to_string(),
        json.trim_matches('"').to_string(),
        escape(false),
        escape(true),
        key.replace('/', "\\/"),
        key.replace('&', "\\u0026").replace('\u{e9}', "\\u00E9"),
        percent(0),
        percent(1),
        percent(2),
    ]
}

#[test]
fn no_echoed_form_of_a_pasted_key_reaches_the_output() {
    for pasted in KEYS {
        let key = pasted.trim();
        let forms = echoes(key);
        for (i, echo) in forms.iter().enumerate() {
            let bodies = [
                (
                    400,
                    json!({"status": "error", "error": {"reason": "bad_params",
                        "message": format!("unknown key {echo}")}})
                    .to_string(),
                ),
                (
                    400,
                    format!(
                        r#"{{"status":"error","error":{{"reason":"bad_params","message":"unknown key {echo}"}}}}"#
                    ),
                ),
                (503, format!("<html>key={echo}</html>")),
                (
                    401,
                    format!(
                        r#"{{"status":"error","error":{{"reason":"unauthorized","message":"Failed to find api key: {echo}."}}}}"#
                    ),
                ),
            ];
            for (status, body) in bodies {
                let mock = MockServer::start(Options {
                    api_key: key.to_string(),
                    ..Options::default()
                });
                mock.add_fault(Fault::new(
                    "tags",
                    Some(1),
                    usize::MAX,
                    Action::Status(status, vec![], body.clone()),
                ));
                let dir = TempDir::new();
                let mut cfg = config(&mock.base_url());
                cfg["api_key"] = json!(pasted);
                let run = read(&dir, &cfg, Some(&["tags"]));
                let case = format!("key {pasted:?}, form {i} {echo:?}, HTTP {status}");
                assert_eq!(mock.seen()[0].api_key.as_deref(), Some(key), "{case}");
                for text in [&run.stdout, &run.stderr] {
                    assert!(!text.contains(echo.as_str()), "{case}: {text}");
                    assert!(!text.contains(key), "{case}: {text}");
                }
                let error = run.the_error(
                    if status == 401 {
                        "config_error"
                    } else if status == 503 {
                        "transient_error"
                    } else {
                        "system_error"
                    },
                    &case,
                );
                if status == 401 {
                    assert!(!error.to_string().contains("Failed"), "{case}: {error}");
                } else {
                    assert!(error.to_string().contains("[redacted]"), "{case}: {error}");
                }
            }
        }
    }
}

#[test]
fn a_key_with_whitespace_inside_is_a_config_error() {
    let dir = TempDir::new();
    let cfg = json!({"api_key": "piq-key with-space-4f8a", "base_url": "http://127.0.0.1:9/v1/"});
    let run = read(&dir, &cfg, Some(&["tags"]));
    run.the_error_saying("config_error", "whitespace inside");
}

/// `bytes` in base64, with `alphabet`'s last two characters, padded.
fn base64(bytes: &[u8], last_two: &str) -> String {
    let alphabet: Vec<char> =
        format!("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789{last_two}")
            .chars()
            .collect();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Whether `text` holds any 8 characters in a row of `echo`.
fn holds_a_run_of(text: &str, echo: &str) -> Option<String> {
    let chars: Vec<char> = echo.chars().collect();
    chars
        .windows(8)
        .map(|w| w.iter().collect::<String>())
        .find(|run| text.contains(run.as_str()))
}

/// The key, echoed by a server that transformed it, reaches no output:
/// not the TRACE ERROR, not the LOG of the retry, not the line on stderr,
/// not the live line at a terminal.
#[test]
fn no_transformed_echo_of_the_key_reaches_any_output() {
    let key = "piq-cl\u{e9}/k+y&t\u{f6}k-4f8a2c91e7";
    let hex = "4f8a2c91e7b3d605aa19f0c2";
    let title: String = key
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-");
    let html: String = key
        .chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            c if c.is_ascii_alphanumeric() || c == '-' => c.to_string(),
            c => format!("&#{};", c as u32),
        })
        .collect();
    let twice: String = key
        .bytes()
        .map(|b| match b {
            b if b.is_ascii_alphanumeric() => (b as char).to_string(),
            b => format!("%25{b:02X}"),
        })
        .collect();
    let nfd = key
        .replace('\u{e9}', "e\u{301}")
        .replace('\u{f6}', "o\u{308}");
    let echoes = [
        ("upper case", key, key.to_uppercase()),
        ("a hex key in upper case", hex, hex.to_uppercase()),
        ("title case", key, title),
        ("base64", key, base64(key.as_bytes(), "+/")),
        ("base64url", key, base64(key.as_bytes(), "-_")),
        (
            "Basic auth",
            key,
            base64(format!("user:{key}").as_bytes(), "+/"),
        ),
        ("HTML entities", key, html),
        ("percent-encoded twice", key, twice),
        ("NFD", key, nfd),
        (
            "the first 20 characters",
            key,
            key.chars().take(20).collect(),
        ),
    ];
    for (what, key, echo) in echoes {
        let mock = MockServer::start(Options {
            api_key: key.to_string(),
            ..Options::default()
        });
        let body = json!({"status": "error", "error": {"reason": "unavailable",
            "message": format!("key {echo} is busy")}});
        mock.add_fault(Fault::new(
            "tags",
            Some(1),
            usize::MAX,
            Action::Status(503, vec![], body.to_string()),
        ));
        let dir = TempDir::new();
        let mut cfg = config(&mock.base_url());
        cfg["api_key"] = json!(key);
        let cfg = dir.json("c.json", &cfg);
        let output = std::process::Command::new(BIN)
            .args(["read", "--config", &cfg, "--streams", "tags"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let run = finish(output, &[key]);
        let trace = run.the_error("transient_error", what).to_string();
        let log = run.logs("WARN").join("\n");
        assert!(log.contains("retry 1 of 2"), "{what}: {log}");
        let stderr = &run.stderr;
        assert!(
            stderr.starts_with("source-persistiq: read failed"),
            "{what}: {stderr}"
        );
        for (output, text) in [("TRACE", &trace), ("LOG", &log), ("stderr", stderr)] {
            assert!(text.contains("[redacted]"), "{what}, {output}: {text}");
            if let Some(run) = holds_a_run_of(text, &echo) {
                panic!("{what}, {output}: {run:?} of {echo:?} in {text}");
            }
        }
        // The live line, and the stream's final line, under a terminal.
        let screen = std::process::Command::new("script")
            .args([
                "-qefc",
                &format!("{BIN} read --config {cfg} --streams tags >/dev/null"),
                "/dev/null",
            ])
            .output()
            .unwrap();
        let screen = String::from_utf8_lossy(&screen.stdout);
        assert!(
            screen.contains("waiting: "),
            "{what}: no live line: {screen:?}"
        );
        assert!(screen.contains("[redacted]"), "{what}: {screen:?}");
        if let Some(run) = holds_a_run_of(&screen, &echo) {
            panic!("{what}, the terminal: {run:?} of {echo:?} in {screen:?}");
        }
    }
}

/// The connector's own words stay whole whatever the key is, and the key
/// is masked in every form the server may echo it in.
#[test]
fn masking_touches_only_text_from_outside() {
    // Like the connector's words, but without whitespace: a key has none.
    let key = "leads,page\"2\"/x";
    let mock = MockServer::start(Options {
        api_key: key.into(),
        ..Options::default()
    });
    let escaped = serde_json::to_string(key).unwrap();
    let percent = "leads%2Cpage%222%22%2Fx";
    let body = format!(
        r#"{{"error":{{"reason":"oops","message":"key {} url ?k={percent}"}}}}"#,
        escaped.trim_matches('"')
    );
    mock.add_fault(Fault::new(
        "leads",
        Some(2),
        1,
        Action::Status(503, vec![], body),
    ));
    let dir = TempDir::new();
    let mut cfg = config(&mock.base_url());
    cfg["api_key"] = json!(key);
    let cfg = dir.json("c.json", &cfg);
    let output = Command::new(BIN)
        .args(["read", "--config", &cfg, "--streams", "leads"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = finish(output, &[key, percent, escaped.trim_matches('"')]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    let warn = &run.logs("WARN")[0];
    assert!(
        warn.starts_with("stream leads, page 2: HTTP 503: oops: key [redacted] url ?k=[redacted]"),
        "{warn}"
    );
}

#[test]
fn a_key_too_short_to_mask_is_refused_as_truncated() {
    let mock = MockServer::start(Options::default());
    let dir = TempDir::new();
    let mut cfg = config(&mock.base_url());
    cfg["api_key"] = json!("k");
    let cfg = dir.json("c.json", &cfg);
    let run = run(&["read", "--config", &cfg]);
    run.the_error_saying("config_error", "truncated");
    assert!(mock.seen().is_empty(), "a request was made");
}
