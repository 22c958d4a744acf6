//! The key as servers echo it back: trimmed, JSON-escaped in every way,
//! percent-encoded in any case. No form of it may reach the output.

use crate::support;

use serde_json::json;
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
