//! `GET /ws/file-stream/{operation_id}`: the data of a transfer begun with
//! `files/beginTransfer` (`transfers.rs`), in the framed binary format of
//! `codeflow_file_stream::transfer`, with JSON text frames for the rest: `start` (where this
//! connection begins), `progress` after each file, `summary` at the end; the client sends
//! `ack` after each file it has stored, which is where a resumed connection starts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use codeflow_file_stream::transfer::{CHUNK_BYTES, FileHeader, chunk_frame, header_frame};
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::app::App;
use crate::transfers::{OPERATION_TTL, Operation, Refusal};

fn refuse(status: StatusCode, error: impl std::fmt::Display, suggestion: &str) -> Response {
    metrics::counter!("codeflow_errors_total", "kind" => "transfer_refused").increment(1);
    (
        status,
        axum::Json(json!({"error": error.to_string(), "suggestion": suggestion})),
    )
        .into_response()
}

pub async fn upgrade(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Some(refused) = crate::routes::check_origin(&app, &headers) {
        return refused;
    }
    let Some(project) = app.transfers.project_of(&id) else {
        return refuse(
            StatusCode::NOT_FOUND,
            Refusal::Unknown.message(),
            "begin one with files/beginTransfer on /ws",
        );
    };
    // The operation id is the credential; a token sent with it must grant its project.
    if let Some(token) = crate::routes::bearer_token(&headers) {
        match app.registry.auth.verify(Some(&token)) {
            Ok(grant) if grant.allows_project_name(&project) => {}
            Ok(_) => {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "this transfer belongs to a project this token does not grant",
                    "begin a transfer from a session of your own project",
                );
            }
            Err(e) => return refuse(StatusCode::UNAUTHORIZED, &e, e.suggestion()),
        }
    }
    let (op, generation) = match app.transfers.start(&id) {
        Ok(taken) => taken,
        Err(r) => {
            let status = match r {
                Refusal::Unknown => StatusCode::NOT_FOUND,
                Refusal::Spent | Refusal::Expired => StatusCode::GONE,
            };
            return refuse(
                status,
                r.message(),
                "begin a new transfer with files/beginTransfer",
            );
        }
    };
    let max_file = app.file_limits.max_file_size;
    upgrade.on_upgrade(move |socket| serve(socket, op, generation, max_file))
}

/// Reads one file for sending: a regular file (not a symbolic link), within the size limit.
async fn read(path: &std::path::Path, max: u64) -> Result<(Vec<u8>, u32), String> {
    let meta = tokio::fs::symlink_metadata(path)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.file_type().is_file() {
        return Err("not a regular file (symbolic links are not sent)".into());
    }
    if meta.len() > max {
        return Err(format!("larger than the file size limit ({max} bytes)"));
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?;
    Ok((bytes, mode))
}

async fn serve(socket: WebSocket, op: Arc<Mutex<Operation>>, generation: u64, max_file: u64) {
    let (mut sink, mut stream) = socket.split();
    // Acknowledgements move the resume point; they arrive while files are being sent.
    let acks = {
        let op = op.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message
                    && let Ok(v) = serde_json::from_str::<Value>(text.as_str())
                    && v["type"] == "ack"
                    && let Some(index) = v["index"].as_u64()
                {
                    let mut o = op.lock();
                    if let Some(slot) = usize::try_from(index)
                        .ok()
                        .and_then(|i| o.settled.get_mut(i))
                    {
                        *slot = true;
                    }
                }
            }
        })
    };
    let (from, items, settled, total_bytes) = {
        let o = op.lock();
        let from = o.first_unsettled();
        tracing::info!(project = %o.project, subject = %o.subject, from,
            files = o.items.len(), "transfer (download) started");
        (from, o.items.clone(), o.settled.clone(), o.total_bytes)
    };
    let total_files = items.len();
    let started = Instant::now();
    let outcome: Result<(), ()> = async {
        let start = json!({"type": "start", "from": from, "totalFiles": total_files, "totalBytes": total_bytes});
        sink.send(Message::Text(start.to_string().into())).await.map_err(|_| ())?;
        let mut sent_bytes: u64 = items
            .iter()
            .zip(&settled)
            .filter(|(_, s)| **s)
            .map(|(i, _)| i.size)
            .sum();
        let mut skipped = Vec::new();
        let mut sent_files = 0usize;
        for (index, item) in items.iter().enumerate().skip(from) {
            if settled[index] {
                continue;
            }
            if op.lock().generation != generation {
                return Err(()); // a newer connection took the operation over
            }
            match read(&item.path, max_file).await {
                Ok((bytes, mode)) => {
                    let header = FileHeader {
                        index: index as u64,
                        path: item.rel.as_str().to_owned(),
                        size: bytes.len() as u64,
                        mode,
                        hash: blake3::hash(&bytes).to_hex().to_string(),
                    };
                    sink.feed(Message::Binary(header_frame(&header))).await.map_err(|_| ())?;
                    for chunk in bytes.chunks(CHUNK_BYTES) {
                        sink.feed(Message::Binary(chunk_frame(chunk))).await.map_err(|_| ())?;
                    }
                    sent_files += 1;
                    sent_bytes += bytes.len() as u64;
                    metrics::counter!("codeflow_transfer_bytes_total", "direction" => "download")
                        .increment(bytes.len() as u64);
                    metrics::counter!("codeflow_transfer_files_total", "direction" => "download")
                        .increment(1);
                }
                Err(error) => {
                    if let Some(slot) = op.lock().settled.get_mut(index) {
                        *slot = true;
                    }
                    skipped.push(json!({"index": index, "path": item.rel.as_str(), "error": error}));
                }
            }
            let progress = json!({"type": "progress", "bytes": sent_bytes, "totalBytes": total_bytes,
                "files": index + 1, "totalFiles": total_files});
            sink.send(Message::Text(progress.to_string().into())).await.map_err(|_| ())?;
        }
        let summary = json!({"type": "summary", "from": from, "files": sent_files,
            "bytes": sent_bytes, "totalFiles": total_files, "skipped": skipped,
            "durationMs": started.elapsed().as_millis() as u64});
        sink.send(Message::Text(summary.to_string().into())).await.map_err(|_| ())?;
        Ok(())
    }
    .await;
    if outcome.is_ok() {
        // The client's last acknowledgements, until it closes (or a while).
        let mut acks = acks;
        if tokio::time::timeout(Duration::from_secs(10), &mut acks)
            .await
            .is_err()
        {
            acks.abort();
        }
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: 1000,
                reason: "transfer complete".into(),
            })))
            .await;
    } else {
        acks.abort();
    }
    let mut o = op.lock();
    if o.generation != generation {
        return;
    }
    // Spent once every file is acknowledged (or skipped); otherwise a new connection resumes
    // with the files not acknowledged.
    o.done = o.settled.iter().all(|s| *s);
    o.expires = Instant::now() + OPERATION_TTL;
}
