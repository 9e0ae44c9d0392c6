//! Cross-file answers complete, or said to be partial.
//!
//! Some language servers see only the files that are open: clangd without a background index
//! (CodeFlow keeps it off, because it would write `.cache/` into the mirror) answers
//! references, callers, implementations and workspace symbols from the files it has parsed.
//! Before such a question, [`prepare`] opens on the server every project file of the language
//! that mentions the name asked about and waits until each is parsed, so the answer covers the
//! project. When more files mention it than are opened ([`MAX_OPENED`]), the answer is marked
//! partial with the reason, in the text and in `structuredContent` (`partial`,
//! `partial_reason`).

use codeflow_lsp_pool::ServerHandle;
use codeflow_lsp_pool::lsp_types::request::DocumentSymbolRequest;
use codeflow_lsp_pool::lsp_types::{DocumentSymbolParams, Position, TextDocumentIdentifier};
use codeflow_workspace::ProjectWorkspace;

use crate::error::ToolError;
use crate::imports::Lang;
use crate::lsp::Document;
use crate::lsp::position::line_text;

/// At most this many files are opened before one question.
pub const MAX_OPENED: usize = 200;

/// Whether the answer covers the project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Why it may not (`None`: complete as far as CodeFlow can tell).
    pub partial: Option<String>,
}

impl Coverage {
    /// An answer that may be incomplete, and why.
    pub fn partial(reason: impl Into<String>) -> Self {
        Self {
            partial: Some(reason.into()),
        }
    }

    /// Keeps the first reason of two.
    pub fn and(self, other: Coverage) -> Coverage {
        if self.partial.is_some() { self } else { other }
    }

    /// The `partial` (and `partial_reason`) members of a structured answer.
    pub fn members(&self) -> CoverageMembers {
        CoverageMembers {
            partial: self.partial.is_some(),
            partial_reason: self.partial.clone(),
        }
    }

    /// Adds the reason to a text answer.
    pub fn note(&self, text: &mut String) {
        if let Some(reason) = &self.partial {
            text.push_str(&format!("\nPartial: {reason}"));
        }
    }
}

/// Whether an answer covers the project, as members of the answer (flattened into it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct CoverageMembers {
    /// True when the answer may miss part of the project; partial_reason says why.
    pub partial: bool,
    /// Why the answer may be incomplete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_reason: Option<String>,
}

/// Whether the server of files like `rel` sees only open files (C and C++: clangd).
pub fn sees_open_files_only(rel: &str) -> bool {
    Lang::of(rel) == Some(Lang::C)
}

/// Whether `c` can be part of an identifier.
pub fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// The identifier around a UTF-16 column of a line.
pub fn identifier_at(line: &str, utf16: u32) -> Option<String> {
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
pub fn mentions(text: &str, word: &str) -> bool {
    !word.is_empty()
        && text.match_indices(word).any(|(i, _)| {
            !text[..i].chars().next_back().is_some_and(is_ident)
                && !text[i + word.len()..].chars().next().is_some_and(is_ident)
        })
}

/// What a file must contain to be opened.
#[derive(Debug, Clone, Copy)]
pub enum Wanted<'a> {
    /// The identifier, as a whole word.
    Word(&'a str),
    /// The text, anywhere, ignoring case (a workspace-symbol query).
    Text(&'a str),
}

impl Wanted<'_> {
    fn found_in(&self, text: &str) -> bool {
        match self {
            Wanted::Word(w) => mentions(text, w),
            Wanted::Text(q) => text.to_lowercase().contains(&q.to_lowercase()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Wanted::Word(w) | Wanted::Text(w) => format!("`{w}`"),
        }
    }
}

/// For a server that sees only open files (or for every server, with `every_server`: a rename
/// wants every mention open): opens on `server` every project file of the language of `rel`
/// (other than `rel`) that contains `wanted`, at most [`MAX_OPENED`], and waits until each is
/// parsed. For other servers, nothing to do.
pub async fn prepare(
    workspace: &ProjectWorkspace,
    server: &ServerHandle,
    rel: &str,
    wanted: Wanted<'_>,
    every_server: bool,
) -> Result<Coverage, ToolError> {
    if !every_server && !sees_open_files_only(rel) {
        return Ok(Coverage::default());
    }
    let lang = Lang::of(rel);
    let mut opened = Vec::new();
    let mut mentioning = 0usize;
    for file in workspace.mirror.files().into_keys() {
        if file.as_str() == rel || Lang::of(file.as_str()) != lang {
            continue;
        }
        let path = workspace.mirror.paths().mirror_path(&file);
        let Ok(bytes) = workspace.mirror.read(&path).await else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        if !wanted.found_in(&text) {
            continue;
        }
        mentioning += 1;
        if opened.len() >= MAX_OPENED {
            continue;
        }
        server
            .sync_document(path.as_path(), text.into_owned())
            .map_err(ToolError::from_lsp)?;
        opened.push(path);
    }
    // A request on a file returns once it is parsed (and, for clangd, in its index of open
    // files).
    let parsed = opened.iter().map(|path| async move {
        let Ok(uri) = server.uri_for(path.as_path()) else {
            return;
        };
        let _ = server
            .request::<DocumentSymbolRequest>(DocumentSymbolParams {
                text_document: TextDocumentIdentifier::new(uri),
                work_done_progress_params: Default::default(),
                partial_result_params: Default::default(),
            })
            .await;
    });
    futures::future::join_all(parsed).await;
    Ok(if mentioning > opened.len() {
        Coverage::partial(format!(
            "{} sees only open files, and only {} of the {mentioning} files that mention {} were opened for this answer",
            server.server_id(),
            opened.len(),
            wanted.describe()
        ))
    } else {
        Coverage::default()
    })
}

/// Build output and dependencies (`build/`, `dist/`, `node_modules/`, declaration files): not
/// where a missed use would break the code.
pub(crate) fn is_generated(rel: &str) -> bool {
    rel.ends_with(".d.ts")
        || rel.split('/').any(|c| {
            matches!(
                c,
                "node_modules" | "vendor" | "target" | ".git" | "build" | "dist" | "out"
            )
        })
}

/// A cross-check of an answer against the project's text: the files of the language of `rel`
/// that write `word` as a whole word but where the answer names no place (`reported`, mirror
/// relative paths). Any such file makes the answer partial — uses the server missed (jedi
/// misses uses in other modules of a package), or other symbols of the same name — and the
/// reason names them.
pub async fn unreported(
    workspace: &ProjectWorkspace,
    rel: &str,
    word: &str,
    reported: &std::collections::BTreeSet<String>,
) -> Coverage {
    let lang = Lang::of(rel);
    if lang.is_none() || word.is_empty() {
        return Coverage::default();
    }
    let mut missing = Vec::new();
    for file in workspace.mirror.files().into_keys() {
        if Lang::of(file.as_str()) != lang
            || reported.contains(file.as_str())
            || is_generated(file.as_str())
        {
            continue;
        }
        let path = workspace.mirror.paths().mirror_path(&file);
        let Ok(bytes) = workspace.mirror.read(&path).await else {
            continue;
        };
        if mentions(&String::from_utf8_lossy(&bytes), word) {
            missing.push(file.as_str().to_owned());
        }
    }
    if missing.is_empty() {
        return Coverage::default();
    }
    let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
    let more = missing.len() - shown.len();
    Coverage::partial(format!(
        "`{word}` is also written in {} file(s) where the language server reported no place ({}{}): uses it missed, or other symbols of that name — check them (find_references from there, or read them)",
        missing.len(),
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ))
}

/// [`prepare`] for the identifier at `position` of `doc`.
pub async fn prepare_at(
    doc: &Document,
    position: Position,
    every_server: bool,
) -> Result<Coverage, ToolError> {
    let Some(word) = line_text(&doc.text, position.line)
        .and_then(|line| identifier_at(line, position.character))
    else {
        return Ok(Coverage::default());
    };
    prepare(
        doc.workspace(),
        &doc.server,
        doc.file.mirror.rel().as_str(),
        Wanted::Word(&word),
        every_server,
    )
    .await
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
        assert_eq!(identifier_at("a + b", 2), None);
        assert_eq!(identifier_at("é_x", 1).as_deref(), Some("é_x"));
    }

    #[test]
    fn mentions_whole_identifiers_only() {
        assert!(mentions("double scale(double v);", "scale"));
        assert!(!mentions("double rescale(double v);", "scale"));
        assert!(!mentions("double scale_by(double v);", "scale"));
        assert!(Wanted::Text("decompressstream").found_in("BrotliDecoderDecompressStream("));
    }
}
