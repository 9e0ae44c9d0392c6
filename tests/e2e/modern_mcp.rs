//! MCP 2026-07-28 at the agent edge: the relay answers `server/discover` and serves the
//! stateless revision to agents that choose it, on the 2025-11-25 session it keeps with the
//! server; 2025-era agents keep negotiating their own version. Real clients: the official
//! TypeScript SDK 2.x in auto mode and 1.x, launching the real relay against the real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use codeflow_e2e::{Relay, Server, binary, node_clients};
use serde_json::{Value, json};

fn project_with_a_file() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.py"), "x = 1\n").unwrap();
    root
}

async fn sdk_client(era: &str, server: &Server, project: &str, root: &std::path::Path) -> Value {
    let relay = binary("codeflow-client");
    node_clients::run(
        "stdio_client.mjs",
        &[
            era,
            relay.to_str().unwrap(),
            &server.url(),
            project,
            root.to_str().unwrap(),
        ],
    )
    .await
}

fn assert_called_health_check(seen: &Value, project: &str) {
    assert!(
        seen["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "health_check"),
        "{seen}"
    );
    assert_eq!(seen["is_error"], false, "{seen}");
    assert_eq!(seen["structured"]["session"]["project"], project, "{seen}");
    assert_eq!(
        seen["structured"]["mirror"]["files"], 1,
        "the relay synced the project before the call: {seen}"
    );
    assert!(seen["text"].as_str().unwrap().contains("healthy"), "{seen}");
}

#[tokio::test]
async fn sdk_2_in_auto_mode_negotiates_2026_07_28_through_the_relay_and_calls_tools() {
    let server = Server::start().await;
    let root = project_with_a_file();
    let seen = sdk_client("auto", &server, "modern-sdk", root.path()).await;
    assert_eq!(seen["protocol_version"], "2026-07-28", "{seen}");
    let discovered = &seen["discovered"];
    assert_eq!(discovered["supportedVersions"][0], "2026-07-28", "{seen}");
    assert_eq!(discovered["capabilities"], json!({"tools": {}}), "{seen}");
    assert_eq!(seen["server"], "codeflow", "{seen}");
    assert_called_health_check(&seen, "modern-sdk");
}

#[tokio::test]
async fn a_2025_era_sdk_still_negotiates_its_own_version() {
    let server = Server::start().await;
    let root = project_with_a_file();
    // SDK 1.x: `initialize` with 2025-11-25, then ping and logging/setLevel (session methods
    // the 2026 revision removed) before listing and calling.
    let seen = sdk_client("2025", &server, "legacy-sdk", root.path()).await;
    assert_eq!(seen["protocol_version"], "2025-11-25", "{seen}");
    assert_eq!(seen["server"], "codeflow", "{seen}");
    assert_called_health_check(&seen, "legacy-sdk");
}

fn modern_meta(version: &str) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
    })
}

#[tokio::test]
async fn the_relay_applies_the_revisions_rules_per_request() {
    let server = Server::start().await;
    let root = project_with_a_file();
    let relay = Relay::spawn(&server.url(), "modern-raw", root.path(), &[]);

    let discover = relay
        .call(
            "server/discover",
            json!({"_meta": modern_meta("2026-07-28")}),
        )
        .await;
    assert_eq!(discover["result"]["resultType"], "complete", "{discover}");
    assert_eq!(
        discover["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "codeflow"
    );

    // A version the relay does not serve per request: UnsupportedProtocolVersionError with
    // the versions it does.
    let old = relay
        .call("tools/list", json!({"_meta": modern_meta("2025-11-25")}))
        .await;
    assert_eq!(old["error"]["code"], -32022, "{old}");
    assert_eq!(old["error"]["data"]["requested"], "2025-11-25");
    assert_eq!(old["error"]["data"]["supported"][0], "2026-07-28");

    // A modern request without its capabilities is malformed.
    let bad = relay
        .call(
            "tools/list",
            json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
        )
        .await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");

    // No initialize: the first modern request opens the server session by itself.
    let list = relay
        .call("tools/list", json!({"_meta": modern_meta("2026-07-28")}))
        .await;
    assert_eq!(list["result"]["resultType"], "complete", "{list}");
    assert_eq!(list["result"]["cacheScope"], "private");
    assert!(list["result"]["ttlMs"].as_u64().is_some());
    let call = relay
        .call(
            "tools/call",
            json!({
                "_meta": modern_meta("2026-07-28"),
                "name": "health_check",
                "arguments": {},
            }),
        )
        .await;
    assert_eq!(call["result"]["resultType"], "complete", "{call}");
    assert_eq!(call["result"]["isError"], false, "{call}");
    assert_eq!(
        call["result"]["structuredContent"]["session"]["project"],
        "modern-raw"
    );

    // Removed in 2026-07-28.
    let ping = relay
        .call("ping", json!({"_meta": modern_meta("2026-07-28")}))
        .await;
    assert_eq!(ping["error"]["code"], -32601, "{ping}");
    relay.close().await;
}

#[tokio::test]
async fn modern_requests_get_an_answer_when_the_server_is_unreachable() {
    // Nothing listens there: the session the relay opens for the agent cannot be opened, and
    // the requests waiting for it get the reason instead of waiting forever.
    let port = codeflow_e2e::free_port();
    let root = project_with_a_file();
    let relay = Relay::spawn(
        &format!("ws://127.0.0.1:{port}/ws"),
        "modern-offline",
        root.path(),
        &["--offline-wait-secs", "1"],
    );
    // Discovery needs no server.
    let discover = relay
        .call(
            "server/discover",
            json!({"_meta": modern_meta("2026-07-28")}),
        )
        .await;
    assert_eq!(discover["result"]["supportedVersions"][0], "2026-07-28");
    let list = relay
        .call("tools/list", json!({"_meta": modern_meta("2026-07-28")}))
        .await;
    assert_eq!(list["error"]["code"], -32007, "{list}");
    assert!(
        list["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{list}"
    );
    relay.close().await;
}

#[tokio::test]
async fn a_modern_request_during_a_legacy_initialize_goes_on_that_session() {
    let server = Server::start().await;
    let root = project_with_a_file();
    let relay = Relay::spawn(&server.url(), "both-eras", root.path(), &[]);
    // The legacy handshake and a modern request pipelined behind it, before any answer.
    relay
        .send_line(
            &json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "legacy", "version": "1"}}})
            .to_string(),
        )
        .await;
    let list = relay
        .call("tools/list", json!({"_meta": modern_meta("2026-07-28")}))
        .await;
    assert_eq!(list["result"]["resultType"], "complete", "{list}");
    assert!(
        list["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );
    relay.close().await;
}
