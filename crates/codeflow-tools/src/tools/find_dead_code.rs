//! `find_dead_code`: top-level symbols that (almost) nothing references.
//!
//! For each file: its top-level symbols from `documentSymbol`, then `textDocument/references`
//! without the declaration; a symbol with fewer uses than `min_references` (not counting uses
//! inside its own body) is reported. Every file is opened first, so servers that only know
//! open files (clangd without a background index) see every use.
//!
//! A symbol is reported only when the project's text agrees: if its name is written (as a
//! whole word) in other files of its language, or in its own file outside its body, as often
//! as `min_references` (declarations the server knows, like a C prototype, not counted), a
//! language server that found fewer uses (jedi across modules, say) is
//! not trusted, and the symbol is counted in `named_elsewhere` instead. Imports (`from
//! __future__ import annotations`) and dunder names are never candidates.

use std::collections::HashMap;

use codeflow_lsp_pool::lsp_types::SymbolKind;
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::imports::Lang;
use crate::lsp::args::{object, with_warnings};
use crate::lsp::limit::max_results_schema;
use crate::lsp::{Coverage, Document, FileRef, Limited, Locator, kind_name, line_text};
use crate::lsp::{CoverageMembers, SymbolPlace};
use crate::output::schema_of;
use codeflow_workspace::LineIndex;

/// The `find_dead_code` tool (its description is in `description`).
#[derive(Debug)]
pub struct FindDeadCode;

/// Files looked at when `files` is omitted; beyond it the tool says it stopped.
const MAX_FILES: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    files: Option<Vec<String>>,
    #[serde(default = "yes")]
    exclude_tests: bool,
    #[serde(default = "one")]
    min_references: usize,
    #[serde(default)]
    max_results: Option<usize>,
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}

/// Test files by the usual conventions.
fn is_test_file(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    rel.split('/')
        .any(|c| matches!(c, "test" | "tests" | "__tests__" | "spec"))
        || name.starts_with("test_")
        || name.ends_with("_test.go")
        || name.ends_with("_test.py")
        || [".test.", ".spec."].iter().any(|m| name.contains(m))
}

fn is_source(rel: &str) -> bool {
    const EXT: &[&str] = &[
        "py", "pyi", "ts", "tsx", "js", "jsx", "mjs", "cjs", "c", "h", "cc", "cpp", "cxx", "hpp",
        "rs", "go",
    ];
    !rel.ends_with(".d.ts")
        && !rel
            .split('/')
            .any(|c| matches!(c, "node_modules" | "vendor" | "target" | ".git"))
        && rel.rsplit_once('.').is_some_and(|(_, e)| EXT.contains(&e))
}

/// Identifier occurrences in a text, by name.
fn word_counts(text: &str) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for word in text
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
    {
        *counts.entry(word).or_insert(0) += 1;
    }
    counts
}

/// The name as written in code: `(*Tree).newPipeline` → `newPipeline`.
fn bare_name(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// Whether the declaration's line is an import (the name is brought in, not declared).
fn is_import_line(line: &str) -> bool {
    let line = line.trim_start();
    [
        "import ",
        "from ",
        "#include",
        "use ",
        "export {",
        "export * ",
    ]
    .iter()
    .any(|k| line.starts_with(k))
}

/// Kinds worth reporting: declarations another file could use.
fn is_candidate(kind: SymbolKind, name: &str) -> bool {
    !(name.starts_with("__") && name.ends_with("__") && name.len() > 4)
        && matches!(
            kind,
            SymbolKind::FUNCTION
                | SymbolKind::CLASS
                | SymbolKind::INTERFACE
                | SymbolKind::STRUCT
                | SymbolKind::ENUM
                | SymbolKind::CONSTANT
                | SymbolKind::VARIABLE
                | SymbolKind::METHOD
        )
        && !matches!(name, "main" | "__init__" | "__all__" | "init")
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    unused: Vec<Unused>,
    files_checked: usize,
    symbols_checked: usize,
    total: usize,
    truncated: bool,
    /// Symbols the language server found too few uses of but whose name the project's text
    /// uses often enough elsewhere: not reported.
    named_elsewhere: usize,
    warnings: Vec<String>,
    #[serde(flatten)]
    coverage: CoverageMembers,
}

/// A symbol with too few uses.
#[derive(Debug, Serialize, JsonSchema)]
struct Unused {
    #[serde(flatten)]
    symbol: SymbolPlace,
    /// Uses found outside its own body.
    references: usize,
}

impl Tool for FindDeadCode {
    fn name(&self) -> &'static str {
        "find_dead_code"
    }

    fn description(&self) -> &'static str {
        "Find top-level functions, classes, types and variables that nothing in the project references (or fewer than min_references times); use it to spot code that can be deleted, then confirm with find_references."
    }

    fn input_schema(&self) -> Value {
        let mut props = serde_json::Map::new();
        props.insert("files".into(), json!({"type": "array", "items": {"type": "string"}, "description": "Files to check (absolute, or relative to the project root); every source file of the project when omitted."}));
        props.insert("exclude_tests".into(), json!({"type": "boolean", "default": true, "description": "Skip test files (test_*.py, *_test.go, *.test.ts, tests/ …)."}));
        props.insert("min_references".into(), json!({"type": "integer", "minimum": 1, "default": 1, "description": "Report symbols with fewer uses than this (declaration not counted)."}));
        props.insert("max_results".into(), max_results_schema("unused symbols"));
        object(props, &[])
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
            let locator = Locator::new(ctx).await?;
            let mut warnings = Vec::new();
            let mut files: Vec<String> = match &args.files {
                Some(list) => list.clone(),
                None => locator
                    .workspace()
                    .mirror
                    .files()
                    .keys()
                    .map(|r| r.as_str().to_owned())
                    .filter(|r| is_source(r))
                    .collect(),
            };
            if args.exclude_tests {
                files.retain(|f| !is_test_file(f));
            }
            let mut coverage = Coverage::default();
            if files.len() > MAX_FILES {
                warnings.push(format!(
                    "checked the first {MAX_FILES} of {} files; pass `files` to check others",
                    files.len()
                ));
                coverage = Coverage::partial(format!(
                    "only the first {MAX_FILES} of {} source files were opened and checked; uses in the others were not seen",
                    files.len()
                ));
                files.truncate(MAX_FILES);
            }
            // Open everything first: some servers only see uses in open files.
            let mut docs = Vec::new();
            for f in &files {
                match Document::open(ctx, f).await {
                    Ok(d) => docs.push(d),
                    Err(e) if args.files.is_none() => {
                        warnings.push(format!("skipped {f}: {}", e.to_text()));
                    }
                    Err(e) => return Err(e),
                }
            }
            // How often each name is written per language, and per file.
            let counts: Vec<HashMap<&str, usize>> =
                docs.iter().map(|d| word_counts(&d.text)).collect();
            let mut by_lang: HashMap<Option<Lang>, HashMap<&str, usize>> = HashMap::new();
            for (doc, c) in docs.iter().zip(&counts) {
                let total = by_lang
                    .entry(Lang::of(doc.file.mirror.rel().as_str()))
                    .or_default();
                for (w, n) in c {
                    *total.entry(w).or_insert(0) += n;
                }
            }
            let mut named_elsewhere = 0usize;
            let mut unused = Vec::new();
            let mut symbols_checked = 0;
            for (doc, own_counts) in docs.iter().zip(&counts) {
                let lang_counts = &by_lang[&Lang::of(doc.file.mirror.rel().as_str())];
                let symbols = match doc.symbols().await {
                    Ok(s) => s,
                    Err(e) => {
                        warnings.push(format!("skipped {}: {}", doc.file.client, e.to_text()));
                        continue;
                    }
                };
                for symbol in symbols.iter().filter(|s| {
                    s.container.is_empty()
                        && is_candidate(s.kind, &s.name)
                        && !line_text(&doc.text, s.selection_range.start.line)
                            .is_some_and(is_import_line)
                }) {
                    symbols_checked += 1;
                    let refs = doc
                        .references(symbol.selection_range.start, false)
                        .await?;
                    let uses = refs
                        .iter()
                        .filter(|r| {
                            let same_file = matches!(locator.file(&r.uri), Some(FileRef::Project { ref mirror, .. }) if mirror == &doc.file.mirror);
                            // Uses inside its own body (recursion, the declaration) do not count.
                            !(same_file
                                && r.range.start >= symbol.range.start
                                && r.range.end <= symbol.range.end)
                        })
                        .count();
                    if uses < args.min_references {
                        // The text's count: elsewhere in the language, plus this file
                        // outside the symbol's body.
                        let name = bare_name(&symbol.name);
                        let index = LineIndex::new(&doc.text);
                        let body = match (
                            index.offset(symbol.range.start, false),
                            index.offset(symbol.range.end, false),
                        ) {
                            (Ok(a), Ok(b)) if a <= b => &doc.text[a..b],
                            _ => "",
                        };
                        let own = own_counts.get(name).copied().unwrap_or(0);
                        let in_body = word_counts(body).get(name).copied().unwrap_or(0);
                        let elsewhere = lang_counts.get(name).copied().unwrap_or(0) - own;
                        // Declarations outside the body (a C prototype in a header) are not
                        // uses: the server's declarations, less the definition itself.
                        let declarations = doc
                            .references(symbol.selection_range.start, true)
                            .await
                            .map_or(1, |with| with.len().saturating_sub(refs.len()).max(1));
                        let text_uses = (elsewhere + own.saturating_sub(in_body))
                            .saturating_sub(declarations - 1);
                        if text_uses >= args.min_references {
                            named_elsewhere += 1;
                            continue;
                        }
                        let place = locator.place(&doc.uri, symbol.selection_range).await;
                        unused.push((place, symbol.name.clone(), kind_name(symbol.kind), uses));
                    }
                }
            }
            let limited = Limited::new(unused, args.max_results);
            let mut lines: Vec<String> = limited
                .items
                .iter()
                .map(|(p, name, kind, uses)| {
                    format!("{kind} {name} ({uses} reference(s))  {}", p.render())
                })
                .collect();
            lines.insert(
                0,
                if limited.items.is_empty() {
                    format!(
                        "No unused symbols in {} file(s) ({} symbols checked).",
                        docs.len(),
                        symbols_checked
                    )
                } else {
                    format!(
                        "{} symbol(s) with fewer than {} reference(s), of {} checked in {} file(s):",
                        limited.total,
                        args.min_references,
                        symbols_checked,
                        docs.len()
                    )
                },
            );
            if let Some(n) = limited.notice("unused symbols") {
                lines.push(n);
            }
            if named_elsewhere > 0 {
                lines.push(format!(
                    "{named_elsewhere} symbol(s) the language server found too few uses of are named elsewhere in the project's text, so they are not reported (find_references shows what the server sees)."
                ));
            }
            let rows: Vec<Unused> = limited
                .items
                .iter()
                .map(|(p, name, kind, uses)| Unused {
                    symbol: p.clone().symbol(name, kind),
                    references: *uses,
                })
                .collect();
            let mut text = lines.join("\n");
            coverage.note(&mut text);
            let text = with_warnings(text, &warnings);
            let out = Output {
                unused: rows,
                files_checked: docs.len(),
                symbols_checked,
                total: limited.total,
                truncated: limited.truncated,
                named_elsewhere,
                warnings,
                coverage: coverage.members(),
            };
            ToolOutput::typed(text, &out)
        }
        .boxed()
    }
}
