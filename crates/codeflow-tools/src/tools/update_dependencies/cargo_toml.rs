//! Cargo.toml: `[dependencies]`, `[dev-dependencies]` and `[package] version`, through
//! `toml_edit` so comments and formatting survive.

use toml_edit::{DocumentMut, Item, Value};

use super::toml_util::{
    parse, remove_table_dependency, replace_value, set_table_dependency, table, table_mut,
};
use super::{Edited, Request, unsupported};
use crate::error::ToolError;

const FILE: &str = "Cargo.toml";

pub fn edit(text: &str, req: &Request) -> Result<Edited, ToolError> {
    if req.wants_scripts() {
        return Err(unsupported(
            "Cargo.toml has no scripts; use add_dependencies, add_dev_dependencies, remove_dependencies or update_version",
        ));
    }
    let mut doc = parse(text, FILE)?;
    let mut out = Edited::default();
    // A virtual workspace manifest keeps its shared dependencies in [workspace.dependencies].
    let virtual_workspace = table(&doc, &["package"]).is_none()
        && table(&doc, &["dependencies"]).is_none()
        && table(&doc, &["workspace"]).is_some();
    let deps_path: &[&str] = if virtual_workspace {
        &["workspace", "dependencies"]
    } else {
        &["dependencies"]
    };
    let deps_name = deps_path.join(".");
    for (name, version) in &req.add_dependencies {
        set_dependency(&mut doc, deps_path, &deps_name, name, version, &mut out)?;
    }
    if !req.add_dev_dependencies.is_empty() && virtual_workspace {
        return Err(unsupported(
            "this Cargo.toml is a virtual workspace manifest: it has no [dev-dependencies]; add them to a member crate's Cargo.toml",
        ));
    }
    for (name, version) in &req.add_dev_dependencies {
        set_dependency(
            &mut doc,
            &["dev-dependencies"],
            "dev-dependencies",
            name,
            version,
            &mut out,
        )?;
    }
    for name in &req.remove_dependencies {
        let mut found = false;
        for path in [
            &["dependencies"][..],
            &["dev-dependencies"],
            &["build-dependencies"],
            &["workspace", "dependencies"],
        ] {
            found |= remove_table_dependency(&mut doc, path, name, cargo_norm, &mut out);
        }
        if !found {
            out.warnings.push(format!(
                "{name} is not a dependency in Cargo.toml; nothing removed"
            ));
        }
    }
    if let Some(version) = &req.update_version {
        let package = table_mut(&mut doc, &["package"]).ok_or_else(|| {
            unsupported("Cargo.toml has no [package] (a virtual workspace manifest?), so no version to update")
        })?;
        let previous = match package.get_mut("version") {
            Some(Item::Value(v @ Value::String(_))) => {
                let previous = v.as_str().map(str::to_owned);
                replace_value(v, version.as_str());
                previous
            }
            Some(_) => {
                return Err(unsupported(
                    "this crate's version is inherited from the workspace (version.workspace = true); update [workspace.package] version in the workspace's Cargo.toml",
                ));
            }
            None => {
                package.insert("version", toml_edit::value(version.as_str()));
                None
            }
        };
        out.record_set("package.version", "version", version, previous);
    }
    out.content = doc.to_string();
    Ok(out)
}

/// Cargo treats `-` and `_` in crate names alike.
fn cargo_norm(name: &str) -> String {
    name.replace('_', "-")
}

fn set_dependency(
    doc: &mut DocumentMut,
    path: &[&str],
    section: &str,
    name: &str,
    version: &str,
    out: &mut Edited,
) -> Result<(), ToolError> {
    set_table_dependency(doc, path, section, name, version, out, FILE, cargo_norm)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tools::update_dependencies::Action;

    const CARGO: &str = r#"[package]
name = "demo" # the crate
version = "0.1.0"  # bump me
edition = "2021"

# Runtime dependencies, sorted.
[dependencies]
anyhow = "1"
serde = { version = "1.0", features = ["derive"] } # keep features
tokio = "1.37"

[dependencies.regex]
version = "1.9"
default-features = false
"#;

    #[test]
    fn add_update_remove_keep_comments_and_formatting() {
        let mut r = Request::default();
        r.add_dependencies.insert("clap".into(), "4.5".into());
        r.add_dependencies.insert("serde".into(), "1.0.200".into());
        r.add_dependencies.insert("regex".into(), "1.10".into());
        r.add_dev_dependencies.insert("tempfile".into(), "3".into());
        r.remove_dependencies.push("tokio".into());
        r.update_version = Some("0.2.0".into());
        let out = edit(CARGO, &r).unwrap();
        assert_eq!(
            out.content,
            r#"[package]
name = "demo" # the crate
version = "0.2.0"  # bump me
edition = "2021"

# Runtime dependencies, sorted.
[dependencies]
anyhow = "1"
clap = "4.5"
serde = { version = "1.0.200", features = ["derive"] } # keep features

[dependencies.regex]
version = "1.10"
default-features = false

[dev-dependencies]
tempfile = "3"
"#
        );
        let serde = out.changes.iter().find(|c| c.name == "serde").unwrap();
        assert_eq!(serde.action, Action::Updated);
        assert_eq!(serde.previous.as_deref(), Some("1.0"));
        let tokio = out.changes.iter().find(|c| c.name == "tokio").unwrap();
        assert_eq!(tokio.action, Action::Removed);
        assert_eq!(tokio.section, "dependencies");
    }

    #[test]
    fn unsorted_table_appends_and_dashes_match_underscores() {
        let text = "[package]\nname = \"x\"\nversion = \"1.0.0\"\n\n[dependencies]\nzeta = \"1\"\nalpha = \"1\"\n\n[dev-dependencies]\npretty_assertions = \"1\" # diffs\n";
        let mut r = Request::default();
        r.add_dependencies.insert("mid".into(), "0.3".into());
        r.remove_dependencies.push("pretty-assertions".into());
        r.remove_dependencies.push("absent".into());
        let out = edit(text, &r).unwrap();
        assert_eq!(
            out.content,
            "[package]\nname = \"x\"\nversion = \"1.0.0\"\n\n[dependencies]\nzeta = \"1\"\nalpha = \"1\"\nmid = \"0.3\"\n\n[dev-dependencies]\n"
        );
        assert_eq!(
            out.warnings,
            vec!["absent is not a dependency in Cargo.toml; nothing removed".to_owned()]
        );
    }

    #[test]
    fn scripts_and_inherited_entries_are_clear_errors() {
        let mut r = Request::default();
        r.add_scripts.insert("build".into(), "cargo build".into());
        let err = edit(CARGO, &r).unwrap_err();
        assert!(
            err.to_string().contains("Cargo.toml has no scripts"),
            "{err}"
        );

        let text = "[package]\nname = \"x\"\nversion.workspace = true\n\n[dependencies]\nserde = { workspace = true }\n";
        let r = Request {
            update_version: Some("2.0.0".into()),
            ..Default::default()
        };
        assert!(
            edit(text, &r)
                .unwrap_err()
                .to_string()
                .contains("inherited")
        );
        let mut r = Request::default();
        r.add_dependencies.insert("serde".into(), "1".into());
        assert!(
            edit(text, &r)
                .unwrap_err()
                .to_string()
                .contains("workspace")
        );
    }

    #[test]
    fn virtual_workspace_uses_workspace_dependencies() {
        let text = "[workspace]\nmembers = [\"a\"]\n\n[workspace.dependencies]\nserde = \"1\"\n";
        let mut r = Request::default();
        r.add_dependencies.insert("tokio".into(), "1".into());
        let out = edit(text, &r).unwrap();
        assert_eq!(
            out.content,
            "[workspace]\nmembers = [\"a\"]\n\n[workspace.dependencies]\nserde = \"1\"\ntokio = \"1\"\n"
        );
        assert_eq!(out.changes[0].section, "workspace.dependencies");
    }
}
