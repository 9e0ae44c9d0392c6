//! `delete_file`: delete a file, unless other files still import it.

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::imports;
use codeflow_workspace::{FileOperation, notify_file_operation};

use crate::edit_output::{EditOutcomeExt, OutcomeWith};
use crate::output::schema_of;
use schemars::JsonSchema;
use serde::Serialize;

/// The `delete_file` tool (its description is in `description`).
#[derive(Debug)]
pub struct DeleteFile;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    #[serde(default)]
    force: bool,
}

/// The imports of the deleted file.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Importers {
    /// path:line of each import of the deleted file (left broken when forced).
    importers: Vec<String>,
}

impl Tool for DeleteFile {
    fn name(&self) -> &'static str {
        "delete_file"
    }

    fn description(&self) -> &'static str {
        "Delete a file from your project; refuses (and lists them) when other files import it (Python imports, JS/TS relative imports, C #include \"...\"), unless force is true."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {"type": "string", "description": "The file, absolute or relative to the project root."},
                "force": {"type": "boolean", "default": false, "description": "Delete even when other files import it."}
            },
            "required": ["file_path"],
            "additionalProperties": false
        })
    }

    fn output_schema(&self) -> Value {
        schema_of::<OutcomeWith<Importers>>()
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
            if !plan.exists(&file.mirror).await? {
                return Err(ToolError::failed(format!("{} does not exist", file.client)));
            }
            let files = plan.project_files();
            let importers: Vec<String> =
                imports::importers_of(&mut plan, &files, file.mirror.rel().as_str())
                    .await?
                    .into_iter()
                    .map(|(rel, line)| {
                        let path = workspace.mirror.paths().mirror_path(&imports::rel(&rel)?);
                        Ok(format!("{}:{line}", ctx.client_path(&workspace, &path)))
                    })
                    .collect::<Result<_, ToolError>>()?;
            if !importers.is_empty() && !args.force {
                return Err(ToolError::failed(format!(
                    "{} is imported by {} place(s), so it was not deleted:\n{}",
                    file.client,
                    importers.len(),
                    importers.join("\n")
                ))
                .with_suggestion(
                    "remove those imports first, or pass force: true to delete anyway",
                ));
            }
            plan.delete(&file.mirror, false, false).await?;
            let outcome = plan.commit(false).await?;
            if !outcome.dry_run {
                notify_file_operation(
                    &workspace,
                    &FileOperation::Deleted(vec![file.mirror.clone()]),
                )
                .await;
            }
            let mut text = if outcome.dry_run {
                outcome.to_text(&format!("Delete {}", file.client))
            } else {
                format!("Deleted {}.", file.client)
            };
            if !importers.is_empty() {
                text.push_str(&format!(
                    "\nThese imports of it are now broken:\n{}",
                    importers.join("\n")
                ));
            }
            ToolOutput::typed(text, &outcome.with(Importers { importers }))
        }
        .boxed()
    }
}
