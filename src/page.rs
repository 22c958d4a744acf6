//! One page of a PersistIq list, read in a single pass: the body is checked
//! to be valid JSON, the envelope's `has_more` and record array are found,
//! and each record stays a slice of the body, so that its RECORD line is a
//! copy of the API's own bytes.
//!
//! A hand-written scanner rather than serde_json: validating, splitting and
//! noticing layout whitespace in one pass costs far less CPU per record than
//! serde_json validation plus a second minifying pass. serde_json is still
//! the reference it is tested against.

use std::borrow::Cow;
use std::ops::Range;

/// Nesting this deep is refused, at the same depth as serde_json (which
/// stops at its 128th level), so that no input can exhaust the stack and
/// every RECORD line stays readable by a serde_json consumer.
const MAX_DEPTH: u32 = 128;

/// A list page, borrowing its records from the body it was parsed from.
#[derive(Debug)]
pub struct Page<'a> {
    pub records: Vec<Record<'a>>,
    /// The envelope's `has_more`. Absent or null, a `next_page` URL stands
    /// in for it; with neither, this is the last page.
    pub has_more: bool,
    /// The record array as sent, to notice a page served twice.
    pub items: &'a [u8],
}

/// One record: a JSON object, exactly as the API sent it.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub json: &'a [u8],
    /// No whitespace between its tokens: it can be copied as it is.
    pub compact: bool,
    /// The JSON text of the value of the top-level member `scan` was asked
    /// to find, if the record has one.
    pub field: Option<&'a [u8]>,
}

impl<'a> Record<'a> {
    /// The value of the member `scan` was asked to find, if it is a string.
    pub fn field_str(&self) -> Option<Cow<'a, str>> {
        let raw = self.field?;
        let text = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        if text.contains(&b'\\') {
            // Escapes are rare in the fields looked up (ids, times).
            return serde_json::from_slice::<String>(raw).ok().map(Cow::Owned);
        }
        std::str::from_utf8(text).ok().map(Cow::Borrowed)
    }

    /// Appends the record to `out` on one line (layout whitespace dropped).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        if self.compact {
            out.extend_from_slice(self.json);
        } else {
            minify_into(out, self.json);
        }
    }
}

/// Where a checked page's parts lie in its body. It owns nothing of the
/// body, so that the client's retry loop can check an answer and still
/// reuse the buffer for the next try; the page is viewed from it once the
/// loop is done (`Layout::page`).
#[derive(Debug)]
pub struct Layout {
    records: Vec<Span>,
    has_more: bool,
    items: Range<usize>,
}

#[derive(Debug)]
struct Span {
    json: Range<usize>,
    compact: bool,
    field: Option<Range<usize>>,
}

impl Layout {
    /// The page in `body`, which must be the body this layout was scanned from.
    pub fn page<'a>(&self, body: &'a [u8]) -> Page<'a> {
        Page {
            records: self
                .records
                .iter()
                .map(|span| Record {
                    json: &body[span.json.clone()],
                    compact: span.compact,
                    field: span.field.clone().map(|f| &body[f]),
                })
                .collect(),
            has_more: self.has_more,
            items: &body[self.items.clone()],
        }
    }
}

/// Checks a list page whose records sit under `collection` and finds its
/// parts. With a `field`, each record's top-level member of that name is
/// found in the same pass.
///
/// The error says what is wrong in words fit for a log line.
pub fn scan(body: &[u8], collection: &str, field: Option<&str>) -> Result<Layout, String> {
    std::str::from_utf8(body).map_err(|e| format!("the body is not UTF-8 ({e})"))?;
    let mut s = Scanner::new(body);
    let at = |s: &Scanner, what: &str| {
        format!(
            "the body is not a PersistIq list envelope ({what} at byte {})",
            s.i
        )
    };
    s.ws();
    if !s.eat(b'{') {
        return Err(at(&s, "expected a JSON object"));
    }
    let mut records = None;
    let mut items = 0..0;
    let mut envelope = Envelope::default();
    s.ws();
    if !s.eat(b'}') {
        loop {
            let key = s.member_key().map_err(|e| at(&s, e))?;
            if key_is(key, collection) {
                let start = s.i;
                records = Some(s.records(collection, field).map_err(|e| at(&s, &e))?);
                items = start..s.i;
            } else {
                s.envelope_value(key, &mut envelope)
                    .map_err(|e| at(&s, e))?;
            }
            s.ws();
            if s.eat(b'}') {
                break;
            }
            if !s.eat(b',') {
                return Err(at(&s, "expected `,` or `}`"));
            }
        }
    }
    s.ws();
    if s.i != body.len() {
        return Err(at(&s, "trailing data"));
    }
    let records = records.ok_or_else(|| format!("the body has no `{collection}` array"))?;
    Ok(Layout {
        records,
        has_more: envelope.says_more(),
        items,
    })
}

/// What the envelope's members besides the record array say of more pages.
#[derive(Default)]
struct Envelope {
    /// `has_more`, when present and not null.
    has_more: Option<bool>,
    /// Whether `next_page` is a non-empty string.
    next_page_named: bool,
}

impl Envelope {
    /// `has_more` decides; without it, a `next_page` URL says more follow.
    fn says_more(&self) -> bool {
        self.has_more.unwrap_or(self.next_page_named)
    }
}

/// Whether a key's raw text (between its quotes) names `name`.
fn key_is(raw: &[u8], name: &str) -> bool {
    if !raw.contains(&b'\\') {
        return raw == name.as_bytes();
    }
    // Escaped keys are rare: let serde_json decode them.
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice::<String>(&quoted).is_ok_and(|k| k == name)
}

/// A cursor over a UTF-8 body (checked before scanning starts).
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// Set whenever whitespace between tokens is skipped.
    spaced: bool,
}

impl<'a> Scanner<'a> {
    fn new(b: &'a [u8]) -> Scanner<'a> {
        Scanner {
            b,
            i: 0,
            spaced: false,
        }
    }

    /// `"key":` of an object member, with the whitespace around it.
    #[inline(always)]
    fn member_key(&mut self) -> Result<&'a [u8], &'static str> {
        self.ws();
        let key = self.string()?;
        self.ws();
        if !self.eat(b':') {
            return Err("expected `:`");
        }
        self.ws();
        Ok(key)
    }

    /// The value of an envelope member other than the record array, noting
    /// what it says of more pages.
    fn envelope_value(&mut self, key: &[u8], envelope: &mut Envelope) -> Result<(), &'static str> {
        if key_is(key, "has_more") {
            envelope.has_more = self.has_more()?;
        } else if key_is(key, "next_page") && self.peek() == Some(b'"') {
            envelope.next_page_named = !self.string()?.is_empty();
        } else {
            // The envelope is level 1; its members' values open level 2.
            self.value(2)?;
        }
        Ok(())
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        self.i += hit as usize;
        hit
    }

    #[inline(always)]
    fn ws(&mut self) {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
        self.spaced |= self.i != start;
    }

    /// The record array: each item must be an object.
    fn records(&mut self, collection: &str, field: Option<&str>) -> Result<Vec<Span>, String> {
        if !self.eat(b'[') {
            return Err(format!("`{collection}` is not an array"));
        }
        let mut records = Vec::with_capacity(128);
        self.ws();
        if self.eat(b']') {
            return Ok(records);
        }
        loop {
            self.ws();
            if self.peek() != Some(b'{') {
                return Err(format!(
                    "`{collection}` item {} is not a JSON object",
                    records.len()
                ));
            }
            let start = self.i;
            self.spaced = false;
            let mut found = None;
            // Envelope, array, record: the record opens level 3.
            match field {
                None => self.object(3)?,
                Some(name) => self.members(3, |key, value| {
                    if key_is(key, name) {
                        found = Some(value);
                    }
                })?,
            }
            records.push(Span {
                json: start..self.i,
                compact: !self.spaced,
                field: found,
            });
            self.ws();
            if self.eat(b']') {
                return Ok(records);
            }
            if !self.eat(b',') {
                return Err("expected `,` or `]` in the record array".into());
            }
        }
    }

    /// `has_more`: a boolean, or null.
    fn has_more(&mut self) -> Result<Option<bool>, &'static str> {
        let value = match self.peek() {
            Some(b't') => self.word(b"true").map(|_| Some(true)),
            Some(b'f') => self.word(b"false").map(|_| Some(false)),
            Some(b'n') => self.word(b"null").map(|_| None),
            _ => Err(""),
        };
        value.map_err(|_| "`has_more` is not a boolean")
    }

    /// Any JSON value, at nesting `depth`.
    fn value(&mut self, depth: u32) -> Result<(), &'static str> {
        if depth >= MAX_DEPTH {
            return Err("nesting too deep");
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(|_| ()),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.word(b"true"),
            Some(b'f') => self.word(b"false"),
            Some(b'n') => self.word(b"null"),
            Some(_) => Err("unexpected character"),
            None => Err("unexpected end"),
        }
    }

    fn object(&mut self, depth: u32) -> Result<(), &'static str> {
        self.members(depth, |_, _| {})
    }

    /// An object, handing each member's key and the place of its value to
    /// `on_member`.
    #[inline(always)]
    fn members(
        &mut self,
        depth: u32,
        mut on_member: impl FnMut(&'a [u8], Range<usize>),
    ) -> Result<(), &'static str> {
        self.i += 1;
        self.ws();
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            let key = self.member_key()?;
            let start = self.i;
            self.value(depth + 1)?;
            on_member(key, start..self.i);
            self.ws();
            if self.eat(b'}') {
                return Ok(());
            }
            if !self.eat(b',') {
                return Err("expected `,` or `}`");
            }
        }
    }

    fn array(&mut self, depth: u32) -> Result<(), &'static str> {
        self.i += 1;
        self.ws();
        if self.eat(b']') {
            return Ok(());
        }
        loop {
            self.ws();
            self.value(depth + 1)?;
            self.ws();
            if self.eat(b']') {
                return Ok(());
            }
            if !self.eat(b',') {
                return Err("expected `,` or `]`");
            }
        }
    }

    /// A string; returns its raw text between the quotes.
    #[inline(always)]
    fn string(&mut self) -> Result<&'a [u8], &'static str> {
        if !self.eat(b'"') {
            return Err("expected a string");
        }
        let start = self.i;
        loop {
            self.i = skip_plain(self.b, self.i);
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(&self.b[start..self.i - 1]);
                }
                Some(b'\\') => match self.b.get(self.i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 2,
                    Some(b'u') => {
                        let unit = self.hex_escape(self.i)?;
                        self.i += 6;
                        // UTF-16 surrogates come in pairs; a lone one is
                        // refused, as serde_json and pydantic refuse it (a
                        // line PyAirbyte drops would be a record lost).
                        if (0xD800..0xDC00).contains(&unit) {
                            let low = self.b.get(self.i..self.i + 2) == Some(b"\\u");
                            if !(low && (0xDC00..0xE000).contains(&self.hex_escape(self.i)?)) {
                                return Err("lone surrogate in a \\u escape");
                            }
                            self.i += 6;
                        } else if (0xDC00..0xE000).contains(&unit) {
                            return Err("lone surrogate in a \\u escape");
                        }
                    }
                    _ => return Err("invalid escape"),
                },
                Some(0x00..=0x1f) => return Err("control character in a string"),
                Some(_) => self.i += 1,
                None => return Err("unterminated string"),
            }
        }
    }

    /// The code unit of the `\uXXXX` escape at `at`.
    fn hex_escape(&self, at: usize) -> Result<u32, &'static str> {
        let hex = self.b.get(at + 2..at + 6).ok_or("unexpected end")?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err("invalid \\u escape");
        }
        let hex = std::str::from_utf8(hex).map_err(|_| "invalid \\u escape")?;
        u32::from_str_radix(hex, 16).map_err(|_| "invalid \\u escape")
    }

    fn number(&mut self) -> Result<(), &'static str> {
        let start = self.i;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err("invalid number"),
        }
        if self.eat(b'.') {
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err("invalid number");
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err("invalid number");
            }
            self.digits();
            self.check_range(start)?;
        } else if self.i - start > 300 {
            self.check_range(start)?;
        }
        Ok(())
    }

    /// A number too large for a double is refused, as serde_json refuses
    /// it. Only numbers with an exponent or hundreds of digits can be.
    #[cold]
    fn check_range(&self, start: usize) -> Result<(), &'static str> {
        let text = std::str::from_utf8(&self.b[start..self.i]).map_err(|_| "invalid number")?;
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(()),
            _ => Err("number out of range"),
        }
    }

    #[inline(always)]
    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    /// A literal; its length is a constant, so the comparison compiles to
    /// an integer compare instead of a memcmp call per `null`.
    #[inline(always)]
    fn word<const N: usize>(&mut self, word: &[u8; N]) -> Result<(), &'static str> {
        if self.b.get(self.i..self.i + N) == Some(&word[..]) {
            self.i += N;
            Ok(())
        } else {
            Err("invalid literal")
        }
    }
}

/// The index of the first `"`, `\` or control byte at or after `i`, or
/// a position shortly before it: past the plain text that makes up most of
/// a page, sixteen bytes at a time.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)] // SSE2 intrinsics: see the SAFETY note
fn skip_plain(b: &[u8], mut i: usize) -> usize {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics are
    // always available; every load is unaligned and reads b[i..i + 16],
    // which the loop condition keeps in bounds.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let control_max = _mm_set1_epi8(0x1f);
        while i + 16 <= b.len() {
            let v = _mm_loadu_si128(b.as_ptr().add(i).cast());
            // min(v, 0x1f) == v exactly when v <= 0x1f, comparing unsigned.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, control_max), v);
            let special = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                control,
            );
            let mask = _mm_movemask_epi8(special);
            if mask != 0 {
                return i + mask.trailing_zeros() as usize;
            }
            i += 16;
        }
    }
    i
}

/// Elsewhere, eight bytes at a time.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn skip_plain(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        if special_byte(u64::from_le_bytes(chunk.try_into().unwrap_or_default())) {
            break;
        }
        i += 8;
    }
    i
}

/// Whether any byte of `word` is `"`, `\` or a control byte (below 0x20).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn special_byte(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let below_0x20 = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
    below_0x20 || has_zero(word ^ (ONES * b'"' as u64)) || has_zero(word ^ (ONES * b'\\' as u64))
}

/// Appends `json` (already known to be valid JSON) to `out` without the
/// whitespace between tokens, so a pretty-printed record still fits on one
/// line. Strings are copied untouched: valid JSON has no raw newline in them.
pub fn minify_into(out: &mut Vec<u8>, json: &[u8]) {
    let mut rest = json;
    loop {
        // Outside strings: copy up to the next quote or whitespace byte.
        let stop = rest
            .iter()
            .position(|&b| matches!(b, b'"' | b' ' | b'\n' | b'\r' | b'\t'));
        let Some(i) = stop else {
            out.extend_from_slice(rest);
            return;
        };
        if rest[i] != b'"' {
            out.extend_from_slice(&rest[..i]);
            rest = &rest[i + 1..];
            continue;
        }
        // Inside a string: copy through the closing quote, minding escapes.
        let mut j = i + 1;
        while j < rest.len() {
            match rest[j] {
                b'\\' => j += 2,
                b'"' => break,
                _ => j += 1,
            }
        }
        let end = (j + 1).min(rest.len());
        out.extend_from_slice(&rest[..end]);
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<'a>(body: &'a [u8], collection: &str) -> Result<Page<'a>, String> {
        scan(body, collection, None).map(|layout| layout.page(body))
    }

    fn minified(s: &str) -> String {
        let mut out = Vec::new();
        minify_into(&mut out, s.as_bytes());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn minify_keeps_strings_and_drops_layout() {
        assert_eq!(
            minified("{\r\n\t\"a b\" : [ 1 ,\n 2 ],\n \"c\\\" \\\\\": \"x\\n y\" }"),
            r#"{"a b":[1,2],"c\" \\":"x\n y"}"#
        );
        assert_eq!(minified(r#"{"k":"v"}"#), r#"{"k":"v"}"#);
    }

    #[test]
    fn page_envelope() {
        let body = br#"{"status":"success","errors":[],"has_more":true,"next_page":"x","le\u0061ds":[{"id":"l_1"} , {"id" : "l_2"}]}"#;
        let page = parse(body, "leads").unwrap();
        assert!(page.has_more);
        assert_eq!(page.records.len(), 2);
        assert_eq!(page.records[0].json, br#"{"id":"l_1"}"#);
        assert!(page.records[0].compact);
        assert_eq!(page.records[1].json, br#"{"id" : "l_2"}"#);
        assert!(!page.records[1].compact);
        assert_eq!(page.items, br#"[{"id":"l_1"} , {"id" : "l_2"}]"#);

        let last = parse(br#"{"users":[],"has_more":null}"#, "users").unwrap();
        assert!(!last.has_more);
        let named = br#"{"users":[],"next_page":"https://api.persistiq.com/v1/users?page=2"}"#;
        assert!(parse(named, "users").unwrap().has_more);
        let said_no = br#"{"users":[],"has_more":false,"next_page":"https://x/users?page=2"}"#;
        assert!(!parse(said_no, "users").unwrap().has_more);
        assert!(
            !parse(br#"{"users":[],"next_page":null}"#, "users")
                .unwrap()
                .has_more
        );
        assert!(parse(b"<html>", "users").is_err());
        assert!(parse(br#"{"status":"error"}"#, "users")
            .unwrap_err()
            .contains("no `users`"));
        assert!(parse(br#"{"users":[1]}"#, "users").is_err());
        assert!(parse(br#"{"users":[]} x"#, "users").is_err());
        assert!(parse(br#"{"users":[],"has_more":"yes"}"#, "users").is_err());
        assert!(parse(b"{\"users\":[{\"a\":\"\xff\"}]}", "users")
            .unwrap_err()
            .contains("UTF-8"));
    }

    #[test]
    fn fields_of_a_record() {
        let body = br#"{"events":[{"id":"e","data":{"created_at":"inner"},"created_at":"2024-01-01T00:00:00Z"},{"created_at":5}]}"#;
        let field = |name| {
            let layout = scan(body, "events", Some(name)).unwrap();
            let page = layout.page(body);
            let strings: Vec<Option<String>> = page
                .records
                .iter()
                .map(|r| r.field_str().map(Cow::into_owned))
                .collect();
            strings
        };
        assert_eq!(
            field("created_at"),
            [Some("2024-01-01T00:00:00Z".to_string()), None]
        );
        assert_eq!(field("missing"), [None, None]);
    }

    #[test]
    fn special_bytes_are_found_in_every_lane() {
        for lane in 0..8 {
            for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                let mut bytes = *b"abcdefgh";
                bytes[lane] = special;
                assert!(
                    special_byte(u64::from_le_bytes(bytes)),
                    "{special:#x} in lane {lane}"
                );
            }
        }
        for plain in [
            *b"abcdefgh",
            *b"  \x7f~!#[]",
            [0xc3, 0xa9, 0xe6, 0x97, 0xa5, 0xf0, 0x9f, 0x9a],
        ] {
            assert!(!special_byte(u64::from_le_bytes(plain)), "{plain:?}");
        }
    }

    #[test]
    fn skip_plain_stops_at_the_first_special_byte() {
        let mut rng = Rng(42);
        for _ in 0..5_000 {
            let len = rng.below(80);
            let bytes: Vec<u8> = (0..len)
                .map(|_| match rng.below(10) {
                    0 => b'"',
                    1 => b'\\',
                    2 => rng.below(0x20) as u8,
                    3 => 0x80 + rng.below(0x80) as u8,
                    _ => 0x20 + rng.below(0x60) as u8,
                })
                .collect();
            let start = rng.below(len + 1);
            let first = (start..len)
                .find(|&i| matches!(bytes[i], b'"' | b'\\' | 0x00..=0x1f))
                .unwrap_or(len);
            let got = skip_plain(&bytes, start);
            // Exactly at the first special byte, or short of it only where
            // less than a chunk is left (the caller goes on byte by byte).
            assert!(
                got == first || (start <= got && got < first && got + 16 > len),
                "{bytes:?} from {start}: {got}, first special at {first}"
            );
        }
    }

    #[test]
    fn nesting_limit_is_serde_jsons() {
        for depth in 120..135 {
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let body = format!(r#"{{"items":[{{"deep":{nested}}}],"other":{nested}}}"#);
            let reference = serde_json::from_str::<serde_json::Value>(&body).is_ok();
            assert_eq!(
                parse(body.as_bytes(), "items").is_ok(),
                reference,
                "depth {depth}"
            );
        }
    }

    /// A tiny deterministic generator (xorshift) for the differential test.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\n",
        "\t",
        "\r\n",
        "\"",
        "\"k\"",
        "\"v a\"",
        "\"\\n\"",
        "\"\\u00e9\"",
        "\"\\uZZ12\"",
        "\"\\q\"",
        "\"\\ud83d\\ude80\"",
        "\"\\ud83d\"",
        "\"\\ude80\"",
        "\"\\ud83d\\u0041\"",
        "1e308",
        "1e309",
        "-2E+400",
        "0e99999",
        "\"é🚀\"",
        "\u{1}",
        "\\",
        "0",
        "-1",
        "1.5",
        "1e9",
        "-0.0E+2",
        "01",
        "1.",
        ".5",
        "1e",
        "-",
        "true",
        "false",
        "null",
        "nul",
        "tru",
        "x",
    ];

    fn random_value(rng: &mut Rng, depth: u32) -> String {
        match (rng.below(9), depth) {
            (0, d) if d < 6 => {
                let n = rng.below(4);
                let items: Vec<String> = (0..n)
                    .map(|i| {
                        format!(
                            "\"k{i}\"{}:{}",
                            [" ", "", "\n"][rng.below(3)],
                            random_value(rng, d + 1)
                        )
                    })
                    .collect();
                format!("{{{}}}", items.join([",", " , ", ",\r\n\t"][rng.below(3)]))
            }
            (1, d) if d < 6 => {
                let n = rng.below(4);
                let items: Vec<String> = (0..n).map(|_| random_value(rng, d + 1)).collect();
                format!("[{}]", items.join(","))
            }
            _ => PIECES[11 + rng.below(PIECES.len() - 11)].to_string(),
        }
    }

    /// The scanner accepts exactly what serde_json accepts, finds the same
    /// records, and its one-pass output equals the two-pass one.
    #[test]
    fn agrees_with_serde_json_on_generated_pages() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for round in 0..20_000 {
            let mut body = String::from("{\"has_more\":false,\"items\":[");
            let n = rng.below(4);
            for k in 0..n {
                if k > 0 {
                    body.push(',');
                }
                body.push_str(&random_value(&mut rng, 1));
            }
            body.push_str("]}");
            // Sometimes, damage the text with a random piece.
            if round % 3 == 0 {
                let at = rng.below(body.len() + 1);
                if body.is_char_boundary(at) {
                    body.insert_str(at, PIECES[rng.below(PIECES.len())]);
                }
            }
            let reference: Result<serde_json::Value, _> = serde_json::from_str(&body);
            let layout = scan(body.as_bytes(), "items", Some("k0"));
            let ours = layout.map(|l| l.page(body.as_bytes()));
            let reference_items = reference
                .as_ref()
                .ok()
                .and_then(|v| v.get("items"))
                .and_then(|v| v.as_array());
            let all_objects = reference_items.is_some_and(|a| a.iter().all(|x| x.is_object()));
            match (&reference, &ours) {
                (Ok(v), Ok(page)) => {
                    let items = v["items"].as_array().unwrap();
                    assert_eq!(items.len(), page.records.len(), "{body}");
                    for (item, rec) in items.iter().zip(&page.records) {
                        let field = rec.field.map(|f| serde_json::from_slice(f).unwrap());
                        assert_eq!(field.as_ref(), item.get("k0"), "{body}");
                        assert_eq!(rec.field_str().as_deref(), item["k0"].as_str(), "{body}");
                        let mut line = Vec::new();
                        rec.write_to(&mut line);
                        let back: serde_json::Value = serde_json::from_slice(&line).unwrap();
                        assert_eq!(&back, item, "{body}");
                        assert!(!line.contains(&b'\n'));
                    }
                    accepted += 1;
                }
                // Valid JSON whose items are not all objects is refused by us only.
                (Ok(_), Err(_)) if !all_objects => {}
                (Err(_), Err(_)) => {}
                (Ok(_), Err(e)) => panic!("refused valid JSON ({e}): {body}"),
                (Err(e), Ok(_)) => panic!("accepted invalid JSON ({e}): {body}"),
            }
        }
        assert!(accepted > 1000, "too few valid pages generated: {accepted}");
    }
}
