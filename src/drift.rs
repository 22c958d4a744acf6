//! Drift: a record's top-level field that its stream's schema does not
//! declare, or whose JSON type the schema does not allow. PersistIq
//! publishes no changelog, and a typed destination drops an undeclared
//! column without a word, so the first sight of each is said out loud
//! (`read`) or listed (`doctor`).
//!
//! Checking every member of every record would cost a share of a sync's
//! CPU; instead the page scanner folds each record's keys and value types
//! into a `shape` (`fold_shape`), and only a shape not seen before in the
//! stream is checked member by member.

use crate::streams::StreamDef;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// JSON types as bits, so that a schema's allowed types are one mask.
pub const NULL: u8 = 1;
pub const BOOLEAN: u8 = 2;
pub const INTEGER: u8 = 4;
/// A number with a fraction or an exponent.
pub const NUMBER: u8 = 8;
pub const STRING: u8 = 16;
pub const ARRAY: u8 = 32;
pub const OBJECT: u8 = 64;
const ANY: u8 = 127;

/// Shapes a stream remembers before it starts over: a stream whose records
/// all differ must not grow memory with the list.
const MAX_SHAPES: usize = 4096;

/// The JSON type of a value's text (valid JSON, as the scanner checked it).
#[inline(always)]
pub fn kind_of(value: &[u8]) -> u8 {
    match value.first() {
        Some(b'n') => NULL,
        Some(b't' | b'f') => BOOLEAN,
        Some(b'"') => STRING,
        Some(b'[') => ARRAY,
        Some(b'{') => OBJECT,
        _ if value.iter().any(|c| matches!(c, b'.' | b'e' | b'E')) => NUMBER,
        _ => INTEGER,
    }
}

/// `shape` with one more member (its key's raw text, a slice of `body`,
/// and its value's text) folded in: records with the same keys in the
/// same order, each of the same JSON type, share a shape once `seal`ed.
///
/// It runs for every member of every record, so it is a handful of
/// instructions: a load or two of the key's bytes, a rotate and xors; the
/// multiply that spreads the bits is `seal`'s, once a record.
#[inline(always)]
pub fn fold_shape(shape: u64, body: &[u8], key: &[u8], value: &[u8]) -> u64 {
    let word = |bytes: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[..8]);
        u64::from_le_bytes(w)
    };
    let n = key.len();
    let h = shape.rotate_left(7) ^ u64::from(kind_of(value)) ^ (n as u64) << 8;
    if n > 8 {
        // The first and last words (overlapping under 16 bytes), and any
        // between them: every byte counts.
        let mut h = h ^ word(key).rotate_left(17);
        let mut at = 8;
        while at + 8 < n {
            h = h.rotate_left(7) ^ word(&key[at..]);
            at += 8;
        }
        return h ^ word(&key[n - 8..]).rotate_left(41);
    }
    // A key of 8 bytes or fewer: one load from the body (the key's closing
    // quote and more follow it), its bytes kept by a mask.
    let start = (key.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    let mask = match n {
        0 => 0,
        _ => u64::MAX >> (64 - 8 * n),
    };
    let w = match body.get(start..start.saturating_add(8)) {
        Some(bytes) => word(bytes) & mask,
        None => key.iter().rev().fold(0u64, |w, b| w << 8 | u64::from(*b)),
    };
    h ^ w.rotate_left(17)
}

/// A record's folded members as its shape: the bits spread, so that a
/// set of shapes hashes well.
#[inline(always)]
pub fn seal(shape: u64) -> u64 {
    let x = shape.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 29)
}

/// The names of the types in `mask`, as the schema spells them.
pub fn kinds(mask: u8) -> String {
    let names = [
        (NULL, "null"),
        (BOOLEAN, "boolean"),
        (INTEGER, "integer"),
        (NUMBER, "number"),
        (STRING, "string"),
        (ARRAY, "array"),
        (OBJECT, "object"),
    ];
    let mut out: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| mask & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    // A schema's "number" takes integers too: say it once.
    if mask & (INTEGER | NUMBER) == INTEGER | NUMBER {
        out.retain(|n| *n != "integer");
    }
    out.join(", ")
}

/// One drift of one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    pub field: String,
    /// The JSON type the record holds.
    pub found: u8,
    /// What the schema allows; `None`: the schema does not declare it.
    pub allowed: Option<u8>,
}

impl Drift {
    /// "`x` (string) is not declared in the schema" or "`x` is string,
    /// which the schema does not allow (it allows null, integer)".
    pub fn describe(&self) -> String {
        match self.allowed {
            None => format!(
                "`{}` ({}) is not declared in the schema",
                self.field,
                kinds(self.found)
            ),
            Some(allowed) => format!(
                "`{}` is {}, which the schema does not allow (it allows {})",
                self.field,
                kinds(self.found),
                kinds(allowed)
            ),
        }
    }

    /// What a destination may do with it, for a warning.
    pub fn consequence(&self) -> &'static str {
        match self.allowed {
            None => {
                "it reaches the destination inside each record, but a typed destination \
                 (Postgres, BigQuery, Snowflake, ...) drops columns the schema does not declare \
                 without a word"
            }
            Some(_) => {
                "a typed destination may fail to type the column, or write it as null, for \
                 these records"
            }
        }
    }
}

/// A stream schema's top-level properties and the JSON types each allows.
#[derive(Debug, Default)]
pub struct Schema {
    fields: Vec<(String, u8)>,
}

impl Schema {
    /// The properties of a JSON schema text (one compiled in); a property
    /// without `type` allows any.
    pub fn of(text: &str) -> Schema {
        let schema: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let Some(properties) = schema["properties"].as_object() else {
            return Schema::default();
        };
        let mask = |name: &str| match name {
            "null" => NULL,
            "boolean" => BOOLEAN,
            "integer" => INTEGER,
            "number" => INTEGER | NUMBER,
            "string" => STRING,
            "array" => ARRAY,
            "object" => OBJECT,
            _ => 0,
        };
        let fields = properties
            .iter()
            .map(|(name, p)| {
                let allowed = match &p["type"] {
                    serde_json::Value::String(t) => mask(t),
                    serde_json::Value::Array(ts) => ts
                        .iter()
                        .filter_map(|t| t.as_str())
                        .fold(0, |m, t| m | mask(t)),
                    _ => ANY,
                };
                (name.clone(), allowed)
            })
            .collect();
        Schema { fields }
    }

    /// Every drift in one record (a JSON object), in the record's order;
    /// a field named twice counts once, as its last value (as serde_json
    /// reads it).
    pub fn check(&self, record: &[u8]) -> Vec<Drift> {
        let members = crate::page::members(record);
        let mut found: Vec<Drift> = Vec::new();
        for (i, (field, value)) in members.iter().enumerate() {
            if members[i + 1..].iter().any(|(later, _)| later == field) {
                continue;
            }
            let mut kind = kind_of(value);
            // JSON Schema counts 2.0 as an integer.
            if kind == NUMBER && whole(value) {
                kind = INTEGER;
            }
            let allowed = self.fields.iter().find(|(n, _)| n == field).map(|f| f.1);
            if allowed.is_none_or(|a| a & kind == 0) {
                found.push(Drift {
                    field: field.to_string(),
                    found: kind,
                    allowed,
                });
            }
        }
        found
    }
}

/// Whether a number's text without an exponent has only zeros after its
/// point (`2.0`); with an exponent it is taken as not whole, which may
/// call `1e2` a number where the schema wants an integer: PersistIq
/// writes no exponents.
fn whole(number: &[u8]) -> bool {
    match number.iter().position(|c| *c == b'.') {
        Some(dot) => number[dot + 1..].iter().all(|c| *c == b'0'),
        None => false,
    }
}

/// A hasher for keys that are hashes already (shapes).
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One stream's drift during a sync: which shapes were checked and which
/// fields were reported, so that each field is said once.
pub struct Watch {
    schema: Schema,
    known: HashSet<u64, BuildHasherDefault<Identity>>,
    /// The shape of the record before: most records share their
    /// neighbour's shape, and a compare is cheaper than a lookup.
    last: Option<u64>,
    reported: HashSet<String>,
}

impl Watch {
    /// A stream's watch, from its compiled-in schema.
    pub fn new(def: &StreamDef) -> Watch {
        Watch {
            schema: Schema::of(def.schema),
            known: HashSet::default(),
            last: None,
            reported: HashSet::new(),
        }
    }

    /// The drifts of a record (its shape and text) not reported before.
    #[inline(always)]
    pub fn see(&mut self, shape: u64, record: &[u8]) -> Vec<Drift> {
        if self.last == Some(shape) {
            return Vec::new();
        }
        self.last = Some(shape);
        if self.known.contains(&shape) {
            return Vec::new();
        }
        self.new_shape(shape, record)
    }

    /// A shape not seen before: its record checked member by member.
    #[cold]
    #[inline(never)]
    fn new_shape(&mut self, shape: u64, record: &[u8]) -> Vec<Drift> {
        if self.known.len() >= MAX_SHAPES {
            self.known.clear();
        }
        self.known.insert(shape);
        let mut fresh = self.schema.check(record);
        fresh.retain(|d| self.reported.insert(d.field.clone()));
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(record: &str) -> u64 {
        let body = format!(r#"{{"x":[{record}]}}"#);
        let layout = crate::page::scan(body.as_bytes(), "x", None).unwrap();
        layout.page(body.as_bytes()).records[0].shape
    }

    #[test]
    fn shapes_differ_by_key_type_and_order_only() {
        let a = shape(r#"{"id":"a","n":1,"owner_id":null}"#);
        assert_eq!(a, shape(r#"{"id":"b","n":22,"owner_id":null}"#));
        assert_eq!(a, shape("{ \"id\" : \"c\",\n\"n\":3, \"owner_id\":null }"));
        assert_ne!(a, shape(r#"{"id":"a","n":1.5,"owner_id":null}"#));
        assert_ne!(a, shape(r#"{"id":"a","n":1,"owner_id":"u"}"#));
        assert_ne!(a, shape(r#"{"id":"a","m":1,"owner_id":null}"#));
        assert_ne!(a, shape(r#"{"n":1,"id":"a","owner_id":null}"#));
        assert_ne!(a, shape(r#"{"id":"a","n":1,"owner_id":null,"x":1}"#));
        assert_ne!(
            shape(r#"{"created_at_long_name":1}"#),
            shape(r#"{"created_at_long_namf":1}"#)
        );
    }

    #[test]
    fn a_short_key_folds_alike_from_the_body_and_at_its_end() {
        let body = br#"{"ab":1}"#;
        let (key, value) = (&body[2..4], &body[6..7]);
        let in_body = fold_shape(0, body, key, value);
        assert_eq!(in_body, fold_shape(0, &body[..5], &body[2..4], value));
        assert_ne!(
            in_body,
            fold_shape(0, br#"{"ac":1}"#, &br#"{"ac":1}"#[2..4], value)
        );
    }

    #[test]
    fn a_schema_finds_undeclared_fields_and_types_it_does_not_allow() {
        let schema = Schema::of(
            r#"{"properties":{"id":{"type":"string"},"n":{"type":["null","integer"]},
                "f":{"type":"number"},"any":{}}}"#,
        );
        let ok = r#"{"id":"a","n":null,"f":1,"any":[1]}"#;
        assert!(schema.check(ok.as_bytes()).is_empty());
        assert!(schema.check(br#"{"n":2.0,"f":1.5}"#).is_empty());
        let drifted = schema.check(br#"{"id":"a","n":"7","extra":{"a":1},"n\u0020x":[]}"#);
        assert_eq!(
            drifted.iter().map(Drift::describe).collect::<Vec<_>>(),
            [
                "`n` is string, which the schema does not allow (it allows null, integer)",
                "`extra` (object) is not declared in the schema",
                "`n x` (array) is not declared in the schema",
            ]
        );
        // A field named twice: its last value.
        assert!(schema.check(br#"{"n":"x","n":1}"#).is_empty());
        assert_eq!(kinds(INTEGER | NUMBER | NULL), "null, number");
    }

    #[test]
    fn a_watch_reports_each_field_once() {
        let mut watch = Watch {
            schema: Schema::of(r#"{"properties":{"id":{"type":"string"}}}"#),
            known: HashSet::default(),
            last: None,
            reported: HashSet::new(),
        };
        let r1 = r#"{"id":"a","new":1}"#;
        let r2 = r#"{"id":"a","new":"x","other":true}"#;
        assert_eq!(watch.see(shape(r1), r1.as_bytes()).len(), 1);
        assert!(watch.see(shape(r1), r1.as_bytes()).is_empty());
        let again = watch.see(shape(r2), r2.as_bytes());
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(again[0].field, "other");
    }
}
