//! One project id, two different trees (reproduction 1 of issue 10): relay A serves `trees`
//! from a TypeScript tree, relay B the same project id from a Python tree. B's sync would remove
//! A's files from the shared mirror, so it is refused: A's files stay, A's tools keep working,
//! B's tools say why they cannot answer and what to do, and `codeflow-client check` for B's
//! tree reports the collision. Once A's relay is gone, B's tree is accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use codeflow_e2e::fs::fixture;
use codeflow_e2e::{Relay, Server};
use serde_json::json;

async fn check(server: &Server, project: &str, root: &std::path::Path) -> (bool, String) {
    let out = tokio::process::Command::new(codeflow_e2e::binary("codeflow-client"))
        .args([
            "check",
            "--server",
            &server.url(),
            "--project",
            project,
            "--root",
        ])
        .arg(root)
        .env_remove("CODEFLOW_TOKEN")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn a_second_tree_under_one_project_id_never_removes_the_first_ones_files() {
    let server = Server::start().await;
    let (_a_dir, a_root) = fixture("typescript");
    let (_b_dir, b_root) = fixture("python");
    let a = Relay::spawn(&server.url(), "trees", &a_root, &[]);
    a.initialize().await;
    a.settle().await;
    let mirror = server.mirror_dir("trees");
    assert!(mirror.join("src/app.ts").exists());

    // `check` for B's tree reports the collision before anything is started.
    let (ok, out) = check(&server, "trees", &b_root).await;
    assert!(!ok, "check should fail: {out}");
    assert!(
        out.contains("different tree") && out.contains("src/app.ts") && out.contains("--project"),
        "{out}"
    );

    let b = Relay::spawn(&server.url(), "trees", &b_root, &[]);
    b.initialize().await;
    let refused = b
        .tool("get_document_symbols", json!({"file_path": "app.py"}))
        .await;
    assert_eq!(refused["isError"], true, "{refused}");
    let text = refused["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("different tree") && text.contains(&a_root.to_string_lossy().to_string()),
        "{text}"
    );
    assert!(text.contains("Suggestion:"), "{text}");

    // A's files are all still there, and A's tools still answer.
    assert!(mirror.join("src/app.ts").exists());
    assert!(!mirror.join("app.py").exists(), "B's files were not synced");
    let symbols = a
        .tool("get_document_symbols", json!({"file_path": "src/app.ts"}))
        .await;
    assert_eq!(symbols["isError"], false, "{symbols}");
    drop(b);

    // With A's relay gone (its session detached), B's tree is accepted.
    assert_eq!(a.close().await, Some(0));
    let mut accepted = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (ok, out) = check(&server, "trees", &b_root).await;
        if ok {
            accepted = Some(out);
            break;
        }
    }
    let out = accepted.expect("check keeps failing after A's session ended");
    assert!(out.contains("OK: tree compared"), "{out}");
    let b = Relay::spawn(&server.url(), "trees", &b_root, &[]);
    b.initialize().await;
    b.settle().await;
    assert!(mirror.join("app.py").exists());
    assert!(!mirror.join("src/app.ts").exists());
}
