//! `replace_symbol_body`: replace a symbol's whole definition, found by name path.

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::ToolError;
use crate::symbol_edit::{self, Placement};

/// The `replace_symbol_body` tool (its description is in `description`).
#[derive(Debug)]
pub struct ReplaceSymbolBody;

impl Tool for ReplaceSymbolBody {
    fn name(&self) -> &'static str {
        "replace_symbol_body"
    }

    fn description(&self) -> &'static str {
        "Replace the whole definition of a symbol (signature and body, decorators included), found in a file by its name path (`Class/method`), with `body`, and write it to your file all or nothing; the answer includes the file's diagnostics after the change. Use dry_run to see the edit first."
    }

    fn input_schema(&self) -> Value {
        symbol_edit::input_schema(Placement::Replace)
    }

    fn output_schema(&self) -> Value {
        symbol_edit::output_schema()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        symbol_edit::run(ctx, args, Placement::Replace).boxed()
    }
}
