//! The walking skeleton, end to end: the real server and relay binaries, real WebSocket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use codeflow_e2e::{Next, Relay, Server, Ws, http_get, token};
use serde_json::{Value, json};

fn error_code(reply: &Value) -> Option<i64> {
    reply.pointer("/error/code").and_then(Value::as_i64)
}

#[tokio::test]
async fn mcp_client_over_the_relay_lists_tools_and_checks_health() {
    let server = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let relay = Relay::spawn(&server.url(), "demo", root.path(), &[]);

    // A probe without the 2026-07-28 `_meta` is malformed (modern_mcp.rs has real probes); the
    // relay answers it without losing its connection.
    let probe = relay.call("server/discover", json!({})).await;
    assert_eq!(error_code(&probe), Some(-32602), "{probe}");

    let init = relay.initialize().await;
    assert_eq!(init["protocolVersion"], "2025-11-25");
    assert_eq!(init["serverInfo"]["name"], "codeflow");
    assert!(init["sessionId"].as_str().is_some_and(|s| !s.is_empty()));

    let tools = relay.call("tools/list", json!({})).await;
    let list = tools["result"]["tools"].as_array().expect("tools array");
    let health = list
        .iter()
        .find(|t| t["name"] == "health_check")
        .expect("health_check listed");
    assert!(health["description"].as_str().is_some_and(|d| d.len() > 20));
    assert_eq!(health["inputSchema"]["type"], "object");
    assert_eq!(health["outputSchema"]["type"], "object");

    let result = relay
        .tool("health_check", json!({"include_details": true}))
        .await;
    assert_eq!(result["isError"], false);
    let s = &result["structuredContent"];
    assert_eq!(s["status"], "ok");
    assert_eq!(s["service"], "codeflow-server");
    assert_eq!(s["session"]["project"], "demo");
    assert_eq!(s["session"]["id"], init["sessionId"]);
    assert_eq!(
        s["session"]["project_root"],
        root.path()
            .canonicalize()
            .unwrap()
            .to_string_lossy()
            .as_ref()
    );
    assert_eq!(
        s["session"]["file_stream"], true,
        "the relay declares fileStream"
    );
    assert!(s["sessions"].as_u64().unwrap() >= 1);
    assert_eq!(s["sessions_per_project"]["demo"], 1);
    assert!(
        result["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("healthy")
    );

    let ping = relay.call("ping", json!({})).await;
    assert_eq!(ping["result"], json!({}));

    let unknown = relay.call("no/such/method", json!({})).await;
    assert_eq!(error_code(&unknown), Some(-32601), "{unknown}");

    let unknown_tool = relay
        .call("tools/call", json!({"name": "nope", "arguments": {}}))
        .await;
    assert!(unknown_tool.get("error").is_some(), "{unknown_tool}");

    assert_eq!(
        relay.close().await,
        Some(0),
        "the relay exits cleanly when stdin closes"
    );
}

#[tokio::test]
async fn legacy_clients_are_answered_in_json_rpc_2() {
    let server = Server::start().await;
    let mut ws = Ws::connect(&server.url()).await;
    // The ancestor's example handshake: no jsonrpc member, no id, fields at top level.
    ws.send_json(json!({"method": "initialize", "project": "legacy", "projectRoot": "/app"}))
        .await;
    let init = ws.json().await;
    assert_eq!(init["jsonrpc"], "2.0");
    assert_eq!(init["id"], Value::Null);
    assert!(init["result"]["sessionId"].is_string(), "{init}");

    // A tool called by using its name as the method.
    ws.send_json(json!({"id": 7, "method": "health_check", "params": {}}))
        .await;
    let reply = ws.json().await;
    assert_eq!(reply["jsonrpc"], "2.0");
    assert_eq!(reply["id"], 7);
    assert_eq!(
        reply["result"]["structuredContent"]["session"]["project"],
        "legacy"
    );
    assert_eq!(
        reply["result"]["structuredContent"]["session"]["project_root"],
        "/app"
    );
    ws.close().await;
}

#[tokio::test]
async fn fifty_clients_on_five_projects_get_their_own_answers() {
    let server = Server::start().await;
    let url = server.url();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let project = format!("proj-{}", i % 5);
            let root = format!("/work/{project}/client-{i}");
            let mut ws = Ws::connect(&url).await;
            let init = ws.initialize(&project, &root).await;
            let sid = init["sessionId"].as_str().unwrap().to_owned();
            let mut answers = Vec::new();
            for n in 0..3 {
                let reply = ws
                    .request(
                        json!(100 + n),
                        "tools/call",
                        json!({"name": "health_check", "arguments": {}}),
                    )
                    .await;
                answers.push(reply["result"]["structuredContent"]["session"].clone());
            }
            (project, root, sid, answers, ws)
        }));
    }
    let mut sessions = std::collections::HashSet::new();
    let mut sockets = Vec::new();
    for task in tasks {
        let (project, root, sid, answers, ws) = task.await.unwrap();
        for a in answers {
            assert_eq!(a["project"], project.as_str());
            assert_eq!(a["project_root"], root.as_str());
            assert_eq!(a["id"], sid.as_str());
        }
        assert!(sessions.insert(sid), "session ids are unique");
        sockets.push(ws);
    }
    let (status, body) = http_get(server.port, "/healthz").await.unwrap();
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["sessions"], 50);
    assert_eq!(health["projects"], 5);
    for ws in sockets {
        ws.close().await;
    }
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_the_server_keeps_serving() {
    let server = Server::start_with(&[], &[("CODEFLOW_MAX_MESSAGE_BYTES", "65536")]).await;

    // Non-JSON text: a parse error, and the socket stays usable.
    let mut ws = Ws::connect(&server.url()).await;
    ws.send_text("this is not json").await;
    let e = ws.json().await;
    assert_eq!(e["error"]["code"], -32700);
    assert_eq!(e["id"], Value::Null);
    // A binary frame: invalid request.
    ws.send_binary(vec![0, 1, 2, 3]).await;
    let e = ws.json().await;
    assert_eq!(e["error"]["code"], -32600);
    assert!(e["error"]["message"].as_str().unwrap().contains("binary"));
    // Structurally wrong JSON-RPC.
    ws.send_json(json!({"id": 1, "method": 42})).await;
    assert_eq!(ws.json().await["error"]["code"], -32600);
    // An invalid project id: a clear error naming the rule; still open for a retry.
    let bad = ws
        .request(
            json!(2),
            "initialize",
            json!({"project": "../etc", "projectRoot": "/app"}),
        )
        .await;
    assert_eq!(bad["error"]["code"], -32602);
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("project id")
    );
    assert!(bad["error"]["data"]["suggestion"].is_string());
    let rel = ws
        .request(
            json!(3),
            "initialize",
            json!({"project": "ok", "projectRoot": "relative/path"}),
        )
        .await;
    assert_eq!(rel["error"]["code"], -32602);
    // Now a good handshake works on the same socket; a second initialize is refused.
    let init = ws.initialize("ok", "/app").await;
    assert!(init["sessionId"].is_string());
    let again = ws
        .request(
            json!(4),
            "initialize",
            json!({"project": "ok", "projectRoot": "/app"}),
        )
        .await;
    assert_eq!(again["error"]["code"], -32600);
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already initialized")
    );
    let still = ws.request(json!(5), "ping", json!({})).await;
    assert_eq!(still["result"], json!({}));

    // Oversize frame: closed with 1009.
    let mut big = Ws::connect(&server.url()).await;
    big.send_text(&format!("{{\"x\":\"{}\"}}", "a".repeat(200_000)))
        .await;
    assert_eq!(big.closed().await, Some(1009));

    // A request before initialize: an error, then the close.
    let mut early = Ws::connect(&server.url()).await;
    let e = early.request(json!(1), "tools/list", json!({})).await;
    assert_eq!(e["error"]["code"], -32002);
    assert_eq!(early.closed().await, Some(4000));

    // The discovery probe of newer MCP clients before initialize: method not found.
    let mut probe = Ws::connect(&server.url()).await;
    let e = probe.request(json!(1), "server/discover", json!({})).await;
    assert_eq!(e["error"]["code"], -32601);
    assert_eq!(probe.closed().await, Some(4000));

    // Through all of that the first client was served, and new clients still are.
    let still = ws
        .request(
            json!(6),
            "tools/call",
            json!({"name": "health_check", "arguments": {}}),
        )
        .await;
    assert_eq!(still["result"]["structuredContent"]["status"], "ok");
    let mut fresh = Ws::connect(&server.url()).await;
    assert!(fresh.initialize("other", "/x").await["sessionId"].is_string());
}

#[tokio::test]
async fn a_socket_that_never_initializes_is_closed() {
    let server = Server::start_with(&[], &[("CODEFLOW_INITIALIZE_TIMEOUT_SECS", "1")]).await;
    let mut ws = Ws::connect(&server.url()).await;
    let started = std::time::Instant::now();
    assert_eq!(ws.closed().await, Some(4000));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn health_and_metrics_endpoints() {
    let server = Server::start().await;
    let mut ws = Ws::connect(&server.url()).await;
    ws.initialize("metrics", "/m").await;
    ws.request(
        json!(1),
        "tools/call",
        json!({"name": "health_check", "arguments": {}}),
    )
    .await;

    let (status, body) = http_get(server.port, "/healthz").await.unwrap();
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).expect("healthz is JSON");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["sessions"], 1);

    let (status, _) = http_get(server.port, "/readyz").await.unwrap();
    assert_eq!(status, 200);

    let (status, metrics) = http_get(server.port, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    let mut samples = std::collections::HashMap::new();
    for line in metrics.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<_> = comment.split_whitespace().collect();
            assert!(
                matches!(words.first(), Some(&"TYPE") | Some(&"HELP")),
                "bad comment line {line:?}"
            );
            continue;
        }
        let (name_labels, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample {line:?}"));
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = name_labels.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name {name:?}"
        );
        if name_labels.contains('{') {
            assert!(name_labels.ends_with('}'), "bad labels {line:?}");
        }
        samples.insert(name_labels.to_owned(), value.parse::<f64>().unwrap());
    }
    assert_eq!(samples.get("codeflow_sessions"), Some(&1.0));
    assert_eq!(samples.get("codeflow_connections"), Some(&1.0));
    assert!(
        samples
            .get("codeflow_messages_in_total{method=\"tools/call\"}")
            .is_some_and(|v| *v >= 1.0)
    );
    assert!(
        samples.keys().all(|k| k.starts_with("codeflow_")),
        "every metric is prefixed codeflow_"
    );
}

#[tokio::test]
async fn tokens_are_checked() {
    let secret = "e2e-secret-at-least-32-bytes-long!!";
    let server = Server::start_with(&["--jwt-secret", secret, "--require-auth"], &[]).await;
    let url = server.url();

    // No token at all: refused with a clear error, then 1008.
    let mut ws = Ws::connect(&url).await;
    let e = ws
        .request(
            json!(1),
            "initialize",
            json!({"project": "a", "projectRoot": "/a"}),
        )
        .await;
    assert_eq!(e["error"]["code"], -32001);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requires a token")
    );
    assert_eq!(ws.closed().await, Some(1008));

    // A forged header token is refused before the upgrade.
    let forged = token("wrong-secret", json!(["a"]), 600);
    let refused = Ws::connect_with_token(&url, Some(&forged)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected HTTP 401, got {:?}", other.map(|_| "a socket")),
    }

    // Expired, and wrong project: refused in the handshake.
    for (bad, words) in [
        (token(secret, json!(["a"]), -600), "expired"),
        (token(secret, json!(["b"]), 600), "does not grant project"),
    ] {
        let mut ws = Ws::connect(&url).await;
        let e = ws
            .request(
                json!(1),
                "initialize",
                json!({"project": "a", "projectRoot": "/a", "token": bad}),
            )
            .await;
        assert_eq!(e["error"]["code"], -32001, "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(words),
            "{e}"
        );
        assert_eq!(ws.closed().await, Some(1008));
    }

    // A good token, in the header or in the params, works.
    let good = token(secret, json!(["a"]), 600);
    let mut ws = Ws::connect_with_token(&url, Some(&good)).await.unwrap();
    assert!(ws.initialize("a", "/a").await["sessionId"].is_string());
    let mut ws2 = Ws::connect(&url).await;
    let ok = ws2
        .request(json!(1), "initialize", json!({"project": "a", "projectRoot": "/a", "token": good,
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}))
        .await;
    assert!(ok["result"]["sessionId"].is_string(), "{ok}");

    // The relay passes its token too; `check` reports success and failure in words.
    let root = tempfile::tempdir().unwrap();
    let relay = Relay::spawn(&url, "a", root.path(), &["--token", &good]);
    relay.initialize().await;
    let health = relay.tool("health_check", json!({})).await;
    assert_eq!(health["structuredContent"]["session"]["project"], "a");
}

#[tokio::test]
async fn extra_connections_are_closed_with_1008() {
    let server = Server::start_with(&["--max-clients", "2"], &[]).await;
    let mut a = Ws::connect(&server.url()).await;
    let mut b = Ws::connect(&server.url()).await;
    a.initialize("p", "/p").await;
    b.initialize("p", "/p").await;
    let mut c = Ws::connect(&server.url()).await;
    assert_eq!(c.closed().await, Some(1008));
    // Once one leaves, a new client gets in.
    a.close().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut d = Ws::connect(&server.url()).await;
        d.send_json(json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"project":"p","projectRoot":"/p"}})).await;
        match d.next().await {
            Next::Json(v) if v["result"]["sessionId"].is_string() => break,
            _ if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            other => panic!("no room after a client left: {other:?}"),
        }
    }
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1001_and_exits() {
    let mut server = Server::start().await;
    let mut ws = Ws::connect(&server.url()).await;
    ws.initialize("p", "/p").await;
    let pid = server.pid().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(ws.closed().await, Some(1001));
    let exit = tokio::time::timeout(std::time::Duration::from_secs(10), server.child.wait())
        .await
        .expect("server exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "clean exit, got {exit:?}");
}

#[tokio::test]
async fn refuses_a_public_address_without_auth() {
    let out = tokio::process::Command::new(codeflow_e2e::binary("codeflow-server"))
        .args(["--bind", "0.0.0.0", "--port", "0"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without authentication") && err.contains("--insecure"),
        "{err}"
    );
}

#[tokio::test]
async fn check_reports_in_words() {
    let server = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let ok = tokio::process::Command::new(codeflow_e2e::binary("codeflow-client"))
        .args([
            "check",
            "--server",
            &server.url(),
            "--project",
            "demo",
            "--root",
        ])
        .arg(root.path())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(text.contains("handshake accepted"), "{text}");

    let dead = format!("ws://127.0.0.1:{}/ws", codeflow_e2e::free_port());
    let bad = tokio::process::Command::new(codeflow_e2e::binary("codeflow-client"))
        .args(["check", "--server", &dead, "--project", "demo", "--root"])
        .arg(root.path())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAILED") && text.contains("running"),
        "{text}"
    );

    let invalid = tokio::process::Command::new(codeflow_e2e::binary("codeflow-client"))
        .args([
            "check",
            "--server",
            &server.url(),
            "--project",
            "bad/id",
            "--root",
        ])
        .arg(root.path())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&invalid.stdout);
    assert_eq!(invalid.status.code(), Some(1), "{text}");
    assert!(text.contains("project id"), "{text}");
}

/// health_check's text counted the sessions its relay had left (kept for a resume) as if they
/// were connected: with one relay running it said "2 session(s) on this project".
#[tokio::test]
async fn health_check_says_how_many_sessions_are_connected() {
    let server = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let a = Relay::spawn(&server.url(), "pair", root.path(), &[]);
    a.initialize().await;
    let mut b = Relay::spawn(&server.url(), "pair", root.path(), &[]);
    b.initialize().await;
    let both = a.tool("health_check", json!({})).await;
    let text = both["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("2 session(s) on this project."), "{text}");
    b.child.kill().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let health = a.tool("health_check", json!({})).await;
        let s = &health["structuredContent"];
        if s["attached_sessions"] == 1 {
            let text = health["content"][0]["text"].as_str().unwrap_or_default();
            assert_eq!(s["sessions"], 2, "{health}");
            assert!(
                text.contains(
                    "2 session(s) on this project (1 connected, 1 kept for their relay to resume)."
                ),
                "{text}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped relay's session still counts as attached: {health}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
