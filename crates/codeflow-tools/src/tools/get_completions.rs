//! `get_completions`: what the language server would complete at a position.

use codeflow_lsp_pool::lsp_types::request::Completion;
use codeflow_lsp_pool::lsp_types::{
    CompletionContext, CompletionItem, CompletionItemKind, CompletionParams, CompletionResponse,
    CompletionTriggerKind, Documentation,
};
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{object, position_properties};
use crate::lsp::limit::max_results_schema;
use crate::lsp::{Document, Limited, Locator};
use crate::output::schema_of;
use codeflow_workspace::ServerText;

/// The `get_completions` tool (its description is in `description`).
#[derive(Debug)]
pub struct GetCompletions;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    line: u32,
    character: u32,
    #[serde(default)]
    trigger_character: Option<String>,
    #[serde(default)]
    max_results: Option<usize>,
}

/// The lowercase name of a completion kind.
fn kind_name(kind: Option<CompletionItemKind>) -> String {
    kind.map(|k| {
        let raw = format!("{k:?}");
        // lsp-types prints known kinds as their constant names (FUNCTION, ENUM_MEMBER).
        raw.to_lowercase()
    })
    .unwrap_or_default()
}

fn documentation(item: &CompletionItem) -> Option<String> {
    match item.documentation.as_ref()? {
        Documentation::String(s) => Some(s.clone()),
        Documentation::MarkupContent(m) => Some(m.value.clone()),
    }
    .filter(|d| !d.trim().is_empty())
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    items: Vec<Item>,
    /// The server says typing more may give other items.
    is_incomplete: bool,
    total: usize,
    truncated: bool,
}

/// One completion (every text as the server wrote it).
#[derive(Debug, Serialize, JsonSchema)]
struct Item {
    label: ServerText,
    /// Lowercase LSP completion kind.
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<ServerText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    documentation: Option<ServerText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    insert_text: Option<ServerText>,
}

impl Tool for GetCompletions {
    fn name(&self) -> &'static str {
        "get_completions"
    }

    fn description(&self) -> &'static str {
        "List the completions the language server offers at a 1-based line and character (e.g. just after `obj.`); use it to discover members and names that are valid at that spot."
    }

    fn input_schema(&self) -> Value {
        let mut props = position_properties();
        props.insert("character".into(), json!({"type": "integer", "minimum": 1, "description": "1-based character where the cursor is: the character after the text typed so far (one past the line's end is allowed)."}));
        props.insert("trigger_character".into(), json!({"type": "string", "description": "The character just typed that triggers completion, e.g. \".\"; omit for an explicit request."}));
        props.insert("max_results".into(), max_results_schema("completion items"));
        object(props, &["file_path", "line", "character"])
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
            let args: Args = parse_args(args)?;
            let doc = Document::open(ctx, &args.file_path).await?;
            let position = doc.position(args.line, args.character)?;
            let context = Some(match &args.trigger_character {
                Some(c) => CompletionContext {
                    trigger_kind: CompletionTriggerKind::TRIGGER_CHARACTER,
                    trigger_character: Some(c.clone()),
                },
                None => CompletionContext {
                    trigger_kind: CompletionTriggerKind::INVOKED,
                    trigger_character: None,
                },
            });
            let response = doc
                .server
                .request::<Completion>(CompletionParams {
                    text_document_position: doc.at(position),
                    work_done_progress_params: Default::default(),
                    partial_result_params: Default::default(),
                    context,
                })
                .await
                .map_err(|e| doc.lsp_error(e))?;
            let (mut items, is_incomplete) = match response {
                None => (Vec::new(), false),
                Some(CompletionResponse::Array(items)) => (items, false),
                Some(CompletionResponse::List(list)) => (list.items, list.is_incomplete),
            };
            items.sort_by(|a, b| {
                let ka = a.sort_text.as_deref().unwrap_or(&a.label);
                let kb = b.sort_text.as_deref().unwrap_or(&b.label);
                ka.cmp(kb).then_with(|| a.label.cmp(&b.label))
            });
            let limited = Limited::new(items, args.max_results);
            let locator = Locator::new(ctx).await?;
            let rows: Vec<Item> = limited
                .items
                .iter()
                .map(|i| Item {
                    label: locator.server_text(i.label.trim()),
                    kind: kind_name(i.kind),
                    detail: i
                        .detail
                        .as_deref()
                        .filter(|d| !d.is_empty())
                        .map(|d| locator.server_text(d)),
                    documentation: documentation(i).map(|d| locator.server_text(&d)),
                    insert_text: i.insert_text.as_deref().map(|t| locator.server_text(t)),
                })
                .collect();
            let mut text = if rows.is_empty() {
                format!(
                    "No completions at {}:{}:{}.",
                    doc.file.client, args.line, args.character
                )
            } else {
                rows.iter()
                    .map(|i| match &i.detail {
                        Some(d) => format!("{} ({}) {d}", i.label, i.kind),
                        None => format!("{} ({})", i.label, i.kind),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            if let Some(n) = limited.notice("completion items") {
                text.push('\n');
                text.push_str(&n);
            }
            let out = Output {
                items: rows,
                is_incomplete,
                total: limited.total,
                truncated: limited.truncated,
            };
            ToolOutput::typed(text, &out)
        }
        .boxed()
    }
}
