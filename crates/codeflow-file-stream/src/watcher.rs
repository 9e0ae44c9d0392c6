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
//!   inside partial directories (`node_modules`): excluded trees cost no watches.
//! - **Polling fallback**: every [`WatcherConfig::poll_interval`] the whole tree is re-stat'ed,
//!   catching anything `notify` missed (network file systems, watch limits, queue overflows);
//!   if `notify` cannot start at all, polling alone keeps the mirror fresh.
//! - **Back-pressure policy**: the sink is a bounded channel; when it is full the watcher
//!   waits (it never drops a change). Meanwhile raw events keep arriving on a bounded queue;
//!   if that overflows, or more than [`WatcherConfig::max_pending`] paths are pending, the
//!   watcher falls back to a full re-stat of the tree, which loses nothing because it compares
//!   with the last reported state.
//! - **Read-your-writes**: [`Watcher::flush`] returns once every change up to the call has been
//!   handed to the sink: it drains the events `notify` delivered, re-checks recently touched
//!   files (and, for trees of up to [`WatcherConfig::flush_full_scan_below`] files, every
//!   file), and emits what differs.
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
use crate::delta;
use crate::error::FileError;
use crate::filter::{ExcludeConfig, FileFilter};
use crate::hash_cache::{HashCache, Stamp};
use crate::jail::Jail;
use crate::limits::Limits;
use crate::manifest::{Manifest, mtime_ms, walk};
use crate::paths::{ClientPath, RelPath};
use crate::protocol::{ChangeType, ContentHash, FileChanged, ManifestEntry, encode_content};
use crate::read_many::{Read, read_many};

/// Tuning of a [`Watcher`].
#[derive(Debug, Clone)]
pub struct WatcherConfig {
    pub excludes: ExcludeConfig,
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
    /// Trees with at most this many files are fully re-stat'ed by every flush (exact).
    pub flush_full_scan_below: usize,
    /// Directory of the persisted hash cache (`None`: hash every file at every start). A
    /// restart on an unchanged tree then costs a stat per file instead of a read and a hash.
    pub hash_cache_dir: Option<PathBuf>,
    /// How much older than the read a file's mtime and ctime must be before its hash is
    /// persisted (covers coarse file-system timestamps; see the `hash_cache` module).
    pub hash_cache_margin: Duration,
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
            flush_full_scan_below: 1000,
            hash_cache_dir: None,
            hash_cache_margin: Duration::from_secs(2),
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

/// What the relay's own file server did to one path.
#[derive(Debug)]
struct Notice {
    rel: RelPath,
    now: Noticed,
}

#[derive(Debug)]
enum Noticed {
    /// Written with this content; the server's write-back records it in the mirror.
    Holds(bytes::Bytes),
    /// Deleted (or renamed away); the server's write-back removes it from the mirror.
    Absent,
    /// Changed in a way the server may not know exactly (a failed operation): re-report it.
    Unknown,
}

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
        let root: PathBuf = root.into();
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
        });
        let (ready_tx, ready_rx) = oneshot::channel();
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
                match worker {
                    Ok((mut worker, manifest)) => {
                        if ready_tx.send(Ok(manifest)).is_ok() {
                            worker.run(&rx);
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| FileError::Io(format!("cannot start the watcher thread: {e}")))?;
        let manifest = ready_rx
            .await
            .map_err(|_| FileError::Io("the watcher thread ended during start-up".into()))??;
        Ok(Watcher {
            control,
            thread: Some(thread),
            manifest,
        })
    }

    /// The tree as scanned at start: send it as `server/syncManifest`. Every change after it
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

/// Events that cannot mean a content change: opens, reads, closes without writing.
fn is_read_only_access(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(
        kind,
        notify::EventKind::Access(
            AccessKind::Open(_)
                | AccessKind::Read
                | AccessKind::Close(AccessMode::Read | AccessMode::Execute | AccessMode::Any)
        )
    )
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// Where a [`FileServer`](crate::FileServer) reports the writes it makes, so the [`Watcher`] of
/// the same root keeps what it reported in line with what the server's write-back put in the
/// mirror. Cheap to clone; once the watcher is gone, notices are dropped.
#[derive(Debug, Clone)]
pub struct WriteNotices {
    control: std::sync::Weak<Control>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").finish_non_exhaustive()
    }
}

impl WriteNotices {
    /// `rel` now holds `bytes`, written by the file server.
    pub(crate) fn wrote(&self, rel: &RelPath, bytes: &[u8]) {
        self.push(rel, Noticed::Holds(bytes::Bytes::copy_from_slice(bytes)));
    }

    /// `rel` was deleted (or renamed away) by the file server.
    pub(crate) fn removed(&self, rel: &RelPath) {
        self.push(rel, Noticed::Absent);
    }

    /// `rel` may have been changed by a file server operation that failed half way.
    pub(crate) fn touched(&self, rel: &RelPath) {
        self.push(rel, Noticed::Unknown);
    }

    fn push(&self, rel: &RelPath, now: Noticed) {
        if let Some(control) = self.control.upgrade() {
            control.notices.lock().push(Notice {
                rel: rel.clone(),
                now,
            });
            control.wake();
        }
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
    notify: Option<notify::RecommendedWatcher>,
    watched: HashSet<PathBuf>,
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
    /// When to re-read the files whose hashes were too fresh to persist, and save again.
    resave_at: Option<Instant>,
    /// Fresh files being read again (see [`Worker::resettle_some`]).
    resettle: Vec<RelPath>,
    /// Text files whose hash came from the cache: read in small batches while idle so later
    /// edits travel as deltas.
    unwarmed: Vec<RelPath>,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    fn new(
        root: PathBuf,
        client_root: ClientPath,
        mut config: WatcherConfig,
        sink: mpsc::Sender<FileChanged>,
        runtime: tokio::runtime::Handle,
        stop: watch::Receiver<bool>,
        control: Arc<Control>,
        events: SyncSender<Msg>,
    ) -> Result<(Worker, Manifest), FileError> {
        let jail = Jail::new(&root)?;
        let filter = FileFilter::new(jail.canonical_root(), config.excludes.clone())?;
        let overflow_control = Arc::clone(&control);
        let notify = match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let msg = match res {
                Ok(ev) if ev.need_rescan() => Msg::Rescan,
                // inotify reports every open and read-only close. The relay's own reads (the
                // server fetching files during a sync) would otherwise wake the worker for
                // each file it serves; only a close after writing says content changed.
                Ok(ev) if is_read_only_access(&ev.kind) => return,
                Ok(ev) => Msg::Paths(ev.paths),
                Err(_) => Msg::Rescan,
            };
            if let Err(TrySendError::Full(_)) = events.try_send(msg) {
                overflow_control.overflow.store(true, Ordering::Release);
            }
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "file events unavailable; polling only");
                config.poll_interval = config.poll_interval.or(Some(Duration::from_secs(2)));
                None
            }
        };
        let next_poll = config.poll_interval.map(|d| Instant::now() + d);
        let mut worker = Worker {
            texts: ContentCache::new(config.delta_cache_bytes),
            jail,
            client_root,
            filter,
            config,
            sink,
            runtime,
            stop,
            control,
            notify,
            watched: HashSet::new(),
            known: HashMap::new(),
            owed: HashSet::new(),
            vanished_from: None,
            hot: HashMap::new(),
            pending: BTreeSet::new(),
            first_pending: None,
            last_event: Instant::now(),
            next_poll,
            sink_closed: false,
            hash_cache: HashCache::default(),
            resave_at: None,
            resettle: Vec::new(),
            unwarmed: Vec::new(),
        };
        let manifest = worker.baseline()?;
        Ok((worker, manifest))
    }

    /// Walks the tree once: each admitted directory is watched before it is listed, so a
    /// change during the scan is seen by the scan, the watch, or both; each admitted file is
    /// hashed (or its hash taken from the cache when its stamp is unchanged).
    fn baseline(&mut self) -> Result<Manifest, FileError> {
        let notify = &mut self.notify;
        let watched = &mut self.watched;
        let mut manifest = Manifest::default();
        let mut total = 0u64;
        let limits = self.config.limits;
        let mut known = HashMap::new();
        let texts = &mut self.texts;
        let cache_file = self
            .config
            .hash_cache_dir
            .as_deref()
            .map(|dir| HashCache::file_in(dir, self.jail.canonical_root()));
        let cache = HashCache::load(cache_file, self.jail.canonical_root());
        let unwarmed = &mut self.unwarmed;
        let started = SystemTime::now();
        // Files the cache cannot vouch for: read and hashed after the walk, on a few threads.
        let mut to_read: Vec<(RelPath, Stamp, u64)> = Vec::new();
        let mut to_read_abs: Vec<PathBuf> = Vec::new();
        walk(
            &self.jail,
            &self.filter,
            &RelPath::root(),
            &mut |_, abs, in_partial| {
                if !in_partial {
                    watch_dir(notify, watched, abs);
                }
            },
            &mut |f| {
                let size = f.meta.len();
                if limits.check_file_size(f.rel.as_str(), size).is_err() {
                    tracing::warn!(path = %f.rel, size, "file over the size limit is not streamed");
                    return Ok(());
                }
                total += size;
                limits.check_project(manifest.len() as u64 + to_read.len() as u64 + 1, total)?;
                let stamp = Stamp::of(&f.meta);
                let mtime = mtime_ms(&f.meta);
                let Some(hash) = cache.lookup(&f.rel, &stamp) else {
                    to_read.push((f.rel, stamp, mtime));
                    to_read_abs.push(f.abs.to_path_buf());
                    return Ok(());
                };
                unwarmed.push(f.rel.clone());
                manifest.insert(
                    f.rel.clone(),
                    ManifestEntry {
                        path: f.rel.as_str().to_owned(),
                        size,
                        mtime,
                        hash: hash.clone(),
                    },
                );
                known.insert(
                    f.rel,
                    Known {
                        hash,
                        stamp,
                        read_at: started,
                    },
                );
                Ok(())
            },
        )?;
        read_many(&to_read_abs, |i, read| {
            // Vanished since the walk: its event follows.
            let Some(Read { bytes, hash }) = read else {
                return Ok(());
            };
            let (rel, stamp, mtime) = &to_read[i];
            let size = bytes.len() as u64;
            if limits.check_file_size(rel.as_str(), size).is_err() {
                tracing::warn!(path = %rel, size, "file over the size limit is not streamed");
                return Ok(());
            }
            if std::str::from_utf8(&bytes).is_ok() {
                texts.insert(rel.clone(), bytes.into());
            }
            manifest.insert(
                rel.clone(),
                ManifestEntry {
                    path: rel.as_str().to_owned(),
                    size,
                    mtime: *mtime,
                    hash: hash.clone(),
                },
            );
            known.insert(
                rel.clone(),
                Known {
                    hash,
                    stamp: *stamp,
                    read_at: started,
                },
            );
            Ok::<(), FileError>(())
        })?;
        limits.check_project(manifest.len() as u64, manifest.total_bytes())?;
        self.hash_cache = cache;
        self.known = known;
        Ok(manifest)
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow() || self.sink_closed
    }

    fn run(&mut self, rx: &Receiver<Msg>) {
        self.save_hash_cache(true);
        while !self.stopped() {
            let now = Instant::now();
            // A flush or snapshot request may be waiting whose wake-up was drained with other
            // messages (flushes and early checks empty the queue): never sleep over it.
            let requested = !self.control.flushes.lock().is_empty()
                || !self.control.snapshots.lock().is_empty();
            let timeout = if requested {
                Duration::ZERO
            } else if let Some(first) = self.first_pending {
                let settle_at = self.last_event + self.config.settle;
                let latest = first + self.config.max_delay;
                settle_at.min(latest).saturating_duration_since(now)
            } else if !self.unwarmed.is_empty() || !self.resettle.is_empty() {
                Duration::ZERO
            } else {
                let poll = self.next_poll.unwrap_or(now + Duration::from_secs(3600));
                self.resave_at
                    .map_or(poll, |t| t.min(poll))
                    .saturating_duration_since(now)
            };
            match rx.recv_timeout(timeout) {
                Ok(msg) => self.take(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.take_notices();
            if self.stopped() {
                break;
            }
            let flushes = std::mem::take(&mut *self.control.flushes.lock());
            let snapshots = std::mem::take(&mut *self.control.snapshots.lock());
            if !flushes.is_empty() || !snapshots.is_empty() {
                self.flush(rx);
                for f in flushes {
                    let _ = f.send(());
                }
                if !snapshots.is_empty() {
                    let manifest = self.snapshot();
                    for s in snapshots {
                        let _ = s.send(manifest.clone());
                    }
                }
                continue;
            }
            let now = Instant::now();
            if self.control.overflow.swap(false, Ordering::AcqRel)
                || self.next_poll.is_some_and(|t| now >= t)
            {
                self.full_rescan();
            }
            if let Some(first) = self.first_pending
                && (now >= self.last_event + self.config.settle
                    || now >= first + self.config.max_delay)
            {
                self.process_pending();
            }
            if self.first_pending.is_none() {
                if self.resave_at.is_some_and(|t| now >= t) {
                    self.start_resettle();
                }
                self.resettle_some();
                self.warm_some_texts();
            }
        }
        if self.hash_cache.enabled() {
            self.save_hash_cache(false);
        }
    }

    /// Persists the hashes that are settled (see [`HashCache`]). After the baseline
    /// (`settle_later`), files too fresh to persist are read again once they have aged
    /// ([`Worker::start_resettle`]); files changed later are persisted at the next start's
    /// baseline instead (a restart re-hashes only those).
    fn save_hash_cache(&mut self, settle_later: bool) {
        if !self.hash_cache.enabled() {
            return;
        }
        let margin = self.config.hash_cache_margin;
        let mut fresh = false;
        let settled = self.known.iter().filter_map(|(rel, k)| {
            if k.stamp.settled_before(k.read_at, margin) {
                Some((rel, k.stamp, &k.hash))
            } else {
                fresh |= k.stamp != Stamp::UNKNOWN;
                None
            }
        });
        self.hash_cache.save(settled);
        if settle_later && fresh {
            self.resave_at = Some(Instant::now() + margin + Duration::from_millis(100));
        }
    }

    /// Queues the files whose hash was read too soon after their last change to persist it:
    /// [`Worker::resettle_some`] reads them again, a few per idle turn, then saves.
    fn start_resettle(&mut self) {
        self.resave_at = None;
        let margin = self.config.hash_cache_margin;
        self.resettle = self
            .known
            .iter()
            .filter(|(_, k)| {
                k.stamp != Stamp::UNKNOWN && !k.stamp.settled_before(k.read_at, margin)
            })
            .map(|(rel, _)| rel.clone())
            .collect();
    }

    /// Re-reads a batch of queued fresh files; where a file is still as recorded, the new read
    /// settles its hash. Saves the cache once the queue is empty. Small batches keep the
    /// watcher's own work (events, flushes) from waiting behind a whole tree's reads.
    fn resettle_some(&mut self) {
        if self.resettle.is_empty() {
            return;
        }
        let mut bytes_read = 0u64;
        for _ in 0..IDLE_BATCH_FILES {
            if bytes_read >= IDLE_BATCH_BYTES {
                break;
            }
            let Some(rel) = self.resettle.pop() else {
                break;
            };
            let read_at = SystemTime::now();
            let Some((stamp, hash, bytes)) = self.read_as_known(&rel) else {
                continue;
            };
            bytes_read += bytes.len() as u64;
            if let Some(k) = self.known.get_mut(&rel)
                && k.stamp == stamp
            {
                if k.hash == hash {
                    k.read_at = read_at;
                } else {
                    // Changed within one timestamp tick of the last read: check it properly.
                    k.stamp = Stamp::UNKNOWN;
                    self.pending.insert(rel);
                    self.first_pending.get_or_insert_with(Instant::now);
                }
            }
        }
        if self.resettle.is_empty() {
            self.save_hash_cache(false);
        }
    }

    /// The tree as reported so far (the state the server's mirror is brought to by the
    /// changes already emitted), as a manifest.
    fn snapshot(&self) -> Manifest {
        let mut manifest = Manifest::default();
        for (rel, k) in &self.known {
            let (size, mtime) = match k.stamp.size_and_mtime_ms() {
                Some(known) => known,
                // Written by the relay's own file server: stat it.
                None => match self.jail.resolve(rel).and_then(|abs| {
                    std::fs::metadata(&abs).map_err(|e| FileError::io(rel.as_str(), &e))
                }) {
                    Ok(meta) => (meta.len(), mtime_ms(&meta)),
                    Err(_) => continue,
                },
            };
            manifest.insert(
                rel.clone(),
                ManifestEntry {
                    path: rel.as_str().to_owned(),
                    size,
                    mtime,
                    hash: k.hash.clone(),
                },
            );
        }
        manifest
    }

    /// Reads a few of the files whose hash came from the cache into the delta texts, while
    /// there is room; a file no longer as recorded is left to the normal checks.
    fn warm_some_texts(&mut self) {
        let mut bytes_read = 0u64;
        for _ in 0..IDLE_BATCH_FILES {
            if bytes_read >= IDLE_BATCH_BYTES || !self.texts.has_room() {
                self.unwarmed.clear();
                return;
            }
            let Some(rel) = self.unwarmed.pop() else {
                return;
            };
            let Some((stamp, hash, bytes)) = self.read_as_known(&rel) else {
                continue;
            };
            bytes_read += bytes.len() as u64;
            if self
                .known
                .get(&rel)
                .is_some_and(|k| k.stamp == stamp && k.hash == hash)
                && std::str::from_utf8(&bytes).is_ok()
            {
                self.texts.insert(rel, bytes.into());
            }
        }
    }

    /// Stats and reads a file: its stamp, hash and bytes (`None` if it cannot be read).
    fn read_as_known(&self, rel: &RelPath) -> Option<(Stamp, ContentHash, Vec<u8>)> {
        let abs = self.jail.resolve(rel).ok()?;
        let meta = std::fs::metadata(&abs).ok()?;
        let bytes = std::fs::read(&abs).ok()?;
        Some((Stamp::of(&meta), ContentHash::of(&bytes), bytes))
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Wake => {}
            Msg::Rescan => self.control.overflow.store(true, Ordering::Release),
            Msg::Paths(paths) => {
                self.last_event = Instant::now();
                for p in paths {
                    let Ok(rest) = p.strip_prefix(self.jail.canonical_root()) else {
                        continue;
                    };
                    let Some(rest) = rest.to_str() else { continue };
                    let Ok(rel) = RelPath::parse(rest) else {
                        continue;
                    };
                    if rel.is_root() {
                        continue;
                    }
                    self.pending.insert(rel);
                }
                if !self.pending.is_empty() && self.first_pending.is_none() {
                    self.first_pending = Some(self.last_event);
                }
                if self.pending.len() > self.config.max_pending {
                    self.pending.clear();
                    self.first_pending = None;
                    self.control.overflow.store(true, Ordering::Release);
                }
            }
        }
    }

    /// Applies the file server's notices: the state it wrote becomes the state the server
    /// holds, and the path is owed a report at its next check.
    fn take_notices(&mut self) {
        let notices = std::mem::take(&mut *self.control.notices.lock());
        if notices.is_empty() {
            return;
        }
        let now = Instant::now();
        for Notice { rel, now: state } in notices {
            if rel.is_root() || !self.filter.is_included(&rel, false) {
                // Never streamed, so never in the mirror through the watcher either.
                continue;
            }
            match state {
                Noticed::Holds(bytes) => {
                    let hash = ContentHash::of(&bytes);
                    if std::str::from_utf8(&bytes).is_ok() {
                        self.texts.insert(rel.clone(), bytes);
                    } else {
                        self.texts.remove(&rel);
                    }
                    self.known.insert(
                        rel.clone(),
                        Known {
                            hash,
                            stamp: Stamp::UNKNOWN,
                            read_at: SystemTime::now(),
                        },
                    );
                }
                Noticed::Absent => {
                    self.known.remove(&rel);
                    self.texts.remove(&rel);
                }
                Noticed::Unknown => {}
            }
            self.owed.insert(rel.clone());
            self.hot.insert(rel.clone(), now);
            self.pending.insert(rel);
        }
        if self.first_pending.is_none() {
            self.first_pending = Some(now);
        }
        self.last_event = now;
    }

    fn flush(&mut self, rx: &Receiver<Msg>) {
        while let Ok(msg) = rx.try_recv() {
            self.take(msg);
        }
        self.take_notices();
        if self.control.overflow.swap(false, Ordering::AcqRel)
            || self.known.len() <= self.config.flush_full_scan_below
        {
            self.full_rescan();
        } else {
            let window = self.config.hot_window;
            self.hot.retain(|_, t| t.elapsed() < window);
            let hot: Vec<RelPath> = self.hot.keys().cloned().collect();
            self.pending.extend(hot);
            self.vanished_from = Some(BTreeSet::new());
        }
        self.process_pending();
        if let Some(dirs) = self.vanished_from.take() {
            for dir in dirs {
                self.relist_dir(&dir);
            }
        }
    }

    /// Checks the files directly in `dir` that are new or changed since last reported.
    fn relist_dir(&mut self, dir: &RelPath) {
        let Ok(abs) = self.jail.resolve(dir) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&abs) else {
            return;
        };
        let mut candidates = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(rel) = RelPath::parse(dir.join_name(&name).as_str()) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file()
                && self.filter.is_included(&rel, false)
                && self
                    .known
                    .get(&rel)
                    .is_none_or(|k| k.stamp != Stamp::of(&meta))
            {
                candidates.push(rel);
            }
        }
        for rel in candidates {
            self.check_file(&rel);
        }
    }

    fn process_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.first_pending = None;
        for rel in pending {
            if self.stopped() {
                return;
            }
            self.check_path(&rel);
        }
    }

    fn full_rescan(&mut self) {
        self.filter.reload_gitignores();
        self.pending.clear();
        self.first_pending = None;
        self.rescan_dir(&RelPath::root());
        self.next_poll = self.config.poll_interval.map(|d| Instant::now() + d);
    }

    /// Re-stats a directory tree: new or changed files are checked, vanished ones deleted.
    fn rescan_dir(&mut self, dir: &RelPath) {
        let mut seen: Vec<(RelPath, Stamp)> = Vec::new();
        // Each directory is watched before it is listed: a file created just after the
        // listing then has an event (watching after listing lost such files until the next
        // poll).
        let (notify, watched) = (&mut self.notify, &mut self.watched);
        let result = walk(
            &self.jail,
            &self.filter,
            dir,
            &mut |_, abs, in_partial| {
                if !in_partial {
                    watch_dir(notify, watched, abs);
                }
            },
            &mut |f| {
                seen.push((f.rel, Stamp::of(&f.meta)));
                Ok(())
            },
        );
        if let Err(e) = result {
            tracing::debug!(dir = %dir, error = %e, "rescan failed");
        }
        let seen_set: HashSet<&RelPath> = seen.iter().map(|(r, _)| r).collect();
        let gone: Vec<RelPath> = self
            .known
            .keys()
            .chain(self.owed.iter())
            .filter(|k| k.starts_with(dir) && !seen_set.contains(k))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for (rel, stamp) in &seen {
            if self.owed.contains(rel) || self.known.get(rel).is_none_or(|k| k.stamp != *stamp) {
                self.check_file(rel);
            }
        }
        for rel in gone {
            self.emit_deleted(&rel);
        }
    }

    /// Brings the reported state of one path (file, directory or nothing) up to date.
    fn check_path(&mut self, rel: &RelPath) {
        if rel.components().last() == Some(".gitignore") {
            self.filter.reload_gitignores();
            self.control.overflow.store(true, Ordering::Release);
        }
        let Ok(abs) = self.jail.resolve(rel) else {
            self.emit_deleted_under(rel);
            return;
        };
        match std::fs::metadata(&abs) {
            Ok(m) if m.is_dir() => {
                if self.filter.is_included(rel, true) {
                    self.rescan_dir(rel);
                } else {
                    self.emit_deleted_under(rel);
                }
            }
            Ok(_) => self.check_file(rel),
            Err(_) => self.emit_deleted_under(rel),
        }
    }

    fn emit_deleted_under(&mut self, rel: &RelPath) {
        let gone: Vec<RelPath> = self
            .known
            .keys()
            .chain(self.owed.iter())
            .filter(|k| k.starts_with(rel))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for k in gone {
            self.emit_deleted(&k);
        }
    }

    fn check_file(&mut self, rel: &RelPath) {
        if !self.filter.is_included(rel, false) {
            if self.known.contains_key(rel) || self.owed.contains(rel) {
                self.emit_deleted(rel);
            }
            return;
        }
        // Taken before the stat and read, so it is never later than the read.
        let read_at = SystemTime::now();
        let read = self.jail.resolve(rel).and_then(|abs| {
            let meta = std::fs::metadata(&abs).map_err(|e| FileError::io(rel.as_str(), &e))?;
            if !meta.is_file() {
                return Err(FileError::NotAFile(rel.to_string()));
            }
            self.config
                .limits
                .check_file_size(rel.as_str(), meta.len())?;
            let bytes = std::fs::read(&abs).map_err(|e| FileError::io(rel.as_str(), &e))?;
            Ok((meta, bytes))
        });
        let (meta, bytes) = match read {
            Ok(r) => r,
            Err(e) => {
                if !matches!(e, FileError::NotFound(_)) {
                    tracing::debug!(path = %rel, error = %e, "file not streamed");
                }
                if self.known.contains_key(rel) || self.owed.contains(rel) {
                    self.emit_deleted(rel);
                }
                return;
            }
        };
        let stamp = Stamp::of(&meta);
        let hash = ContentHash::of(&bytes);
        let previous = self.known.get(rel).cloned();
        let owed = self.owed.remove(rel);
        if let Some(prev) = &previous
            && prev.hash == hash
        {
            self.known.insert(
                rel.clone(),
                Known {
                    hash: hash.clone(),
                    stamp,
                    read_at,
                },
            );
            if owed {
                // As the file server wrote it: confirm by hash (the mirror recorded the
                // write-back, or fetches the file if it did not).
                self.emit(FileChanged {
                    change_type: ChangeType::Changed,
                    hash: Some(hash),
                    size: Some(bytes.len() as u64),
                    mtime: Some(mtime_ms(&meta)),
                    ..FileChanged::deleted(self.client_root.join(rel).as_str().to_owned())
                });
            }
            return;
        }
        let mut event = FileChanged {
            change_type: if previous.is_some() {
                ChangeType::Changed
            } else {
                ChangeType::Created
            },
            hash: Some(hash.clone()),
            size: Some(bytes.len() as u64),
            mtime: Some(mtime_ms(&meta)),
            ..FileChanged::deleted(self.client_root.join(rel).as_str().to_owned())
        };
        let text = std::str::from_utf8(&bytes).ok();
        // `texts` holds, for a path, exactly the content `known` has the hash of (both are
        // updated together), so the base needs no re-hashing. Were that ever broken, the
        // server's result-hash check would refuse the delta and read the file whole.
        let base = previous
            .as_ref()
            .and_then(|p| Some((self.texts.get(rel)?, p.hash.clone())));
        let mut sent_delta = false;
        if let (Some(new), Some((old, base_hash))) = (text, base)
            && let Ok(old) = std::str::from_utf8(&old)
        {
            let edits = delta::compute(old, new);
            if delta::worth_sending(&edits, new.len()) {
                event.base_hash = Some(base_hash);
                event.edits = Some(edits);
                sent_delta = true;
            }
        }
        if !sent_delta && bytes.len() as u64 <= self.config.inline_limit {
            let (content, encoding) = encode_content(&bytes);
            event.content = Some(content);
            event.encoding = Some(encoding);
        }
        if text.is_some() {
            self.texts.insert(rel.clone(), bytes.into());
        } else {
            self.texts.remove(rel);
        }
        self.known.insert(
            rel.clone(),
            Known {
                hash,
                stamp,
                read_at,
            },
        );
        self.hot.insert(rel.clone(), Instant::now());
        self.emit(event);
    }

    fn emit_deleted(&mut self, rel: &RelPath) {
        let owed = self.owed.remove(rel);
        if self.known.remove(rel).is_none() && !owed {
            return;
        }
        self.texts.remove(rel);
        self.hot.remove(rel);
        if let Some(dirs) = self.vanished_from.as_mut() {
            let parts: Vec<&str> = rel.components().collect();
            if let Ok(parent) = RelPath::from_parts(&parts[..parts.len().saturating_sub(1)]) {
                dirs.insert(parent);
            }
        }
        self.emit(FileChanged::deleted(
            self.client_root.join(rel).as_str().to_owned(),
        ));
    }

    /// Hands one message to the sink, waiting while it is full (never dropping), unless the
    /// watcher is stopped meanwhile.
    fn emit(&mut self, event: FileChanged) {
        let sink = self.sink.clone();
        let mut stop = self.stop.clone();
        let sent = self.runtime.block_on(async move {
            tokio::select! {
                r = sink.send(event) => r.is_ok(),
                _ = stop.wait_for(|s| *s) => false,
            }
        });
        if !sent {
            self.sink_closed = true;
        }
    }
}

/// Adds a non-recursive watch on `abs` unless it has one.
fn watch_dir(
    notify: &mut Option<notify::RecommendedWatcher>,
    watched: &mut HashSet<PathBuf>,
    abs: &Path,
) {
    if let Some(w) = notify.as_mut()
        && !watched.contains(abs)
    {
        match w.watch(abs, RecursiveMode::NonRecursive) {
            Ok(()) => {
                watched.insert(abs.to_path_buf());
            }
            Err(e) => {
                tracing::debug!(dir = %abs.display(), error = %e, "cannot watch directory; polling covers it")
            }
        }
    }
}
