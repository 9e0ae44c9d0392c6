//! The official MCP TypeScript SDK clients in `tests/clients/node` (SDK 2.x and a 2025-era
//! 1.x; `scripts/test.sh` runs `npm ci` there when they are missing). Each script prints one
//! JSON line with what it saw.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// Where the Node clients and their `node_modules` live.
pub fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/node"))
}

/// Runs `node SCRIPT ARGS…` in [`dir`] and returns the JSON line it printed last. Panics with
/// its output when it fails (or when the SDKs are not installed).
pub async fn run(script: &str, args: &[&str]) -> Value {
    let dir = dir();
    assert!(
        dir.join("node_modules/@modelcontextprotocol/client")
            .is_dir(),
        "the MCP TypeScript SDKs are not installed: run scripts/test.sh (or `npm ci` in {})",
        dir.display()
    );
    let run = tokio::process::Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .unwrap_or_else(|_| panic!("`node {script}` did not finish within 90 s"))
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "`node {script} {args:?}` failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| {
        panic!("`node {script}` printed no JSON line ({e})\nstdout: {stdout}\nstderr: {stderr}")
    })
}
