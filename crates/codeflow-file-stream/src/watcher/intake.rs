//! Intake: raw events and the file server's notices become pending paths; a flush drains them.

use super::*;

/// Longest a flush waits for the reader to take the events the kernel queued before it.
const FLUSH_EVENT_WAIT: Duration = Duration::from_millis(100);

impl Worker {
    pub(super) fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Wake => {}
            Msg::Rescan => self.control.overflow.store(true, Ordering::Release),
            Msg::Paths(paths) => {
                self.last_event = Instant::now();
                for p in paths {
                    if self.git_event(&p) {
                        continue;
                    }
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
                if (!self.pending.is_empty() || self.index_changed) && self.first_pending.is_none()
                {
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
    pub(super) fn take_notices(&mut self) {
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

    pub(super) fn flush(&mut self, rx: &Receiver<Msg>) {
        self.take_queued_events(rx);
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

    /// Takes every raw event queued before now: what the reader handed over and (inotify) what
    /// is still in the kernel's queue or being read, waiting for the reader for at most
    /// [`FLUSH_EVENT_WAIT`] (a tree that never stops changing must not hold a flush forever).
    fn take_queued_events(&mut self, rx: &Receiver<Msg>) {
        let deadline = Instant::now() + FLUSH_EVENT_WAIT;
        loop {
            while let Ok(msg) = rx.try_recv() {
                self.take(msg);
            }
            if self.control.quiet.drained() {
                // A read that ended just before sent its batch first.
                while let Ok(msg) = rx.try_recv() {
                    self.take(msg);
                }
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::debug!("file events kept coming during a flush; flushing what arrived");
                return;
            }
            if let Ok(msg) = rx.recv_timeout(left.min(Duration::from_millis(1))) {
                self.take(msg);
            }
        }
    }

    /// Nothing is pending, owed, overflowed or asked for.
    fn is_idle(&self) -> bool {
        self.pending.is_empty()
            && self.first_pending.is_none()
            && self.owed.is_empty()
            && !self.index_changed
            && !self.control.overflow.load(Ordering::Acquire)
            && self.control.notices.lock().is_empty()
            && self.control.flushes.lock().is_empty()
            && self.control.snapshots.lock().is_empty()
    }

    /// When idle, takes what the reader handed over and, if still idle, marks the watcher
    /// clean (see `quiet.rs`): callers may then skip flushes until the next event.
    pub(super) fn settle_quiet(&mut self, rx: &Receiver<Msg>) {
        if !self.is_idle() {
            return;
        }
        let control = Arc::clone(&self.control);
        control.quiet.settle(|| {
            while let Ok(msg) = rx.try_recv() {
                self.take(msg);
            }
            self.is_idle()
        });
    }

    /// Checks the files directly in `dir` that are new or changed since last reported.
    pub(super) fn relist_dir(&mut self, dir: &RelPath) {
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

    pub(super) fn process_pending(&mut self) {
        self.follow_index_change();
        let pending = std::mem::take(&mut self.pending);
        self.first_pending = None;
        for rel in pending {
            if self.stopped() {
                return;
            }
            self.check_path(&rel);
        }
    }
}
