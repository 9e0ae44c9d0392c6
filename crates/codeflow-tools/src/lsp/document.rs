//! A document opened for one tool call: the file in both path spaces, its language server
//! (with the document open at the mirror's content), its URI and text.

use std::sync::Arc;

use codeflow_lsp_pool::ServerHandle;
use codeflow_lsp_pool::lsp_types::request::References;
use codeflow_lsp_pool::lsp_types::{
    Location, Position, ReferenceContext, ReferenceParams, TextDocumentIdentifier,
    TextDocumentPositionParams, Url,
};

use crate::context::{ResolvedFile, ToolContext};
use crate::error::ToolError;
use crate::lsp::position::{UserPosition, from_lsp, line_text, to_lsp};
use crate::lsp::symbols::{self, FlatSymbol, SymbolMatches};
use crate::symbol_cache::SymbolCache;

/// A file opened on its language server at the mirror's content.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file, in the caller's and the mirror's paths.
    pub file: ResolvedFile,
    /// The language server the file belongs to.
    pub server: ServerHandle,
    /// The document's URI on that server.
    pub uri: Url,
    /// The content the server was given.
    pub text: Arc<str>,
    /// Its hash, and the project's symbol cache it keys.
    hash: Option<codeflow_file_stream::ContentHash>,
    workspace: Arc<codeflow_workspace::ProjectWorkspace>,
    scrubber: codeflow_workspace::Scrubber,
}

impl Document {
    /// Resolves `file_path` (absolute or relative to the project root), starts its language
    /// server and opens the document on it.
    pub async fn open(ctx: &ToolContext, file_path: &str) -> Result<Self, ToolError> {
        Self::open_on(ctx, file_path, None).await
    }

    /// Like [`Document::open`], on the server that answers `operation` best for the file
    /// (e.g. basedpyright for Python references beside pylsp).
    pub async fn open_for(
        ctx: &ToolContext,
        file_path: &str,
        operation: codeflow_lsp_pool::Operation,
    ) -> Result<Self, ToolError> {
        Self::open_on(ctx, file_path, Some(operation)).await
    }

    async fn open_on(
        ctx: &ToolContext,
        file_path: &str,
        operation: Option<codeflow_lsp_pool::Operation>,
    ) -> Result<Self, ToolError> {
        let file = ctx.resolve(file_path).await?;
        let server = match operation {
            Some(operation) => ctx.server_for_operation(&file, operation).await?,
            None => ctx.server_for(&file).await?,
        };
        let workspace = ctx.workspace().await?;
        let bytes = workspace
            .mirror
            .read(&file.mirror)
            .await
            .map_err(|e| ToolError::failed(format!("cannot read {}: {e}", file.client)))?;
        let uri = server
            .uri_for(file.mirror.as_path())
            .map_err(ToolError::from_lsp)?;
        // Hash what was read, so the cache key matches the text exactly.
        let hash = Some(codeflow_file_stream::ContentHash::of(&bytes));
        let scrubber = ctx.caller.scrubber(&workspace);
        Ok(Self {
            file,
            server,
            uri,
            text: Arc::from(String::from_utf8_lossy(&bytes).as_ref()),
            hash,
            workspace,
            scrubber,
        })
    }

    /// A failure of this document's language server as the caller's error: its message
    /// (which the server may have written) scrubbed of the mirror.
    pub fn lsp_error(&self, e: codeflow_lsp_pool::LspError) -> ToolError {
        self.scrubber.error(crate::lsp::lsp_error(e))
    }

    /// The project's workspace this document was opened in.
    pub fn workspace(&self) -> &codeflow_workspace::ProjectWorkspace {
        &self.workspace
    }

    /// The LSP position of a 1-based (line, character), checked against the text.
    pub fn position(&self, line: u32, character: u32) -> Result<Position, ToolError> {
        to_lsp(&self.text, line, character).map_err(|e| match e {
            ToolError::InvalidArguments(m) => {
                ToolError::InvalidArguments(format!("{m} in {}", self.file.client))
            }
            other => other,
        })
    }

    /// An LSP position in this document as the 1-based one tools show.
    pub fn user_position(&self, position: Position) -> UserPosition {
        from_lsp(line_text(&self.text, position.line), position)
    }

    /// The document's identifier for LSP requests.
    pub fn identifier(&self) -> TextDocumentIdentifier {
        TextDocumentIdentifier::new(self.uri.clone())
    }

    /// The document at `position`, for LSP requests.
    pub fn at(&self, position: Position) -> TextDocumentPositionParams {
        TextDocumentPositionParams::new(self.identifier(), position)
    }

    /// `textDocument/references` at `position`, the declaration included when asked.
    pub async fn references(
        &self,
        position: Position,
        include_declaration: bool,
    ) -> Result<Vec<Location>, ToolError> {
        Ok(self
            .server
            .request::<References>(ReferenceParams {
                text_document_position: self.at(position),
                context: ReferenceContext {
                    include_declaration,
                },
                work_done_progress_params: Default::default(),
                partial_result_params: Default::default(),
            })
            .await
            .map_err(|e| self.lsp_error(e))?
            .unwrap_or_default())
    }

    /// The file's symbols, flattened.
    pub async fn symbols(&self) -> Result<Vec<FlatSymbol>, ToolError> {
        let server = self.server.server_id();
        if let Some(hash) = &self.hash
            && let Some(cached) = self
                .workspace
                .extensions
                .get::<SymbolCache>()
                .get(server, &self.uri, hash)
        {
            return Ok(cached.as_ref().clone());
        }
        let mut found = symbols::document_symbols(&self.server, &self.uri)
            .await
            .map_err(|e| self.scrubber.error(e))?;
        for symbol in &mut found {
            symbols::refine_selection(&self.text, symbol);
        }
        // An empty outline is not kept: some servers (bash-language-server,
        // vim-language-server) answer empty until they have parsed a just-opened document,
        // and the next call should ask again rather than repeat that.
        if let Some(hash) = &self.hash
            && !found.is_empty()
        {
            self.workspace.extensions.get::<SymbolCache>().put(
                server,
                &self.uri,
                hash.clone(),
                Arc::new(found.clone()),
            );
        }
        Ok(found)
    }

    /// Symbols named `name` (see [`symbols::find_by_name`]); an error naming the file's
    /// symbols when none matches.
    pub async fn find_symbols(
        &self,
        name: &str,
        kind: Option<&str>,
    ) -> Result<SymbolMatches, ToolError> {
        let all = self.symbols().await?;
        let mut found = symbols::find_by_name(&all, name, kind);
        if (found.symbols.is_empty() || found.substring)
            && let Some(range) = symbols::find_use(&self.text, name)
        {
            // Not declared here but used: ask the server about the name where the file uses it.
            let at = self.user_position(range.start);
            found.warnings.push(format!(
                "`{name}` is not declared in {}; it is used at line {}, character {}: answered for what it refers to there",
                self.file.client, at.line, at.character
            ));
            found.symbols = vec![FlatSymbol {
                name: name.to_owned(),
                kind: codeflow_lsp_pool::lsp_types::SymbolKind::VARIABLE,
                detail: None,
                container: Vec::new(),
                range,
                selection_range: range,
                used_here: true,
            }];
            found.substring = false;
        }
        if found.symbols.is_empty() {
            let kind = kind.filter(|k| symbols::kind_from_name(k).is_some());
            return Err(symbols::not_found(name, kind, &self.file.client, &all));
        }
        Ok(found)
    }
}
