//! Where the worker's raw events come from: the watcher's own inotify instance on Linux (which
//! lets a caller ask whether the watcher is quiet, see `quiet.rs`), the cross-platform `notify`
//! crate elsewhere (or when [`WatcherConfig::portable_events`] asks for it), or nothing
//! (polling alone). Each source watches one directory at a time, not recursively.

use super::*;

pub(super) enum Events {
    #[cfg(target_os = "linux")]
    Inotify(super::inotify::Source),
    Portable {
        watcher: notify::RecommendedWatcher,
        watched: HashSet<PathBuf>,
    },
    /// Events are unavailable: the periodic re-stat finds every change.
    None,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            #[cfg(target_os = "linux")]
            Events::Inotify(_) => "Events::Inotify",
            Events::Portable { .. } => "Events::Portable",
            Events::None => "Events::None",
        })
    }
}

impl Events {
    /// Starts the source for a watcher; its events go to `events`.
    pub(super) fn start(portable: bool, events: SyncSender<Msg>, control: &Arc<Control>) -> Events {
        #[cfg(target_os = "linux")]
        if !portable {
            match super::inotify::Source::start(events.clone(), Arc::clone(control)) {
                Ok(source) => return Events::Inotify(source),
                Err(e) => tracing::warn!(error = %e, "inotify unavailable; trying notify"),
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = portable;
        let overflow_control = Arc::clone(control);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
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
        });
        match watcher {
            Ok(watcher) => Events::Portable {
                watcher,
                watched: HashSet::new(),
            },
            Err(e) => {
                tracing::warn!(error = %e, "file events unavailable; polling only");
                Events::None
            }
        }
    }

    /// Whether the source delivers events at all.
    pub(super) fn is_none(&self) -> bool {
        matches!(self, Events::None)
    }

    /// Watches the directory `abs` (not recursively) unless it is watched. A directory that
    /// cannot be watched is left to the periodic re-stat, and the watcher is never quiet.
    pub(super) fn watch(&mut self, abs: &Path, control: &Control) {
        let result = match self {
            #[cfg(target_os = "linux")]
            Events::Inotify(source) => source.watch(abs),
            Events::Portable { watcher, watched } => {
                if watched.contains(abs) {
                    return;
                }
                watcher
                    .watch(abs, RecursiveMode::NonRecursive)
                    .map(|()| {
                        watched.insert(abs.to_path_buf());
                    })
                    .map_err(|e| std::io::Error::other(e.to_string()))
            }
            Events::None => return,
        };
        match result {
            Ok(()) => {}
            // Gone since it was listed: its parent's event says so.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(
                    dir = %abs.display(),
                    error = %e,
                    "cannot watch a directory (for a watch limit, raise \
                     fs.inotify.max_user_watches); the periodic re-stat covers it, and every \
                     tool call flushes the watcher"
                );
                control.quiet.lose_exactness();
            }
        }
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
