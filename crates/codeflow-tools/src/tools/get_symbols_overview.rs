//! `get_symbols_overview`: the top-level symbols of a file, or of every source file under a
//! directory, compactly.

use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::Document;
use crate::lsp::name_path::document_paths;
use crate::lsp::source_files::sources;

/// The `get_symbols_overview` tool (its description is in `description`).
#[derive(Debug)]
pub struct GetSymbolsOverview;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    #[serde(default)]
    max_files: Option<usize>,
}

const DEFAULT_MAX_FILES: usize = 50;

impl Tool for GetSymbolsOverview {
    fn name(&self) -> &'static str {
        "get_symbols_overview"
    }

    fn description(&self) -> &'static str {
        "List the top-level symbols (classes, functions, variables…, with kind and line) of a file, or of every source file under a directory (`.` for the whole project), compactly: the first look at code you have not read. Use find_symbol to go deeper (children, bodies)."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {"type": "string", "description": "A file or a directory, absolute or relative to the project root; `.` for the whole project."},
                "max_files": {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_FILES, "description": "For a directory: at most this many files (the answer says when there are more)."}
            },
            "required": ["file_path"],
            "additionalProperties": false
        })
    }

    fn output_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "files": {"type": "array", "items": {"type": "object", "properties": {
                    "path": {"type": "string"},
                    "symbols": {"type": "array", "items": {"type": "object", "properties": {
                        "name": {"type": "string"},
                        "kind": {"type": "string"},
                        "line": {"type": "integer", "description": "1-based line of the name."}
                    }, "required": ["name", "kind", "line"]}},
                    "error": {"type": "string", "description": "Why this file has no overview (its language server failed)."}
                }, "required": ["path", "symbols"]}},
                "truncated": {"type": "boolean", "description": "True when the directory has more source files than max_files."},
                "files_total": {"type": "integer"}
            },
            "required": ["files", "truncated", "files_total"]
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
            let limit = args.max_files.unwrap_or(DEFAULT_MAX_FILES).max(1);
            let found = sources(ctx, Some(&args.file_path), limit, |_| true).await?;
            let mut files = Vec::new();
            let mut text = Vec::new();
            for (client, _) in &found.files {
                let symbols = match Document::open(ctx, client).await {
                    Ok(doc) => doc.symbols().await.map(|all| {
                        document_paths(&doc.text, doc.file.mirror.rel().as_str(), &all)
                    }),
                    Err(e) => Err(e),
                };
                let symbols = match symbols {
                    Ok(s) => s,
                    // One file is enough to fail for: the error names the server.
                    Err(e) if found.single => return Err(e),
                    Err(e) => {
                        text.push(format!("{client}: {}", e.to_text()));
                        files.push(json!({"path": client, "symbols": [], "error": e.to_text()}));
                        continue;
                    }
                };
                let top: Vec<Value> = symbols
                    .iter()
                    .filter(|s| s.depth() == 0)
                    .map(|s| {
                        json!({
                            "name": s.symbol.name,
                            "kind": s.symbol.kind_label(),
                            "line": s.symbol.selection_range.start.line + 1,
                        })
                    })
                    .collect();
                text.push(format!("{client}:"));
                if top.is_empty() {
                    text.push("  (no symbols)".to_owned());
                }
                for s in &top {
                    text.push(format!(
                        "  {} {} ({})",
                        s["kind"].as_str().unwrap_or_default(),
                        s["name"].as_str().unwrap_or_default(),
                        s["line"]
                    ));
                }
                files.push(json!({"path": client, "symbols": top}));
            }
            let truncated = found.total > found.files.len();
            if files.is_empty() {
                text.push(format!("No source files under {}.", args.file_path));
            }
            if truncated {
                text.push(format!(
                    "Truncated: {} of {} source files shown; raise max_files or name a subdirectory.",
                    found.files.len(),
                    found.total
                ));
            }
            Ok(ToolOutput {
                text: text.join("\n"),
                structured: json!({"files": files, "truncated": truncated, "files_total": found.total}),
            })
        }
        .boxed()
    }
}
