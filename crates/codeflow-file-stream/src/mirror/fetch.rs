//! How a sync fetches the files its mirror lacks: small files in batches of
//! `client/readFiles` (one round trip and one disk task for dozens of files), large ones
//! alone with `client/readFile`. A relay that does not know `client/readFiles` answers
//! -32601 once; the rest of that sync then reads file by file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::stream::{self, Stream, StreamExt as _};

use super::Mirror;
use crate::client_files::{self, ClientFiles};
use crate::error::FileError;
use crate::paths::{ClientPath, RelPath};
use crate::protocol::ContentHash;

/// Files up to this size go in batches; larger ones are fetched alone.
const BATCH_FILE_MAX: u64 = 256 * 1024;
/// Most files in one batch.
const BATCH_FILES: usize = 64;
/// Most bytes (by the manifest's sizes) in one batch.
const BATCH_BYTES: u64 = 2 * 1024 * 1024;
/// Single reads in flight per batch when the relay cannot batch (at most `fetch_concurrency`).
const SINGLES_PER_BATCH: usize = 8;

/// One file to fetch: its path, manifest size, and the mirror version it was planned at.
pub(super) type Wanted = (RelPath, u64, u64);

/// What became of one fetched file: bytes stored, `None` when a newer change superseded it.
pub(super) type Fetched = (RelPath, Result<Option<u64>, FileError>);

enum Job {
    Batch(Vec<Wanted>),
    Single(Wanted),
}

impl Mirror {
    /// Fetches `todo`, yielding each file's outcome as it lands. At most `fetch_concurrency`
    /// single reads, or `fetch_concurrency / SINGLES_PER_BATCH` batches, are in flight.
    pub(super) fn fetch_all<'a>(
        &'a self,
        todo: Vec<Wanted>,
        client: &'a dyn ClientFiles,
    ) -> impl Stream<Item = Fetched> + 'a {
        let mut jobs = Vec::new();
        let mut batch: Vec<Wanted> = Vec::new();
        let mut batch_bytes = 0u64;
        for wanted in todo {
            if wanted.1 > BATCH_FILE_MAX {
                jobs.push(Job::Single(wanted));
                continue;
            }
            if batch.len() == BATCH_FILES || batch_bytes + wanted.1 > BATCH_BYTES {
                jobs.push(Job::Batch(std::mem::take(&mut batch)));
                batch_bytes = 0;
            }
            batch_bytes += wanted.1;
            batch.push(wanted);
        }
        if !batch.is_empty() {
            jobs.push(Job::Batch(batch));
        }
        let batching = Arc::new(AtomicBool::new(true));
        let in_flight = (self.inner.config.fetch_concurrency / SINGLES_PER_BATCH).max(1);
        stream::iter(jobs)
            .map(move |job| {
                let batching = Arc::clone(&batching);
                async move {
                    match job {
                        Job::Single((rel, _, version)) => {
                            let result = self.fetch(&rel, version, client).await;
                            vec![(rel, result)]
                        }
                        Job::Batch(files) => self.fetch_batch(files, client, &batching).await,
                    }
                }
            })
            .buffer_unordered(in_flight)
            .flat_map(stream::iter)
    }

    /// Fetches a batch with `client/readFiles`, asking again for what an answer left out, and
    /// stores what arrived in one disk task.
    async fn fetch_batch(
        &self,
        mut files: Vec<Wanted>,
        client: &dyn ClientFiles,
        batching: &AtomicBool,
    ) -> Vec<Fetched> {
        let mut out = Vec::with_capacity(files.len());
        while !files.is_empty() {
            if !batching.load(Ordering::Relaxed) {
                out.extend(self.fetch_each(files, client).await);
                break;
            }
            let paths: Vec<ClientPath> = files
                .iter()
                .map(|(rel, _, _)| self.paths.client_path(rel))
                .collect();
            let answers = match client_files::read_files(client, &paths).await {
                Ok(answers) if !answers.is_empty() => answers,
                // Nothing came back: read these one at a time.
                Ok(_) => {
                    out.extend(self.fetch_each(files, client).await);
                    break;
                }
                Err(FileError::MethodNotFound(_)) => {
                    batching.store(false, Ordering::Relaxed);
                    continue;
                }
                Err(e) => {
                    out.extend(files.into_iter().map(|(rel, _, _)| (rel, Err(e.clone()))));
                    break;
                }
            };
            let rest = files.split_off(answers.len());
            let mut writes = Vec::new();
            for ((rel, _, version), answer) in files.into_iter().zip(answers) {
                match answer.and_then(|(bytes, result)| {
                    self.inner
                        .config
                        .limits
                        .check_file_size(rel.as_str(), bytes.len() as u64)?;
                    Ok((bytes, result.hash))
                }) {
                    Ok((bytes, hash)) => writes.push((rel, bytes, hash, version)),
                    Err(FileError::NotFound(p)) => {
                        // Deleted on the client since the manifest: mirror that.
                        let gone = self.commit(rel.clone(), None, Some(version)).await;
                        out.push((rel, gone.and(Err(FileError::NotFound(p)))));
                    }
                    Err(e) => out.push((rel, Err(e))),
                }
            }
            out.extend(self.commit_many(writes).await);
            files = rest;
        }
        out
    }

    /// Fetches files one `client/readFile` at a time (a few in flight).
    async fn fetch_each(&self, files: Vec<Wanted>, client: &dyn ClientFiles) -> Vec<Fetched> {
        stream::iter(files)
            .map(|(rel, _, version)| async move {
                let result = self.fetch(&rel, version, client).await;
                (rel, result)
            })
            .buffer_unordered(
                SINGLES_PER_BATCH
                    .min(self.inner.config.fetch_concurrency)
                    .max(1),
            )
            .collect()
            .await
    }

    /// Fetches one file with `client/readFile` and stores it unless the path changed since
    /// `version`. Returns the bytes stored, or `None` when superseded.
    pub(super) async fn fetch(
        &self,
        rel: &RelPath,
        version: u64,
        client: &dyn ClientFiles,
    ) -> Result<Option<u64>, FileError> {
        let path = self.paths.client_path(rel);
        let (bytes, hash) = match client_files::read_file(client, &path).await {
            Ok((bytes, result)) => (bytes, result.hash),
            // Deleted on the client since the manifest: mirror that.
            Err(FileError::NotFound(_)) => {
                self.commit(rel.clone(), None, Some(version)).await?;
                return Err(FileError::NotFound(path.to_string()));
            }
            Err(e) => return Err(e),
        };
        self.inner
            .config
            .limits
            .check_file_size(rel.as_str(), bytes.len() as u64)?;
        let len = bytes.len() as u64;
        Ok(self
            .commit(rel.clone(), Some((bytes, hash)), Some(version))
            .await?
            .then_some(len))
    }

    /// Stores several fetched files in one blocking task; each is skipped when its path
    /// changed since its version.
    async fn commit_many(&self, writes: Vec<(RelPath, Vec<u8>, ContentHash, u64)>) -> Vec<Fetched> {
        if writes.is_empty() {
            return Vec::new();
        }
        let inner = Arc::clone(&self.inner);
        let rels: Vec<RelPath> = writes.iter().map(|w| w.0.clone()).collect();
        let done = tokio::task::spawn_blocking(move || {
            writes
                .into_iter()
                .map(|(rel, bytes, hash, version)| {
                    let len = bytes.len() as u64;
                    let stored = inner.commit_blocking(&rel, Some((bytes, hash)), Some(version));
                    (rel, stored.map(|s| s.then_some(len)))
                })
                .collect::<Vec<_>>()
        })
        .await;
        done.unwrap_or_else(|e| {
            let error = FileError::Io(format!("mirror write task failed: {e}"));
            rels.into_iter()
                .map(|rel| (rel, Err(error.clone())))
                .collect()
        })
    }
}
