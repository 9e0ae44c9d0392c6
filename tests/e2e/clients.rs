//! Real MCP clients, not ours: the official Python SDK launches the relay as its stdio server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use codeflow_e2e::{Server, binary};
use serde_json::Value;

#[tokio::test]
async fn the_official_python_sdk_uses_the_relay() {
    let server = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.py"), "x = 1\n").unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/python_sdk.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(binary("codeflow-client"))
        .arg(server.url())
        .arg("sdk-project")
        .arg(root.path())
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python SDK client failed (is `mcp` installed? scripts/test.sh installs it)\nstdout: {stdout}\nstderr: {stderr}"
    );
    let seen: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("one JSON line");
    // The SDK (2.x) probes with server/discover and the relay offers 2026-07-28.
    assert_eq!(seen["protocol_version"], "2026-07-28");
    assert_eq!(seen["server"], "codeflow");
    assert!(
        seen["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "health_check")
    );
    assert_eq!(seen["is_error"], false);
    assert_eq!(seen["structured"]["session"]["project"], "sdk-project");
    assert_eq!(
        seen["structured"]["mirror"]["files"], 1,
        "the relay synced the project first"
    );
    assert!(seen["text"].as_str().unwrap().contains("healthy"));
}
