//! This container's side of file streaming: the [`FileServer`] that answers the server's
//! `client/*` requests from the project root (through the path jail; [`crate::serving`] runs
//! them), watching the root, and the manifest for syncs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use codeflow_file_stream::protocol::FileChanged;
use codeflow_file_stream::{
    FileError, FileServer, Limits, Manifest, ScanFeed, Walked, Watcher, WatcherConfig,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

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

/// Bytes of the start-up scan's files held for a streamed first sync while the upload is not
/// taking them yet (beyond it, the upload reads those files again).
const FEED_BYTES: u64 = 32 * 1024 * 1024;

/// A streamed first sync is asked for from this many files, or bytes, left to read after the
/// walk (the server's threshold for a transfer); below it the scan ends at once and the
/// manifest goes as before.
const STREAM_MIN_FILES: u64 = 16;
const STREAM_MIN_BYTES: u64 = 1024 * 1024;

/// The start-up scan's manifest, once its read pass is over (for `client/uploadFiles {all}`).
pub type InitialManifest = Arc<std::sync::OnceLock<Arc<Manifest>>>;

/// How the start-up scan's read pass ended.
pub type ScanOutcome = Result<Result<Manifest, FileError>, oneshot::error::RecvError>;

/// Completes when the start-up scan's read pass ends (never when it is over already), taking
/// `scanning`. Cancel-safe: the relay's loop selects on it (a free function, so the loop can
/// also borrow [`LocalFiles::changes`]).
pub async fn scan_ended(
    scanning: &mut Option<oneshot::Receiver<Result<Manifest, FileError>>>,
) -> ScanOutcome {
    let Some(rx) = scanning.as_mut() else {
        return std::future::pending().await;
    };
    let outcome = rx.await;
    *scanning = None;
    outcome
}

pub struct LocalFiles {
    server: FileServer,
    watcher: Watcher,
    /// The starting manifest as `server/syncManifest` params JSON, serialised once at start
    /// (10,000 files are ~1.3 MB: not something to build on the relay loop while the agent
    /// waits).
    initial_text: Option<String>,
    /// The starting manifest, kept for `client/uploadFiles {all}` (the first sync offers it
    /// with `uploadAll`: the server need not list every file back). Set when the scan ends.
    initial: InitialManifest,
    /// The scan's manifest, while its read pass runs (see [`scan_ended`]).
    pub scanning: Option<oneshot::Receiver<Result<Manifest, FileError>>>,
    /// The scan's files as it reads them, until a streamed first sync takes them.
    feed: Option<ScanFeed>,
    /// What the walk found.
    walked: Walked,
    /// Why the scan failed, if it did (the relay stops).
    failed: Option<String>,
    pub changes: mpsc::Receiver<FileChanged>,
}

impl LocalFiles {
    /// Walks the root and starts watching it; the read-and-hash pass goes on behind (see
    /// [`LocalFiles::scanned`] and [`LocalFiles::take_feed`]).
    pub async fn start(root: &Path, cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let limits = Limits::from_env().map_err(|e| anyhow::anyhow!("invalid file limits: {e}"))?;
        let config = WatcherConfig {
            limits,
            hash_cache_dir: cache_dir,
            ..WatcherConfig::default()
        };
        let (sink, changes) = mpsc::channel(CHANGE_QUEUE);
        let (watcher, mut feed) = Watcher::start_streaming(root, config, sink, FEED_BYTES)
            .await
            .map_err(|e| anyhow::anyhow!("cannot watch {}: {e}", root.display()))?;
        // The server records its write-backs in its mirror itself; the watcher must take what
        // they changed as reported, or a later `mv`/`rm` of such a file is compared with stale
        // state (and the old path stays in the mirror).
        let server = FileServer::new(root, limits)
            .map_err(|e| anyhow::anyhow!("cannot serve files from {}: {e}", root.display()))?
            .reporting_to(watcher.write_notices());
        Ok(Self {
            server,
            watcher,
            initial_text: None,
            initial: InitialManifest::default(),
            scanning: feed.take_manifest(),
            walked: feed.walked,
            feed: Some(feed),
            failed: None,
            changes,
        })
    }

    /// Waits for the start-up scan's read pass (at once after the first time); the starting
    /// manifest is then known. An error (the tree grew past the project's limits during the
    /// scan) is kept in [`LocalFiles::failure`].
    pub async fn scanned(&mut self) -> Result<(), String> {
        if self.scanning.is_some() {
            let outcome = scan_ended(&mut self.scanning).await;
            self.take_scan(outcome);
        }
        match &self.failed {
            Some(failed) => Err(failed.clone()),
            None => Ok(()),
        }
    }

    /// Whether the start-up scan's read pass is still running.
    pub fn is_scanning(&self) -> bool {
        self.scanning.is_some()
    }

    /// Records how the start-up scan's read pass ended (from [`scan_ended`]): its manifest,
    /// or its failure.
    pub fn take_scan(&mut self, outcome: ScanOutcome) {
        let manifest = match outcome {
            Ok(Ok(manifest)) => manifest,
            Ok(Err(e)) => return self.fail(e.to_string()),
            Err(_) => return self.fail("the watcher thread ended during its scan".into()),
        };
        tracing::info!(files = manifest.len(), "tree read and hashed");
        let mut first = offering_transfers(&manifest);
        first.upload_all = true;
        self.initial_text = serde_json::to_string(&first).ok();
        let _ = self.initial.set(Arc::new(manifest));
        // Nobody took the scan's files for a streamed sync: they are not wanted any more.
        self.feed = None;
    }

    fn fail(&mut self, why: String) {
        tracing::error!("the start-up scan failed: {why}");
        self.failed = Some(why);
    }

    /// Why the start-up scan failed, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// The scan's files for a streamed first sync, when its read pass still has enough to
    /// read to be worth overlapping with the upload (taken once; `None` otherwise).
    pub fn take_feed(&mut self) -> Option<ScanFeed> {
        let worth = self.walked.to_read_files >= STREAM_MIN_FILES
            || self.walked.to_read_bytes >= STREAM_MIN_BYTES;
        let feed = self.feed.take();
        feed.filter(|_| worth && self.scanning.is_some())
    }

    /// What the walk found.
    pub fn walked(&self) -> Walked {
        self.walked
    }

    /// The manifest the watcher started from (after [`LocalFiles::scanned`]): the first sync
    /// sends this, and the watcher's changes since then follow it, so nothing falls between
    /// the two.
    pub fn initial_manifest(&self) -> Value {
        match self.initial.get() {
            Some(manifest) => {
                serde_json::to_value(offering_transfers(manifest)).unwrap_or(Value::Null)
            }
            None => Value::Null,
        }
    }

    /// The starting manifest (the one the first sync sends), once the scan is over.
    pub fn initial(&self) -> InitialManifest {
        Arc::clone(&self.initial)
    }

    /// How many files the walk found.
    pub fn initial_len(&self) -> u64 {
        self.walked.files
    }

    /// [`LocalFiles::initial_manifest`] as params JSON text, the first time it is asked for
    /// (after [`LocalFiles::scanned`]).
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

    /// Whether a flush now would find nothing to put into `changes`, decided here without
    /// waking the watcher (nothing changed on disk since the watcher last handled its events;
    /// see [`Watcher::is_quiet`]). What the watcher found before is in `changes` already.
    pub fn is_quiet(&self) -> bool {
        self.watcher.is_quiet()
    }

    /// What serves the server's `client/*` requests from this root (see [`crate::serving`]).
    pub fn file_server(&self) -> FileServer {
        self.server.clone()
    }
}
