//! `find_type_definition`: `textDocument/typeDefinition` at a position.

use codeflow_lsp_pool::lsp_types::GotoDefinitionParams;
use codeflow_lsp_pool::lsp_types::request::GotoTypeDefinition;
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{finish, object, places_schema, position_properties};
use crate::lsp::{Document, Limited, Locator, render_places};

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
        json!({
            "type": "object",
            "properties": {
                "locations": places_schema("The type definitions found."),
                "total": {"type": "integer"},
                "truncated": {"type": "boolean"}
            },
            "required": ["locations", "total", "truncated"]
        })
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            ctx.require(Right::LspQuery)?;
            let args: Args = parse_args(args)?;
            let doc = Document::open(ctx, &args.file_path).await?;
            let position = doc.position(args.line, args.character)?;
            let response = doc
                .server
                .request::<GotoTypeDefinition>(GotoDefinitionParams {
                    text_document_position_params: doc.at(position),
                    work_done_progress_params: Default::default(),
                    partial_result_params: Default::default(),
                })
                .await
                .map_err(crate::lsp::lsp_error)?;
            let locator = Locator::new(ctx).await?;
            let limited = Limited::new(locator.definition(response).await, None);
            let mut text = if limited.items.is_empty() {
                format!(
                    "No type definitions found at {}:{}:{}.",
                    doc.file.client, args.line, args.character
                )
            } else {
                render_places(&limited.items)
            };
            if let Some(n) = limited.notice("type definitions") {
                text.push('\n');
                text.push_str(&n);
            }
            Ok(finish(
                &locator,
                text,
                json!({
                    "locations": limited.items,
                    "total": limited.total,
                    "truncated": limited.truncated,
                }),
            ))
        }
        .boxed()
    }
}
