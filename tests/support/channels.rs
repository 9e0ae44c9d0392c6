//! Channel helpers for the tests that publish and subscribe (`channels/publish` needs a server
//! started with [`TEST_ENV`]).

use serde_json::{Value, json};

use crate::Ws;

/// The environment that makes the server offer its test-only tools and methods
/// (`channels/publish`, `test_counter`); never set in production.
pub const TEST_ENV: &[(&str, &str)] = &[("CODEFLOW_TEST_TOOLS", "true")];

/// Publishes `count` events of `pad` bytes on `channel`; the result.
pub async fn publish(ws: &mut Ws, id: i64, channel: &str, count: u64, pad: u64) -> Value {
    let reply = ws
        .request(
            json!(id),
            "channels/publish",
            json!({"channel": channel, "count": count, "padBytes": pad}),
        )
        .await;
    reply
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("publish failed: {reply}"))
}

/// `channels/subscribe` with `params`; the result.
pub async fn subscribe(ws: &mut Ws, id: i64, params: Value) -> Value {
    let reply = ws.request(json!(id), "channels/subscribe", params).await;
    reply
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("subscribe failed: {reply}"))
}

/// The next `channels/event` notifications, `n` of them.
pub async fn events(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = ws.json().await;
        if m["method"] == "channels/event" {
            out.push(m["params"].clone());
        }
    }
    out
}
