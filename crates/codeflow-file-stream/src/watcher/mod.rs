//! The relay's file watcher: turns changes under the client root into `server/fileChanged`.
//!
//! One owned thread (`codeflow-watcher`) does all the work: it receives raw `notify` events,
//! coalesces them per path (a burst of writes to one file becomes one message once the burst
//! settles), stats and hashes the paths, and emits [`FileChanged`] with the full content, a
//! line delta against the content it last emitted, or (for files over
//! [`WatcherConfig::inline_limit`]) just the hash. It compares every candidate with the last
//! state it reported, so it never emits a change that did not happen.
//!
//! - **Watches** are per directory, only on directories the [`FileFilter`] admits and not
//!   inside partial directories (`node_modules`): excluded trees cost no watches. Files git
//!   tracks are admitted even when `.gitignore` names them; the tracked set follows git's
//!   index (see `git_index.rs`).
//! - **Polling fallback**: every [`WatcherConfig::poll_interval`] the whole tree is re-stat'ed,
//!   catching anything `notify` missed (network file systems, watch limits, queue overflows);
//!   if `notify` cannot start at all, polling alone keeps the mirror fresh.
//! - **Back-pressure policy**: the sink is a bounded channel; when it is full the watcher
//!   waits (it never drops a change). Meanwhile raw events keep arriving on a bounded queue;
//!   if that overflows, or more than [`WatcherConfig::max_pending`] paths are pending, the
//!   watcher falls back to a full re-stat of the tree, which loses nothing because it compares
//!   with the last reported state.
//! - **Events**: on Linux the watcher reads its own inotify instance (`inotify.rs`), asking
//!   only for events that can mean a change; elsewhere the `notify` crate (`events.rs`).
//! - **Read-your-writes**: [`Watcher::flush`] returns once every change up to the call has been
//!   handed to the sink: it waits until the reader has taken every event the kernel queued
//!   before it (inotify), handles them, re-checks recently touched files (and, for trees of up
//!   to [`WatcherConfig::flush_full_scan_below`] files, every file), and emits what differs.
//!   [`Watcher::is_quiet`] answers, without waking the watcher, whether a flush now would find
//!   nothing (`quiet.rs`): then a caller may skip it.
//! - **The relay's own writes**: a [`FileServer`](crate::FileServer) made with
//!   [`FileServer::reporting_to`](crate::FileServer::reporting_to) tells the watcher what it
//!   wrote, deleted or renamed ([`WriteNotices`]). The server recorded that write-back in its
//!   mirror itself, so the watcher takes the new state as the one the server holds (the base
//!   of later deltas, the thing a later `mv` or `rm` is compared with) and still reports the
//!   path once more at its next check: a hash-only `Changed` when the file is as written
//!   (the mirror answers `Unchanged`, or fetches it if it missed the write), `Deleted` when it
//!   is gone, a normal change otherwise. Without this, a file the server created and the user
//!   moved before the watcher saw it was never reported deleted, and a write the user reverted
//!   by hand looked like no change at all.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime};

use notify::{RecursiveMode, Watcher as _};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

use crate::cache::ContentCache;
use crate::error::FileError;
use crate::filter::{ExcludeConfig, FileFilter};
use crate::hash_cache::{HashCache, Settling, Stamp};
use crate::jail::Jail;
use crate::limits::Limits;
use crate::manifest::{Manifest, mtime_ms};
use crate::paths::{ClientPath, RelPath};
use crate::protocol::{ContentHash, FileChanged, ManifestEntry};
use crate::read_many::{Read, read_many};
use crate::walk::{WalkedFile, walk, walk_one, walk_parallel};

/// Tuning of a [`Watcher`].
#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// What is not watched (besides `.gitignore`d paths).
    pub excludes: ExcludeConfig,
    /// Size and count limits: larger files are reported by hash only.
    pub limits: Limits,
    /// Full re-stat period, the fallback for missed events (`None`: only when `notify` fails).
    pub poll_interval: Option<Duration>,
    /// Quiet time after the last event before pending paths are processed.
    pub settle: Duration,
    /// Longest a pending path waits while events keep coming.
    pub max_delay: Duration,
    /// Files up to this size travel inline (content or delta); larger ones as a hash only.
    pub inline_limit: u64,
    /// Bytes of text kept to compute deltas against.
    pub delta_cache_bytes: usize,
    /// Most pending paths before falling back to a full re-stat.
    pub max_pending: usize,
    /// Files changed within this window are re-checked by every flush.
    pub hot_window: Duration,
    /// Take events from the cross-platform `notify` crate even on Linux, where the watcher
    /// otherwise reads its own inotify instance (and can then be [quiet](Watcher::is_quiet)).
    pub portable_events: bool,
    /// Trees with at most this many files are fully re-stat'ed by every flush (exact).
    pub flush_full_scan_below: usize,
    /// Directory of the persisted hash cache (`None`: hash every file at every start). A
    /// restart on an unchanged tree then costs a stat per file instead of a read and a hash.
    pub hash_cache_dir: Option<PathBuf>,
    /// How much older than the read a file's mtime and ctime must be before its hash is
    /// persisted (covers coarse file-system timestamps and other machines' clocks; see the
    /// `hash_cache` module).
    pub hash_cache_margin: Duration,
    /// The same for files on the root's device when it is a local file system with
    /// nanosecond timestamps from this kernel's clock (tmpfs, ext4, xfs, btrfs, overlayfs) and
    /// the file's times have a sub-second part: a later write's timestamps then lag the real
    /// time by less than a scheduler tick. Never longer than `hash_cache_margin`.
    pub hash_cache_local_margin: Duration,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        WatcherConfig {
            excludes: ExcludeConfig::default(),
            limits: Limits::default(),
            poll_interval: Some(Duration::from_secs(30)),
            settle: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            inline_limit: 1024 * 1024,
            delta_cache_bytes: 64 * 1024 * 1024,
            max_pending: 10_000,
            hot_window: Duration::from_secs(120),
            portable_events: false,
            flush_full_scan_below: 1000,
            hash_cache_dir: None,
            hash_cache_margin: Duration::from_secs(2),
            hash_cache_local_margin: Duration::from_millis(50),
        }
    }
}

/// Raw events from `notify` (and wake-ups) into the worker thread; bounded.
enum Msg {
    Paths(Vec<PathBuf>),
    Rescan,
    Wake,
}

const EVENT_QUEUE: usize = 4096;

/// Work done while idle (re-reading fresh files for the hash cache, warming delta texts) goes
/// in batches of at most this many files and bytes, so events and flushes never wait long.
const IDLE_BATCH_FILES: usize = 64;
const IDLE_BATCH_BYTES: u64 = 4 * 1024 * 1024;

mod events;
mod feed;
mod git_index;
#[cfg(target_os = "linux")]
mod inotify;
mod intake;
mod notices;
mod quiet;
mod report;
mod scan;
mod worker;

use events::Events;
use quiet::Quiet;

use feed::Feed;
pub use feed::{ScanFeed, Scanned, Walked};
pub use notices::WriteNotices;
use notices::{Notice, Noticed};

/// Shared between the [`Watcher`] handle and its thread.
struct Control {
    stop: watch::Sender<bool>,
    flushes: Mutex<Vec<oneshot::Sender<()>>>,
    /// Callers of [`Watcher::current_manifest`], answered after a flush.
    snapshots: Mutex<Vec<oneshot::Sender<Manifest>>>,
    overflow: AtomicBool,
    wake: SyncSender<Msg>,
    /// Writes of the relay's own file server, applied by the worker before its next check.
    notices: Mutex<Vec<Notice>>,
    /// Whether a flush now would find nothing (see `quiet.rs`).
    quiet: Quiet,
}

impl Control {
    /// Queues a request for the worker (answered after its next flush) and wakes it.
    fn request<T: Send + 'static>(
        &self,
        queue: &Mutex<Vec<oneshot::Sender<T>>>,
    ) -> impl std::future::Future<Output = Result<T, FileError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        queue.lock().push(tx);
        self.wake();
        async move {
            rx.await
                .map_err(|_| FileError::Unavailable("the watcher has stopped".into()))
        }
    }

    fn wake(&self) {
        // A full queue wakes the worker anyway.
        let _ = self.wake.try_send(Msg::Wake);
    }
}

/// A running watcher. Dropping it stops the thread; [`Watcher::stop`] also waits for it.
pub struct Watcher {
    control: Arc<Control>,
    thread: Option<std::thread::JoinHandle<()>>,
    manifest: Manifest,
    /// What the walk found ([`Watcher::start_streaming`]; zeros otherwise).
    walked: Walked,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("files", &self.manifest.len())
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// Scans `root` (the baseline, see [`Watcher::manifest`]), starts watching it, and sends
    /// every later change to `sink`. `root` must be an absolute, UTF-8 path; emitted paths
    /// are `root` joined with the relative path. Must be called within a tokio runtime.
    pub async fn start(
        root: impl Into<PathBuf>,
        config: WatcherConfig,
        sink: mpsc::Sender<FileChanged>,
    ) -> Result<Watcher, FileError> {
        Self::start_with(root.into(), config, sink, None).await
    }

    /// Like [`Watcher::start`], but returns once the tree is walked (stat'ed and watched),
    /// before its files are read and hashed: the read pass hands each file to the returned
    /// [`ScanFeed`] as it reads it (with the bytes it hashed, while fewer than `feed_bytes`
    /// wait in the feed), and the feed's manifest is the baseline ([`Watcher::manifest`] stays
    /// empty). Changes after the scan arrive through `sink` once the read pass is over.
    pub async fn start_streaming(
        root: impl Into<PathBuf>,
        config: WatcherConfig,
        sink: mpsc::Sender<FileChanged>,
        feed_bytes: u64,
    ) -> Result<(Watcher, ScanFeed), FileError> {
        let (manifest_tx, manifest_rx) = oneshot::channel();
        let (feed, scan) = Feed::new(feed_bytes, manifest_rx);
        let watcher =
            Self::start_with(root.into(), config, sink, Some((feed, manifest_tx))).await?;
        let mut scan = scan;
        scan.walked = watcher.walked;
        Ok((watcher, scan))
    }

    async fn start_with(
        root: PathBuf,
        config: WatcherConfig,
        sink: mpsc::Sender<FileChanged>,
        streaming: Option<(Feed, oneshot::Sender<Result<Manifest, FileError>>)>,
    ) -> Result<Watcher, FileError> {
        let client_root = ClientPath::parse(
            root.to_str()
                .ok_or_else(|| FileError::rejected("the project root is not valid UTF-8"))?,
        )?;
        let runtime = tokio::runtime::Handle::current();
        let (wake_tx, rx) = std::sync::mpsc::sync_channel(EVENT_QUEUE);
        let (stop_tx, stop_rx) = watch::channel(false);
        let control = Arc::new(Control {
            stop: stop_tx,
            flushes: Mutex::new(Vec::new()),
            snapshots: Mutex::new(Vec::new()),
            overflow: AtomicBool::new(false),
            wake: wake_tx.clone(),
            notices: Mutex::new(Vec::new()),
            quiet: Quiet::default(),
        });
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(Manifest, Walked), FileError>>();
        let thread_control = Arc::clone(&control);
        let thread = std::thread::Builder::new()
            .name("codeflow-watcher".into())
            .spawn(move || {
                let worker = Worker::new(
                    root,
                    client_root,
                    config,
                    sink,
                    runtime,
                    stop_rx,
                    thread_control,
                    wake_tx,
                );
                let mut worker = match worker {
                    Ok(worker) => worker,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let Some((feed, manifest_tx)) = streaming else {
                    match worker.baseline() {
                        Ok(manifest) => {
                            if ready_tx.send(Ok((manifest, Walked::default()))).is_ok() {
                                worker.run(&rx);
                            }
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                    return;
                };
                let walk = match worker.walk_baseline() {
                    Ok(walk) => walk,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let walked = Worker::walked(&walk);
                if ready_tx.send(Ok((Manifest::default(), walked))).is_err() {
                    return;
                }
                let read = worker.read_baseline(walk, Some(&feed));
                drop(feed);
                let ok = read.is_ok();
                let _ = manifest_tx.send(read);
                if ok {
                    worker.run(&rx);
                }
            })
            .map_err(|e| FileError::Io(format!("cannot start the watcher thread: {e}")))?;
        let (manifest, walked) = ready_rx
            .await
            .map_err(|_| FileError::Io("the watcher thread ended during start-up".into()))??;
        Ok(Watcher {
            control,
            thread: Some(thread),
            manifest,
            walked,
        })
    }

    /// The tree as scanned at start (empty for [`Watcher::start_streaming`], whose feed has
    /// it): send it as `server/syncManifest`. Every change after it
    /// arrives through the sink, so manifest + changes describe the tree with no gap.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The tree as the watcher knows it once every change on disk before the call has been
    /// handed to the sink: the manifest for a new session (after the server lost the old
    /// one), with no re-reading of the tree.
    pub fn current_manifest(
        &self,
    ) -> impl std::future::Future<Output = Result<Manifest, FileError>> + Send + 'static {
        self.control.request(&self.control.snapshots)
    }

    /// Returns once every change on disk before the call has been handed to the sink.
    pub async fn flush(&self) -> Result<(), FileError> {
        self.start_flush().await
    }

    /// Whether a [`Watcher::flush`] now would find nothing to hand to the sink: every change
    /// on disk before the call is in the sink already. Decided on the caller's thread without
    /// waking the watcher (one `ioctl` and a lock), and exact: true only where every change
    /// makes an inotify event (Linux, every directory watched, a local file system) and every
    /// event queued before the call has been read and handled (see `quiet.rs`). Files in
    /// partial directories (`node_modules`) have no watches: a change there is found by the
    /// next flush that re-stats the tree or by the periodic re-stat.
    pub fn is_quiet(&self) -> bool {
        self.control.quiet.is_quiet()
            && self.control.flushes.lock().is_empty()
            && self.control.snapshots.lock().is_empty()
            && self.control.notices.lock().is_empty()
            && !self.control.overflow.load(Ordering::Acquire)
    }

    /// Like [`Watcher::flush`], but the flush is requested now and the returned future owns
    /// nothing borrowed: callers can keep working (and draining the sink) while it completes,
    /// and several callers can share one flush.
    pub fn start_flush(
        &self,
    ) -> impl std::future::Future<Output = Result<(), FileError>> + Send + 'static {
        self.control.request(&self.control.flushes)
    }

    /// The handle through which the relay's [`FileServer`](crate::FileServer) reports its own
    /// writes (see the module docs); pass it to
    /// [`FileServer::reporting_to`](crate::FileServer::reporting_to).
    pub fn write_notices(&self) -> WriteNotices {
        WriteNotices {
            control: Arc::downgrade(&self.control),
        }
    }

    /// Stops the watcher and waits for its thread to end.
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    fn signal_stop(&self) {
        let _ = self.control.stop.send(true);
        self.control.wake();
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.signal_stop();
    }
}
/// What the watcher last reported for a file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    hash: ContentHash,
    stamp: Stamp,
    /// When the hash was read (an entry is only persisted once settled, see [`HashCache`]).
    read_at: SystemTime,
}

struct Worker {
    jail: Jail,
    client_root: ClientPath,
    filter: FileFilter,
    config: WatcherConfig,
    sink: mpsc::Sender<FileChanged>,
    runtime: tokio::runtime::Handle,
    stop: watch::Receiver<bool>,
    control: Arc<Control>,
    events: Events,
    known: HashMap<RelPath, Known>,
    /// Paths the relay's file server wrote since their last check: reported at the next check
    /// even when they look unchanged (see the module docs).
    owed: HashSet<RelPath>,
    /// During a flush that re-checks recent files only: directories a reported file vanished
    /// from, re-listed (one level) before the flush completes, so a file moved within its
    /// directory is found even when `notify` has not delivered the move yet.
    vanished_from: Option<BTreeSet<RelPath>>,
    texts: ContentCache,
    hot: HashMap<RelPath, Instant>,
    pending: BTreeSet<RelPath>,
    first_pending: Option<Instant>,
    last_event: Instant,
    next_poll: Option<Instant>,
    sink_closed: bool,
    hash_cache: HashCache,
    /// How long after its last change a file's hash may be persisted.
    settling: Settling,
    /// When to re-read the files whose hashes were too fresh to persist, and save again.
    resave_at: Option<Instant>,
    /// Fresh files being read again (see [`Worker::resettle_some`]).
    resettle: Vec<RelPath>,
    /// Text files whose hash came from the cache: read in small batches while idle so later
    /// edits travel as deltas.
    unwarmed: Vec<RelPath>,
    /// The index file of the root's git repository, once found (see `git_index.rs`).
    git_index: Option<PathBuf>,
    /// The index changed since the tracked set was last read.
    index_changed: bool,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").finish_non_exhaustive()
    }
}
