//! `apply_workspace_edit`: apply text edits to several files, all or nothing.

use std::collections::BTreeMap;

use codeflow_lsp_pool::lsp_types::{Range, TextEdit};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::edit_output::EditOutcomeExt;
use crate::error::{ToolError, parse_args};

/// The `apply_workspace_edit` tool (its description is in `description`).
#[derive(Debug)]
pub struct ApplyWorkspaceEdit;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    changes: BTreeMap<String, Vec<Edit>>,
    #[serde(default = "yes")]
    validate_before_apply: bool,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Edit {
    range: Range,
    #[serde(rename = "newText", alias = "new_text")]
    new_text: String,
}

fn yes() -> bool {
    true
}

impl Tool for ApplyWorkspaceEdit {
    fn name(&self) -> &'static str {
        "apply_workspace_edit"
    }

    fn description(&self) -> &'static str {
        "Apply text edits to one or more files all or nothing: `changes` maps a file path (or file:// URI) to edits {range, newText} with LSP 0-based ranges in the file's current text; if any file changed meanwhile or any edit is invalid, no file is changed. Use dry_run to preview."
    }

    fn input_schema(&self) -> Value {
        let position = json!({"type": "object", "properties": {"line": {"type": "integer", "minimum": 0}, "character": {"type": "integer", "minimum": 0}}, "required": ["line", "character"]});
        json!({
            "type": "object",
            "properties": {
                "changes": {
                    "type": "object",
                    "description": "File path or file:// URI → edits; ranges are LSP's (0-based lines and characters) in the file's current text and must not overlap.",
                    "additionalProperties": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "range": {"type": "object", "properties": {"start": position, "end": position}, "required": ["start", "end"]},
                                "newText": {"type": "string"}
                            },
                            "required": ["range", "newText"]
                        }
                    }
                },
                "validate_before_apply": {"type": "boolean", "default": true, "description": "Refuse edits whose lines are past the end of the file (false: clamp them to the end)."},
                "dry_run": {"type": "boolean", "default": false, "description": "Return the edits without changing any file."}
            },
            "required": ["changes"],
            "additionalProperties": false
        })
    }

    fn output_schema(&self) -> Value {
        crate::output::schema_of::<codeflow_workspace::OutcomeOutput>()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            let args: Args = parse_args(args)?;
            if args.changes.is_empty() {
                return Err(ToolError::InvalidArguments(
                    "changes is empty: give at least one file with edits".to_owned(),
                ));
            }
            let mut plan = ctx.edit_plan(ctx.workspace().await?)?;
            if !args.validate_before_apply {
                plan = plan.lenient();
            }
            for (target, edits) in args.changes {
                let path = if target.starts_with("file://") {
                    codeflow_file_stream::paths::uri_path(&target).map_err(|e| {
                        ToolError::InvalidArguments(format!("changes key `{target}`: {e}"))
                    })?
                } else {
                    target
                };
                let file = ctx.resolve(&path).await?;
                let edits = edits
                    .into_iter()
                    .map(|e| TextEdit {
                        range: e.range,
                        new_text: e.new_text,
                    })
                    .collect();
                plan.text_edits(&file.mirror, edits).await?;
            }
            let outcome = plan.commit(args.dry_run).await?;
            outcome.report("Workspace edit", None)
        }
        .boxed()
    }
}
