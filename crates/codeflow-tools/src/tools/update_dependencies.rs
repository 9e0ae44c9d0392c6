//! `update_dependencies` (alias `update_package_json`): add, update and remove dependencies and
//! scripts and set the package's version in a manifest — package.json, Cargo.toml,
//! pyproject.toml, requirements*.txt or go.mod — keeping the file's formatting and comments.
//!
//! Each manifest has a pure editor (text → text, in a submodule); the tool reads the file
//! from the mirror, runs the editor and commits the new content through an [`codeflow_workspace::EditPlan`].

mod cargo_toml;
mod go_mod;
mod line_file;
mod package_json;
mod pyproject;
mod requirements;
mod toml_util;

use std::collections::BTreeMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::edit_output::{EditOutcomeExt, OutcomeWith};
use crate::error::{ToolError, parse_args};
use crate::output::schema_of;
use schemars::JsonSchema;

/// The `update_dependencies` tool (its description is in `description`).
#[derive(Debug)]
pub struct UpdateDependencies;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    #[serde(default)]
    add_dependencies: BTreeMap<String, String>,
    #[serde(default)]
    add_dev_dependencies: BTreeMap<String, String>,
    #[serde(default)]
    remove_dependencies: Vec<String>,
    #[serde(default)]
    add_scripts: BTreeMap<String, String>,
    #[serde(default)]
    remove_scripts: Vec<String>,
    #[serde(default)]
    update_version: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

/// What to change in a manifest.
#[derive(Debug, Default, Clone)]
pub struct Request {
    /// Dependencies to add or update: name → version or requirement.
    pub add_dependencies: BTreeMap<String, String>,
    /// Development dependencies to add or update.
    pub add_dev_dependencies: BTreeMap<String, String>,
    /// Dependencies to remove.
    pub remove_dependencies: Vec<String>,
    /// Scripts to add or update: name → command.
    pub add_scripts: BTreeMap<String, String>,
    /// Scripts to remove.
    pub remove_scripts: Vec<String>,
    /// The new version of the package itself.
    pub update_version: Option<String>,
}

impl Request {
    fn is_empty(&self) -> bool {
        self.add_dependencies.is_empty()
            && self.add_dev_dependencies.is_empty()
            && self.remove_dependencies.is_empty()
            && self.add_scripts.is_empty()
            && self.remove_scripts.is_empty()
            && self.update_version.is_none()
    }

    fn wants_scripts(&self) -> bool {
        !self.add_scripts.is_empty() || !self.remove_scripts.is_empty()
    }
}

/// What happened to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// It was not there.
    Added,
    /// It was there with another value.
    Updated,
    /// It was taken out.
    Removed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Updated => "updated",
            Self::Removed => "removed",
        }
    }
}

/// One change to one entry of a manifest section.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Change {
    /// The manifest's section, in its own words (dependencies, devDependencies,
    /// dev-dependencies, project.dependencies, scripts, version, require, ...).
    pub section: String,
    /// What happened.
    pub action: Action,
    /// The entry's name.
    pub name: String,
    /// The new version, requirement or command; none for removals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value before the change; none for additions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

impl Change {
    fn removed(section: &str, name: &str, previous: Option<String>) -> Self {
        Self {
            section: section.to_owned(),
            action: Action::Removed,
            name: name.to_owned(),
            value: None,
            previous,
        }
    }
}

/// What an editor made of a manifest.
#[derive(Debug, Default, Clone)]
pub struct Edited {
    /// The manifest's new content.
    pub content: String,
    /// What changed, entry by entry.
    pub changes: Vec<Change>,
    /// What was asked but could not be done, in words.
    pub warnings: Vec<String>,
}

impl Edited {
    /// Records setting `name` in `section` to `value`, which was `previous` (nothing when equal).
    fn record_set(&mut self, section: &str, name: &str, value: &str, previous: Option<String>) {
        let action = match &previous {
            None => Action::Added,
            Some(p) if p == value => return,
            Some(_) => Action::Updated,
        };
        self.changes.push(Change {
            section: section.to_owned(),
            action,
            name: name.to_owned(),
            value: Some(value.to_owned()),
            previous,
        });
    }
}

/// The manifests this tool edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum Manifest {
    /// `package.json` (npm).
    #[serde(rename = "package.json")]
    PackageJson,
    /// `Cargo.toml`.
    #[serde(rename = "Cargo.toml")]
    CargoToml,
    /// `pyproject.toml` (PEP 621).
    #[serde(rename = "pyproject.toml")]
    Pyproject,
    /// `requirements.txt`.
    #[serde(rename = "requirements.txt")]
    Requirements,
    /// `go.mod`.
    #[serde(rename = "go.mod")]
    GoMod,
}

const SUPPORTED: &str =
    "package.json, Cargo.toml, pyproject.toml, requirements.txt (requirements*.txt) and go.mod";

impl Manifest {
    /// The kind of a manifest by its file name.
    pub fn of(path: &str) -> Option<Self> {
        let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        match name {
            "package.json" => Some(Self::PackageJson),
            "Cargo.toml" => Some(Self::CargoToml),
            "pyproject.toml" => Some(Self::Pyproject),
            "go.mod" => Some(Self::GoMod),
            n if n.ends_with(".txt") && n.contains("requirements") => Some(Self::Requirements),
            _ => None,
        }
    }

    /// The manifest's file name.
    pub fn name(self) -> &'static str {
        match self {
            Self::PackageJson => "package.json",
            Self::CargoToml => "Cargo.toml",
            Self::Pyproject => "pyproject.toml",
            Self::Requirements => "requirements.txt",
            Self::GoMod => "go.mod",
        }
    }

    /// Applies a request to a manifest's text.
    pub fn edit(self, text: &str, req: &Request) -> Result<Edited, ToolError> {
        match self {
            Self::PackageJson => package_json::edit(text, req),
            Self::CargoToml => cargo_toml::edit(text, req),
            Self::Pyproject => pyproject::edit(text, req),
            Self::Requirements => requirements::edit(text, req),
            Self::GoMod => go_mod::edit(text, req),
        }
    }
}

/// An error for something a manifest kind cannot hold.
fn unsupported(message: impl Into<String>) -> ToolError {
    ToolError::InvalidArguments(message.into())
}

fn string_map_schema(description: &str) -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}, "description": description})
}

fn summary(file: &str, manifest: Manifest, edited: &Edited, dry_run: bool) -> String {
    let mut out = if edited.changes.is_empty() {
        format!("{file} ({}): nothing to change.", manifest.name())
    } else if dry_run {
        format!(
            "{file} ({}) dry run, nothing was written; would make {} change(s):",
            manifest.name(),
            edited.changes.len()
        )
    } else {
        format!(
            "Updated {file} ({}): {} change(s):",
            manifest.name(),
            edited.changes.len()
        )
    };
    for c in &edited.changes {
        let what = match (c.action, &c.previous, &c.value) {
            (Action::Updated, Some(p), Some(v)) => format!("{} {p} -> {v}", c.name),
            (Action::Removed, _, _) => c.name.clone(),
            (_, _, Some(v)) => format!("{} {v}", c.name),
            _ => c.name.clone(),
        };
        out.push_str(&format!("\n- {}: {} {what}", c.section, c.action.as_str()));
    }
    for w in &edited.warnings {
        out.push_str(&format!("\nWarning: {w}"));
    }
    if dry_run && !edited.changes.is_empty() {
        out.push_str("\nResulting content:\n");
        out.push_str(&edited.content);
    }
    out
}

/// What the tool changed in the manifest (its members of the answer).
#[derive(Debug, Serialize, JsonSchema)]
pub struct ManifestChanges {
    /// The manifest, as the client names it.
    file: String,
    manifest: Manifest,
    /// Every entry changed (or that would be, in a dry run), in order.
    changes: Vec<Change>,
    /// Things not done that were not errors (e.g. removing an absent dependency).
    warnings: Vec<String>,
    /// The manifest's whole content after the changes.
    content: String,
}

impl Tool for UpdateDependencies {
    fn name(&self) -> &'static str {
        "update_dependencies"
    }

    fn description(&self) -> &'static str {
        "Add, update or remove dependencies and dev dependencies, add or remove scripts, and set the package version in a project manifest (package.json, Cargo.toml, pyproject.toml, requirements*.txt or go.mod), keeping its formatting and comments; use it instead of editing manifests by hand, with dry_run to preview the new file."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {"type": "string", "description": "The manifest to edit (package.json, Cargo.toml, pyproject.toml, requirements*.txt or go.mod), absolute or relative to the project root; its file name decides the format."},
                "add_dependencies": string_map_schema("Dependencies to add, or to update when present: package name → version or version requirement (\"^4.18.0\" for npm, \"1.0\" for Cargo, \"2.31.0\" or \">=2.31\" for Python — a bare version becomes name==version, \"v1.2.3\" for Go)."),
                "add_dev_dependencies": string_map_schema("Development-only dependencies to add or update (package.json devDependencies, Cargo.toml [dev-dependencies], pyproject dev group); name → version. Not for requirements.txt or go.mod."),
                "remove_dependencies": {"type": "array", "items": {"type": "string"}, "description": "Package names to remove from every dependency section (normal and dev); an absent name gives a warning, not an error. Python names match case-insensitively with -, _ and . equivalent."},
                "add_scripts": string_map_schema("Scripts to add or update: name → command (package.json scripts; pyproject.toml [project.scripts] entry points as \"module:function\"). Not for Cargo.toml, requirements.txt or go.mod."),
                "remove_scripts": {"type": "array", "items": {"type": "string"}, "description": "Script names to remove; an absent name gives a warning."},
                "update_version": {"type": "string", "description": "The package's own new version (package.json version, Cargo.toml [package] version, pyproject version). Not for requirements.txt or go.mod."},
                "dry_run": {"type": "boolean", "default": false, "description": "Return the changes and the resulting file content without writing anything."}
            },
            "required": ["file_path"],
            "additionalProperties": false
        })
    }

    fn output_schema(&self) -> Value {
        schema_of::<OutcomeWith<ManifestChanges>>()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            let args: Args = parse_args(args)?;
            let Some(manifest) = Manifest::of(&args.file_path) else {
                return Err(ToolError::InvalidArguments(format!(
                    "{} is not a supported manifest; update_dependencies edits {SUPPORTED}",
                    args.file_path
                )));
            };
            let req = Request {
                add_dependencies: args.add_dependencies,
                add_dev_dependencies: args.add_dev_dependencies,
                remove_dependencies: args.remove_dependencies,
                add_scripts: args.add_scripts,
                remove_scripts: args.remove_scripts,
                update_version: args.update_version,
            };
            if req.is_empty() {
                return Err(ToolError::InvalidArguments(
                    "nothing to do: give add_dependencies, add_dev_dependencies, remove_dependencies, add_scripts, remove_scripts or update_version".into(),
                ));
            }
            let file = ctx.resolve(&args.file_path).await?;
            let mut plan = ctx.edit_plan(ctx.workspace().await?)?;
            let Some(text) = plan.text(&file.mirror).await? else {
                return Err(ToolError::failed(format!("{} does not exist", file.client))
                    .with_suggestion("check the path; create the manifest first (create_file)"));
            };
            let edited = manifest.edit(&text, &req)?;
            if edited.content != text {
                plan.replace(&file.mirror, edited.content.clone()).await?;
            }
            let outcome = plan.commit(args.dry_run).await?;
            let mut text = summary(&file.client, manifest, &edited, outcome.dry_run);
            let diagnostics =
                codeflow_workspace::after_write::diagnostics_text(&outcome.diagnostics);
            if !diagnostics.is_empty() {
                text.push('\n');
                text.push_str(&diagnostics);
            }
            let out = outcome.with(ManifestChanges {
                file: file.client.clone(),
                manifest,
                changes: edited.changes,
                warnings: edited.warnings,
                content: edited.content,
            });
            ToolOutput::typed(text, &out)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_kinds_by_file_name() {
        assert_eq!(Manifest::of("/p/package.json"), Some(Manifest::PackageJson));
        assert_eq!(
            Manifest::of("crates/x/Cargo.toml"),
            Some(Manifest::CargoToml)
        );
        assert_eq!(Manifest::of("pyproject.toml"), Some(Manifest::Pyproject));
        assert_eq!(
            Manifest::of("requirements-dev.txt"),
            Some(Manifest::Requirements)
        );
        assert_eq!(Manifest::of("a/go.mod"), Some(Manifest::GoMod));
        assert_eq!(Manifest::of("setup.py"), None);
        assert_eq!(Manifest::of("notes.txt"), None);
    }
}
