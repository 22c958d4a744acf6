//! One page of a PersistIq list, read in a single pass: the body is checked
//! to be valid JSON, the envelope's `has_more` and record array are found,
//! and each record stays a slice of the body, so that its RECORD line is a
//! copy of the API's own bytes.
//!
//! A hand-written scanner rather than serde_json: validating, splitting and
//! noticing layout whitespace in one pass was the largest share of a sync's
//! CPU when done as serde_json validation plus a second minifying pass.
//! serde_json is still the reference it is tested against.
//!
//! What it accepts is what serde_json accepts when it reads the page into
//! a `Value`: the same grammar, strings with the same escapes and no lone
//! surrogate, the same nesting limit, numbers in the range serde_json's own
//! float parsing gives. On top of that it refuses, on purpose, valid JSON
//! that is not a list page it can read without guessing: the body is not
//! an object; the collection is missing, not an array, or holds other than
//! objects; `has_more` is not a boolean or null; the collection, `has_more`
//! or `next_page` appears twice. `page::differential` holds it to this
//! against serde_json, and lists those refusals in one place.

mod bytes;

pub use bytes::minify_into;
use bytes::skip_plain;
use std::borrow::Cow;
use std::ops::Range;

/// An array or object this deep is refused, as serde_json refuses its
/// 128th nested array or object (scalars do not count: one may sit inside
/// 127 of them), so that no input can exhaust the stack and every RECORD
/// line stays readable by a serde_json consumer.
const MAX_DEPTH: u32 = 128;

/// A list page, borrowing its records from the body it was parsed from.
#[derive(Debug)]
pub struct Page<'a> {
    pub records: Vec<Record<'a>>,
    /// The envelope's `has_more`. Absent or null, a `next_page` URL (a
    /// non-empty string) stands in for it; with neither, this is the last
    /// page. Neither may appear twice, nor may the collection.
    pub has_more: bool,
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
    /// The JSON text of the record's top-level `id` (the last one, if the
    /// record names it twice, as serde_json reads it).
    pub id: Option<&'a [u8]>,
    /// A hash of the record's top-level keys and their values' JSON types,
    /// in order: records of one shape need one drift check (`drift`).
    pub shape: u64,
}

impl<'a> Record<'a> {
    /// The value of the member `scan` was asked to find, if it is a string.
    pub fn field_str(&self) -> Option<Cow<'a, str>> {
        Record::string_at(self.field?)
    }

    /// The record's id as text: a string's value, or a number's JSON text
    /// (`12`), as every id is read; `None` when it has none of either, or
    /// an empty string.
    pub fn id_text(&self) -> Option<Cow<'a, str>> {
        let raw = self.id?;
        let text = match raw.first()? {
            b'"' => Record::string_at(raw)?,
            b'-' | b'0'..=b'9' => Cow::Borrowed(std::str::from_utf8(raw).ok()?),
            _ => return None,
        };
        (!text.is_empty()).then_some(text)
    }

    /// The value of a JSON string's text, unescaped only if it must be.
    fn string_at(raw: &'a [u8]) -> Option<Cow<'a, str>> {
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
}

#[derive(Debug)]
struct Span {
    json: Range<usize>,
    compact: bool,
    field: Option<Range<usize>>,
    id: Option<Range<usize>>,
    shape: u64,
}

impl Layout {
    /// Whether the page holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The envelope's `has_more`, as `Page::has_more`.
    pub fn has_more(&self) -> bool {
        self.has_more
    }

    /// What tells each record apart, in `body` (the body this layout was
    /// scanned from): its `id`'s JSON text, or the whole record when it
    /// has none.
    pub fn identities<'a>(&'a self, body: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.records
            .iter()
            .map(move |span| &body[span.id.clone().unwrap_or_else(|| span.json.clone())])
    }

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
                    id: span.id.clone().map(|f| &body[f]),
                    shape: span.shape,
                })
                .collect(),
            has_more: self.has_more,
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
    let mut envelope = Envelope::default();
    s.ws();
    if !s.eat(b'}') {
        loop {
            let key = s.member_key().map_err(|e| at(&s, e))?;
            if key_is(key, collection) {
                if records.is_some() {
                    return Err(at(&s, &format!("`{collection}` given twice")));
                }
                records = Some(s.records(collection, field).map_err(|e| at(&s, &e))?);
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
    })
}

/// What the envelope's members besides the record array say of more pages.
/// Each is read once: a page that gives one twice is refused rather than
/// read by a rule of which copy counts.
#[derive(Default)]
struct Envelope {
    /// `has_more` when present: a boolean, or None for null.
    has_more: Option<Option<bool>>,
    /// `next_page` when present: whether it is a non-empty string.
    next_page_named: Option<bool>,
}

impl Envelope {
    /// `has_more` decides; without it, a `next_page` URL says more follow.
    fn says_more(&self) -> bool {
        self.has_more
            .flatten()
            .unwrap_or(self.next_page_named == Some(true))
    }
}

/// The top-level members of a record the scanner accepted: each key (its
/// text, unescaped) and its value's JSON text. For the rare drift check:
/// the scanner, not a serde map, so that no second parser is linked in.
pub fn members(record: &[u8]) -> Vec<(Cow<'_, str>, &[u8])> {
    let mut found = Vec::new();
    let mut s = Scanner::new(record);
    s.ws();
    if s.peek() != Some(b'{') {
        return found;
    }
    let _ = s.members(1, |key, _, value| {
        let key = match std::str::from_utf8(key) {
            Ok(text) if !key.contains(&b'\\') => Cow::Borrowed(text),
            _ => {
                let mut quoted = Vec::with_capacity(key.len() + 2);
                quoted.push(b'"');
                quoted.extend_from_slice(key);
                quoted.push(b'"');
                Cow::Owned(serde_json::from_slice::<String>(&quoted).unwrap_or_default())
            }
        };
        found.push((key, &record[value]));
    });
    found
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
    /// Set whenever a string holds an escape: a key without one is its
    /// own name, compared byte for byte (`Scanner::key_is`).
    escaped: bool,
}

impl<'a> Scanner<'a> {
    fn new(b: &'a [u8]) -> Scanner<'a> {
        Scanner {
            b,
            i: 0,
            spaced: false,
            escaped: false,
        }
    }

    /// `"key":` of an object member, with the whitespace around it.
    #[inline(always)]
    fn member_key(&mut self) -> Result<&'a [u8], &'static str> {
        self.ws();
        self.escaped = false;
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
            if envelope.has_more.is_some() {
                return Err("`has_more` given twice");
            }
            envelope.has_more = Some(self.has_more()?);
        } else if key_is(key, "next_page") {
            if envelope.next_page_named.is_some() {
                return Err("`next_page` given twice");
            }
            envelope.next_page_named = Some(if self.peek() == Some(b'"') {
                !self.string()?.is_empty()
            } else {
                self.value(2)?;
                false
            });
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
            let mut id = None;
            let mut shape = 0u64;
            let b = self.b;
            // Envelope, array, record: the record opens level 3.
            self.members(3, |key, escaped, value| {
                shape = crate::drift::fold_shape(shape, b, key, &b[value.clone()]);
                // Most keys have no escape: a compare, not a scan for one.
                let is = |name: &str| match escaped {
                    false => key == name.as_bytes(),
                    true => key_is(key, name),
                };
                if is("id") {
                    id = Some(value.clone());
                }
                if field.is_some_and(is) {
                    found = Some(value);
                }
            })?;
            records.push(Span {
                json: start..self.i,
                compact: !self.spaced,
                field: found,
                id,
                shape: crate::drift::seal(shape),
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
        match self.peek() {
            Some(b'{' | b'[') if depth >= MAX_DEPTH => Err("nesting too deep"),
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
        self.members(depth, |_, _, _| {})
    }

    /// An object, handing each member's key and the place of its value to
    /// `on_member`.
    #[inline(always)]
    fn members(
        &mut self,
        depth: u32,
        mut on_member: impl FnMut(&'a [u8], bool, Range<usize>),
    ) -> Result<(), &'static str> {
        self.i += 1;
        self.ws();
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            let key = self.member_key()?;
            let escaped = self.escaped;
            let start = self.i;
            self.value(depth + 1)?;
            on_member(key, escaped, start..self.i);
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
                Some(b'\\') => {
                    self.escaped = true;
                    match self.b.get(self.i + 1) {
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
                    }
                }
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

    /// A number is refused exactly when serde_json, reading it as a
    /// consumer of the record would, calls it out of range. That is decided
    /// by serde_json's own float parsing, which near f64::MAX differs from
    /// a correctly rounded one (`str::parse`): each accepts numbers the
    /// other refuses. Only numbers with an exponent or hundreds of digits
    /// can be out of range; the text is always copied as sent.
    #[cold]
    fn check_range(&self, start: usize) -> Result<(), &'static str> {
        serde_json::from_slice::<f64>(&self.b[start..self.i])
            .map(|_| ())
            .map_err(|_| "number out of range")
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

#[cfg(test)]
mod differential;
#[cfg(test)]
mod speed;

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
        let layout = scan(body, "leads", None).unwrap();
        let ids: Vec<&[u8]> = layout.identities(body).collect();
        assert_eq!(ids, [&br#""l_1""#[..], br#""l_2""#]);
        let ids = parse(br#"{"t":[{"id":7},{"\u0069d":"x","n":1},{"n":2}]}"#, "t").unwrap();
        let texts: Vec<_> = ids.records.iter().map(|r| r.id_text()).collect();
        assert_eq!(texts, [Some("7".into()), Some("x".into()), None]);

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

    /// serde_json counts only arrays and objects toward its limit: 127 of
    /// them may still hold a scalar, which is then at level 128.
    #[test]
    fn a_scalar_may_sit_at_the_deepest_level() {
        let issue = format!(
            r#"{{"leads":[],"x":{}0{}}}"#,
            "[".repeat(126),
            "]".repeat(126)
        );
        assert!(parse(issue.as_bytes(), "leads").is_ok());
        for bottom in ["0", "-1.5e3", "\"s\"", "true", "null", "[]", "{}"] {
            for arrays in 122..130 {
                let nested = format!("{}{bottom}{}", "[".repeat(arrays), "]".repeat(arrays));
                for body in [
                    format!(r#"{{"items":[],"x":{nested}}}"#),
                    format!(r#"{{"items":[{{"deep":{nested}}}]}}"#),
                ] {
                    let reference = serde_json::from_str::<serde_json::Value>(&body).is_ok();
                    assert_eq!(
                        parse(body.as_bytes(), "items").is_ok(),
                        reference,
                        "{bottom} under {arrays} arrays: {body}"
                    );
                }
            }
        }
    }

    /// The members that say where the records are and whether more
    /// follow may each appear once; serde_json would take the last, and
    /// records in an earlier array would be lost without a word.
    #[test]
    fn envelope_members_that_decide_are_refused_twice() {
        for body in [
            r#"{"leads":[],"next_page":"x","next_page":null}"#,
            r#"{"leads":[],"next_page":null,"next_page":"x"}"#,
            r#"{"leads":[],"has_more":true,"has_more":null}"#,
            r#"{"has_more":false,"leads":[],"has_more":false}"#,
            r#"{"leads":[{"id":1}],"leads":[]}"#,
            r#"{"leads":[],"le\u0061ds":[]}"#,
            r#"{"leads":[],"has_more":true,"next_page":"x","has_\u006dore":true}"#,
        ] {
            let error = parse(body.as_bytes(), "leads").unwrap_err();
            assert!(error.contains("twice"), "{body}: {error}");
        }
        // Other members may repeat, in the envelope and in a record: the
        // last of a record's members is the one looked up, as serde_json's.
        let body = br#"{"status":"a","status":"b","leads":[{"id":"1","id":"2"}],"next_page":5}"#;
        let page = scan(body, "leads", Some("id")).unwrap().page(body);
        assert_eq!(page.records[0].field, Some(&b"\"2\""[..]));
        assert!(!page.has_more);
    }

    /// A number is refused exactly when serde_json, reading the record,
    /// calls it out of range; its own float parsing decides near f64::MAX,
    /// where it differs from a correctly rounded parse.
    #[test]
    fn numbers_near_the_limit_are_judged_as_serde_json_judges_them() {
        let mut numbers: Vec<String> = [
            "1.7976931348623158e308",
            "1.79769313486231595e308",
            "1.7976931348623157e308",
            "-1.7976931348623159e308",
            "17976931348623158e292",
            "0.17976931348623158e309",
            "1e309",
            "4.9e-324",
            "1e-400",
        ]
        .map(String::from)
        .to_vec();
        numbers.push(format!("1797693134862315{}", "9".repeat(293)));
        numbers.push(format!("1797693134862315{}.5", "7".repeat(293)));
        let mut rng = Rng(2024);
        for _ in 0..20_000 {
            let digits: String = (0..rng.below(6))
                .map(|_| char::from(b'0' + rng.below(10) as u8))
                .collect();
            numbers.push(format!("1.79769313486231{digits}e308"));
        }
        let mut refused = 0;
        for n in &numbers {
            let body = format!(r#"{{"items":[{{"n":{n}}}],"m":[{n}]}}"#);
            let reference = serde_json::from_str::<serde_json::Value>(&body).is_ok();
            let ours = parse(body.as_bytes(), "items").is_ok();
            assert_eq!(ours, reference, "{n}");
            refused += !ours as usize;
        }
        assert!(refused > 100 && refused < numbers.len() - 100, "{refused}");
    }

    /// A tiny deterministic generator (xorshift).
    pub(super) struct Rng(pub(super) u64);
    impl Rng {
        pub(super) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub(super) fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }
}
