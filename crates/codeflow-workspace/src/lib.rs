//! A CodeFlow project on the server: what every session of a project shares, and each
//! session's view of it.
//!
//! - [`Workspaces`] / [`ProjectWorkspace`]: a project's mirror (the client's files, where the
//!   language servers run) and its lease on the language-server pool.
//! - [`Caller`]: one session's narrow view — project, root, rights, a line to its client's
//!   files, and its path map (client path ↔ project-relative ↔ mirror). Tools take a caller;
//!   [`Caller::local`] makes one without a socket, for tests and embedding.
//! - [`SessionFiles`]: a session's file events (`server/syncManifest`, `server/fileChanged`)
//!   applied to the mirror in arrival order; a tool call waits for them
//!   ([`SessionFiles::caught_up`]).
//! - [`SyncState`]: what the mirror's last manifest sync did (for status views).
//! - [`SyncUpload`]: a sync's missing files over one upload transfer (the server's
//!   [`SyncUploads`] owns the endpoint).
//! - [`TreeHolders`]: the live sessions whose trees a mirror holds; a sync that would remove
//!   their files is refused ([`TreeConflict`]).
//! - [`EditPlan`]: every write as one all-or-nothing write-back to the client with the hashes it
//!   was based on, or a dry-run description; [`BatchScope`] groups plans.
//! - [`EditRouter`]: language servers' `workspace/applyEdit` through a caller that can write.
//! - [`DiagnosticsPublisher`]: language servers' diagnostics on the `diagnostics` channel;
//!   [`after_write`]: a write's diagnostics (`validation` channel); [`git_state`]: a shared git
//!   project's branch, HEAD and dirty files (`git` channel).
//! - [`text`]: the one line index for LSP positions and text edits.
//!
//! It knows nothing of MCP or of sockets: sessions reach it through [`codeflow_session`], and
//! the tool catalogue sits on top of it.

#![warn(missing_docs)]

pub mod after_write;
pub mod apply_edit;
pub mod batch;
pub mod caller;
pub mod compile_db;
pub mod diagnostics;
pub mod edits;
pub mod error;
pub mod extensions;
pub mod git_state;
pub mod hunks;
pub mod lsp_sync;
pub mod publish;
pub mod server_text;
pub mod session_client;
pub mod sync;
mod sync_begin;
pub mod sync_state;
pub mod sync_upload;
pub mod text;
pub mod trees;
pub mod workspace;

pub use after_write::FileDiagnostics;
pub use apply_edit::EditRouter;
pub use batch::{BatchScope, Planned};
pub use caller::{Caller, ResolvedFile};
pub use edits::{EditOutcome, EditPlan, FileAction, FileReport, OutcomeOutput, ReportedEdit};
pub use error::WorkspaceError;
pub use extensions::Extensions;
pub use hunks::minimal_edits;
pub use lsp_sync::{FileOperation, notify_file_operation, tell_language_servers};
pub use publish::DiagnosticsPublisher;
pub use server_text::{Scrubber, ServerText};
pub use sync::{ClientNotices, NoNotices, SessionFiles};
pub use sync_state::SyncState;
pub use sync_upload::{SyncUpload, SyncUploads};
pub use text::{
    LineIndex, UserPosition, apply_text_edits, end_position, from_lsp, line_text, range_from_lsp,
    to_lsp, utf16_len, utf16_slice, utf16_to_byte,
};
pub use trees::{OtherTree, TreeConflict, TreeHolders};
pub use workspace::{ProjectWorkspace, WorkspaceConfig, Workspaces};
