//! `get_symbols_overview`: the top-level symbols of a file, or of every source file under a
//! directory, compactly.

use codeflow_session::Right;
use codeflow_workspace::ServerText;
use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::Document;
use crate::lsp::name_path::document_paths;
use crate::lsp::source_files::sources;
use crate::output::schema_of;

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

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    files: Vec<FileOverview>,
    /// True when the directory has more source files than max_files.
    truncated: bool,
    files_total: usize,
}

/// One file's top-level symbols.
#[derive(Debug, Serialize, JsonSchema)]
struct FileOverview {
    path: String,
    symbols: Vec<TopSymbol>,
    /// Why this file has no overview (its language server failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ServerText>,
}

/// A top-level symbol.
#[derive(Debug, Serialize, JsonSchema)]
struct TopSymbol {
    name: String,
    kind: String,
    /// 1-based line of the name.
    line: u32,
}

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
            let limit = args.max_files.unwrap_or(DEFAULT_MAX_FILES).max(1);
            let found = sources(ctx, Some(&args.file_path), limit, |_| true).await?;
            let scrubber = ctx.caller.scrubber(&*ctx.workspace().await?);
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
                        let error = scrubber.text(&e.to_text());
                        text.push(format!("{client}: {error}"));
                        files.push(FileOverview {
                            path: client.clone(),
                            symbols: Vec::new(),
                            error: Some(error),
                        });
                        continue;
                    }
                };
                let top: Vec<TopSymbol> = symbols
                    .iter()
                    .filter(|s| s.depth() == 0)
                    .map(|s| TopSymbol {
                        name: s.symbol.name.clone(),
                        kind: s.symbol.kind_label().to_owned(),
                        line: s.symbol.selection_range.start.line + 1,
                    })
                    .collect();
                text.push(format!("{client}:"));
                if top.is_empty() {
                    text.push("  (no symbols)".to_owned());
                }
                for s in &top {
                    text.push(format!("  {} {} ({})", s.kind, s.name, s.line));
                }
                files.push(FileOverview {
                    path: client.clone(),
                    symbols: top,
                    error: None,
                });
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
            let out = Output {
                files,
                truncated,
                files_total: found.total,
            };
            ToolOutput::typed(text.join("\n"), &out)
        }
        .boxed()
    }
}
