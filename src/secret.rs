//! The API key: a type that never prints itself, and the masking of the
//! key in text that came from outside (the server's bodies and headers, the
//! user's files), in every form a server may echo it back in.
//!
//! The connector's own words are never masked: they never hold the key.

use std::fmt;
use std::sync::OnceLock;

/// A key shorter than this could be a piece of ordinary text: masking it
/// would garble messages, and a real PersistIq key is far longer.
pub const MIN_KEY_CHARS: usize = 8;

/// What replaces the key.
const MASK: &str = "[redacted]";

/// The forms of the key to mask, set once the config has been read.
static FORMS: OnceLock<Vec<String>> = OnceLock::new();

/// The forms of the proxy's password (`proxy_url`), masked as the key is.
static PROXY_FORMS: OnceLock<Vec<String>> = OnceLock::new();

/// The PersistIq API key. `Debug` and `Display` print `[redacted]`; only
/// `expose` gives the key, for the one header that carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: String) -> ApiKey {
        ApiKey(key)
    }

    /// The key itself, for the `x-api-key` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// From now on, `mask` hides `key`: as it is, JSON-escaped (a server that
/// quotes it in a JSON error) and percent-encoded (one that echoes a URL).
/// Only the first call counts; a key too short to mask safely is ignored
/// (the config refuses it).
pub fn protect(key: &str) {
    if let Some(forms) = forms(key) {
        let _ = FORMS.set(forms);
    }
}

/// From now on, `mask` also hides the proxy's password, in the same forms.
pub fn protect_also(password: &str) {
    if let Some(forms) = forms(password) {
        let _ = PROXY_FORMS.set(forms);
    }
}

fn forms(key: &str) -> Option<Vec<String>> {
    if key.chars().count() < MIN_KEY_CHARS {
        return None;
    }
    let json = serde_json::to_string(key).unwrap_or_default();
    let json = json.trim_matches('"').to_string();
    // Servers write the hex digits of `%2F` in either case; the key's own
    // letters keep theirs.
    let percent = |hex: fn(u8) -> String| -> String {
        key.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                    (b as char).to_string()
                } else {
                    hex(b)
                }
            })
            .collect()
    };
    let upper = percent(|b| format!("%{b:02X}"));
    let lower = percent(|b| format!("%{b:02x}"));
    let mut forms = vec![key.to_string(), json, upper, lower];
    // Longest first, so that a longer form is masked before a shorter one
    // inside it could break it up.
    forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    forms.dedup();
    Some(forms)
}

/// `text` from outside with every form of the key replaced by `[redacted]`.
pub fn mask(text: &str) -> String {
    let mut out = text.to_string();
    let key = FORMS.get().map(Vec::as_slice).unwrap_or_default();
    let proxy = PROXY_FORMS.get().map(Vec::as_slice).unwrap_or_default();
    for form in key.iter().chain(proxy) {
        if out.contains(form.as_str()) {
            out = out.replace(form.as_str(), MASK);
        }
    }
    out
}

/// How many bytes past a cut a quote must keep so that a key straddling
/// the cut is still whole when masked.
pub fn longest_form() -> usize {
    FORMS.get().and_then(|f| f.first()).map_or(0, String::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_type_never_prints_the_key() {
        let key = ApiKey::new("abc-secret-123".into());
        assert_eq!(format!("{key} {key:?}"), "[redacted] [redacted]");
        assert_eq!(key.expose(), "abc-secret-123");
    }

    #[test]
    fn every_echoed_form_is_masked_and_nothing_else() {
        protect("K3y/with \"quotes\"+plus");
        let echoed = [
            r#"key: K3y/with "quotes"+plus."#,
            r#"{"message":"key K3y/with \"quotes\"+plus"}"#,
            "url?key=K3y%2Fwith%20%22quotes%22%2Bplus",
            "url?key=K3y%2fwith%20%22quotes%22%2bplus",
        ];
        for text in echoed {
            let masked = mask(text);
            assert!(masked.contains("[redacted]"), "{text} -> {masked}");
            assert!(!masked.contains("K3y"), "{text} -> {masked}");
        }
        assert_eq!(mask("check (GET users)"), "check (GET users)");
    }
}
