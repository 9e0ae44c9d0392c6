//! Shared pieces of the LSP-backed tools: positions (1-based ↔ LSP), locations (mirror URIs →
//! client paths with line text), symbols by name, documents opened for a call, and result
//! limits. Tools are thin on top of these.

pub mod document;
pub mod limit;
pub mod locations;
pub mod position;
pub mod symbols;

pub use document::Document;
pub use limit::{DEFAULT_MAX_RESULTS, Limited};
pub use locations::{FileRef, Locator, Place, render_places};
pub use position::{UserPosition, from_lsp, line_text, to_lsp};
pub use symbols::{FlatSymbol, SymbolMatches, find_by_name, flatten, kind_from_name, kind_name};
