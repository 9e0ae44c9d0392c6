//! The one error type of this crate.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong, as a case the caller can act on.
///
/// Cloneable so a single start-up failure can be handed to every request that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LspError {
    /// No configured language server handles this file's extension.
    #[error("no language server is configured for {path:?} (extension {extension:?})")]
    NoServerForFile {
        /// The file asked about.
        path: PathBuf,
        /// Its extension (empty when it has none).
        extension: String,
    },
    /// `server_by_id` named a server that is not in the table.
    #[error("no language server with id {server:?} is configured")]
    UnknownServer {
        /// The id asked for.
        server: String,
    },
    /// The server's program is not installed (not found on `PATH`).
    #[error(
        "language server {server} is not installed: `{command}` was not found; install it with: {hint}"
    )]
    NotInstalled {
        /// Server id.
        server: String,
        /// The command that was looked up.
        command: String,
        /// How to install it.
        hint: String,
    },
    /// The server could not be started or did not complete `initialize`: it exited, timed
    /// out, or spoke something other than LSP. The pool stays usable.
    #[error("language server {server} failed to start: {reason}")]
    StartFailed {
        /// Server id.
        server: String,
        /// What happened, with the tail of the server's stderr when there is one.
        reason: String,
    },
    /// The request did not complete within its time limit (a `$/cancelRequest` was sent).
    #[error("{method} to language server {server} timed out after {after:?}")]
    Timeout {
        /// Server id.
        server: String,
        /// LSP method.
        method: String,
        /// The limit that was hit.
        after: Duration,
    },
    /// The server crashed too often and the pool stopped restarting it; `restart_project`
    /// (the `restart_server` tool) tries again.
    #[error(
        "language server {server} crashed {crashes} times within {window:?}; gave up restarting it (last: {last_reason})"
    )]
    GaveUp {
        /// Server id.
        server: String,
        /// Crashes counted in the window.
        crashes: u32,
        /// The crash window.
        window: Duration,
        /// Why the last instance ended.
        last_reason: String,
    },
    /// The server does not offer what the request needs.
    #[error("language server {server} does not support {capability} (needed for {method})")]
    CapabilityMissing {
        /// Server id.
        server: String,
        /// The capability field, e.g. `referencesProvider`.
        capability: String,
        /// The method that needs it.
        method: String,
    },
    /// The server answered with a JSON-RPC error.
    #[error("language server {server} answered {method} with error {code}: {message}")]
    ServerError {
        /// Server id.
        server: String,
        /// LSP method.
        method: String,
        /// JSON-RPC error code.
        code: i32,
        /// The server's message.
        message: String,
    },
    /// The server's answer did not match the LSP type for the method.
    #[error("language server {server} sent an invalid result for {method}: {reason}")]
    InvalidResponse {
        /// Server id.
        server: String,
        /// LSP method.
        method: String,
        /// The decoding error.
        reason: String,
    },
    /// Params could not be encoded (a bug in the caller's types, not the server).
    #[error("could not encode params for {method}: {reason}")]
    InvalidParams {
        /// LSP method.
        method: String,
        /// The encoding error.
        reason: String,
    },
    /// A path could not be turned into a `file://` URI (it must be absolute or relative to the
    /// project root, and valid UTF-8 is not required but `..` escaping the root is refused).
    #[error("invalid document path {path:?}: {reason}")]
    InvalidPath {
        /// The path given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `change`/`close` on a document that was never opened with this server.
    #[error("document {uri} is not open in language server {server}")]
    DocumentNotOpen {
        /// Server id.
        server: String,
        /// The document.
        uri: String,
    },
    /// The server died while running a request that acts rather than asks (such as
    /// `workspace/executeCommand`). It may or may not have acted before it died, so the
    /// request is not sent again on its own.
    #[error(
        "language server {server} stopped while running {method}; it may or may not have taken effect, so it was not sent again"
    )]
    Interrupted {
        /// Server id.
        server: String,
        /// LSP method.
        method: String,
    },
    /// The pool is shutting down or shut down.
    #[error("the language-server pool is shut down")]
    PoolShutDown,
}

impl LspError {
    /// True when retrying the same call later may succeed without changing anything
    /// (timeouts, start failures, crashes).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::StartFailed { .. } | Self::GaveUp { .. }
        )
    }
}
