//! A sync's missing files over one upload transfer (`/ws/file-stream/{operation_id}`, binary
//! frames) instead of `client/readFiles` batches of JSON-escaped content.
//!
//! The server binary owns the endpoint and its operations ([`SyncUploads`], registered with
//! [`crate::Workspaces::set_sync_uploads`]); this is what an operation begun for a sync stores
//! and checks: only the files the sync planned, each at the size and hash the relay's
//! manifest gave (the relay sends those without hashing again; here each file is hashed once
//! on arrival, and a file changed since its manifest entry is refused — the sync then reads it
//! with `client/readFile`). Files go into the mirror through [`Mirror::store_incoming`]; until
//! one is stored, reads of it through the mirror wait. A streamed upload
//! ([`SyncUpload::streamed`], `server/syncBegin`) has no plan: each file is checked as it is
//! announced (path, size, index) and stored when its content has the header's hash; the
//! manifest that follows decides what stays.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use codeflow_file_stream::error::{FileError, codes};
use codeflow_file_stream::transfer::{FileHeader, UploadEntry};
use codeflow_file_stream::{
    Chunks, ContentHash, IncomingFile, Limits, Mirror, PathMark, RelPath, SyncProgress,
};
use codeflow_session::Session;
use codeflow_transport::ErrorObject;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// Where a sync begins its upload: the server's transfer operations.
pub trait SyncUploads: Send + Sync {
    /// Makes an upload operation for `session` that stores into `upload`; returns its
    /// operation id and the URL path to connect to (`/ws/file-stream/{id}`).
    fn begin(
        &self,
        session: &Arc<Session>,
        upload: Arc<SyncUpload>,
    ) -> Result<(String, String), ErrorObject>;
}

/// One file the sync expects.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Its path relative to the project root.
    pub rel: RelPath,
    /// Its size by the manifest.
    pub size: u64,
    /// Its hash by the manifest.
    pub hash: ContentHash,
    /// The mirror's version of the path when the sync planned it.
    pub mark: PathMark,
}

/// A streamed upload's announced files.
struct Announced {
    limits: Limits,
    by_index: HashMap<u64, Expected>,
    indices: HashMap<RelPath, u64>,
}

/// Called with the transfer's progress (files and bytes stored so far).
pub type ProgressFn = Arc<dyn Fn(&SyncProgress) + Send + Sync>;

/// What one sync's upload stores, and what it has stored.
pub struct SyncUpload {
    mirror: Mirror,
    /// The planned files (empty for a streamed upload).
    files: Vec<Expected>,
    /// A streamed upload (`server/syncBegin`): the files the relay announced so far.
    streamed: Option<Mutex<Announced>>,
    total_files: usize,
    total_bytes: u64,
    done_files: AtomicU64,
    done_bytes: AtomicU64,
    stored: Mutex<Vec<RelPath>>,
    ended: AtomicBool,
    progress: ProgressFn,
}

impl std::fmt::Debug for SyncUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncUpload")
            .field("files", &self.files.len())
            .field("done_files", &self.done_files.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SyncUpload {
    /// An upload of `files` into `mirror`; reads of them through the mirror wait until each is
    /// stored or the upload ends.
    pub fn new(mirror: Mirror, files: Vec<Expected>, progress: ProgressFn) -> Arc<Self> {
        mirror.expect_incoming(files.iter().map(|f| f.rel.clone()));
        Arc::new(Self {
            total_files: files.len(),
            total_bytes: files.iter().map(|f| f.size).sum(),
            mirror,
            files,
            streamed: None,
            done_files: AtomicU64::new(0),
            done_bytes: AtomicU64::new(0),
            stored: Mutex::new(Vec::new()),
            ended: AtomicBool::new(false),
            progress,
        })
    }

    /// A streamed upload (`server/syncBegin`): no plan, the relay sends files as its scan
    /// reads them, before its manifest exists. Each file is checked as it is announced — its
    /// path by the same lexical rules as a manifest's, its size by the project's limits, its
    /// index and path not announced twice — and stored if its content has the header's hash;
    /// reads of it through the mirror wait from its announcement until it is stored or the
    /// upload ends. `files` and `bytes` (the relay's walk) are only for progress.
    pub fn streamed(
        mirror: Mirror,
        limits: Limits,
        files: u64,
        bytes: u64,
        progress: ProgressFn,
    ) -> Arc<Self> {
        Arc::new(Self {
            total_files: usize::try_from(files).unwrap_or(usize::MAX),
            total_bytes: bytes,
            mirror,
            files: Vec::new(),
            streamed: Some(Mutex::new(Announced {
                limits,
                by_index: HashMap::new(),
                indices: HashMap::new(),
            })),
            done_files: AtomicU64::new(0),
            done_bytes: AtomicU64::new(0),
            stored: Mutex::new(Vec::new()),
            ended: AtomicBool::new(false),
            progress,
        })
    }

    /// The file expected for each header (at its index, with its path), if any; a streamed
    /// upload's announcements are locked once for them all.
    fn expected<'a>(&self, headers: impl Iterator<Item = &'a FileHeader>) -> Vec<Option<Expected>> {
        let pick = |e: &Expected, h: &FileHeader| (e.rel.as_str() == h.path).then(|| e.clone());
        match &self.streamed {
            Some(announced) => {
                let announced = announced.lock();
                headers
                    .map(|h| announced.by_index.get(&h.index).and_then(|e| pick(e, h)))
                    .collect()
            }
            None => headers
                .map(|h| {
                    usize::try_from(h.index)
                        .ok()
                        .and_then(|i| self.files.get(i))
                        .and_then(|e| pick(e, h))
                })
                .collect(),
        }
    }

    /// A streamed upload's check of a header: takes the file as announced, or says why not.
    fn announce(&self, announced: &Mutex<Announced>, header: &FileHeader) -> Option<(i64, String)> {
        let mut announced = announced.lock();
        let rel = match RelPath::parse_with(&header.path, &announced.limits) {
            Ok(rel) if !rel.is_root() => rel,
            Ok(_) => return Some((codes::PATH_REJECTED, "the root is not a file".to_owned())),
            Err(e) => return Some((e.code(), e.to_string())),
        };
        if let Err(e) = announced.limits.check_file_size(rel.as_str(), header.size) {
            return Some((e.code(), e.to_string()));
        }
        match announced.indices.get(&rel) {
            Some(index) if *index != header.index => {
                return Some((
                    codes::PATH_REJECTED,
                    format!("`{rel}` was already sent as file {index}"),
                ));
            }
            _ => {}
        }
        if let Some(other) = announced.by_index.get(&header.index)
            && other.rel != rel
        {
            return Some((
                codes::PATH_REJECTED,
                format!(
                    "file {} of this upload is `{}`, not `{rel}`",
                    header.index, other.rel
                ),
            ));
        }
        if self.is_ended() {
            return Some((
                codes::CONFLICT,
                "the sync stopped waiting for this upload".to_owned(),
            ));
        }
        let mark = self.mirror.expect_one_incoming(&rel);
        announced.indices.insert(rel.clone(), header.index);
        announced.by_index.insert(
            header.index,
            Expected {
                mark,
                rel,
                size: header.size,
                hash: ContentHash::from_hex(header.hash.clone()),
            },
        );
        None
    }

    /// The files, as `client/uploadFiles` lists them (index = position).
    pub fn entries(&self) -> Vec<UploadEntry> {
        self.files
            .iter()
            .map(|f| UploadEntry {
                path: f.rel.as_str().to_owned(),
                size: f.size,
                hash: f.hash.as_str().to_owned(),
            })
            .collect()
    }

    /// How many files the upload brings (a streamed one: the relay's estimate).
    pub fn total_files(&self) -> usize {
        self.total_files
    }

    /// How many bytes the upload brings.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The sync is over: nothing more is stored, and reads of what did not arrive go to disk.
    pub fn end(&self) {
        if !self.ended.swap(true, Ordering::SeqCst) {
            match &self.streamed {
                Some(announced) => self.mirror.end_incoming(announced.lock().indices.keys()),
                None => self.mirror.end_incoming(self.files.iter().map(|f| &f.rel)),
            }
        }
    }

    /// One connection of the upload ended (its last batch stored). For a streamed upload, the
    /// files it announced and did not store stop holding reads back: a resumed connection
    /// announces them again, and a relay that never comes back must not leave them waiting
    /// until its session ends.
    pub fn connection_ended(&self) {
        let Some(announced) = &self.streamed else {
            return;
        };
        let stored: std::collections::HashSet<RelPath> =
            self.stored.lock().iter().cloned().collect();
        let unstored: Vec<RelPath> = announced
            .lock()
            .indices
            .keys()
            .filter(|rel| !stored.contains(*rel))
            .cloned()
            .collect();
        self.mirror.end_incoming(&unstored);
    }

    /// Whether the sync stopped waiting for this upload.
    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// The files stored so far, and their bytes.
    pub fn stored(&self) -> (Vec<RelPath>, u64) {
        (
            self.stored.lock().clone(),
            self.done_bytes.load(Ordering::SeqCst),
        )
    }

    /// Why a file announced by `header` will not be stored, if it will not: `(code, message)`.
    /// Only the files of the plan, at their planned index and size, are taken.
    pub fn check(&self, header: &FileHeader) -> Option<(i64, String)> {
        if let Some(announced) = &self.streamed {
            return self.announce(announced, header);
        }
        let expected = usize::try_from(header.index)
            .ok()
            .and_then(|i| self.files.get(i));
        match expected {
            None => Some((
                codes::PATH_REJECTED,
                format!("no file {} in this sync's upload", header.index),
            )),
            Some(e) if e.rel.as_str() != header.path => Some((
                codes::PATH_REJECTED,
                format!(
                    "file {} of this sync's upload is `{}`, not `{}`",
                    header.index, e.rel, header.path
                ),
            )),
            Some(e) if e.size != header.size => Some((
                codes::HASH_MISMATCH,
                format!(
                    "`{}` is {} bytes by the manifest, {} by the header (changed since: it will be read again)",
                    e.rel, e.size, header.size
                ),
            )),
            Some(_) if self.is_ended() => Some((
                codes::CONFLICT,
                "the sync stopped waiting for this upload".to_owned(),
            )),
            Some(_) => None,
        }
    }

    /// Stores complete files (each checked with [`Self::check`] before its content was kept):
    /// one disk task hashes each once and writes it unless its content is not its manifest
    /// hash. Per file: `Ok((index, size))` stored (or superseded by a newer change, which counts
    /// as done), or the refusal to report (`{index, path, code, error}`).
    pub async fn store(&self, files: Vec<(FileHeader, Chunks)>) -> Vec<Result<(u64, u64), Value>> {
        let refuse = |header: &FileHeader, code: i64, error: String| json!({"index": header.index, "path": header.path, "code": code, "error": error});
        let mut out = Vec::with_capacity(files.len());
        let mut writes = Vec::with_capacity(files.len());
        let mut written = Vec::with_capacity(files.len());
        let ended = self.is_ended();
        let expected = self.expected(files.iter().map(|(header, _)| header));
        for ((header, content), expected) in files.into_iter().zip(expected) {
            let Some(expected) = expected else {
                out.push(Err(refuse(
                    &header,
                    codes::PATH_REJECTED,
                    "not a file of this sync's upload".into(),
                )));
                continue;
            };
            if ended {
                out.push(Err(refuse(
                    &header,
                    codes::CONFLICT,
                    "the sync stopped waiting for this upload".into(),
                )));
                continue;
            }
            out.push(Ok((header.index, content.len())));
            written.push(header);
            writes.push(IncomingFile {
                rel: expected.rel,
                content,
                hash: expected.hash,
                mark: expected.mark,
            });
        }
        let results = self.mirror.store_incoming(writes).await;
        let mut stored_now = Vec::new();
        let mut failed = HashMap::new();
        let mut files_done = 0;
        for (header, (rel, result)) in written.into_iter().zip(results) {
            match result {
                Ok(true) => {
                    self.done_bytes.fetch_add(header.size, Ordering::SeqCst);
                    stored_now.push(rel);
                    files_done += 1;
                }
                Ok(false) => files_done += 1,
                Err(FileError::HashMismatch { actual, .. }) => {
                    failed.insert(
                        header.index,
                        refuse(
                            &header,
                            codes::HASH_MISMATCH,
                            format!(
                                "content does not match its manifest hash (got {actual}); nothing was written, it will be read again"
                            ),
                        ),
                    );
                }
                Err(e) => {
                    failed.insert(header.index, refuse(&header, e.code(), e.to_string()));
                    files_done += 1;
                }
            }
        }
        self.done_files.fetch_add(files_done, Ordering::SeqCst);
        self.stored.lock().extend(stored_now);
        for slot in &mut out {
            if let Ok((index, _)) = slot
                && let Some(error) = failed.remove(index)
            {
                *slot = Err(error);
            }
        }
        (self.progress)(&SyncProgress {
            total_files: self.total_files,
            done_files: self.done_files.load(Ordering::SeqCst) as usize,
            total_bytes: self.total_bytes,
            done_bytes: self.done_bytes.load(Ordering::SeqCst),
        });
        out
    }
}

impl Drop for SyncUpload {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codeflow_types::ProjectId;

    fn header(index: u64, path: &str, bytes: &[u8]) -> FileHeader {
        FileHeader {
            index,
            path: path.to_owned(),
            size: bytes.len() as u64,
            mode: 0o644,
            hash: ContentHash::of(bytes).as_str().to_owned(),
        }
    }

    #[tokio::test]
    async fn a_streamed_upload_checks_each_file_as_it_is_announced() {
        let dir = tempfile::tempdir().unwrap();
        let project = ProjectId::parse("p").unwrap();
        let mirror = Mirror::open(dir.path(), &project, "/app").await.unwrap();
        let limits = Limits {
            max_file_size: 100,
            ..Limits::default()
        };
        let upload = SyncUpload::streamed(mirror.clone(), limits, 4, 10, Arc::new(|_| {}));
        let good = header(0, "deep/ü/a.py", b"A = 1\n");
        assert_eq!(upload.check(&good), None);
        // A path leading out, a file over the size limit, a path sent twice under another
        // index, another path at an announced index: refused before any content is kept.
        let refused = |h: &FileHeader| upload.check(h).map(|(code, _)| code);
        assert_eq!(
            refused(&header(1, "../out.py", b"x")),
            Some(codes::PATH_REJECTED)
        );
        assert_eq!(
            refused(&header(2, "big.bin", &[0u8; 101])),
            Some(codes::FILE_TOO_LARGE)
        );
        assert_eq!(
            refused(&header(3, "deep/ü/a.py", b"A = 1\n")),
            Some(codes::PATH_REJECTED)
        );
        assert_eq!(
            refused(&header(0, "other.py", b"x")),
            Some(codes::PATH_REJECTED)
        );
        // Content not the header's hash: not written; the announced file is.
        let liar = header(4, "liar.py", b"TRUTH\n");
        assert_eq!(upload.check(&liar), None);
        let results = upload
            .store(vec![
                (good, b"A = 1\n".as_slice().into()),
                (liar, b"LIES!\n".as_slice().into()),
            ])
            .await;
        assert_eq!(results[0], Ok((0, 6)));
        assert_eq!(
            results[1].as_ref().unwrap_err()["code"],
            codes::HASH_MISMATCH
        );
        let files = mirror.files();
        assert_eq!(
            files.keys().map(RelPath::as_str).collect::<Vec<_>>(),
            ["deep/ü/a.py"]
        );
        assert_eq!(upload.stored().0.len(), 1);
        // Ended: nothing more is taken.
        upload.end();
        assert_eq!(refused(&header(5, "late.py", b"x")), Some(codes::CONFLICT));
    }
}
