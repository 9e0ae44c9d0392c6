//! `examples/python/codeflow_ws_client.py`, a client in another language speaking the wire
//! protocol itself (no relay): handshake with a token, manifest sync serving
//! `client/readFile(s)`, a tool call, and a streamed file change — against the real server and
//! a real pylsp.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use codeflow_e2e::deploy::repo_root;
use codeflow_e2e::{Server, token};
use serde_json::{Value, json};

#[tokio::test]
async fn the_python_example_client_syncs_calls_a_tool_and_streams_a_change() {
    let secret = "python-client-secret-at-least-32-bytes!";
    let server = Server::start_with(&["--jwt-secret", secret], &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::write(
        root.join("app.py"),
        "def greet(name):\n    return 'hi ' + name\n\n\nclass Greeter:\n    pass\n",
    )
    .unwrap();
    std::fs::write(root.join("notes.txt"), "not code\n").unwrap();

    let script = repo_root().join("examples/python/codeflow_ws_client.py");
    let run = tokio::process::Command::new("python3")
        .arg(&script)
        .args(["--server", &server.url(), "--project", "demo"])
        .arg("--root")
        .arg(&root)
        .args(["--file", "app.py", "--edit"])
        .env("CODEFLOW_TOKEN", token(secret, json!(["demo"]), 600))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the Python client finishes")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'blake3'"),
        "the example needs `pip install blake3` (scripts/test.sh installs it)"
    );
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let steps: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON line per step"))
        .collect();
    let step = |name: &str| -> &Value {
        &steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no {name} step in {stdout}"))["result"]
    };

    let init = step("initialize");
    assert!(init["sessionId"].is_string(), "{init}");
    assert_eq!(init["serverInfo"]["name"], "codeflow");

    // The server fetched both files from the Python process.
    let sync = step("syncManifest");
    assert_eq!(sync["fetched"], 2, "{sync}");
    assert_eq!(sync["unchanged"], 0, "{sync}");

    let names = |result: &Value| -> Vec<String> {
        assert_eq!(result["isError"], false, "{result}");
        result["structuredContent"]["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(step("symbols")), ["greet", "Greeter"]);
    let path = step("symbols")["structuredContent"]["path"].clone();
    assert_eq!(path, root.join("app.py").to_string_lossy().as_ref());

    // The change it streamed reached the mirror before the next call ran.
    assert_eq!(
        names(step("symbolsAfterEdit")),
        ["greet", "Greeter", "added_by_the_python_client"]
    );
    let mirrored = std::fs::read_to_string(server.mirror_dir("demo").join("app.py")).unwrap();
    assert_eq!(
        mirrored,
        std::fs::read_to_string(root.join("app.py")).unwrap()
    );
}
