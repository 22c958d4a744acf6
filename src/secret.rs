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
static KEY: OnceLock<Vec<Vec<char>>> = OnceLock::new();

/// The proxy's password (`proxy_url`), masked as the key is.
static PROXY_PASSWORD: OnceLock<Vec<Vec<char>>> = OnceLock::new();

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
/// the config takes it) in every form a server may echo it in.
/// Only the first call counts; a key too short to mask safely is ignored
/// (the config refuses it).
pub fn protect(key: &str) {
    let key = key.trim();
    if key.chars().count() >= MIN_KEY_CHARS {
        let _ = KEY.set(forms_of(key));
    }
}

/// From now on, `mask` also hides the proxy's password, in the same forms.
/// A password shorter than `MIN_KEY_CHARS` is not masked (it would garble
/// messages); it is never printed by the connector either way.
pub fn protect_also(password: &str) {
    if password.chars().count() >= MIN_KEY_CHARS {
        let _ = PROXY_PASSWORD.set(forms_of(password));
    }
}

/// Each secret as `mask` looks for it: the key itself, then its base64
/// forms (standard and URL alphabets, at each of the three alignments a
/// key can have inside an encoded string), each folded (`fold`).
fn secrets() -> impl Iterator<Item = &'static [char]> {
    [KEY.get(), PROXY_PASSWORD.get()]
        .into_iter()
        .flatten()
        .flat_map(|forms| forms.iter().map(Vec::as_slice))
}

/// The folded forms of `secret` that `mask` looks for.
fn forms_of(secret: &str) -> Vec<Vec<char>> {
    let mut forms = vec![secret.chars().filter_map(fold).collect::<Vec<char>>()];
    for alphabet in [BASE64, BASE64URL] {
        for offset in 0..3 {
            let form = base64_inside(secret.as_bytes(), offset, alphabet);
            if form.len() >= RUN_CHARS {
                forms.push(form.chars().filter_map(fold).collect());
            }
        }
    }
    // A key of combining marks alone has no characters to look for.
    forms.retain(|form| !form.is_empty());
    forms
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The base64 characters that depend on `bytes` alone when they follow
/// `offset` other bytes in the encoded data: what a server that encodes
/// the key inside something longer (`user:key`) writes whatever the rest.
fn base64_inside(bytes: &[u8], offset: usize, alphabet: &[u8; 64]) -> String {
    let bits = |i: usize| -> u8 {
        // Bit `i` of the data: `offset` zero bytes, then `bytes`.
        let byte = if i / 8 < offset {
            0
        } else {
            bytes[i / 8 - offset]
        };
        (byte >> (7 - i % 8)) & 1
    };
    let (first, end) = ((8 * offset).div_ceil(6), 8 * (offset + bytes.len()) / 6);
    (first..end)
        .map(|t| {
            let value = (0..6).fold(0, |v, b| (v << 1) | bits(6 * t + b));
            char::from(alphabet[usize::from(value)])
        })
        .collect()
}

/// How many characters of a secret in a row are masked wherever they
/// appear: a server may cut the key (the first 20 characters) or quote a
/// piece of it, and no run this long of a real key is ordinary text.
pub const RUN_CHARS: usize = MIN_KEY_CHARS;

/// Base letters of U+00C0..=U+017F, `.` where none: `é` and `É` fold to
/// `e`, as the `e` of an NFD-normalised `e\u{301}` does.
const LATIN: &[u8; 192] = b"aaaaaa.ceeeeiiii.nooooo..uuuuy..aaaaaa.ceeeeiiii.nooooo..uuuuy.y\
aaaaaaccccccccdd..eeeeeeeeeegggggggghh..iiiiiiiii...jjkk.llllll....nnnnnn...oooooo..rrrrrrssssssss\
tttt..uuuuuuuuuuuuwwyyyzzzzzz.";

/// `c` as masking compares it: case-insensitive (ASCII and Latin letters),
/// accents dropped; `None` for a combining mark, which an NFD-normalised
/// echo adds and masking skips.
fn fold(c: char) -> Option<char> {
    match u32::from(c) {
        0x300..=0x36f => None,
        0xc0..=0x17f => {
            let base = LATIN[c as usize - 0xc0];
            Some(match (base, c) {
                (b'.', '\u{c0}'..='\u{de}') if c != '\u{d7}' => {
                    char::from_u32(u32::from(c) + 0x20).unwrap_or(c)
                }
                (b'.', _) => c,
                _ => char::from(base),
            })
        }
        _ => Some(c.to_ascii_lowercase()),
    }
}

/// `text` from outside with every form of the key replaced by `[redacted]`:
/// in any case, accented or NFD-normalised, each character written as
/// itself, as a JSON escape (`\uXXXX` in either case, `\/`, `\"`, `\\`),
/// percent-encoded once or more (hex digits in any case), as an HTML
/// entity, or for a space as `+`, any mix of these; the key's base64 and
/// base64url forms likewise; and any run of `RUN_CHARS` characters of any
/// of these.
pub fn mask(text: &str) -> String {
    let secrets: Vec<&[char]> = secrets().collect();
    mask_each(text, &secrets)
}

/// `text` with every form of each of `secrets` (folded) replaced by
/// `[redacted]`.
fn mask_each(text: &str, secrets: &[&[char]]) -> String {
    if secrets.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    // Reused, so that most positions (no secret starts there) cost no allocation.
    let (mut forms, mut first) = (Vec::new(), Vec::new());
    while i < text.len() {
        forms.clear();
        each_form(text, i, &mut forms);
        first.clear();
        first.extend(forms.iter().filter_map(|&(c, _)| fold(c)));
        let end = secrets
            .iter()
            .filter_map(|secret| longest_run(text, i, secret, &first, &mut forms))
            .max();
        if let Some(end) = end {
            out.push_str(MASK);
            i = end;
            continue;
        }
        let c = text[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// The end of the longest run of at least `RUN_CHARS` characters of
/// `secret` (or all of a shorter one) written at `at`, if any; `first`
/// holds the characters the forms at `at` stand for, folded.
fn longest_run(
    text: &str,
    at: usize,
    secret: &[char],
    first: &[char],
    forms: &mut Vec<(char, usize)>,
) -> Option<usize> {
    let need = RUN_CHARS.min(secret.len());
    let mut best: Option<(usize, usize)> = None;
    for start in 0..=secret.len().saturating_sub(need) {
        if !first.contains(&secret[start]) {
            continue;
        }
        // Every position a form of secret[start..start + n] can end at.
        let mut ends = vec![at];
        let mut marks = Vec::new();
        let mut n = 0;
        while start + n < secret.len() {
            let mut next = Vec::new();
            for &p in &ends {
                forms.clear();
                each_form(text, p, forms);
                for &(c, end) in forms.iter() {
                    let end = skip_marks(text, end, &mut marks);
                    if fold(c) == Some(secret[start + n]) && !next.contains(&end) {
                        next.push(end);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            ends = next;
            n += 1;
        }
        let end = ends.iter().copied().max().unwrap_or(at);
        if n >= need && n > 0 && best.is_none_or(|(m, e)| (n, end) > (m, e)) {
            best = Some((n, end));
        }
    }
    best.map(|(_, end)| end)
}

/// `at` past any combining marks (in any form) written there.
fn skip_marks(text: &str, mut at: usize, forms: &mut Vec<(char, usize)>) -> usize {
    loop {
        forms.clear();
        each_form(text, at, forms);
        match forms.iter().find(|&&(c, _)| fold(c).is_none()) {
            Some(&(_, end)) => at = end,
            None => return at,
        }
    }
}

/// Every character that some form written at `at` stands for, with where
/// that form ends.
fn each_form(text: &str, at: usize, found: &mut Vec<(char, usize)>) {
    let bytes = text.as_bytes();
    let Some(c) = text.get(at..).and_then(|rest| rest.chars().next()) else {
        return;
    };
    found.push((c, at + c.len_utf8()));
    match c {
        '+' => found.push((' ', at + 1)),
        '\\' => found.extend(json_escape(bytes, at)),
        '%' => percent(bytes, at, found),
        '&' => found.extend(html_entity(bytes, at)),
        _ => {}
    }
}

/// The character of a JSON escape at `at`, and its end.
fn json_escape(text: &[u8], at: usize) -> Option<(char, usize)> {
    let short = match text.get(at + 1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let unit = hex_at(text, at + 2, 4)?;
            if !(0xd800..0xdc00).contains(&unit) {
                return Some((char::from_u32(unit)?, at + 6));
            }
            if text.get(at + 6..at + 8)? != b"\\u" {
                return None;
            }
            let low = hex_at(text, at + 8, 4)?;
            let c = char::decode_utf16([unit as u16, low as u16]).next()?.ok()?;
            return Some((c, at + 12));
        }
        _ => return None,
    };
    Some((short, at + 2))
}

/// The characters a percent-encoding at `at` stands for, encoded once or
/// more (`%2F`, `%252F`, ...), with their ends.
fn percent(text: &[u8], at: usize, found: &mut Vec<(char, usize)>) {
    // One byte: `%`, any number of `25` (each one more encoding), two hex digits.
    let byte_at = |mut p: usize, all: &mut Vec<(u8, usize)>| {
        if text.get(p) != Some(&b'%') {
            return;
        }
        p += 1;
        while let Some(b) = hex_at(text, p, 2) {
            all.push((b as u8, p + 2));
            if b != 0x25 {
                break;
            }
            p += 2;
        }
    };
    let mut leads = Vec::new();
    byte_at(at, &mut leads);
    for (lead, mut end) in leads {
        let len = match lead {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => continue,
        };
        let mut utf8 = vec![lead];
        while utf8.len() < len {
            let mut next = Vec::new();
            byte_at(end, &mut next);
            // The most-encoded reading: the other bytes were encoded as often.
            let Some(&(b, e)) = next.last() else { break };
            utf8.push(b);
            end = e;
        }
        if let Some(c) = std::str::from_utf8(&utf8)
            .ok()
            .and_then(|s| s.chars().next())
        {
            found.push((c, end));
        }
    }
}

/// The character of an HTML entity at `at` (`&#47;`, `&#x2F;`, `&sol;`),
/// and its end.
fn html_entity(text: &[u8], at: usize) -> Option<(char, usize)> {
    let len = text.get(at..)?.iter().take(12).position(|&b| b == b';')?;
    let name = std::str::from_utf8(&text[at + 1..at + len]).ok()?;
    let c = if let Some(hex) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
        char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
    } else if let Some(decimal) = name.strip_prefix('#') {
        char::from_u32(decimal.parse().ok()?)?
    } else {
        const NAMED: [(&str, char); 14] = [
            ("amp", '&'),
            ("lt", '<'),
            ("gt", '>'),
            ("quot", '"'),
            ("apos", '\''),
            ("sol", '/'),
            ("plus", '+'),
            ("equals", '='),
            ("percnt", '%'),
            ("num", '#'),
            ("lowbar", '_'),
            ("period", '.'),
            ("colon", ':'),
            ("excl", '!'),
        ];
        NAMED.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?.1
    };
    Some((c, at + len + 1))
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
/// the cut is still whole when masked: its longest usual form (a JSON
/// surrogate pair, a numeric HTML entity, a byte percent-encoded twice);
/// a longer form is still masked where a run of it is whole.
pub fn longest_form() -> usize {
    [KEY.get(), PROXY_PASSWORD.get()]
        .into_iter()
        .flatten()
        .map(|forms| forms[0].len() * 20)
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
        let key = forms_of("K3y-0123456");
        let password = forms_of("pr0xy pass");
        let all: Vec<&[char]> = key.iter().chain(&password).map(Vec::as_slice).collect();
        assert_eq!(
            mask_each("407 for pr0xy%20pass, pr0xy+pass and K3y-0123456", &all),
            "407 for [redacted], [redacted] and [redacted]"
        );
    }

    /// `text` masked for `key` alone.
    fn masked(key: &str, text: &str) -> String {
        let forms = forms_of(key);
        let all: Vec<&[char]> = forms.iter().map(Vec::as_slice).collect();
        mask_each(text, &all)
    }

    #[test]
    fn every_transform_a_server_may_apply_is_masked() {
        let hex = "4f8a2c91e7b3d605aa19f0c2";
        let key = "piq-cl\u{e9}/k+y&t\u{f6}k 4f8a2c91e7";
        let b64 = |alphabet| base64_inside(key.as_bytes(), 0, alphabet);
        let cases = [
            (hex, hex.to_uppercase()),
            (key, key.to_uppercase()),
            (key, "Piq-Cl\u{c9}/K+Y&T\u{d6}k 4F8A2c91E7".into()),
            (key, format!("{}==", b64(BASE64))),
            (key, b64(BASE64URL)),
            // As `Basic` auth encodes it: after `user:`, at another alignment.
            (key, base64_inside(format!("u:{key}").as_bytes(), 0, BASE64)),
            (
                key,
                "piq-cl&eacute;&#x2F;k&#43;y&amp;t&#246;k 4f8a2c91e7".into(),
            ),
            (
                key,
                "piq-cl%25C3%25A9%252Fk%252By%2526t%25c3%25b6k%2B4f8a2c91e7".into(),
            ),
            (
                key,
                "piq-cl%252525C3%252525A9%2Fk+y&t%C3%B6k%204f8a2c91e7".into(),
            ),
            (key, "piq-cle\u{301}/k+y&to\u{308}k 4f8a2c91e7".into()),
            (key, key.chars().take(20).collect()),
            (key, "&amp; k+y&amp;t\u{f6}k 4f".into()),
            (hex, "it was 91e7b3d6 or so".into()),
        ];
        for (key, echo) in cases {
            let text = format!("unknown key <{echo}>, try again");
            let out = masked(key, &text);
            assert!(out.contains("[redacted]"), "{echo} -> {out}");
            assert!(
                out.starts_with("unknown key <") && out.ends_with(">, try again"),
                "{out}"
            );
            let left = out.replace("[redacted]", "");
            assert!(left.len() < text.len() - 6, "{echo} -> {out}");
        }
        // Marks alone: nothing to mask, and no loop on an empty match.
        assert_eq!(masked(&"\u{301}".repeat(9), "a\u{301}b"), "a\u{301}b");
        // The entity form of `&` itself, not `&` followed by `amp;`.
        assert_eq!(
            masked(key, "a piq-cl\u{e9}/k+y&amp;t\u{f6}k 4f8a2c91e7 b"),
            "a [redacted] b"
        );
        // A run shorter than RUN_CHARS is ordinary text.
        assert_eq!(masked(hex, "id 4f8a2c9"), "id 4f8a2c9");
        assert_eq!(masked(key, "check (GET users)"), "check (GET users)");
    }

    #[test]
    fn folding_knows_latin_letters_and_skips_combining_marks() {
        assert_eq!(LATIN.len(), 0x180 - 0xc0);
        for (c, base) in [
            ('\u{e9}', 'e'),
            ('\u{c9}', 'e'),
            ('\u{17d}', 'z'),
            ('\u{178}', 'y'),
            ('\u{ff}', 'y'),
            ('\u{c6}', '\u{e6}'),
            ('Q', 'q'),
            ('\u{3a9}', '\u{3a9}'),
        ] {
            assert_eq!(fold(c), Some(base), "{c}");
        }
        assert_eq!(fold('\u{301}'), None);
    }

    #[test]
    fn base64_inside_keeps_only_what_the_key_alone_decides() {
        assert_eq!(base64_inside(b"abcdef", 0, BASE64), "YWJjZGVm");
        // "xabcdef" is eGFiY2RlZg==: `eG` hold bits of `x`, `g` of what follows.
        assert_eq!(base64_inside(b"abcdef", 1, BASE64), "FiY2RlZ");
        assert_eq!(base64_inside(&[0xfb, 0xff], 0, BASE64URL), "-_");
    }
}
