//! The relay's server URL as people type it: without a path it reaches `/ws`; a wrong path, an
//! HTTP URL, a plain HTTP server or a TLS mismatch gets an error that says what to fix — from
//! `codeflow-client check` and from the relay itself. Real binaries throughout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use codeflow_e2e::{Relay, Server, TIMEOUT, binary, free_port};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Runs `codeflow-client check` against `url`: (exit code, stdout, stderr).
async fn check(url: &str) -> (i32, String, String) {
    let root = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        TIMEOUT,
        tokio::process::Command::new(binary("codeflow-client"))
            .arg("check")
            .arg("--server")
            .arg(url)
            .arg("--project")
            .arg("url-test")
            .arg("--root")
            .arg(root.path())
            .env_remove("CODEFLOW_TOKEN")
            .env_remove("CODEFLOW_SERVER")
            .output(),
    )
    .await
    .expect("check finishes")
    .expect("check runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_server_url_without_a_path_reaches_ws() {
    let server = Server::start().await;
    let bare = format!("ws://127.0.0.1:{}", server.port);

    let (code, stdout, _) = check(&bare).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains(&format!("Server:  {bare}/ws")), "{stdout}");
    assert!(stdout.contains("OK: handshake accepted"), "{stdout}");
    // The command it advises names the root, and the URL as typed (no added query).
    assert!(
        stdout.contains(&format!(
            "`codeflow-client --server {bare}/ws --project url-test --root /"
        )),
        "{stdout}"
    );

    // The relay itself, as an agent starts it, with a trailing slash too.
    for url in [bare.clone(), format!("{bare}/")] {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("a.py"), "x = 1\n").unwrap();
        let relay = Relay::spawn(&url, "bare-url", root.path(), &[]);
        relay.initialize().await;
        let result = relay.tool("health_check", json!({})).await;
        assert_eq!(result["isError"], false, "{result}");
        assert_eq!(
            result["structuredContent"]["session"]["project"],
            "bare-url"
        );
        relay.close().await;
    }
}

#[tokio::test]
async fn the_same_url_in_the_environment_as_the_original_design_set_it() {
    // `MCP_SERVER=ws://codeflow-service:3000`: the original design's value, without /ws.
    let server = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(binary("codeflow-client"))
        .arg("check")
        .env_remove("CODEFLOW_SERVER")
        .env_remove("CODEFLOW_TOKEN")
        .env("MCP_SERVER", format!("ws://127.0.0.1:{}", server.port))
        .env("PROJECT_ID", "env-project")
        .current_dir(root.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("Project: env-project"), "{stdout}");
}

#[tokio::test]
async fn a_wrong_path_names_the_url_to_use() {
    let server = Server::start().await;
    let right = format!("ws://127.0.0.1:{}/ws", server.port);
    let (code, stdout, _) = check(&format!("ws://127.0.0.1:{}/api", server.port)).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("HTTP 404"), "{stdout}");
    assert!(stdout.contains("`/api`"), "{stdout}");
    assert!(
        stdout.contains(&format!("pass --server {right}")),
        "{stdout}"
    );
    // `/mcp` is there, but it is MCP over HTTP, for clients without the relay.
    let (code, stdout, _) = check(&format!("ws://127.0.0.1:{}/mcp", server.port)).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("MCP over HTTP at `/mcp`"), "{stdout}");
    assert!(
        stdout.contains(&format!("pass --server {right}")),
        "{stdout}"
    );

    // The relay says the same on stderr while it retries, and the agent's call still fails
    // cleanly once the offline wait is over.
    let root = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(binary("codeflow-client"))
        .arg("--server")
        .arg(format!("ws://127.0.0.1:{}/api", server.port))
        .arg("--project")
        .arg("p")
        .arg("--root")
        .arg(root.path())
        .arg("--offline-wait-secs")
        .arg("1")
        .env_remove("CODEFLOW_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}})
            .to_string()
            .as_bytes(),
        )
        .await
        .unwrap();
    stdin.write_all(b"\n").await.unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(TIMEOUT, async {
        while let Ok(Some(line)) = stderr.next_line().await {
            if line.contains("HTTP 404") {
                return line;
            }
        }
        String::new()
    })
    .await
    .expect("the relay explains the 404");
    assert!(line.contains(&format!("pass --server {right}")), "{line}");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let reply = tokio::time::timeout(TIMEOUT, stdout.next_line())
        .await
        .expect("an answer after the offline wait")
        .unwrap()
        .unwrap();
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["error"]["code"], -32007, "{reply}");
    // The agent is told why, not only that the server is unreachable.
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("HTTP 404"), "{reply}");
    assert!(
        message.contains(&format!("pass --server {right}")),
        "{reply}"
    );
}

#[tokio::test]
async fn an_http_url_is_refused_with_the_ws_url() {
    let (code, _, stderr) = check("http://127.0.0.1:3000").await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("pass --server ws://127.0.0.1:3000/ws"),
        "{stderr}"
    );
    let (code, _, stderr) = check("https://codeflow.example/").await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("pass --server wss://codeflow.example/ws"),
        "{stderr}"
    );
}

/// A plain HTTP/1.1 server that answers every request with a web page.
async fn plain_http_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let body = "<html>a web page</html>";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_plain_http_server_is_named_as_not_codeflow() {
    let port = plain_http_server().await;
    let (code, stdout, _) = check(&format!("ws://127.0.0.1:{port}")).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("HTTP 200"), "{stdout}");
    assert!(stdout.contains("not codeflow-server"), "{stdout}");
}

#[tokio::test]
async fn nothing_listening_says_so() {
    let port = free_port();
    let (code, stdout, _) = check(&format!("ws://127.0.0.1:{port}/ws")).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(&format!("nothing is listening at 127.0.0.1:{port}")),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_tls_mismatch_says_which_scheme_to_use() {
    // wss:// against a plain server.
    let server = Server::start().await;
    let (code, stdout, _) = check(&format!("wss://127.0.0.1:{}/ws", server.port)).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("does not speak TLS"), "{stdout}");
    assert!(stdout.contains("use ws:// instead of wss://"), "{stdout}");

    // ws:// against a TLS server, and wss:// to it with a self-signed certificate.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = codeflow_e2e::self_signed_certificate(dir.path(), "localhost");
    let port = free_port();
    let _tls = tokio::process::Command::new(binary("codeflow-server"))
        .arg("--port")
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let listening = codeflow_e2e::eventually(TIMEOUT, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    assert!(listening, "the TLS server listens");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (code, stdout, _) = check(&format!("ws://127.0.0.1:{port}/ws")).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("use wss:// instead of ws://"), "{stdout}");
    let (code, stdout, _) = check(&format!("wss://localhost:{port}/ws")).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("certificate"), "{stdout}");
    assert!(stdout.contains("not accepted"), "{stdout}");
}

/// A relay whose agent has not initialized does not re-dial in a loop when the server closes
/// its unused socket (initialize timeout): it rests, and the agent's `initialize` later dials
/// again and is answered.
#[tokio::test]
async fn a_relay_without_an_agent_rests_instead_of_redialling() {
    let server = Server::start_with(&[], &[("CODEFLOW_INITIALIZE_TIMEOUT_SECS", "1")]).await;
    let proxy = codeflow_e2e::TcpProxy::start(server.port).await;
    let root = tempfile::tempdir().unwrap();
    let relay = codeflow_e2e::Relay::spawn(&proxy.url(), "resting", root.path(), &[]);
    // The first dial happens at start; the server closes the idle socket after 1 s. Before
    // this change the relay dialled again every time (≈ 4 connections in 4 s).
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(
        proxy.accepted(),
        1,
        "the relay dialled again without an agent"
    );
    let result = relay.initialize().await;
    assert!(result.get("sessionId").is_some(), "{result}");
    assert_eq!(proxy.accepted(), 2);
    relay.settle().await;
}
