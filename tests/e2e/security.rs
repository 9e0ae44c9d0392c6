//! Security through real sockets: hostile handshakes, authorization, tokens, audit, children's
//! environments and limits (issue 12; `docs/security.md`).

use std::time::Duration;

use codeflow_e2e::{Next, Server, Ws, eventually, health, metrics};
use serde_json::{Value, json};

/// An initialize with these params, then what the server answered: the error code, or the
/// close code when it closed instead.
async fn hostile_initialize(ws: &mut Ws, params: Value) -> Result<i64, Option<u16>> {
    ws.send_json(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}))
        .await;
    loop {
        match ws.next().await {
            Next::Json(m) if m["id"] == json!(1) || m["id"].is_null() => {
                return match m["error"]["code"].as_i64() {
                    Some(code) => Ok(code),
                    // Capabilities are MCP's open map: a value of the wrong type there is
                    // ignored, not refused.
                    None if m["result"]["sessionId"].is_string()
                        && params["capabilities"].is_object() =>
                    {
                        Ok(0)
                    }
                    None => panic!("hostile initialize accepted: {m}"),
                };
            }
            Next::Json(_) => continue,
            Next::Closed(code) => return Err(code),
        }
    }
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn hostile_handshakes_get_errors_and_the_server_keeps_serving() {
    let server = Server::start().await;
    let url = server.url();
    let cases: Vec<(&str, Value)> = vec![
        (
            "non-ASCII root (was a panic)",
            json!({"project": "p", "projectRoot": "aé"}),
        ),
        (
            "non-ASCII drive",
            json!({"project": "p", "projectRoot": "é:/x"}),
        ),
        (
            "drive then multi-byte",
            json!({"project": "p", "projectRoot": "a:é"}),
        ),
        ("CJK root", json!({"project": "p", "projectRoot": "日本語"})),
        ("emoji root", json!({"project": "p", "projectRoot": "🦀"})),
        ("empty root", json!({"project": "p", "projectRoot": ""})),
        (
            "NUL in root",
            json!({"project": "p", "projectRoot": "/a\u{0}b"}),
        ),
        (
            "huge root",
            json!({"project": "p", "projectRoot": format!("/{}", "é".repeat(5000))}),
        ),
        (
            "non-ASCII project",
            json!({"project": "projé", "projectRoot": "/a"}),
        ),
        (
            "traversal project",
            json!({"project": "../etc", "projectRoot": "/a"}),
        ),
        ("dot project", json!({"project": "..", "projectRoot": "/a"})),
        (
            "long project",
            json!({"project": "x".repeat(65), "projectRoot": "/a"}),
        ),
        (
            "project with slash",
            json!({"project": "a/b", "projectRoot": "/a"}),
        ),
        ("number project", json!({"project": 7, "projectRoot": "/a"})),
        (
            "object root",
            json!({"project": "p", "projectRoot": {"a": 1}}),
        ),
        ("array root", json!({"project": "p", "projectRoot": ["/a"]})),
        (
            "bool token",
            json!({"project": "p", "projectRoot": "/a", "token": true}),
        ),
        (
            "number session id",
            json!({"project": "p", "projectRoot": "/a", "sessionId": 5}),
        ),
        ("params an array", json!(["p", "/a"])),
        ("params a string", json!("p")),
        (
            "fileStream not a bool",
            json!({"project": "p", "projectRoot": "/a",
            "capabilities": {"experimental": {"codeflow": {"fileStream": {"deep": [[[[[[1]]]]]]}}}}}),
        ),
    ];
    for (what, params) in cases {
        let mut ws = Ws::connect(&url).await;
        let outcome = hostile_initialize(&mut ws, params.clone()).await;
        match outcome {
            Ok(code) => assert!(
                [0, -32602, -32600, -32001].contains(&code),
                "{what}: unexpected error {code}"
            ),
            // A refused handshake keeps the socket open for a corrected one.
            Err(close) => panic!("{what}: closed ({close:?}) instead of an error"),
        }
        // The socket that refused a bad handshake still takes a good one (or was closed with
        // a code); either way the server answers the next client.
        let mut fresh = Ws::connect(&url).await;
        assert!(
            fresh.initialize("fresh", "/fresh").await["sessionId"].is_string(),
            "{what}: the server stopped serving"
        );
        fresh.close().await;
    }

    // Raw frames: deep nesting, a legacy handshake with a multi-byte root, broken UTF-8-ish
    // JSON, a huge number, wrong top-level types.
    let frames = [
        format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{{\"project\":\"p\",\"projectRoot\":\"/a\",\"x\":{}}}}}",
            nested(100_000)
        ),
        nested(1_000_000),
        "{\"method\":\"initialize\",\"project\":\"p\",\"projectRoot\":\"aé\"}".to_owned(),
        "{\"method\":\"initialize\",\"project\":\"日本\",\"projectRoot\":\"/a\",\"id\":\"é\"}".to_owned(),
        "{\"jsonrpc\":\"2.0\",\"id\":1e999,\"method\":\"initialize\"}".to_owned(),
        "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"initialize\"}".to_owned(),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}".to_owned(),
        "\"initialize\"".to_owned(),
        "null".to_owned(),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"project\":\"p\",\"projectRoot\":\"\\ud800\"}}".to_owned(),
    ];
    for frame in &frames {
        let mut ws = Ws::connect(&url).await;
        ws.send_text(frame).await;
        match ws.next().await {
            Next::Json(m) => assert!(
                m["error"]["code"].is_i64(),
                "frame {:.80}: expected an error, got {m}",
                frame
            ),
            Next::Closed(code) => {
                assert!(
                    code.is_some(),
                    "frame {:.80}: dropped without a code",
                    frame
                )
            }
        }
    }

    // Still serving, nothing leaked: once every hostile socket is gone the gauge is back to 0.
    let mut last = Ws::connect(&url).await;
    assert!(last.initialize("last", "/last").await["sessionId"].is_string());
    last.close().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            metrics(server.port).await.get("codeflow_connections") == Some(&0.0)
                && health(server.port).await["connections"] == 0
        })
        .await,
        "connections gauge {:?}, healthz {}",
        metrics(server.port).await.get("codeflow_connections"),
        health(server.port).await
    );
    assert!(
        !metrics(server.port)
            .await
            .contains_key("codeflow_errors_total{kind=\"panic\"}"),
        "no connection task panicked"
    );
}
