//! `examples/rust/file_stream_client.rs`, a file-stream client in a process of its own
//! (the libraries' Watcher and FileServer over one WebSocket): the server syncs its mirror from
//! it, a change made on disk reaches the mirror before the next call, and a write tool's
//! write-back lands on the client's disk — with the real server and pylsp.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use codeflow_e2e::{Server, binary};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The example's binary, built next to the workspace binaries (`target/<profile>/examples/`).
fn example_binary() -> PathBuf {
    let dir = binary("codeflow-server").parent().unwrap().join("examples");
    let path = dir.join("file_stream_client");
    assert!(
        path.exists(),
        "{} is missing: `cargo build --workspace --all-targets` (scripts/test.sh) builds it",
        path.display()
    );
    path
}

struct Example {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Example {
    async fn line(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(120), self.stdout.next_line())
            .await
            .expect("the example answers")
            .unwrap()
            .expect("the example is running");
        serde_json::from_str(&line).expect("one JSON line")
    }

    async fn command(&mut self, line: &str) -> Value {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        self.line().await
    }
}

fn symbol_names(result: &Value) -> Vec<String> {
    assert_eq!(result["isError"], false, "{result}");
    result["structuredContent"]["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_file_stream_example_syncs_streams_changes_and_takes_write_backs() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::write(root.join("app.py"), "def greet(name):\n    return name\n").unwrap();

    let mut child = tokio::process::Command::new(example_binary())
        .arg(server.url())
        .arg("demo")
        .arg(&root)
        .env_remove("CODEFLOW_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut example = Example {
        stdin: child.stdin.take().unwrap(),
        stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
        child,
    };

    // The sync: the server fetched the file from the example process.
    let synced = example.line().await;
    assert_eq!(synced["fetched"], 1, "{synced}");
    let mirror = server.mirror_dir("demo");
    assert_eq!(
        std::fs::read_to_string(mirror.join("app.py")).unwrap(),
        "def greet(name):\n    return name\n"
    );
    let symbols = example
        .command(r#"get_document_symbols {"file_path": "app.py"}"#)
        .await;
    assert_eq!(symbol_names(&symbols), ["greet"]);

    // A change on disk: the watcher streams it, and the call after it sees it.
    std::fs::write(
        root.join("app.py"),
        "def greet(name):\n    return name\n\n\ndef wave():\n    pass\n",
    )
    .unwrap();
    let symbols = example
        .command(r#"get_document_symbols {"file_path": "app.py"}"#)
        .await;
    assert_eq!(symbol_names(&symbols), ["greet", "wave"]);
    assert!(
        std::fs::read_to_string(mirror.join("app.py"))
            .unwrap()
            .contains("def wave")
    );

    // A write tool: the server writes back through the example's FileServer.
    let created = example
        .command(r#"create_file {"file_path": "notes/todo.txt", "content": "ship it\n"}"#)
        .await;
    assert_eq!(created["isError"], false, "{created}");
    assert_eq!(
        std::fs::read_to_string(root.join("notes/todo.txt")).unwrap(),
        "ship it\n"
    );

    // Closing stdin ends the example cleanly.
    drop(example.stdin);
    let status = tokio::time::timeout(Duration::from_secs(20), example.child.wait())
        .await
        .expect("the example exits when its stdin closes")
        .unwrap();
    assert!(status.success(), "{status}");
}
