//! The JSON-RPC error object: one type for every error that crosses the wire, in both
//! directions (the server's answers, the relay's answers to `client/*` requests), so each
//! library error has exactly one mapping to it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `error` member of a JSON-RPC error response: a stable numeric `code`, a message a person
/// can act on, and `data` (with `data.suggestion` where there is a next step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// The error's code (JSON-RPC's, CodeFlow's -32001…-32010, or the file codes -33001…).
    pub code: i64,
    /// What went wrong, for a person.
    pub message: String,
    /// Details: `suggestion`, and per-code fields (`right`, `limit`, `actualHash`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error without `data`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Adds `data.suggestion`: the next step a person (or agent) can take.
    pub fn with_suggestion(mut self, suggestion: impl Into<String>) -> Self {
        let mut data = match self.data.take() {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        data.insert("suggestion".into(), Value::String(suggestion.into()));
        self.data = Some(Value::Object(data));
        self
    }
}

impl std::fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for ErrorObject {}
