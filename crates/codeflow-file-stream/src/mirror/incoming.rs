//! Files a sync receives in bulk (an upload on `/ws/file-stream/…` rather than
//! `client/readFiles`): announced before the first byte arrives, stored in batches, each file
//! written once.
//!
//! A file the mirror does not hold yet is written in place (no temporary file and rename per
//! small file); an existing one is still replaced atomically, since readers may hold it. Until
//! a path announced with [`Mirror::expect_incoming`] is stored (or the sync gives it up with
//! [`Mirror::end_incoming`]), [`Mirror::read`] of it waits: nobody reads a half-written file
//! through the mirror. Every path passes the mirror's jail; a write is skipped when the path
//! changed since the sync planned it (the [`PathMark`] it was announced with).

use std::io::Write as _;
use std::sync::Arc;

use crate::atomic::write_atomic;
use crate::error::FileError;
use crate::manifest::Manifest;
use crate::paths::RelPath;
use crate::protocol::ContentHash;

use super::{IndexEntry, Inner, Mirror, PathMark};

/// One received file, ready to store: its content and the hash computed from it on arrival.
#[derive(Debug)]
pub struct IncomingFile {
    /// Where it goes.
    pub rel: RelPath,
    /// Its content.
    pub bytes: Vec<u8>,
    /// The hash of `bytes` (computed once, by the receiver).
    pub hash: ContentHash,
    /// The path's version when the sync planned it: a newer change wins.
    pub mark: PathMark,
}

impl Mirror {
    /// Where a path (relative to the mirror root) stands in the mirror's history.
    pub fn mark_rel(&self, rel: &RelPath) -> PathMark {
        PathMark(self.inner.state.lock().version(rel))
    }

    /// Announces files a sync is about to receive: reads of them wait until each is stored or
    /// [`Self::end_incoming`] gives it up.
    pub fn expect_incoming(&self, rels: impl IntoIterator<Item = RelPath>) {
        let mut state = self.inner.state.lock();
        state.incoming.extend(rels);
    }

    /// The sync is over (finished, failed or abandoned): reads of what it did not store go to
    /// the disk again.
    pub fn end_incoming(&self, rels: &[RelPath]) {
        {
            let mut state = self.inner.state.lock();
            for rel in rels {
                state.incoming.remove(rel);
            }
        }
        self.inner.stored.notify_waiters();
    }

    /// Whether reads of `rel` wait for a sync's transfer.
    #[cfg(test)]
    fn is_incoming(&self, rel: &RelPath) -> bool {
        self.inner.state.lock().incoming.contains(rel)
    }

    /// Deletes the mirror files `manifest` does not list (a sync's first step: it frees room and
    /// cannot conflict with what is fetched). Returns what it deleted.
    pub async fn remove_unlisted(&self, manifest: &Manifest) -> Result<Vec<RelPath>, FileError> {
        let mut removed = Vec::new();
        if self.inner.shared {
            return Ok(removed);
        }
        for rel in self.plan(manifest).removed {
            let version = self.inner.state.lock().version(&rel);
            if self.commit(rel.clone(), None, Some(version)).await? {
                removed.push(rel);
            }
        }
        Ok(removed)
    }

    /// Stores received files in one blocking task. Per file: `Ok(true)` stored, `Ok(false)`
    /// superseded by a newer change (not written), or why it could not be written.
    pub async fn store_incoming(
        &self,
        files: Vec<IncomingFile>,
    ) -> Vec<(RelPath, Result<bool, FileError>)> {
        if self.inner.shared {
            return files
                .into_iter()
                .map(|f| (f.rel, Err(FileError::SharedProject)))
                .collect();
        }
        let inner = Arc::clone(&self.inner);
        let rels: Vec<RelPath> = files.iter().map(|f| f.rel.clone()).collect();
        let done = tokio::task::spawn_blocking(move || {
            let mut dirs = KnownDirs::default();
            let out: Vec<_> = files
                .into_iter()
                .map(|f| {
                    let stored = inner.store_incoming_blocking(&f, &mut dirs);
                    (f.rel, stored)
                })
                .collect();
            inner.stored.notify_waiters();
            out
        })
        .await;
        done.unwrap_or_else(|e| {
            let error = FileError::Io(format!("mirror write task failed: {e}"));
            self.end_incoming(&rels);
            rels.into_iter()
                .map(|rel| (rel, Err(error.clone())))
                .collect()
        })
    }
}

/// Directories of the mirror one batch has seen to be real directories (reached from the
/// canonical root through real directories), as of a count of directory removals: a batch of
/// files in the same directories checks each directory once, not once per file. Only the
/// mirror writes its directories, under its state lock, and it never makes a symbolic link.
#[derive(Default)]
struct KnownDirs {
    as_of: u64,
    dirs: std::collections::HashSet<String>,
}

impl KnownDirs {
    /// Whether `dir` (relative, "" for the root) is known to be a real directory now.
    fn holds(&mut self, dir: &str, removals: u64) -> bool {
        if self.as_of != removals {
            self.dirs.clear();
            self.as_of = removals;
        }
        dir.is_empty() || self.dirs.contains(dir)
    }

    /// `dir` and every directory above it are real directories.
    fn learn(&mut self, dir: &str) {
        let mut at = dir;
        while !at.is_empty() && self.dirs.insert(at.to_owned()) {
            at = at.rsplit_once('/').map_or("", |(up, _)| up);
        }
    }
}

impl Inner {
    fn store_incoming_blocking(
        &self,
        file: &IncomingFile,
        dirs: &mut KnownDirs,
    ) -> Result<bool, FileError> {
        let rel = &file.rel;
        let outcome = self.write_incoming(file, dirs);
        self.state.lock().incoming.remove(rel);
        outcome
    }

    fn write_incoming(&self, file: &IncomingFile, dirs: &mut KnownDirs) -> Result<bool, FileError> {
        let rel = &file.rel;
        if rel.is_root() {
            return Err(FileError::NotAFile(".".into()));
        }
        let shown = rel.to_string();
        let mut state = self.state.lock();
        if state.version(rel) != file.mark.0 {
            return Ok(false);
        }
        let size = file.bytes.len() as u64;
        let old = state.index.get(rel).map_or(0, |e| e.size);
        let files = state.index.len() as u64 + u64::from(!state.index.contains_key(rel));
        self.config
            .limits
            .check_project(files, state.total_bytes() - old + size)?;
        let parent = rel.as_str().rsplit_once('/').map_or("", |(dir, _)| dir);
        let known = dirs.holds(parent, state.dirs_removed);
        let mut abs = self.jail.canonical_root().join(rel.as_str());
        if !known {
            abs = self.make_room_for(rel, &mut state)?;
            if let Some(dir) = abs.parent() {
                std::fs::create_dir_all(dir).map_err(|e| FileError::io(&shown, &e))?;
            }
            dirs.learn(parent);
        }
        // Nothing there: written in place. `create_new` fails on anything already there (a
        // link planted meanwhile included, dangling or not: it is never followed), so no
        // `lstat` goes first (one syscall per file fewer, under the mirror's lock); reads of
        // this path wait until it is indexed.
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
        match options.open(&abs) {
            Ok(mut out) => {
                if let Err(e) = out.write_all(&file.bytes) {
                    drop(out);
                    let _ = std::fs::remove_file(&abs);
                    return Err(FileError::io(&shown, &e));
                }
            }
            // Something there that readers may hold: replaced atomically (a directory in the
            // way removed first).
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if known {
                    abs = self.make_room_for(rel, &mut state)?;
                }
                write_atomic(&abs, &file.bytes, false, false)?;
            }
            Err(e) => return Err(FileError::io(&shown, &e)),
        }
        state.index_insert(
            rel.clone(),
            IndexEntry {
                hash: file.hash.clone(),
                size,
            },
        );
        // Not cached: a sync brings far more than the cache holds, and most of it is never read.
        state.cache.remove(rel);
        state.bump(rel);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codeflow_types::ProjectId;

    #[tokio::test]
    async fn stores_new_and_existing_files_and_skips_superseded_ones() {
        let dir = tempfile::tempdir().unwrap();
        let project = ProjectId::parse("p").unwrap();
        let mirror = Mirror::open(dir.path(), &project, "/app").await.unwrap();
        let old = RelPath::parse("a/old.txt").unwrap();
        mirror
            .write_local(&mirror.paths().mirror_path(&old), b"old".to_vec())
            .await
            .unwrap();
        let new = RelPath::parse("deep/é/new.bin").unwrap();
        let raced = RelPath::parse("raced.txt").unwrap();
        mirror.expect_incoming([old.clone(), new.clone(), raced.clone()]);
        let file = |rel: &RelPath, bytes: &[u8]| IncomingFile {
            rel: rel.clone(),
            bytes: bytes.to_vec(),
            hash: ContentHash::of(bytes),
            mark: mirror.mark_rel(rel),
        };
        let batch = vec![
            file(&old, b"new"),
            file(&new, b"\x00\xff"),
            file(&raced, b"x"),
        ];
        // A change to `raced` after the plan: the sync's copy must not overwrite it.
        mirror
            .write_local(&mirror.paths().mirror_path(&raced), b"newer".to_vec())
            .await
            .unwrap();
        let stored = mirror.store_incoming(batch).await;
        let outcomes: Vec<bool> = stored.into_iter().map(|(_, r)| r.unwrap()).collect();
        assert_eq!(outcomes, [true, true, false]);
        let read = |rel: &RelPath| std::fs::read(mirror.root().join(rel.as_str())).unwrap();
        assert_eq!(read(&old), b"new");
        assert_eq!(read(&new), b"\x00\xff");
        assert_eq!(read(&raced), b"newer");
        assert_eq!(
            mirror.hash(&mirror.paths().mirror_path(&new)),
            Some(ContentHash::of(b"\x00\xff"))
        );
        mirror.end_incoming(std::slice::from_ref(&raced));
        assert!(!mirror.is_incoming(&raced));
    }

    #[tokio::test]
    async fn a_read_waits_for_an_incoming_file() {
        let dir = tempfile::tempdir().unwrap();
        let project = ProjectId::parse("p").unwrap();
        let mirror = Mirror::open(dir.path(), &project, "/app").await.unwrap();
        let rel = RelPath::parse("late.txt").unwrap();
        mirror.expect_incoming([rel.clone()]);
        let reader = {
            let mirror = mirror.clone();
            let path = mirror.paths().mirror_path(&rel);
            tokio::spawn(async move { mirror.read(&path).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!reader.is_finished(), "the read waits for the transfer");
        let mark = mirror.mark_rel(&rel);
        mirror
            .store_incoming(vec![IncomingFile {
                rel,
                bytes: b"whole".to_vec(),
                hash: ContentHash::of(b"whole"),
                mark,
            }])
            .await;
        let bytes = reader.await.unwrap().unwrap();
        assert_eq!(&bytes[..], b"whole");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_link_or_a_directory_in_the_way_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let project = ProjectId::parse("p").unwrap();
        let mirror = Mirror::open(dir.path(), &project, "/app").await.unwrap();
        let root = mirror.root().to_path_buf();
        // A link planted inside the mirror (dangling: refused; to a file inside: replaced), and
        // a directory where a file goes (replaced); one file per batch, so each path is checked
        // anew, and a second batch into a directory the first one made.
        let target = root.join("target.txt");
        std::os::unix::fs::symlink(&target, root.join("dangling.txt")).unwrap();
        std::fs::write(root.join("kept.txt"), b"kept").unwrap();
        std::os::unix::fs::symlink(root.join("kept.txt"), root.join("to-kept.txt")).unwrap();
        std::fs::create_dir_all(root.join("was-dir/inner")).unwrap();
        let rels: Vec<RelPath> = ["dangling.txt", "to-kept.txt", "was-dir", "new/a.txt"]
            .iter()
            .map(|p| RelPath::parse(p).unwrap())
            .collect();
        mirror.expect_incoming(rels.clone());
        for rel in &rels {
            let bytes = format!("content of {rel}").into_bytes();
            let stored = mirror
                .store_incoming(vec![IncomingFile {
                    rel: rel.clone(),
                    hash: ContentHash::of(&bytes),
                    bytes,
                    mark: mirror.mark_rel(rel),
                }])
                .await;
            if rel.as_str() == "dangling.txt" {
                assert!(
                    matches!(stored[0].1, Err(FileError::PathRejected { .. })),
                    "{:?}",
                    stored[0].1
                );
            } else {
                assert!(matches!(stored[0].1, Ok(true)), "{rel}: {:?}", stored[0].1);
            }
        }
        let second = RelPath::parse("new/b.txt").unwrap();
        mirror.expect_incoming([second.clone()]);
        let stored = mirror
            .store_incoming(vec![IncomingFile {
                rel: second.clone(),
                bytes: b"b".to_vec(),
                hash: ContentHash::of(b"b"),
                mark: mirror.mark_rel(&second),
            }])
            .await;
        assert!(matches!(stored[0].1, Ok(true)));
        for rel in &rels[1..] {
            let abs = root.join(rel.as_str());
            let meta = std::fs::symlink_metadata(&abs).unwrap();
            assert!(meta.is_file(), "{rel} is a plain file now");
            assert_eq!(
                std::fs::read(&abs).unwrap(),
                format!("content of {rel}").into_bytes()
            );
        }
        assert!(!target.exists(), "the dangling link was not followed");
        assert!(
            std::fs::symlink_metadata(root.join("dangling.txt"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(root.join("kept.txt")).unwrap(), b"kept");
        assert_eq!(std::fs::read(root.join("new/b.txt")).unwrap(), b"b");
    }
}
