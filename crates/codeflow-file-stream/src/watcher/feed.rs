//! The start-up scan's files as it reads them ([`Watcher::start_streaming`]): each file the
//! read-and-hash pass reads is handed over with the bytes it hashed, so a relay can send the
//! tree to the server while the scan still runs, reading and hashing every file once.
//!
//! The scan never waits for the feed: the queue is unbounded in files, and bytes ride along
//! only while less than the feed's byte budget is queued (beyond it, or for a file whose hash
//! came from the hash cache, the entry carries no bytes and the consumer reads the file
//! itself). A consumer that goes away costs the scan nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::error::FileError;
use crate::manifest::Manifest;
use crate::paths::RelPath;
use crate::protocol::ContentHash;

/// One file of the start-up scan.
#[derive(Debug, Clone)]
pub struct Scanned {
    /// Its path relative to the root.
    pub rel: RelPath,
    /// Its size when it was read (or stat'ed, for a file whose hash came from the cache).
    pub size: u64,
    /// Its Unix permission bits.
    pub mode: u32,
    /// The hash the manifest will carry for it.
    pub hash: ContentHash,
    /// The bytes that were hashed (`None`: not kept; read the file, and expect the server to
    /// refuse it if it no longer has `hash`).
    pub bytes: Option<Bytes>,
    /// For a file of one upload chunk: `bytes` after the chunk tag, in one buffer — the
    /// file's chunk frame, sent without a copy (`bytes` is a view of it).
    pub frame: Option<Bytes>,
}

/// What the walk found, known as soon as [`Watcher::start_streaming`](super::Watcher::start_streaming) returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Walked {
    /// Files admitted (the manifest will have at most these).
    pub files: u64,
    /// Their bytes by the walk's stats.
    pub bytes: u64,
    /// Of them, files the read pass reads (the hash cache could not vouch for them).
    pub to_read_files: u64,
    /// Their bytes.
    pub to_read_bytes: u64,
}

/// The receiving end: the scan's files, then its manifest.
#[derive(Debug)]
pub struct ScanFeed {
    files: mpsc::UnboundedReceiver<Scanned>,
    held: Arc<AtomicU64>,
    manifest: Option<oneshot::Receiver<Result<Manifest, FileError>>>,
    /// What the walk found.
    pub walked: Walked,
}

impl ScanFeed {
    /// The next file the scan read (`None` once the read pass is over).
    pub async fn next(&mut self) -> Option<Scanned> {
        let scanned = self.files.recv().await?;
        if let Some(bytes) = &scanned.bytes {
            self.held.fetch_sub(bytes.len() as u64, Ordering::AcqRel);
        }
        Some(scanned)
    }

    /// The scan's manifest, sent when the read pass is over (taken once): the files go one
    /// way, the manifest another.
    pub fn take_manifest(&mut self) -> Option<oneshot::Receiver<Result<Manifest, FileError>>> {
        self.manifest.take()
    }
}

/// The scan's end of a [`ScanFeed`].
pub(super) struct Feed {
    files: mpsc::UnboundedSender<Scanned>,
    held: Arc<AtomicU64>,
    budget: u64,
    closed: AtomicBool,
}

impl Feed {
    /// A feed that keeps at most `budget` bytes queued, and its receiving end (without the
    /// manifest and the walk's figures yet).
    pub(super) fn new(
        budget: u64,
        manifest: oneshot::Receiver<Result<Manifest, FileError>>,
    ) -> (Feed, ScanFeed) {
        let (tx, rx) = mpsc::unbounded_channel();
        let held = Arc::new(AtomicU64::new(0));
        (
            Feed {
                files: tx,
                held: Arc::clone(&held),
                budget,
                closed: AtomicBool::new(false),
            },
            ScanFeed {
                files: rx,
                held,
                manifest: Some(manifest),
                walked: Walked::default(),
            },
        )
    }

    /// Hands over one file; its bytes go along while the budget allows.
    pub(super) fn offer(&self, mut scanned: Scanned) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        if let Some(bytes) = &scanned.bytes {
            let len = bytes.len() as u64;
            let held = self.held.fetch_add(len, Ordering::AcqRel);
            if held + len > self.budget {
                self.held.fetch_sub(len, Ordering::AcqRel);
                scanned.bytes = None;
                scanned.frame = None;
            }
        }
        let len = scanned.bytes.as_ref().map_or(0, |b| b.len() as u64);
        if self.files.send(scanned).is_err() {
            self.held.fetch_sub(len, Ordering::AcqRel);
            self.closed.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned(name: &str, bytes: &[u8]) -> Scanned {
        Scanned {
            rel: RelPath::parse(name).unwrap(),
            size: bytes.len() as u64,
            mode: 0o644,
            hash: ContentHash::of(bytes),
            bytes: Some(Bytes::copy_from_slice(bytes)),
            frame: None,
        }
    }

    #[tokio::test]
    async fn bytes_ride_along_only_within_the_budget() {
        let (_tx, rx) = oneshot::channel();
        let (feed, mut scan) = Feed::new(10, rx);
        feed.offer(scanned("a", b"123456"));
        feed.offer(scanned("b", b"123456"));
        let a = scan.next().await.unwrap();
        assert_eq!(a.bytes.as_deref(), Some(&b"123456"[..]));
        let b = scan.next().await.unwrap();
        assert!(b.bytes.is_none(), "over the budget: read it yourself");
        // Taken: room again.
        feed.offer(scanned("c", b"123456"));
        assert!(scan.next().await.unwrap().bytes.is_some());
        drop(scan);
        // Nobody listens: the scan goes on.
        feed.offer(scanned("d", b"1"));
        assert_eq!(feed.held.load(Ordering::Acquire), 0);
    }
}
