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
use codeflow_file_stream::transfer::{
    CHUNK_BYTES, FileHeader, Incoming, Received, chunk_frame, header_frame,
};
use codeflow_lsp_pool::lsp_types::FileChangeType;
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
    if let Some(refused) = crate::routes::refuse_origin(&app, &headers) {
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
    let limits = app.file_limits;
    let sync = op.lock().sync.clone();
    if let Some(sync) = sync {
        return upgrade
            .max_message_size(CHUNK_BYTES + 64 * 1024)
            .on_upgrade(move |socket| {
                crate::sync_receive::receive_sync(socket, op, generation, sync)
            });
    }
    let is_upload = op.lock().upload.is_some();
    if is_upload {
        let registry = app.registry.clone();
        return upgrade
            .max_message_size(CHUNK_BYTES + 64 * 1024)
            .on_upgrade(move |socket| receive(socket, op, generation, limits, registry));
    }
    upgrade.on_upgrade(move |socket| serve(socket, op, generation, limits.max_file_size))
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
    if o.done {
        o.items = Vec::new();
    }
}

/// An upload: files into the project's mirror, each stored whole once its hash checks.
async fn receive(
    socket: WebSocket,
    op: Arc<Mutex<Operation>>,
    generation: u64,
    limits: codeflow_file_stream::Limits,
    registry: Arc<codeflow_session::SessionRegistry>,
) {
    use codeflow_file_stream::transfer::{Assembler, Step};
    let (mut sink, mut stream) = socket.split();
    let (workspace, project, allowed, received) = {
        let o = op.lock();
        let Some(up) = &o.upload else { return };
        let Some(workspace) = &up.workspace else {
            return;
        };
        tracing::info!(project = %o.project, subject = %o.subject, "transfer (upload) started");
        (
            workspace.clone(),
            o.project.clone(),
            up.allowed.clone(),
            up.received.clone(),
        )
    };
    let mirror = workspace.mirror.clone();
    // Stored files not yet told to the running language servers (in batches).
    let mut changed: Vec<(codeflow_file_stream::MirrorPath, FileChangeType)> = Vec::new();
    let mut stored_paths: Vec<String> = Vec::new();
    let jail = codeflow_file_stream::Jail::new(mirror.root()).ok();
    let start = json!({"type": "start", "direction": "upload", "received": received});
    if sink
        .send(Message::Text(start.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut assembler = Assembler::default();
    let started = Instant::now();
    let outcome: Result<(), Option<(u16, String)>> = 'frames: loop {
        let Some(Ok(message)) = stream.next().await else {
            break Err(None);
        };
        if op.lock().generation != generation {
            break Err(None); // a newer connection took the operation over
        }
        let checked = |h: &FileHeader| check(h, &limits, allowed.as_ref(), jail.as_ref());
        let files = match assembler.take(as_received(&message), checked) {
            Step::Files(files) => files,
            Step::More => continue,
            Step::Over(outcome) => break outcome,
        };
        // Files are complete: store or refuse each, in order.
        for file in files {
            let answer = store(&mirror, file).await;
            if let Ok((_, _, path, kind)) = &answer {
                stored_paths.push(path.rel().as_str().to_owned());
                changed.push((path.clone(), *kind));
                if changed.len() >= 256 {
                    codeflow_workspace::tell_language_servers(&workspace, &changed).await;
                    changed.clear();
                }
            }
            let reply = {
                let mut o = op.lock();
                let Some(up) = o.upload.as_mut() else {
                    break 'frames Err(None);
                };
                match &answer {
                    Ok((index, size, _, _)) => {
                        up.received.insert(*index);
                        up.bytes += size;
                        metrics::counter!("codeflow_transfer_bytes_total", "direction" => "upload")
                            .increment(*size);
                        metrics::counter!("codeflow_transfer_files_total", "direction" => "upload")
                            .increment(1);
                        json!({"type": "ack", "index": index, "files": up.received.len(), "bytes": up.bytes})
                    }
                    Err(rejected) => {
                        up.rejected.push(rejected.clone());
                        let mut r = rejected.clone();
                        r["type"] = "rejected".into();
                        r
                    }
                }
            };
            if sink
                .send(Message::Text(reply.to_string().into()))
                .await
                .is_err()
            {
                break 'frames Err(None);
            }
        }
    };
    codeflow_workspace::tell_language_servers(&workspace, &changed).await;
    // The project's `files` channel hears of what this connection stored.
    if !stored_paths.is_empty()
        && let Ok(project) = codeflow_session::ProjectId::parse(&project)
    {
        registry.channels().publish(
            &project,
            codeflow_session::Channel::Files,
            json!({"event": "transferred", "direction": "upload", "paths": stored_paths,
                "complete": outcome.is_ok()}),
        );
    }
    end_upload(&mut sink, &op, generation, outcome, started, json!({})).await;
}

/// An upload connection's message as the framed format's [`Assembler::take`] sees it.
///
/// [`Assembler::take`]: codeflow_file_stream::transfer::Assembler::take
pub fn as_received(message: &Message) -> Received<'_> {
    match message {
        Message::Binary(frame) => Received::Binary(frame),
        Message::Text(text) => Received::Text(text.as_str()),
        Message::Close(_) => Received::Close,
        Message::Ping(_) | Message::Pong(_) => Received::Other,
    }
}

/// Ends an upload's connection. `Ok`: the operation is spent, and its summary (`{type,
/// direction, files, bytes, rejected, durationMs}` and `extra`'s fields) goes out before the
/// close 1000. `Err`: what was stored stays stored (a file cut in the middle was never
/// written) and the operation may be resumed within the TTL; then the close frame, if any.
pub async fn end_upload<S>(
    sink: &mut S,
    op: &Mutex<Operation>,
    generation: u64,
    outcome: Result<(), Option<(u16, String)>>,
    started: Instant,
    extra: Value,
) where
    S: futures::Sink<Message> + Unpin,
{
    let close = match outcome {
        Ok(()) => {
            let summary = {
                let mut o = op.lock();
                o.done = true;
                o.expires = Instant::now() + OPERATION_TTL;
                if let Some(up) = o.upload.as_mut() {
                    up.workspace = None; // the mirror need not stay open for a spent id
                }
                o.upload.as_ref().map(|up| {
                    let mut summary = json!({"type": "summary", "direction": "upload",
                        "files": up.received.len(), "bytes": up.bytes, "rejected": up.rejected,
                        "durationMs": started.elapsed().as_millis() as u64});
                    if let (Value::Object(summary), Value::Object(extra)) = (&mut summary, &extra) {
                        summary.extend(extra.clone());
                    }
                    summary
                })
            };
            if let Some(summary) = summary {
                let _ = sink.send(Message::Text(summary.to_string().into())).await;
            }
            Some((1000, "transfer complete".to_owned()))
        }
        Err(close) => {
            let mut o = op.lock();
            if o.generation == generation {
                o.expires = Instant::now() + OPERATION_TTL;
            }
            close
        }
    };
    if let Some((code, reason)) = close {
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
    }
}

/// Why a file announced by `header` will not be stored, if it will not.
fn check(
    header: &FileHeader,
    limits: &codeflow_file_stream::Limits,
    allowed: Option<&std::collections::HashSet<String>>,
    jail: Option<&codeflow_file_stream::Jail>,
) -> Option<(i64, String)> {
    use codeflow_file_stream::error::codes;
    let rel = match codeflow_file_stream::RelPath::parse_with(&header.path, limits) {
        Ok(rel) => rel,
        Err(e) => return Some((e.code(), e.to_string())),
    };
    if allowed.is_some_and(|a| !a.contains(rel.as_str())) {
        return Some((
            codes::PATH_REJECTED,
            "not among the `paths` this transfer was begun for".into(),
        ));
    }
    if header.size > limits.max_file_size {
        return Some((
            codes::FILE_TOO_LARGE,
            format!(
                "larger than the file size limit ({} bytes)",
                limits.max_file_size
            ),
        ));
    }
    match jail.map(|j| j.resolve(&rel)) {
        Some(Ok(_)) => None,
        Some(Err(e)) => Some((e.code(), e.to_string())),
        None => Some((codes::IO, "the project's mirror is not available".into())),
    }
}

/// Stores a complete file into the mirror: `(index, size, path, created or changed)`, or the
/// refusal to report.
async fn store(
    mirror: &codeflow_file_stream::Mirror,
    file: Incoming,
) -> Result<(u64, u64, codeflow_file_stream::MirrorPath, FileChangeType), Value> {
    let Incoming {
        header,
        content,
        refused,
        ..
    } = file;
    let refuse = |code: i64, error: String| json!({"index": header.index, "path": header.path, "code": code, "error": error});
    use codeflow_file_stream::error::codes;
    if let Some((code, error)) = refused {
        return Err(refuse(code, error));
    }
    let actual = content.hash();
    if actual.as_str() != header.hash {
        return Err(refuse(
            codes::HASH_MISMATCH,
            format!("content does not match its hash (got {actual}); nothing was written"),
        ));
    }
    let rel = codeflow_file_stream::RelPath::parse(&header.path)
        .map_err(|e| refuse(e.code(), e.to_string()))?;
    let path = mirror.paths().mirror_path(&rel);
    let size = content.len();
    let kind = if mirror.hash(&path).is_some() {
        FileChangeType::CHANGED
    } else {
        FileChangeType::CREATED
    };
    mirror
        .write_local(&path, content.to_bytes().into())
        .await
        .map_err(|e| refuse(e.code(), e.to_string()))?;
    Ok((header.index, size, path, kind))
}
