//! `update_dependencies` (and its alias `update_package_json`) end to end: the real server and
//! relay binaries on a temporary project holding package.json, requirements.txt and
//! Cargo.toml. Every test asserts what the tool returned AND what the client's disk holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use codeflow_e2e::{Relay, Server};
use serde_json::{Value, json};

const PACKAGE_JSON: &str = r#"{
  "name": "demo",
  "version": "1.0.0",
  "scripts": {
    "build": "tsc"
  },
  "dependencies": {
    "express": "^4.18.0",
    "lodash": "^4.17.21"
  }
}
"#;

const REQUIREMENTS: &str = "# runtime\nrequests==2.30.0  # HTTP\nFlask_Login>=0.6\n";

const CARGO_TOML: &str = r#"[package]
name = "demo"
version = "0.1.0" # bump on release
edition = "2021"

# Sorted.
[dependencies]
anyhow = "1"
serde = { version = "1.0", features = ["derive"] }
"#;

struct Project {
    _server: Server,
    relay: Relay,
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Project {
    async fn start(name: &str) -> Self {
        let server = Server::start().await;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("package.json"), PACKAGE_JSON).unwrap();
        std::fs::write(root.join("requirements.txt"), REQUIREMENTS).unwrap();
        std::fs::write(root.join("Cargo.toml"), CARGO_TOML).unwrap();
        std::fs::write(root.join("notes.txt"), "not a manifest\n").unwrap();
        let relay = Relay::spawn(&server.url(), name, &root, &[]);
        relay.initialize().await;
        let p = Self {
            _server: server,
            relay,
            _dir: dir,
            root,
        };
        // A tool call waits until the relay's sync is in the mirror.
        ok(&p.relay.tool("health_check", json!({})).await);
        p
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel))
            .unwrap_or_else(|e| panic!("{rel} on the client: {e}"))
    }

    async fn tool(&self, name: &str, args: Value) -> Value {
        self.relay.tool(name, args).await
    }
}

/// The structured result of a successful call.
fn ok(result: &Value) -> Value {
    assert_eq!(result["isError"], false, "tool failed: {result}");
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(!text.is_empty(), "no text content: {result}");
    result["structuredContent"].clone()
}

/// The text of a failed call.
fn err(result: &Value) -> String {
    assert_eq!(result["isError"], true, "tool should have failed: {result}");
    result["content"][0]["text"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn package_json_dry_run_then_apply() {
    let p = Project::start("deps-npm").await;
    let args = json!({
        "file_path": "package.json",
        "add_dependencies": {"axios": "^1.6.0", "lodash": "^4.17.22"},
        "add_dev_dependencies": {"typescript": "^5.4.0"},
        "remove_dependencies": ["express", "left-pad"],
        "add_scripts": {"test": "vitest"},
        "remove_scripts": ["build"],
        "update_version": "1.1.0"
    });
    let expected = r#"{
  "name": "demo",
  "version": "1.1.0",
  "scripts": {
    "test": "vitest"
  },
  "dependencies": {
    "axios": "^1.6.0",
    "lodash": "^4.17.22"
  },
  "devDependencies": {
    "typescript": "^5.4.0"
  }
}
"#;

    // Dry run: the exact new content, nothing written.
    let mut dry_args = args.clone();
    dry_args["dry_run"] = json!(true);
    let result = p.tool("update_dependencies", dry_args).await;
    let dry = ok(&result);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["applied"], false);
    assert_eq!(dry["manifest"], "package.json");
    assert_eq!(dry["content"], expected);
    assert_eq!(dry["files"][0]["action"], "edit", "{dry}");
    assert_eq!(dry["files"][0]["edits"][0]["new_text"], expected);
    assert_eq!(
        dry["warnings"],
        json!(["left-pad is not a dependency in package.json; nothing removed"])
    );
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("dry run"), "{text}");
    assert!(text.contains("lodash ^4.17.21 -> ^4.17.22"), "{text}");
    assert_eq!(
        p.read("package.json"),
        PACKAGE_JSON,
        "a dry run changes nothing"
    );

    // Applied: the client's file holds the new content.
    let done = ok(&p.tool("update_dependencies", args).await);
    assert_eq!(done["applied"], true);
    assert_eq!(done["dry_run"], false);
    assert_eq!(p.read("package.json"), expected);
    let changes = done["changes"].as_array().unwrap();
    let find = |name: &str| {
        changes
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no change for {name}: {done}"))
            .clone()
    };
    assert_eq!(
        find("lodash"),
        json!({"section": "dependencies", "action": "updated", "name": "lodash", "value": "^4.17.22", "previous": "^4.17.21"})
    );
    assert_eq!(find("express")["action"], "removed");
    assert_eq!(find("typescript")["section"], "devDependencies");
    assert_eq!(find("version")["previous"], "1.0.0");

    // The same call again changes nothing.
    let again = ok(&p
        .tool(
            "update_dependencies",
            json!({"file_path": "package.json", "add_dependencies": {"axios": "^1.6.0"}}),
        )
        .await);
    assert_eq!(again["applied"], false);
    assert_eq!(again["changes"], json!([]));
}

#[tokio::test]
async fn requirements_and_cargo_toml_and_the_alias() {
    let p = Project::start("deps-py-rs").await;

    let req = ok(&p
        .tool(
            "update_dependencies",
            json!({
                "file_path": p.root.join("requirements.txt").to_string_lossy(),
                "add_dependencies": {"requests": "2.31.0", "rich": ">=13"},
                "remove_dependencies": ["flask-login"]
            }),
        )
        .await);
    assert_eq!(req["applied"], true);
    assert_eq!(
        p.read("requirements.txt"),
        "# runtime\nrequests==2.31.0  # HTTP\nrich>=13\n"
    );

    // Dev dependencies have no place in requirements.txt: a clear error, nothing written.
    let e = err(&p
        .tool(
            "update_dependencies",
            json!({"file_path": "requirements.txt", "add_dev_dependencies": {"pytest": "8"}}),
        )
        .await);
    assert!(e.contains("no dev dependencies"), "{e}");

    // Cargo.toml through the alias: comments and formatting survive.
    let cargo = ok(&p
        .tool(
            "update_package_json",
            json!({
                "file_path": "Cargo.toml",
                "add_dependencies": {"clap": "4.5", "serde": "1.0.200"},
                "add_dev_dependencies": {"tempfile": "3"},
                "update_version": "0.2.0"
            }),
        )
        .await);
    assert_eq!(cargo["applied"], true);
    assert_eq!(cargo["manifest"], "Cargo.toml");
    assert_eq!(
        p.read("Cargo.toml"),
        r#"[package]
name = "demo"
version = "0.2.0" # bump on release
edition = "2021"

# Sorted.
[dependencies]
anyhow = "1"
clap = "4.5"
serde = { version = "1.0.200", features = ["derive"] }

[dev-dependencies]
tempfile = "3"
"#
    );

    let e = err(&p
        .tool(
            "update_dependencies",
            json!({"file_path": "Cargo.toml", "add_scripts": {"build": "cargo build"}}),
        )
        .await);
    assert!(e.contains("Cargo.toml has no scripts"), "{e}");
}

#[tokio::test]
async fn unsupported_files_and_missing_manifests_are_clear_errors() {
    let p = Project::start("deps-errors").await;
    let e = err(&p
        .tool(
            "update_dependencies",
            json!({"file_path": "notes.txt", "add_dependencies": {"x": "1"}}),
        )
        .await);
    assert!(e.contains("notes.txt is not a supported manifest"), "{e}");
    for kind in [
        "package.json",
        "Cargo.toml",
        "pyproject.toml",
        "requirements.txt",
        "go.mod",
    ] {
        assert!(e.contains(kind), "{e} should name {kind}");
    }
    assert_eq!(p.read("notes.txt"), "not a manifest\n");

    let e = err(&p
        .tool(
            "update_dependencies",
            json!({"file_path": "sub/go.mod", "add_dependencies": {"a.com/x": "v1.0.0"}}),
        )
        .await);
    assert!(e.contains("does not exist"), "{e}");

    // The tool is listed with its output schema.
    let list = p.relay.call("tools/list", json!({})).await;
    let tool = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "update_dependencies")
        .cloned()
        .unwrap_or_else(|| panic!("update_dependencies not listed: {list}"));
    assert!(tool["outputSchema"]["properties"]["changes"].is_object());
}
