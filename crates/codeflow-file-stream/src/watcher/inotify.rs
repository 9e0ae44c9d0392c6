//! The watcher's own inotify instance (Linux): one watch per directory, a reader thread that
//! turns events into paths for the worker, and the descriptor [`Quiet`] probes.
//!
//! Only events that can mean a change are asked for: no `IN_OPEN`, `IN_ACCESS` or
//! `IN_CLOSE_NOWRITE`, so the relay's own reads (its scans, the server's fetches, the agent
//! reading) wake nobody and leave the queue empty. A watch follows its directory's inode:
//! when a watched directory is moved, the paths of its events are stale until the worker
//! re-walks it at its new place (the move's own event makes it do so), which re-maps the
//! watch; when it is deleted, the kernel drops the watch (`IN_IGNORED`) and the path is
//! forgotten, so a directory created again at that path is watched again.

use std::collections::HashMap;
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};

use inotify::{EventMask, Inotify, WatchMask, Watches};
use parking_lot::Mutex;
use rustix::event::{EventfdFlags, PollFd, PollFlags};

use super::quiet::Probe;
use super::{Control, Msg};

/// Events that can mean a change of a directory's entries or of a file's content or mode.
fn mask() -> WatchMask {
    WatchMask::MODIFY
        | WatchMask::ATTRIB
        | WatchMask::CLOSE_WRITE
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::DELETE_SELF
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
}

/// Bytes taken from the queue per read: room for ~1,000 events with short names.
const READ_BUFFER: usize = 64 * 1024;

/// Which directory each watch is on, both ways.
#[derive(Debug, Default)]
struct Dirs {
    by_wd: HashMap<i32, PathBuf>,
    by_path: HashMap<PathBuf, i32>,
}

impl Dirs {
    fn insert(&mut self, wd: i32, path: &Path) {
        if let Some(old) = self.by_wd.insert(wd, path.to_path_buf())
            && old != path
            && self.by_path.get(&old) == Some(&wd)
        {
            // The same directory at a new place (it was moved): the old path is free.
            self.by_path.remove(&old);
        }
        self.by_path.insert(path.to_path_buf(), wd);
    }

    /// The kernel dropped the watch (its directory is gone): the path it was on.
    fn forget(&mut self, wd: i32) -> Option<PathBuf> {
        let path = self.by_wd.remove(&wd)?;
        if self.by_path.get(&path) == Some(&wd) {
            self.by_path.remove(&path);
        }
        Some(path)
    }

    /// The directory moved: its path no longer names it (the watch stays until re-mapped).
    fn moved(&mut self, wd: i32) {
        if let Some(path) = self.by_wd.get(&wd)
            && self.by_path.get(path) == Some(&wd)
        {
            self.by_path.remove(path);
        }
    }
}

/// The inotify instance and its reader thread; dropping it stops the thread.
pub(super) struct Source {
    watches: Watches,
    dirs: Arc<Mutex<Dirs>>,
    stop: Arc<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").finish_non_exhaustive()
    }
}

impl Source {
    /// Starts the reader; events go to `events`, and `control`'s quiet state gets the probe.
    pub(super) fn start(events: SyncSender<Msg>, control: Arc<Control>) -> std::io::Result<Source> {
        let inotify = Inotify::init()?;
        let probe = inotify.as_fd().try_clone_to_owned()?;
        let stop = Arc::new(rustix::event::eventfd(
            0,
            EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK,
        )?);
        let watches = inotify.watches();
        let dirs = Arc::new(Mutex::new(Dirs::default()));
        let thread = {
            let (dirs, stop) = (Arc::clone(&dirs), Arc::clone(&stop));
            let control = Arc::clone(&control);
            std::thread::Builder::new()
                .name("codeflow-inotify".into())
                .spawn(move || read_loop(inotify, &stop, &dirs, &events, &control))?
        };
        control.quiet.exact_with(Probe::new(probe));
        Ok(Source {
            watches,
            dirs,
            stop,
            thread: Some(thread),
        })
    }

    /// Watches `abs` (a directory) unless it is watched; `Err` when the kernel refused.
    pub(super) fn watch(&mut self, abs: &Path) -> std::io::Result<()> {
        // Held across the system call: the reader maps the watch's first event after this.
        let mut dirs = self.dirs.lock();
        if dirs.by_path.contains_key(abs) {
            return Ok(());
        }
        let wd = self.watches.add(abs, mask())?;
        dirs.insert(wd.get_watch_descriptor_id(), abs);
        Ok(())
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        let _ = rustix::io::write(&*self.stop, &1u64.to_ne_bytes());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The reader thread: waits for events (or the stop signal), takes them, hands them over.
fn read_loop(
    mut inotify: Inotify,
    stop: &OwnedFd,
    dirs: &Mutex<Dirs>,
    events: &SyncSender<Msg>,
    control: &Control,
) {
    let mut buffer = vec![0u8; READ_BUFFER];
    loop {
        let (ready, stopping) = {
            let mut fds = [
                PollFd::new(&inotify, PollFlags::IN),
                PollFd::new(stop, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "file events stopped; polling only");
                    control.quiet.lose_exactness();
                    return;
                }
            }
            (!fds[0].revents().is_empty(), !fds[1].revents().is_empty())
        };
        if stopping {
            return;
        }
        if !ready {
            continue;
        }
        control.quiet.begin_read();
        let msg = match inotify.read_events(&mut buffer) {
            Ok(read) => to_msg(read, dirs),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => {
                tracing::debug!(error = %e, "reading file events failed; re-stat'ing");
                Some(Msg::Rescan)
            }
        };
        let gone = match msg.map(|msg| events.try_send(msg)) {
            Some(Err(TrySendError::Full(_))) => {
                control.overflow.store(true, Ordering::Release);
                false
            }
            Some(Err(TrySendError::Disconnected(_))) => true,
            _ => false,
        };
        control.quiet.end_read();
        if gone {
            return;
        }
    }
}

/// The paths one read's events name (a directory's own events name the directory).
fn to_msg<'a>(
    read: impl Iterator<Item = inotify::Event<&'a std::ffi::OsStr>>,
    dirs: &Mutex<Dirs>,
) -> Option<Msg> {
    let mut paths = Vec::new();
    let mut dirs = dirs.lock();
    for event in read {
        if event.mask.contains(EventMask::Q_OVERFLOW) {
            return Some(Msg::Rescan);
        }
        let wd = event.wd.get_watch_descriptor_id();
        if event.mask.contains(EventMask::IGNORED) {
            // The directory is gone, or was replaced at its path before a re-walk could
            // watch the new one (the old watch still held the path then): the worker checks
            // the path again and watches what is there now.
            if let Some(path) = dirs.forget(wd) {
                paths.push(path);
            }
            continue;
        }
        let Some(dir) = dirs.by_wd.get(&wd) else {
            // A watch this instance does not know: nothing says where the change was.
            return Some(Msg::Rescan);
        };
        paths.push(match event.name {
            Some(name) if !name.is_empty() => dir.join(name),
            _ => dir.clone(),
        });
        if event.mask.contains(EventMask::MOVE_SELF) {
            dirs.moved(wd);
        }
    }
    (!paths.is_empty()).then_some(Msg::Paths(paths))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_directory_frees_its_old_path_and_takes_the_new_one() {
        let mut dirs = Dirs::default();
        dirs.insert(1, Path::new("/r/a"));
        dirs.moved(1);
        assert!(!dirs.by_path.contains_key(Path::new("/r/a")));
        assert_eq!(
            dirs.by_wd.get(&1).map(PathBuf::as_path),
            Some(Path::new("/r/a"))
        );
        dirs.insert(1, Path::new("/r/b"));
        assert_eq!(dirs.by_path.get(Path::new("/r/b")), Some(&1));
        assert_eq!(
            dirs.by_wd.get(&1).map(PathBuf::as_path),
            Some(Path::new("/r/b"))
        );
    }

    #[test]
    fn a_deleted_directory_is_forgotten_but_not_its_successor() {
        let mut dirs = Dirs::default();
        dirs.insert(1, Path::new("/r/a"));
        // Created again at the same path (a new inode, a new watch) before the old watch's
        // `IN_IGNORED` arrived.
        dirs.insert(2, Path::new("/r/a"));
        dirs.forget(1);
        assert_eq!(dirs.by_path.get(Path::new("/r/a")), Some(&2));
        dirs.forget(2);
        assert!(dirs.by_path.is_empty() && dirs.by_wd.is_empty());
    }
}
