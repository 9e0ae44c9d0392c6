//! Watches the start-up walk places straight with inotify, handed over to `notify` while the
//! read pass runs.
//!
//! Each admitted directory is watched before it is listed, so a change during the walk is seen
//! by the walk, the watch, or both. `notify`'s inotify backend adds a watch by a round trip to
//! its own event thread (a message, a wake-up, a reply); for the P5 bench's 1,221 directories
//! that was ~120 ms of the relay's ~170 ms walk (docs/benchmarks.md, "P5 round 5"), mostly
//! waiting for the other thread to be scheduled, and the session cannot start before the walk
//! ends. Here the walk adds each watch with one `inotify_add_watch` on a descriptor of its own;
//! after the walk a helper thread gives every one of these directories its `notify` watch
//! ([`hand_over`]), and only then are the events the early descriptor queued meanwhile taken as
//! pending paths and the descriptor closed ([`EarlyWatches::finish`]). From before its listing
//! on, every directory is watched by the early descriptor, by `notify`, or by both: nothing is
//! lost, and a change seen twice is checked twice (the worker compares with what it reported).
//!
//! At most [`EARLY_WATCHES`] directories are watched this way (the rest through `notify` as
//! before): the hand-over holds two watches per directory for a moment, and inotify's per-user
//! watch limit counts both. Elsewhere than Linux, and when `notify` is not running, nothing is
//! watched early.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::scan::watch_dir;

/// Most directories watched early.
pub(super) const EARLY_WATCHES: usize = 4096;

/// What the early descriptor saw until it was closed.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// Paths named by its events (a directory's own path for its deletion or move).
    pub paths: Vec<PathBuf>,
    /// Its queue overflowed (or could not be read): only a full re-scan is safe.
    pub overflow: bool,
}

/// The walk's own inotify descriptor and the directories it watches.
pub(super) struct EarlyWatches {
    #[cfg(target_os = "linux")]
    fd: Option<rustix::fd::OwnedFd>,
    /// Watch descriptor and directory, in the walk's order.
    dirs: Vec<(i32, PathBuf)>,
    cap: usize,
}

impl EarlyWatches {
    /// Watches up to `cap` directories early; none when `enabled` is false (no `notify` to
    /// hand them to) or the descriptor cannot be made.
    pub(super) fn new(enabled: bool, cap: usize) -> EarlyWatches {
        #[cfg(target_os = "linux")]
        let fd = if enabled {
            use rustix::fs::inotify::{CreateFlags, init};
            init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()
        } else {
            None
        };
        #[cfg(not(target_os = "linux"))]
        let _ = enabled;
        EarlyWatches {
            #[cfg(target_os = "linux")]
            fd,
            dirs: Vec::new(),
            cap,
        }
    }

    /// Watches `abs`; false when it did not (the caller watches it through `notify`).
    pub(super) fn watch(&mut self, abs: &Path) -> bool {
        if self.dirs.len() >= self.cap {
            return false;
        }
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            use rustix::fs::inotify::{WatchFlags, add_watch};
            // What `notify` watches for, less the opens and read-only closes (the read pass's
            // own reads would fill the queue; `notify`'s callback drops them too).
            let flags = WatchFlags::ATTRIB
                | WatchFlags::CREATE
                | WatchFlags::DELETE
                | WatchFlags::CLOSE_WRITE
                | WatchFlags::MODIFY
                | WatchFlags::MOVED_FROM
                | WatchFlags::MOVED_TO
                | WatchFlags::DELETE_SELF
                | WatchFlags::MOVE_SELF;
            if let Ok(wd) = add_watch(fd, abs, flags) {
                self.dirs.push((wd, abs.to_path_buf()));
                return true;
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = abs;
        false
    }

    /// The directories watched early, in the walk's order.
    pub(super) fn dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(_, d)| d.clone()).collect()
    }

    /// Takes every event queued so far and closes the descriptor (its watches go with it).
    /// Call it once `notify` watches every directory of [`EarlyWatches::dirs`].
    pub(super) fn finish(self) -> Seen {
        let mut seen = Seen::default();
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            use std::collections::HashMap;
            use std::os::unix::ffi::OsStrExt as _;

            use rustix::fs::inotify::{ReadFlags, Reader};
            use rustix::io::Errno;

            let dirs: HashMap<i32, &Path> =
                self.dirs.iter().map(|(wd, d)| (*wd, d.as_path())).collect();
            let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
            let mut reader = Reader::new(fd, &mut buf);
            loop {
                let event = match reader.next() {
                    Ok(event) => event,
                    Err(Errno::AGAIN) => break,
                    Err(Errno::INTR) => continue,
                    Err(_) => {
                        seen.overflow = true;
                        break;
                    }
                };
                let flags = event.events();
                if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                    seen.overflow = true;
                    continue;
                }
                if flags.contains(ReadFlags::IGNORED) {
                    continue;
                }
                let Some(dir) = dirs.get(&event.wd()) else {
                    continue;
                };
                seen.paths.push(match event.file_name() {
                    Some(name) => dir.join(std::ffi::OsStr::from_bytes(name.to_bytes())),
                    None => dir.to_path_buf(),
                });
            }
        }
        seen
    }
}

/// Gives every directory of `dirs` its `notify` watch on a thread of its own (the walk's early
/// watches keep covering them meanwhile); joining it gives the watcher back with the
/// directories it now watches.
pub(super) fn hand_over(
    notify: Option<notify::RecommendedWatcher>,
    dirs: Vec<PathBuf>,
) -> HandOver {
    let spawned = std::thread::Builder::new()
        .name("codeflow-watch-hand-over".into())
        .spawn(move || {
            let mut notify = notify;
            let mut watched = HashSet::with_capacity(dirs.len());
            for dir in &dirs {
                watch_dir(&mut notify, &mut watched, dir);
            }
            (notify, watched)
        });
    match spawned {
        Ok(thread) => HandOver::Thread(thread),
        // The watcher went with the failed spawn: the worker then polls, as when `notify`
        // cannot start.
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the watch hand-over; polling instead");
            HandOver::Lost
        }
    }
}

/// A hand-over in progress ([`hand_over`]).
pub(super) enum HandOver {
    Thread(std::thread::JoinHandle<Placed>),
    Lost,
}

/// The watcher back, and the directories it watches.
pub(super) type Placed = (Option<notify::RecommendedWatcher>, HashSet<PathBuf>);

impl HandOver {
    /// Waits for the hand-over: `None` when it was lost (the thread could not start or died).
    pub(super) fn join(self) -> Option<Placed> {
        match self {
            HandOver::Thread(thread) => thread.join().ok(),
            HandOver::Lost => None,
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn events_on_early_watched_directories_come_back_as_paths() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::create_dir(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("sub/old.txt"), b"old").expect("write");
        let mut early = EarlyWatches::new(true, EARLY_WATCHES);
        assert!(early.watch(&root));
        assert!(early.watch(&root.join("sub")));
        assert_eq!(early.dirs(), vec![root.clone(), root.join("sub")]);

        // A read is not an event; a write, a create and a delete are.
        assert_eq!(
            std::fs::read(root.join("sub/old.txt")).expect("read"),
            b"old"
        );
        std::fs::write(root.join("sub/new.txt"), b"new").expect("write");
        std::fs::write(root.join("sub/old.txt"), b"changed").expect("write");
        std::fs::write(root.join("top.txt"), b"top").expect("write");
        std::fs::remove_file(root.join("top.txt")).expect("remove");
        let seen = early.finish();
        assert!(!seen.overflow);
        let paths: HashSet<PathBuf> = seen.paths.into_iter().collect();
        let expected: HashSet<PathBuf> = [
            root.join("sub/new.txt"),
            root.join("sub/old.txt"),
            root.join("top.txt"),
        ]
        .into_iter()
        .collect();
        assert_eq!(paths, expected);
    }

    #[test]
    fn beyond_the_cap_or_without_notify_nothing_is_watched_early() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::create_dir(root.join("a")).expect("mkdir");
        let mut early = EarlyWatches::new(true, 1);
        assert!(early.watch(&root));
        assert!(!early.watch(&root.join("a")), "over the cap: notify's job");
        assert_eq!(early.dirs(), vec![root.clone()]);

        let mut disabled = EarlyWatches::new(false, EARLY_WATCHES);
        assert!(!disabled.watch(&root));
        std::fs::write(root.join("a/f"), b"x").expect("write");
        assert!(disabled.finish().paths.is_empty());
        // A directory that does not exist cannot be watched early either.
        let mut early = EarlyWatches::new(true, EARLY_WATCHES);
        assert!(!early.watch(&root.join("missing")));
    }

    #[test]
    fn the_hand_over_gives_notify_every_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::create_dir(root.join("a")).expect("mkdir");
        let (tx, rx) = std::sync::mpsc::channel();
        let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                let _ = tx.send(ev.paths);
            }
        })
        .expect("notify");
        let (notify, watched) = hand_over(Some(watcher), vec![root.clone(), root.join("a")])
            .join()
            .expect("handed over");
        assert!(notify.is_some());
        assert_eq!(watched.len(), 2);
        std::fs::write(root.join("a/f"), b"x").expect("write");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let paths = rx.recv_timeout(left).expect("an event for a/f");
            if paths.contains(&root.join("a/f")) {
                break;
            }
        }
    }
}
