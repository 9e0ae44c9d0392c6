//! Races between the server's write-back and the client's own changes, end to end: whatever
//! order the relay's watcher sees things in, the mirror ends up equal to the client's disk by
//! the next tool call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use codeflow_e2e::{Relay, Server};
use serde_json::{Value, json};

struct Project {
    server: Server,
    relay: Relay,
    _dir: tempfile::TempDir,
    root: PathBuf,
    name: &'static str,
}

impl Project {
    async fn start(name: &'static str) -> Self {
        let server = Server::start().await;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("main.py"), "print('hello')\n").unwrap();
        let relay = Relay::spawn(&server.url(), name, &root, &[]);
        relay.initialize().await;
        let p = Self {
            server,
            relay,
            _dir: dir,
            root,
            name,
        };
        p.settle().await;
        p
    }

    fn mirror_dir(&self) -> PathBuf {
        self.server.data_dir.path().join("mirrors").join(self.name)
    }

    fn mirror(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.mirror_dir().join(rel)).ok()
    }

    fn disk(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    async fn tool(&self, name: &str, args: Value) -> Value {
        let r = self.relay.tool(name, args).await;
        assert_eq!(r["isError"], false, "{name}: {r}");
        r
    }

    /// A tool call waits for every file event before it: after it, the mirror is current.
    async fn settle(&self) {
        self.tool("health_check", json!({})).await;
    }
}

fn rel_files(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_file_created_by_write_back_then_moved_by_hand_is_moved_in_the_mirror() {
    let p = Project::start("race-move").await;
    for round in 0..10 {
        let new = format!("new{round}.py");
        let moved = format!("moved{round}.py");
        let text = format!("N = {round}\n");
        p.tool(
            "create_file",
            json!({"file_path": new.as_str(), "content": text.as_str()}),
        )
        .await;
        assert_eq!(p.mirror(&new).as_deref(), Some(text.as_str()));
        std::fs::rename(p.disk(&new), p.disk(&moved)).unwrap();
        p.settle().await;
        assert_eq!(
            p.mirror(&moved).as_deref(),
            Some(text.as_str()),
            "round {round}: the moved file is in the mirror"
        );
        assert_eq!(
            p.mirror(&new),
            None,
            "round {round}: the old path is gone from the mirror"
        );
    }
    assert_eq!(rel_files(&p.mirror_dir()), rel_files(&p.root));
}

#[tokio::test]
async fn a_file_created_by_write_back_then_deleted_by_hand_leaves_the_mirror() {
    let p = Project::start("race-delete").await;
    for round in 0..10 {
        let new = format!("gone{round}.py");
        p.tool(
            "create_file",
            json!({"file_path": new.as_str(), "content": "X = 1\n"}),
        )
        .await;
        std::fs::remove_file(p.disk(&new)).unwrap();
        p.settle().await;
        assert_eq!(p.mirror(&new), None, "round {round}");
    }
    assert_eq!(rel_files(&p.mirror_dir()), rel_files(&p.root));
}

#[tokio::test]
async fn a_file_created_by_write_back_then_edited_by_hand_reaches_the_mirror() {
    let p = Project::start("race-edit").await;
    for round in 0..10 {
        let new = format!("edit{round}.py");
        p.tool(
            "create_file",
            json!({"file_path": new.as_str(), "content": "A = 1\nB = 2\nC = 3\n"}),
        )
        .await;
        let edited = format!("A = 1\nB = {round}\nC = 3\n");
        std::fs::write(p.disk(&new), &edited).unwrap();
        p.settle().await;
        assert_eq!(
            p.mirror(&new).as_deref(),
            Some(edited.as_str()),
            "round {round}"
        );
        // And a second edit, on top of the first (a delta against what the mirror holds).
        let again = format!("A = 1\nB = {round}\nC = {round}\n");
        std::fs::write(p.disk(&new), &again).unwrap();
        p.settle().await;
        assert_eq!(
            p.mirror(&new).as_deref(),
            Some(again.as_str()),
            "round {round}"
        );
    }
}

#[tokio::test]
async fn a_file_deleted_by_write_back_then_restored_by_hand_is_back_in_the_mirror() {
    let p = Project::start("race-restore").await;
    for round in 0..10 {
        let name = format!("keep{round}.py");
        let text = format!("K = {round}\n");
        std::fs::write(p.disk(&name), &text).unwrap();
        p.settle().await;
        assert_eq!(p.mirror(&name).as_deref(), Some(text.as_str()));
        p.tool("delete_file", json!({"file_path": name.as_str()}))
            .await;
        // Restored with the very same content (an undo, a `git checkout`).
        std::fs::write(p.disk(&name), &text).unwrap();
        p.settle().await;
        assert_eq!(
            p.mirror(&name).as_deref(),
            Some(text.as_str()),
            "round {round}"
        );
    }
}

#[tokio::test]
async fn a_file_renamed_by_write_back_then_renamed_back_by_hand_is_back_in_the_mirror() {
    let p = Project::start("race-rename-back").await;
    for round in 0..10 {
        let a = format!("a{round}.py");
        let b = format!("b{round}.py");
        let text = format!("R = {round}\n");
        std::fs::write(p.disk(&a), &text).unwrap();
        p.settle().await;
        p.tool(
            "rename_file",
            json!({"old_path": a.as_str(), "new_path": b.as_str()}),
        )
        .await;
        assert_eq!(
            p.mirror(&b).as_deref(),
            Some(text.as_str()),
            "round {round}"
        );
        std::fs::rename(p.disk(&b), p.disk(&a)).unwrap();
        p.settle().await;
        assert_eq!(
            p.mirror(&a).as_deref(),
            Some(text.as_str()),
            "round {round}"
        );
        assert_eq!(p.mirror(&b), None, "round {round}");
    }
}
