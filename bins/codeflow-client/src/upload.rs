//! `client/uploadFiles`: the server's sync asks for what its mirror lacks over one upload on
//! `/ws/file-stream/{operation_id}` (binary frames, `codeflow_file_stream::transfer`) instead
//! of `client/readFiles` batches of JSON-escaped content.
//!
//! Each file is read once, through the root's jail, and sent with the hash the manifest
//! carried (the server lists it): nothing is hashed again here. A file whose size is no longer
//! the manifest's changed since; it is not sent (the server reads it with `client/readFile`,
//! and the watcher's change follows anyway). Reading runs on a blocking thread ahead of the
//! socket (a bounded queue of frames). A connection that breaks is dialled again and resumes
//! after the files the server says it has (`start.received`); the request's answer is the
//! server's summary.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use codeflow_file_stream::transfer::{
    CHUNK, CHUNK_BYTES, FileHeader, UploadAll, UploadFilesParams, WholeFrames, header_frame,
};
use codeflow_file_stream::{FileError, Jail, Manifest, PlainDirs, RelPath, RemoteError};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::cli::Resolved;

mod stream;

/// Connections tried for one upload (the first and the resumes).
const ATTEMPTS: u32 = 6;
/// Frames read ahead of the socket.
const READ_AHEAD: usize = 64;
/// How long the server may take to store the last batch and send its summary.
const SUMMARY_WAIT: Duration = Duration::from_secs(120);

/// Sends a sync's files over upload transfers.
pub struct Uploader {
    jail: Jail,
    /// The manifest the first sync sent with `uploadAll` (what `all` refers to), once the
    /// start-up scan has it.
    manifest: crate::files::InitialManifest,
    server: String,
    project: String,
    tokens: crate::tokens::Tokens,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Why one connection of an upload ended early.
enum Broken {
    /// Worth dialling again (the connection dropped or was refused for now).
    Retry(String),
    /// Not (the operation is gone, spent, or not ours).
    Fatal(String),
}

impl Uploader {
    /// An uploader for the relay's root and server; `None` when the root cannot be jailed (then
    /// `client/uploadFiles` is answered as unknown and the server reads files instead).
    pub fn new(target: &Resolved, manifest: crate::files::InitialManifest) -> Option<Arc<Self>> {
        let jail = Jail::new(&target.root).ok()?;
        Some(Arc::new(Self {
            jail,
            manifest,
            server: target.server.clone(),
            project: target.project.clone(),
            tokens: target.tokens.clone(),
            tls: target.tls.clone(),
        }))
    }

    /// Serves one `client/uploadFiles`: its answer is the server's summary of the transfer.
    pub async fn run(&self, params: Value) -> Result<Value, RemoteError> {
        let params: UploadFilesParams = serde_json::from_value(params).map_err(|e| {
            RemoteError::from(&FileError::InvalidParams(format!(
                "invalid client/uploadFiles params: {e}"
            )))
        })?;
        let url = self.url_for(&params.url).map_err(|e| {
            RemoteError::from(&FileError::InvalidParams(format!(
                "client/uploadFiles: {e}"
            )))
        })?;
        let files: Arc<Vec<Wanted>> = Arc::new(match params.all {
            Some(all) => match self.manifest.get() {
                Some(manifest) => whole_manifest(manifest, all)?,
                None => {
                    return Err(RemoteError::from(&FileError::InvalidParams(
                        "client/uploadFiles: `all` before this relay's scan has a manifest".into(),
                    )));
                }
            },
            None => params
                .files
                .into_iter()
                .map(|f| Wanted {
                    rel: RelPath::parse(&f.path).ok(),
                    path: f.path,
                    size: f.size,
                    hash: f.hash,
                })
                .collect(),
        });
        let whole = params.whole_frames;
        tracing::info!(files = files.len(), "sync upload asked for");
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                pause_before_resuming("sync upload", attempt, &last).await;
            }
            let produce = |received: Received, out: mpsc::Sender<Bytes>| {
                let files = Arc::clone(&files);
                let jail = self.jail.clone();
                async move {
                    tokio::task::spawn_blocking(move || {
                        read_frames(&jail, &files, &received, whole, &out)
                    })
                    .await
                    .unwrap_or_default()
                }
            };
            match self.send_once(&url, produce).await {
                Ok(summary) => return Ok(summary),
                Err(Broken::Retry(why)) => last = why,
                Err(Broken::Fatal(why)) => {
                    last = why;
                    break;
                }
            }
        }
        Err(RemoteError::from(&FileError::Unavailable(format!(
            "sync upload failed: {last}"
        ))))
    }

    /// The endpoint's URL: the server URL's `/ws` path replaced by `path` (a proxy's prefix
    /// kept), with the project as the routing key.
    fn url_for(&self, path: &str) -> Result<String, String> {
        if !path.starts_with("/ws/file-stream/") {
            return Err(format!("`{path}` is not a /ws/file-stream/ path"));
        }
        let mut url = url::Url::parse(&self.server).map_err(|e| e.to_string())?;
        let prefix = url
            .path()
            .strip_suffix("/ws")
            .unwrap_or(url.path())
            .trim_end_matches('/')
            .to_owned();
        url.set_path(&format!("{prefix}{path}"));
        Ok(crate::dial::with_project(url.as_str(), &self.project))
    }

    /// One connection of an upload: `produce` gets what the server already has and puts the
    /// frames of the rest on its queue, returning what it did not send; then `end`, and the
    /// server's summary.
    async fn send_once<F, Fut>(&self, url: &str, produce: F) -> Result<Value, Broken>
    where
        F: FnOnce(Received, mpsc::Sender<Bytes>) -> Fut,
        Fut: std::future::Future<Output = Vec<Value>>,
    {
        let mut request = url
            .into_client_request()
            .map_err(|e| Broken::Fatal(e.to_string()))?;
        if let Some(token) = self.tokens.current()
            && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
        {
            request.headers_mut().insert("authorization", value);
        }
        codeflow_transport::tls::install_crypto_provider();
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(4 * 1024 * 1024))
            .max_frame_size(Some(4 * 1024 * 1024));
        let connector = self.tls.clone().map(tokio_tungstenite::Connector::Rustls);
        let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            true,
            connector,
        )
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r)
                if matches!(r.status().as_u16(), 401 | 403 | 404 | 410) =>
            {
                Broken::Fatal(format!(
                    "the server refused the upload: HTTP {}",
                    r.status()
                ))
            }
            other => Broken::Retry(other.to_string()),
        })?;
        let (mut sink, mut stream) = socket.split();
        // `start`: what the server already has (a resumed operation).
        let received: Received = loop {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    if v["type"] == "start" {
                        break v["received"]
                            .as_array()
                            .map(|a| a.iter().filter_map(Value::as_u64).collect())
                            .unwrap_or_default();
                    }
                }
                Some(Ok(_)) => continue,
                _ => return Err(Broken::Retry("closed before `start`".into())),
            }
        };
        // The server's acknowledgements and summary, read while the files go out.
        let listener = tokio::spawn(async move {
            while let Some(message) = stream.next().await {
                match message {
                    Ok(Message::Text(text)) => {
                        let v: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                        if v["type"] == "summary" {
                            return Ok(v);
                        }
                    }
                    Ok(Message::Close(frame)) => {
                        let why = frame.map(|f| format!("{} {}", f.code, f.reason));
                        return Err(format!("closed: {}", why.unwrap_or_default()));
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            Err("the connection ended before the summary".to_owned())
        });
        let sending = std::time::Instant::now();
        let (frames, mut queue) = mpsc::channel::<Bytes>(READ_AHEAD);
        let pump = async {
            let mut sent = Ok(());
            while let Some(frame) = queue.recv().await {
                if let Err(e) = sink.feed(Message::Binary(frame)).await {
                    sent = Err(e.to_string());
                    break;
                }
            }
            drop(queue);
            sent
        };
        let (skipped, sent) = tokio::join!(produce(received, frames), pump);
        if let Err(e) = sent {
            listener.abort();
            return Err(Broken::Retry(e));
        }
        let end = json!({"type": "end", "notSent": skipped});
        if let Err(e) = sink.send(Message::Text(end.to_string().into())).await {
            listener.abort();
            return Err(Broken::Retry(e.to_string()));
        }
        tracing::info!(
            ms = sending.elapsed().as_millis() as u64,
            "sync upload: every file sent"
        );
        let summary = match tokio::time::timeout(SUMMARY_WAIT, listener).await {
            Ok(Ok(Ok(summary))) => summary,
            Ok(Ok(Err(why))) => return Err(Broken::Retry(why)),
            Ok(Err(e)) => return Err(Broken::Retry(e.to_string())),
            Err(_) => return Err(Broken::Retry("no summary from the server".into())),
        };
        let _ = sink.send(Message::Close(None)).await;
        Ok(summary)
    }
}

/// `all`: every file of the manifest sent with `uploadAll`, in its order; refused when the
/// counts are not that manifest's (the server then reads the files).
fn whole_manifest(manifest: &Manifest, all: UploadAll) -> Result<Vec<Wanted>, RemoteError> {
    if all.files != manifest.len() as u64 || all.bytes != manifest.total_bytes() {
        return Err(RemoteError::from(&FileError::InvalidParams(format!(
            "client/uploadFiles: `all` names {} files / {} bytes, but this relay's manifest has {} / {}",
            all.files,
            all.bytes,
            manifest.len(),
            manifest.total_bytes()
        ))));
    }
    Ok(manifest
        .iter()
        .map(|(rel, entry)| Wanted {
            path: entry.path.clone(),
            rel: Some(rel.clone()),
            size: entry.size,
            hash: entry.hash.as_str().to_owned(),
        })
        .collect())
}

/// What the server says it has of an upload (`start.received`).
type Received = std::collections::HashSet<u64>;

/// One file the server wants.
struct Wanted {
    /// The path as the server gave it, and parsed (`None`: not a valid relative path).
    path: String,
    rel: Option<RelPath>,
    size: u64,
    hash: String,
}

/// Reads the wanted files not `received` yet, in order, into frames on `out` (small files
/// packed into whole-file frames when `whole`, see [`file_frames`]); returns what it did not
/// send (vanished, unreadable, outside the root, or changed since the manifest).
fn read_frames(
    jail: &Jail,
    files: &[Wanted],
    received: &Received,
    whole: bool,
    out: &mpsc::Sender<Bytes>,
) -> Vec<Value> {
    let mut skipped = Vec::new();
    // 10,000 files in a few hundred directories: each directory is checked once.
    let mut plain = PlainDirs::default();
    let mut packer = whole.then(WholeFrames::default);
    for (index, file) in files.iter().enumerate() {
        let index = index as u64;
        if received.contains(&index) {
            continue;
        }
        let read = file
            .rel
            .as_ref()
            .ok_or_else(|| "not a relative path".to_owned())
            .and_then(|rel| {
                jail.resolve_remembering(rel, &mut plain)
                    .map_err(|e| e.to_string())
            })
            .and_then(|abs| read_file(&abs, file.size));
        let (content, mode) = match read {
            Ok(read) => read,
            Err(why) => {
                skipped.push(json!({"path": file.path, "why": why}));
                continue;
            }
        };
        let header = FileHeader {
            index,
            path: file.path.clone(),
            size: file.size,
            mode,
            hash: file.hash.clone(),
        };
        let sent = file_frames(&header, content, packer.as_mut())
            .into_iter()
            .all(|frame| out.blocking_send(frame).is_ok());
        if !sent {
            return skipped;
        }
    }
    if let Some(last) = packer.as_mut().and_then(WholeFrames::take) {
        let _ = out.blocking_send(last);
    }
    skipped
}

/// The frames to send for a file: its header, then its content's chunk frames; or, when the
/// server takes whole-file frames (a `packer`) and the content is at most one chunk, the
/// frame the file filled, if it did — small files go a frame of up to 256 KiB at a time
/// instead of two messages each, on both sides. The sender sends what `packer` still holds
/// when it has no file ready. A file sent as a header and chunks goes after the packed ones.
fn file_frames(
    header: &FileHeader,
    content: Content,
    packer: Option<&mut WholeFrames>,
) -> Vec<Bytes> {
    match (content, packer) {
        (Content::Frame(frame), Some(packer)) => {
            let bytes = frame.as_ref().map_or(&[][..], |f| &f[1..]);
            packer.push(header, bytes).into_iter().collect()
        }
        (content, packer) => {
            let mut frames: Vec<Bytes> = packer.and_then(WholeFrames::take).into_iter().collect();
            frames.push(header_frame(header));
            match content {
                Content::Frame(frame) => frames.extend(frame),
                Content::Frames(chunks) => frames.extend(chunks),
            }
            frames
        }
    }
}

enum Content {
    /// The one chunk frame of a file up to [`CHUNK_BYTES`] (`None`: empty).
    Frame(Option<Bytes>),
    /// A larger file's chunk frames, read straight into them (no copy into frames after).
    Frames(Vec<Bytes>),
}

/// Reads a file of `size` bytes (by the manifest) with its mode bits; refused when it is no
/// longer that size (changed since the manifest).
fn read_file(abs: &std::path::Path, size: u64) -> Result<(Content, u32), String> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let file = std::fs::File::open(abs).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() != size {
        return Err("changed since the manifest".into());
    }
    let mode = meta.permissions().mode() & 0o7777;
    let len = usize::try_from(size).map_err(|e| e.to_string())?;
    if len == 0 {
        return Ok((Content::Frame(None), mode));
    }
    if len <= CHUNK_BYTES {
        let mut frame = Vec::with_capacity(len + 1);
        frame.push(CHUNK);
        file.take(size + 1)
            .read_to_end(&mut frame)
            .map_err(|e| e.to_string())?;
        if frame.len() != len + 1 {
            return Err("changed since the manifest".into());
        }
        return Ok((Content::Frame(Some(frame.into())), mode));
    }
    let changed = || "changed since the manifest".to_owned();
    let mut reader = file.take(size + 1);
    let mut frames = Vec::with_capacity(len.div_ceil(CHUNK_BYTES));
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK_BYTES);
        let mut frame = Vec::with_capacity(n + 1);
        frame.push(CHUNK);
        (&mut reader)
            .take(n as u64)
            .read_to_end(&mut frame)
            .map_err(|e| e.to_string())?;
        if frame.len() != n + 1 {
            return Err(changed());
        }
        frames.push(frame.into());
        left -= n;
    }
    // Longer than the manifest said: changed since.
    if reader.read(&mut [0u8; 1]).map_err(|e| e.to_string())? != 0 {
        return Err(changed());
    }
    Ok((Content::Frames(frames), mode))
}

/// Before attempt `attempt` (≥ 1) of an upload whose connection was lost (`last`): waits
/// 400 ms doubling up to 6.4 s, saying so.
pub(crate) async fn pause_before_resuming(what: &str, attempt: u32, last: &str) {
    let delay = Duration::from_millis(200 * (1 << attempt.min(5)));
    tracing::info!(
        "{what}: connection lost ({last}); resuming in {} ms",
        delay.as_millis()
    );
    tokio::time::sleep(delay).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_the_kept_manifest_when_the_counts_match() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/b.txt"), b"bb").unwrap();
        std::fs::write(root.join("a.txt"), b"a").unwrap();
        let manifest = Manifest::scan(
            &root,
            &codeflow_file_stream::FileFilter::new(&root, Default::default()).unwrap(),
            &Default::default(),
        )
        .unwrap();
        let wanted = whole_manifest(&manifest, UploadAll { files: 2, bytes: 3 }).unwrap();
        let listed: Vec<(&str, u64)> = wanted.iter().map(|w| (w.path.as_str(), w.size)).collect();
        assert_eq!(
            listed,
            [("a.txt", 1), ("d/b.txt", 2)],
            "the manifest's path order"
        );
        assert_eq!(
            wanted[1].hash,
            codeflow_file_stream::ContentHash::of(b"bb").as_str()
        );
        // Another manifest than the one kept: refused, the server reads the files instead.
        assert!(whole_manifest(&manifest, UploadAll { files: 2, bytes: 4 }).is_err());
        assert!(whole_manifest(&manifest, UploadAll { files: 3, bytes: 3 }).is_err());
    }

    #[test]
    fn a_large_file_is_read_into_its_chunk_frames() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..CHUNK_BYTES * 2 + 5).map(|i| (i % 251) as u8).collect();
        let path = dir.path().join("big.bin");
        std::fs::write(&path, &content).unwrap();
        let (Content::Frames(frames), _) = read_file(&path, content.len() as u64).unwrap() else {
            panic!("a large file comes as frames");
        };
        assert_eq!(
            frames.iter().map(|f| f.len()).collect::<Vec<_>>(),
            [CHUNK_BYTES + 1, CHUNK_BYTES + 1, 6]
        );
        assert!(frames.iter().all(|f| f[0] == CHUNK));
        let joined: Vec<u8> = frames.iter().flat_map(|f| f[1..].to_vec()).collect();
        assert_eq!(joined, content);
        // Larger than one chunk: a header and chunks even to a server that takes files whole.
        let (read, mode) = read_file(&path, content.len() as u64).unwrap();
        let header = FileHeader {
            index: 0,
            path: "big.bin".into(),
            size: (CHUNK_BYTES * 2 + 5) as u64,
            mode,
            hash: "h".into(),
        };
        let mut packer = WholeFrames::default();
        let small = FileHeader {
            size: 1,
            ..header.clone()
        };
        assert!(packer.push(&small, b"x").is_none());
        let sent = file_frames(&header, read, Some(&mut packer));
        // The packed small file first, then the large one's header and three chunks.
        assert_eq!(sent.len(), 5);
        assert_eq!(sent[0][0], codeflow_file_stream::transfer::WHOLE);
        assert_eq!(sent[1][0], codeflow_file_stream::transfer::HEADER);
        assert!(packer.take().is_none());
        // Not the manifest's size any more, either way: refused.
        assert!(read_file(&path, content.len() as u64 - 1).is_err());
        assert!(read_file(&path, content.len() as u64 + 1).is_err());
    }

    #[test]
    fn reads_frames_and_skips_changed_and_escaping_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("a.txt"), b"abc").unwrap();
        std::fs::write(root.join("empty"), b"").unwrap();
        std::fs::write(root.join("grew.txt"), b"longer now").unwrap();
        let jail = Jail::new(&root).unwrap();
        let wanted = |path: &str, size: u64| Wanted {
            path: path.into(),
            rel: RelPath::parse(path).ok(),
            size,
            hash: "h".into(),
        };
        let files = vec![
            wanted("a.txt", 3),
            wanted("empty", 0),
            wanted("grew.txt", 4),
            wanted("../outside", 1),
        ];
        let (tx, mut rx) = mpsc::channel(16);
        let skipped = read_frames(&jail, &files, &Default::default(), false, &tx);
        drop(tx);
        let mut frames = Vec::new();
        while let Ok(f) = rx.try_recv() {
            frames.push(f);
        }
        // a.txt: header + one chunk; empty: header only.
        assert_eq!(frames.len(), 3);
        assert_eq!(&frames[1][..], b"\x02abc");
        assert_eq!(skipped.len(), 2, "{skipped:?}");

        // To a server that takes whole-file frames: a.txt and the empty file in one.
        let (tx, mut rx) = mpsc::channel(16);
        read_frames(&jail, &files, &Default::default(), true, &tx);
        drop(tx);
        let mut frames = Vec::new();
        while let Ok(f) = rx.try_recv() {
            frames.push(f);
        }
        assert_eq!(frames.len(), 1);
        match codeflow_file_stream::transfer::parse(&frames[0]) {
            Ok(codeflow_file_stream::transfer::Frame::Whole(files)) => {
                let got: Vec<(&str, &[u8])> = files
                    .iter()
                    .map(|(h, c)| (h.path.as_str(), &c[..]))
                    .collect();
                assert_eq!(got, [("a.txt", &b"abc"[..]), ("empty", &b""[..])]);
            }
            other => panic!("one whole-file frame: {other:?}"),
        }
    }
}
