//! Normalises the older codeflow-buddy message form into JSON-RPC 2.0.
//!
//! codeflow-buddy clients send messages without a `"jsonrpc"` member, put the handshake fields
//! (`project`, `projectRoot`, `token`, `sessionId`) at the top level of `initialize`, sometimes
//! send `initialize` without an `id`, and call a tool by using its name as the method. Existing
//! clients must keep working, so every inbound message passes through [`normalise`] before it is
//! parsed; replies always carry `"jsonrpc":"2.0"`.

use serde_json::{Map, Value, json};

/// Methods without a `/` that are protocol methods, not tool names.
const BARE_PROTOCOL_METHODS: &[&str] = &["initialize", "ping", "reconnect"];

/// Top-level members of a legacy `initialize`/`reconnect` that belong in `params`.
const HANDSHAKE_FIELDS: &[&str] = &[
    "project",
    "projectRoot",
    "token",
    "sessionId",
    "protocolVersion",
    "capabilities",
    "clientInfo",
];

/// Rewrites a legacy message into JSON-RPC 2.0 form; a message already in that form passes
/// through unchanged (apart from a tool-name method, which becomes `tools/call`).
pub fn normalise(value: Value) -> Value {
    let Value::Object(mut map) = value else {
        return value;
    };
    let legacy = !map.contains_key("jsonrpc");
    let Some(Value::String(method)) = map.get("method").cloned() else {
        return Value::Object(map);
    };
    map.insert("jsonrpc".into(), Value::String("2.0".into()));

    if method == "initialize" || method == "reconnect" {
        if legacy {
            hoist_handshake_fields(&mut map);
            // The ancestor's example sends `initialize` without an id; it still expects an answer.
            map.entry("id").or_insert(Value::Null);
        }
        return Value::Object(map);
    }

    if !method.contains('/') && !BARE_PROTOCOL_METHODS.contains(&method.as_str()) {
        let arguments = match map.remove("params") {
            Some(Value::Object(args)) => Value::Object(args),
            _ => json!({}),
        };
        map.insert("method".into(), Value::String("tools/call".into()));
        map.insert(
            "params".into(),
            json!({ "name": method, "arguments": arguments }),
        );
        if legacy {
            map.entry("id").or_insert(Value::Null);
        }
    }
    Value::Object(map)
}

fn hoist_handshake_fields(map: &mut Map<String, Value>) {
    let mut params = match map.remove("params") {
        Some(Value::Object(p)) => p,
        _ => Map::new(),
    };
    for field in HANDSHAKE_FIELDS {
        if let Some(v) = map.remove(*field) {
            params.entry(*field).or_insert(v);
        }
    }
    map.insert("params".into(), Value::Object(params));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: Value, expect: Value) {
        assert_eq!(normalise(input), expect);
    }

    #[test]
    fn legacy_initialize_without_id() {
        check(
            json!({"method":"initialize","project":"p","projectRoot":"/app","token":"t"}),
            json!({"jsonrpc":"2.0","id":null,"method":"initialize",
                   "params":{"project":"p","projectRoot":"/app","token":"t"}}),
        );
    }

    #[test]
    fn legacy_tool_name_as_method() {
        check(
            json!({"id":3,"method":"find_definition","params":{"file_path":"a.py"}}),
            json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
                   "params":{"name":"find_definition","arguments":{"file_path":"a.py"}}}),
        );
    }

    #[test]
    fn modern_messages_pass_through() {
        let m = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
        check(m.clone(), m);
        let n = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
        check(n.clone(), n);
        let r = json!({"id":1,"result":{}});
        check(r.clone(), r);
    }

    #[test]
    fn modern_initialize_keeps_params() {
        let m = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"project":"p"}});
        check(m.clone(), m);
    }
}
