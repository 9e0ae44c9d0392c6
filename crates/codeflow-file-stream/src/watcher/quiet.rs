//! Whether a flush now would find nothing: decided on the caller's thread, without waking
//! the watcher (see [`Watcher::is_quiet`](super::Watcher::is_quiet)).
//!
//! The proof rests on one kernel fact: inotify queues an event during the system call that
//! changed the file (a write, a create, a rename, a delete), before the call returns. So for
//! a change made before the question, its event is either still in the kernel's queue, or the
//! watcher's reader has taken it out. The question therefore asks, in this order:
//!
//! 1. Is the kernel's queue empty (`FIONREAD` on a duplicate of the inotify descriptor)?
//! 2. Is the watcher **clean**: no read of the queue in progress, and everything read so far
//!    handled by the worker and handed to the sink?
//!
//! The reader marks itself `reading` (and the watcher not clean) *before* it takes bytes from
//! the queue, and the worker marks the watcher clean only when no read is in progress, its
//! queue of raw events is empty, and nothing is pending, owed or overflowed. So if (1) finds
//! the event gone, the reader had already marked the watcher dirty, and (2) cannot find it
//! clean until the event's change is in the sink.
//!
//! Quiet is only ever claimed where that kernel fact covers every change: the watcher's own
//! inotify instance (Linux), every directory watched, and a local file system (network and
//! FUSE file systems may change without an event). Anywhere else a tool call flushes.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

/// Shared by the reader, the worker, the write notices and the callers (in `Control`).
#[derive(Debug, Default)]
pub(super) struct Quiet {
    flags: Mutex<Flags>,
    /// Every change makes an event that reaches the probe's queue (see the module docs).
    exact: AtomicBool,
    /// A duplicate of the inotify descriptor, to ask how many bytes of events wait.
    probe: OnceLock<Probe>,
}

#[derive(Debug, Default)]
struct Flags {
    reading: bool,
    clean: bool,
}

/// Asks the kernel how many bytes of events wait in an inotify queue.
#[derive(Debug)]
pub(super) struct Probe {
    #[cfg(target_os = "linux")]
    fd: std::os::fd::OwnedFd,
}

impl Probe {
    #[cfg(target_os = "linux")]
    pub(super) fn new(fd: std::os::fd::OwnedFd) -> Probe {
        Probe { fd }
    }

    /// Bytes of events in the kernel's queue (an error counts as "some").
    fn queued(&self) -> u64 {
        #[cfg(target_os = "linux")]
        {
            rustix::io::ioctl_fionread(&self.fd).unwrap_or(u64::MAX)
        }
        #[cfg(not(target_os = "linux"))]
        {
            u64::MAX
        }
    }
}

impl Quiet {
    /// Events come from `probe`'s queue; the watcher may be quiet from now on, while
    /// [`Quiet::lose_exactness`] is not called.
    pub(super) fn exact_with(&self, probe: Probe) {
        if self.probe.set(probe).is_ok() {
            self.exact.store(true, Ordering::SeqCst);
        }
    }

    /// Some change may make no event (a directory left unwatched, a file system without
    /// reliable events): never quiet again.
    pub(super) fn lose_exactness(&self) {
        self.exact.store(false, Ordering::SeqCst);
        self.dirty();
    }

    /// The reader is about to take events from the queue.
    pub(super) fn begin_read(&self) {
        let mut flags = self.flags.lock();
        flags.reading = true;
        flags.clean = false;
    }

    /// The reader handed what it took to the worker (or gave up).
    pub(super) fn end_read(&self) {
        self.flags.lock().reading = false;
    }

    /// Something the worker must handle arrived outside the queue (a write notice).
    pub(super) fn dirty(&self) {
        self.flags.lock().clean = false;
    }

    /// Called by the worker when nothing is pending: `drain` takes every raw event queued for
    /// it and says whether the worker is still idle afterwards. The watcher is clean when no
    /// read is in progress and the drain found it idle.
    pub(super) fn settle(&self, drain: impl FnOnce() -> bool) {
        if !self.exact.load(Ordering::SeqCst) {
            return;
        }
        let mut flags = self.flags.lock();
        if flags.clean || flags.reading {
            return;
        }
        // Under the lock: a read that ends now has sent its batch, which `drain` takes.
        if drain() {
            flags.clean = true;
        }
    }

    /// Whether every event the kernel queued so far has been read and handed over; for a
    /// flush that must not miss events still on their way (large trees).
    pub(super) fn drained(&self) -> bool {
        let Some(probe) = self.probe.get() else {
            return true;
        };
        probe.queued() == 0 && !self.flags.lock().reading
    }

    /// The question of the module docs, in its order.
    pub(super) fn is_quiet(&self) -> bool {
        if !self.exact.load(Ordering::SeqCst) {
            return false;
        }
        let Some(probe) = self.probe.get() else {
            return false;
        };
        if probe.queued() != 0 {
            return false;
        }
        let flags = self.flags.lock();
        flags.clean && !flags.reading
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_quiet_without_a_probe() {
        let quiet = Quiet::default();
        quiet.settle(|| true);
        assert!(!quiet.is_quiet());
        assert!(quiet.drained(), "nothing to wait for without a queue");
    }

    #[cfg(target_os = "linux")]
    fn probed() -> Result<Quiet, Box<dyn std::error::Error>> {
        let quiet = Quiet::default();
        let inotify = inotify::Inotify::init()?;
        let fd = std::os::fd::AsFd::as_fd(&inotify).try_clone_to_owned()?;
        quiet.exact_with(Probe::new(fd));
        Ok(quiet)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn quiet_only_when_settled_idle_and_not_reading() -> Result<(), Box<dyn std::error::Error>> {
        let quiet = probed()?;
        assert!(!quiet.is_quiet(), "not settled yet");
        quiet.settle(|| false);
        assert!(!quiet.is_quiet(), "the drain found work");
        quiet.settle(|| true);
        assert!(quiet.is_quiet());
        quiet.begin_read();
        assert!(!quiet.is_quiet(), "a read in progress");
        quiet.settle(|| true);
        assert!(!quiet.is_quiet(), "no settling while a read is in progress");
        quiet.end_read();
        assert!(!quiet.is_quiet(), "what the read took is not handled yet");
        quiet.settle(|| true);
        assert!(quiet.is_quiet());
        quiet.dirty();
        assert!(!quiet.is_quiet(), "a notice");
        quiet.settle(|| true);
        quiet.lose_exactness();
        quiet.settle(|| true);
        assert!(!quiet.is_quiet(), "never again once inexact");
        Ok(())
    }
}
