//! `find_definition`: where a symbol named in a file is defined.

use codeflow_lsp_pool::lsp_types::request::GotoDefinition;
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{object, symbol_properties, with_warnings};
use crate::lsp::goto::goto;
use crate::lsp::{Document, Locator, Place, render_places};
use crate::output::schema_of;

/// The `find_definition` tool (its description is in `description`).
#[derive(Debug)]
pub struct FindDefinition;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    symbol_name: String,
    #[serde(default)]
    symbol_kind: Option<String>,
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    symbol_name: String,
    /// One entry per symbol of that name in the file.
    matches: Vec<Match>,
    /// True when no name matched exactly and these contain symbol_name.
    substring_matches: bool,
    warnings: Vec<String>,
}

/// A symbol of that name and where it is defined.
#[derive(Debug, Serialize, JsonSchema)]
struct Match {
    name: String,
    /// Lowercase LSP symbol kind.
    kind: String,
    /// Enclosing symbols, dotted.
    container: String,
    /// 1-based line of the name in file_path.
    line: u32,
    /// 1-based character of the name.
    character: u32,
    /// Where it is defined.
    definitions: Vec<Place>,
}

impl Tool for FindDefinition {
    fn name(&self) -> &'static str {
        "find_definition"
    }

    fn description(&self) -> &'static str {
        "Find where a symbol is defined, given its name and a file that declares or uses it; use it to jump from a name to its source (lines and characters in the answer are 1-based)."
    }

    fn input_schema(&self) -> Value {
        object(symbol_properties(), &["file_path", "symbol_name"])
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
            let found = doc
                .find_symbols(&args.symbol_name, args.symbol_kind.as_deref())
                .await?;
            let locator = Locator::new(ctx).await?;
            let mut matches = Vec::new();
            let mut text = Vec::new();
            for symbol in &found.symbols {
                let at = symbol.selection_range.start;
                let definitions = goto::<GotoDefinition>(&doc, &locator, at).await?;
                let here = doc.user_position(at);
                let kind = symbol.kind_label();
                text.push(format!(
                    "{kind} {} ({}:{}:{}):",
                    symbol.name, doc.file.client, here.line, here.character
                ));
                text.push(if definitions.is_empty() {
                    "  no definition found".to_owned()
                } else {
                    render_places(&definitions)
                });
                matches.push(Match {
                    name: symbol.name.clone(),
                    kind: kind.to_owned(),
                    container: symbol.container.join("."),
                    line: here.line,
                    character: here.character,
                    definitions,
                });
            }
            let text = with_warnings(text.join("\n"), &found.warnings);
            let out = Output {
                symbol_name: args.symbol_name,
                matches,
                substring_matches: found.substring,
                warnings: found.warnings,
            };
            ToolOutput::typed(text, &out)
        }
        .boxed()
    }
}
