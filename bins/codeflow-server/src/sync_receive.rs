//! The receiving end of a sync's upload (`client/uploadFiles`, see
//! `codeflow_workspace::sync_upload`): the same framed format and text frames as any upload
//! on `/ws/file-stream/{operation_id}` (`file_stream_socket.rs`), but built for throughput.
//! Reading frames and storing files run side by side: complete files are handed over in
//! batches to a storer task, which stores each batch in one disk task (each file hashed once and
//! written right after, while its bytes are in the cache) and acknowledges it with one `ack`
//! text frame (`indices`, `rejected`, running totals); it stores two batches at a time (both
//! write at once: the mirror's lock is not held across a file's write), each acknowledged as
//! soon as it is stored (a batch stored first does not wait for an earlier, slower one). A
//! file is stored from the frames it came in, not a copy. A file not in the sync's plan (a path that would escape the project included) is read to
//! its end and refused, never written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use codeflow_file_stream::Chunks;
use codeflow_file_stream::transfer::{Assembler, FileHeader, Step};
use codeflow_workspace::SyncUpload;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::file_stream_socket::as_received;
use crate::transfers::Operation;

/// A batch is handed to the storer at this many files…
const BATCH_FILES: usize = 128;
/// …or this many bytes…
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// …or when no frame arrived for this long.
const BATCH_IDLE: Duration = Duration::from_millis(2);
/// Batches waiting for the storer (bounded: a slow disk slows the reader, and so the relay).
const BATCHES_QUEUED: usize = 4;
/// Batches being stored at once (see `store_batches`).
const BATCHES_STORED_AT_ONCE: usize = 2;

enum Item {
    Keep(FileHeader, Chunks),
    Refused(Value),
}

pub async fn receive_sync(
    socket: WebSocket,
    op: Arc<Mutex<Operation>>,
    generation: u64,
    upload: Arc<SyncUpload>,
) {
    let (mut sink, mut stream) = socket.split();
    let received: Vec<u64> = {
        let o = op.lock();
        tracing::info!(project = %o.project, subject = %o.subject, files = upload.total_files(),
            "transfer (sync upload) started");
        o.upload
            .as_ref()
            .map(|u| u.received.iter().copied().collect())
            .unwrap_or_default()
    };
    let start = json!({"type": "start", "direction": "upload", "received": received,
        "totalFiles": upload.total_files(), "totalBytes": upload.total_bytes()});
    if sink
        .send(Message::Text(start.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let started = Instant::now();
    let (batches, batches_rx) = mpsc::channel::<Vec<Item>>(BATCHES_QUEUED);
    let storer = tokio::spawn(store_batches(batches_rx, sink, op.clone(), upload.clone()));
    let mut batch: Vec<Item> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut assembler = Assembler::default();
    let outcome: Result<(), Option<(u16, String)>> = 'frames: loop {
        let next = if batch.is_empty() {
            stream.next().await
        } else {
            match tokio::time::timeout(BATCH_IDLE, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    batch_bytes = 0;
                    if batches.send(std::mem::take(&mut batch)).await.is_err() {
                        break Err(None);
                    }
                    continue;
                }
            }
        };
        let Some(Ok(message)) = next else {
            break Err(None);
        };
        if op.lock().generation != generation {
            break Err(None); // a newer connection took the operation over
        }
        let files = match assembler.take(as_received(&message), |h| upload.check(h)) {
            Step::Files(files) => files,
            Step::More => continue,
            Step::Over(outcome) => break outcome,
        };
        for file in files {
            let item = match file.refused {
                None => {
                    batch_bytes += file.content.len() as usize;
                    Item::Keep(file.header, file.content)
                }
                Some((code, error)) => Item::Refused(json!({"index": file.header.index,
                    "path": file.header.path, "code": code, "error": error})),
            };
            batch.push(item);
            if (batch.len() >= BATCH_FILES || batch_bytes >= BATCH_BYTES)
                && batches.send(std::mem::take(&mut batch)).await.is_err()
            {
                break 'frames Err(None);
            }
            if batch.is_empty() {
                batch_bytes = 0;
            }
        }
    };
    // Files that arrived whole are stored even when the connection then broke: a resume (or
    // the sync's fallback) goes on from there. A file cut in the middle is never written.
    if !batch.is_empty() {
        let _ = batches.send(batch).await;
    }
    drop(batches);
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "sync upload: every frame read"
    );
    let stored = storer.await;
    upload.connection_ended();
    let Ok(mut sink) = stored else {
        return;
    };
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "sync upload: every batch stored"
    );
    let totals = json!({"totalFiles": upload.total_files(), "totalBytes": upload.total_bytes()});
    crate::file_stream_socket::end_upload(&mut sink, &op, generation, outcome, started, totals)
        .await;
}

/// Stores each batch and acknowledges it; hands the socket's sending half back at the end.
async fn store_batches(
    mut batches: mpsc::Receiver<Vec<Item>>,
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    op: Arc<Mutex<Operation>>,
    upload: Arc<SyncUpload>,
) -> futures::stream::SplitSink<WebSocket, Message> {
    // Once the peer is gone, batches are still stored, only not acknowledged.
    let mut connected = true;
    // Two batches at a time, each one blocking task that hashes and writes its files (outside
    // the mirror's lock, so the two write at once); each acknowledged once stored, whatever
    // the order — a finished batch does not hold its slot while an earlier one is still written.
    let stored_batches = futures::stream::poll_fn(|cx| batches.poll_recv(cx))
        .map(|batch| {
            let upload = Arc::clone(&upload);
            async move {
                let mut rejected: Vec<Value> = Vec::new();
                let mut keep = Vec::with_capacity(batch.len());
                for item in batch {
                    match item {
                        Item::Keep(header, bytes) => keep.push((header, bytes)),
                        Item::Refused(r) => rejected.push(r),
                    }
                }
                let results = upload.store(keep).await;
                (rejected, results)
            }
        })
        .buffer_unordered(BATCHES_STORED_AT_ONCE);
    futures::pin_mut!(stored_batches);
    while let Some((mut rejected, results)) = stored_batches.next().await {
        let mut stored = Vec::new();
        let mut stored_bytes = 0;
        for result in results {
            match result {
                Ok((index, size)) => {
                    stored.push(index);
                    stored_bytes += size;
                }
                Err(r) => rejected.push(r),
            }
        }
        metrics::counter!("codeflow_transfer_bytes_total", "direction" => "upload")
            .increment(stored_bytes);
        metrics::counter!("codeflow_transfer_files_total", "direction" => "upload")
            .increment(stored.len() as u64);
        let ack = {
            let mut o = op.lock();
            let Some(up) = o.upload.as_mut() else {
                continue;
            };
            up.received.extend(stored.iter().copied());
            up.bytes += stored_bytes;
            up.rejected.extend(rejected.iter().cloned());
            json!({"type": "ack", "indices": stored, "rejected": rejected,
                "files": up.received.len(), "bytes": up.bytes,
                "totalFiles": upload.total_files(), "totalBytes": upload.total_bytes()})
        };
        if connected
            && sink
                .send(Message::Text(ack.to_string().into()))
                .await
                .is_err()
        {
            connected = false;
        }
    }
    sink
}
