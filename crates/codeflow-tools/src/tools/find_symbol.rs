//! `find_symbol`: symbols by name path (`Class/method`) in a file, a directory or the whole
//! project, with their children down to a depth and, on request, their source.

use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::name_path::SymbolRow;
use crate::lsp::name_path::{self, PathSymbol, body_text, document_paths, matches, parse, span};
use crate::lsp::source_files::sources;
use crate::lsp::{DEFAULT_MAX_RESULTS, Document};
use crate::output::schema_of;

/// The `find_symbol` tool (its description is in `description`).
#[derive(Debug)]
pub struct FindSymbol;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    name_path: String,
    #[serde(default)]
    file_path: Option<String>,
    #[serde(default)]
    depth: usize,
    #[serde(default)]
    include_body: bool,
    #[serde(default)]
    substring_matching: bool,
    #[serde(default)]
    max_results: Option<usize>,
}

/// At most this many files are asked for their symbols in one call.
const MAX_FILES: usize = 300;
/// Longest body returned (characters).
const MAX_BODY: usize = 20_000;

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    symbols: Vec<Found>,
    total: usize,
    /// True when more symbols matched than max_results, or more files mention the name than
    /// were searched.
    truncated: bool,
    files_searched: usize,
}

/// A symbol found.
#[derive(Debug, Serialize, JsonSchema)]
struct Found {
    #[serde(flatten)]
    symbol: SymbolRow,
    /// The file.
    path: String,
    /// Enclosed symbols down to `depth`.
    #[serde(skip_serializing_if = "Option::is_none")]
    children: Option<Vec<SymbolRow>>,
    /// The symbol's source (with include_body).
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
}

impl Tool for FindSymbol {
    fn name(&self) -> &'static str {
        "find_symbol"
    }

    fn description(&self) -> &'static str {
        "Find symbols by name path — a name (`area`), enclosing names and a name (`Circle/area`), or a path anchored at the top level (`/Circle`) — in a file, a directory, or the whole project; optionally with their children down to `depth` and their source (`include_body`). Use it to read exactly the code you need, then edit it with replace_symbol_body / insert_after_symbol."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "name_path": {"type": "string", "description": "`name`, `Outer/name` (matches any symbol whose path ends so), or `/Outer/name` (the whole path)."},
                "file_path": {"type": "string", "description": "A file or directory to search, absolute or relative to the project root; the whole project when omitted (files that do not contain the name are skipped)."},
                "depth": {"type": "integer", "minimum": 0, "default": 0, "description": "Also list the symbols enclosed, this many levels down (1: a class's methods)."},
                "include_body": {"type": "boolean", "default": false, "description": "Return each symbol's source."},
                "substring_matching": {"type": "boolean", "default": false, "description": "The last part of name_path only needs to be contained in the symbol's name (case-insensitive)."},
                "max_results": {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_RESULTS, "description": "At most this many symbols (the answer says when there are more)."}
            },
            "required": ["name_path"],
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
            let (parts, absolute) = parse(&args.name_path)?;
            let last = parts.last().copied().unwrap_or_default().to_lowercase();
            let bare_last = crate::lsp::symbols::split_qualified(&last).1.to_owned();
            // Files that cannot contain the symbol are not asked about it.
            let found = sources(ctx, args.file_path.as_deref(), MAX_FILES, |text| {
                text.to_lowercase().contains(&bare_last)
            })
            .await?;
            let max = args.max_results.unwrap_or(DEFAULT_MAX_RESULTS).max(1);
            let mut symbols = Vec::new();
            let mut text = Vec::new();
            let mut total = 0usize;
            for (client, _) in &found.files {
                let doc = match Document::open(ctx, client).await {
                    Ok(doc) => doc,
                    Err(e) if found.single => return Err(e),
                    Err(_) => continue,
                };
                let all = match doc.symbols().await {
                    Ok(all) => document_paths(&doc.text, doc.file.mirror.rel().as_str(), &all),
                    Err(e) if found.single => return Err(e),
                    Err(_) => continue,
                };
                for s in all
                    .iter()
                    .filter(|s| matches(s, &parts, absolute, args.substring_matching))
                {
                    total += 1;
                    if symbols.len() >= max {
                        continue;
                    }
                    let (row, lines) = describe(&doc, client, s, &all, &args);
                    text.extend(lines);
                    symbols.push(row);
                }
            }
            let truncated = total > symbols.len() || found.total > found.files.len();
            let mut head = if symbols.is_empty() {
                format!(
                    "No symbol matches `{}` in {} file(s) searched.",
                    args.name_path,
                    found.files.len()
                )
            } else {
                format!("{} symbol(s) match `{}`:", symbols.len(), args.name_path)
            };
            if total > symbols.len() {
                head.push_str(&format!(
                    "\nTruncated: {total} match, {} shown (max_results).",
                    symbols.len()
                ));
            }
            if found.total > found.files.len() {
                head.push_str(&format!(
                    "\nTruncated: {} files mention the name, only {} were searched; name a file or directory.",
                    found.total,
                    found.files.len()
                ));
            }
            text.insert(0, head);
            let out = Output {
                symbols,
                total,
                truncated,
                files_searched: found.files.len(),
            };
            ToolOutput::typed(text.join("\n"), &out)
        }
        .boxed()
    }
}

/// One match as a row (with children and body as asked) and its lines of text.
fn describe(
    doc: &Document,
    client: &str,
    s: &PathSymbol,
    all: &[PathSymbol],
    args: &Args,
) -> (Found, Vec<String>) {
    let mut row = Found {
        symbol: name_path::symbol_row(s),
        path: client.to_owned(),
        children: None,
        body: None,
    };
    let mut lines = vec![format!(
        "{} ({}) {client}:{}-{}",
        s.name_path(),
        s.symbol.kind_label(),
        s.symbol.selection_range.start.line + 1,
        s.symbol.range.end.line + 1
    )];
    if args.depth > 0 {
        let children: Vec<SymbolRow> = all
            .iter()
            .filter(|c| {
                c.path.len() > s.path.len()
                    && c.depth() <= s.depth() + args.depth
                    && c.path.starts_with(&s.path)
                    && c.symbol.range.start >= s.symbol.range.start
                    && c.symbol.range.end <= s.symbol.range.end
            })
            .map(|c| {
                lines.push(format!(
                    "{}  {} ({}) line {}",
                    "  ".repeat(c.depth() - s.depth()),
                    c.name_path(),
                    c.symbol.kind_label(),
                    c.symbol.selection_range.start.line + 1
                ));
                name_path::symbol_row(c)
            })
            .collect();
        row.children = Some(children);
    }
    if args.include_body {
        let span = span(&doc.text, doc.file.mirror.rel().as_str(), &s.symbol);
        let mut body = body_text(&doc.text, &span);
        if body.chars().count() > MAX_BODY {
            body =
                body.chars().take(MAX_BODY).collect::<String>() + "\n… (cut at 20000 characters)";
        }
        lines.push(body.clone());
        row.body = Some(body);
    }
    (row, lines)
}
