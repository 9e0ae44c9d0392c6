//! `find_references`: every use of a symbol named in a file.

use codeflow_lsp_pool::Operation;
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{object, symbol_properties, with_warnings};
use crate::lsp::coverage::{self, Coverage};
use crate::lsp::limit::max_results_schema;
use crate::lsp::locations::dedup;
use crate::lsp::{
    CoverageMembers, Document, FileRef, Limited, Locator, Place, line_text, render_places,
};
use crate::output::schema_of;

/// The `find_references` tool (its description is in `description`).
#[derive(Debug)]
pub struct FindReferences;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    symbol_name: String,
    #[serde(default)]
    symbol_kind: Option<String>,
    #[serde(default = "yes")]
    include_declaration: bool,
    #[serde(default)]
    max_results: Option<usize>,
}

fn yes() -> bool {
    true
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    symbol_name: String,
    /// The symbols of that name the references are for: name, kind, 1-based line and
    /// character.
    symbols: Vec<ReferencedSymbol>,
    /// The references, by file and position.
    references: Vec<Place>,
    /// References found before max_results was applied.
    total: usize,
    truncated: bool,
    warnings: Vec<String>,
    #[serde(flatten)]
    coverage: CoverageMembers,
}

/// A symbol the references are for.
#[derive(Debug, Serialize, JsonSchema)]
struct ReferencedSymbol {
    name: String,
    kind: String,
    /// 1-based.
    line: u32,
    /// 1-based.
    character: u32,
}

impl Tool for FindReferences {
    fn name(&self) -> &'static str {
        "find_references"
    }

    fn description(&self) -> &'static str {
        "List every place a symbol is used across the project, given its name and a file that declares or uses it; use it before changing or removing the symbol."
    }

    fn input_schema(&self) -> Value {
        let mut props = symbol_properties();
        props.insert(
            "include_declaration".into(),
            json!({"type": "boolean", "default": true, "description": "Also list the declaration itself."}),
        );
        props.insert("max_results".into(), max_results_schema("references"));
        object(props, &["file_path", "symbol_name"])
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
            let doc = Document::open_for(ctx, &args.file_path, Operation::References).await?;
            let found = doc
                .find_symbols(&args.symbol_name, args.symbol_kind.as_deref())
                .await?;
            let locator = Locator::new(ctx).await?;
            let mut pass = collect(
                &doc,
                &found.symbols,
                &locator,
                args.include_declaration,
                false,
            )
            .await?;
            if pass.coverage.partial.is_some()
                && !coverage::sees_open_files_only(doc.file.mirror.rel().as_str())
            {
                // A server that limits its workspace (pyright's `include` in pyproject.toml,
                // basedpyright alike) reports nothing in the files outside it: open on it the
                // files that write the name, and ask once more.
                let again = collect(
                    &doc,
                    &found.symbols,
                    &locator,
                    args.include_declaration,
                    true,
                )
                .await?;
                if again.all.len() >= pass.all.len() {
                    pass = again;
                }
            }
            let Pass {
                all,
                symbols,
                coverage,
            } = pass;
            let limited = Limited::new(dedup(all), args.max_results);
            let mut text = if limited.items.is_empty() {
                format!("No references to `{}` found.", args.symbol_name)
            } else {
                format!(
                    "{} reference(s) to `{}`:\n{}",
                    limited.total,
                    args.symbol_name,
                    render_places(&limited.items)
                )
            };
            if let Some(n) = limited.notice("references") {
                text.push('\n');
                text.push_str(&n);
            }
            coverage.note(&mut text);
            let text = with_warnings(text, &found.warnings);
            let out = Output {
                symbol_name: args.symbol_name,
                symbols,
                references: limited.items,
                total: limited.total,
                truncated: limited.truncated,
                warnings: found.warnings,
                coverage: coverage.members(),
            };
            ToolOutput::typed(text, &out)
        }
        .boxed()
    }
}

/// What one round of `textDocument/references` found.
struct Pass {
    all: Vec<Place>,
    symbols: Vec<ReferencedSymbol>,
    coverage: Coverage,
}

/// Asks for the references of each symbol, and checks the project's text for files that
/// write the name but got no place. `open_mentions`: first open on the server every file of
/// the language that writes the name (else only for servers that see open files alone).
async fn collect(
    doc: &Document,
    found: &[crate::lsp::FlatSymbol],
    locator: &Locator,
    include_declaration: bool,
    open_mentions: bool,
) -> Result<Pass, ToolError> {
    let mut all = Vec::new();
    let mut symbols = Vec::new();
    let mut coverage = Coverage::default();
    let mut reported = std::collections::BTreeSet::new();
    let mut words = Vec::new();
    for symbol in found {
        let at = symbol.selection_range.start;
        coverage = coverage.and(coverage::prepare_at(doc, at, open_mentions).await?);
        let refs = doc.references(at, true).await?;
        for r in &refs {
            if let Some(FileRef::Project { mirror, .. }) = locator.file(&r.uri) {
                reported.insert(mirror.rel().as_str().to_owned());
            }
        }
        let refs: Vec<_> = if include_declaration {
            refs
        } else {
            doc.references(at, false).await?
        };
        if let Some(word) = line_text(&doc.text, at.line)
            .and_then(|line| coverage::identifier_at(line, at.character))
        {
            words.push(word);
        }
        all.extend(locator.locations(&refs).await);
        let here = doc.user_position(at);
        symbols.push(ReferencedSymbol {
            name: symbol.name.clone(),
            kind: symbol.kind_label().to_owned(),
            line: here.line,
            character: here.character,
        });
    }
    // The project's text as a check: files that write the name but got no place.
    for word in &words {
        coverage = coverage.and(
            coverage::unreported(
                doc.workspace(),
                doc.file.mirror.rel().as_str(),
                word,
                &reported,
            )
            .await,
        );
    }
    Ok(Pass {
        all,
        symbols,
        coverage,
    })
}
