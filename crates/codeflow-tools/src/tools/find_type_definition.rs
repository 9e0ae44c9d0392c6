//! `find_type_definition`: `textDocument/typeDefinition` at a position.

use codeflow_lsp_pool::lsp_types::request::GotoTypeDefinition;
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{object, position_properties};
use crate::lsp::goto::{LocationsOutput, location_tool};

/// The `find_type_definition` tool (its description is in `description`).
#[derive(Debug)]
pub struct FindTypeDefinition;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    line: u32,
    character: u32,
}

impl Tool for FindTypeDefinition {
    fn name(&self) -> &'static str {
        "find_type_definition"
    }

    fn description(&self) -> &'static str {
        "Find the definition of the type of the expression or variable at a 1-based line and character; use it to see what a value is, not where it was declared."
    }

    fn input_schema(&self) -> Value {
        let props = position_properties();
        object(props, &["file_path", "line", "character"])
    }

    fn output_schema(&self) -> Value {
        crate::output::schema_of::<LocationsOutput>()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            ctx.require(Right::LspQuery)?;
            let args: Args = parse_args(args)?;
            let at = (args.line, args.character);
            location_tool::<GotoTypeDefinition>(
                ctx,
                &args.file_path,
                at,
                None,
                "type definitions",
                false,
            )
            .await
        }
        .boxed()
    }
}
