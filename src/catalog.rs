//! The inputs of `read` besides the config: the configured catalog and the
//! state file. Both are parsed leniently (Airbyte adds fields over time) but
//! every field we rely on is checked before any request is made.

use crate::error::{Error, Result};
use crate::input::json_kind;
use crate::streams;
use serde_json::Value;

/// How the catalog asks for a stream to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    FullRefresh,
    Incremental,
}

/// One entry of the configured catalog.
#[derive(Clone, Debug)]
pub struct Selected {
    pub name: String,
    /// Echoed back exactly in every message of the stream.
    pub namespace: Option<String>,
    pub sync_mode: SyncMode,
}

/// The streams of a ConfiguredAirbyteCatalog, in catalog order.
pub fn parse_catalog(value: &Value) -> Result<Vec<Selected>> {
    if value.get("type").and_then(Value::as_str) == Some("CATALOG") {
        return Err(Error::config(
            "the catalog file holds discover's CATALOG message; read needs a configured catalog: \
             {\"streams\": [{\"stream\": {...}, \"sync_mode\": \"full_refresh\", \
             \"destination_sync_mode\": \"overwrite\"}]} (or use --streams)",
        ));
    }
    let streams = value
        .get("streams")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            Error::config(
                "the catalog has no `streams` array: it must be a configured catalog, \
                 {\"streams\": [{\"stream\": {...}, \"sync_mode\": ...}]}",
            )
        })?;
    let selected: Vec<Selected> = streams
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            parse_entry(entry).map_err(|why| Error::config(format!("catalog stream {i}: {why}")))
        })
        .collect::<Result<_>>()?;
    // Read twice, a stream would write every record twice.
    for (i, sel) in selected.iter().enumerate() {
        let twin = |other: &Selected| other.name == sel.name && other.namespace == sel.namespace;
        if selected[..i].iter().any(twin) {
            return Err(Error::config(format!(
                "the catalog lists stream {} twice; list each stream once",
                sel.name
            )));
        }
    }
    Ok(selected)
}

fn parse_entry(entry: &Value) -> Result<Selected, String> {
    let stream = entry
        .get("stream")
        .filter(|s| s.is_object())
        .ok_or("`stream` must be an object")?;
    let name = match stream.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        Some(other) => {
            return Err(format!(
                "`stream.name` must be a non-empty string, found {}",
                json_kind(other)
            ))
        }
        None => return Err("`stream.name` is missing".into()),
    };
    let namespace = match stream.get("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(ns)) => Some(ns.clone()),
        Some(other) => {
            return Err(format!(
                "`stream.namespace` of {name} must be a string, found {}",
                json_kind(other)
            ))
        }
    };
    let sync_mode = match entry.get("sync_mode").and_then(Value::as_str) {
        Some("full_refresh") => SyncMode::FullRefresh,
        Some("incremental") => SyncMode::Incremental,
        other => {
            return Err(format!(
                "stream {name}: `sync_mode` must be \"full_refresh\" or \"incremental\", found {}",
                other.map_or_else(|| "nothing".to_string(), |s| format!("{s:?}"))
            ))
        }
    };
    Ok(Selected {
        name,
        namespace,
        sync_mode,
    })
}

/// Per-stream states from a `--state` file, by stream name.
#[derive(Debug, Default)]
pub struct State {
    streams: Vec<(String, Value)>,
    /// Entries in a form this source cannot use (GLOBAL, LEGACY, unknown).
    pub unread: usize,
}

impl State {
    /// Accepts what Airbyte and PyAirbyte send: an array of state messages
    /// (possibly empty, possibly with null extras), or nothing at all. The
    /// STATE lines of a previous run's output, saved whole, work too.
    pub fn parse(value: &Value) -> Result<State> {
        let items = match value {
            Value::Null => return Ok(State::default()),
            Value::Array(items) => items,
            // A legacy whole-connector state object: nothing per stream in it.
            Value::Object(map) => {
                return Ok(State {
                    unread: usize::from(!map.is_empty()),
                    ..State::default()
                })
            }
            other => {
                return Err(Error::config(format!(
                    "the state file must hold a JSON array of state messages, found {}",
                    json_kind(other)
                )))
            }
        };
        let mut streams = Vec::new();
        let mut unread = 0;
        for (i, item) in items.iter().enumerate() {
            // `{"type":"STATE","state":{...}}`, as a run prints it.
            let item = match (item.get("type").and_then(Value::as_str), item.get("state")) {
                (Some("STATE"), Some(inner)) if inner.is_object() => inner,
                _ => item,
            };
            if !(item.is_object() || item.is_null()) {
                return Err(Error::config(format!(
                    "state item {i} must be a state message object, found {}",
                    json_kind(item)
                )));
            }
            // Per-stream states only; GLOBAL/LEGACY items carry nothing for us.
            let Some(stream) = item.get("stream").filter(|s| s.is_object()) else {
                unread += usize::from(!item.is_null());
                continue;
            };
            let Some(name) = stream
                .get("stream_descriptor")
                .and_then(|d| d.get("name"))
                .and_then(Value::as_str)
            else {
                return Err(Error::config(format!(
                    "state item {i} has no `stream.stream_descriptor.name`"
                )));
            };
            let state = stream.get("stream_state").cloned().unwrap_or(Value::Null);
            streams.push((name.to_string(), state));
        }
        Ok(State { streams, unread })
    }

    /// The saved state of `stream` (the last one, if the file repeats it).
    pub fn get(&self, stream: &str) -> Option<&Value> {
        self.streams
            .iter()
            .rev()
            .find(|(name, _)| name == stream)
            .map(|(_, v)| v)
    }
}

/// The streams named on the command line.
pub fn select_by_name(names: &[String], mode: SyncMode) -> Result<Vec<Selected>> {
    if names.is_empty() {
        // `--streams "$EMPTY"` is a mistake, not a request for everything.
        return Err(Error::config(format!(
            "--streams names no stream; name some of: {} (or leave --streams out to read all)",
            streams::names()
        )));
    }

    if let Some(bad) = names.iter().find(|n| streams::find(n).is_none()) {
        let all = streams::STREAMS.iter().map(|s| s.name);
        let near = match crate::cli::closest(bad, all) {
            Some(name) => format!("did you mean `{name}`? "),
            None => String::new(),
        };
        return Err(Error::config(format!(
            "--streams: there is no stream `{bad}`; {near}the streams are: {}",
            streams::names()
        )));
    }
    // Each stream once, in the order first named: `users,users` must not
    // write every user twice.
    let mut picked: Vec<Selected> = Vec::new();
    for name in names {
        if !picked.iter().any(|p| p.name == *name) {
            picked.push(selected(name, mode));
        }
    }
    Ok(picked)
}

/// A stream picked without a catalog: `mode` where the stream supports
/// it, else full refresh.
pub fn selected(name: &str, mode: SyncMode) -> Selected {
    let incremental = streams::find(name).is_some_and(|s| s.incremental.is_some());
    Selected {
        name: name.to_string(),
        namespace: None,
        sync_mode: if incremental {
            mode
        } else {
            SyncMode::FullRefresh
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn catalog_entries() {
        let cat = json!({"streams": [
            {"stream": {"name": "leads", "json_schema": {}}, "sync_mode": "incremental", "extra": 1},
            {"stream": {"name": "users", "namespace": "ns"}, "sync_mode": "full_refresh"}
        ]});
        let s = parse_catalog(&cat).unwrap();
        assert_eq!(s[0].sync_mode, SyncMode::Incremental);
        assert_eq!(s[1].namespace.as_deref(), Some("ns"));
        let bad = json!({"streams": [{"stream": {"name": "x"}, "sync_mode": "INVALID"}]});
        assert!(parse_catalog(&bad).unwrap_err().message.contains("INVALID"));
        assert!(parse_catalog(&json!({})).is_err());
        let twice = json!({"streams": [
            {"stream": {"name": "users"}, "sync_mode": "full_refresh"},
            {"stream": {"name": "users"}, "sync_mode": "incremental"}
        ]});
        assert!(parse_catalog(&twice).unwrap_err().message.contains("twice"));
    }

    #[test]
    fn state_forms() {
        assert!(State::parse(&json!([])).unwrap().get("leads").is_none());
        let st = State::parse(&json!([
            {"type": "STREAM", "stream": {"stream_descriptor": {"name": "leads", "namespace": null}, "stream_state": {"a": 1}}, "global_": null, "data": null},
            {"type": "GLOBAL", "global": {}}
        ]))
        .unwrap();
        assert_eq!(st.get("leads"), Some(&json!({"a": 1})));
        assert_eq!(st.unread, 1, "the GLOBAL item");
        let printed = json!([{"type": "STATE", "state": {"type": "STREAM",
            "stream": {"stream_descriptor": {"name": "events"}, "stream_state": {"created_at": "t"}}}}]);
        let st = State::parse(&printed).unwrap();
        assert_eq!(st.get("events"), Some(&json!({"created_at": "t"})));
        assert_eq!(st.unread, 0);
        assert_eq!(State::parse(&json!([{"foo": 1}, null])).unwrap().unread, 1);
        assert_eq!(State::parse(&json!({"events": {}})).unwrap().unread, 1);
        assert!(State::parse(&json!("x")).is_err());
        assert!(State::parse(&json!([5])).is_err());
    }
}
