//! `insert_before_symbol`: insert code before a symbol found by name path.

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::ToolError;
use crate::symbol_edit::{self, Placement};

/// The `insert_before_symbol` tool (its description is in `description`).
#[derive(Debug)]
pub struct InsertBeforeSymbol;

impl Tool for InsertBeforeSymbol {
    fn name(&self) -> &'static str {
        "insert_before_symbol"
    }

    fn description(&self) -> &'static str {
        "Insert `body` (a function, class, import, statement…) on the lines before a symbol found in a file by its name path (`Class/method`), at the symbol's indentation, and write it to your file all or nothing; the answer includes the file's diagnostics after the change. Use dry_run to see the edit first."
    }

    fn input_schema(&self) -> Value {
        symbol_edit::input_schema(Placement::Before)
    }

    fn output_schema(&self) -> Value {
        symbol_edit::output_schema()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        symbol_edit::run(ctx, args, Placement::Before).boxed()
    }
}
