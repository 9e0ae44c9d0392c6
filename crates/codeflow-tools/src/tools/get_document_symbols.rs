//! `get_document_symbols`: a file's outline (classes, functions, methods, …), flattened with
//! their nesting.

use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{file_path_schema, object};
use crate::lsp::limit::max_results_schema;
use crate::lsp::position::range_from_lsp;
use crate::lsp::{Document, Limited, Locator, kind_name};
use crate::output::schema_of;
use codeflow_workspace::ServerText;

/// The `get_document_symbols` tool (its description is in `description`).
#[derive(Debug)]
pub struct GetDocumentSymbols;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    #[serde(default)]
    max_results: Option<usize>,
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    path: String,
    /// Parents before their children.
    symbols: Vec<Row>,
    total: usize,
    truncated: bool,
}

/// One symbol.
#[derive(Debug, Serialize, JsonSchema)]
struct Row {
    name: String,
    /// Lowercase LSP symbol kind.
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<ServerText>,
    /// Enclosing symbols, dotted; empty at top level.
    container: String,
    /// 0 at top level.
    depth: usize,
    /// 1-based line of the name.
    line: u32,
    /// 1-based character of the name.
    character: u32,
    /// 1-based last line of the whole symbol.
    end_line: u32,
}

impl Tool for GetDocumentSymbols {
    fn name(&self) -> &'static str {
        "get_document_symbols"
    }

    fn description(&self) -> &'static str {
        "List the symbols a file declares (classes, functions, methods, variables) with their kinds and 1-based positions; use it to get a file's outline or to find the exact name to pass to other tools."
    }

    fn input_schema(&self) -> Value {
        let mut props = serde_json::Map::new();
        props.insert("file_path".into(), file_path_schema());
        props.insert("max_results".into(), max_results_schema("symbols"));
        object(props, &["file_path"])
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
            let symbols = doc.symbols().await?;
            let locator = Locator::new(ctx).await?;
            let limited = Limited::new(symbols, args.max_results);
            let mut rows = Vec::new();
            let mut text = vec![format!("{}:", doc.file.client)];
            for s in &limited.items {
                let (start, _) = range_from_lsp(Some(&doc.text), s.selection_range);
                let (_, end) = range_from_lsp(Some(&doc.text), s.range);
                let kind = kind_name(s.kind);
                let depth = s.container.len();
                text.push(format!(
                    "{}{kind} {}  {}:{}:{}",
                    "  ".repeat(depth + 1),
                    s.name,
                    doc.file.client,
                    start.line,
                    start.character
                ));
                rows.push(Row {
                    name: s.name.clone(),
                    kind: kind.to_owned(),
                    detail: s.detail.as_deref().map(|d| locator.server_text(d)),
                    container: s.container.join("."),
                    depth,
                    line: start.line,
                    character: start.character,
                    end_line: end.line,
                });
            }
            if rows.is_empty() {
                text.push("  (no symbols)".to_owned());
            }
            if let Some(n) = limited.notice("symbols") {
                text.push(n);
            }
            let out = Output {
                path: doc.file.client.clone(),
                symbols: rows,
                total: limited.total,
                truncated: limited.truncated,
            };
            ToolOutput::typed(text.join("\n"), &out)
        }
        .boxed()
    }
}
