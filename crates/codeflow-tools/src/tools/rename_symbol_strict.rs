//! `rename_symbol_strict`: rename the symbol at a position, in every file that uses it.

use codeflow_lsp_pool::lsp_types::{RenameParams, request::Rename};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::edits::{EditPlan, outcome_schema};
use crate::error::{ToolError, parse_args};
use crate::lsp::document::Document;

#[derive(Debug)]
pub struct RenameSymbolStrict;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    line: u32,
    character: u32,
    new_name: String,
    #[serde(default)]
    dry_run: bool,
}

impl Tool for RenameSymbolStrict {
    fn name(&self) -> &'static str {
        "rename_symbol_strict"
    }

    fn description(&self) -> &'static str {
        "Rename the symbol at a 1-based line and character to new_name in every file that uses it, through the language server (textDocument/rename), and write the edits to your files all or nothing; use it when rename_symbol found several symbols with that name, and dry_run to see the edits first."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {"type": "string", "description": "The file, absolute or relative to the project root."},
                "line": {"type": "integer", "minimum": 1, "description": "1-based line of the symbol."},
                "character": {"type": "integer", "minimum": 1, "description": "1-based character on that line, anywhere inside the name."},
                "new_name": {"type": "string", "description": "The new name."},
                "dry_run": {"type": "boolean", "default": false, "description": "Return the edits without changing any file."}
            },
            "required": ["file_path", "line", "character", "new_name"],
            "additionalProperties": false
        })
    }

    fn output_schema(&self) -> Value {
        json!({"type": "object", "properties": outcome_schema(), "required": ["dry_run", "applied", "files"]})
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            let args: Args = parse_args(args)?;
            let doc = Document::open(ctx, &args.file_path).await?;
            let position = doc.position(args.line, args.character)?;
            let outcome = rename_at(ctx, &doc, position, &args.new_name, args.dry_run).await?;
            Ok(ToolOutput {
                text: outcome.to_text(&format!(
                    "Rename at {}:{}:{} to `{}`",
                    doc.file.client, args.line, args.character, args.new_name
                )),
                structured: outcome.to_json(),
            })
        }
        .boxed()
    }
}

/// `textDocument/rename` at `position`, then the edit through [`EditPlan`].
pub(crate) async fn rename_at(
    ctx: &ToolContext,
    doc: &Document,
    position: codeflow_lsp_pool::lsp_types::Position,
    new_name: &str,
    dry_run: bool,
) -> Result<crate::edits::EditOutcome, ToolError> {
    if new_name.trim().is_empty() {
        return Err(ToolError::InvalidArguments(
            "new_name must not be empty".to_owned(),
        ));
    }
    let edit = doc
        .server
        .request::<Rename>(RenameParams {
            text_document_position: doc.at(position),
            new_name: new_name.to_owned(),
            work_done_progress_params: Default::default(),
        })
        .await
        .map_err(ToolError::from_lsp)?
        .ok_or_else(|| {
            ToolError::failed(format!(
                "language server {} found nothing to rename at {}:{}:{}",
                doc.server.server_id(),
                doc.file.client,
                position.line + 1,
                position.character + 1
            ))
            .with_suggestion("point at the symbol's name (get_document_symbols lists them)")
        })?;
    let mut plan = EditPlan::new(ctx, ctx.workspace().await?);
    plan.workspace_edit(edit).await?;
    plan.commit(dry_run).await
}
