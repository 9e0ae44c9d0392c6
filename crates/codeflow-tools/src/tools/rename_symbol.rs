//! `rename_symbol`: rename a symbol found by name, in every file that uses it.

use codeflow_lsp_pool::Operation;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::{Document, from_lsp, line_text};
use crate::tools::rename_symbol_strict::{RenameMembers, rename_at};
use codeflow_workspace::OutcomeOutput;
use schemars::JsonSchema;
use serde::Serialize;

use crate::output::schema_of;

/// The `rename_symbol` tool (its description is in `description`).
#[derive(Debug)]
pub struct RenameSymbol;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    symbol_name: String,
    new_name: String,
    #[serde(default)]
    symbol_kind: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default = "yes")]
    verify: bool,
}

fn yes() -> bool {
    true
}

/// The answer: a rename's outcome, or the candidates when the name is ambiguous.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    #[serde(flatten)]
    outcome: OutcomeOutput,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    rename: Option<RenameMembers>,
    /// When the name is ambiguous: the matching symbols (nothing was renamed).
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates: Option<Vec<Candidate>>,
    warnings: Vec<String>,
}

/// A symbol the name matches.
#[derive(Debug, Serialize, JsonSchema)]
struct Candidate {
    name: String,
    kind: String,
    container: String,
    path: String,
    line: u32,
    character: u32,
}

impl Tool for RenameSymbol {
    fn name(&self) -> &'static str {
        "rename_symbol"
    }

    fn description(&self) -> &'static str {
        "Rename a symbol declared or used in a file, found by its name (optionally its kind), to new_name in every file that uses it, through the language server, and write the edits to your files all or nothing. If several symbols match, nothing is renamed and the candidates are listed with positions for rename_symbol_strict. Use dry_run to see the edits first."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {"type": "string", "description": "A file that declares or uses the symbol, absolute or relative to the project root."},
                "symbol_name": {"type": "string", "description": "The symbol's current name, as declared or used in the file (a Go method as `newPipeline` or `(*Tree).newPipeline`)."},
                "new_name": {"type": "string", "description": "The new name."},
                "symbol_kind": {"type": "string", "description": "Lowercase LSP symbol kind to narrow the match: function, class, method, variable, …"},
                "dry_run": {"type": "boolean", "default": false, "description": "Return the edits without changing any file."},
                "verify": {"type": "boolean", "default": true, "description": "Write nothing if the old name still appears (as a whole word, in code: comments and string literals are listed apart in `mentions` and do not count) in the project's files of that language after the rename (build output such as dist/ and the aliases the server writes to keep a public name aside) — places the language server missed would break the code. The places are listed in `leftovers` either way; pass false to write regardless (e.g. when they are other symbols of the same name)."}
            },
            "required": ["file_path", "symbol_name", "new_name"],
            "additionalProperties": false
        })
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
            let args: Args = parse_args(args)?;
            let doc = Document::open_for(ctx, &args.file_path, Operation::Rename).await?;
            let found = doc
                .find_symbols(&args.symbol_name, args.symbol_kind.as_deref())
                .await?;
            if found.symbols.len() == 1 && !found.substring {
                let symbol = &found.symbols[0];
                let outcome = rename_at(
                    ctx,
                    &doc,
                    symbol.selection_range.start,
                    &args.new_name,
                    args.dry_run,
                    args.verify,
                )
                .await?;
                let (mut text, out) = outcome.answer(&format!(
                    "Rename `{}` to `{}`",
                    args.symbol_name, args.new_name
                ));
                for w in &found.warnings {
                    text.push_str(&format!("\nWarning: {w}"));
                }
                let out = Output {
                    outcome: out.outcome,
                    rename: Some(out.with),
                    candidates: None,
                    warnings: found.warnings,
                };
                return ToolOutput::typed(text, &out);
            }
            let candidates: Vec<Candidate> = found
                .symbols
                .iter()
                .map(|s| {
                    let at = from_lsp(
                        line_text(&doc.text, s.selection_range.start.line),
                        s.selection_range.start,
                    );
                    Candidate {
                        name: s.name.clone(),
                        kind: s.kind_label().to_owned(),
                        container: s.container.join("."),
                        path: doc.file.client.clone(),
                        line: at.line,
                        character: at.character,
                    }
                })
                .collect();
            let mut text = format!(
                "Nothing was renamed: {} symbol(s) {} `{}` in {}. Call rename_symbol_strict with the position of the one you mean:\n",
                candidates.len(),
                if found.substring { "contain" } else { "are named" },
                args.symbol_name,
                doc.file.client
            );
            for c in &candidates {
                text.push_str(&format!(
                    "- {} ({}{}) at {}:{}:{}\n",
                    c.name,
                    c.kind,
                    Some(c.container.as_str())
                        .filter(|s| !s.is_empty())
                        .map(|s| format!(" in {s}"))
                        .unwrap_or_default(),
                    doc.file.client,
                    c.line,
                    c.character
                ));
            }
            let out = Output {
                outcome: OutcomeOutput {
                    dry_run: ctx.is_dry_run(args.dry_run),
                    applied: false,
                    files_changed: 0,
                    files: Vec::new(),
                    diagnostics: None,
                },
                rename: None,
                candidates: Some(candidates),
                warnings: found.warnings,
            };
            ToolOutput::typed(text, &out)
        }
        .boxed()
    }
}
