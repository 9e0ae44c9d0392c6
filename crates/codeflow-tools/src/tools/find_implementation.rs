//! `find_implementation`: `textDocument/implementation` at a position.

use codeflow_lsp_pool::lsp_types::request::GotoImplementation;
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
use crate::lsp::limit::max_results_schema;

/// The `find_implementation` tool (its description is in `description`).
#[derive(Debug)]
pub struct FindImplementation;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    line: u32,
    character: u32,
    #[serde(default)]
    max_results: Option<usize>,
}

impl Tool for FindImplementation {
    fn name(&self) -> &'static str {
        "find_implementation"
    }

    fn description(&self) -> &'static str {
        "Find the implementations of an interface, trait, abstract method or virtual function at a 1-based line and character; use it to go from an abstraction to the concrete code."
    }

    fn input_schema(&self) -> Value {
        let mut props = position_properties();
        props.insert("max_results".into(), max_results_schema("implementations"));
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
            location_tool::<GotoImplementation>(
                ctx,
                &args.file_path,
                at,
                args.max_results,
                "implementations",
                true,
            )
            .await
        }
        .boxed()
    }
}
