//! `rename_directory`: move a directory and update the imports of the files in it.

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::output::schema_of;
use crate::tools::rename_file::{MoveOutput, move_input_schema, move_paths};

/// The `rename_directory` tool (its description is in `description`).
#[derive(Debug)]
pub struct RenameDirectory;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    old_path: String,
    new_path: String,
    #[serde(default)]
    dry_run: bool,
}

impl Tool for RenameDirectory {
    fn name(&self) -> &'static str {
        "rename_directory"
    }

    fn description(&self) -> &'static str {
        "Move or rename a directory with every file in it, and update the imports that point into it or out of it (language server's workspace/willRenameFiles where offered, else CodeFlow's Python, JS/TS and C include rewriting), all or nothing; use dry_run to see the edits first."
    }

    fn input_schema(&self) -> Value {
        move_input_schema("directory")
    }

    fn output_schema(&self) -> Value {
        schema_of::<MoveOutput>()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            let args: Args = parse_args(args)?;
            let from = ctx.resolve(&args.old_path).await?;
            let to = ctx.resolve(&args.new_path).await?;
            move_paths(ctx, &from, &to, true, args.dry_run).await
        }
        .boxed()
    }
}
