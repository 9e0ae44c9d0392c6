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
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{file_path_schema, object};
use crate::lsp::{Document, Locator};
use crate::output::schema_of;
use codeflow_workspace::ServerText;

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

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    path: String,
    actions: Vec<Action>,
}

/// One code action (or a bare command).
#[derive(Debug, Serialize, JsonSchema)]
struct Action {
    title: ServerText,
    /// e.g. quickfix, refactor.extract, source.organizeImports
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_preferred: Option<bool>,
    /// Why the server says it cannot be applied now.
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled: Option<ServerText>,
    /// Messages of the diagnostics it fixes.
    #[serde(skip_serializing_if = "Option::is_none")]
    fixes: Option<Vec<ServerText>>,
    /// Files its edit would change.
    #[serde(skip_serializing_if = "Option::is_none")]
    edits_files: Option<Vec<String>>,
    /// The server command it runs, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<String>,
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
                .map_err(|e| doc.lsp_error(e))?
                .unwrap_or_default();
            let locator = Locator::new(ctx).await?;
            let mut rows = Vec::new();
            let mut text = Vec::new();
            for action in actions {
                match action {
                    CodeActionOrCommand::Command(c) => {
                        let title = locator.server_text(&c.title);
                        text.push(format!("- {title} (command {})", c.command));
                        rows.push(Action {
                            title,
                            kind: None,
                            is_preferred: None,
                            disabled: None,
                            fixes: None,
                            edits_files: None,
                            command: Some(c.command),
                        });
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
                        let title = locator.server_text(&a.title);
                        let disabled = a.disabled.as_ref().map(|d| locator.server_text(&d.reason));
                        let mut line = format!("- {title}");
                        if let Some(k) = &kind {
                            line.push_str(&format!(" [{k}]"));
                        }
                        if a.is_preferred == Some(true) {
                            line.push_str(" (preferred)");
                        }
                        if let Some(d) = &disabled {
                            line.push_str(&format!(" (disabled: {d})"));
                        }
                        text.push(line);
                        rows.push(Action {
                            title,
                            kind,
                            is_preferred: Some(a.is_preferred.unwrap_or(false)),
                            disabled,
                            fixes: Some(
                                a.diagnostics
                                    .iter()
                                    .flatten()
                                    .map(|d| locator.server_text(&d.message))
                                    .collect(),
                            ),
                            edits_files: Some(files),
                            command: a.command.map(|c| c.command),
                        });
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
            let out = Output {
                path: doc.file.client.clone(),
                actions: rows,
            };
            ToolOutput::typed(text.join("\n"), &out)
        }
        .boxed()
    }
}
