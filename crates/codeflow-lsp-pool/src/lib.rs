//! # codeflow-lsp-pool
//!
//! A pool of real language servers for many projects: one server process per
//! (project, server), started on first use, shared by every session working on that project,
//! kept warm while leased, stopped when idle, and restarted when it crashes — with the
//! requests that were in flight replayed and answered exactly once.
//!
//! ```no_run
//! use codeflow_lsp_pool::{LspPool, PoolConfig, ProjectKey};
//! use lsp_types::request::GotoDefinition;
//! # async fn demo() -> Result<(), codeflow_lsp_pool::LspError> {
//! let pool = LspPool::new(PoolConfig::default());
//! let lease = pool.lease(ProjectKey::new(codeflow_types::ProjectId::parse("demo").expect("a valid id"), "/srv/mirrors/demo"));
//! let server = lease.server_for_file("src/app.py").await?;
//! server.sync_document("src/app.py", std::fs::read_to_string("/srv/mirrors/demo/src/app.py").unwrap_or_default())?;
//! let uri = server.uri_for("src/app.py")?;
//! let _definition = server
//!     .request::<GotoDefinition>(lsp_types::GotoDefinitionParams {
//!         text_document_position_params: lsp_types::TextDocumentPositionParams::new(
//!             lsp_types::TextDocumentIdentifier::new(uri),
//!             lsp_types::Position::new(3, 4),
//!         ),
//!         work_done_progress_params: Default::default(),
//!         partial_result_params: Default::default(),
//!     })
//!     .await?;
//! drop(lease); // the project's servers stop `idle_timeout` after the last lease is gone
//! pool.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Pieces
//! - [`PoolConfig`] / [`ServerConfig`]: the server table (extensions → command) and timings.
//! - [`LspPool`]: the pool; [`ProjectLease`]: a session's claim on a project;
//!   [`ServerHandle`]: requests, notifications, document sync and diagnostics for one server.
//! - Internals: `connection` (one process + `async-lsp` main loop + answers to the server's
//!   own requests), `server` (supervisor: restart with backoff, replay, documents), `readiness`
//!   (`$/progress`), `process` (process groups, no orphans).
//!
//! ## What this crate is not
//! It knows nothing of WebSockets, MCP, or clients' paths: callers give it a plain directory
//! (the project's mirror) and get LSP types back, positions 0-based as in LSP. It does not
//! write files: `workspace/applyEdit` goes to the owner's [`ApplyEditHandler`].
//!
//! ## Invariants
//! - A server's root is its project's directory, and a server is never shared between
//!   projects.
//! - Every child runs in its own process group; stopping or dropping the pool kills the
//!   groups, so no language server (or its helpers) outlives the pool.
//! - A request future completes exactly once. Dropping it sends `$/cancelRequest`.
//! - Background tasks (one supervisor per running server, one reaper per pool) are owned and
//!   stopped by [`LspPool::shutdown`].
//! - Channels: the pool's own are `watch` channels (latest value only, never grow). Requests
//!   to one server are bounded by `max_in_flight_per_server`; beyond it callers wait.

#![warn(missing_docs)]

mod child_env;
mod config;
mod connection;
mod documents;
mod edit;
mod error;
mod listen;
pub mod metrics;
mod pool;
mod process;
mod readiness;
mod server;
mod status;

pub use config::{Operation, PoolConfig, ServerConfig, default_language_id, default_servers};
pub use documents::{DiagnosticsReport, DiagnosticsSource};
pub use edit::{ApplyEditContext, ApplyEditHandler};
pub use error::LspError;
pub use listen::DiagnosticsListener;
pub use pool::{LspPool, ProjectKey, ProjectLease};
pub use server::ServerHandle;
pub use status::{ServerState, ServerStatus};

/// Re-exported so callers use exactly the LSP types this crate speaks (`=0.95.1`).
pub use lsp_types;
