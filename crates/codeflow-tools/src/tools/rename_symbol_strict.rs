//! `rename_symbol_strict`: rename the symbol at a position, in every file that uses it.

use codeflow_lsp_pool::lsp_types::{
    DocumentSymbolParams, RenameParams, TextDocumentIdentifier,
    request::{DocumentSymbolRequest, Rename},
};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::edit_output::EditOutcomeExt;
use crate::error::{ToolError, parse_args};
use crate::imports::Lang;
use crate::lsp::document::Document;
use crate::lsp::position::line_text;
use codeflow_workspace::{EditPlan, outcome_output_schema};

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
                "dry_run": {"type": "boolean", "default": false, "description": "Return the edits without changing any file."}
            },
            "required": ["file_path", "line", "character", "new_name"],
            "additionalProperties": false
        })
    }

    fn output_schema(&self) -> Value {
        outcome_output_schema()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            let args: Args = parse_args(args)?;
            let doc = Document::open(ctx, &args.file_path).await?;
            let position = doc.position(args.line, args.character)?;
            let outcome = rename_at(ctx, &doc, position, &args.new_name, args.dry_run).await?;
            Ok(outcome.report(
                &format!(
                    "Rename at {}:{}:{} to `{}`",
                    doc.file.client, args.line, args.character, args.new_name
                ),
                None,
            ))
        }
        .boxed()
    }
}

/// `textDocument/rename` at `position`, then the edit through [`EditPlan`].
pub(crate) async fn rename_at(
    ctx: &ToolContext,
    doc: &Document,
    position: codeflow_lsp_pool::lsp_types::Position,
    new_name: &str,
    dry_run: bool,
) -> Result<codeflow_workspace::EditOutcome, ToolError> {
    if new_name.trim().is_empty() {
        return Err(ToolError::InvalidArguments(
            "new_name must not be empty".to_owned(),
        ));
    }
    let mut plan = ctx.edit_plan(ctx.workspace().await?)?;
    open_mentioning_files(&mut plan, doc, position).await?;
    let edit = doc
        .server
        .request::<Rename>(RenameParams {
            text_document_position: doc.at(position),
            new_name: new_name.to_owned(),
            work_done_progress_params: Default::default(),
        })
        .await
        .map_err(ToolError::from_lsp)?
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
    plan.commit(dry_run).await
}

/// At most this many other files are opened before a rename.
const MAX_OPENED: usize = 100;

/// Opens on the document's language server every other project file of its language that
/// mentions the identifier at `position`: servers that only know open files (clangd without a
/// background index) otherwise rename the uses in the open files only, and a rename that
/// leaves the declaration in a header and the definition in another `.c` file under the old
/// name breaks the build.
async fn open_mentioning_files(
    plan: &mut EditPlan,
    doc: &Document,
    position: codeflow_lsp_pool::lsp_types::Position,
) -> Result<(), ToolError> {
    let Some(lang) = Lang::of(doc.file.mirror.rel().as_str()) else {
        return Ok(());
    };
    let Some(word) = line_text(&doc.text, position.line)
        .and_then(|line| identifier_at(line, position.character))
    else {
        return Ok(());
    };
    let own = doc.file.mirror.rel().as_str().to_owned();
    let mut opened = Vec::new();
    for rel in plan.project_files() {
        if opened.len() >= MAX_OPENED {
            break;
        }
        if rel == own || Lang::of(&rel) != Some(lang) {
            continue;
        }
        let path = plan.mirror_path(&rel)?;
        let Some(text) = plan.text(&path).await? else {
            continue;
        };
        if !mentions(&text, &word) {
            continue;
        }
        doc.server
            .sync_document(path.as_path(), text)
            .map_err(ToolError::from_lsp)?;
        opened.push(path);
    }
    // A server indexes a file it was just given in the background; a request on it returns
    // once it is parsed (and, for clangd, in its index of open files).
    let parsed = opened.iter().map(|path| async move {
        let Ok(uri) = doc.server.uri_for(path.as_path()) else {
            return;
        };
        let _ = doc
            .server
            .request::<DocumentSymbolRequest>(DocumentSymbolParams {
                text_document: TextDocumentIdentifier::new(uri),
                work_done_progress_params: Default::default(),
                partial_result_params: Default::default(),
            })
            .await;
    });
    futures::future::join_all(parsed).await;
    Ok(())
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// The identifier around a UTF-16 column of a line.
fn identifier_at(line: &str, utf16: u32) -> Option<String> {
    let at = codeflow_workspace::utf16_to_byte(line, utf16);
    let start = line[..at]
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_ident(*c))
        .last()
        .map_or(at, |(i, _)| i);
    let end = line[at..]
        .char_indices()
        .find(|(_, c)| !is_ident(*c))
        .map_or(line.len(), |(i, _)| at + i);
    (start < end).then(|| line[start..end].to_owned())
}

/// Whether `word` occurs in `text` as a whole identifier.
fn mentions(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        !text[..i].chars().next_back().is_some_and(is_ident)
            && !text[i + word.len()..].chars().next().is_some_and(is_ident)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identifier_around_a_column() {
        assert_eq!(
            identifier_at("    return scale(x, 10.0);", 11).as_deref(),
            Some("scale")
        );
        assert_eq!(
            identifier_at("    return scale(x, 10.0);", 16).as_deref(),
            Some("scale")
        );
        assert_eq!(
            identifier_at("    return scale(x, 10.0);", 13).as_deref(),
            Some("scale")
        );
        assert_eq!(identifier_at("a + b", 2), None);
        assert_eq!(identifier_at("é_x", 1).as_deref(), Some("é_x"));
    }

    #[test]
    fn mentions_whole_identifiers_only() {
        assert!(mentions("double scale(double v);", "scale"));
        assert!(!mentions("double rescale(double v);", "scale"));
        assert!(!mentions("double scale_by(double v);", "scale"));
    }
}
