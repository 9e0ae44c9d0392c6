//! The agent edge for MCP 2026-07-28, the stateless revision.
//!
//! A modern agent sends no `initialize`: every request carries its protocol version and
//! capabilities in `_meta` (`io.modelcontextprotocol/protocolVersion`, `…/clientCapabilities`,
//! optionally `…/clientInfo` and `…/logLevel`), and it may probe with `server/discover` first.
//! The server's side stays a 2025-11-25 session (it keeps the server→client `client/*` requests
//! file streaming needs), so the relay translates:
//! - `server/discover` is answered here, without the server, so an agent's probe (the official
//!   SDKs probe on a short-lived copy of the relay) never waits for a connection;
//! - the first modern request opens the WebSocket session with an `initialize` built from its
//!   `_meta` (held requests go out once the server has answered it);
//! - each request goes upstream without the protocol's `_meta` keys, and each answer comes back
//!   with `resultType: "complete"` and the server's identity in `_meta` (and `ttlMs` and
//!   `cacheScope` on `tools/list`, which the revision requires);
//! - methods the revision removed (`ping`, `logging/setLevel`) get "method not found", and
//!   session-wide notifications (`notifications/message` and the like) are not sent to an
//!   agent that never opened a session of its own.
//!
//! Agents that send `initialize` are served exactly as before; the era is chosen per request,
//! so both can share one relay.

use std::collections::HashMap;

use codeflow_transport::{ErrorObject, codes};
use serde_json::{Map, Value, json};

/// The stateless revision this edge serves.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The session revision the server speaks (and the one the relay opens with).
pub const SESSION_VERSION: &str = "2025-11-25";
/// Every revision the relay answers: the modern one here, the rest through `initialize`.
pub const SUPPORTED_VERSIONS: [&str; 5] = [
    MODERN_VERSION,
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "2024-11-05",
];

/// The id of the relay's own `initialize` for a modern agent.
pub const MODERN_INIT_ID: &str = "r:modern-initialize";

const KEY_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const KEY_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const KEY_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
const KEY_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
const KEY_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// `UnsupportedProtocolVersionError` (2026-07-28).
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// How long an agent may cache `tools/list` (the catalogue is fixed while a server runs).
const TOOLS_TTL_MS: u64 = 300_000;

/// Most modern requests remembered for translating their answers; more than the relay keeps
/// in flight, so only a bug could fill it.
const MAX_REMEMBERED: usize = 8192;

/// What a modern request declares about itself in `_meta`.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub capabilities: Value,
    pub client_info: Option<Value>,
}

/// Reads a request's era: `Ok(None)` for a legacy request (no protocol version in `_meta`),
/// `Ok(Some(_))` for a modern one, and the error the revision prescribes for a malformed or
/// unsupported one.
pub fn envelope(params: Option<&Value>) -> Result<Option<Envelope>, ErrorObject> {
    let Some(meta) = params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object)
    else {
        return Ok(None);
    };
    let Some(version) = meta.get(KEY_VERSION) else {
        return Ok(None);
    };
    let Some(version) = version.as_str() else {
        return Err(ErrorObject::new(
            codes::INVALID_PARAMS,
            format!("`_meta.{KEY_VERSION}` must be a string"),
        ));
    };
    if version != MODERN_VERSION {
        return Err(ErrorObject {
            code: UNSUPPORTED_PROTOCOL_VERSION,
            message: format!(
                "Unsupported protocol version `{version}`: this relay serves {MODERN_VERSION} per request, and {SESSION_VERSION} and earlier through initialize"
            ),
            data: Some(json!({"supported": SUPPORTED_VERSIONS, "requested": version})),
        });
    }
    let Some(capabilities) = meta.get(KEY_CAPABILITIES).filter(|c| c.is_object()) else {
        return Err(ErrorObject::new(
            codes::INVALID_PARAMS,
            format!("a {MODERN_VERSION} request needs `_meta.{KEY_CAPABILITIES}` (an object)"),
        ));
    };
    Ok(Some(Envelope {
        capabilities: capabilities.clone(),
        client_info: meta.get(KEY_CLIENT_INFO).cloned(),
    }))
}

/// The params without the protocol's per-request keys (the server's session already has them
/// from `initialize`); other `_meta` keys (`progressToken`, trace context) stay.
pub fn strip(params: Option<Value>) -> Option<Value> {
    let mut params = params?;
    if let Some(Value::Object(meta)) = params.get_mut("_meta") {
        for key in [
            KEY_VERSION,
            KEY_CAPABILITIES,
            KEY_CLIENT_INFO,
            KEY_LOG_LEVEL,
        ] {
            meta.remove(key);
        }
        if meta.is_empty()
            && let Value::Object(p) = &mut params
        {
            p.remove("_meta");
        }
    }
    Some(params)
}

/// The `initialize` params the relay opens the server's session with for a modern agent.
pub fn session_params(envelope: &Envelope) -> Value {
    let client_info = envelope
        .client_info
        .clone()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({"name": "mcp-client", "version": "0"}));
    // Extensions are a 2026 addition the server's session does not know.
    let mut capabilities = envelope.capabilities.clone();
    if let Value::Object(c) = &mut capabilities {
        c.remove("extensions");
    }
    json!({
        "protocolVersion": SESSION_VERSION,
        "capabilities": capabilities,
        "clientInfo": client_info,
    })
}

/// What the modern edge keeps: which requests are modern (their answers are translated) and
/// what the server said about itself.
#[derive(Debug, Default)]
pub struct ModernEdge {
    /// Modern requests not answered yet: JSON text of the id → method.
    pending: HashMap<String, String>,
    /// `serverInfo` and `instructions` from the server's `initialize` answer.
    server_info: Option<Value>,
    instructions: Option<Value>,
    /// Whether a modern request has been served (and no `initialize` from the agent).
    pub agent_is_modern: bool,
}

impl ModernEdge {
    /// Remembers a modern request, to translate its answer.
    pub fn sent(&mut self, id: &Value, method: &str) {
        if self.pending.len() >= MAX_REMEMBERED {
            tracing::warn!("too many unanswered modern requests remembered; forgetting them");
            self.pending.clear();
        }
        self.pending.insert(id.to_string(), method.to_owned());
    }

    /// The method of a modern request this answers (and forgets it); `None` for a legacy one.
    pub fn answered(&mut self, id: &Value) -> Option<String> {
        self.pending.remove(&id.to_string())
    }

    /// Learns the server's identity from an `initialize` answer.
    pub fn server_initialized(&mut self, result: &Value) {
        if let Some(info) = result.get("serverInfo") {
            self.server_info = Some(info.clone());
        }
        if let Some(text) = result.get("instructions") {
            self.instructions = Some(text.clone());
        }
    }

    fn server_info(&self) -> Value {
        self.server_info
            .clone()
            .unwrap_or_else(|| json!({"name": "codeflow", "version": env!("CARGO_PKG_VERSION")}))
    }

    /// The `server/discover` result.
    pub fn discover(&self) -> Value {
        let mut result = json!({
            "resultType": "complete",
            "supportedVersions": SUPPORTED_VERSIONS,
            "capabilities": {"tools": {}},
            "_meta": {KEY_SERVER_INFO: self.server_info()},
            "ttlMs": TOOLS_TTL_MS,
            "cacheScope": "private",
        });
        if let (Some(text), Value::Object(r)) = (&self.instructions, &mut result) {
            r.insert("instructions".into(), text.clone());
        }
        result
    }

    /// A server result as the revision shapes it.
    pub fn translate(&self, method: &str, result: Value) -> Value {
        let mut result = match result {
            Value::Object(r) => r,
            other => {
                let mut r = Map::new();
                r.insert("result".into(), other);
                r
            }
        };
        result.insert("resultType".into(), json!("complete"));
        let meta = result.entry("_meta").or_insert_with(|| json!({}));
        if let Value::Object(meta) = meta {
            meta.insert(KEY_SERVER_INFO.into(), self.server_info());
        }
        if method == "tools/list" {
            result.insert("ttlMs".into(), json!(TOOLS_TTL_MS));
            // Private: what a token may call is the token's.
            result.insert("cacheScope".into(), json!("private"));
        }
        Value::Object(result)
    }
}

/// Methods the revision removed: a modern request for one is "method not found".
pub fn removed(method: &str) -> bool {
    matches!(method, "ping" | "logging/setLevel" | "initialize")
}

/// Server notifications a modern agent may get: only those tied to one of its requests.
pub fn notification_for_modern(method: &str) -> bool {
    matches!(method, "notifications/progress" | "notifications/cancelled")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modern(extra: Value) -> Value {
        let mut params = json!({"_meta": {
            KEY_VERSION: MODERN_VERSION,
            KEY_CAPABILITIES: {},
            KEY_CLIENT_INFO: {"name": "t", "version": "1"},
        }});
        if let (Value::Object(p), Value::Object(e)) = (&mut params, extra) {
            p.extend(e);
        }
        params
    }

    #[test]
    fn eras_are_told_apart_per_request() {
        assert_eq!(envelope(None), Ok(None));
        assert_eq!(envelope(Some(&json!({"name": "x"}))), Ok(None));
        assert_eq!(
            envelope(Some(&json!({"_meta": {"progressToken": 1}}))),
            Ok(None)
        );
        let e = envelope(Some(&modern(json!({})))).unwrap().unwrap();
        assert_eq!(e.client_info, Some(json!({"name": "t", "version": "1"})));
    }

    #[test]
    fn malformed_or_unsupported_requests_get_the_revisions_errors() {
        let old = json!({"_meta": {KEY_VERSION: "2025-11-25", KEY_CAPABILITIES: {}}});
        let e = envelope(Some(&old)).unwrap_err();
        assert_eq!(e.code, UNSUPPORTED_PROTOCOL_VERSION);
        let data = e.data.unwrap();
        assert_eq!(data["supported"][0], MODERN_VERSION);
        assert_eq!(data["requested"], "2025-11-25");
        let no_caps = json!({"_meta": {KEY_VERSION: MODERN_VERSION}});
        assert_eq!(
            envelope(Some(&no_caps)).unwrap_err().code,
            codes::INVALID_PARAMS
        );
    }

    #[test]
    fn strip_keeps_other_meta_keys() {
        let mut p = modern(json!({"name": "x"}));
        p["_meta"]["progressToken"] = json!(7);
        let s = strip(Some(p)).unwrap();
        assert_eq!(s, json!({"name": "x", "_meta": {"progressToken": 7}}));
        assert_eq!(
            strip(Some(modern(json!({"name": "x"})))),
            Some(json!({"name": "x"}))
        );
    }

    #[test]
    fn answers_are_shaped_for_the_revision() {
        let mut edge = ModernEdge::default();
        edge.server_initialized(&json!({"serverInfo": {"name": "codeflow", "version": "9"}}));
        let r = edge.translate("tools/list", json!({"tools": []}));
        assert_eq!(r["resultType"], "complete");
        assert_eq!(r["_meta"][KEY_SERVER_INFO]["version"], "9");
        assert_eq!(r["cacheScope"], "private");
        let d = edge.discover();
        assert_eq!(d["supportedVersions"][0], MODERN_VERSION);
        assert_eq!(d["capabilities"], json!({"tools": {}}));
        edge.sent(&json!(1), "tools/call");
        assert_eq!(edge.answered(&json!("1")), None, "ids keep their type");
        assert_eq!(edge.answered(&json!(1)).as_deref(), Some("tools/call"));
    }

    #[test]
    fn the_session_is_opened_with_the_agents_identity() {
        let e = Envelope {
            capabilities: json!({"extensions": {"x/y": {}}, "roots": {}}),
            client_info: None,
        };
        let p = session_params(&e);
        assert_eq!(p["protocolVersion"], SESSION_VERSION);
        assert_eq!(p["capabilities"], json!({"roots": {}}));
        assert_eq!(p["clientInfo"]["name"], "mcp-client");
    }
}
