//! Watches the start-up walk places straight with inotify, handed over to `notify` a few at a
//! time once the worker's loop runs.
//!
//! Each admitted directory is watched before it is listed, so a change during the walk is seen
//! by the walk, the watch, or both. `notify`'s inotify backend adds a watch by a round trip to
//! its own event thread (a message, a wake-up, a reply); for the P5 bench's 1,221 directories
//! that was ~130 ms of the relay's ~190 ms walk (docs/benchmarks.md, "P5 round 5"), mostly
//! waiting for the other thread to be scheduled, and the session cannot start before the walk
//! ends. `notify`'s watches also report every open and read-only close, so the read pass's own
//! reads of the tree woke its thread twice per file, for events the worker drops. Here the walk
//! adds each watch with one `inotify_add_watch` on a descriptor of its own, for changes only.
//! The worker's loop takes the events this descriptor queued at every turn (before any flush),
//! and while idle gives the directories their `notify` watches, [`HAND_OVER_BATCH`] at a time
//! (a flush waits for one batch at most); once every directory has one, it takes the last
//! events and closes the descriptor ([`EarlyWatches::finish`]). From before its listing on,
//! every directory is watched by the early descriptor, by `notify`, or by both: nothing is
//! lost, and a change seen twice is checked twice (the worker compares with what it reported).
//!
//! At most [`EARLY_WATCHES`] directories are watched this way (the rest through `notify` as
//! before): the hand-over holds two watches per directory for a moment, and inotify's per-user
//! watch limit counts both. Elsewhere than Linux, and when `notify` is not running, nothing is
//! watched early.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::scan::watch_dir;

/// Most directories watched early.
pub(super) const EARLY_WATCHES: usize = 4096;

/// Directories given their `notify` watch per idle turn of the worker.
pub(super) const HAND_OVER_BATCH: usize = 64;

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
    /// Index in `dirs` by watch descriptor.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    by_wd: HashMap<i32, usize>,
    /// Directories of `dirs` handed over to `notify` so far (a prefix).
    handed_over: usize,
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
            by_wd: HashMap::new(),
            handed_over: 0,
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
                self.by_wd.insert(wd, self.dirs.len());
                self.dirs.push((wd, abs.to_path_buf()));
                return true;
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = abs;
        false
    }

    /// The directories watched early, in the walk's order.
    #[cfg(test)]
    pub(super) fn dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(_, d)| d.clone()).collect()
    }

    /// Whether any directory is watched early.
    pub(super) fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// Gives up to `n` more directories their `notify` watch; true once every one has it.
    pub(super) fn hand_over_some(
        &mut self,
        notify: &mut Option<notify::RecommendedWatcher>,
        watched: &mut HashSet<PathBuf>,
        n: usize,
    ) -> bool {
        let end = (self.handed_over + n).min(self.dirs.len());
        for (_, dir) in &self.dirs[self.handed_over..end] {
            watch_dir(notify, watched, dir);
        }
        self.handed_over = end;
        end == self.dirs.len()
    }

    /// Takes the events queued so far (the descriptor stays open).
    pub(super) fn take_events(&mut self) -> Seen {
        #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
        let mut seen = Seen::default();
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            use std::os::unix::ffi::OsStrExt as _;

            use rustix::fs::inotify::{ReadFlags, Reader};
            use rustix::io::Errno;

            let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 16 * 1024];
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
                let Some(&at) = self.by_wd.get(&event.wd()) else {
                    continue;
                };
                let dir = &self.dirs[at].1;
                seen.paths.push(match event.file_name() {
                    Some(name) => dir.join(std::ffi::OsStr::from_bytes(name.to_bytes())),
                    None => dir.clone(),
                });
            }
        }
        seen
    }

    /// Takes the last events and closes the descriptor (its watches go with it). Call it once
    /// [`EarlyWatches::hand_over_some`] said every directory has its `notify` watch.
    pub(super) fn finish(mut self) -> Seen {
        self.take_events()
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
        assert!(early.take_events().paths.is_empty());
        std::fs::write(root.join("sub/new.txt"), b"new").expect("write");
        std::fs::write(root.join("sub/old.txt"), b"changed").expect("write");
        let seen = early.take_events();
        assert!(!seen.overflow);
        let paths: HashSet<PathBuf> = seen.paths.into_iter().collect();
        let expected: HashSet<PathBuf> = [root.join("sub/new.txt"), root.join("sub/old.txt")]
            .into_iter()
            .collect();
        assert_eq!(paths, expected);
        // Taken once; later ones come with the last take.
        std::fs::write(root.join("top.txt"), b"top").expect("write");
        std::fs::remove_file(root.join("top.txt")).expect("remove");
        let seen = early.finish();
        let paths: HashSet<PathBuf> = seen.paths.into_iter().collect();
        assert_eq!(paths, [root.join("top.txt")].into_iter().collect());
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
        assert!(disabled.is_empty());
        std::fs::write(root.join("a/f"), b"x").expect("write");
        assert!(disabled.finish().paths.is_empty());
        // A directory that does not exist cannot be watched early either.
        let mut early = EarlyWatches::new(true, EARLY_WATCHES);
        assert!(!early.watch(&root.join("missing")));
    }

    #[test]
    fn the_hand_over_gives_notify_every_directory_a_batch_at_a_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical");
        for d in ["a", "b", "c"] {
            std::fs::create_dir(root.join(d)).expect("mkdir");
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let mut notify = Some(
            notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
                if let Ok(ev) = ev {
                    let _ = tx.send(ev.paths);
                }
            })
            .expect("notify"),
        );
        let mut early = EarlyWatches::new(true, EARLY_WATCHES);
        for d in ["a", "b", "c"] {
            assert!(early.watch(&root.join(d)));
        }
        let mut watched = HashSet::new();
        assert!(!early.hand_over_some(&mut notify, &mut watched, 2));
        assert_eq!(watched.len(), 2);
        assert!(early.hand_over_some(&mut notify, &mut watched, 2));
        assert_eq!(watched.len(), 3);
        drop(early.finish());
        // `notify` now reports a change in the last directory handed over.
        std::fs::write(root.join("c/f"), b"x").expect("write");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let paths = rx.recv_timeout(left).expect("an event for c/f");
            if paths.contains(&root.join("c/f")) {
                break;
            }
        }
    }
}
