//! `replace_symbol_body`, `insert_before_symbol`, `insert_after_symbol`: one tool per
//! [`Placement`] of `body` at a symbol found by name path (the work is in
//! [`crate::symbol_edit`]).

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::ToolError;
use crate::symbol_edit::{self, Placement};

/// The symbol-editing tool for one placement.
#[derive(Debug)]
pub struct SymbolEdit(pub Placement);

/// Every symbol-editing tool, in catalogue order.
pub const ALL: [SymbolEdit; 3] = [
    SymbolEdit(Placement::Replace),
    SymbolEdit(Placement::Before),
    SymbolEdit(Placement::After),
];

impl Tool for SymbolEdit {
    fn name(&self) -> &'static str {
        match self.0 {
            Placement::Replace => "replace_symbol_body",
            Placement::Before => "insert_before_symbol",
            Placement::After => "insert_after_symbol",
        }
    }

    fn description(&self) -> &'static str {
        match self.0 {
            Placement::Replace => {
                "Replace the whole definition of a symbol (signature and body, decorators included), found in a file by its name path (`Class/method`), with `body`, and write it to your file all or nothing; the answer includes the file's diagnostics after the change. Use dry_run to see the edit first."
            }
            Placement::Before => {
                "Insert `body` (a function, class, import, statement…) on the lines before a symbol found in a file by its name path (`Class/method`), at the symbol's indentation, and write it to your file all or nothing; the answer includes the file's diagnostics after the change. Use dry_run to see the edit first."
            }
            Placement::After => {
                "Insert `body` (a function, method, class, statement…) on the lines after a symbol found in a file by its name path (`Class/method`), at the symbol's indentation, and write it to your file all or nothing; the answer includes the file's diagnostics after the change. Use dry_run to see the edit first."
            }
        }
    }

    fn input_schema(&self) -> Value {
        symbol_edit::input_schema(self.0)
    }

    fn output_schema(&self) -> Value {
        crate::output::schema_of::<symbol_edit::SymbolEditOutput>()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        symbol_edit::run(ctx, args, self.0).boxed()
    }
}
