//! `get_code_actions`: the fixes and refactorings the language server offers for a range.
//! Listed, not applied.

use codeflow_lsp_pool::lsp_types::request::CodeActionRequest;
use codeflow_lsp_pool::lsp_types::{
    CodeActionContext, CodeActionOrCommand, CodeActionParams, DocumentChangeOperation,
    DocumentChanges, Position, Range, ResourceOp, Url, WorkspaceEdit,
};
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{file_path_schema, finish, object};
use crate::lsp::{Document, Locator};

/// The `get_code_actions` tool (its description is in `description`).
#[derive(Debug)]
pub struct GetCodeActions;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    #[serde(default)]
    range: Option<Range>,
}

/// Files a workspace edit would touch.
fn edited_uris(edit: &WorkspaceEdit) -> Vec<Url> {
    let mut uris: Vec<Url> = edit
        .changes
        .iter()
        .flat_map(|c| c.keys().cloned())
        .collect();
    match &edit.document_changes {
        Some(DocumentChanges::Edits(edits)) => {
            uris.extend(edits.iter().map(|e| e.text_document.uri.clone()));
        }
        Some(DocumentChanges::Operations(ops)) => {
            for op in ops {
                match op {
                    DocumentChangeOperation::Edit(e) => uris.push(e.text_document.uri.clone()),
                    DocumentChangeOperation::Op(ResourceOp::Create(c)) => uris.push(c.uri.clone()),
                    DocumentChangeOperation::Op(ResourceOp::Rename(r)) => {
                        uris.push(r.old_uri.clone());
                        uris.push(r.new_uri.clone());
                    }
                    DocumentChangeOperation::Op(ResourceOp::Delete(d)) => uris.push(d.uri.clone()),
                }
            }
        }
        None => {}
    }
    uris.dedup();
    uris
}

impl Tool for GetCodeActions {
    fn name(&self) -> &'static str {
        "get_code_actions"
    }

    fn description(&self) -> &'static str {
        "List the quick fixes and refactorings the language server offers for a file or a range of it (nothing is applied); use it to see how a diagnostic can be fixed or what refactorings exist."
    }

    fn input_schema(&self) -> Value {
        let position = json!({"type": "object", "properties": {
            "line": {"type": "integer", "minimum": 0, "description": "0-based line (LSP)."},
            "character": {"type": "integer", "minimum": 0, "description": "0-based UTF-16 character (LSP)."}
        }, "required": ["line", "character"]});
        let mut props = serde_json::Map::new();
        props.insert("file_path".into(), file_path_schema());
        props.insert("range".into(), json!({
            "type": "object",
            "description": "An LSP range, 0-based as in LSP (unlike other tools' 1-based lines): {start:{line,character}, end:{line,character}}. The whole file when omitted.",
            "properties": {"start": position, "end": position},
            "required": ["start", "end"]
        }));
        object(props, &["file_path"])
    }

    fn output_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "actions": {"type": "array", "items": {"type": "object", "properties": {
                    "title": {"type": "string"},
                    "kind": {"type": "string", "description": "e.g. quickfix, refactor.extract, source.organizeImports"},
                    "is_preferred": {"type": "boolean"},
                    "disabled": {"type": "string", "description": "Why the server says it cannot be applied now."},
                    "fixes": {"type": "array", "items": {"type": "string"}, "description": "Messages of the diagnostics it fixes."},
                    "edits_files": {"type": "array", "items": {"type": "string"}, "description": "Files its edit would change."},
                    "command": {"type": "string", "description": "The server command it runs, if any."}
                }, "required": ["title"]}}
            },
            "required": ["path", "actions"]
        })
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            ctx.require(Right::LspQuery)?;
            let args: Args = parse_args(args)?;
            let doc = Document::open(ctx, &args.file_path).await?;
            let range = args.range.unwrap_or_else(|| {
                Range::new(
                    Position::new(0, 0),
                    codeflow_workspace::end_position(&doc.text),
                )
            });
            // Quick fixes are offered for the diagnostics the request carries.
            let diagnostics = doc
                .server
                .diagnostics(doc.file.mirror.as_path())
                .await
                .map(|r| r.diagnostics)
                .unwrap_or_default()
                .into_iter()
                .filter(|d| d.range.start <= range.end && d.range.end >= range.start)
                .collect();
            let actions = doc
                .server
                .request::<CodeActionRequest>(CodeActionParams {
                    text_document: doc.identifier(),
                    range,
                    context: CodeActionContext {
                        diagnostics,
                        only: None,
                        trigger_kind: None,
                    },
                    work_done_progress_params: Default::default(),
                    partial_result_params: Default::default(),
                })
                .await
                .map_err(crate::lsp::lsp_error)?
                .unwrap_or_default();
            let locator = Locator::new(ctx).await?;
            let mut rows = Vec::new();
            let mut text = Vec::new();
            for action in actions {
                match action {
                    CodeActionOrCommand::Command(c) => {
                        text.push(format!("- {} (command {})", c.title, c.command));
                        rows.push(json!({"title": c.title, "command": c.command}));
                    }
                    CodeActionOrCommand::CodeAction(a) => {
                        let kind = a.kind.as_ref().map(|k| k.as_str().to_owned());
                        let files: Vec<String> = a
                            .edit
                            .as_ref()
                            .map(edited_uris)
                            .unwrap_or_default()
                            .iter()
                            .map(|u| locator.display_path(u))
                            .collect();
                        let mut line = format!("- {}", a.title);
                        if let Some(k) = &kind {
                            line.push_str(&format!(" [{k}]"));
                        }
                        if a.is_preferred == Some(true) {
                            line.push_str(" (preferred)");
                        }
                        if let Some(d) = &a.disabled {
                            line.push_str(&format!(" (disabled: {})", d.reason));
                        }
                        text.push(line);
                        let mut row = json!({
                            "title": a.title,
                            "is_preferred": a.is_preferred.unwrap_or(false),
                            "fixes": a.diagnostics.iter().flatten().map(|d| d.message.clone()).collect::<Vec<_>>(),
                            "edits_files": files,
                        });
                        if let Some(k) = kind {
                            row["kind"] = json!(k);
                        }
                        if let Some(d) = a.disabled {
                            row["disabled"] = json!(d.reason);
                        }
                        if let Some(c) = a.command {
                            row["command"] = json!(c.command);
                        }
                        rows.push(row);
                    }
                }
            }
            let head = if rows.is_empty() {
                format!("No code actions for {} in that range.", doc.file.client)
            } else {
                format!(
                    "{} code action(s) for {} (listed, not applied):",
                    rows.len(),
                    doc.file.client
                )
            };
            text.insert(0, head);
            Ok(finish(
                &locator,
                text.join("\n"),
                json!({"path": doc.file.client, "actions": rows}),
            ))
        }
        .boxed()
    }
}
