//! Typed tool answers: every tool serialises one output type into `structuredContent`, and its
//! `outputSchema` is derived from that same type ([`schema_of`]), so the two cannot drift.
//!
//! The derived schema is made for what MCP clients accept (the TypeScript SDK validates with
//! Ajv in its draft-07 mode, the Python SDK with `jsonschema`): the root is an object, every
//! subschema is inlined (only a recursive type keeps a `$ref` into the document's own
//! `$defs`), there is no `$schema` key, and schemars' integer formats (`uint32`, …), which no
//! validator knows, are left out. Every object schema with named properties is closed
//! (`additionalProperties: false`), so a member the type does not declare is drift.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde_json::Value;

use crate::catalogue::{ToolOutput, ToolOutputText};
use crate::error::ToolError;

/// The MCP `outputSchema` of answers of type `T` (see the module docs).
pub fn schema_of<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(root) = schema.as_object_mut() {
        root.remove("title");
    }
    close(&mut schema);
    schema
}

/// Closes every object schema that names its properties, drops numeric `format`s, and makes
/// optional members non-null, in the whole document. An optional member is an `Option` skipped
/// when `None` (`skip_serializing_if`): it is absent or has a value, never `null`; a member that
/// can be `null` is a required one.
fn close(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            let required: Vec<String> = map
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            if let Some(Value::Object(properties)) = map.get_mut("properties") {
                for (name, property) in properties.iter_mut() {
                    if !required.contains(name) {
                        not_null(property);
                    }
                }
            }
            let numeric = |t: &Value| matches!(t.as_str(), Some("integer" | "number"));
            let is_numeric = map.get("type").is_some_and(|t| {
                numeric(t) || t.as_array().is_some_and(|ts| ts.iter().any(numeric))
            });
            if is_numeric {
                map.remove("format");
            }
            map.values_mut().for_each(close);
        }
        Value::Array(items) => items.iter_mut().for_each(close),
        _ => {}
    }
}

/// `schema` without `null` among its types.
fn not_null(schema: &mut Value) {
    let Some(Value::Array(types)) = schema.get_mut("type") else {
        return;
    };
    types.retain(|t| t != "null");
    if let [only] = types.as_slice() {
        let only = only.clone();
        schema["type"] = only;
    }
}

impl ToolOutput {
    /// The answer `text` for the model and `out` as `structuredContent`.
    pub fn typed<T: Serialize>(text: String, out: &T) -> Result<Self, ToolError> {
        let structured = serde_json::to_value(out)
            .map_err(|e| ToolError::failed(format!("the answer could not be serialised: {e}")))?;
        Ok(Self { text, structured })
    }
}

impl ToolOutputText {
    /// The answer `text` for the model and `out` as `structuredContent`, serialised to text.
    pub fn typed<T: Serialize>(text: String, out: &T) -> Result<Self, ToolError> {
        let structured = serde_json::value::to_raw_value(out)
            .map_err(|e| ToolError::failed(format!("the answer could not be serialised: {e}")))?;
        Ok(Self { text, structured })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[derive(Serialize, JsonSchema)]
    struct Inner {
        /// 1-based.
        line: u32,
    }

    #[derive(Serialize, JsonSchema)]
    struct Answer {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        pid: Option<u32>,
        places: Vec<Inner>,
        tree: Vec<Node>,
    }

    #[derive(Serialize, JsonSchema)]
    struct Node {
        children: Vec<Node>,
    }

    fn valid(value: &Value) -> bool {
        jsonschema::validator_for(&schema_of::<Answer>())
            .unwrap()
            .is_valid(value)
    }

    #[test]
    fn a_derived_schema_is_a_closed_self_contained_object() {
        let schema = schema_of::<Answer>();
        assert_eq!(schema["type"], "object");
        assert!(schema.get("$schema").is_none());
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["properties"]["places"]["items"]["additionalProperties"],
            false
        );
        assert!(
            schema["properties"]["places"]["items"]["properties"]["line"]
                .get("format")
                .is_none()
        );
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert!(required.contains(&"pid") && !required.contains(&"note"));
        assert_eq!(schema["properties"]["note"]["type"], "string");
        assert_eq!(
            schema["properties"]["pid"]["type"],
            json!(["integer", "null"])
        );
        assert!(schema["$defs"]["Node"].is_object(), "{schema}");
    }

    #[test]
    fn values_that_drift_from_the_type_are_rejected() {
        let answer = Answer {
            name: "x".into(),
            note: None,
            pid: None,
            places: vec![Inner { line: 1 }],
            tree: vec![Node {
                children: vec![Node { children: vec![] }],
            }],
        };
        let good = serde_json::to_value(&answer).unwrap();
        assert!(valid(&good));
        let mut wrong_type = good.clone();
        wrong_type["places"][0]["line"] = json!("1");
        assert!(!valid(&wrong_type));
        let mut extra = good.clone();
        extra["places"][0]["column"] = json!(1);
        assert!(!valid(&extra));
        let mut nested_extra = good.clone();
        nested_extra["tree"][0]["children"][0]["x"] = json!(1);
        assert!(!valid(&nested_extra));
        let mut null_note = good.clone();
        null_note["note"] = Value::Null;
        assert!(!valid(&null_note));
        let mut missing = good;
        missing.as_object_mut().unwrap().remove("pid");
        assert!(!valid(&missing));
    }
}
