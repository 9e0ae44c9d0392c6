//! This container's side of file streaming: the [`FileServer`] that answers the server's
//! `client/*` requests from the project root (through the path jail; [`crate::serving`] runs
//! them), watching the root, and the manifest for syncs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use codeflow_file_stream::protocol::FileChanged;
use codeflow_file_stream::{FileServer, Limits, Manifest, Watcher, WatcherConfig};
use serde_json::Value;
use tokio::sync::mpsc;

/// File changes queued between the watcher and the relay loop. When full the watcher waits
/// (it never drops a change); the relay drains it whenever it is connected.
const CHANGE_QUEUE: usize = 256;

/// A manifest's `server/syncManifest` params, offering to send what the mirror lacks over an
/// upload transfer (`client/uploadFiles`, served by [`crate::upload`]).
fn offering_transfers(manifest: &Manifest) -> codeflow_file_stream::protocol::SyncManifestParams {
    let mut params = manifest.to_params();
    params.transfers = true;
    params
}

pub struct LocalFiles {
    server: FileServer,
    watcher: Watcher,
    /// The starting manifest as `server/syncManifest` params JSON, serialised once at start
    /// (10,000 files are ~1.3 MB: not something to build on the relay loop while the agent
    /// waits).
    initial_text: Option<String>,
    /// The starting manifest, kept for `client/uploadFiles {all}` (the first sync offers it
    /// with `uploadAll`: the server need not list every file back).
    initial: Arc<Manifest>,
    pub changes: mpsc::Receiver<FileChanged>,
}

impl LocalFiles {
    pub async fn start(root: &Path, cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let limits = Limits::from_env().map_err(|e| anyhow::anyhow!("invalid file limits: {e}"))?;
        let config = WatcherConfig {
            limits,
            hash_cache_dir: cache_dir,
            ..WatcherConfig::default()
        };
        let (sink, changes) = mpsc::channel(CHANGE_QUEUE);
        let watcher = Watcher::start(root, config, sink)
            .await
            .map_err(|e| anyhow::anyhow!("cannot watch {}: {e}", root.display()))?;
        // The server records its write-backs in its mirror itself; the watcher must take what
        // they changed as reported, or a later `mv`/`rm` of such a file is compared with stale
        // state (and the old path stays in the mirror).
        let server = FileServer::new(root, limits)
            .map_err(|e| anyhow::anyhow!("cannot serve files from {}: {e}", root.display()))?
            .reporting_to(watcher.write_notices());
        let mut first = offering_transfers(watcher.manifest());
        first.upload_all = true;
        let initial_text = serde_json::to_string(&first).ok();
        Ok(Self {
            server,
            initial: Arc::new(watcher.manifest().clone()),
            watcher,
            initial_text,
            changes,
        })
    }

    /// The manifest the watcher started from: the first sync sends this, and the watcher's
    /// changes since then follow it, so nothing falls between the two.
    pub fn initial_manifest(&self) -> Value {
        serde_json::to_value(offering_transfers(self.watcher.manifest())).unwrap_or(Value::Null)
    }

    /// The starting manifest (the one the first sync sends).
    pub fn initial(&self) -> Arc<Manifest> {
        Arc::clone(&self.initial)
    }

    /// How many files the starting manifest has.
    pub fn initial_len(&self) -> usize {
        self.watcher.manifest().len()
    }

    /// [`LocalFiles::initial_manifest`] as params JSON text, the first time it is asked for.
    pub fn take_initial_text(&mut self) -> Option<String> {
        self.initial_text.take()
    }

    /// The tree as the watcher knows it now, after a flush (for a new session after the server
    /// lost the old one): no re-reading of the tree. The caller must keep draining `changes`
    /// while it waits (the flush hands changes to it); see [`crate::relay`]'s `start_sync`.
    pub fn current_manifest(
        &self,
    ) -> impl std::future::Future<Output = Result<Value, codeflow_file_stream::FileError>> + Send + 'static
    {
        let snapshot = self.watcher.current_manifest();
        async move {
            Ok(serde_json::to_value(offering_transfers(&snapshot.await?)).unwrap_or(Value::Null))
        }
    }

    /// Requests a flush: once the returned future completes, every change on disk up to the
    /// moment of this call has been put into `changes`. The caller keeps draining `changes`
    /// meanwhile (the queue must not fill up while it waits).
    pub fn start_flush(
        &self,
    ) -> impl std::future::Future<Output = Result<(), codeflow_file_stream::FileError>> + Send + 'static
    {
        self.watcher.start_flush()
    }

    /// What serves the server's `client/*` requests from this root (see [`crate::serving`]).
    pub fn file_server(&self) -> FileServer {
        self.server.clone()
    }
}
