//! Editing a symbol found by name path: the shared part of `replace_symbol_body`,
//! `insert_before_symbol` and `insert_after_symbol`.
//!
//! The symbol is found in the file's `documentSymbol` answer by its name path (see
//! [`crate::lsp::name_path`]); the edit is computed on the mirror's text and goes through an
//! [`codeflow_workspace::EditPlan`] (all or nothing, refused when the client's file changed
//! since, or only described with `dry_run`); after a write the answer carries the file's
//! diagnostics.
//!
//! The body is written as it should stand at the symbol's level: when its first line is not
//! indented, every line gets the symbol's indentation. Inserted code is separated from the
//! symbol by as many blank lines as stand above the symbol (at most two).

use codeflow_lsp_pool::lsp_types::{Position, Range, TextEdit};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalogue::ToolOutput;
use crate::context::ToolContext;
use crate::edit_output::{EditOutcomeExt, OutcomeWith};
use crate::error::{ToolError, parse_args};
use crate::lsp::Document;
use crate::lsp::name_path::{self, PathSymbol, Span};
use crate::lsp::position::line_text;

/// What to do with the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Replace the symbol's whole definition (decorators included).
    Replace,
    /// Insert before the symbol (before its decorators).
    Before,
    /// Insert after the symbol.
    After,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    name_path: String,
    body: String,
    #[serde(default)]
    dry_run: bool,
}

/// The input schema of the three tools; `body` described for `placement`.
pub fn input_schema(placement: Placement) -> Value {
    let body = match placement {
        Placement::Replace => {
            "The symbol's new definition, signature included (decorators too: the old ones are replaced). Write it as it stands at the symbol's level; unindented, every line gets the symbol's indentation."
        }
        Placement::Before | Placement::After => {
            "The code to insert (a function, class, statement…), written as it stands at the symbol's level; unindented, every line gets the symbol's indentation."
        }
    };
    json!({
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "The file that declares the symbol, absolute or relative to the project root."},
            "name_path": {"type": "string", "description": "The symbol's name path: its name, or enclosing names and its name joined by `/` (`Circle/area`); a leading `/` anchors it at the top level (`/scale`)."},
            "body": {"type": "string", "description": body},
            "dry_run": {"type": "boolean", "default": false, "description": "Return the edit without changing any file."}
        },
        "required": ["file_path", "name_path", "body"],
        "additionalProperties": false
    })
}

/// The answer of the three tools: an edit outcome and the symbol edited.
pub type SymbolEditOutput = OutcomeWith<SymbolMember>;

/// The `symbol` member of an answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SymbolMember {
    /// The symbol found by name_path (1-based lines, before the edit).
    pub symbol: EditedSymbol,
}

/// The symbol an edit was made at (1-based lines, before the edit).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EditedSymbol {
    /// Its name path.
    pub name_path: String,
    /// Its kind, lowercase.
    pub kind: String,
    /// Its first line.
    pub line: u32,
    /// Its last line.
    pub end_line: u32,
}

/// The symbol found, and its span in the document's text.
pub struct Located {
    /// The symbol with its path.
    pub symbol: PathSymbol,
    /// Its span.
    pub span: Span,
}

impl Located {
    /// The `symbol` member of an answer.
    pub fn edited(&self) -> EditedSymbol {
        EditedSymbol {
            name_path: self.symbol.name_path(),
            kind: self.symbol.symbol.kind_label().to_owned(),
            line: self.span.start_line + 1,
            end_line: self.span.end.line + 1,
        }
    }
}

/// Finds `name_path` among `doc`'s symbols.
pub async fn locate(doc: &Document, name_path: &str) -> Result<Located, ToolError> {
    let symbols = name_path::document_paths(
        &doc.text,
        doc.file.mirror.rel().as_str(),
        &doc.symbols().await?,
    );
    let symbol = name_path::find_one(&symbols, name_path, &doc.file.client)?.clone();
    let span = name_path::span(&doc.text, doc.file.mirror.rel().as_str(), &symbol.symbol);
    Ok(Located { symbol, span })
}

/// The edit that puts `body` at `placement` of `located` in `text`.
pub fn edit_for(text: &str, located: &Located, placement: Placement, body: &str) -> TextEdit {
    let span = &located.span;
    let indented = name_path::indent_body(body, &span.indent);
    let gap = "\n".repeat(name_path::blank_lines_above(text, span.start_line));
    match placement {
        Placement::Replace => {
            if span.whole_lines {
                TextEdit {
                    range: Range::new(Position::new(span.start_line, 0), span.end),
                    new_text: indented,
                }
            } else {
                // Mid-line: the first line goes where the symbol starts.
                let first_unindented = indented
                    .strip_prefix(span.indent.as_str())
                    .unwrap_or(&indented)
                    .to_owned();
                TextEdit {
                    range: Range::new(span.start, span.end),
                    new_text: first_unindented,
                }
            }
        }
        Placement::Before => TextEdit {
            range: Range::new(
                Position::new(span.start_line, 0),
                Position::new(span.start_line, 0),
            ),
            new_text: format!("{indented}\n{gap}"),
        },
        Placement::After => {
            let end_of_line = Position::new(
                span.end.line,
                line_text(text, span.end.line)
                    .map_or(span.end.character, codeflow_workspace::utf16_len),
            );
            TextEdit {
                range: Range::new(end_of_line, end_of_line),
                new_text: format!("\n{gap}{indented}"),
            }
        }
    }
}

/// Runs one of the three tools.
pub async fn run(
    ctx: &ToolContext,
    args: Value,
    placement: Placement,
) -> Result<ToolOutput, ToolError> {
    let args: Args = parse_args(args)?;
    if args.body.trim().is_empty() {
        return Err(ToolError::InvalidArguments(
            "body must not be empty (to remove a symbol use safe_delete_symbol)".to_owned(),
        ));
    }
    let doc = Document::open(ctx, &args.file_path).await?;
    let located = locate(&doc, &args.name_path).await?;
    let mut plan = ctx.edit_plan(ctx.workspace().await?)?;
    // The plan reads the mirror itself: the edit applies to the text the symbols came from.
    let Some(current) = plan.text(&doc.file.mirror).await? else {
        return Err(ToolError::failed(format!(
            "{} is no longer in the project",
            doc.file.client
        )));
    };
    if *current != *doc.text {
        return Err(ToolError::failed(format!(
            "{} changed while the symbol was looked up; nothing was written",
            doc.file.client
        ))
        .with_suggestion("call the tool again"));
    }
    let edit = edit_for(&doc.text, &located, placement, &args.body);
    plan.text_edits(&doc.file.mirror, vec![edit]).await?;
    let outcome = plan.commit(args.dry_run).await?;
    let what = match placement {
        Placement::Replace => format!(
            "Replace `{}` in {}",
            located.symbol.name_path(),
            doc.file.client
        ),
        Placement::Before => format!(
            "Insert before `{}` in {}",
            located.symbol.name_path(),
            doc.file.client
        ),
        Placement::After => format!(
            "Insert after `{}` in {}",
            located.symbol.name_path(),
            doc.file.client
        ),
    };
    outcome.output_with(
        outcome.report_text(&what, None),
        SymbolMember {
            symbol: located.edited(),
        },
    )
}
