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
    /// Streams the file holds a state for that this source does not have.
    pub unknown: Vec<String>,
}

/// What a state file may hold, for error messages.
const STATE_FORMS: &str = "a state file holds what a previous run wrote: its STATE lines \
     (`grep '\"type\":\"STATE\"' out.jsonl > state.json`), a JSON array of them or of their \
     `state` objects (as Airbyte passes it), or one of them";

impl State {
    /// Reads a state file: a JSON array of state messages (Airbyte's and
    /// PyAirbyte's form), one state message, or JSON lines of them (the
    /// STATE lines of a run's output), each whole or its `state` object;
    /// GLOBAL and LEGACY messages too, and the legacy object of states by
    /// stream name. Null, `[]` and `{}` hold no state. The last state of a
    /// stream wins. Anything else is an error: never a silent fresh start.
    pub fn parse(text: &[u8], path: &std::path::Path) -> Result<State> {
        let file = path.display();
        let bad =
            |why: String| Error::config(format!("the state file {file} {why}; {STATE_FORMS}"));
        let mut values = Vec::new();
        let mut stream = serde_json::Deserializer::from_slice(text).into_iter::<Value>();
        for value in &mut stream {
            values.push(value.map_err(|e| bad(format!("is not valid JSON: {e}")))?);
        }
        let items = match values.len() {
            0 => return Err(bad("is empty".into())),
            1 => match values.pop().unwrap_or(Value::Null) {
                Value::Null => return Ok(State::default()),
                Value::Array(items) => items,
                Value::Object(map) if map.is_empty() => return Ok(State::default()),
                Value::Object(map) if is_message(&map) => vec![Value::Object(map)],
                Value::Object(map) => {
                    let mut state = State::default();
                    state.add_legacy(&map).map_err(bad)?;
                    return Ok(state);
                }
                other => return Err(bad(format!("holds {}", json_kind(&other)))),
            },
            // JSON lines: each one message.
            _ => values,
        };
        let mut state = State::default();
        for (i, item) in items.iter().enumerate() {
            let n = i + 1;
            state
                .add_message(item)
                .map_err(|why| bad(format!("holds, as its message {n}, {why}")))?;
        }
        Ok(state)
    }

    /// Adds one state message: a STATE line whole, or its `state` object.
    fn add_message(&mut self, item: &Value) -> Result<(), String> {
        let map = match item {
            Value::Null => return Ok(()),
            Value::Object(map) if is_message(map) => map,
            other => return Err(format!("{}, not a state message", json_kind(other))),
        };
        let kind = map.get("type").and_then(Value::as_str);
        match (kind, map.get("state")) {
            (Some("STATE"), Some(inner)) => return self.add_message(inner),
            (Some("STATE"), None) => return Err("a STATE line without its `state`".into()),
            _ => {}
        }
        match kind {
            Some("STREAM") | None => {
                let stream = map.get("stream").ok_or("a STREAM state without `stream`")?;
                self.add_stream(stream)
            }
            Some("GLOBAL") => {
                let states = map
                    .get("global")
                    .and_then(|g| g.get("stream_states"))
                    .and_then(Value::as_array)
                    .ok_or("a GLOBAL state without `global.stream_states`")?;
                states.iter().try_for_each(|s| self.add_stream(s))
            }
            Some("LEGACY") => match map.get("data") {
                Some(Value::Object(data)) => self.add_legacy(data),
                _ => Err("a LEGACY state without its `data` object".into()),
            },
            Some(other) => Err(format!(
                "a {other} message, not a state: keep only the STATE lines of a run's output"
            )),
        }
    }

    /// Adds `{"stream_descriptor": {"name": ..}, "stream_state": ..}`.
    fn add_stream(&mut self, stream: &Value) -> Result<(), String> {
        let name = stream
            .get("stream_descriptor")
            .and_then(|d| d.get("name"))
            .and_then(Value::as_str)
            .ok_or("a state without `stream_descriptor.name`")?;
        let state = stream.get("stream_state").cloned().unwrap_or(Value::Null);
        self.add(name, state);
        Ok(())
    }

    /// Adds the states of a legacy state object: stream name to state.
    fn add_legacy(&mut self, data: &serde_json::Map<String, Value>) -> Result<(), String> {
        for (name, state) in data {
            if streams::find(name).is_none() {
                let near = crate::cli::closest(name, streams::STREAMS.iter().map(|s| s.name))
                    .map(|n| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "holds `{name}`, neither a state message nor a stream of this source{near}"
                ));
            }
            self.add(name, state.clone());
        }
        Ok(())
    }

    fn add(&mut self, name: &str, state: Value) {
        if streams::find(name).is_none() && !self.unknown.iter().any(|n| n == name) {
            self.unknown.push(name.to_string());
        }
        self.streams.push((name.to_string(), state));
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

/// Whether an object is an Airbyte message or state message, by its keys.
fn is_message(map: &serde_json::Map<String, Value>) -> bool {
    map.contains_key("type") || map.contains_key("stream") || map.contains_key("global")
}

/// The streams named on the command line.
pub fn select_by_name(names: &[String], mode: impl Fn(&str) -> SyncMode) -> Result<Vec<Selected>> {
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
            picked.push(selected(name, mode(name)));
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

    /// The state file `text`, parsed.
    fn state(text: &str) -> Result<State> {
        State::parse(text.as_bytes(), std::path::Path::new("s.json"))
    }

    #[test]
    fn state_forms() {
        let leads = |text: &str| state(text).unwrap().get("leads").cloned();
        for nothing in ["[]", "null", "{}", " [ ] \n"] {
            assert_eq!(leads(nothing), None, "{nothing}");
        }
        let message = r#"{"type": "STREAM", "stream": {"stream_descriptor": {"name": "leads", "namespace": null}, "stream_state": {"a": 1}}, "global_": null, "data": null}"#;
        let line = format!(r#"{{"type":"STATE","state":{message}}}"#);
        let later = line.replace(r#""a": 1"#, r#""a": 2"#);
        let one = Some(json!({"a": 1}));
        // An array of messages, of STATE lines, one of either, JSON lines.
        assert_eq!(leads(&format!("[{message}, null]")), one);
        assert_eq!(leads(&format!("[{line}]")), one);
        assert_eq!(leads(message), one);
        assert_eq!(leads(&line), one);
        assert_eq!(leads(&format!("{line}\n{later}\n")), Some(json!({"a": 2})));
        assert_eq!(leads(&format!("{later}\n{line}")), one, "the last wins");
        // GLOBAL and LEGACY messages, and the legacy object.
        let global = r#"{"type":"GLOBAL","global":{"shared_state":{},"stream_states":[{"stream_descriptor":{"name":"leads"},"stream_state":{"a":1}}]}}"#;
        assert_eq!(leads(global), one);
        assert_eq!(leads(r#"{"type":"LEGACY","data":{"leads":{"a":1}}}"#), one);
        assert_eq!(leads(r#"{"leads":{"a":1},"events":null}"#), one);
        // States of streams this source does not have are named.
        let other = message.replace("\"leads\"", "\"leeds\"");
        assert_eq!(state(&other).unwrap().unknown, ["leeds"]);
        // What cannot be used is an error that says what it found.
        for (text, says) in [
            ("", "is empty"),
            (r#"{"nonsense": 1}"#, "`nonsense`, neither a state message"),
            (r#"{"leeds": {}}"#, "did you mean `leads`?"),
            (r#"[5]"#, "message 1, a number"),
            (r#""x""#, "holds a string"),
            (
                r#"{"type":"RECORD","record":{}}"#,
                "a RECORD message, not a state",
            ),
            (
                r#"{"type":"GLOBAL","global":{}}"#,
                "without `global.stream_states`",
            ),
            (r#"{"type":"STATE"}"#, "without its `state`"),
            (
                r#"[{"type":"STREAM","stream":{}}]"#,
                "without `stream_descriptor.name`",
            ),
            ("[1,", "not valid JSON"),
        ] {
            let e = state(text).unwrap_err();
            assert!(e.message.contains(says), "{text}: {}", e.message);
            assert_eq!(e.failure.as_str(), "config_error");
        }
        let two = format!("{line}\n{{\"type\":\"LOG\"}}");
        assert!(state(&two)
            .unwrap_err()
            .message
            .contains("message 2, a LOG message"));
    }
}
