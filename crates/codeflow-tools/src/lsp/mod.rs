//! Shared pieces of the LSP-backed tools: positions (1-based ↔ LSP), locations (mirror URIs →
//! client paths with line text), symbols by name, documents opened for a call, and result
//! limits. Tools are thin on top of these.

pub mod args;
pub mod coverage;
pub mod document;
pub mod goto;
pub mod limit;
pub mod locations;
pub mod name_path;
pub mod position;
pub mod prose;
pub mod source_files;
pub mod symbols;

pub use coverage::{Coverage, CoverageMembers};
pub use document::Document;
pub use limit::{DEFAULT_MAX_RESULTS, Limited};
pub use locations::{FileRef, Locator, Place, SymbolPlace, render_places};
pub use position::{UserPosition, from_lsp, line_text, to_lsp};
pub use symbols::{FlatSymbol, SymbolMatches, find_by_name, flatten, kind_from_name, kind_name};

/// A language-server failure as a tool error. A server that answers "method not found" for a
/// method it did not advertise the capability of (clangd's `callHierarchy/outgoingCalls`) is
/// reported like a missing capability, naming the server and the method.
pub fn lsp_error(e: codeflow_lsp_pool::LspError) -> crate::error::ToolError {
    if let codeflow_lsp_pool::LspError::ServerError {
        server,
        method,
        code: -32601,
        ..
    } = &e
    {
        return crate::error::ToolError::failed(format!(
            "language server {server} does not support {method} (it answered: method not found)"
        ))
        .with_suggestion("this language server cannot do that; try another tool");
    }
    crate::error::ToolError::from_lsp(e)
}
