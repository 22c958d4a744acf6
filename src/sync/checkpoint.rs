//! A stream's state: what it holds, parsed and written here and nowhere
//! else. The shapes every release of this source wrote are all read: a
//! state is a contract with each of them, and with the shell scripts that
//! hand one back.
//!
//! A complete incremental sync leaves its cursor, `{"created_at": "<t>"}`;
//! an interrupted one also where it stopped, under `resume`; an
//! interrupted full read only where it stopped, under `full_refresh`:
//!
//! ```text
//! {"sent_at": "<t>", "resume": {"cursor": "<t>", "done": ["c_1"],
//!   "page": 3, "parent": "c_2", "pending": [{"page": 2, "parent": "c_9"}],
//!   "started": "<t>"}}
//! {"full_refresh": {"last": "l_8fK2aQ", "page": 5}}
//! ```
//!
//! Older shapes, each still resumed (tests/fixtures/state has one of each):
//! before `done` (da27300) a stream read per parent named only the parent
//! it stopped in; before `last` (45968cd) a full-refresh checkpoint named
//! only its page; before `pending` a checkpoint named one begun parent.

use crate::streams::{Cursor, StreamDef};
use crate::time::Stamp;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The highest page number a state may ask to resume at: 100 million
/// records at PersistIq's page sizes, far past any real account, and far
/// from where `page + 1` could overflow.
pub const MAX_PAGE: u64 = 1_000_000;

/// Where an interrupted incremental sync stopped.
const RESUME: &str = "resume";
/// Where an interrupted full read stopped. Not `resume`: neither mode may
/// go on from the other's pages (an incremental read's are of a filtered
/// list).
const FULL_REFRESH: &str = "full_refresh";
/// A full read of a resumable stream completed: the protocol's marker.
const FULL_REFRESH_COMPLETE: &str = "__ab_full_refresh_sync_complete";
/// A stream that cannot resume completed: the protocol's marker.
const NO_CURSOR: &str = "__ab_no_cursor_state_message";

/// Where a read stands in one list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct At {
    /// Full: the list is being read a second time from page 1, as a
    /// resume check failed, and an interrupted attempt had written its
    /// pages up to this one: their records come a second time, counted.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_page"
    )]
    pub again: Option<u64>,
    /// For a full read, the id of the last record written on `page` (a
    /// numeric id as its JSON text): found there again, no record the
    /// interrupted run had not written can have moved before the page.
    /// `None` when the page held no record with an id: then the page
    /// proves nothing, and a resume reads the list from page 1.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "last"
    )]
    pub last: Option<String>,
    /// Incremental: the next page to read. Full: the last page written,
    /// read again on resume.
    #[serde(deserialize_with = "page")]
    pub page: u64,
    /// The parent record's id, for a stream read per parent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "parent"
    )]
    pub parent: Option<String>,
}

/// Where an interrupted sync of a stream stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// The lists begun and not finished, the one being read first. A
    /// stream with no parent has at most one; a stream read per parent,
    /// one for each parent an attempt stopped in, until it is read.
    pub at: Vec<At>,
    /// For a stream read per parent: the parents read to their end.
    /// `None` in a state of a release that did not keep them (then every
    /// parent is read).
    pub done: Option<BTreeSet<String>>,
    /// The parents an earlier release read are not all in `done` (its
    /// state had none): the parents read again come a second time.
    pub unrecorded: bool,
    /// Incremental: the greatest cursor value seen so far.
    pub cursor: Option<Stamp>,
    /// Incremental, with a record-field cursor: when the sync's first
    /// attempt started, less the margin; the cursor never moves past it.
    pub started: Option<Stamp>,
    /// Incremental: a page came back empty though more followed and was
    /// taken as it is, so the cursor must not move past what it hid.
    pub empty: bool,
}

/// A stream's saved state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    /// Incremental: the cursor of the last complete sync.
    pub cursor: Option<Stamp>,
    /// An interrupted incremental sync.
    pub incremental: Option<Position>,
    /// An interrupted full read.
    pub full: Option<Position>,
}

/// What a stream's state is written as at one point of a sync.
pub enum Write<'a> {
    /// An incremental sync in progress: the cursor it started from, and
    /// where it is.
    Incremental(&'static str, Option<&'a Stamp>, &'a Position),
    /// A full read in progress.
    Full(&'a Position),
    /// An incremental sync completed: its new cursor.
    Cursor(&'static str, Option<&'a Stamp>),
    /// A resumable full read completed.
    FullComplete,
    /// A stream that cannot resume completed.
    NoCursor,
}

impl Write<'_> {
    /// The `stream_state` of a STATE message.
    pub fn to_value(&self) -> Value {
        let mut state = Map::new();
        match self {
            Write::Incremental(key, since, position) => {
                state.insert(key.to_string(), stamp_value(*since));
                state.insert(RESUME.into(), position.to_value(true));
            }
            Write::Full(position) => {
                state.insert(FULL_REFRESH.into(), position.to_value(false));
            }
            Write::Cursor(key, cursor) => {
                state.insert(key.to_string(), stamp_value(*cursor));
            }
            Write::FullComplete => {
                state.insert(FULL_REFRESH_COMPLETE.into(), Value::Bool(true));
            }
            Write::NoCursor => {
                state.insert(NO_CURSOR.into(), Value::Bool(true));
            }
        }
        Value::Object(state)
    }
}

fn stamp_value(stamp: Option<&Stamp>) -> Value {
    stamp.map_or(Value::Null, |s| Value::String(s.text.clone()))
}

/// A position as written: keys in this order, which is also the order a
/// serde_json map keeps them in (the order earlier releases wrote).
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repr {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_page"
    )]
    again: Option<u64>,
    /// Always written by an incremental read, null before any record.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_stamp",
        deserialize_with = "cursor"
    )]
    cursor: Option<Option<Stamp>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "done"
    )]
    done: Option<BTreeSet<String>>,
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        deserialize_with = "empty"
    )]
    empty: bool,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "last"
    )]
    last: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_page"
    )]
    page: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "parent"
    )]
    parent: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<At>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "stamp",
        deserialize_with = "started"
    )]
    started: Option<Stamp>,
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        deserialize_with = "unrecorded"
    )]
    unrecorded: bool,
}

impl Position {
    /// The position as a state writes it; `incremental` writes `cursor`
    /// even before there is one.
    fn to_value(&self, incremental: bool) -> Value {
        let first = self.at.first();
        let repr = Repr {
            again: first.and_then(|a| a.again),
            cursor: incremental.then(|| self.cursor.clone()),
            done: self.done.clone(),
            empty: self.empty,
            last: first.and_then(|a| a.last.clone()),
            page: first.map(|a| a.page),
            parent: first.and_then(|a| a.parent.clone()),
            pending: self.at.iter().skip(1).cloned().collect(),
            started: self.started.clone(),
            unrecorded: self.unrecorded,
        };
        serde_json::to_value(repr).unwrap_or(Value::Null)
    }

    /// A position read from a state; `per_parent` for a stream read per
    /// parent. The error names the key that is wrong.
    fn parse(value: &Value, per_parent: bool, key: &str) -> Result<Position, String> {
        if !value.is_object() {
            return Err(format!("`{key}` must be an object"));
        }
        let repr = Repr::deserialize(value).map_err(|e| {
            // The messages of this module start with the key inside
            // `key`; serde's own, with what is wrong.
            let e = e.to_string();
            match e.strip_prefix('`') {
                Some(rest) => format!("`{key}.{rest}"),
                None => format!("`{key}`: {e}"),
            }
        })?;
        let mut at = Vec::new();
        match (repr.page, repr.parent) {
            (Some(page), parent) if parent.is_some() == per_parent => at.push(At {
                again: repr.again,
                last: repr.last,
                page,
                parent,
            }),
            // Between two parents: no list begun.
            (None, None) if per_parent => {}
            (_, Some(_)) if !per_parent => {
                return Err(format!(
                    "`{key}.parent` is only for a stream read per parent"
                ))
            }
            (None, None) => return Err(format!("`{key}.page` is missing")),
            (None, Some(_)) => return Err(format!("`{key}.page` is missing beside `parent`")),
            (Some(_), _) => return Err(format!("`{key}.parent` is missing beside `page`")),
        }
        if !repr.pending.is_empty() && !per_parent {
            return Err(format!(
                "`{key}.pending` is only for a stream read per parent"
            ));
        }
        for pending in repr.pending {
            let Some(parent) = &pending.parent else {
                return Err(format!("`{key}.pending.parent` is missing"));
            };
            if at.iter().any(|a| a.parent.as_ref() == Some(parent)) {
                return Err(format!("`{key}.pending` names parent {parent:?} twice"));
            }
            at.push(pending);
        }
        if let Some(done) = &repr.done {
            // This source never writes one: a resume would skip the
            // parent it stopped in.
            if let Some(a) = at
                .iter()
                .find(|a| a.parent.as_ref().is_some_and(|p| done.contains(p)))
            {
                let parent = a.parent.as_deref().unwrap_or_default();
                return Err(format!("`{key}.parent` {parent:?} is also in `{key}.done`"));
            }
        }
        Ok(Position {
            at,
            done: repr.done.filter(|_| per_parent),
            unrecorded: repr.unrecorded,
            cursor: repr.cursor.flatten(),
            started: repr.started,
            empty: repr.empty,
        })
    }
}

impl Saved {
    /// The state of `def`, as a state file gave it; the error names the
    /// key that is wrong (the caller names the stream).
    pub fn parse(def: &StreamDef, value: &Value) -> Result<Saved, String> {
        let map = match value {
            Value::Null => return Ok(Saved::default()),
            Value::Object(map) => map,
            _ => return Err("it must be a JSON object".into()),
        };
        let per_parent = def.parent.is_some();
        let cursor_key = def.incremental.map(|i| i.cursor.state_key());
        let mut saved = Saved::default();
        for (key, value) in map {
            let position = || match value {
                Value::Null => Ok(None),
                v => Position::parse(v, per_parent, key).map(Some),
            };
            match key.as_str() {
                RESUME => saved.incremental = position()?,
                FULL_REFRESH => saved.full = position()?,
                FULL_REFRESH_COMPLETE | NO_CURSOR => {}
                k if Some(k) == cursor_key => {
                    saved.cursor = time(value).map_err(|e| format!("`{key}` must be {e}"))?;
                }
                _ => {
                    let known = [RESUME, FULL_REFRESH, FULL_REFRESH_COMPLETE, NO_CURSOR];
                    let known = known.into_iter().chain(cursor_key);
                    let near = crate::cli::closest(key, known)
                        .map(|k| format!(" (did you mean `{k}`?)"))
                        .unwrap_or_default();
                    return Err(format!("`{key}` is not a key of its state{near}"));
                }
            }
        }
        Ok(saved)
    }
}

/// A time from a state: an ISO-8601 string, or null.
fn time(value: &Value) -> Result<Option<Stamp>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Stamp::parse(s)
            .map(Some)
            .ok_or_else(|| format!("an ISO-8601 time, found {:?}", crate::secret::mask(s))),
        other => Err(format!(
            "an ISO-8601 time, found {}",
            crate::input::json_kind(other)
        )),
    }
}

/// A value of `key`, checked by `valid`; `what` says what it must be.
fn checked<'de, D, T>(
    d: D,
    key: &str,
    what: &str,
    valid: impl FnOnce(&Value) -> Option<T>,
) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
{
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => valid(&v).map(Some).ok_or_else(|| {
            D::Error::custom(format!(
                "`{key}` must be {what}, found {}",
                crate::input::json_kind(&v)
            ))
        }),
    }
}

fn id(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

fn page_number(v: &Value) -> Option<u64> {
    v.as_u64().filter(|p| (1..=MAX_PAGE).contains(p))
}

const PAGE_RANGE: &str = "a page number from 1 to 1000000";

fn page<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    checked(d, "page", PAGE_RANGE, page_number)?
        .ok_or_else(|| D::Error::custom(format!("`page` must be {PAGE_RANGE}, found null")))
}

fn opt_page<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    checked(d, "page", PAGE_RANGE, page_number)
}

fn parent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, "parent", "the id of a parent record", id)
}

fn last<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, "last", "a record id", id)
}

fn done<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeSet<String>>, D::Error> {
    checked(d, "done", "an array of parent ids (strings)", |v| {
        v.as_array()?.iter().map(id).collect()
    })
}

fn empty<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(checked(d, "empty", "true or false", Value::as_bool)?.unwrap_or(false))
}

fn unrecorded<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(checked(d, "unrecorded", "true or false", Value::as_bool)?.unwrap_or(false))
}

fn cursor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Stamp>>, D::Error> {
    let v = Value::deserialize(d)?;
    time(&v)
        .map(Some)
        .map_err(|e| D::Error::custom(format!("`cursor` must be {e}")))
}

fn started<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Stamp>, D::Error> {
    let v = Value::deserialize(d)?;
    time(&v).map_err(|e| D::Error::custom(format!("`started` must be {e}")))
}

fn stamp<S: Serializer>(stamp: &Option<Stamp>, s: S) -> Result<S::Ok, S::Error> {
    stamp_value(stamp.as_ref()).serialize(s)
}

fn some_stamp<S: Serializer>(stamp: &Option<Option<Stamp>>, s: S) -> Result<S::Ok, S::Error> {
    stamp_value(stamp.as_ref().and_then(Option::as_ref)).serialize(s)
}

/// Whether a stream with this cursor keeps `started` in its checkpoints:
/// a sync-start cursor's `cursor` is that time already.
pub fn keeps_started(cursor: Cursor) -> bool {
    matches!(cursor, Cursor::Field(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::{self, Incremental};
    use serde_json::json;

    fn stamp(t: &str) -> Option<Stamp> {
        Stamp::parse(t)
    }

    /// Every position a sync can reach, for a stream with or without a
    /// parent: lists begun (none, one, several), with and without `last`,
    /// done parents, and the incremental fields.
    fn positions(per_parent: bool, incremental: bool) -> Vec<Position> {
        let mut all = Vec::new();
        let parent = |i: usize| per_parent.then(|| format!("c_{i}"));
        let at = |parent: Option<String>, page, last: Option<&str>, again| At {
            again,
            last: last.map(str::to_string),
            page,
            parent,
        };
        let begun: Vec<Vec<At>> = if per_parent {
            vec![
                vec![],
                vec![at(parent(1), 1, None, None)],
                vec![
                    at(parent(2), 7, Some("7"), Some(9)),
                    at(parent(3), MAX_PAGE, Some("l_\"x\""), None),
                    at(parent(4), 2, None, Some(3)),
                ],
            ]
        } else {
            vec![
                vec![at(None, 1, None, None)],
                vec![at(None, 5, Some("l_8fK2aQ"), Some(8))],
            ]
        };
        for at in begun {
            let dones: Vec<Option<BTreeSet<String>>> = if per_parent {
                vec![
                    Some(BTreeSet::new()),
                    Some(["c_9".to_string(), "c_10".into()].into()),
                ]
            } else {
                vec![None]
            };
            for done in dones {
                let unrecorded = done.as_ref().is_some_and(|d| !d.is_empty());
                let base = Position {
                    at: at.clone(),
                    done,
                    unrecorded,
                    ..Position::default()
                };
                if !incremental {
                    all.push(base);
                    continue;
                }
                for (cursor, started, empty) in [
                    (None, None, false),
                    (
                        stamp("2026-03-01T08:19:00.000Z"),
                        stamp("2026-12-01T00:00:00Z"),
                        true,
                    ),
                    (stamp("2026-03-01"), None, false),
                ] {
                    all.push(Position {
                        cursor,
                        started,
                        empty,
                        ..base.clone()
                    });
                }
            }
        }
        all
    }

    #[test]
    fn every_position_parses_back_to_itself() {
        let mut checked = 0;
        for def in streams::STREAMS.iter().filter(|d| d.is_resumable()) {
            let per_parent = def.parent.is_some();
            for position in positions(per_parent, false) {
                let state = Write::Full(&position).to_value();
                let saved = Saved::parse(def, &state).unwrap_or_else(|e| panic!("{state}: {e}"));
                assert_eq!(saved.full.as_ref(), Some(&position), "{state}");
                assert_eq!(saved.incremental, None);
                checked += 1;
            }
            let Some(Incremental { cursor, .. }) = def.incremental else {
                continue;
            };
            for since in [None, stamp("2026-01-01T00:00:00Z")] {
                for position in positions(per_parent, true) {
                    let key = cursor.state_key();
                    let state = Write::Incremental(key, since.as_ref(), &position).to_value();
                    let saved =
                        Saved::parse(def, &state).unwrap_or_else(|e| panic!("{state}: {e}"));
                    assert_eq!(saved.incremental.as_ref(), Some(&position), "{state}");
                    assert_eq!(saved.cursor, since, "{state}");
                    checked += 1;
                }
                let done = Write::Cursor(cursor.state_key(), since.as_ref()).to_value();
                assert_eq!(Saved::parse(def, &done).unwrap().cursor, since, "{done}");
            }
        }
        assert!(checked > 80, "{checked}");
        for end in [Write::FullComplete, Write::NoCursor] {
            let def = streams::find("users").unwrap();
            assert_eq!(
                Saved::parse(def, &end.to_value()).unwrap(),
                Saved::default()
            );
        }
    }

    #[test]
    fn the_shapes_of_earlier_releases_parse() {
        let leads = streams::find("leads").unwrap();
        let replies = streams::find("replies").unwrap();
        // b5ce9e4, before `started`; 45968cd, before `last`; da27300,
        // before `done`; 1f1a8cf, between two parents.
        let old = Saved::parse(leads, &json!({"updated_after": null, "resume": {"page": 3, "cursor": "2026-11-26T10:00:00Z"}})).unwrap();
        assert_eq!(old.incremental.unwrap().at[0].page, 3);
        let full = Saved::parse(leads, &json!({"full_refresh": {"page": 5}})).unwrap();
        assert_eq!(
            full.full.unwrap().at,
            [At {
                again: None,
                parent: None,
                page: 5,
                last: None
            }]
        );
        let no_done = json!({"sent_at": null, "resume": {"page": 2, "parent": "c_5", "cursor": null, "started": "2026-12-01T00:00:00Z"}});
        let no_done = Saved::parse(replies, &no_done)
            .unwrap()
            .incremental
            .unwrap();
        assert_eq!((no_done.done, no_done.at.len()), (None, 1));
        let between = json!({"sent_at": null, "resume": {"cursor": null, "done": ["c_1"]}});
        assert!(Saved::parse(replies, &between)
            .unwrap()
            .incremental
            .unwrap()
            .at
            .is_empty());
    }

    #[test]
    fn a_malformed_state_names_its_key() {
        let leads = streams::find("leads").unwrap();
        let replies = streams::find("replies").unwrap();
        for (def, state, says) in [
            (leads, json!([1]), "must be a JSON object"),
            (
                leads,
                json!({"full_refresh": 5}),
                "`full_refresh` must be an object",
            ),
            (
                leads,
                json!({"full_refresh": {"page": 0}}),
                "`full_refresh.page` must be",
            ),
            (
                leads,
                json!({"resume": {"page": 2, "cursor": 5}}),
                "`resume.cursor` must be",
            ),
            (
                leads,
                json!({"full_refresh": {"page": 2, "last": 7}}),
                "`full_refresh.last`",
            ),
            (
                leads,
                json!({"full_refresh": {"page": 2, "pgae": 3}}),
                "unknown field `pgae`",
            ),
            (
                leads,
                json!({"updated_afer": null}),
                "did you mean `updated_after`?",
            ),
            (
                leads,
                json!({"updated_after": "soon"}),
                "`updated_after` must be an ISO-8601",
            ),
            (
                leads,
                json!({"full_refresh": {"page": 2, "parent": "c"}}),
                "only for a stream read per parent",
            ),
            (
                replies,
                json!({"full_refresh": {"page": 2}}),
                "`full_refresh.parent` is missing",
            ),
            (
                replies,
                json!({"full_refresh": {"done": "c_1"}}),
                "`full_refresh.done` must be",
            ),
            (
                replies,
                json!({"resume": {"parent": "c_1", "page": 2, "done": ["c_1"]}}),
                "also in `resume.done`",
            ),
            (
                replies,
                json!({"resume": {"parent": "c_1", "page": 2, "pending": [{"parent": "c_1", "page": 3}]}}),
                "twice",
            ),
            (
                replies,
                json!({"resume": {"pending": [{"page": 3}]}}),
                "`resume.pending.parent` is missing",
            ),
        ] {
            let e = Saved::parse(def, &state).unwrap_err();
            assert!(e.contains(says), "{state}: {e}");
        }
    }
}
