//! Races between the server's write-back and the client's own changes, end to end: whatever
//! order the relay's watcher sees things in, the mirror ends up equal to the client's disk by
//! the next tool call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use codeflow_e2e::tools::Project;
use serde_json::json;

/// A project of one file, served and synced.
async fn start(name: &str) -> Project {
    Project::from_files(name, &[("main.py", "print('hello')\n")]).await
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
    let p = start("race-move").await;
    for round in 0..10 {
        let new = format!("new{round}.py");
        let moved = format!("moved{round}.py");
        let text = format!("N = {round}\n");
        p.ok(
            "create_file",
            json!({"file_path": new.as_str(), "content": text.as_str()}),
        )
        .await;
        assert_eq!(p.mirror(&new).as_deref(), Some(text.as_str()));
        std::fs::rename(p.root.join(&new), p.root.join(&moved)).unwrap();
        p.relay.settle().await;
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
    assert_eq!(rel_files(&p.server.mirror_dir(&p.name)), rel_files(&p.root));
}

#[tokio::test]
async fn a_file_created_by_write_back_then_deleted_by_hand_leaves_the_mirror() {
    let p = start("race-delete").await;
    for round in 0..10 {
        let new = format!("gone{round}.py");
        p.ok(
            "create_file",
            json!({"file_path": new.as_str(), "content": "X = 1\n"}),
        )
        .await;
        std::fs::remove_file(p.root.join(&new)).unwrap();
        p.relay.settle().await;
        assert_eq!(p.mirror(&new), None, "round {round}");
    }
    assert_eq!(rel_files(&p.server.mirror_dir(&p.name)), rel_files(&p.root));
}

#[tokio::test]
async fn a_file_created_by_write_back_then_edited_by_hand_reaches_the_mirror() {
    let p = start("race-edit").await;
    for round in 0..10 {
        let new = format!("edit{round}.py");
        p.ok(
            "create_file",
            json!({"file_path": new.as_str(), "content": "A = 1\nB = 2\nC = 3\n"}),
        )
        .await;
        let edited = format!("A = 1\nB = {round}\nC = 3\n");
        std::fs::write(p.root.join(&new), &edited).unwrap();
        p.relay.settle().await;
        assert_eq!(
            p.mirror(&new).as_deref(),
            Some(edited.as_str()),
            "round {round}"
        );
        // And a second edit, on top of the first (a delta against what the mirror holds).
        let again = format!("A = 1\nB = {round}\nC = {round}\n");
        std::fs::write(p.root.join(&new), &again).unwrap();
        p.relay.settle().await;
        assert_eq!(
            p.mirror(&new).as_deref(),
            Some(again.as_str()),
            "round {round}"
        );
    }
}

#[tokio::test]
async fn a_file_deleted_by_write_back_then_restored_by_hand_is_back_in_the_mirror() {
    let p = start("race-restore").await;
    for round in 0..10 {
        let name = format!("keep{round}.py");
        let text = format!("K = {round}\n");
        std::fs::write(p.root.join(&name), &text).unwrap();
        p.relay.settle().await;
        assert_eq!(p.mirror(&name).as_deref(), Some(text.as_str()));
        p.ok("delete_file", json!({"file_path": name.as_str()}))
            .await;
        // Restored with the very same content (an undo, a `git checkout`).
        std::fs::write(p.root.join(&name), &text).unwrap();
        p.relay.settle().await;
        assert_eq!(
            p.mirror(&name).as_deref(),
            Some(text.as_str()),
            "round {round}"
        );
    }
}

#[tokio::test]
async fn a_file_renamed_by_write_back_then_renamed_back_by_hand_is_back_in_the_mirror() {
    let p = start("race-rename-back").await;
    for round in 0..10 {
        let a = format!("a{round}.py");
        let b = format!("b{round}.py");
        let text = format!("R = {round}\n");
        std::fs::write(p.root.join(&a), &text).unwrap();
        p.relay.settle().await;
        p.ok(
            "rename_file",
            json!({"old_path": a.as_str(), "new_path": b.as_str()}),
        )
        .await;
        assert_eq!(
            p.mirror(&b).as_deref(),
            Some(text.as_str()),
            "round {round}"
        );
        std::fs::rename(p.root.join(&b), p.root.join(&a)).unwrap();
        p.relay.settle().await;
        assert_eq!(
            p.mirror(&a).as_deref(),
            Some(text.as_str()),
            "round {round}"
        );
        assert_eq!(p.mirror(&b), None, "round {round}");
    }
}
