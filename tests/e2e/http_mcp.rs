//! `/mcp`, MCP's Streamable HTTP on the server, for MCP clients without the relay: the
//! official TypeScript SDK's HTTP client against the real server — 2025-11-25 sessions and
//! stateless 2026-07-28 —, with the same tokens and rights as `/ws`; reads of shared projects
//! and of mirrors a relay filled; writes refused with an error that says they need a relay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use codeflow_e2e::fs::fixture;
use codeflow_e2e::{Relay, Server, http_get, http_post, node_clients, token};
use serde_json::{Value, json};

const SECRET: &str = "http-mcp-e2e-secret-0123456789abcdef";

/// The SDK's HTTP client; `mode` is its version negotiation (`legacy`: 2025-11-25 sessions,
/// `auto`: stateless 2026-07-28 after a `server/discover` probe).
async fn http_client_in(mode: &str, url: &str, token: &str, calls: &[String]) -> Value {
    let mut args = vec![url, token, mode];
    args.extend(calls.iter().map(String::as_str));
    node_clients::run("http_client.mjs", &args).await
}

async fn http_client(url: &str, token: &str, calls: &[String]) -> Value {
    http_client_in("legacy", url, token, calls).await
}

fn call(tool: &str, args: Value) -> String {
    format!("{tool}={args}")
}

/// A project whose mirror a relay has filled (and then gone away).
async fn mirrored_project(
    server: &Server,
    project: &str,
    relay_token: Option<&str>,
) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.py"), "def greet():\n    return 1\n").unwrap();
    let extra: Vec<&str> = relay_token.map(|t| vec!["--token", t]).unwrap_or_default();
    let relay = Relay::spawn(&server.url(), project, root.path(), &extra);
    relay.initialize().await;
    let health = relay
        .tool("health_check", json!({"include_details": true}))
        .await;
    assert_eq!(
        health["structuredContent"]["mirror"]["files"], 1,
        "{health}"
    );
    relay.close().await;
    root
}

#[tokio::test]
async fn the_official_sdk_lists_and_calls_tools_on_mcp_with_a_token() {
    let server = Server::start_with(&["--jwt-secret", SECRET], &[]).await;
    let good = token(SECRET, json!(["web"]), 600);
    let _root = mirrored_project(&server, "web", Some(&good)).await;
    let url = format!("http://127.0.0.1:{}/mcp?project=web", server.port);

    let seen = http_client(
        &url,
        &good,
        &[
            call("health_check", json!({})),
            call("get_document_symbols", json!({"file_path": "a.py"})),
        ],
    )
    .await;
    assert_eq!(seen["connected"], true, "{seen}");
    assert_eq!(seen["protocol_version"], "2025-11-25", "{seen}");
    assert!(
        seen["session_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{seen}"
    );
    assert_eq!(seen["server"], "codeflow");
    assert!(
        seen["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "find_definition"),
        "{seen}"
    );
    let health = &seen["results"][0];
    assert_eq!(health["is_error"], false, "{seen}");
    assert_eq!(health["structured"]["session"]["project"], "web");
    assert_eq!(health["structured"]["session"]["file_stream"], false);
    // Read from the mirror the relay filled, by a real language server.
    let symbols = &seen["results"][1];
    assert_eq!(symbols["is_error"], false, "{seen}");
    assert_eq!(
        symbols["structured"]["symbols"][0]["name"], "greet",
        "{seen}"
    );
}

#[tokio::test]
async fn a_wrong_token_is_refused_on_mcp() {
    let server = Server::start_with(&["--jwt-secret", SECRET], &[]).await;
    let good = token(SECRET, json!(["web"]), 600);
    let _root = mirrored_project(&server, "web", Some(&good)).await;
    let url = format!("http://127.0.0.1:{}/mcp?project=web", server.port);

    let forged = token("another-secret-0123456789abcdef-xyz", json!(["web"]), 600);
    let seen = http_client(&url, &forged, &[]).await;
    assert_eq!(seen["connected"], false, "{seen}");
    assert_eq!(seen["status"], 401, "{seen}");
    assert!(
        seen["error"].as_str().unwrap().contains("signature"),
        "{seen}"
    );

    // No token where one is required, and a token for another project: refused too.
    let seen = http_client(&url, "-", &[]).await;
    assert_eq!(seen["connected"], false, "{seen}");
    assert_eq!(seen["status"], 401, "{seen}");
    let elsewhere = token(SECRET, json!(["other"]), 600);
    let seen = http_client(&url, &elsewhere, &[]).await;
    assert_eq!(seen["connected"], false, "{seen}");
    assert!(matches!(seen["status"].as_u64(), Some(401 | 403)), "{seen}");
}

#[tokio::test]
async fn a_write_on_mcp_to_a_mirror_only_project_says_it_needs_a_relay() {
    let server = Server::start().await;
    let root = mirrored_project(&server, "mirror-only", None).await;
    let url = format!("http://127.0.0.1:{}/mcp?project=mirror-only", server.port);
    let seen = http_client(
        &url,
        "-",
        &[call(
            "create_file",
            json!({"file_path": "b.py", "content": "y = 2\n"}),
        )],
    )
    .await;
    let write = &seen["results"][0];
    assert_eq!(write["is_error"], true, "{seen}");
    let text = write["text"].as_str().unwrap();
    assert!(
        text.contains("writes need a relay (codeflow-client)"),
        "{text}"
    );
    assert!(!root.path().join("b.py").exists(), "nothing was written");

    // A project the server has never seen is refused at initialize, saying why.
    let url = format!("http://127.0.0.1:{}/mcp?project=never-seen", server.port);
    let seen = http_client(&url, "-", &[]).await;
    assert_eq!(seen["connected"], false, "{seen}");
    assert!(
        seen["error"].as_str().unwrap().contains("no mirror"),
        "{seen}"
    );
}

#[tokio::test]
async fn a_shared_project_is_read_in_place_on_mcp() {
    let (_dir, server_root) = fixture("python");
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("codeflow.toml");
    std::fs::write(
        &config,
        format!("[shared_projects]\nmono = \"{}\"\n", server_root.display()),
    )
    .unwrap();
    let server = Server::start_with(&["--config", config.to_str().unwrap()], &[]).await;
    // The project is named by a header here (`CodeFlow-Project` works as well as ?project=);
    // the SDK cannot add one to its requests, so the query it is.
    let url = format!("http://127.0.0.1:{}/mcp?project=mono", server.port);
    let seen = http_client(
        &url,
        "-",
        &[call(
            "find_definition",
            json!({"file_path": "app.py", "symbol_name": "scale"}),
        )],
    )
    .await;
    let found = &seen["results"][0];
    assert_eq!(found["is_error"], false, "{seen}");
    assert!(
        found["text"].as_str().unwrap().contains("pkg/shapes.py"),
        "{seen}"
    );
}

#[tokio::test]
async fn the_sdk_in_auto_mode_speaks_2026_07_28_on_mcp_with_the_same_token_rules() {
    let server = Server::start_with(&["--jwt-secret", SECRET], &[]).await;
    let good = token(SECRET, json!(["web"]), 600);
    let root = mirrored_project(&server, "web", Some(&good)).await;
    let url = format!("http://127.0.0.1:{}/mcp?project=web", server.port);

    let seen = http_client_in(
        "auto",
        &url,
        &good,
        &[
            call("get_document_symbols", json!({"file_path": "a.py"})),
            call(
                "create_file",
                json!({"file_path": "b.py", "content": "y = 2\n"}),
            ),
        ],
    )
    .await;
    assert_eq!(seen["connected"], true, "{seen}");
    assert_eq!(seen["protocol_version"], "2026-07-28", "{seen}");
    assert_eq!(
        seen["session_id"],
        Value::Null,
        "stateless: no Mcp-Session-Id"
    );
    let symbols = &seen["results"][0];
    assert_eq!(symbols["is_error"], false, "{seen}");
    assert_eq!(
        symbols["structured"]["symbols"][0]["name"], "greet",
        "{seen}"
    );
    let write = &seen["results"][1];
    assert_eq!(write["is_error"], true, "{seen}");
    assert!(
        write["text"]
            .as_str()
            .unwrap()
            .contains("writes need a relay (codeflow-client)"),
        "{seen}"
    );
    assert!(!root.path().join("b.py").exists());

    let forged = token("another-secret-0123456789abcdef-xyz", json!(["web"]), 600);
    let seen = http_client_in("auto", &url, &forged, &[]).await;
    assert_eq!(seen["connected"], false, "{seen}");
    assert_eq!(seen["status"], 401, "{seen}");
}

#[tokio::test]
async fn mcp_answers_the_transports_rules_with_the_specified_statuses() {
    let server = Server::start().await;
    let _root = mirrored_project(&server, "raw", None).await;
    let path = "/mcp?project=raw";
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let body = |method: &str, params: Value| {
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string()
    };
    let parse = |text: &str| -> Value { serde_json::from_str(text).unwrap() };

    // No server→client stream.
    assert_eq!(http_get(server.port, path).await.unwrap().0, 405);

    // 2026-07-28: headers must mirror the body.
    let list = body("tools/list", json!({"_meta": meta}));
    let (status, text) = http_post(server.port, path, &[("Mcp-Method", "tools/list")], &list)
        .await
        .unwrap();
    assert_eq!(status, 400, "{text}");
    assert_eq!(parse(&text)["error"]["code"], -32020, "{text}");
    let headers = [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/list"),
    ];
    let (status, text) = http_post(server.port, path, &headers, &list).await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(parse(&text)["result"]["resultType"], "complete", "{text}");
    let call = body(
        "tools/call",
        json!({"_meta": meta, "name": "health_check", "arguments": {}}),
    );
    let wrong_name = [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "get_hover"),
    ];
    let (status, text) = http_post(server.port, path, &wrong_name, &call)
        .await
        .unwrap();
    assert_eq!(
        (status, parse(&text)["error"]["code"].clone()),
        (400, json!(-32020)),
        "{text}"
    );
    let encoded = [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "=?base64?aGVhbHRoX2NoZWNr?="),
    ];
    let (status, text) = http_post(server.port, path, &encoded, &call).await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(parse(&text)["result"]["isError"], false, "{text}");

    // Another version: 400 with the supported ones; a removed method: 404 with -32601.
    let old_meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2025-06-18",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let old = body("tools/list", json!({"_meta": old_meta}));
    let (status, text) = http_post(server.port, path, &headers, &old).await.unwrap();
    assert_eq!(status, 400, "{text}");
    assert_eq!(parse(&text)["error"]["code"], -32022, "{text}");
    assert_eq!(parse(&text)["error"]["data"]["supported"][0], "2026-07-28");
    let ping = body("ping", json!({"_meta": meta}));
    let ping_headers = [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "ping"),
    ];
    let (status, text) = http_post(server.port, path, &ping_headers, &ping)
        .await
        .unwrap();
    assert_eq!(
        (status, parse(&text)["error"]["code"].clone()),
        (404, json!(-32601)),
        "{text}"
    );

    // 2025-11-25 without a session: only initialize opens one; an unknown session is 404.
    let (status, text) = http_post(server.port, path, &[], &body("tools/list", json!({})))
        .await
        .unwrap();
    assert_eq!(status, 400, "{text}");
    let (status, _) = http_post(
        server.port,
        path,
        &[("Mcp-Session-Id", "no-such-session")],
        &body("tools/list", json!({})),
    )
    .await
    .unwrap();
    assert_eq!(status, 404);
}
