//! Positions: the tools' 1-based `line`/`character` (characters counted in Unicode scalar
//! values, what a person or a model counts) ↔ LSP's 0-based lines and UTF-16 code units. The
//! conversions are the workspace's one line index ([`codeflow_workspace::text`]); this module
//! only words their errors as tool errors.

use codeflow_lsp_pool::lsp_types::Position;

pub use codeflow_workspace::text::{UserPosition, from_lsp, line_text, range_from_lsp};

use crate::error::ToolError;

/// 1-based (line, character) → LSP position, checked against the document's text (see
/// [`codeflow_workspace::text::to_lsp`]).
pub fn to_lsp(text: &str, line: u32, character: u32) -> Result<Position, ToolError> {
    codeflow_workspace::text::to_lsp(text, line, character).map_err(ToolError::InvalidArguments)
}
