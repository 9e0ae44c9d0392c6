//! `update_dependencies` (and its alias `update_package_json`) in-process on a project holding
//! package.json, requirements.txt and Cargo.toml: what the tool returned AND what the client's
//! disk holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Fixture, block_on};
use serde_json::json;

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

async fn manifests() -> Fixture {
    Fixture::from_files(
        "deps",
        &[
            ("package.json", PACKAGE_JSON),
            ("requirements.txt", REQUIREMENTS),
            ("Cargo.toml", CARGO_TOML),
            ("notes.txt", "not a manifest\n"),
        ],
    )
    .await
}

fn package_json_update(dry_run: bool) -> serde_json::Value {
    json!({
        "file_path": "package.json",
        "add_dependencies": {"axios": "^1.6.0", "lodash": "^4.17.22"},
        "add_dev_dependencies": {"typescript": "^5.4.0"},
        "remove_dependencies": ["express", "left-pad"],
        "add_scripts": {"test": "vitest"},
        "remove_scripts": ["build"],
        "update_version": "1.1.0",
        "dry_run": dry_run
    })
}

const UPDATED_PACKAGE_JSON: &str = r#"{
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

#[test]
fn a_package_json_dry_run_gives_the_exact_content_and_writes_nothing() {
    block_on(async {
        let f = manifests().await;
        let out = f.ok("update_dependencies", package_json_update(true)).await;
        let dry = &out.structured;
        assert_eq!(
            (&dry["dry_run"], &dry["applied"]),
            (&json!(true), &json!(false))
        );
        assert_eq!(dry["manifest"], "package.json");
        assert_eq!(dry["content"], UPDATED_PACKAGE_JSON);
        assert_eq!(dry["files"][0]["action"], "edit", "{dry}");
        // The edits are the lines that change, not the whole file (issue 10).
        let edits = dry["files"][0]["edits"].as_array().unwrap();
        assert!(!edits.is_empty(), "{dry}");
        for e in edits {
            assert!(
                e["new_text"].as_str().unwrap().len() < UPDATED_PACKAGE_JSON.len() / 2,
                "{e}"
            );
        }
        assert_eq!(
            dry["warnings"],
            json!(["left-pad is not a dependency in package.json; nothing removed"])
        );
        assert!(
            out.text.contains("dry run") && out.text.contains("lodash ^4.17.21 -> ^4.17.22"),
            "{}",
            out.text
        );
        assert_eq!(
            f.read("package.json"),
            PACKAGE_JSON,
            "a dry run changes nothing"
        );
    });
}

#[test]
fn a_package_json_update_is_written_and_reported_change_by_change() {
    block_on(async {
        let f = manifests().await;
        let done = f
            .ok("update_dependencies", package_json_update(false))
            .await
            .structured;
        assert_eq!(
            (&done["applied"], &done["dry_run"]),
            (&json!(true), &json!(false))
        );
        assert_eq!(f.read("package.json"), UPDATED_PACKAGE_JSON);
        let find = |name: &str| {
            done["changes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("no change for {name}: {done}"))
        };
        assert_eq!(
            find("lodash"),
            json!({"section": "dependencies", "action": "updated", "name": "lodash", "value": "^4.17.22", "previous": "^4.17.21"})
        );
        assert_eq!(find("express")["action"], "removed");
        assert_eq!(find("typescript")["section"], "devDependencies");
        assert_eq!(find("version")["previous"], "1.0.0");
        // The same addition again changes nothing.
        let again = f
            .ok(
                "update_dependencies",
                json!({"file_path": "package.json", "add_dependencies": {"axios": "^1.6.0"}}),
            )
            .await
            .structured;
        assert_eq!(
            (&again["applied"], &again["changes"]),
            (&json!(false), &json!([]))
        );
    });
}

#[test]
fn requirements_txt_keeps_comments_and_normalises_names() {
    block_on(async {
        let f = manifests().await;
        let req = f
            .ok(
                "update_dependencies",
                json!({
                    "file_path": f.path("requirements.txt"),
                    "add_dependencies": {"requests": "2.31.0", "rich": ">=13"},
                    "remove_dependencies": ["flask-login"]
                }),
            )
            .await
            .structured;
        assert_eq!(req["applied"], true);
        assert_eq!(
            f.read("requirements.txt"),
            "# runtime\nrequests==2.31.0  # HTTP\nrich>=13\n"
        );
    });
}

/// Dev dependencies have no place in requirements.txt: a clear error, nothing written.
#[test]
fn requirements_txt_has_no_dev_dependencies() {
    block_on(async {
        let f = manifests().await;
        let e = f
            .err(
                "update_dependencies",
                json!({"file_path": "requirements.txt", "add_dev_dependencies": {"pytest": "8"}}),
            )
            .await;
        assert!(e.contains("no dev dependencies"), "{e}");
        assert_eq!(f.read("requirements.txt"), REQUIREMENTS);
    });
}

/// Cargo.toml through the alias: comments and formatting survive.
#[test]
fn cargo_toml_through_the_alias_keeps_its_formatting() {
    block_on(async {
        let f = manifests().await;
        let cargo = f
            .ok(
                "update_package_json",
                json!({
                    "file_path": "Cargo.toml",
                    "add_dependencies": {"clap": "4.5", "serde": "1.0.200"},
                    "add_dev_dependencies": {"tempfile": "3"},
                    "update_version": "0.2.0"
                }),
            )
            .await
            .structured;
        assert_eq!(
            (&cargo["applied"], &cargo["manifest"]),
            (&json!(true), &json!("Cargo.toml"))
        );
        assert_eq!(
            f.read("Cargo.toml"),
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
        let e = f
            .err(
                "update_dependencies",
                json!({"file_path": "Cargo.toml", "add_scripts": {"build": "cargo build"}}),
            )
            .await;
        assert!(e.contains("Cargo.toml has no scripts"), "{e}");
    });
}

#[test]
fn an_unsupported_file_is_a_clear_error_naming_what_is_supported() {
    block_on(async {
        let f = manifests().await;
        let e = f
            .err(
                "update_dependencies",
                json!({"file_path": "notes.txt", "add_dependencies": {"x": "1"}}),
            )
            .await;
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
        assert_eq!(f.read("notes.txt"), "not a manifest\n");
    });
}

#[test]
fn a_missing_manifest_is_a_clear_error() {
    block_on(async {
        let f = manifests().await;
        let e = f
            .err(
                "update_dependencies",
                json!({"file_path": "sub/go.mod", "add_dependencies": {"a.com/x": "v1.0.0"}}),
            )
            .await;
        assert!(e.contains("does not exist"), "{e}");
    });
}

/// The tool declares its output schema.
#[test]
fn the_output_schema_describes_the_changes() {
    let tool = codeflow_tools::Catalogue::standard();
    let tool = tool.get("update_dependencies").unwrap();
    assert!(tool.output_schema()["properties"]["changes"].is_object());
}
