//! The channels' real producers: a file edited in a container shows up on the project's
//! `files` channel, and a language server's diagnostics on `diagnostics` — with the client's
//! paths, to any session of the project.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use codeflow_e2e::{Relay, Server, Ws};
use serde_json::{Value, json};

/// Waits for a `channels/event` on `channel` matching `pred`.
async fn event_where(ws: &mut Ws, channel: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no matching {channel} event");
        let m = ws.json().await;
        if m["method"] == "channels/event"
            && m["params"]["channel"] == channel
            && pred(&m["params"]["data"])
        {
            return m["params"].clone();
        }
    }
}

#[tokio::test]
async fn file_changes_and_diagnostics_reach_subscribers_with_client_paths() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::write(root.join("compile_flags.txt"), "-std=c11\n").unwrap();
    std::fs::write(
        root.join("ok.c"),
        "int add(int a, int b) { return a + b; }\n",
    )
    .unwrap();

    let relay = Relay::spawn(&server.url(), "producers", &root, &[]);
    relay.initialize().await;
    relay.tool("health_check", json!({})).await;

    // Another session of the same project (another container, another mount point) listens.
    let mut watcher = Ws::connect(&server.url()).await;
    watcher.initialize("producers", "/elsewhere").await;
    let sub = watcher
        .request(json!(1), "channels/subscribe", json!({"channel": "files"}))
        .await;
    assert!(sub.get("result").is_some(), "{sub}");
    let sub = watcher
        .request(
            json!(2),
            "channels/subscribe",
            json!({"channel": "diagnostics"}),
        )
        .await;
    assert!(sub.get("result").is_some(), "{sub}");

    // An edit in the container: a files event naming the container's path.
    std::fs::write(
        root.join("broken.c"),
        "int main(void) { return undefined_symbol; }\n",
    )
    .unwrap();
    relay.tool("health_check", json!({})).await;
    let changed = root.join("broken.c").to_string_lossy().to_string();
    let event = event_where(&mut watcher, "files", |d| d["path"] == changed.as_str()).await;
    assert_eq!(event["data"]["changeType"], "created");
    assert!(event["epoch"].is_string() || event["epoch"].is_number());

    // Asking clangd about the broken file makes it publish diagnostics: they arrive on the
    // channel with the client's path, never the server's mirror.
    let diags = relay
        .tool("get_diagnostics", json!({"file_path": "broken.c"}))
        .await;
    assert_eq!(diags["isError"], false, "{diags}");
    let event = event_where(&mut watcher, "diagnostics", |d| {
        d["path"] == changed.as_str()
    })
    .await;
    let list = event["data"]["diagnostics"].as_array().unwrap();
    assert!(
        list.iter().any(|d| d["message"]
            .as_str()
            .unwrap_or("")
            .contains("undefined_symbol")
            && d["severity"] == "error"),
        "{event}"
    );
    assert_eq!(event["data"]["server"], "clangd");
    let mirror = server.data_dir.path().to_string_lossy().to_string();
    assert!(
        !event.to_string().contains(&mirror),
        "no mirror path leaks: {event}"
    );
}

/// A write tool's diagnostics run reaches the `validation` channel: what the write broke, with
/// the writer's client paths.
#[tokio::test]
async fn a_writes_diagnostics_run_reaches_the_validation_channel() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::write(
        root.join("lib.py"),
        "def greet(name):\n    return name\n\n\ndef main():\n    return greet('x')\n",
    )
    .unwrap();
    let relay = Relay::spawn(&server.url(), "validation", &root, &[]);
    relay.initialize().await;
    relay.tool("health_check", json!({})).await;
    let mut watcher = Ws::connect(&server.url()).await;
    watcher.initialize("validation", "/elsewhere").await;
    let sub = watcher
        .request(
            json!(1),
            "channels/subscribe",
            json!({"channel": "validation"}),
        )
        .await;
    assert!(sub.get("result").is_some(), "{sub}");
    let done = relay
        .tool(
            "replace_symbol_body",
            json!({"file_path": "lib.py", "name_path": "greet", "body": "def salute(name):\n    return name"}),
        )
        .await;
    assert_eq!(done["isError"], false, "{done}");
    let lib = root.join("lib.py").to_string_lossy().to_string();
    let event = event_where(&mut watcher, "validation", |d| d["trigger"] == "write").await;
    let file = &event["data"]["files"][0];
    assert_eq!(file["path"], lib.as_str(), "{event}");
    assert_eq!(file["errors"], 1, "{event}");
    assert!(
        file["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("greet"),
        "{event}"
    );
}

/// A streamed project's mirror holds no `.git`: the relay reads its tree's git state and the
/// server publishes it on the `git` channel (branch, HEAD, dirty files), again when it changes.
#[tokio::test]
async fn a_streamed_git_projects_state_reaches_the_git_channel() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::write(root.join("main.py"), "print('hi')\n").unwrap();
    std::fs::write(root.join("util.py"), "X = 1\n").unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(["-c", "init.defaultBranch=trunk"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "initial"]);
    let server = Server::start().await;
    let mut watcher = Ws::connect(&server.url()).await;
    watcher
        .initialize("gitstream", root.to_str().unwrap())
        .await;
    let sub = watcher
        .request(json!(1), "channels/subscribe", json!({"channel": "git"}))
        .await;
    assert!(sub.get("result").is_some(), "{sub}");
    let relay = Relay::spawn(&server.url(), "gitstream", &root, &[]);
    relay.initialize().await;
    let first = event_where(&mut watcher, "git", |_| true).await["data"].clone();
    assert_eq!(first["branch"], "trunk", "{first}");
    assert_eq!(first["head"].as_str().map(str::len), Some(40), "{first}");
    assert_eq!(first["dirty"], json!([]), "{first}");
    // The mirror has no `.git`: the state came from the relay.
    assert!(!server.mirror_dir("gitstream").join(".git").exists());
    std::fs::write(root.join("util.py"), "X = 2\n").unwrap();
    let second = event_where(&mut watcher, "git", |d| d["dirty_count"] == 1).await["data"].clone();
    assert_eq!(second["dirty"], json!(["util.py"]), "{second}");
    assert_eq!(second["head"], first["head"]);
}
