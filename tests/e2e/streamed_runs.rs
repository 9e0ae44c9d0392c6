//! Claude runs on a streamed project end to end: the real server, a real relay
//! (`codeflow-client`) serving the project's files from a directory, and the mock `claude`
//! CLI editing files in its working copy. The run's changes reach the client's files through
//! the relay; a file the client changed during the run is a conflict and nothing is written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use codeflow_e2e::{Relay, Server, Ws, tree};
use serde_json::{Value, json};

fn mock_claude() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("mock-claude/claude")
        .display()
        .to_string()
}

async fn call(ws: &mut Ws, id: i64, method: &str, params: Value) -> Value {
    let reply = ws.request(json!(id), method, params).await;
    reply
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("{method} failed: {reply}"))
}

/// `ai-response` events until (and including) the `complete` of `run`.
async fn until_complete(ws: &mut Ws, run: &str) -> Value {
    loop {
        let m = ws.json().await;
        if m["method"] == "channels/event"
            && m["params"]["data"]["type"] == "complete"
            && m["params"]["data"]["runId"] == run
        {
            return m["params"]["data"].clone();
        }
    }
}

async fn first_output(ws: &mut Ws, run: &str) {
    loop {
        let m = ws.json().await;
        if m["method"] == "channels/event"
            && m["params"]["data"]["type"] == "output"
            && m["params"]["data"]["runId"] == run
        {
            return;
        }
    }
}

async fn execute(ws: &mut Ws, id: i64, prompt: &str) -> String {
    call(
        ws,
        id,
        "claude/execute",
        json!({"project": "alpha", "prompt": prompt}),
    )
    .await["runId"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_streamed_run_writes_its_edits_to_the_client_and_never_overwrites_a_changed_file() {
    let mock = mock_claude();
    let server = Server::start_with(
        &[],
        &[
            ("CODEFLOW_CLAUDE_CMD", mock.as_str()),
            ("CODEFLOW_EXEC_KILL_GRACE_MS", "300"),
            ("CODEFLOW_EXEC_EXIT_GRACE_SECS", "1"),
        ],
    )
    .await;
    let client_dir = tempfile::tempdir().unwrap();
    let root = client_dir.path();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("notes.txt"), "original\n").unwrap();
    std::fs::write(root.join("gone.txt"), "bye\n").unwrap();
    std::fs::write(root.join("src/keep.txt"), "keep\n").unwrap();

    let relay = Relay::spawn(&server.url(), "alpha", root, &[]);
    relay.initialize().await;
    relay.settle().await;

    // Another client of the project (no files of its own) creates the project, watches and
    // starts the runs: the write-back goes to the relay, the session that serves the files.
    let mut ws = Ws::connect(&server.url()).await;
    ws.initialize("alpha", "/elsewhere/alpha").await;
    let created = call(
        &mut ws,
        1,
        "projects/create",
        json!({"id": "alpha", "streamed": true}),
    )
    .await;
    assert_eq!(created["streamed"], true, "{created}");
    call(&mut ws, 2, "projects/join", json!({})).await;

    // 1. Edits, a new file and a deletion arrive in the client's files.
    let run = execute(
        &mut ws,
        3,
        "mock:no-record mock:edit=notes.txt,src/new.txt,new/deep/dir.txt mock:delete=gone.txt",
    )
    .await;
    let complete = until_complete(&mut ws, &run).await;
    assert_eq!(complete["success"], true, "{complete}");
    assert_eq!(complete["applied"], true, "{complete}");
    assert_eq!(complete["conflicts"], json!([]), "{complete}");
    assert_eq!(
        complete["changes"],
        json!([
            {"path": "gone.txt", "action": "deleted"},
            {"path": "new/deep/dir.txt", "action": "created"},
            {"path": "notes.txt", "action": "modified"},
            {"path": "src/new.txt", "action": "created"},
        ]),
        "{complete}"
    );
    let files = tree(root);
    assert_eq!(
        files.get("notes.txt").map(String::as_str),
        Some("written by mock claude\n")
    );
    assert_eq!(
        files.get("src/new.txt").map(String::as_str),
        Some("written by mock claude\n")
    );
    assert_eq!(
        files.get("new/deep/dir.txt").map(String::as_str),
        Some("written by mock claude\n"),
        "a new directory is created on the client"
    );
    assert_eq!(
        files.get("src/keep.txt").map(String::as_str),
        Some("keep\n")
    );
    assert!(!files.contains_key("gone.txt"), "{files:?}");
    // The run never worked in the client's tree, nor in the mirror.
    assert!(!root.join(".mock-claude-call.json").exists());
    let changes = call(&mut ws, 4, "claude/changes", json!({"runId": run})).await;
    assert_eq!(changes["applied"], true, "{changes}");
    let diff = changes["diff"].as_str().unwrap();
    assert!(
        diff.contains(
            "--- a/notes.txt\n+++ b/notes.txt\n@@ -1 +1 @@\n-original\n+written by mock claude\n"
        ),
        "{diff}"
    );
    assert!(
        diff.contains("--- /dev/null\n+++ b/src/new.txt\n"),
        "{diff}"
    );
    assert!(diff.contains("--- a/gone.txt\n+++ /dev/null\n"), "{diff}");

    // 2. The client changes a file while the run edits it: a conflict, nothing written.
    let run = execute(
        &mut ws,
        5,
        "mock:no-record mock:slow=700 mock:edit=src/keep.txt,other.txt",
    )
    .await;
    first_output(&mut ws, &run).await;
    std::fs::write(root.join("src/keep.txt"), "changed by the user\n").unwrap();
    let complete = until_complete(&mut ws, &run).await;
    assert_eq!(complete["success"], true, "{complete}");
    assert_eq!(complete["applied"], false, "{complete}");
    assert_eq!(complete["conflicts"], json!(["src/keep.txt"]), "{complete}");
    assert!(
        complete["writeBack"]
            .as_str()
            .unwrap()
            .contains("nothing was written"),
        "{complete}"
    );
    let files = tree(root);
    assert_eq!(
        files.get("src/keep.txt").map(String::as_str),
        Some("changed by the user\n")
    );
    assert!(
        !files.contains_key("other.txt"),
        "all or nothing: {files:?}"
    );
    // The run's changes stay available.
    let changes = call(&mut ws, 6, "claude/changes", json!({"runId": run})).await;
    assert_eq!(changes["applied"], false);
    assert_eq!(changes["conflicts"], json!(["src/keep.txt"]));
    let diff = changes["diff"].as_str().unwrap();
    assert!(diff.contains("-keep\n+written by mock claude\n"), "{diff}");
    assert!(diff.contains("+++ b/other.txt\n"), "{diff}");

    // 3. The agent in the container hands a task over through its own relay: the run's
    // changes come back to that relay's files.
    let reply = relay
        .call(
            "claude/execute",
            json!({"project": "alpha", "prompt": "mock:no-record mock:edit=src/from-agent.txt"}),
        )
        .await;
    let run = reply["result"]["runId"]
        .as_str()
        .unwrap_or_else(|| panic!("{reply}"))
        .to_owned();
    let complete = until_complete(&mut ws, &run).await;
    assert_eq!(complete["applied"], true, "{complete}");
    assert_eq!(
        tree(root).get("src/from-agent.txt").map(String::as_str),
        Some("written by mock claude\n")
    );
}
