//! A message kept as the text it arrived in, with only what routing needs read out of it.
//!
//! A relay forwards most messages without looking inside their bodies: an answer's `result`
//! (a tool's kilobyte of output) only has to reach the other side. Parsing it into a
//! [`serde_json::Value`] and writing it out again was most of the relay's JSON work (P1 round 4
//! in `docs/benchmarks.md`). [`RawMessage::parse`] reads the envelope — `jsonrpc`, `id`,
//! `method`, and which of `params`, `result`, `error` are there — skipping over the bodies
//! (checked to be JSON, not built), and keeps the text beside it. [`RawMessage::to_message`]
//! parses the whole message when a consumer needs more.
//!
//! The envelope is read only when the message needs nothing of [`crate::legacy::normalise`]
//! and is well formed: anything else (a legacy form, an unknown member, a duplicate key, an
//! invalid shape) is not a `RawMessage`, and the caller takes the full parse, with its errors.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::frame::Utf8Bytes;
use crate::message::{ErrorObject, InvalidMessage, Message, RequestId};

/// What kind of JSON-RPC message a [`RawMessage`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request (a method and an id).
    Request,
    /// A notification (a method, no id).
    Notification,
    /// A successful answer.
    Response,
    /// A failed answer.
    Error,
}

/// A JSON-RPC 2.0 message as text, with its kind, id and method read out.
#[derive(Debug, Clone, PartialEq)]
pub struct RawMessage {
    text: Utf8Bytes,
    kind: Kind,
    id: Option<RequestId>,
    method: Option<String>,
    single_line: bool,
}

/// The members of a message, each as its unparsed text. `None` only when absent: a `null`
/// value is present (`"id": null` is an id).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

/// Methods without a `/` that are protocol methods (the others are legacy tool names, which
/// [`crate::legacy::normalise`] rewrites).
const BARE_PROTOCOL_METHODS: &[&str] = &["initialize", "ping", "reconnect"];

impl RawMessage {
    /// Reads the envelope of `text`. `None` when the text is not JSON, not a plain JSON-RPC
    /// 2.0 object (a legacy form, an unknown member), or not a valid message: the full parse
    /// ([`serde_json`] + [`crate::legacy::normalise`] + [`Message::from_value`]) then decides
    /// what it is and what to answer.
    pub fn parse(text: Utf8Bytes) -> Option<Self> {
        let envelope: Envelope<'_> = serde_json::from_str(&text).ok()?;
        if envelope.jsonrpc?.get() != "\"2.0\"" {
            return None;
        }
        let id = match envelope.id {
            None => None,
            Some(raw) => Some(id_of(raw)?),
        };
        let (kind, method) = match envelope.method {
            Some(method) => {
                let method: Cow<'_, str> = serde_json::from_str(method.get()).ok()?;
                let bare = !method.contains('/');
                if bare && !BARE_PROTOCOL_METHODS.contains(&method.as_ref()) {
                    return None;
                }
                if envelope.result.is_some() || envelope.error.is_some() {
                    return None;
                }
                if let Some(params) = envelope.params
                    && !matches!(params.get().as_bytes().first(), Some(b'{' | b'['))
                {
                    return None;
                }
                let kind = if id.is_some() {
                    Kind::Request
                } else {
                    Kind::Notification
                };
                (kind, Some(method.into_owned()))
            }
            None => {
                if id.is_none() || envelope.params.is_some() {
                    return None;
                }
                match (envelope.result, envelope.error) {
                    (Some(_), None) => (Kind::Response, None),
                    (None, Some(error)) => {
                        serde_json::from_str::<ErrorObject>(error.get()).ok()?;
                        (Kind::Error, None)
                    }
                    _ => return None,
                }
            }
        };
        let single_line = !text.as_bytes().iter().any(|b| matches!(b, b'\n' | b'\r'));
        Some(Self {
            text,
            kind,
            id,
            method,
            single_line,
        })
    }

    /// The message's text, as received.
    pub fn text(&self) -> &Utf8Bytes {
        &self.text
    }

    /// The message's text, as received.
    pub fn into_text(self) -> Utf8Bytes {
        self.text
    }

    /// Whether the text has no line break (JSON allows them between tokens): it can then be
    /// written as one line of newline-delimited JSON as it is.
    pub fn is_single_line(&self) -> bool {
        self.single_line
    }

    /// Request, notification, response or error.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The id of a request or an answer.
    pub fn id(&self) -> Option<&RequestId> {
        self.id.as_ref()
    }

    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// Whether this is an answer (a response or an error).
    pub fn is_response(&self) -> bool {
        matches!(self.kind, Kind::Response | Kind::Error)
    }

    /// The whole message, parsed.
    pub fn to_message(&self) -> Result<Message, InvalidMessage> {
        let value: serde_json::Value =
            serde_json::from_str(&self.text).map_err(|_| InvalidMessage::NotAnObject)?;
        Message::from_value(value)
    }
}

/// An id: a number, a string or null.
fn id_of(raw: &RawValue) -> Option<RequestId> {
    match serde_json::from_str(raw.get()).ok()? {
        id @ (serde_json::Value::Number(_)
        | serde_json::Value::String(_)
        | serde_json::Value::Null) => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::legacy;

    fn raw(text: &str) -> Option<RawMessage> {
        RawMessage::parse(Utf8Bytes::from(text.to_owned()))
    }

    /// What the full parse makes of `text`.
    fn full(text: &str) -> Result<Message, InvalidMessage> {
        let value: Value = serde_json::from_str(text).map_err(|_| InvalidMessage::NotAnObject)?;
        Message::from_value(legacy::normalise(value))
    }

    #[test]
    fn reads_the_envelope_and_agrees_with_the_full_parse() {
        let cases = [
            (r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, Kind::Request),
            (
                r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x","arguments":{"s":"}\"{"}}}"#,
                Kind::Request,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                Kind::Notification,
            ),
            (
                r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"a\nb"}]}}"#,
                Kind::Response,
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m"}}"#,
                Kind::Error,
            ),
            (r#"{"jsonrpc":"2.0","id":2,"result":null}"#, Kind::Response),
        ];
        for (text, kind) in cases {
            let r = raw(text).unwrap_or_else(|| panic!("not read: {text}"));
            assert_eq!(r.kind(), kind, "{text}");
            let message = full(text).expect("valid");
            assert_eq!(r.to_message(), Ok(message.clone()), "{text}");
            assert_eq!(r.id(), message.id(), "{text}");
            assert_eq!(r.method(), message.method(), "{text}");
            assert_eq!(r.text().as_str(), text);
            assert!(r.is_single_line());
        }
        assert_eq!(
            raw(r#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"m"}}"#)
                .and_then(|r| r.id().cloned()),
            Some(Value::Null),
            "a null id is an id"
        );
    }

    #[test]
    fn leaves_everything_else_to_the_full_parse() {
        for text in [
            "not json",
            "[1]",
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"find_definition","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x/y","extra":1}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"x/y"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":3}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x/y","params":3}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"m"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":"no"}"#,
            r#"{"jsonrpc":"2.0","result":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"id":2,"result":1}"#,
            r#"{"jsonrpc":"1.0","id":1,"result":1}"#,
        ] {
            assert_eq!(raw(text), None, "{text}");
        }
    }

    #[test]
    fn says_when_the_text_spans_lines() {
        let r = raw("{\"jsonrpc\":\"2.0\",\n\"id\":1,\"result\":{}}").expect("valid");
        assert!(!r.is_single_line());
        assert_eq!(r.to_message(), Ok(Message::response(json!(1), json!({}))));
    }
}
