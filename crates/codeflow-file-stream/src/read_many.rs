//! Reads and hashes many files on a few threads (a relay's first scan of a tree: reading and
//! hashing 100 MB on one core is most of its start-up). Results come back to the caller's
//! thread in any order, a batch of files at a time, through a small bounded queue, so at most
//! a few megabytes are held at once. Batches, not files: handing each file over woke the
//! caller's thread once per file (10,000 futex wake-ups and thread switches for a 10,000-file
//! tree, on the cores the reading needs).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

use crate::protocol::ContentHash;
use crate::transfer::CHUNK;

/// Files a reader hands over at once…
const BATCH_FILES: usize = 16;
/// …or fewer, once they hold this many bytes.
const BATCH_BYTES: usize = 1024 * 1024;
/// Batches waiting for the caller, at most.
const QUEUE: usize = 4;
/// Most reader threads.
const MAX_THREADS: usize = 4;

/// One file read: its bytes, their hash, and whether they are UTF-8 text (checked on the
/// reader thread too: the caller's thread takes every result in turn and would otherwise
/// validate 100 MB alone while the readers wait on the full queue).
pub(crate) struct Read {
    /// The content: a view of `framed` after its tag.
    pub bytes: Bytes,
    /// The content read after a [`CHUNK`] tag: the file's one upload chunk frame, without a
    /// copy, when it is at most [`crate::transfer::CHUNK_BYTES`] long.
    pub framed: Bytes,
    pub hash: ContentHash,
    pub is_text: bool,
}

/// Reads every path of `files` and calls `on_read(index, result)` on this thread for each
/// (`None`: it could not be read, e.g. it vanished). Returns early with the first error of
/// `on_read`.
pub(crate) fn read_many<E>(
    files: &[PathBuf],
    mut on_read: impl FnMut(usize, Option<Read>) -> Result<(), E>,
) -> Result<(), E> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_THREADS)
        .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(usize, Option<Read>)>>(QUEUE);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                let mut batch = Vec::with_capacity(BATCH_FILES);
                let mut batch_bytes = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    #[cfg(debug_assertions)]
                    test_pause();
                    let read = read_framed(path).ok().map(|framed| {
                        let bytes = framed.slice(1..);
                        Read {
                            hash: ContentHash::of_on_this_thread(&bytes),
                            is_text: std::str::from_utf8(&bytes).is_ok(),
                            bytes,
                            framed,
                        }
                    });
                    batch_bytes += read.as_ref().map_or(0, |r| r.bytes.len());
                    batch.push((i, read));
                    if batch.len() < BATCH_FILES && batch_bytes < BATCH_BYTES {
                        continue;
                    }
                    batch_bytes = 0;
                    // The receiver is gone only when the caller stopped early.
                    if tx.send(std::mem::take(&mut batch)).is_err() {
                        return;
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
            });
        }
        drop(tx);
        let rx = rx;
        let mut outcome = Ok(());
        'batches: for batch in rx.iter() {
            for (i, read) in batch {
                if let Err(e) = on_read(i, read) {
                    outcome = Err(e);
                    break 'batches;
                }
            }
        }
        // Stop the readers: no new files, and a reader blocked on the full queue sees it
        // closed (the scope waits for every reader before returning).
        next.store(files.len(), Ordering::Relaxed);
        drop(rx);
        outcome
    })
}

/// Debug builds only: with `CODEFLOW_TEST_SCAN_PAUSE_MS` set, a reader pauses that long
/// before each file — the end-to-end tests' way to keep a small tree's scan running while the
/// relay connects (a large tree on a slow disk, in miniature), so the path they test is the
/// one taken whatever the machine's load.
#[cfg(debug_assertions)]
fn test_pause() {
    static PAUSE: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    let pause = PAUSE.get_or_init(|| {
        std::env::var("CODEFLOW_TEST_SCAN_PAUSE_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(std::time::Duration::from_millis)
    });
    if let Some(pause) = pause {
        std::thread::sleep(*pause);
    }
}

/// Reads a file after a [`CHUNK`] tag byte, into one buffer sized by its `statx`.
fn read_framed(path: &std::path::Path) -> std::io::Result<Bytes> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let len = file
        .metadata()
        .map_or(0, |m| usize::try_from(m.len()).unwrap_or(0));
    let mut buf = Vec::with_capacity(len.saturating_add(1));
    buf.push(CHUNK);
    // Through `Take`, not `File::read_to_end`: that one asks the size again (a second
    // `statx` and an `lseek` per file, 20,000 system calls for a 10,000-file tree) though the
    // buffer is already sized; this reads into it and probes once for the end.
    file.take(u64::MAX).read_to_end(&mut buf)?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_file_and_stops_early_on_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files: Vec<PathBuf> = (0..200)
            .map(|i| {
                let p = dir.path().join(format!("f{i}"));
                std::fs::write(&p, format!("file {i}")).expect("write");
                p
            })
            .collect();
        let mut seen = vec![false; files.len()];
        read_many(&files, |i, read| {
            let read = read.expect("readable");
            assert_eq!(read.bytes, format!("file {i}").into_bytes());
            assert_eq!(read.hash, ContentHash::of(&read.bytes));
            assert!(read.is_text);
            seen[i] = true;
            Ok::<(), ()>(())
        })
        .expect("no error");
        assert!(seen.iter().all(|s| *s));

        // An error on the first result returns it, with readers blocked on the full queue
        // released (without that the scope could wait for them forever).
        let mut calls = 0;
        let outcome = read_many(&files, |_, _| {
            calls += 1;
            Err("stop")
        });
        assert_eq!(outcome, Err("stop"));
        assert_eq!(calls, 1);
    }
}
