//! `rename_symbol_strict`: rename the symbol at a position, in every file that uses it.

use codeflow_lsp_pool::Operation;
use codeflow_lsp_pool::lsp_types::{RenameParams, request::Rename};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::imports::Lang;
use crate::lsp::coverage::{self, Coverage, identifier_at, is_ident, mentions};
use crate::lsp::document::Document;
use crate::lsp::goto::{goto, goto_at_text};
use crate::lsp::position::line_text;
use crate::lsp::prose;
use crate::lsp::{Locator, Place};
use codeflow_lsp_pool::lsp_types::request::GotoDefinition;
use codeflow_workspace::EditPlan;
use schemars::JsonSchema;
use serde::Serialize;

use crate::edit_output::{EditOutcomeExt, OutcomeWith};
use crate::lsp::CoverageMembers;
use crate::output::schema_of;

/// The `rename_symbol_strict` tool (its description is in `description`).
#[derive(Debug)]
pub struct RenameSymbolStrict;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    line: u32,
    character: u32,
    new_name: String,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    verify: bool,
}

impl Tool for RenameSymbolStrict {
    fn name(&self) -> &'static str {
        "rename_symbol_strict"
    }

    fn description(&self) -> &'static str {
        "Rename the symbol at a 1-based line and character to new_name in every file that uses it, through the language server (textDocument/rename), and write the edits to your files all or nothing; use it when rename_symbol found several symbols with that name, and dry_run to see the edits first."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {"type": "string", "description": "The file, absolute or relative to the project root."},
                "line": {"type": "integer", "minimum": 1, "description": "1-based line of the symbol."},
                "character": {"type": "integer", "minimum": 1, "description": "1-based character on that line, anywhere inside the name."},
                "new_name": {"type": "string", "description": "The new name."},
                "dry_run": {"type": "boolean", "default": false, "description": "Return the edits without changing any file."},
                "verify": {"type": "boolean", "default": false, "description": "Write nothing if the old name still appears (as a whole word, in code: comments and string literals are listed apart in `mentions` and do not count) in the project's files of that language after the rename. Either way such places are listed in `leftovers`."}
            },
            "required": ["file_path", "line", "character", "new_name"],
            "additionalProperties": false
        })
    }

    fn output_schema(&self) -> Value {
        schema_of::<OutcomeWith<RenameMembers>>()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            let args: Args = parse_args(args)?;
            let doc = Document::open_for(ctx, &args.file_path, Operation::Rename).await?;
            let position = doc.position(args.line, args.character)?;
            let outcome = rename_at(
                ctx,
                &doc,
                position,
                &args.new_name,
                args.dry_run,
                args.verify,
            )
            .await?;
            outcome.output(&format!(
                "Rename at {}:{}:{} to `{}`",
                doc.file.client, args.line, args.character, args.new_name
            ))
        }
        .boxed()
    }
}

/// A place where the old name is still written after a rename.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub(crate) struct Leftover {
    pub path: String,
    /// 1-based.
    pub line: u32,
    pub character: u32,
    pub text: String,
}

/// What a rename did, or would do, and what it left behind.
#[derive(Debug)]
pub(crate) struct RenameOutcome {
    pub outcome: codeflow_workspace::EditOutcome,
    /// The identifier renamed (as written at the position).
    pub old_name: Option<String>,
    /// Whole-word occurrences of the old name in the project's files of the language, after
    /// the rename.
    pub leftovers: Vec<Leftover>,
    /// How many places write the old name (`leftovers` lists the first [`MAX_LEFTOVERS`]).
    pub leftovers_total: usize,
    /// The old name in comments and string literals: not renamed, not leftovers (a comment
    /// saying `see Parse` does not break the code), listed so the caller can update them.
    pub mentions: Vec<Leftover>,
    /// How many (`mentions` lists the first [`MAX_LEFTOVERS`]).
    pub mentions_total: usize,
    /// Leftovers found with `verify`: nothing was written.
    pub refused: bool,
    /// Not every file of the language was searched (more than [`MAX_SEARCHED`]).
    pub search_partial: bool,
    /// Whether every file that mentions the name was open on the server.
    pub coverage: Coverage,
    /// Files where uses the server's edit missed were renamed too.
    pub completed: Vec<String>,
}

/// At most this many files are searched for the old name after a rename.
const MAX_SEARCHED: usize = 5000;
/// At most this many leftovers (and, apart, mentions in comments and strings) are reported.
const MAX_LEFTOVERS: usize = 50;
/// At most this many mentions are written in the answer's text.
const MENTIONS_IN_TEXT: usize = 10;

impl RenameOutcome {
    /// The answer.
    pub fn output(&self, what: &str) -> Result<ToolOutput, ToolError> {
        let (text, out) = self.answer(what);
        ToolOutput::typed(text, &out)
    }

    /// The answer's text and structured content, with the leftovers (and a refusal) in both.
    pub fn answer(&self, what: &str) -> (String, OutcomeWith<RenameMembers>) {
        let mut text = if self.refused {
            format!(
                "{what}: nothing was written — the old name would remain in {} place(s) the language server did not rename, so the code would break. The edits it offered are below; rename the places listed by hand (or with rename_symbol_strict there), or call again with verify: false to write them anyway.\n{}",
                self.leftovers_total,
                codeflow_workspace::EditOutcome {
                    dry_run: true,
                    files: self.outcome.files.clone(),
                    diagnostics: Vec::new(),
                }
                .to_text("Rename")
            )
        } else {
            self.outcome.to_text(what)
        };
        if let Some(old) = &self.old_name
            && !self.leftovers.is_empty()
        {
            if !self.refused {
                text.push_str(&format!(
                    "\nWarning: `{old}` still appears in {} place(s) after the rename:",
                    self.leftovers_total
                ));
            } else {
                text.push_str(&format!("\n`{old}` still appears at:"));
            }
            if self.leftovers_total > self.leftovers.len() {
                text.push_str(&format!(" (the first {} listed)", self.leftovers.len()));
            }
            for l in &self.leftovers {
                text.push_str(&format!(
                    "\n  {}:{}:{}  {}",
                    l.path, l.line, l.character, l.text
                ));
            }
        }
        if let Some(old) = &self.old_name
            && !self.mentions.is_empty()
        {
            text.push_str(&format!(
                "\nNote: `{old}` is also written in {} comment(s) or string literal(s), which a rename does not change (not counted as leftovers):",
                self.mentions_total
            ));
            for l in self.mentions.iter().take(MENTIONS_IN_TEXT) {
                text.push_str(&format!(
                    "\n  {}:{}:{}  {}",
                    l.path, l.line, l.character, l.text
                ));
            }
            if self.mentions_total > MENTIONS_IN_TEXT.min(self.mentions.len()) {
                text.push_str(&format!(
                    "\n  … {} more (in `mentions`)",
                    self.mentions_total - MENTIONS_IN_TEXT.min(self.mentions.len())
                ));
            }
        }
        if self.search_partial {
            text.push_str(&format!(
                "\nWarning: only {MAX_SEARCHED} files were searched for the old name."
            ));
        }
        if !self.completed.is_empty() {
            text.push_str(&format!(
                "\nThe language server's edit missed uses in {} file(s) whose definition is this symbol; they are renamed too: {}",
                self.completed.len(),
                self.completed.join(", ")
            ));
        }
        self.coverage.note(&mut text);
        let mut out = self.outcome.with(RenameMembers {
            leftovers: self.leftovers.clone(),
            leftovers_total: self.leftovers_total,
            mentions: self.mentions.clone(),
            mentions_total: self.mentions_total,
            refused: self.refused.then_some(true),
            completed: self.completed.clone(),
            coverage: self.coverage.members(),
        });
        if self.refused {
            out.outcome.applied = false;
        }
        (text, out)
    }
}

/// The members a rename adds to an edit outcome.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub(crate) struct RenameMembers {
    /// Whole-word occurrences of the old name still in the project's files of that language
    /// after the rename (places the language server did not rename, or other symbols of the
    /// same name).
    leftovers: Vec<Leftover>,
    /// How many such places there are (`leftovers` lists the first 50).
    leftovers_total: usize,
    /// The old name in comments and string literals after the rename: a rename does not
    /// change them and they are not leftovers (they do not break the code), listed so the
    /// caller can update them (the first 50).
    mentions: Vec<Leftover>,
    /// How many such mentions there are.
    mentions_total: usize,
    /// True when verify found leftovers and nothing was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<bool>,
    /// Files where uses the language server's edit missed (checked by their definition) were
    /// renamed too.
    completed: Vec<String>,
    #[serde(flatten)]
    coverage: CoverageMembers,
}

/// `textDocument/rename` at `position`, then the edit through [`EditPlan`]; afterwards the
/// project's files of the language are searched for the old name, and with `verify` a rename
/// that leaves it anywhere is not written.
pub(crate) async fn rename_at(
    ctx: &ToolContext,
    doc: &Document,
    position: codeflow_lsp_pool::lsp_types::Position,
    new_name: &str,
    dry_run: bool,
    verify: bool,
) -> Result<RenameOutcome, ToolError> {
    if new_name.trim().is_empty() {
        return Err(ToolError::InvalidArguments(
            "new_name must not be empty".to_owned(),
        ));
    }
    let mut plan = ctx.edit_plan(ctx.workspace().await?)?;
    // Every file that mentions the name open first: servers that only know open files
    // (clangd) would otherwise rename the uses in the open files only.
    let coverage = coverage::prepare_at(doc, position, true).await?;
    let edit = doc
        .server
        .request::<Rename>(RenameParams {
            text_document_position: doc.at(position),
            new_name: new_name.to_owned(),
            work_done_progress_params: Default::default(),
        })
        .await
        .map_err(|e| doc.lsp_error(e))?
        .ok_or_else(|| {
            ToolError::failed(format!(
                "language server {} found nothing to rename at {}:{}:{}",
                doc.server.server_id(),
                doc.file.client,
                position.line + 1,
                position.character + 1
            ))
            .with_suggestion("point at the symbol's name (get_document_symbols lists them)")
        })?;
    plan.workspace_edit(edit).await?;
    let old_name = line_text(&doc.text, position.line)
        .and_then(|line| identifier_at(line, position.character))
        .filter(|old| old != new_name);
    // Uses the server's edit missed (jedi across a package's modules), in files it left
    // untouched, whose definition is the renamed symbol's: renamed too.
    let completed = match &old_name {
        Some(old) => complete_missed_uses(ctx, &mut plan, doc, position, old, new_name).await?,
        None => Vec::new(),
    };
    let found = match &old_name {
        Some(old) => leftovers(ctx, &mut plan, doc, old, new_name).await?,
        None => Found::default(),
    };
    let (leftovers_total, mentions_total) = (found.in_code.len(), found.in_prose.len());
    let listed = |mut places: Vec<Leftover>| {
        places.truncate(MAX_LEFTOVERS);
        places
    };
    let (leftovers, mentions, search_partial) =
        (listed(found.in_code), listed(found.in_prose), found.partial);
    let refused = verify && !leftovers.is_empty();
    let outcome = plan.commit(dry_run || refused).await?;
    Ok(RenameOutcome {
        // A refusal is not a dry run the caller asked for (a dry-run batch still is one).
        outcome: codeflow_workspace::EditOutcome {
            dry_run: if refused {
                ctx.is_dry_run(dry_run)
            } else {
                outcome.dry_run
            },
            files: outcome.files,
            diagnostics: outcome.diagnostics,
        },
        old_name,
        leftovers,
        leftovers_total,
        mentions,
        mentions_total,
        refused,
        search_partial,
        coverage,
        completed,
    })
}

/// At most this many uses are checked by definition after a rename.
const MAX_CHECKED_USES: usize = 200;

/// Renames, in files the server's edit did not touch, the whole-word uses of `old` whose
/// definition (asked of the server) is where the renamed symbol's is; returns those files.
async fn complete_missed_uses(
    ctx: &ToolContext,
    plan: &mut EditPlan,
    doc: &Document,
    position: codeflow_lsp_pool::lsp_types::Position,
    old: &str,
    new_name: &str,
) -> Result<Vec<String>, ToolError> {
    let Some(lang) = Lang::of(doc.file.mirror.rel().as_str()) else {
        return Ok(Vec::new());
    };
    let locator = Locator::new(ctx).await?;
    let here = |p: &Place| (p.path.clone(), p.line, p.character);
    let target: Vec<_> = goto::<GotoDefinition>(doc, &locator, position)
        .await?
        .iter()
        .map(here)
        .collect();
    if target.is_empty() {
        return Ok(Vec::new());
    }
    let workspace = plan.workspace().clone();
    let width = codeflow_workspace::utf16_len(old);
    let mut checked = 0usize;
    let mut completed = Vec::new();
    for rel in plan.project_files() {
        if Lang::of(&rel) != Some(lang) || rel == doc.file.mirror.rel().as_str() {
            continue;
        }
        let path = plan.mirror_path(&rel)?;
        let Some(current) = plan.text(&path).await? else {
            continue;
        };
        if !mentions(&current, old) {
            continue;
        }
        let Ok(original) = workspace.mirror.read(&path).await else {
            continue;
        };
        if original[..] != *current.as_bytes() {
            continue; // edited by the server: its coordinates moved
        }
        let other =
            Document::open_for(ctx, &ctx.client_path(&workspace, &path), Operation::Rename).await?;
        let mut edits = Vec::new();
        for (line0, line) in current.lines().enumerate() {
            for (byte, _) in line.match_indices(old) {
                if line[..byte].chars().next_back().is_some_and(is_ident)
                    || line[byte + old.len()..]
                        .chars()
                        .next()
                        .is_some_and(is_ident)
                {
                    continue;
                }
                if checked >= MAX_CHECKED_USES {
                    break;
                }
                checked += 1;
                let start = codeflow_lsp_pool::lsp_types::Position::new(
                    line0 as u32,
                    codeflow_workspace::utf16_len(&line[..byte]),
                );
                let defs = goto_at_text::<GotoDefinition>(&other, &locator, start).await?;
                if defs.iter().any(|d| target.contains(&here(d))) {
                    edits.push(codeflow_lsp_pool::lsp_types::TextEdit {
                        range: codeflow_lsp_pool::lsp_types::Range::new(
                            start,
                            codeflow_lsp_pool::lsp_types::Position::new(
                                start.line,
                                start.character + width,
                            ),
                        ),
                        new_text: new_name.to_owned(),
                    });
                }
            }
        }
        if !edits.is_empty() {
            plan.text_edits(&path, edits).await?;
            completed.push(other.file.client.clone());
        }
    }
    Ok(completed)
}

/// Whether the old name at this place is one the rename keeps on purpose: the alias a server
/// writes to keep a public or foreign name (`new as old` in a re-export, `old as new` in an
/// import) or a property name it keeps (`old: new` for a shorthand property, `new: old` in a
/// destructuring). `before` and `after` are the line's text around the occurrence.
fn kept_by_rename(before: &str, after: &str, new: &str) -> bool {
    let ends_with_word = |text: &str, word: &str| {
        text.strip_suffix(word)
            .is_some_and(|rest| !rest.chars().next_back().is_some_and(is_ident))
    };
    let starts_with_word = |text: &str, word: &str| {
        text.strip_prefix(word)
            .is_some_and(|rest| !rest.chars().next().is_some_and(is_ident))
    };
    let before = before.trim_end();
    let after = after.trim_start();
    let alias_before = before
        .strip_suffix("as")
        .filter(|rest| rest.ends_with(char::is_whitespace))
        .is_some_and(|rest| ends_with_word(rest.trim_end(), new));
    let alias_after = after
        .strip_prefix("as")
        .filter(|rest| rest.starts_with(char::is_whitespace))
        .is_some_and(|rest| starts_with_word(rest.trim_start(), new));
    let property_before = before
        .strip_suffix(':')
        .is_some_and(|rest| ends_with_word(rest.trim_end(), new));
    let property_after = after
        .strip_prefix(':')
        .filter(|rest| !rest.starts_with(':'))
        .is_some_and(|rest| starts_with_word(rest.trim_start(), new));
    alias_before || alias_after || property_before || property_after
}

/// Whole-word occurrences of `old` in the project's files of the document's language, as the
/// plan leaves them — but for build output and dependencies (`dist/`, `build/`,
/// `node_modules/`, declaration files; where a missed use would not break the code) and for the
/// aliases the rename writes on purpose ([`kept_by_rename`]): the first [`MAX_LEFTOVERS`], how
/// many there are, and whether the search stopped at [`MAX_SEARCHED`] files.
async fn leftovers(
    ctx: &ToolContext,
    plan: &mut EditPlan,
    doc: &Document,
    old: &str,
    new: &str,
) -> Result<Found, ToolError> {
    let mut found = Found::default();
    let Some(lang) = Lang::of(doc.file.mirror.rel().as_str()) else {
        return Ok(found);
    };
    let workspace = plan.workspace().clone();
    let mut searched = 0;
    for rel in plan.project_files() {
        if Lang::of(&rel) != Some(lang) || coverage::is_generated(&rel) {
            continue;
        }
        if searched >= MAX_SEARCHED {
            found.partial = true;
            return Ok(found);
        }
        searched += 1;
        let path = plan.mirror_path(&rel)?;
        let Some(text) = plan.text(&path).await? else {
            continue;
        };
        if !mentions(&text, old) {
            continue;
        }
        let client = ctx.client_path(&workspace, &path);
        let prose = prose::ranges(lang, &text);
        let mut line_start = 0;
        for (line0, line_with_end) in text.split_inclusive('\n').enumerate() {
            let line = line_with_end.trim_end_matches(['\n', '\r']);
            for (byte, _) in line.match_indices(old) {
                if line[..byte].chars().next_back().is_some_and(is_ident)
                    || line[byte + old.len()..]
                        .chars()
                        .next()
                        .is_some_and(is_ident)
                {
                    continue;
                }
                if kept_by_rename(&line[..byte], &line[byte + old.len()..], new) {
                    continue;
                }
                let place = Leftover {
                    path: client.clone(),
                    line: line0 as u32 + 1,
                    character: line[..byte].chars().count() as u32 + 1,
                    text: line.trim().chars().take(200).collect(),
                };
                if prose::contains(&prose, line_start + byte) {
                    found.in_prose.push(place);
                } else {
                    found.in_code.push(place);
                }
            }
            line_start += line_with_end.len();
        }
    }
    Ok(found)
}

/// The old name's whole-word occurrences after a rename: in code (leftovers) and in comments
/// and string literals (mentions), each list in full; and whether the search stopped early.
#[derive(Debug, Default)]
struct Found {
    in_code: Vec<Leftover>,
    in_prose: Vec<Leftover>,
    partial: bool,
}

#[cfg(test)]
mod tests {
    use super::kept_by_rename;

    #[test]
    fn the_aliases_a_rename_writes_are_kept_names() {
        // `export { isDraftable } from` renamed by tsserver: `export { canDraft as isDraftable }`.
        assert!(kept_by_rename("\tcanDraft as ", ",", "canDraft"));
        // `import { isDraftable as x }` of a foreign module: `import { isDraftable as canDraft }`.
        assert!(kept_by_rename("import { ", " as canDraft }", "canDraft"));
        // A shorthand property kept: `{ isDraftable: canDraft }`.
        assert!(kept_by_rename("{ ", ": canDraft }", "canDraft"));
        // A destructured property renamed, the local kept: `{ canDraft: isDraftable }`.
        assert!(kept_by_rename("const { canDraft: ", " } = api", "canDraft"));
    }

    #[test]
    fn other_places_are_leftovers() {
        assert!(!kept_by_rename("if (!", "(x)) {", "canDraft"));
        // Another name aliased, or the new name only as a part of a longer word.
        assert!(!kept_by_rename("other as ", ",", "canDraft"));
        assert!(!kept_by_rename("mycanDraft as ", ",", "canDraft"));
        assert!(!kept_by_rename("{ ", ": canDraftable }", "canDraft"));
        assert!(!kept_by_rename("alias ", ",", "canDraft"));
        // A path, not a property: `old::new`.
        assert!(!kept_by_rename("", "::canDraft()", "canDraft"));
    }
}
