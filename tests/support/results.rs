//! Reading tool results: places, names, the files an edit changed.

use std::collections::BTreeMap;

use serde_json::Value;

/// `(path, line, character)` of every place in a JSON array of places.
pub fn places(v: &Value) -> Vec<(String, u64, u64)> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_owned(),
                p["line"].as_u64().unwrap(),
                p["character"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The string field `key` of every object in a JSON array.
pub fn names(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s[key].as_str().unwrap().to_owned())
        .collect()
}

/// path → action of each file an edit result says it changed.
pub fn changed(structured: &Value) -> BTreeMap<String, String> {
    structured["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no files in {structured}"))
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The 1-based `(line, character)` starts and new texts of one file's edits in a result,
/// sorted.
pub fn edits_of(structured: &Value, path: &str) -> Vec<(u64, u64, String)> {
    let file = structured["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in {structured}"));
    let mut out: Vec<_> = file["edits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["range"]["start"]["line"].as_u64().unwrap(),
                e["range"]["start"]["character"].as_u64().unwrap(),
                e["new_text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// An LSP (0-based) range on one line replaced by `text`, as `apply_workspace_edit` takes it.
pub fn edit(line: u32, from: u32, to: u32, text: &str) -> Value {
    serde_json::json!({"range": {"start": {"line": line, "character": from}, "end": {"line": line, "character": to}}, "newText": text})
}
