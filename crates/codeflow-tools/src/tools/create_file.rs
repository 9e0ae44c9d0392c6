//! `create_file`: create a file in the client's project.

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::edit_output::EditOutcomeExt;
use crate::error::{ToolError, parse_args};
use codeflow_workspace::{FileOperation, notify_file_operation};

/// The `create_file` tool (its description is in `description`).
#[derive(Debug)]
pub struct CreateFile;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    overwrite: bool,
}

impl Tool for CreateFile {
    fn name(&self) -> &'static str {
        "create_file"
    }

    fn description(&self) -> &'static str {
        "Create a file in your project with the given content (empty by default) and tell the language servers about it; refuses to replace an existing file unless overwrite is true."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {"type": "string", "description": "The new file, absolute or relative to the project root; missing directories are created."},
                "content": {"type": "string", "default": "", "description": "The file's content."},
                "overwrite": {"type": "boolean", "default": false, "description": "Replace the file if it exists."}
            },
            "required": ["file_path"],
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
            let file = ctx.resolve(&args.file_path).await?;
            let workspace = ctx.workspace().await?;
            let mut plan = ctx.edit_plan(workspace.clone())?;
            let existed = plan.exists(&file.mirror).await?;
            plan.create(
                &file.mirror,
                args.content.into_bytes(),
                args.overwrite,
                false,
            )
            .await?;
            let outcome = plan.commit(false).await?;
            if !outcome.dry_run && !existed {
                notify_file_operation(
                    &workspace,
                    &FileOperation::Created(vec![file.mirror.clone()]),
                )
                .await;
            }
            let text = match (outcome.dry_run, existed) {
                (true, _) => outcome.to_text(&format!("Create {}", file.client)),
                (false, false) => format!("Created {}.", file.client),
                (false, true) if outcome.files.is_empty() => {
                    format!("{} already has this content.", file.client)
                }
                (false, true) => format!("Overwrote {}.", file.client),
            };
            outcome.output(text)
        }
        .boxed()
    }
}
