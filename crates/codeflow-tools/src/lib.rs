//! The CodeFlow MCP tool catalogue and MCP server.
//!
//! [`Catalogue`] holds the tools (the names and parameters of `design/tools.md`, kept from
//! codeflow-buddy and cclsp so agents' prompts keep working). [`McpService`] serves a session
//! with them over MCP; it is the [`codeflow_session::SessionService`] the server plugs into its
//! session registry. Tools reach the language servers and the project's files through
//! [`ToolContext`], built on the project layer of `codeflow-workspace`; this crate opens no
//! sockets and reads no config files.

#![warn(missing_docs)]

pub mod catalogue;
pub mod client_log;
pub mod context;
pub mod edit_output;
pub mod error;
pub mod imports;
pub mod lsp;
mod mcp;
pub mod output;
pub mod rights;
pub mod symbol_cache;
pub mod symbol_edit;
pub mod tools;

pub use catalogue::{Catalogue, Tool, ToolOutput, ToolOutputText};
pub use context::{ResolvedFile, ServerServices, ToolContext};
pub use error::ToolError;
pub use mcp::McpService;
pub use output::schema_of;
