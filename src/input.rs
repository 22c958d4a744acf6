//! The files a user hands to a command (config, catalog, state): read as
//! JSON, with errors that name the file and say what is wrong with it.

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// Reads a JSON file; `what` names it in errors ("config", "catalog", ...).
pub fn read_json_file(path: &Path, what: &str) -> Result<Value> {
    let text = std::fs::read(path).map_err(|e| Error::unreadable(what, path, &e))?;
    serde_json::from_slice(&text).map_err(|e| {
        Error::config(format!(
            "the {what} file {} is not valid JSON: {e}",
            path.display()
        ))
    })
}

/// "a string", "an array", ... for error messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
