//! Checking paths against the disk and reporting what differs.

use super::*;

impl Worker {
    pub(super) fn full_rescan(&mut self) {
        self.filter.reload_gitignores();
        self.pending.clear();
        self.first_pending = None;
        self.rescan_dir(&RelPath::root());
        self.next_poll = self.config.poll_interval.map(|d| Instant::now() + d);
    }

    /// Re-stats a directory tree: new or changed files are checked, vanished ones deleted.
    pub(super) fn rescan_dir(&mut self, dir: &RelPath) {
        let mut seen: Vec<(RelPath, Stamp)> = Vec::new();
        // Each directory is watched before it is listed: a file created just after the
        // listing then has an event (watching after listing lost such files until the next
        // poll).
        let (events, control) = (&mut self.events, &self.control);
        let result = walk(
            &self.jail,
            &self.filter,
            dir,
            &mut |_, abs, in_partial| {
                if !in_partial {
                    events.watch(abs, control);
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
    pub(super) fn check_path(&mut self, rel: &RelPath) {
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

    pub(super) fn emit_deleted_under(&mut self, rel: &RelPath) {
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

    pub(super) fn check_file(&mut self, rel: &RelPath) {
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
        let owed = self.owed.remove(rel);
        let previous_hash = self.known.get(rel).map(|k| k.hash.clone());
        // `texts` holds, for a path, exactly the content `known` has the hash of (both are
        // updated together), so the base needs no re-hashing. Were that ever broken, the
        // server's result-hash check would refuse the delta and read the file whole.
        let base = previous_hash.as_ref().and_then(|_| self.texts.get(rel));
        let event = report::report(
            report::Read {
                path: self.client_root.join(rel).as_str().to_owned(),
                bytes: &bytes,
                hash: &hash,
                mtime_ms: mtime_ms(&meta),
            },
            previous_hash.as_ref().map(|h| report::Reported {
                hash: h,
                text: base.as_deref(),
            }),
            owed,
            self.config.inline_limit,
        );
        let changed = previous_hash.as_ref() != Some(&hash);
        if changed {
            if std::str::from_utf8(&bytes).is_ok() {
                self.texts.insert(rel.clone(), bytes.into());
            } else {
                self.texts.remove(rel);
            }
            self.hot.insert(rel.clone(), Instant::now());
        }
        self.known.insert(
            rel.clone(),
            Known {
                hash,
                stamp,
                read_at,
            },
        );
        if let Some(event) = event {
            self.emit(event);
        }
    }

    pub(super) fn emit_deleted(&mut self, rel: &RelPath) {
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
    pub(super) fn emit(&mut self, event: FileChanged) {
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
