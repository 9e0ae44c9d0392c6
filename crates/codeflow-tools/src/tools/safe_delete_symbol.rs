//! `safe_delete_symbol`: delete a symbol found by name path, but only when nothing uses it.

use codeflow_lsp_pool::Operation;
use std::collections::BTreeSet;

use codeflow_lsp_pool::lsp_types::{Position, Range, TextEdit};
use codeflow_workspace::OutcomeOutput;
use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::edit_output::OutcomeWith;
use crate::lsp::CoverageMembers;
use crate::output::schema_of;
use crate::symbol_edit::EditedSymbol;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::edit_output::EditOutcomeExt;
use crate::error::{ToolError, parse_args};
use crate::lsp::coverage::{self, Coverage};
use crate::lsp::locations::{FileRef, Place, render_places};
use crate::lsp::name_path;
use crate::lsp::{Document, Locator};
use crate::symbol_edit;

/// The `safe_delete_symbol` tool (its description is in `description`).
#[derive(Debug)]
pub struct SafeDeleteSymbol;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    name_path: String,
    #[serde(default)]
    dry_run: bool,
}

/// At most this many references are listed.
const MAX_LISTED: usize = 50;

/// What a safe deletion checked.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Deletion {
    /// The symbol found by name_path (1-based lines, before the edit).
    symbol: EditedSymbol,
    /// True when references remain and nothing was deleted.
    refused: bool,
    /// Uses of the symbol outside its own definition (at most 50).
    references: Vec<Place>,
    references_total: usize,
    /// Files of the language that write the name where the language server reported no use
    /// (uses it may have missed): deletion is refused while there are any.
    mentions: Vec<String>,
    #[serde(flatten)]
    coverage: CoverageMembers,
}

impl Tool for SafeDeleteSymbol {
    fn name(&self) -> &'static str {
        "safe_delete_symbol"
    }

    fn description(&self) -> &'static str {
        "Delete a symbol (its whole definition, decorators included) found in a file by its name path (`Class/method`), only if nothing else uses it: while the language server reports references (or other files of the language still write its name), nothing is deleted and they are listed. Writes all or nothing; the answer includes the file's diagnostics after the change. Use dry_run to see the edit first."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {"type": "string", "description": "The file that declares the symbol, absolute or relative to the project root."},
                "name_path": {"type": "string", "description": "The symbol's name path: its name, or enclosing names and its name joined by `/` (`Circle/area`); a leading `/` anchors it at the top level."},
                "dry_run": {"type": "boolean", "default": false, "description": "Return the edit without changing any file."}
            },
            "required": ["file_path", "name_path"],
            "additionalProperties": false
        })
    }

    fn output_schema(&self) -> Value {
        schema_of::<OutcomeWith<Deletion>>()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            let args: Args = parse_args(args)?;
            let doc = Document::open(ctx, &args.file_path).await?;
            let located = symbol_edit::locate(&doc, &args.name_path).await?;
            let span = &located.span;
            // The request goes to the symbol's name (a flat symbol's range starts at `def`).
            let mut named = located.symbol.symbol.clone();
            crate::lsp::symbols::refine_selection(&doc.text, &mut named);
            let at = named.selection_range.start;
            // References come from the server that answers them best (basedpyright for
            // Python); the symbol was found on the file's main server, at the same text.
            let refs = Document::open_for(ctx, &args.file_path, Operation::References).await?;
            // Servers that see open files only (clangd) get every file that mentions the name.
            let mut coverage = coverage::prepare_at(&refs, at, false).await?;
            let locator = Locator::new(ctx).await?;
            let own_rel = doc.file.mirror.rel().as_str().to_owned();
            let inside = |line: u32| line >= span.start_line && line <= span.end.line;
            let mut reported = BTreeSet::from([own_rel.clone()]);
            let mut uses = Vec::new();
            for loc in refs.references(at, false).await? {
                let same_file = loc.uri == doc.uri;
                if same_file && (inside(loc.range.start.line) || loc.range.start == at) {
                    continue; // the definition itself, or a use inside it (recursion)
                }
                if let Some(FileRef::Project { mirror, .. }) = locator.file(&loc.uri) {
                    reported.insert(mirror.rel().as_str().to_owned());
                }
                uses.push(locator.location(&loc).await);
            }
            uses.sort_by(|a, b| (&a.path, a.line, a.character).cmp(&(&b.path, b.line, b.character)));
            uses.dedup();
            let bare = located.symbol.path.last().cloned().unwrap_or_default();
            let unreported =
                coverage::unreported(doc.workspace(), &own_rel, &bare, &reported).await;
            let mentions = mentioning_files(&unreported, doc.workspace(), &own_rel, &bare, &reported, ctx).await;
            coverage = coverage.and(unreported);
            let what = format!("Delete `{}` from {}", located.symbol.name_path(), doc.file.client);
            if !uses.is_empty() || !mentions.is_empty() {
                let mut text = format!("{what}: nothing was deleted.");
                if !uses.is_empty() {
                    text.push_str(&format!(
                        " {} reference(s) remain; remove or change them first:\n{}",
                        uses.len(),
                        render_places(&uses[..uses.len().min(MAX_LISTED)])
                    ));
                }
                if !mentions.is_empty() {
                    text.push_str(&format!(
                        "\n`{bare}` is also written in {} file(s) where the language server reported no use (uses it may have missed): {}",
                        mentions.len(),
                        mentions.join(", ")
                    ));
                }
                let out = OutcomeWith {
                    outcome: OutcomeOutput {
                        dry_run: args.dry_run,
                        applied: false,
                        files_changed: 0,
                        files: Vec::new(),
                        diagnostics: None,
                    },
                    with: Deletion {
                        symbol: located.edited(),
                        refused: true,
                        references: uses.iter().take(MAX_LISTED).cloned().collect(),
                        references_total: uses.len(),
                        mentions,
                        coverage: coverage.members(),
                    },
                };
                return ToolOutput::typed(text, &out);
            }
            let mut plan = ctx.edit_plan(ctx.workspace().await?)?;
            if plan.text(&doc.file.mirror).await?.as_deref() != Some(&*doc.text) {
                return Err(ToolError::failed(format!(
                    "{} changed while the symbol was looked up; nothing was written",
                    doc.file.client
                ))
                .with_suggestion("call the tool again"));
            }
            plan.text_edits(&doc.file.mirror, vec![deletion(&doc.text, span)])
                .await?;
            let outcome = plan.commit(args.dry_run).await?;
            let mut text = outcome.with_diagnostics(outcome.report_text(&what, None));
            coverage.note(&mut text);
            let out = outcome.with(Deletion {
                symbol: located.edited(),
                refused: false,
                references: Vec::new(),
                references_total: 0,
                mentions: Vec::new(),
                coverage: coverage.members(),
            });
            ToolOutput::typed(text, &out)
        }
        .boxed()
    }
}

/// The files behind an `unreported` finding (the same search, for the answer's list).
async fn mentioning_files(
    unreported: &Coverage,
    workspace: &codeflow_workspace::ProjectWorkspace,
    rel: &str,
    word: &str,
    reported: &BTreeSet<String>,
    ctx: &ToolContext,
) -> Vec<String> {
    if unreported.partial.is_none() {
        return Vec::new();
    }
    let lang = crate::imports::Lang::of(rel);
    let mut out = Vec::new();
    for file in workspace.mirror.files().into_keys() {
        if crate::imports::Lang::of(file.as_str()) != lang || reported.contains(file.as_str()) {
            continue;
        }
        let path = workspace.mirror.paths().mirror_path(&file);
        let Ok(bytes) = workspace.mirror.read(&path).await else {
            continue;
        };
        if coverage::mentions(&String::from_utf8_lossy(&bytes), word) {
            out.push(ctx.client_path(workspace, &path));
        }
    }
    out
}

/// The edit that removes the symbol's lines, and the blank lines after it that would otherwise
/// double the spacing around it; a symbol that ends the file takes the blank lines above it.
fn deletion(text: &str, span: &name_path::Span) -> TextEdit {
    if !span.whole_lines {
        return TextEdit {
            range: Range::new(span.start, span.end),
            new_text: String::new(),
        };
    }
    let index = codeflow_workspace::LineIndex::new(text);
    let blank = |line0: u32| index.line(line0).is_some_and(|l| l.trim().is_empty());
    let width = |line0: u32| index.line(line0).map_or(0, codeflow_workspace::utf16_len);
    let mut next = span.end.line + 1;
    while blank(next) {
        next += 1;
    }
    if index.line(next).is_none() {
        // Nothing follows: cut from the end of the last line of code above to the symbol's end
        // (the file's final line break stays).
        let mut prev = span.start_line;
        while prev > 0 && blank(prev - 1) {
            prev -= 1;
        }
        let start = if prev == 0 {
            Position::new(0, 0)
        } else {
            Position::new(prev - 1, width(prev - 1))
        };
        return TextEdit {
            range: Range::new(start, Position::new(span.end.line, width(span.end.line))),
            new_text: String::new(),
        };
    }
    let above = name_path::blank_lines_above(text, span.start_line);
    let mut end_line = span.end.line + 1;
    let mut taken = 0;
    while taken < above && blank(end_line) {
        end_line += 1;
        taken += 1;
    }
    TextEdit {
        range: Range::new(
            Position::new(span.start_line, 0),
            Position::new(end_line, 0),
        ),
        new_text: String::new(),
    }
}
