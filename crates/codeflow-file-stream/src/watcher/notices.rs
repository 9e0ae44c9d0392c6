//! What the relay's own file server tells the watcher about its writes.

use super::*;

/// What the relay's own file server did to one path.
#[derive(Debug)]
pub(super) struct Notice {
    pub(super) rel: RelPath,
    pub(super) now: Noticed,
}

#[derive(Debug)]
pub(super) enum Noticed {
    /// Written with this content; the server's write-back records it in the mirror.
    Holds(bytes::Bytes),
    /// Deleted (or renamed away); the server's write-back removes it from the mirror.
    Absent,
    /// Changed in a way the server may not know exactly (a failed operation): re-report it.
    Unknown,
}

/// Where a [`FileServer`](crate::FileServer) reports the writes it makes, so the [`Watcher`] of
/// the same root keeps what it reported in line with what the server's write-back put in the
/// mirror. Cheap to clone; once the watcher is gone, notices are dropped.
#[derive(Debug, Clone)]
pub struct WriteNotices {
    pub(super) control: std::sync::Weak<Control>,
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
            control.quiet.dirty();
            control.wake();
        }
    }
}
