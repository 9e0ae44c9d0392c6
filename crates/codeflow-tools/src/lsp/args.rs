//! Argument pieces shared by the LSP tools: their JSON schemas (written for a model).

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// `file_path` + 1-based `line` and `character`.
#[derive(Debug, Clone, Deserialize)]
pub struct PositionArgs {
    /// The file, as the caller's path.
    pub file_path: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based character.
    pub character: u32,
}

/// The JSON schema of `file_path`.
pub fn file_path_schema() -> Value {
    json!({
        "type": "string",
        "description": "The file: an absolute path in your project, or a path relative to the project root."
    })
}

/// The JSON schema of a 1-based `line`.
pub fn line_schema() -> Value {
    json!({"type": "integer", "minimum": 1, "description": "1-based line number."})
}

/// The JSON schema of a 1-based `character`.
pub fn character_schema() -> Value {
    json!({"type": "integer", "minimum": 1, "description": "1-based character (column) in the line, counted in characters; put it on the symbol's name."})
}

/// Properties `file_path`, `line`, `character`.
pub fn position_properties() -> Map<String, Value> {
    let mut props = Map::new();
    props.insert("file_path".into(), file_path_schema());
    props.insert("line".into(), line_schema());
    props.insert("character".into(), character_schema());
    props
}

/// `symbol_name` and `symbol_kind` as find_definition/find_references/rename take them.
pub fn symbol_properties() -> Map<String, Value> {
    let mut props = Map::new();
    props.insert("file_path".into(), json!({
        "type": "string",
        "description": "A file that declares or uses the symbol: absolute, or relative to the project root."
    }));
    props.insert("symbol_name".into(), json!({
        "type": "string",
        "description": "The symbol's name as the file declares or uses it (e.g. `scale`, `Circle`, `area`; a Go method as `newPipeline` or `(*Tree).newPipeline`). Declared names that match exactly win; else the name where the file uses it; else declared names containing it."
    }));
    props.insert("symbol_kind".into(), json!({
        "type": "string",
        "description": format!("Only symbols of this LSP kind, lowercase: {}. An unknown kind is ignored with a warning.", crate::lsp::symbols::kind_names().join(", "))
    }));
    props
}

/// An object schema from properties and required names.
pub fn object(props: Map<String, Value>, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false
    })
}

/// Appends warnings (one per line, `Warning: …`) to a text.
pub fn with_warnings(mut text: String, warnings: &[String]) -> String {
    for w in warnings {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str("Warning: ");
        text.push_str(w);
    }
    text
}
