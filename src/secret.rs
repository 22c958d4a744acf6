//! The API key: a type that never prints itself, and the masking of the
//! key (and of the proxy's password) in text that came from outside (the
//! server's bodies and headers, the user's files), in every form a server
//! may echo it back in.
//!
//! The connector's own words are never masked: they never hold the key.

use std::fmt;
use std::sync::OnceLock;

/// A key shorter than this could be a piece of ordinary text: masking it
/// would garble messages, and a real PersistIq key is far longer.
pub const MIN_KEY_CHARS: usize = 8;

/// What replaces the key.
const MASK: &str = "[redacted]";

/// The key to mask, as characters, set once the config has been read.
static KEY: OnceLock<Vec<char>> = OnceLock::new();

/// The proxy's password (`proxy_url`), masked as the key is.
static PROXY_PASSWORD: OnceLock<Vec<char>> = OnceLock::new();

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

/// From now on, `mask` hides `key` (without surrounding whitespace, as
/// the config takes it) in every form JSON and URLs can write it in.
/// Only the first call counts; a key too short to mask safely is ignored
/// (the config refuses it).
pub fn protect(key: &str) {
    let key = key.trim();
    if key.chars().count() >= MIN_KEY_CHARS {
        let _ = KEY.set(key.chars().collect());
    }
}

/// From now on, `mask` also hides the proxy's password, in the same forms.
/// A password shorter than `MIN_KEY_CHARS` is not masked (it would garble
/// messages); it is never printed by the connector either way.
pub fn protect_also(password: &str) {
    if password.chars().count() >= MIN_KEY_CHARS {
        let _ = PROXY_PASSWORD.set(password.chars().collect());
    }
}

/// The secrets set so far.
fn secrets() -> impl Iterator<Item = &'static [char]> {
    [KEY.get(), PROXY_PASSWORD.get()]
        .into_iter()
        .flatten()
        .map(Vec::as_slice)
}

/// `text` from outside with every form of the key replaced by `[redacted]`:
/// each character of the key may be written as itself, as a JSON escape
/// (`\uXXXX` in either case, `\/`, `\"`, `\\`), percent-encoded (hex
/// digits in any case) or, for a space, as `+`; any mix of these.
pub fn mask(text: &str) -> String {
    let secrets: Vec<&[char]> = secrets().collect();
    mask_each(text, &secrets)
}

/// `text` with every form of each of `secrets` replaced by `[redacted]`.
fn mask_each(text: &str, secrets: &[&[char]]) -> String {
    if secrets.is_empty() {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if text.is_char_boundary(i) {
            if let Some(end) = secrets.iter().find_map(|key| match_key(bytes, i, key)) {
                out.push_str(MASK);
                i = end;
                continue;
            }
        }
        let c = text[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(c);
        i += c.len_utf8().max(1);
    }
    out
}

/// Where a form of `key` that starts at `at` ends, if one does.
fn match_key(text: &[u8], at: usize, key: &[char]) -> Option<usize> {
    let Some((&c, rest)) = key.split_first() else {
        return Some(at);
    };
    char_forms(text, at, c)
        .into_iter()
        .flatten()
        .find_map(|end| match_key(text, end, rest))
}

/// The ends of each form of `c` found at `at`: itself, a JSON escape,
/// percent-encoded, or `+` for a space.
fn char_forms(text: &[u8], at: usize, c: char) -> [Option<usize>; 4] {
    let mut utf8 = [0u8; 4];
    let raw = c.encode_utf8(&mut utf8).as_bytes();
    let literal = text[at..].starts_with(raw).then_some(at + raw.len());
    let escape = json_escape(text, at, c);
    let mut end = at;
    let mut percent = Some(at);
    for &b in raw {
        if text.get(end) == Some(&b'%') && hex_at(text, end + 1, 2) == Some(u32::from(b)) {
            end += 3;
        } else {
            percent = None;
            break;
        }
    }
    if percent.is_some() {
        percent = Some(end);
    }
    let plus = (c == ' ' && text.get(at) == Some(&b'+')).then_some(at + 1);
    [literal, escape, percent, plus]
}

/// The end of a JSON escape of `c` at `at`, if there is one.
fn json_escape(text: &[u8], at: usize, c: char) -> Option<usize> {
    if text.get(at) != Some(&b'\\') {
        return None;
    }
    let short = match c {
        '"' => Some(b'"'),
        '\\' => Some(b'\\'),
        '/' => Some(b'/'),
        _ => None,
    };
    if short.is_some() && text.get(at + 1).copied() == short {
        return Some(at + 2);
    }
    let mut units = [0u16; 2];
    let mut end = at;
    for &unit in c.encode_utf16(&mut units).iter() {
        let escaped = text.get(end) == Some(&b'\\') && text.get(end + 1) == Some(&b'u');
        if !escaped || hex_at(text, end + 2, 4) != Some(u32::from(unit)) {
            return None;
        }
        end += 6;
    }
    Some(end)
}

/// The value of `digits` hex digits (either case) at `at`.
fn hex_at(text: &[u8], at: usize, digits: usize) -> Option<u32> {
    let hex = std::str::from_utf8(text.get(at..at + digits)?).ok()?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// How many bytes past a cut a quote must keep so that a key straddling
/// the cut is still whole when masked: its longest form.
pub fn longest_form() -> usize {
    secrets()
        .map(|key| {
            key.iter()
                .map(|c| (6 * c.len_utf16()).max(3 * c.len_utf8()))
                .sum()
        })
        .max()
        .unwrap_or(0)
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
            "url?key=K3y%2Fwith+%22quotes%22%2bplus",
            r#"{"k":"K3y\/with \u0022quotes\u0022\u002Bplus"}"#,
            r#"{"k":"\u004b3y\u002fwith\u0020\"quotes\"+plus"}"#,
        ];
        for text in echoed {
            let masked = mask(text);
            assert!(masked.contains("[redacted]"), "{text} -> {masked}");
            assert!(!masked.contains("K3y"), "{text} -> {masked}");
        }
        assert_eq!(mask("check (GET users)"), "check (GET users)");
    }

    #[test]
    fn the_proxy_password_is_masked_as_the_key_is() {
        let key: Vec<char> = "K3y-0123456".chars().collect();
        let password: Vec<char> = "pr0xy pass".chars().collect();
        assert_eq!(
            mask_each(
                "407 for pr0xy%20pass, pr0xy+pass and K3y-0123456",
                &[&key, &password]
            ),
            "407 for [redacted], [redacted] and [redacted]"
        );
    }
}
