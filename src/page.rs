//! One page of a PersistIq list, parsed once: the records stay slices of
//! the response body, so each RECORD line is a copy of the API's own bytes.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// A list page, borrowing its records from the body it was parsed from.
#[derive(Debug)]
pub struct Page<'a> {
    pub records: Vec<&'a RawValue>,
    /// The envelope's `has_more`; absent or null means this is the last page.
    pub has_more: bool,
}

/// Parses a list page whose records sit under `collection`.
///
/// The error says what is wrong in words fit for a log line.
pub fn parse<'a>(body: &'a [u8], collection: &str) -> Result<Page<'a>, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let page = PageSeed { collection }
        .deserialize(&mut de)
        .map_err(|e| format!("the body is not a PersistIq list envelope ({e})"))?;
    de.end()
        .map_err(|e| format!("the body has trailing data ({e})"))?;
    let records = page
        .records
        .ok_or_else(|| format!("the body has no `{collection}` array"))?;
    if let Some(i) = records.iter().position(|r| !r.get().starts_with('{')) {
        return Err(format!("`{collection}` item {i} is not a JSON object"));
    }
    Ok(Page {
        records,
        has_more: page.has_more.unwrap_or(false),
    })
}

struct Parsed<'a> {
    records: Option<Vec<&'a RawValue>>,
    has_more: Option<bool>,
}

struct PageSeed<'c> {
    collection: &'c str,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_> {
    type Value = Parsed<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Parsed<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_> {
    type Value = Parsed<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with a `{}` array", self.collection)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'de>, A::Error> {
        let mut parsed = Parsed {
            records: None,
            has_more: None,
        };
        while let Some(key) = map.next_key_seed(KeySeed(self.collection))? {
            match key {
                Key::Collection => parsed.records = Some(map.next_value()?),
                Key::HasMore => parsed.has_more = map.next_value()?,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(parsed)
    }
}

enum Key {
    Collection,
    HasMore,
    Other,
}

/// Sorts envelope keys without allocating (keys may arrive escaped).
struct KeySeed<'c>(&'c str);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(if key == self.0 {
            Key::Collection
        } else if key == "has_more" {
            Key::HasMore
        } else {
            Key::Other
        })
    }
}

/// The string value of the top-level field `name` of a record, if it has one.
pub fn string_field(record: &RawValue, name: &str) -> Option<String> {
    let mut de = serde_json::Deserializer::from_str(record.get());
    FieldSeed(name).deserialize(&mut de).ok().flatten()
}

/// Finds one field of an object, skipping the others without building them.
struct FieldSeed<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key_seed(KeySeed(self.0))? {
            match key {
                Key::Collection => found = map.next_value::<Option<String>>().unwrap_or(None),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
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
    fn fields_of_a_record() {
        let page = parse(br#"{"events":[{"id":"e","data":{"created_at":"inner"},"created_at":"2024-01-01T00:00:00Z"},{"created_at":5}]}"#, "events").unwrap();
        assert_eq!(
            string_field(page.records[0], "created_at").as_deref(),
            Some("2024-01-01T00:00:00Z")
        );
        assert_eq!(string_field(page.records[1], "created_at"), None);
        assert_eq!(string_field(page.records[0], "missing"), None);
    }

    #[test]
    fn page_envelope() {
        let body = br#"{"status":"success","errors":[],"has_more":true,"next_page":"x","le\u0061ds":[{"id":"l_1"} , {"id":"l_2"}]}"#;
        let page = parse(body, "leads").unwrap();
        assert!(page.has_more);
        assert_eq!(page.records.len(), 2);
        assert_eq!(page.records[1].get(), r#"{"id":"l_2"}"#);

        let last = parse(br#"{"users":[],"has_more":null}"#, "users").unwrap();
        assert!(!last.has_more);
        assert!(parse(b"<html>", "users").is_err());
        assert!(parse(br#"{"status":"error"}"#, "users")
            .unwrap_err()
            .contains("no `users`"));
        assert!(parse(br#"{"users":[1]}"#, "users").is_err());
        assert!(parse(br#"{"users":[]} x"#, "users").is_err());
        assert!(parse(br#"{"users":[],"has_more":"yes"}"#, "users").is_err());
    }
}
