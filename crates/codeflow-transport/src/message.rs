//! JSON-RPC 2.0 messages as they cross a CodeFlow socket.
//!
//! Bodies stay `serde_json::Value`: this layer routes messages, it does not interpret their
//! params or results. Upper layers deserialize what they own.

use serde_json::{Map, Value};

/// A request id. JSON-RPC allows numbers, strings and (for errors about unparsable requests)
/// null; ids are compared by their JSON value.
pub type RequestId = Value;

/// Standard JSON-RPC error codes and CodeFlow's own codes (documented in `docs/protocol.md`).
pub mod codes {
    /// The text was not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON was not a valid JSON-RPC message.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist (or not before `initialize`).
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The params were wrong.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The server failed while handling a valid request.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// A request arrived before a successful `initialize`.
    pub const NOT_INITIALIZED: i64 = -32002;
    /// The token is missing, malformed, expired, or does not grant this project.
    pub const UNAUTHORIZED: i64 = -32001;
    /// The token is valid but lacks the right the request needs.
    pub const FORBIDDEN: i64 = -32003;
    /// A limit (rate, size, capacity) was hit.
    pub const LIMIT_EXCEEDED: i64 = -32004;
    /// The session named in a resume does not exist (any more).
    pub const SESSION_NOT_FOUND: i64 = -32005;
    /// The peer did not answer in time.
    pub const TIMEOUT: i64 = -32006;
    /// The other side of the relay is unreachable.
    pub const UNREACHABLE: i64 = -32007;
    /// The request conflicts with another live session's state (a sync that would remove
    /// files another session's tree has).
    pub const CONFLICT: i64 = -32009;
    /// The feature is not implemented by this peer (yet).
    pub const NOT_IMPLEMENTED: i64 = -32010;
}

pub use codeflow_types::ErrorObject;

/// One JSON-RPC 2.0 message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request: the peer must answer with a response or an error carrying `id`.
    Request {
        /// Chosen by the sender, unique among its unanswered requests.
        id: RequestId,
        /// The method, e.g. `tools/call`.
        method: String,
        /// The params (an object or an array), when given.
        params: Option<Value>,
    },
    /// A notification: no answer.
    Notification {
        /// The method, e.g. `server/fileChanged`.
        method: String,
        /// The params, when given.
        params: Option<Value>,
    },
    /// A successful answer.
    Response {
        /// The id of the request it answers.
        id: RequestId,
        /// The result.
        result: Value,
    },
    /// A failed answer.
    Error {
        /// The id of the request it answers (`null` when the request could not be read).
        id: RequestId,
        /// What went wrong.
        error: ErrorObject,
    },
}

/// Written as JSON-RPC 2.0: `jsonrpc` first, then `id`, then the rest.
impl serde::Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("jsonrpc", "2.0")?;
        match self {
            Self::Request { id, method, params } => {
                map.serialize_entry("id", id)?;
                map.serialize_entry("method", method)?;
                if let Some(p) = params {
                    map.serialize_entry("params", p)?;
                }
            }
            Self::Notification { method, params } => {
                map.serialize_entry("method", method)?;
                if let Some(p) = params {
                    map.serialize_entry("params", p)?;
                }
            }
            Self::Response { id, result } => {
                map.serialize_entry("id", id)?;
                map.serialize_entry("result", result)?;
            }
            Self::Error { id, error } => {
                map.serialize_entry("id", id)?;
                map.serialize_entry("error", error)?;
            }
        }
        map.end()
    }
}

/// Why a JSON value is not a JSON-RPC message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidMessage {
    /// The value is not a JSON object.
    #[error("a JSON-RPC message must be a JSON object")]
    NotAnObject,
    /// `method` is present but not a string.
    #[error("`method` must be a string")]
    MethodNotString,
    /// `params` is neither an object nor an array.
    #[error("`params` must be an object or an array")]
    BadParams,
    /// Neither a request nor a well-formed response.
    #[error("a response needs an `id` and exactly one of `result` or `error`")]
    BadResponse,
    /// `error` lacks a numeric `code` or a string `message`.
    #[error("`error` must be an object with a numeric `code` and a string `message`")]
    BadError,
    /// `id` is not a number, a string or null.
    #[error("`id` must be a number, a string or null")]
    BadId,
}

impl Message {
    /// A request with params.
    pub fn request(id: impl Into<RequestId>, method: impl Into<String>, params: Value) -> Self {
        Self::Request {
            id: id.into(),
            method: method.into(),
            params: Some(params),
        }
    }

    /// A notification with params.
    pub fn notification(method: impl Into<String>, params: Value) -> Self {
        Self::Notification {
            method: method.into(),
            params: Some(params),
        }
    }

    /// A successful answer to request `id`.
    pub fn response(id: RequestId, result: Value) -> Self {
        Self::Response { id, result }
    }

    /// A failed answer to request `id`.
    pub fn error(id: RequestId, error: ErrorObject) -> Self {
        Self::Error { id, error }
    }

    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        match self {
            Self::Request { method, .. } | Self::Notification { method, .. } => Some(method),
            _ => None,
        }
    }

    /// The id of a request or response.
    pub fn id(&self) -> Option<&RequestId> {
        match self {
            Self::Request { id, .. } | Self::Response { id, .. } | Self::Error { id, .. } => {
                Some(id)
            }
            Self::Notification { .. } => None,
        }
    }

    /// Whether this is an answer (a response or an error).
    pub fn is_response(&self) -> bool {
        matches!(self, Self::Response { .. } | Self::Error { .. })
    }

    /// Reads a JSON-RPC 2.0 message from a JSON value (already normalised; see [`crate::legacy`]).
    pub fn from_value(value: Value) -> Result<Self, InvalidMessage> {
        let Value::Object(mut map) = value else {
            return Err(InvalidMessage::NotAnObject);
        };
        let id = match map.remove("id") {
            None => None,
            Some(id @ (Value::Number(_) | Value::String(_) | Value::Null)) => Some(id),
            Some(_) => return Err(InvalidMessage::BadId),
        };
        if let Some(method) = map.remove("method") {
            let Value::String(method) = method else {
                return Err(InvalidMessage::MethodNotString);
            };
            let params = match map.remove("params") {
                None | Some(Value::Null) => None,
                Some(p @ (Value::Object(_) | Value::Array(_))) => Some(p),
                Some(_) => return Err(InvalidMessage::BadParams),
            };
            return Ok(match id {
                Some(id) => Self::Request { id, method, params },
                None => Self::Notification { method, params },
            });
        }
        let id = id.ok_or(InvalidMessage::BadResponse)?;
        match (map.remove("result"), map.remove("error")) {
            (Some(result), None) => Ok(Self::Response { id, result }),
            (None, Some(error)) => {
                let error = serde_json::from_value(error).map_err(|_| InvalidMessage::BadError)?;
                Ok(Self::Error { id, error })
            }
            _ => Err(InvalidMessage::BadResponse),
        }
    }

    /// The message as a JSON value, always with `"jsonrpc":"2.0"`.
    pub fn to_value(&self) -> Value {
        let mut map = Map::with_capacity(4);
        map.insert("jsonrpc".into(), Value::String("2.0".into()));
        match self {
            Self::Request { id, method, params } => {
                map.insert("id".into(), id.clone());
                map.insert("method".into(), Value::String(method.clone()));
                if let Some(p) = params {
                    map.insert("params".into(), p.clone());
                }
            }
            Self::Notification { method, params } => {
                map.insert("method".into(), Value::String(method.clone()));
                if let Some(p) = params {
                    map.insert("params".into(), p.clone());
                }
            }
            Self::Response { id, result } => {
                map.insert("id".into(), id.clone());
                map.insert("result".into(), result.clone());
            }
            Self::Error { id, error } => {
                map.insert("id".into(), id.clone());
                map.insert(
                    "error".into(),
                    serde_json::to_value(error).unwrap_or(Value::Null),
                );
            }
        }
        Value::Object(map)
    }

    /// The text of a successful answer to `id` whose `result` is JSON text already: written
    /// around it, without parsing it.
    pub fn response_text(id: &RequestId, result: &serde_json::value::RawValue) -> String {
        #[derive(serde::Serialize)]
        struct Response<'a> {
            jsonrpc: &'static str,
            id: &'a RequestId,
            result: &'a serde_json::value::RawValue,
        }
        let response = Response {
            jsonrpc: "2.0",
            id,
            result,
        };
        serde_json::to_string(&response).unwrap_or_else(|_| {
            let result = serde_json::from_str(result.get()).unwrap_or(Value::Null);
            Self::response(id.clone(), result).to_text()
        })
    }

    /// The message as one line of JSON text (no newline), written straight from the message
    /// (no intermediate [`Value`]).
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| self.to_value().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(input: Value, expect: Result<Message, InvalidMessage>) {
        assert_eq!(Message::from_value(input), expect);
    }

    #[test]
    fn parses_each_kind() {
        check(
            json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
            Ok(Message::Request {
                id: json!(1),
                method: "ping".into(),
                params: None,
            }),
        );
        check(
            json!({"jsonrpc":"2.0","method":"x","params":{}}),
            Ok(Message::notification("x", json!({}))),
        );
        check(
            json!({"jsonrpc":"2.0","id":"a","result":{}}),
            Ok(Message::response(json!("a"), json!({}))),
        );
        check(
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"m"}}),
            Ok(Message::error(Value::Null, ErrorObject::new(-1, "m"))),
        );
    }

    #[test]
    fn rejects_malformed() {
        check(json!([1]), Err(InvalidMessage::NotAnObject));
        check(json!({"method": 3}), Err(InvalidMessage::MethodNotString));
        check(json!({"id": {}, "method": "x"}), Err(InvalidMessage::BadId));
        check(
            json!({"method": "x", "params": 3}),
            Err(InvalidMessage::BadParams),
        );
        check(json!({"id": 1}), Err(InvalidMessage::BadResponse));
        check(
            json!({"id": 1, "error": "no"}),
            Err(InvalidMessage::BadError),
        );
    }

    #[test]
    fn a_response_around_result_text_is_the_response() {
        let result = serde_json::value::to_raw_value(&json!({"a": [1, "two"], "b": null}))
            .expect("serialisable");
        let text = Message::response_text(&json!("x"), &result);
        assert_eq!(
            text,
            Message::response(json!("x"), json!({"a": [1, "two"], "b": null})).to_text()
        );
    }

    #[test]
    fn round_trips_with_version() {
        let m = Message::request(json!(7), "tools/list", json!({}));
        let v = m.to_value();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(Message::from_value(v), Ok(m));
    }
}
