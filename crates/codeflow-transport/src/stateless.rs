//! MCP 2026-07-28, the stateless revision, on the wire: what a request declares in `_meta`,
//! and the shapes of the answers. Both ends that serve it to agents use this — the relay
//! (`codeflow-client`, on stdio) and the server's `/mcp` (Streamable HTTP) — each translating
//! onto a 2025-11-25 session, which keeps the server→client requests file streaming needs.
//!
//! A modern request carries its protocol version and capabilities in `_meta`
//! (`io.modelcontextprotocol/protocolVersion`, `…/clientCapabilities`, optionally
//! `…/clientInfo` and `…/logLevel`) instead of an `initialize` handshake. Like [`crate::legacy`],
//! this is message shape only: what the methods mean is the MCP service's.

use serde_json::{Map, Value, json};

use crate::message::{ErrorObject, codes};

/// The stateless revision served.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The session revision CodeFlow's sessions speak (and modern requests are translated onto).
pub const SESSION_VERSION: &str = "2025-11-25";
/// Every revision answered: the modern one per request, the rest through `initialize`.
pub const SUPPORTED_VERSIONS: [&str; 5] = [
    MODERN_VERSION,
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "2024-11-05",
];

/// `_meta` key: the request's protocol version.
pub const KEY_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key: the client's capabilities for this request.
pub const KEY_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key: the client's name and version.
pub const KEY_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key: the log level wanted for this request.
pub const KEY_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// `_meta` key of results: the server's name and version.
pub const KEY_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// `HeaderMismatch` (Streamable HTTP headers that do not match the body).
pub const HEADER_MISMATCH: i64 = -32020;
/// `UnsupportedProtocolVersionError`.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// How long a client may cache `tools/list` (the catalogue is fixed while a server runs).
pub const TOOLS_TTL_MS: u64 = 300_000;

/// What a modern request declares about itself in `_meta`.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The protocol version (always [`MODERN_VERSION`] once accepted).
    pub version: String,
    /// `io.modelcontextprotocol/clientCapabilities`.
    pub capabilities: Value,
    /// `io.modelcontextprotocol/clientInfo`, when sent.
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
        return Err(unsupported_version(version));
    }
    let Some(capabilities) = meta.get(KEY_CAPABILITIES).filter(|c| c.is_object()) else {
        return Err(ErrorObject::new(
            codes::INVALID_PARAMS,
            format!("a {MODERN_VERSION} request needs `_meta.{KEY_CAPABILITIES}` (an object)"),
        ));
    };
    Ok(Some(Envelope {
        version: version.to_owned(),
        capabilities: capabilities.clone(),
        client_info: meta.get(KEY_CLIENT_INFO).cloned(),
    }))
}

/// `UnsupportedProtocolVersionError` for `requested`, listing the versions served.
pub fn unsupported_version(requested: &str) -> ErrorObject {
    ErrorObject {
        code: UNSUPPORTED_PROTOCOL_VERSION,
        message: format!(
            "Unsupported protocol version `{requested}`: {MODERN_VERSION} is served per request, {SESSION_VERSION} and earlier through initialize"
        ),
        data: Some(json!({"supported": SUPPORTED_VERSIONS, "requested": requested})),
    }
}

/// The params without the protocol's per-request keys (the session already has them from
/// `initialize`); other `_meta` keys (`progressToken`, trace context) stay.
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

/// The `initialize` params that open a 2025-11-25 session for a modern client, from what its
/// request says of it.
pub fn session_params(envelope: &Envelope) -> Value {
    let client_info = envelope
        .client_info
        .clone()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({"name": "mcp-client", "version": "0"}));
    // Extensions are a 2026 addition sessions do not know.
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

/// Methods the revision removed: a modern request for one is "method not found".
pub fn removed(method: &str) -> bool {
    matches!(method, "ping" | "logging/setLevel" | "initialize")
}

/// What the server said of itself in a session's `initialize` answer, for modern answers.
#[derive(Debug, Clone, Default)]
pub struct ServerIdentity {
    server_info: Option<Value>,
    instructions: Option<Value>,
}

impl ServerIdentity {
    /// Learns the server's identity from an `initialize` answer.
    pub fn learn(&mut self, initialize_result: &Value) {
        if let Some(info) = initialize_result.get("serverInfo") {
            self.server_info = Some(info.clone());
        }
        if let Some(text) = initialize_result.get("instructions") {
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

    /// A session's result for `method` as the revision shapes it: `resultType`, the server's
    /// identity in `_meta`, and the cache fields `tools/list` must carry.
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
        let mut identity = ServerIdentity::default();
        identity.learn(&json!({"serverInfo": {"name": "codeflow", "version": "9"}}));
        let r = identity.translate("tools/list", json!({"tools": []}));
        assert_eq!(r["resultType"], "complete");
        assert_eq!(r["_meta"][KEY_SERVER_INFO]["version"], "9");
        assert_eq!(r["cacheScope"], "private");
        let d = identity.discover();
        assert_eq!(d["supportedVersions"][0], MODERN_VERSION);
        assert_eq!(d["capabilities"], json!({"tools": {}}));
    }

    #[test]
    fn the_session_is_opened_with_the_clients_identity() {
        let e = Envelope {
            version: MODERN_VERSION.into(),
            capabilities: json!({"extensions": {"x/y": {}}, "roots": {}}),
            client_info: None,
        };
        let p = session_params(&e);
        assert_eq!(p["protocolVersion"], SESSION_VERSION);
        assert_eq!(p["capabilities"], json!({"roots": {}}));
        assert_eq!(p["clientInfo"]["name"], "mcp-client");
    }
}
