//! `preview_edit`: what an edit would break or fix, without writing it.
//!
//! The edit — any write tool's arguments, or a workspace edit — is planned as in a dry-run
//! batch (nothing is written, to the client or the mirror). Each file it would change is then
//! shown to its language server as an overlay: its diagnostics are taken at the current
//! content, the planned content is sent (`didChange`), its diagnostics are taken again, and the
//! server's view is put back to the mirror's content — also when the call fails or is
//! cancelled (a guard restores it on drop). While the overlay stands (a few seconds at most),
//! other questions to that server about that file see the planned content.

use std::collections::BTreeMap;

use codeflow_file_stream::MirrorPath;
use codeflow_lsp_pool::ServerHandle;
use codeflow_session::Right;
use codeflow_workspace::after_write::{FileDiagnostics, SETTLE, publish_run, row_text, wait_fresh};
use codeflow_workspace::diagnostics::{DiagnosticRow, Severity, diagnostic_row};
use codeflow_workspace::{BatchScope, ProjectWorkspace};
use codeflow_workspace::{FileReport, Scrubber};
use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::catalogue::{Catalogue, Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::output::schema_of;

/// The `preview_edit` tool over the write tools of a catalogue.
#[derive(Debug)]
pub struct PreviewEdit {
    tools: Catalogue,
}

impl PreviewEdit {
    /// A preview over `tools` (the catalogue as it is, without this tool).
    pub fn over(tools: Catalogue) -> Self {
        Self { tools }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    args: Option<Map<String, Value>>,
    #[serde(default)]
    changes: Option<Value>,
}

/// The write tools a preview can run.
const PREVIEWABLE: &[&str] = &[
    "apply_workspace_edit",
    "create_file",
    "format_document",
    "insert_after_symbol",
    "insert_before_symbol",
    "organize_imports",
    "rename_file",
    "rename_symbol",
    "rename_symbol_strict",
    "replace_symbol_body",
    "safe_delete_symbol",
    "update_dependencies",
    "fix_imports",
    "rename_directory",
    "delete_file",
];

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    tool: String,
    /// The edit the tool planned (nothing was written).
    edit: PlannedEdit,
    files: Vec<Preview>,
    /// Always false: a preview writes nothing.
    written: bool,
}

/// The edit a tool planned: the edit-outcome members of its answer.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
struct PlannedEdit {
    /// True when nothing was written.
    #[serde(default = "yes")]
    dry_run: bool,
    /// True when the client's files were changed.
    #[serde(default = "yes")]
    applied: bool,
    #[serde(default)]
    files_changed: usize,
    /// Per file: what changes, with 1-based ranges in the file's text before the edit.
    #[serde(default)]
    files: Vec<FileReport>,
}

fn yes() -> bool {
    true
}

impl Tool for PreviewEdit {
    fn name(&self) -> &'static str {
        "preview_edit"
    }

    fn description(&self) -> &'static str {
        "Preview an edit without writing anything: give a write tool and its arguments (e.g. tool: replace_symbol_body, args: {...}) or a workspace edit (changes, as apply_workspace_edit takes it). The language servers are shown the edited files for a moment and the answer lists, per file, the diagnostics the edit would add (appeared) and remove (disappeared); then their view is restored."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "tool": {"type": "string", "enum": PREVIEWABLE, "description": "A write tool to preview."},
                "args": {"type": "object", "description": "Its arguments (dry_run is implied)."},
                "changes": {"type": "object", "description": "Or a workspace edit: path or URI → [{range, newText}] (0-based LSP ranges), as apply_workspace_edit takes it."}
            },
            "additionalProperties": false
        })
    }

    fn output_schema(&self) -> Value {
        schema_of::<Output>()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            ctx.require(Right::LspQuery)?;
            let args: Args = parse_args(args)?;
            let (name, mut tool_args) = match (args.tool, args.args, args.changes) {
                (Some(tool), tool_args, None) => (tool, tool_args.unwrap_or_default()),
                (None, None, Some(changes)) => {
                    let mut a = Map::new();
                    a.insert("changes".into(), changes);
                    ("apply_workspace_edit".to_owned(), a)
                }
                _ => {
                    return Err(ToolError::InvalidArguments(
                        "give either tool (with args) or changes".to_owned(),
                    ));
                }
            };
            if !PREVIEWABLE.contains(&name.as_str()) {
                return Err(ToolError::InvalidArguments(format!(
                    "`{name}` cannot be previewed; previewable tools: {}",
                    PREVIEWABLE.join(", ")
                )));
            }
            let tool = self
                .tools
                .get(&name)
                .ok_or_else(|| ToolError::InvalidArguments(format!("no tool `{name}`")))?;
            tool_args.remove("dry_run");
            let scope = BatchScope::new(true);
            let planned = ctx
                .in_batch(&scope)
                .run(tool.as_ref(), Value::Object(tool_args))
                .await?;
            let workspace = ctx.workspace().await?;
            let mut files = Vec::new();
            let mut rows_for_channel = Vec::new();
            for p in scope.planned() {
                let Some(after_bytes) = p.planned else {
                    continue; // deleted: nothing for a server to check
                };
                let Some(found) = preview_file(
                    ctx,
                    &workspace,
                    &p.mirror,
                    p.original.is_some(),
                    after_bytes,
                )
                .await
                else {
                    continue;
                };
                rows_for_channel.push(FileDiagnostics::new(
                    found.path.clone(),
                    found.server.clone(),
                    found.fresh,
                    found.after.clone(),
                    None,
                ));
                files.push(found);
            }
            publish_run(&ctx.caller, "preview_edit", &rows_for_channel);
            let edit: PlannedEdit = serde_json::from_value(planned.structured)
                .map_err(|e| ToolError::failed(format!("{name} answered no edit outcome: {e}")))?;
            let mut text = vec![format!(
                "Preview of {name} (nothing was written): {} file(s) would change.",
                edit.files.len()
            )];
            for f in &files {
                text.push(format!(
                    "- {}: errors {} -> {}{}",
                    f.path,
                    f.errors_before,
                    f.errors_after,
                    if f.fresh {
                        ""
                    } else {
                        " (the language server did not answer in time; may be incomplete)"
                    }
                ));
                for r in &f.appeared {
                    text.push(format!(
                        "    + {}",
                        row_text(&f.path, r).replace('\n', "\n      ")
                    ));
                }
                for r in &f.disappeared {
                    text.push(format!(
                        "    - {}",
                        row_text(&f.path, r).replace('\n', "\n      ")
                    ));
                }
            }
            if files.is_empty() {
                text.push("No changed file has a language server to check it.".to_owned());
            }
            let out = Output {
                tool: name,
                edit,
                files,
                written: false,
            };
            ToolOutput::typed(text.join("\n"), &out)
        }
        .boxed()
    }
}

/// One file's preview.
#[derive(Debug, Serialize, JsonSchema)]
struct Preview {
    /// Why the answer may not be fresh, when more is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    path: String,
    server: String,
    /// False when the server did not answer for the current or the edited content in time.
    fresh: bool,
    errors_before: usize,
    errors_after: usize,
    appeared: Vec<DiagnosticRow>,
    disappeared: Vec<DiagnosticRow>,
    /// Every diagnostic with the edit.
    after: Vec<DiagnosticRow>,
}

/// Puts a server's view of a document back to the mirror's content as it is then (or closes
/// it when the file is not in the mirror) when dropped.
struct Restore {
    server: ServerHandle,
    path: MirrorPath,
}

impl Drop for Restore {
    fn drop(&mut self) {
        // The mirror as it is now: a write that landed meanwhile is what the server must see.
        let done = match std::fs::read(self.path.as_path()) {
            Ok(bytes) => self
                .server
                .sync_document(
                    self.path.as_path(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                )
                .map(|_| ()),
            Err(_) => self.server.close(self.path.as_path()),
        };
        if let Err(e) = done {
            tracing::warn!(server = self.server.server_id(), error = %e, "restoring a previewed document");
        }
    }
}

/// Rows as comparable keys: what the diagnostic says and on which text (positions move with
/// the edit).
fn key(row: &DiagnosticRow) -> (String, String, String, String) {
    (
        row.severity.name().to_owned(),
        row.message.to_string(),
        row.code.clone().unwrap_or_default(),
        row.text.clone().unwrap_or_default(),
    )
}

fn rows(
    text: &str,
    d: &[codeflow_lsp_pool::lsp_types::Diagnostic],
    scrubber: &Scrubber,
) -> Vec<DiagnosticRow> {
    let mut d = d.to_vec();
    d.sort_by_key(|d| (d.range.start.line, d.range.start.character));
    d.iter()
        .map(|d| diagnostic_row(Some(text), d, scrubber))
        .collect()
}

fn errors(rows: &[DiagnosticRow]) -> usize {
    rows.iter()
        .filter(|r| r.severity == Severity::Error)
        .count()
}

/// Differences of two lists of rows, as multisets by [`key`].
fn minus(a: &[DiagnosticRow], b: &[DiagnosticRow]) -> Vec<DiagnosticRow> {
    let mut counts: BTreeMap<(String, String, String, String), usize> = BTreeMap::new();
    for r in b {
        *counts.entry(key(r)).or_default() += 1;
    }
    a.iter()
        .filter(|r| match counts.get_mut(&key(r)) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        })
        .cloned()
        .collect()
}

async fn preview_file(
    ctx: &ToolContext,
    workspace: &ProjectWorkspace,
    path: &MirrorPath,
    existed: bool,
    after_bytes: Vec<u8>,
) -> Option<Preview> {
    let server = workspace.lease.server_for_file(path.as_path()).await.ok()?;
    let scrubber = ctx.caller.scrubber(workspace);
    let current = if existed {
        Some(String::from_utf8_lossy(&workspace.mirror.read(path).await.ok()?).into_owned())
    } else {
        None
    };
    let after_text = String::from_utf8_lossy(&after_bytes).into_owned();
    let mut fresh = true;
    let before = match &current {
        Some(text) => {
            server.sync_document(path.as_path(), text.clone()).ok()?;
            match server.diagnostics_settled(path.as_path(), SETTLE).await {
                Ok(r) => {
                    fresh &= r.fresh;
                    rows(text, &r.diagnostics, &scrubber)
                }
                Err(_) => {
                    fresh = false;
                    Vec::new()
                }
            }
        }
        None => Vec::new(),
    };
    let _restore = Restore {
        server: server.clone(),
        path: path.clone(),
    };
    server
        .sync_document(path.as_path(), after_text.clone())
        .ok()?;
    // As after a write: a server that publishes only changes stays silent while a file stays
    // clean, so that wait is short.
    let (report, mut note) = wait_fresh(&server, path.as_path()).await;
    let after = match report {
        Some(r) => {
            fresh &= r.fresh;
            if r.fresh {
                note = None;
            }
            rows(&after_text, &r.diagnostics, &scrubber)
        }
        None => {
            fresh = false;
            Vec::new()
        }
    };
    Some(Preview {
        note,
        path: ctx.client_path(workspace, path),
        server: server.server_id().to_owned(),
        fresh,
        errors_before: errors(&before),
        errors_after: errors(&after),
        appeared: minus(&after, &before),
        disappeared: minus(&before, &after),
        after,
    })
}
