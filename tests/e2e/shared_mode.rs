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

/// A shared project that is a git repository: its branch, HEAD and dirty files reach the
/// project's `git` channel, first when the project opens, again when a file changes.
#[tokio::test]
async fn a_shared_git_projects_state_reaches_the_git_channel() {
    let (_dir, server_root) = fixture("python");
    let git = |args: &[&str]| codeflow_e2e::fs::git(&server_root, args);
    git(&["-c", "init.defaultBranch=trunk", "init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "initial"]);
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("codeflow.toml");
    std::fs::write(
        &config,
        format!(
            "[shared_projects]\ngitmono = \"{}\"\n",
            server_root.display()
        ),
    )
    .unwrap();
    let server = Server::start_with(&["--config", config.to_str().unwrap()], &[]).await;
    let mut watcher = codeflow_e2e::Ws::connect(&server.url()).await;
    watcher
        .initialize("gitmono", server_root.to_str().unwrap())
        .await;
    let sub = watcher
        .request(json!(1), "channels/subscribe", json!({"channel": "git"}))
        .await;
    assert!(sub.get("result").is_some(), "{sub}");
    let relay = Relay::spawn(&server.url(), "gitmono", &server_root, &[]);
    relay.initialize().await;
    relay.tool("health_check", json!({})).await;
    let first = next_git(&mut watcher).await;
    assert_eq!(first["branch"], "trunk", "{first}");
    assert_eq!(first["head"].as_str().map(str::len), Some(40), "{first}");
    assert_eq!(first["dirty"], json!([]), "{first}");
    std::fs::write(server_root.join("report.py"), "# changed\n").unwrap();
    let second = next_git(&mut watcher).await;
    assert_eq!(second["dirty"], json!(["report.py"]), "{second}");
    assert_eq!(
        (&second["dirty_count"], &second["head"]),
        (&json!(1), &first["head"])
    );
}

/// The next event of the `git` channel.
async fn next_git(ws: &mut codeflow_e2e::Ws) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        assert!(std::time::Instant::now() < deadline, "no git event");
        let m = ws.json().await;
        if m["method"] == "channels/event" && m["params"]["channel"] == "git" {
            return m["params"]["data"].clone();
        }
    }
}
