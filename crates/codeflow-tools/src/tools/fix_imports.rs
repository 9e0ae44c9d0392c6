//! `fix_imports`: after a file was moved by other means, rewrite the imports that named its
//! old path (and its own relative imports).

use std::collections::{BTreeMap, BTreeSet};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::edit_output::{EditOutcomeExt, OutcomeWith};
use crate::error::{ToolError, parse_args};
use crate::imports;
use crate::output::schema_of;
use schemars::JsonSchema;
use serde::Serialize;

/// The `fix_imports` tool (its description is in `description`).
#[derive(Debug)]
pub struct FixImports;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    old_path: String,
    #[serde(default)]
    dry_run: bool,
}

/// How many imports were fixed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Fixed {
    imports_fixed: usize,
}

impl Tool for FixImports {
    fn name(&self) -> &'static str {
        "fix_imports"
    }

    fn description(&self) -> &'static str {
        "After a file was moved from old_path to file_path by other means (mv, git mv), rewrite every import that still names the old path, and the moved file's own relative imports (Python, JS/TS relative imports, C #include \"...\"); use rename_file instead to move and fix in one step."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {"type": "string", "description": "Where the file is now."},
                "old_path": {"type": "string", "description": "Where it was before the move."},
                "dry_run": {"type": "boolean", "default": false, "description": "Return the edits without changing any file."}
            },
            "required": ["file_path", "old_path"],
            "additionalProperties": false
        })
    }

    fn output_schema(&self) -> Value {
        schema_of::<OutcomeWith<Fixed>>()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            let args: Args = parse_args(args)?;
            let now = ctx.resolve(&args.file_path).await?;
            let old = ctx.resolve(&args.old_path).await?;
            let workspace = ctx.workspace().await?;
            let mut plan = ctx.edit_plan(workspace)?;
            if !plan.exists(&now.mirror).await? {
                return Err(ToolError::failed(format!("{} does not exist", now.client)));
            }
            if plan.exists(&old.mirror).await? {
                return Err(ToolError::failed(format!(
                    "{} still exists, so nothing was moved",
                    old.client
                ))
                .with_suggestion("use rename_file to move a file and fix its imports"));
            }
            let new_rel = now.mirror.rel().as_str().to_owned();
            let old_rel = old.mirror.rel().as_str().to_owned();
            // The project as it was before the move.
            let mut before: BTreeSet<String> = plan.project_files();
            before.remove(&new_rel);
            before.insert(old_rel.clone());
            let moves = BTreeMap::from([(old_rel, new_rel)]);
            let fixed =
                imports::rewrite_for_moves(&mut plan, &before, &moves, true, &BTreeSet::new())
                    .await?;
            let outcome = plan.commit(args.dry_run).await?;
            let text = outcome.to_text(&format!(
                "Fix imports after moving {} to {}",
                old.client, now.client
            ));
            ToolOutput::typed(
                text,
                &outcome.with(Fixed {
                    imports_fixed: fixed,
                }),
            )
        }
        .boxed()
    }
}
