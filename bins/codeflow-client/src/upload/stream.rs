//! A streamed first sync's upload (`server/syncBegin`): the files go out as the watcher's
//! start-up scan reads and hashes them, each with the bytes that were hashed (read once,
//! hashed once), numbered in the order sent. Files the mirror already holds at the same hash
//! (`have`) are skipped. A file the scan handed over without its bytes (its hash came from the
//! hash cache, or the feed's byte budget was full) is read through the jail — on a blocking
//! thread, never on the relay's one runtime thread, which carries every other message — and
//! sent with the scan's hash: if it changed since, the server refuses it and the sync reads it
//! after the manifest. A connection that breaks is dialled again; the files sent on it and not
//! stored (`start.received`) go again, read from disk.

use std::collections::HashMap;

use bytes::Bytes;
use codeflow_file_stream::transfer::{
    CHUNK, CHUNK_BYTES, FileHeader, SyncBeginResult, WholeFrames,
};
use codeflow_file_stream::{PlainDirs, RelPath, ScanFeed, Scanned};
use futures::FutureExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{
    ATTEMPTS, Broken, Content, Received, Uploader, Wanted, file_frames, read_file, read_frames,
};

/// An upload fed by the scan, across its connections.
struct Streaming {
    feed: ScanFeed,
    have: HashMap<String, String>,
    /// Every file sent so far, by index.
    sent: Vec<Wanted>,
    plain: PlainDirs,
    /// The server takes whole-file frames.
    whole: bool,
}

impl Uploader {
    /// Sends the scan's files to the upload `begun` made; the server's summary, or why the
    /// upload could not be finished (the sync then reads what it lacks).
    pub async fn stream(&self, begun: SyncBeginResult, feed: ScanFeed) -> Result<Value, String> {
        let url = self.url_for(&begun.url)?;
        let mut state = Streaming {
            feed,
            have: begun.have.into_iter().collect(),
            sent: Vec::new(),
            plain: PlainDirs::default(),
            whole: begun.whole_frames,
        };
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                super::pause_before_resuming("streamed sync upload", attempt, &last).await;
            }
            let streaming = &mut state;
            let produce = move |received: Received, out: mpsc::Sender<Bytes>| {
                // Moved out of the closure (called once): the frames' future keeps the state.
                let streaming = streaming;
                self.stream_frames(streaming, received, out)
            };
            match self.send_once(&url, produce).await {
                Ok(summary) => {
                    tracing::info!(files = state.sent.len(), "streamed sync upload over");
                    return Ok(summary);
                }
                Err(Broken::Retry(why)) => last = why,
                Err(Broken::Fatal(why)) => {
                    last = why;
                    break;
                }
            }
        }
        Err(format!("streamed sync upload failed: {last}"))
    }

    /// One connection's frames: first the files sent on an earlier connection that the server
    /// did not store, read again from disk; then the scan's files as they come.
    async fn stream_frames(
        &self,
        state: &mut Streaming,
        received: Received,
        out: mpsc::Sender<Bytes>,
    ) -> Vec<Value> {
        let mut skipped = Vec::new();
        if state.sent.len() > received.len() {
            let files = state
                .sent
                .iter()
                .map(|w| Wanted {
                    path: w.path.clone(),
                    rel: w.rel.clone(),
                    size: w.size,
                    hash: w.hash.clone(),
                })
                .collect::<Vec<_>>();
            let (jail, again, whole) = (self.jail.clone(), out.clone(), state.whole);
            let resent = tokio::task::spawn_blocking(move || {
                read_frames(&jail, &files, &received, whole, &again)
            })
            .await
            .unwrap_or_default();
            skipped.extend(resent);
            if out.is_closed() {
                return skipped;
            }
        }
        // Small files are packed into whole-file frames (this connection's own: what a broken
        // one still held goes again from disk, as everything it did not store).
        let mut packer = state.whole.then(WholeFrames::default);
        // A file that came without its bytes is read from disk, off the relay's one runtime
        // thread (a read there stalled every message the relay carries): with the files after
        // it that are ready and byteless too, on a blocking thread, in order.
        let mut carried: Option<Scanned> = None;
        loop {
            let scanned = match carried.take() {
                Some(scanned) => scanned,
                None => match state.feed.next().now_or_never() {
                    Some(Some(scanned)) => scanned,
                    Some(None) => break,
                    // Nothing ready: what is packed goes now, not when the next file comes.
                    None => {
                        if !send_packed(&out, &mut packer).await {
                            return skipped;
                        }
                        match state.feed.next().await {
                            Some(scanned) => scanned,
                            None => break,
                        }
                    }
                },
            };
            if state.has(&scanned) {
                continue;
            }
            if scanned.bytes.is_some() {
                let index = state.send(&scanned);
                // Never read: the scan's bytes go.
                let frames = frames_of(index, scanned, packer.as_mut(), |_, _| {
                    Err("not read".to_owned())
                });
                if !send_all(&out, frames, &mut skipped).await {
                    return skipped;
                }
                continue;
            }
            let mut run_bytes = scanned.size;
            let mut run = vec![(state.send(&scanned), scanned)];
            while run.len() < READ_RUN_FILES && run_bytes < READ_RUN_BYTES {
                match state.feed.next().now_or_never() {
                    Some(Some(next)) if next.bytes.is_none() => {
                        if !state.has(&next) {
                            run_bytes += next.size;
                            run.push((state.send(&next), next));
                        }
                    }
                    Some(Some(next)) => {
                        carried = Some(next);
                        break;
                    }
                    // Nothing ready yet, or the scan is over (the next `next` says so again).
                    Some(None) | None => break,
                }
            }
            let jail = self.jail.clone();
            let mut plain = std::mem::take(&mut state.plain);
            let mut packing = packer.take();
            let read = tokio::task::spawn_blocking(move || {
                let frames: Vec<_> = run
                    .into_iter()
                    .map(|(index, scanned)| {
                        frames_of(index, scanned, packing.as_mut(), |rel, size| {
                            let abs = jail
                                .resolve_remembering(rel, &mut plain)
                                .map_err(|e| e.to_string())?;
                            read_file(&abs, size)
                        })
                    })
                    .collect();
                (frames, plain, packing)
            })
            .await;
            let Ok((frames, plain, packing)) = read else {
                return skipped; // the blocking task panicked: this connection gives up
            };
            state.plain = plain;
            packer = packing;
            for file in frames {
                if !send_all(&out, file, &mut skipped).await {
                    return skipped;
                }
            }
        }
        send_packed(&out, &mut packer).await;
        skipped
    }
}

/// Sends the whole-file frame `packer` holds, if any; `false` once the queue is closed.
async fn send_packed(out: &mpsc::Sender<Bytes>, packer: &mut Option<WholeFrames>) -> bool {
    match packer.as_mut().and_then(WholeFrames::take) {
        Some(frame) => out.send(frame).await.is_ok(),
        None => true,
    }
}

/// Files read from disk at once, off the runtime thread, when the scan handed them over
/// without their bytes: at most this many…
const READ_RUN_FILES: usize = 64;
/// …and no more once they hold this many bytes.
const READ_RUN_BYTES: u64 = 8 * 1024 * 1024;

impl Streaming {
    /// Whether the mirror already holds `scanned` at its hash (not sent).
    fn has(&self, scanned: &Scanned) -> bool {
        self.have
            .get(scanned.rel.as_str())
            .is_some_and(|h| h.eq_ignore_ascii_case(scanned.hash.as_str()))
    }

    /// Numbers `scanned` as the next file sent.
    fn send(&mut self, scanned: &Scanned) -> u64 {
        let index = self.sent.len() as u64;
        self.sent.push(Wanted {
            path: scanned.rel.as_str().to_owned(),
            rel: Some(scanned.rel.clone()),
            size: scanned.size,
            hash: scanned.hash.as_str().to_owned(),
        });
        index
    }
}

/// Puts one file's frames on the queue, or records why it was not sent; `false` once the
/// queue is closed (the connection is gone).
async fn send_all(out: &mpsc::Sender<Bytes>, file: FileFrames, skipped: &mut Vec<Value>) -> bool {
    match file {
        Ok(frames) => {
            for frame in frames {
                if out.send(frame).await.is_err() {
                    return false;
                }
            }
        }
        Err((path, why)) => skipped.push(json!({"path": path, "why": why})),
    }
    true
}

/// A file's frames, or its path and why it was not sent.
type FileFrames = Result<Vec<Bytes>, (String, String)>;

/// A scanned file's frames ([`file_frames`], with the connection's `packer` when the server
/// takes whole-file frames): its bytes after
/// the chunk tag as the scan read them, or copied into chunk frames, or (when the scan did
/// not keep them) what `read(rel, size)` reads from disk.
fn frames_of(
    index: u64,
    scanned: Scanned,
    packer: Option<&mut WholeFrames>,
    read: impl FnOnce(&RelPath, u64) -> Result<(Content, u32), String>,
) -> FileFrames {
    let (content, mode) = match (scanned.frame, scanned.bytes) {
        // The scan read it after the chunk tag: its frame as it is.
        (Some(frame), _) => (Content::Frame(Some(frame)), scanned.mode),
        // An empty file: packed like any small one, not a header that ends the frame.
        (None, Some(bytes)) if bytes.is_empty() => (Content::Frame(None), scanned.mode),
        (None, Some(bytes)) => (Content::Frames(chunks(&bytes)), scanned.mode),
        (None, None) => read(&scanned.rel, scanned.size)
            .map_err(|why| (scanned.rel.as_str().to_owned(), why))?,
    };
    let header = FileHeader {
        index,
        path: scanned.rel.as_str().to_owned(),
        size: scanned.size,
        mode,
        hash: scanned.hash.as_str().to_owned(),
    };
    Ok(file_frames(&header, content, packer))
}

/// `bytes` as chunk frames (the tag, then up to [`CHUNK_BYTES`] bytes each; none when empty).
fn chunks(bytes: &[u8]) -> Vec<Bytes> {
    bytes
        .chunks(CHUNK_BYTES)
        .map(|part| {
            let mut frame = Vec::with_capacity(part.len() + 1);
            frame.push(CHUNK);
            frame.extend_from_slice(part);
            Bytes::from(frame)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_become_tagged_chunks() {
        assert!(chunks(b"").is_empty(), "an empty file has no chunk");
        let content: Vec<u8> = (0..CHUNK_BYTES + 3).map(|i| (i % 7) as u8).collect();
        let frames = chunks(&content);
        assert_eq!(
            frames.iter().map(|f| f.len()).collect::<Vec<_>>(),
            [CHUNK_BYTES + 1, 4]
        );
        assert!(frames.iter().all(|f| f[0] == CHUNK));
        let joined: Vec<u8> = frames.iter().flat_map(|f| f[1..].to_vec()).collect();
        assert_eq!(joined, content);
    }
}
