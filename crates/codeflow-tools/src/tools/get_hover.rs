//! `get_hover`: the language server's hover text at a position (type, signature, docs).

use codeflow_lsp_pool::lsp_types::request::HoverRequest;
use codeflow_lsp_pool::lsp_types::{HoverContents, HoverParams, MarkedString};
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{PositionArgs, finish, object, position_properties};
use crate::lsp::position::range_from_lsp;
use crate::lsp::{Document, Locator};

/// The `get_hover` tool (its description is in `description`).
#[derive(Debug)]
pub struct GetHover;

fn marked(s: MarkedString) -> String {
    match s {
        MarkedString::String(s) => s,
        MarkedString::LanguageString(l) => format!("```{}\n{}\n```", l.language, l.value),
    }
}

/// Hover contents as one markdown text.
pub(crate) fn hover_text(contents: HoverContents) -> String {
    match contents {
        HoverContents::Scalar(s) => marked(s),
        HoverContents::Array(items) => items
            .into_iter()
            .map(marked)
            .filter(|s| !s.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n\n"),
        HoverContents::Markup(m) => m.value,
    }
}

impl Tool for GetHover {
    fn name(&self) -> &'static str {
        "get_hover"
    }

    fn description(&self) -> &'static str {
        "Show what the language server knows about the symbol at a 1-based line and character: its type or signature and documentation; use it to understand a name without opening its definition."
    }

    fn input_schema(&self) -> Value {
        object(position_properties(), &["file_path", "line", "character"])
    }

    fn output_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "found": {"type": "boolean", "description": "False when the server has nothing for this position."},
                "contents": {"type": "string", "description": "Markdown (or plain text) from the server."},
                "range": {"type": "object", "description": "The hovered span, 1-based: line, character, end_line, end_character."}
            },
            "required": ["found", "contents"]
        })
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            ctx.require(Right::LspQuery)?;
            let args: PositionArgs = parse_args(args)?;
            let doc = Document::open(ctx, &args.file_path).await?;
            let position = doc.position(args.line, args.character)?;
            let hover = doc
                .server
                .request::<HoverRequest>(HoverParams {
                    text_document_position_params: doc.at(position),
                    work_done_progress_params: Default::default(),
                })
                .await
                .map_err(crate::lsp::lsp_error)?;
            let locator = Locator::new(ctx).await?;
            let Some(hover) = hover.filter(|h| !hover_text(h.contents.clone()).trim().is_empty())
            else {
                return Ok(finish(
                    &locator,
                    format!(
                        "No hover information at {}:{}:{}.",
                        doc.file.client, args.line, args.character
                    ),
                    json!({"found": false, "contents": ""}),
                ));
            };
            let contents = hover_text(hover.contents);
            let mut structured = json!({"found": true, "contents": contents});
            if let Some(range) = hover.range {
                let (s, e) = range_from_lsp(Some(&doc.text), range);
                structured["range"] = json!({"line": s.line, "character": s.character, "end_line": e.line, "end_character": e.character});
            }
            Ok(finish(&locator, contents, structured))
        }
        .boxed()
    }
}
