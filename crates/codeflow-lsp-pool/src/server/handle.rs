//! [`ServerHandle`]: what callers hold to talk to one project's language server.

use super::*;

/// A shared handle to one project's language server. Cheap to clone. Requests go to whatever
/// instance is current; a crash in the middle is invisible to the caller except as latency.
///
/// Positions and ranges are LSP's (0-based lines and UTF-16 characters).
#[derive(Clone)]
pub struct ServerHandle {
    pub(crate) server: Arc<ManagedServer>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("project", &self.server.project)
            .field("server_id", &self.server.server_id)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The server id from the table (`pylsp`, `clangd`, …).
    #[must_use]
    pub fn server_id(&self) -> &str {
        &self.server.server_id
    }

    /// The project this server works on.
    #[must_use]
    pub fn project(&self) -> &str {
        &self.server.project
    }

    /// The directory the server runs in (its workspace root).
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.server.root
    }

    /// Language label (`python`, `c`, …).
    #[must_use]
    pub fn language(&self) -> &str {
        &self.server.language
    }

    /// The `file://` URI for a path (absolute, or relative to the project root).
    ///
    /// # Errors
    /// [`LspError::InvalidPath`] for paths with `..` or that cannot be a URI.
    pub fn uri_for(&self, path: impl AsRef<Path>) -> Result<Url, LspError> {
        self.server.uri_for(path.as_ref())
    }

    /// Send request `R` and decode its result.
    ///
    /// Waits (bounded by `readiness_timeout`) for indexing to finish first, fails fast with
    /// [`LspError::CapabilityMissing`] when the server does not offer the method, is replayed
    /// on the next instance if the server crashes, and is bounded by `request_timeout`.
    /// Dropping the future sends `$/cancelRequest`.
    ///
    /// # Errors
    /// See [`LspError`].
    pub async fn request<R>(&self, params: R::Params) -> Result<R::Result, LspError>
    where
        R: Request,
    {
        let params = serde_json::to_value(params).map_err(|e| LspError::InvalidParams {
            method: R::METHOD.to_owned(),
            reason: e.to_string(),
        })?;
        let value = self
            .server
            .request_value(R::METHOD, raw_sender::<R>(), params)
            .await?;
        serde_json::from_value(value).map_err(|e| LspError::InvalidResponse {
            server: self.server.server_id.clone(),
            method: R::METHOD.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Send notification `N` to the current instance (starting the server if needed). For
    /// document sync use [`open`](Self::open)/[`change`](Self::change)/[`close`](Self::close),
    /// which survive restarts.
    ///
    /// # Errors
    /// Start failures, or [`LspError::PoolShutDown`].
    pub async fn notify<N: Notification>(&self, params: N::Params) -> Result<(), LspError> {
        self.server.notify_value::<N>(params).await
    }

    /// Sends notification `N` now if the server is running, or when the instance being
    /// started goes live (in order); never waits for a start. For notifications that are
    /// hints about the disk (`workspace/didChangeWatchedFiles`): nothing is sent to a stopped
    /// server, which reads the disk when it starts.
    pub fn notify_soon<N: Notification>(&self, params: N::Params)
    where
        N::Params: Send + 'static,
    {
        self.server.notify_soon::<N>(params);
    }

    /// `didOpen` a document (version 1). Opening an already open document changes it instead.
    /// Returns the version the server now has.
    ///
    /// # Errors
    /// [`LspError::InvalidPath`].
    pub fn open(&self, path: impl AsRef<Path>, text: impl Into<String>) -> Result<i32, LspError> {
        self.server.open(path.as_ref(), text.into())
    }

    /// `didChange` with the full new text and the next version; no-op if the text is the same.
    ///
    /// # Errors
    /// [`LspError::DocumentNotOpen`], [`LspError::InvalidPath`].
    pub fn change(&self, path: impl AsRef<Path>, text: impl Into<String>) -> Result<i32, LspError> {
        self.server.change(path.as_ref(), text.into())
    }

    /// Open the document, or change it to `text` with a new version if it is open.
    ///
    /// # Errors
    /// [`LspError::InvalidPath`].
    pub fn sync_document(
        &self,
        path: impl AsRef<Path>,
        text: impl Into<String>,
    ) -> Result<i32, LspError> {
        self.server.open(path.as_ref(), text.into())
    }

    /// `didClose`.
    ///
    /// # Errors
    /// [`LspError::DocumentNotOpen`], [`LspError::InvalidPath`].
    pub fn close(&self, path: impl AsRef<Path>) -> Result<(), LspError> {
        self.server.close(path.as_ref())
    }

    /// The document's diagnostics: pulled (`textDocument/diagnostic`) when the server supports
    /// it, else the freshest pushed set, waiting (bounded by `diagnostics_timeout`) for one that
    /// describes the current version. `fresh` says whether it does.
    ///
    /// # Errors
    /// Start failures, request errors of the pull.
    pub async fn diagnostics(&self, path: impl AsRef<Path>) -> Result<DiagnosticsReport, LspError> {
        self.server.diagnostics(path.as_ref()).await
    }

    /// [`Self::diagnostics`], and for pushed ones every later push for the document until none
    /// comes for `quiet` — or for the server's own `diagnostics_settle`, when its table entry
    /// has one — (bounded by `diagnostics_timeout`): for servers that publish a version's
    /// diagnostics in phases (tsserver sends syntax errors, then semantic ones).
    ///
    /// # Errors
    /// As [`Self::diagnostics`].
    pub async fn diagnostics_settled(
        &self,
        path: impl AsRef<Path>,
        quiet: Duration,
    ) -> Result<DiagnosticsReport, LspError> {
        self.server.diagnostics_settled(path.as_ref(), quiet).await
    }

    /// The pushed diagnostics held for the document now, without waiting or asking (`fresh`
    /// says whether they describe its current version; `source` is `none` when the server
    /// never published any for it).
    ///
    /// # Errors
    /// [`LspError::InvalidPath`].
    pub fn pushed_diagnostics(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<DiagnosticsReport, LspError> {
        self.server.pushed_diagnostics(path.as_ref())
    }

    /// Whether the document at `path` is open on this server.
    #[must_use]
    pub fn is_open(&self, path: impl AsRef<Path>) -> bool {
        self.server
            .uri_for(path.as_ref())
            .is_ok_and(|uri| self.server.documents.lock().open.contains_key(&uri))
    }

    /// The server's capabilities (waits until it runs).
    ///
    /// # Errors
    /// Start failures.
    pub async fn capabilities(&self) -> Result<ServerCapabilities, LspError> {
        self.server.capabilities().await
    }

    /// The capabilities of the running instance, if one runs now.
    #[must_use]
    pub fn capabilities_now(&self) -> Option<ServerCapabilities> {
        self.server.capabilities_now()
    }

    /// Wait, at most `limit`, until the server reports no indexing in progress. Returns
    /// whether it did.
    ///
    /// # Errors
    /// Start failures.
    pub async fn wait_ready(&self, limit: Duration) -> Result<bool, LspError> {
        self.server.wait_ready(limit).await
    }

    /// A status snapshot.
    #[must_use]
    pub fn status(&self) -> ServerStatus {
        self.server.status()
    }

    /// The pid of the running instance.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.server.status().pid
    }
}
