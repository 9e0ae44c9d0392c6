//! `find_dead_code`: top-level symbols that (almost) nothing references.
//!
//! For each file: its top-level symbols from `documentSymbol`, then `textDocument/references`
//! without the declaration; a symbol with fewer uses than `min_references` (not counting uses
//! inside its own body) is reported. Every file is opened first, so servers that only know
//! open files (clangd without a background index) see every use.

use codeflow_lsp_pool::lsp_types::SymbolKind;
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{finish, object, with_warnings};
use crate::lsp::limit::max_results_schema;
use crate::lsp::{Document, FileRef, Limited, Locator, Place, kind_name};

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

/// Kinds worth reporting: declarations another file could use.
fn is_candidate(kind: SymbolKind, name: &str) -> bool {
    matches!(
        kind,
        SymbolKind::FUNCTION
            | SymbolKind::CLASS
            | SymbolKind::INTERFACE
            | SymbolKind::STRUCT
            | SymbolKind::ENUM
            | SymbolKind::CONSTANT
            | SymbolKind::VARIABLE
            | SymbolKind::METHOD
    ) && !matches!(name, "main" | "__init__" | "__all__" | "init")
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
        let mut place = Place::symbol_schema();
        if let Some(props) = place["properties"].as_object_mut() {
            props.insert(
                "references".into(),
                json!({"type": "integer", "description": "Uses found outside its own body."}),
            );
        }
        json!({
            "type": "object",
            "properties": {
                "unused": {"type": "array", "items": place},
                "files_checked": {"type": "integer"},
                "symbols_checked": {"type": "integer"},
                "total": {"type": "integer"},
                "truncated": {"type": "boolean"},
                "warnings": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["unused", "files_checked", "symbols_checked", "total", "truncated", "warnings"]
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
            if files.len() > MAX_FILES {
                warnings.push(format!(
                    "checked the first {MAX_FILES} of {} files; pass `files` to check others",
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
            let mut unused = Vec::new();
            let mut symbols_checked = 0;
            for doc in &docs {
                let symbols = match doc.symbols().await {
                    Ok(s) => s,
                    Err(e) => {
                        warnings.push(format!("skipped {}: {}", doc.file.client, e.to_text()));
                        continue;
                    }
                };
                for symbol in symbols
                    .iter()
                    .filter(|s| s.container.is_empty() && is_candidate(s.kind, &s.name))
                {
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
            let rows: Vec<Value> = limited
                .items
                .iter()
                .map(|(p, name, kind, uses)| {
                    let mut v = p.symbol_json(name, kind);
                    v["references"] = json!(uses);
                    v
                })
                .collect();
            Ok(finish(
                &locator,
                with_warnings(lines.join("\n"), &warnings),
                json!({
                    "unused": rows,
                    "files_checked": docs.len(),
                    "symbols_checked": symbols_checked,
                    "total": limited.total,
                    "truncated": limited.truncated,
                    "warnings": warnings,
                }),
            ))
        }
        .boxed()
    }
}
