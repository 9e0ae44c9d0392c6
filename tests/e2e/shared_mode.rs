//! A project on a shared volume (`shared_projects` in the server's config): the server reads
//! the files where they are, streams nothing, and answers in the client's paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use codeflow_e2e::fs::fixture;
use codeflow_e2e::{Relay, Server};
use serde_json::json;

#[tokio::test]
async fn a_shared_project_is_served_in_place_without_streaming() {
    // The server sees the project at one path; the client mounts it at another.
    let (_dir, server_root) = fixture("python");
    let client_mount = tempfile::tempdir().unwrap();
    let client_root = client_mount.path().join("workspace");
    std::os::unix::fs::symlink(&server_root, &client_root).unwrap();

    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("codeflow.toml");
    std::fs::write(
        &config,
        format!("[shared_projects]\nmono = \"{}\"\n", server_root.display()),
    )
    .unwrap();
    let server = Server::start_with(&["--config", config.to_str().unwrap()], &[]).await;
    // (The relay canonicalizes its root, so here both sides name the same directory.)
    let relay = Relay::spawn(&server.url(), "mono", &client_root, &[]);
    relay.initialize().await;

    let health = relay.tool("health_check", json!({})).await;
    assert_eq!(
        health["structuredContent"]["mirror"]["shared"], true,
        "{health}"
    );

    let found = relay
        .tool(
            "find_definition",
            json!({"file_path": "app.py", "symbol_name": "scale"}),
        )
        .await;
    assert_eq!(found["isError"], false, "{found}");
    let text = found["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("pkg/shapes.py"), "{text}");
    assert!(
        !text.contains(server.data_dir.path().to_str().unwrap()),
        "no server path leaks: {text}"
    );

    // Nothing was streamed: no mirror directory, no fetched files.
    assert!(!server.data_dir.path().join("mirrors").join("mono").exists());
    let metrics = codeflow_e2e::http_get(server.port, "/metrics")
        .await
        .unwrap()
        .1;
    let fetched = metrics
        .lines()
        .find_map(|l| l.strip_prefix("codeflow_sync_fetched_files_total "))
        .map(|v| v.trim().to_owned());
    assert!(
        matches!(fetched.as_deref(), None | Some("0")),
        "fetched {fetched:?}"
    );
}
