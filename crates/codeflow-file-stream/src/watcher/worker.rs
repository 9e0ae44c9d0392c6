//! The watcher thread: its start (the baseline scan and hash cache), its loop, and its idle
//! work (settling fresh hashes, warming delta texts).

use super::git_index::IndexReading;
use super::*;

/// A file the baseline's walk left to the read pass.
pub(super) struct ToRead {
    rel: RelPath,
    stamp: Stamp,
    mtime: u64,
    mode: u32,
    size: u64,
}

/// What the baseline's walk found, for its read pass.
pub(super) struct BaselineWalk {
    manifest: Manifest,
    known: HashMap<RelPath, Known>,
    cache: HashCache,
    started: SystemTime,
    to_read: Vec<ToRead>,
    to_read_abs: Vec<PathBuf>,
    /// Files whose hash came from the cache: path, size, mode.
    cached: Vec<(RelPath, u64, u32)>,
}

/// Most threads the baseline's walk lists directories on (it uses no more than the machine
/// has cores).
const WALK_THREADS: usize = 4;

/// A file's Unix permission bits.
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    meta.permissions().mode() & 0o7777
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        root: PathBuf,
        client_root: ClientPath,
        mut config: WatcherConfig,
        sink: mpsc::Sender<FileChanged>,
        runtime: tokio::runtime::Handle,
        stop: watch::Receiver<bool>,
        control: Arc<Control>,
        events: SyncSender<Msg>,
    ) -> Result<Worker, FileError> {
        let jail = Jail::new(&root)?;
        let filter = FileFilter::new(jail.canonical_root(), config.excludes.clone())?;
        let events = Events::start(config.portable_events, events, &control);
        if events.is_none() {
            config.poll_interval = config.poll_interval.or(Some(Duration::from_secs(2)));
        }
        let next_poll = config.poll_interval.map(|d| Instant::now() + d);
        let settling = Settling::for_root(
            jail.canonical_root(),
            config.hash_cache_margin,
            config.hash_cache_local_margin,
        );
        if !settling.is_local() {
            // Network and FUSE file systems may change without an event.
            control.quiet.lose_exactness();
        }
        let worker = Worker {
            settling,
            texts: ContentCache::new(config.delta_cache_bytes),
            jail,
            client_root,
            filter,
            config,
            sink,
            runtime,
            stop,
            control,
            events,
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
            git_index: None,
            index_changed: false,
        };
        Ok(worker)
    }

    /// Walks the tree once: each admitted directory is watched before it is listed, so a
    /// change during the scan is seen by the scan, the watch, or both; each admitted file is
    /// hashed (or its hash taken from the cache when its stamp is unchanged).
    pub(super) fn baseline(&mut self) -> Result<Manifest, FileError> {
        let walked = self.walk_baseline()?;
        self.read_baseline(walked, None)
    }

    /// The baseline's walk: stats every admitted file, watches every admitted directory, and
    /// takes what the hash cache vouches for; the files left to read come back. git's index is
    /// read meanwhile (see `git_index.rs`); the walk lists directories on a few threads.
    pub(super) fn walk_baseline(&mut self) -> Result<BaselineWalk, FileError> {
        let reading = self.read_git_index_behind();
        let (events, control) = (&mut self.events, &self.control);
        let mut manifest = Manifest::default();
        let mut total = 0u64;
        let limits = self.config.limits;
        let mut known = HashMap::new();
        let cache_file = self
            .config
            .hash_cache_dir
            .as_deref()
            .map(|dir| HashCache::file_in(dir, self.jail.canonical_root()));
        let cache = HashCache::load(cache_file, self.jail.canonical_root());
        let unwarmed = &mut self.unwarmed;
        let started = SystemTime::now();
        // Files the cache cannot vouch for: read and hashed after the walk, on a few threads.
        let mut to_read: Vec<ToRead> = Vec::new();
        let mut to_read_abs: Vec<PathBuf> = Vec::new();
        let mut cached = Vec::new();
        let mut on_dir = |_: &RelPath, abs: &Path, in_partial: bool| {
            if !in_partial {
                events.watch(abs, control);
            }
        };
        let mut on_file = |f: WalkedFile| -> Result<(), FileError> {
            let size = f.meta.len();
            if limits.check_file_size(f.rel.as_str(), size).is_err() {
                tracing::warn!(path = %f.rel, size, "file over the size limit is not streamed");
                return Ok(());
            }
            total += size;
            limits.check_project(manifest.len() as u64 + to_read.len() as u64 + 1, total)?;
            let stamp = Stamp::of(&f.meta);
            let mtime = mtime_ms(&f.meta);
            let mode = mode_of(&f.meta);
            let Some(hash) = cache.lookup(&f.rel, &stamp) else {
                to_read.push(ToRead {
                    rel: f.rel,
                    stamp,
                    mtime,
                    mode,
                    size,
                });
                to_read_abs.push(f.abs);
                return Ok(());
            };
            unwarmed.push(f.rel.clone());
            cached.push((f.rel.clone(), size, mode));
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
        };
        let left_out = walk_parallel(
            &self.jail,
            &self.filter,
            &RelPath::root(),
            std::thread::available_parallelism().map_or(1, |n| n.get().min(WALK_THREADS)),
            &mut on_dir,
            &mut on_file,
        )?;
        // git's index, read meanwhile: the files it tracks are streamed whatever `.gitignore`
        // says, so what the walk left out may be in after all (rarely: a tracked file that a
        // pattern names).
        let mut index = None;
        if let Some(read) = reading.and_then(IndexReading::finish) {
            index = read.index;
            if self.filter.set_tracked(read.tracked) {
                for (rel, is_dir) in &left_out {
                    if self.filter.is_included(rel, *is_dir) {
                        walk_one(
                            &self.jail,
                            &self.filter,
                            rel,
                            *is_dir,
                            &mut on_dir,
                            &mut on_file,
                        )?;
                    }
                }
            }
        }
        self.watch_git_index(index);
        Ok(BaselineWalk {
            manifest,
            known,
            cache,
            started,
            to_read,
            to_read_abs,
            cached,
        })
    }

    /// What the walk found, in figures.
    pub(super) fn walked(walk: &BaselineWalk) -> Walked {
        Walked {
            files: (walk.manifest.len() + walk.to_read.len()) as u64,
            bytes: walk.manifest.total_bytes() + walk.to_read.iter().map(|r| r.size).sum::<u64>(),
            to_read_files: walk.to_read.len() as u64,
            to_read_bytes: walk.to_read.iter().map(|r| r.size).sum(),
        }
    }

    /// The baseline's read-and-hash pass over the files the walk left to read (on a few
    /// threads); with `feed`, each file goes to it as it is read (and the cached ones first,
    /// without bytes).
    pub(super) fn read_baseline(
        &mut self,
        walk: BaselineWalk,
        feed: Option<&Feed>,
    ) -> Result<Manifest, FileError> {
        let BaselineWalk {
            mut manifest,
            mut known,
            cache,
            started,
            to_read,
            to_read_abs,
            cached,
        } = walk;
        let limits = self.config.limits;
        let texts = &mut self.texts;
        if let Some(feed) = feed {
            for (rel, size, mode) in cached {
                let Some(hash) = manifest.get(&rel).map(|e| e.hash.clone()) else {
                    continue;
                };
                feed.offer(Scanned {
                    rel,
                    size,
                    mode,
                    hash,
                    bytes: None,
                    frame: None,
                });
            }
        }
        read_many(&to_read_abs, |i, read| {
            // Vanished since the walk: its event follows.
            let Some(Read {
                bytes,
                framed,
                hash,
                is_text,
            }) = read
            else {
                return Ok(());
            };
            let ToRead {
                rel,
                stamp,
                mtime,
                mode,
                ..
            } = &to_read[i];
            let size = bytes.len() as u64;
            if limits.check_file_size(rel.as_str(), size).is_err() {
                tracing::warn!(path = %rel, size, "file over the size limit is not streamed");
                return Ok(());
            }
            if is_text {
                texts.insert(rel.clone(), bytes.clone());
            }
            if let Some(feed) = feed {
                let one_chunk = size > 0 && size <= crate::transfer::CHUNK_BYTES as u64;
                feed.offer(Scanned {
                    rel: rel.clone(),
                    size,
                    mode: *mode,
                    hash: hash.clone(),
                    frame: one_chunk.then_some(framed),
                    bytes: Some(bytes),
                });
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

    pub(super) fn stopped(&self) -> bool {
        *self.stop.borrow() || self.sink_closed
    }

    pub(super) fn run(&mut self, rx: &Receiver<Msg>) {
        self.save_hash_cache(true);
        while !self.stopped() {
            self.settle_quiet(rx);
            let now = Instant::now();
            // A flush or snapshot request may be waiting whose wake-up was drained with other
            // messages (flushes and early checks empty the queue): never sleep over it.
            // A re-stat asked for while handling a path (an edited `.gitignore`) is due now.
            let requested = !self.control.flushes.lock().is_empty()
                || !self.control.snapshots.lock().is_empty()
                || self.control.overflow.load(Ordering::Acquire);
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
                self.read_git_index();
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
    pub(super) fn save_hash_cache(&mut self, settle_later: bool) {
        if !self.hash_cache.enabled() {
            return;
        }
        let settling = self.settling;
        // The longest margin among the fresh files: when all of them will have aged.
        let mut fresh: Option<Duration> = None;
        let settled = self.known.iter().filter_map(|(rel, k)| {
            if settling.settled(&k.stamp, k.read_at) {
                Some((rel, k.stamp, &k.hash))
            } else {
                if k.stamp != Stamp::UNKNOWN {
                    fresh = fresh.max(Some(settling.margin_for(&k.stamp)));
                }
                None
            }
        });
        self.hash_cache.save(settled);
        if settle_later && let Some(margin) = fresh {
            self.resave_at = Some(Instant::now() + margin + Duration::from_millis(100));
        }
    }

    /// Queues the files whose hash was read too soon after their last change to persist it:
    /// [`Worker::resettle_some`] reads them again, a few per idle turn, then saves.
    pub(super) fn start_resettle(&mut self) {
        self.resave_at = None;
        let settling = self.settling;
        self.resettle = self
            .known
            .iter()
            .filter(|(_, k)| k.stamp != Stamp::UNKNOWN && !settling.settled(&k.stamp, k.read_at))
            .map(|(rel, _)| rel.clone())
            .collect();
    }

    /// Re-reads a batch of queued fresh files; where a file is still as recorded, the new read
    /// settles its hash. Saves the cache once the queue is empty. Small batches keep the
    /// watcher's own work (events, flushes) from waiting behind a whole tree's reads.
    pub(super) fn resettle_some(&mut self) {
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
    pub(super) fn snapshot(&self) -> Manifest {
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
    pub(super) fn warm_some_texts(&mut self) {
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
    pub(super) fn read_as_known(&self, rel: &RelPath) -> Option<(Stamp, ContentHash, Vec<u8>)> {
        let abs = self.jail.resolve(rel).ok()?;
        let meta = std::fs::metadata(&abs).ok()?;
        let bytes = std::fs::read(&abs).ok()?;
        Some((Stamp::of(&meta), ContentHash::of(&bytes), bytes))
    }
}
