//! The scanner held to serde_json, the reference it promises to agree with:
//! generated and damaged pages go through both, and every difference that
//! is not one of the deliberate refusals (`serde_json_reading`) fails.
//!
//! Every run replays the pages in `src/page/regressions/` and then a fixed
//! set of generated cases (a few seconds). `PAGE_FUZZ_SECONDS=N` runs
//! fresh cases for N seconds instead; `PAGE_FUZZ_SEED=S` starts at case S.
//! A disagreement is shrunk to a small page, saved in the regressions
//! folder, and reported: commit the file with the fix. docs/scanner.md
//! says more.
//!
//! A small generator rather than a property-testing crate: pages are built
//! and damaged as bytes (invalid UTF-8 included), each case is one seed,
//! and the shrinking that matters here (dropping bytes) is a dozen lines.

use super::{scan, Layout};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use std::marker::PhantomData;
use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Every generated page lists its records under this key...
const COLLECTION: &str = "leads";
/// ...and the scanner is asked to find this member of each record.
const FIELD: &str = "created_at";

/// Cases run by default: a few seconds on a busy 2-core machine.
const CI_CASES: u64 = 40_000;

// ---------------------------------------------------------------------------
// The reference: serde_json's reading of a page.

/// An object's members in the order sent, duplicates kept, each value
/// borrowed from the text it was read from.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for MembersVisitor<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Members<'a>, M::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, &'a RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor(PhantomData))
    }
}

impl<'a> Members<'a> {
    /// The values given under `name`, in order.
    fn all(&self, name: &str) -> Vec<&'a RawValue> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| *value)
            .collect()
    }
}

/// A page as serde_json reads it, in the scanner's terms.
#[derive(Debug)]
struct Reading {
    records: Vec<RecordReading>,
    has_more: bool,
}

#[derive(Debug)]
struct RecordReading {
    json: Range<usize>,
    /// The last member named FIELD (serde_json's last-wins reading).
    field: Option<Range<usize>>,
    /// The last member named `id`.
    id: Option<Range<usize>>,
    value: Value,
}

#[derive(Debug)]
enum Verdict {
    /// serde_json refuses the body.
    Invalid(String),
    /// Valid JSON that the scanner refuses on purpose.
    Refused(&'static str),
    Page(Reading),
}

/// Where `part` (a slice of `body`) lies in it.
fn range_in(body: &str, part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - body.as_ptr() as usize;
    start..start + part.len()
}

/// serde_json's reading of a page, as a consumer parsing it into a `Value`
/// would judge it (strings decoded, numbers as f64, nesting limit).
///
/// Every `Verdict::Refused` below is a deliberate refusal, and this is the
/// one place they are listed: valid JSON that is not a list page the
/// connector can read without guessing.
fn serde_json_reading(body: &[u8]) -> Verdict {
    if let Err(e) = serde_json::from_slice::<Value>(body) {
        return Verdict::Invalid(e.to_string());
    }
    let text = std::str::from_utf8(body).expect("serde_json accepts only UTF-8");
    let Ok(envelope) = serde_json::from_str::<Members>(text) else {
        return Verdict::Refused("the page is not a JSON object");
    };
    let collection = envelope.all(COLLECTION);
    let has_more = envelope.all("has_more");
    let next_page = envelope.all("next_page");
    if collection.len() > 1 || has_more.len() > 1 || next_page.len() > 1 {
        // serde_json would take the last; an earlier record array would be
        // records silently dropped, so the page is refused (and retried).
        return Verdict::Refused("the collection, has_more or next_page given twice");
    }
    let Some(items) = collection.first() else {
        return Verdict::Refused("no collection");
    };
    let Ok(items_raw) = serde_json::from_str::<Vec<&RawValue>>(items.get()) else {
        return Verdict::Refused("the collection is not an array");
    };
    let mut records = Vec::new();
    for item in items_raw {
        let Ok(members) = serde_json::from_str::<Members>(item.get()) else {
            return Verdict::Refused("an item of the collection is not an object");
        };
        records.push(RecordReading {
            json: range_in(text, item.get()),
            field: members.all(FIELD).last().map(|f| range_in(text, f.get())),
            id: members.all("id").last().map(|f| range_in(text, f.get())),
            value: serde_json::from_str(item.get()).expect("a part of a valid page"),
        });
    }
    let next_page_named = next_page.first().is_some_and(|raw| {
        serde_json::from_str::<Value>(raw.get())
            .is_ok_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    });
    let has_more = match has_more.first().map(|raw| serde_json::from_str(raw.get())) {
        None | Some(Ok(Value::Null)) => next_page_named,
        Some(Ok(Value::Bool(said))) => said,
        Some(_) => return Verdict::Refused("has_more is neither a boolean nor null"),
    };
    Verdict::Page(Reading { records, has_more })
}

// ---------------------------------------------------------------------------
// The comparison.

/// Where the scanner and serde_json part ways on `body`, if they do.
fn disagreement(body: &[u8]) -> Option<String> {
    let reading = serde_json_reading(body);
    for field in [None, Some(FIELD)] {
        let scanned = std::panic::catch_unwind(|| scan(body, COLLECTION, field));
        let Ok(scanned) = scanned else {
            return Some(format!("scan panicked (field {field:?})"));
        };
        let why = match (&reading, &scanned) {
            (Verdict::Invalid(_) | Verdict::Refused(_), Err(_)) => None,
            (Verdict::Invalid(e), Ok(_)) => Some(format!("accepted invalid JSON ({e})")),
            (Verdict::Refused(r), Ok(_)) => Some(format!("accepted a page to refuse ({r})")),
            (Verdict::Page(_), Err(e)) => Some(format!("refused a readable page ({e})")),
            (Verdict::Page(reading), Ok(layout)) => same_page(body, reading, layout, field),
        };
        if let Some(why) = why {
            return Some(format!("{why} (field {field:?})"));
        }
    }
    None
}

fn same_page(
    body: &[u8],
    reading: &Reading,
    layout: &Layout,
    field: Option<&str>,
) -> Option<String> {
    if layout.has_more != reading.has_more {
        return Some(format!(
            "has_more {}, serde_json {}",
            layout.has_more, reading.has_more
        ));
    }
    if layout.records.len() != reading.records.len() {
        return Some(format!(
            "{} records, serde_json {}",
            layout.records.len(),
            reading.records.len()
        ));
    }
    let page = layout.page(body);
    for (k, ((span, record), want)) in layout
        .records
        .iter()
        .zip(&page.records)
        .zip(&reading.records)
        .enumerate()
    {
        if span.json != want.json {
            return Some(format!(
                "record {k} at {:?}, serde_json {:?}",
                span.json, want.json
            ));
        }
        let want_field = field.and(want.field.clone());
        if span.field != want_field {
            return Some(format!(
                "record {k}: field at {:?}, serde_json {want_field:?}",
                span.field
            ));
        }
        let want_str = field.and(want.value.get(FIELD)).and_then(Value::as_str);
        if record.field_str().as_deref() != want_str {
            return Some(format!(
                "record {k}: field_str {:?}, serde_json {want_str:?}",
                record.field_str()
            ));
        }
        if span.id != want.id {
            return Some(format!(
                "record {k}: id at {:?}, serde_json {:?}",
                span.id, want.id
            ));
        }
        let want_id = match want.value.get("id") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(_)) => want.id.clone().map(|r| body_text(body, r)),
            _ => None,
        };
        if record.id_text().map(|t| t.into_owned()) != want_id {
            return Some(format!(
                "record {k}: id_text {:?}, serde_json {want_id:?}",
                record.id_text()
            ));
        }
        let mut line = Vec::new();
        record.write_to(&mut line);
        match serde_json::from_slice::<Value>(&line) {
            Ok(value) if value == want.value => {}
            Ok(_) => return Some(format!("record {k}: the line reads as another value")),
            Err(e) => return Some(format!("record {k}: the line is not JSON ({e})")),
        }
        if !only_layout_dropped(record.json, &line) {
            return Some(format!(
                "record {k}: the line is not the record less its layout"
            ));
        }
        if record.compact != (line == record.json) {
            return Some(format!(
                "record {k}: compact is {}, yet the line is {}the record",
                record.compact,
                if record.compact { "not " } else { "" }
            ));
        }
    }
    None
}

/// The text of `range` of `body`.
fn body_text(body: &[u8], range: Range<usize>) -> String {
    String::from_utf8_lossy(&body[range]).into_owned()
}

/// Whether `line` is `json` with exactly the whitespace between its tokens
/// dropped (the value's equality, checked apart, covers string contents).
fn only_layout_dropped(json: &[u8], line: &[u8]) -> bool {
    let is_layout = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let (mut in_string, mut escaped) = (false, false);
    let mut tokens = Vec::with_capacity(json.len());
    for &b in json {
        if in_string {
            in_string = escaped || b != b'"';
            escaped = !escaped && b == b'\\';
        } else if !is_layout(&b) {
            in_string = b == b'"';
        } else {
            continue;
        }
        tokens.push(b);
    }
    tokens == line
}

// ---------------------------------------------------------------------------
// The generator.

/// splitmix64: every seed, even a small one, starts a distinct stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// True once in `n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    fn pick<'t, T: ?Sized>(&mut self, from: &[&'t T]) -> &'t T {
        from[self.below(from.len())]
    }
}

/// Builds one page into `out`.
struct Gen {
    rng: Rng,
    out: Vec<u8>,
}

impl Gen {
    fn put(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn ws(&mut self) {
        let ws = match self.rng.below(1000) {
            0..=279 => "",
            280..=339 => " ",
            340..=359 => "\n  ",
            360..=379 => "\r\n\t",
            380..=389 => "\t",
            390 => "\u{a0}", // not JSON whitespace
            391 => "\x0c",   // form feed: not JSON whitespace either
            392..=399 => "\n",
            _ => "",
        };
        self.put(ws);
    }

    /// A key: `name` as sent, escaped, or nearly it.
    fn key(&mut self, name: &str) {
        self.put("\"");
        match self.rng.below(40) {
            0..=3 => {
                // One letter as a \u escape: the same key to serde_json.
                let at = self.rng.below(name.len());
                let (head, tail) = name.split_at(at);
                let mut chars = tail.chars();
                let c = chars.next().unwrap_or('x');
                let s = format!("{head}\\u{:04x}{}", c as u32, chars.as_str());
                self.put(&s);
            }
            4 => {
                let s = format!("{name} ");
                self.put(&s);
            }
            5 => self.put(&name[..name.len() - 1]),
            _ => self.put(name),
        }
        self.put("\"");
    }

    fn member(&mut self, name: &str, value: impl FnOnce(&mut Self)) {
        self.ws();
        self.key(name);
        self.ws();
        self.put(":");
        self.ws();
        value(self);
        self.ws();
    }

    fn page(&mut self) {
        type Part = fn(&mut Gen);
        let mut parts: Vec<Part> = Vec::new();
        let times = |rng: &mut Rng, absent: usize, twice: usize| match rng.below(100) {
            n if n < absent => 0,
            n if n < absent + twice => 2,
            _ => 1,
        };
        for _ in 0..times(&mut self.rng, 2, 3) {
            parts.push(|g| g.member(COLLECTION, Gen::records));
        }
        for _ in 0..times(&mut self.rng, 30, 3) {
            parts.push(|g| g.member("has_more", Gen::has_more));
        }
        for _ in 0..times(&mut self.rng, 40, 3) {
            parts.push(|g| g.member("next_page", Gen::next_page));
        }
        if self.rng.one_in(2) {
            parts.push(|g| g.member("status", |g| g.put("\"success\"")));
        }
        if self.rng.one_in(3) {
            parts.push(|g| g.member("errors", |g| g.value(2)));
        }
        if self.rng.one_in(20) {
            // Nesting near the limit, outside the records.
            parts.push(|g| g.member("deep", |g| g.deep(2)));
        }
        for k in (1..parts.len()).rev() {
            let j = self.rng.below(k + 1);
            parts.swap(k, j);
        }
        self.ws();
        self.put("{");
        for (k, part) in parts.iter().enumerate() {
            if k > 0 {
                self.put(",");
            }
            part(self);
        }
        if parts.is_empty() {
            self.ws();
        }
        self.put("}");
        self.ws();
    }

    fn has_more(&mut self) {
        match self.rng.below(40) {
            0..=14 => self.put("true"),
            15..=29 => self.put("false"),
            30..=37 => self.put("null"),
            38 => self.put("\"yes\""),
            _ => self.value(2),
        }
    }

    fn next_page(&mut self) {
        match self.rng.below(16) {
            0..=7 => self.put("\"https://api.persistiq.com/v1/leads?page=2\""),
            8 | 9 => self.put("\"\""),
            10..=13 => self.put("null"),
            14 => self.put("\"\\u0068\""),
            _ => self.value(2),
        }
    }

    fn records(&mut self) {
        if self.rng.one_in(40) {
            return self.value(2);
        }
        self.put("[");
        let n = self.rng.below(5);
        for k in 0..n {
            if k > 0 {
                self.put(",");
            }
            self.ws();
            if self.rng.one_in(50) {
                self.value(3);
            } else {
                self.record();
            }
            self.ws();
        }
        if n == 0 {
            self.ws();
        }
        self.put("]");
    }

    /// An object at level 3 (envelope, array, record).
    fn record(&mut self) {
        const KEYS: &[&str] = &["id", FIELD, "name", "data", "sent_count", "x"];
        self.put("{");
        let n = self.rng.below(6);
        for k in 0..n {
            if k > 0 {
                self.put(",");
            }
            let key = self.rng.pick(KEYS);
            self.member(key, |g| {
                if key == FIELD && g.rng.one_in(2) {
                    g.put("\"2024-01-01T00:00:00Z\"");
                } else {
                    g.value(4);
                }
            });
        }
        if n == 0 {
            self.ws();
        }
        self.put("}");
    }

    /// Any value opening nesting level `depth`.
    fn value(&mut self, depth: u32) {
        match self.rng.below(100) {
            0..=29 => self.string(),
            30..=54 => self.number(),
            55..=64 => {
                let word = if self.rng.one_in(40) {
                    self.rng.pick(&["nul", "tru", "fals", "nulll", "True"])
                } else {
                    self.rng.pick(&["true", "false", "null"])
                };
                self.put(word);
            }
            65..=76 if depth < 8 => {
                self.put("{");
                let n = self.rng.below(4);
                for k in 0..n {
                    if k > 0 {
                        self.put(",");
                    }
                    let key = self.rng.pick(&["a", "b", FIELD, "a"]);
                    self.member(key, |g| g.value(depth + 1));
                }
                self.put("}");
            }
            77..=88 if depth < 8 => {
                self.put("[");
                let n = self.rng.below(4);
                for k in 0..n {
                    if k > 0 {
                        self.put(",");
                    }
                    self.ws();
                    self.value(depth + 1);
                    self.ws();
                }
                self.put("]");
            }
            89 if self.rng.one_in(3) => self.deep(depth),
            _ => self.string(),
        }
    }

    /// Arrays and objects nested to just below, at or past serde_json's
    /// limit (128 levels of them), with a scalar or nothing at the bottom.
    fn deep(&mut self, depth: u32) {
        let levels = (126 + self.rng.below(5)).saturating_sub(depth as usize);
        let mut closers = Vec::with_capacity(levels);
        for _ in 0..levels {
            if self.rng.one_in(3) {
                self.put("{\"a\":");
                closers.push("}");
            } else {
                self.put("[");
                closers.push("]");
            }
        }
        match self.rng.below(4) {
            0 => self.put("0"),
            1 => self.put("\"s\""),
            2 => self.put("{}"),
            _ => {
                // An array may close empty; an object member needs a value.
                if closers.last() == Some(&"}") {
                    self.put("[]");
                }
            }
        }
        for closer in closers.iter().rev() {
            self.put(closer);
        }
    }

    fn digits(&mut self, n: usize) {
        for k in 0..n {
            let first = if k == 0 { 1 } else { 0 };
            let d = first + self.rng.below(10 - first);
            self.out.push(b'0' + d as u8);
        }
    }

    fn number(&mut self) {
        if self.rng.one_in(4) {
            self.put("-");
        }
        match self.rng.below(40) {
            0..=14 | 33..=35 => {
                let n = 1 + self.rng.below(25);
                self.digits(n);
            }
            15 | 16 => self.put("0"),
            17..=24 => {
                let n = 1 + self.rng.below(6);
                self.digits(n);
                self.put(".");
                let n = 1 + self.rng.below(20);
                self.digits(n);
            }
            25..=29 => {
                let n = 1 + self.rng.below(4);
                self.digits(n);
                let e = self.rng.pick(&["e", "E", "e+", "e-", "E-"]);
                self.put(e);
                let exp = self.rng.below(400).to_string();
                self.put(&exp);
            }
            30..=32 => {
                // Around f64::MAX (1.7976931348623157e308), where a
                // correctly rounded parse and serde_json's own differ.
                let s = self.rng.pick(&[
                    "1.797693134862315",
                    "1.7976931348623",
                    "17976931348623157",
                    "179769313486231",
                    "1.79769313486231",
                ]);
                self.put(s);
                let n = self.rng.below(8);
                for _ in 0..n {
                    let d = self.rng.below(10) as u8;
                    self.out.push(b'0' + d);
                }
                let integer_digits = s.find('.').unwrap_or(s.len() + n) as i32;
                let exp = 309 - integer_digits + self.rng.below(3) as i32 - 1;
                self.put(if s.contains('.') { "e" } else { "E+" });
                self.put(&exp.to_string());
            }
            36 => {
                // Hundreds of digits: the length alone may overflow.
                let n = 295 + self.rng.below(20);
                self.digits(n);
                if self.rng.one_in(2) {
                    self.put(".");
                    let n = 1 + self.rng.below(20);
                    self.digits(n);
                }
            }
            37 | 38 => {
                let s =
                    self.rng
                        .pick(&["4.9e-324", "2.4703282292062327e-324", "1e-400", "0e99999"]);
                self.put(s);
            }
            _ => {
                let s = self.rng.pick(&[
                    "01", "1.", ".5", "1e", "+1", "1e+", "0x1", "1.e5", "-", "Infinity", "NaN",
                    "1_0",
                ]);
                self.put(s);
            }
        }
    }

    fn string(&mut self) {
        const PARTS: &[&str] = &[
            "a",
            "lead",
            "Zoë",
            "日本",
            "🚀",
            " ",
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            "\\n",
            "\\t",
            "\\\"",
            "\\\\",
            "\\/",
            "\\b",
            "\\f",
            "\\r",
            "\\u00e9",
            "\\u0041",
            "\\u0000",
            "\\uFFFF",
            "\\ud83d\\ude80",
            "\\uD83D\\uDE80",
        ];
        const BAD: &[&[u8]] = &[
            b"\\ud83d",
            b"\\ude80",
            b"\\ud83d\\u0041",
            b"\\ude80\\ud83d",
            b"\\ud83d\\ud83d",
            b"\\ud83d\\n",
            b"\\q",
            b"\\u12",
            b"\\uZZZZ",
            b"\\x41",
            b"\\",
            b"\x01",
            b"\x1f",
            b"\n",
            b"\t",
            b"\x7f",
            b"\xff",
            b"\xc3",
            b"\xc0\xaf",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xe6\x97",
        ];
        self.put("\"");
        let n = self.rng.below(8);
        for _ in 0..n {
            match self.rng.below(400) {
                0 => {
                    let bad = self.rng.pick(BAD);
                    self.out.extend_from_slice(bad);
                }
                1..=35 => {
                    // A plain run across a 16-byte chunk of the SIMD loop.
                    let n = 8 + self.rng.below(30);
                    for _ in 0..n {
                        let c = b'a' + self.rng.below(26) as u8;
                        self.out.push(c);
                    }
                }
                _ => {
                    let part = self.rng.pick(PARTS);
                    self.put(part);
                }
            }
        }
        self.put("\"");
    }
}

/// Damages a page: the mutations a broken server, proxy or cable makes,
/// and a few that make valid pages the generator does not.
fn mutate(rng: &mut Rng, body: &mut Vec<u8>) {
    const PIECES: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"\"",
        b" ",
        b"\\",
        b"0",
        b"e",
        b"-",
        b".",
        b"\"leads\":[],",
        b"\"leads\":[{}],",
        b"\"has_more\":true,",
        b"\"has_more\":null,",
        b"\"next_page\":\"x\",",
        b"\"next_page\":null,",
        b"\"created_at\":1,",
        b"\\ud83d",
        b"\\ude80",
        b"\xff",
        b"\xed\xa0\x80",
        b"1e308",
        b"1e309",
        b"[[[[",
        b"]]]]",
    ];
    let len = body.len();
    let at = rng.below(len + 1);
    match rng.below(8) {
        0 if len > 0 => {
            let at = rng.below(len);
            body[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = rng.below(len);
            body[at] = if rng.one_in(2) {
                rng.pick(PIECES).first().copied().unwrap_or(b' ')
            } else {
                rng.next() as u8
            };
        }
        2 => body.truncate(at),
        3 => {
            let end = (at + 1 + rng.below(8)).min(len);
            body.drain(at..end);
        }
        4 => {
            // A splice: a stretch of the page copied elsewhere.
            let from = rng.below(len + 1);
            let to = (from + rng.below(40)).min(len);
            let stretch = body[from..to].to_vec();
            body.splice(at..at, stretch);
        }
        5 => {
            // More nesting: a stretch wrapped in brackets.
            let end = (at + rng.below(40)).min(len);
            body.insert(end, b']');
            body.insert(at, b'[');
        }
        6 => {
            // A member right after the first `{`: often a duplicate key.
            let open = body.iter().position(|&b| b == b'{').map_or(0, |i| i + 1);
            let piece = rng.pick(PIECES);
            body.splice(open..open, piece.iter().copied());
        }
        _ => {
            let piece = rng.pick(PIECES);
            body.splice(at..at, piece.iter().copied());
        }
    }
}

/// The page of case `seed`: a generated page, damaged in one case of three.
fn case(seed: u64) -> Vec<u8> {
    let mut g = Gen {
        rng: Rng(seed),
        out: Vec::new(),
    };
    g.page();
    let mut body = g.out;
    if g.rng.one_in(3) {
        for _ in 0..1 + g.rng.below(3) {
            mutate(&mut g.rng, &mut body);
        }
    }
    body
}

// ---------------------------------------------------------------------------
// Shrinking and the regressions folder.

/// A smaller page on which they still disagree: bytes dropped, in halving
/// stretches, while the disagreement stays.
fn shrink(mut body: Vec<u8>) -> Vec<u8> {
    let mut stretch = body.len() / 2;
    while stretch > 0 {
        let mut dropped = false;
        let mut at = 0;
        while at + stretch <= body.len() {
            let mut smaller = body.clone();
            smaller.drain(at..at + stretch);
            if disagreement(&smaller).is_some() {
                body = smaller;
                dropped = true;
            } else {
                at += stretch;
            }
        }
        if !dropped {
            stretch /= 2;
        }
    }
    body
}

fn regressions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/page/regressions")
}

/// Saves a page they disagree on; returns where.
fn keep(body: &[u8]) -> PathBuf {
    // FNV-1a: a stable name, so the same page is not kept twice.
    let hash = body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let path = regressions_dir().join(format!("{hash:016x}.json"));
    let saved =
        std::fs::create_dir_all(regressions_dir()).and_then(|()| std::fs::write(&path, body));
    if let Err(e) = saved {
        eprintln!("could not save {}: {e}", path.display());
    }
    path
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
    )
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn regressions_agree() {
    let mut failures = Vec::new();
    let mut count = 0;
    for entry in std::fs::read_dir(regressions_dir()).expect("src/page/regressions") {
        let path = entry.expect("a directory entry").path();
        let body = std::fs::read(&path).expect("a regression page");
        count += 1;
        if let Some(why) = disagreement(&body) {
            failures.push(format!("{}: {why}", path.display()));
        }
    }
    assert!(count > 0, "no regression pages found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn agrees_with_serde_json_on_generated_pages() {
    let first = env_number("PAGE_FUZZ_SEED").unwrap_or(1);
    let budget = env_number("PAGE_FUZZ_SECONDS").map(Duration::from_secs);
    let started = Instant::now();
    let (mut cases, mut readable) = (0_u64, 0_u64);
    for seed in first.. {
        let done = match budget {
            Some(budget) => started.elapsed() >= budget,
            None => cases >= CI_CASES,
        };
        if done {
            break;
        }
        let body = case(seed);
        if let Some(why) = disagreement(&body) {
            let small = shrink(body);
            let why_small = disagreement(&small).unwrap_or(why);
            panic!(
                "case {seed} (PAGE_FUZZ_SEED={seed}): {why_small}\npage: {}\nkept as {}: commit \
                 it with the fix",
                String::from_utf8_lossy(&small).escape_debug(),
                keep(&small).display()
            );
        }
        cases += 1;
        readable += matches!(serde_json_reading(&body), Verdict::Page(_)) as u64;
    }
    eprintln!(
        "page::differential: {cases} cases from seed {first} ({readable} readable pages) in {:.1} \
         s",
        started.elapsed().as_secs_f64()
    );
    // A generator that makes only broken pages would test little.
    assert!(
        readable * 4 > cases,
        "only {readable} of {cases} generated pages were readable"
    );
}

/// The reference itself, on pages whose reading is known: a wrong
/// reference would make the comparison above prove nothing.
#[test]
fn the_reference_reads_pages_as_serde_json_does() {
    let body = br#"{"leads":[{"created_at":"a","created_at":"b"} , {}],"next_page":"x"}"#;
    let Verdict::Page(reading) = serde_json_reading(body) else {
        panic!("a readable page refused");
    };
    assert!(reading.has_more);
    assert_eq!(reading.records.len(), 2);
    assert_eq!(
        &body[reading.records[0].json.clone()],
        br#"{"created_at":"a","created_at":"b"}"#
    );
    assert_eq!(&body[reading.records[1].json.clone()], b"{}");
    assert_eq!(
        reading.records[0].field.clone().map(|f| &body[f]),
        Some(&b"\"b\""[..])
    );
    assert!(matches!(serde_json_reading(b"[]"), Verdict::Refused(_)));
    assert!(matches!(
        serde_json_reading(br#"{"leads":[1]}"#),
        Verdict::Refused(_)
    ));
    assert!(matches!(
        serde_json_reading(br#"{"leads":[],"leads":[]}"#),
        Verdict::Refused(_)
    ));
    assert!(matches!(
        serde_json_reading(br#"{"leads":[],"has_more":"no"}"#),
        Verdict::Refused(_)
    ));
    assert!(matches!(
        serde_json_reading(br#"{"leads":["\ud83d"]}"#),
        Verdict::Invalid(_)
    ));
    assert!(matches!(
        serde_json_reading(br#"{"leads":[],"x":1e309}"#),
        Verdict::Invalid(_)
    ));
    assert!(only_layout_dropped(
        b"{ \"a b\" :\r\n[1 ,\t\"\\\" \"] }",
        b"{\"a b\":[1,\"\\\" \"]}"
    ));
    assert!(!only_layout_dropped(b"{\"a b\":1}", b"{\"ab\":1}"));
    assert!(!only_layout_dropped(b"{ \"a\" : 1 }", b"{\"a\": 1}"));
}
