//! `find_definition`: where a symbol named in a file is defined.

use codeflow_lsp_pool::lsp_types::request::GotoDefinition;
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{finish, object, places_schema, symbol_properties, with_warnings};
use crate::lsp::goto::goto;
use crate::lsp::{Document, Locator, render_places};

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
        json!({
            "type": "object",
            "properties": {
                "symbol_name": {"type": "string"},
                "matches": {
                    "type": "array",
                    "description": "One entry per symbol of that name in the file.",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "kind": {"type": "string", "description": "Lowercase LSP symbol kind."},
                            "container": {"type": "string", "description": "Enclosing symbols, dotted."},
                            "line": {"type": "integer", "description": "1-based line of the name in file_path."},
                            "character": {"type": "integer", "description": "1-based character of the name."},
                            "definitions": places_schema("Where it is defined.")
                        },
                        "required": ["name", "kind", "line", "character", "definitions"]
                    }
                },
                "substring_matches": {"type": "boolean", "description": "True when no name matched exactly and these contain symbol_name."},
                "warnings": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["symbol_name", "matches", "warnings"]
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
                matches.push(json!({
                    "name": symbol.name,
                    "kind": kind,
                    "container": symbol.container.join("."),
                    "line": here.line,
                    "character": here.character,
                    "definitions": definitions,
                }));
            }
            let text = with_warnings(text.join("\n"), &found.warnings);
            Ok(finish(
                &locator,
                text,
                json!({
                    "symbol_name": args.symbol_name,
                    "matches": matches,
                    "substring_matches": found.substring,
                    "warnings": found.warnings,
                }),
            ))
        }
        .boxed()
    }
}
