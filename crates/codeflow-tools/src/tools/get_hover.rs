//! `get_hover`: the language server's hover text at a position (type, signature, docs).

use codeflow_lsp_pool::lsp_types::request::HoverRequest;
use codeflow_lsp_pool::lsp_types::{HoverContents, HoverParams, MarkedString};
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{PositionArgs, object, position_properties};
use crate::lsp::position::range_from_lsp;
use crate::lsp::{Document, Locator};
use crate::output::schema_of;
use codeflow_workspace::ServerText;

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

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    /// False when the server has nothing for this position.
    found: bool,
    /// Markdown (or plain text) from the server.
    contents: ServerText,
    /// The hovered span, 1-based.
    #[serde(skip_serializing_if = "Option::is_none")]
    range: Option<Span>,
}

/// A 1-based span.
#[derive(Debug, Serialize, JsonSchema)]
struct Span {
    line: u32,
    character: u32,
    end_line: u32,
    end_character: u32,
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
        schema_of::<Output>()
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
                .map_err(|e| doc.lsp_error(e))?;
            let locator = Locator::new(ctx).await?;
            let Some(hover) = hover.filter(|h| !hover_text(h.contents.clone()).trim().is_empty())
            else {
                let out = Output {
                    found: false,
                    contents: ServerText::default(),
                    range: None,
                };
                return ToolOutput::typed(
                    format!(
                        "No hover information at {}:{}:{}.",
                        doc.file.client, args.line, args.character
                    ),
                    &out,
                );
            };
            let contents = locator.server_text(&hover_text(hover.contents));
            let range = hover.range.map(|range| {
                let (s, e) = range_from_lsp(Some(&doc.text), range);
                Span {
                    line: s.line,
                    character: s.character,
                    end_line: e.line,
                    end_character: e.character,
                }
            });
            let out = Output {
                found: true,
                contents,
                range,
            };
            ToolOutput::typed(out.contents.to_string(), &out)
        }
        .boxed()
    }
}
