//! Files a sync receives in bulk (an upload on `/ws/file-stream/…` rather than
//! `client/readFiles`): announced before the first byte arrives, stored in batches of groups
//! of a few files, each group hashed and then written (the hash checked against the one each
//! file came with: a file that does not match is not written).
//!
//! A file the mirror does not hold yet is written in place (no temporary file and rename per
//! small file), outside the mirror's lock, which is taken twice per group (not per file: the
//! socket reader announcing the next files takes it too): under it a write is only planned (the path's
//! version still the one the sync planned with, the project's limits with the size reserved,
//! the directories on the way checked, the path claimed by bumping its version) and then
//! indexed — only if the path's version is still the claimed one and the written file is still
//! linked where it was written (a change that came meanwhile wins: a replacement renames over
//! the fresh file, a removal unlinks it, and the sync's copy is not indexed). An existing file,
//! or anything else in the way, is replaced atomically under the lock, since readers may hold
//! it. Until a path announced with [`Mirror::expect_incoming`] is stored (or the sync gives it
//! up with [`Mirror::end_incoming`]), [`Mirror::read`] of it waits: nobody reads a
//! half-written file through the mirror. Every path passes the mirror's jail; no link is
//! followed; a write is skipped when the path changed since the sync planned it (the
//! [`PathMark`] it was announced with).

use std::sync::Arc;

use crate::atomic::write_atomic;
use crate::chunks::Chunks;
use crate::error::FileError;
use crate::manifest::Manifest;
use crate::paths::RelPath;
use crate::protocol::ContentHash;

use super::{IndexEntry, Inner, Mirror, PathMark, State};

/// One received file, ready to store: its content and the hash computed from it on arrival.
#[derive(Debug)]
pub struct IncomingFile {
    /// Where it goes.
    pub rel: RelPath,
    /// Its content, in the pieces it arrived in.
    pub content: Chunks,
    /// The hash `content` must have (the manifest's): checked as the file is stored, and a file
    /// that does not have it is refused ([`FileError::HashMismatch`]), nothing written.
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
    pub fn end_incoming<'a>(&self, rels: impl IntoIterator<Item = &'a RelPath>) {
        {
            let mut state = self.inner.state.lock();
            for rel in rels {
                // Usually every file came: nothing left to look up.
                if state.incoming.is_empty() {
                    break;
                }
                state.incoming.remove(rel);
            }
        }
        self.inner.stored.notify_waiters();
    }

    /// Announces one file a sync is about to receive ([`Self::expect_incoming`]) and returns
    /// where its path stands now ([`Self::mark_rel`]), under one lock.
    pub fn expect_one_incoming(&self, rel: &RelPath) -> PathMark {
        let mut state = self.inner.state.lock();
        state.incoming.insert(rel.clone());
        PathMark(state.version(rel))
    }

    /// Whether reads of `rel` wait for a sync's transfer.
    #[cfg(test)]
    fn is_incoming(&self, rel: &RelPath) -> bool {
        self.inner.state.lock().incoming.contains(rel)
    }

    /// Deletes the mirror files `manifest` does not list (a sync's first step: it frees room and
    /// cannot conflict with what is fetched). Returns what it deleted.
    pub async fn remove_unlisted(&self, manifest: &Manifest) -> Result<Vec<RelPath>, FileError> {
        self.remove_paths(self.plan(manifest).removed).await
    }

    /// Deletes `rels` from the mirror (a plan's `removed`); returns what it deleted.
    pub(super) async fn remove_paths(&self, rels: Vec<RelPath>) -> Result<Vec<RelPath>, FileError> {
        let mut removed = Vec::new();
        if self.inner.shared {
            return Ok(removed);
        }
        for rel in rels {
            let version = self.inner.state.lock().version(&rel);
            if self.commit(rel.clone(), None, Some(version)).await? {
                removed.push(rel);
            }
        }
        Ok(removed)
    }

    /// Stores received files in one blocking task, in groups of a few (at most 32 files or
    /// 1 MiB): each group hashed, then written, while its bytes are still in the cache. Per
    /// file, in order: `Ok(true)` stored, `Ok(false)` superseded by a newer change (not
    /// indexed), or why it was not written (its content not its hash included).
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
            let mut out = Vec::with_capacity(files.len());
            let mut rest = files.as_slice();
            while !rest.is_empty() {
                let group = group_len(rest);
                let (now, later) = rest.split_at(group);
                let stored = inner.store_group(now, &mut dirs);
                out.extend(now.iter().map(|f| f.rel.clone()).zip(stored));
                rest = later;
                // Reads waiting for these files go on now, not at the batch's end.
                inner.stored.notify_waiters();
            }
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

/// Files stored as one group (the mirror's lock taken twice for all of them): at most this
/// many…
const GROUP_FILES: usize = 32;
/// …and no more once they hold this many bytes (a group is hashed, then written: it should
/// still be in the cache).
const GROUP_BYTES: u64 = 1024 * 1024;

/// How many of `files` (at least one) go into the next group.
fn group_len(files: &[IncomingFile]) -> usize {
    let mut bytes = 0;
    let mut len = 0;
    for file in files.iter().take(GROUP_FILES) {
        len += 1;
        bytes += file.content.len();
        if bytes >= GROUP_BYTES {
            break;
        }
    }
    len.max(1)
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

/// A write planned under the mirror's lock, done outside it.
struct Claim {
    /// Where the file goes (its directories checked).
    abs: std::path::PathBuf,
    /// The path's version once claimed: a change that comes meanwhile moves it.
    version: u64,
    /// The count of directory removals when the directories were checked.
    dirs_removed: u64,
    /// What the write reserved of the project's limits: (files, bytes).
    reserved: (u64, u64),
}

impl Inner {
    /// Stores a group of received files ([`group_len`]): hashes each (a file that is not the
    /// hash it came with is refused, nothing written), plans the writes of the others under
    /// one lock, writes them outside it (two groups write at once), and indexes them under one
    /// lock — two acquisitions of the mirror's lock per group rather than per file, which the
    /// socket reader announcing the next files also takes.
    fn store_group(
        &self,
        files: &[IncomingFile],
        dirs: &mut KnownDirs,
    ) -> Vec<Result<bool, FileError>> {
        // Hashed first, outside the lock: a group is small enough to stay in the cache.
        let hashed: Vec<Result<(), FileError>> = files
            .iter()
            .map(|file| {
                let actual = file.content.hash();
                if actual == file.hash {
                    Ok(())
                } else {
                    Err(FileError::HashMismatch {
                        path: file.rel.to_string(),
                        expected: file.hash.clone(),
                        actual,
                    })
                }
            })
            .collect();
        let claims: Vec<Result<Option<Claim>, FileError>> = {
            let mut state = self.state.lock();
            files
                .iter()
                .zip(hashed)
                .map(|(file, hashed)| {
                    let claim = hashed.and_then(|()| self.claim_incoming(file, dirs, &mut state));
                    if !matches!(claim, Ok(Some(_))) {
                        state.incoming.remove(&file.rel);
                    }
                    claim
                })
                .collect()
        };
        let written: Vec<Option<Written>> = files
            .iter()
            .zip(&claims)
            .map(|(file, claim)| match claim {
                Ok(Some(claim)) => Some(write_new(&claim.abs, &file.content)),
                _ => None,
            })
            .collect();
        let mut state = self.state.lock();
        files
            .iter()
            .zip(claims)
            .zip(written)
            .map(|((file, claim), written)| match (claim, written) {
                (Ok(Some(claim)), Some(written)) => {
                    self.finish_incoming_locked(file, &claim, written, &mut state)
                }
                (Ok(_), _) => Ok(false),
                (Err(e), _) => Err(e),
            })
            .collect()
    }

    /// After the write outside the lock: indexes the file if nothing changed meanwhile, or
    /// writes it the careful way if something was in the way. Ends the path's wait either way.
    #[cfg(test)]
    fn finish_incoming(
        &self,
        file: &IncomingFile,
        claim: &Claim,
        written: Written,
    ) -> Result<bool, FileError> {
        self.finish_incoming_locked(file, claim, written, &mut self.state.lock())
    }

    /// [`Self::finish_incoming`] with the mirror's lock held.
    fn finish_incoming_locked(
        &self,
        file: &IncomingFile,
        claim: &Claim,
        written: Written,
        state: &mut State,
    ) -> Result<bool, FileError> {
        let rel = &file.rel;
        state.reserved_files -= claim.reserved.0;
        state.reserved_bytes -= claim.reserved.1;
        let outcome = match written {
            Written::Whole(out) => {
                // A newer change to the path, or the removal of a directory above it, came
                // while it was written: that change wins and this copy is not indexed (a
                // replacement renamed over it or a removal unlinked it; only the mirror writes
                // here, and every write bumps the path's version under this lock).
                let current = state.version(rel) == claim.version
                    && (state.dirs_removed == claim.dirs_removed || still_at(&out, &claim.abs));
                if current {
                    self.index_incoming(file, state);
                }
                Ok(current)
            }
            Written::Torn(e) => {
                // Nobody changed the path since the claim: what is there is this torn copy.
                if state.version(rel) == claim.version {
                    let _ = std::fs::remove_file(&claim.abs);
                }
                Err(FileError::io(&rel.to_string(), &e))
            }
            // Something in the way (a file readers may hold, a directory, a link), or a
            // directory removed meanwhile: the careful way, under the lock.
            Written::NotCreated => self.replace_incoming(file, claim.version, state),
        };
        state.incoming.remove(rel);
        outcome
    }

    /// Plans a write under the lock: the version still the planned one, the project's limits
    /// (the size reserved), the directories on the way real ones. Claims the path by bumping
    /// its version: another write planned before it no longer matches. `None`: superseded.
    fn claim_incoming(
        &self,
        file: &IncomingFile,
        dirs: &mut KnownDirs,
        state: &mut State,
    ) -> Result<Option<Claim>, FileError> {
        let rel = &file.rel;
        if rel.is_root() {
            return Err(FileError::NotAFile(".".into()));
        }
        if state.version(rel) != file.mark.0 {
            return Ok(None);
        }
        let reserved = state.room_for(&self.config.limits, rel, file.content.len())?;
        let parent = rel.as_str().rsplit_once('/').map_or("", |(dir, _)| dir);
        let abs = if dirs.holds(parent, state.dirs_removed) {
            self.jail.canonical_root().join(rel.as_str())
        } else {
            let abs = self.make_room_for(rel, state)?;
            if let Some(dir) = abs.parent() {
                std::fs::create_dir_all(dir).map_err(|e| FileError::io(&rel.to_string(), &e))?;
            }
            dirs.learn(parent);
            abs
        };
        state.reserved_files += reserved.0;
        state.reserved_bytes += reserved.1;
        Ok(Some(Claim {
            abs,
            version: state.bump(rel),
            dirs_removed: state.dirs_removed,
            reserved,
        }))
    }

    /// Writes an incoming file where `create_new` found something in the way, under the lock:
    /// whatever is there replaced atomically, a directory in the way removed first.
    fn replace_incoming(
        &self,
        file: &IncomingFile,
        version: u64,
        state: &mut State,
    ) -> Result<bool, FileError> {
        let rel = &file.rel;
        if state.version(rel) != version {
            return Ok(false);
        }
        state.room_for(&self.config.limits, rel, file.content.len())?;
        let abs = self.make_room_for(rel, state)?;
        write_atomic(&abs, &file.content.to_bytes(), false, false)?;
        self.index_incoming(file, state);
        Ok(true)
    }

    fn index_incoming(&self, file: &IncomingFile, state: &mut State) {
        state.index_insert(
            file.rel.clone(),
            IndexEntry {
                hash: file.hash.clone(),
                size: file.content.len(),
            },
        );
        // Not cached: a sync brings far more than the cache holds, and most of it is never read.
        state.cache.remove(&file.rel);
        // Again (the claim bumped it once): a read of the path that started meanwhile does not
        // cache what it saw.
        state.bump(&file.rel);
    }
}

/// What a write outside the lock did.
enum Written {
    /// The file was created and written whole (still open).
    Whole(std::fs::File),
    /// Created, but writing failed.
    Torn(std::io::Error),
    /// Not created: something in the way, or its directory gone.
    NotCreated,
}

/// Creates `abs` (nothing may be there: `create_new` fails on anything, a link planted
/// meanwhile included, dangling or not — it is never followed, and no `lstat` goes first) and
/// writes `content` into it. Reads of the path wait until it is indexed.
fn write_new(abs: &std::path::Path, content: &Chunks) -> Written {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
    match options.open(abs) {
        Ok(mut out) => match content.write_to(&mut out) {
            Ok(()) => Written::Whole(out),
            Err(e) => Written::Torn(e),
        },
        Err(_) => Written::NotCreated,
    }
}

/// Whether the file open as `out` is still the one at `abs` (not unlinked by the removal of a
/// directory above it).
#[cfg(unix)]
fn still_at(out: &std::fs::File, abs: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (out.metadata(), std::fs::symlink_metadata(abs)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Without inode numbers: not known, so not indexed.
#[cfg(not(unix))]
fn still_at(_out: &std::fs::File, _abs: &std::path::Path) -> bool {
    false
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
            content: bytes.to_vec().into(),
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
                content: b"whole".as_slice().into(),
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
            let bytes = bytes::Bytes::from(format!("content of {rel}").into_bytes());
            let stored = mirror
                .store_incoming(vec![IncomingFile {
                    rel: rel.clone(),
                    hash: ContentHash::of(&bytes),
                    content: bytes.into(),
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
                content: b"b".as_slice().into(),
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

    fn incoming(mirror: &Mirror, path: &str, bytes: &[u8]) -> IncomingFile {
        let rel = RelPath::parse(path).unwrap();
        IncomingFile {
            mark: mirror.expect_one_incoming(&rel),
            rel,
            content: bytes.to_vec().into(),
            hash: ContentHash::of(bytes),
        }
    }

    /// The first half of a store: the claim under the lock.
    fn claim(mirror: &Mirror, file: &IncomingFile) -> Result<Option<Claim>, FileError> {
        let mut state = mirror.inner.state.lock();
        mirror
            .inner
            .claim_incoming(file, &mut KnownDirs::default(), &mut state)
    }

    fn on_disk(mirror: &Mirror, path: &str) -> Option<Vec<u8>> {
        std::fs::read(mirror.root().join(path)).ok()
    }

    fn indexed(mirror: &Mirror, path: &str) -> Option<ContentHash> {
        mirror.hash(&mirror.paths().mirror_path(&RelPath::parse(path).unwrap()))
    }

    #[tokio::test]
    async fn a_file_that_is_not_its_hash_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let project = ProjectId::parse("p").unwrap();
        let mirror = Mirror::open(dir.path(), &project, "/app").await.unwrap();
        let mut liar = incoming(&mirror, "liar.txt", b"TRUTH");
        liar.content = b"LIES!".as_slice().into();
        let honest = incoming(&mirror, "honest.txt", b"ok");
        let rel = liar.rel.clone();
        let stored = mirror.store_incoming(vec![liar, honest]).await;
        match &stored[0].1 {
            Err(FileError::HashMismatch { actual, .. }) => {
                assert_eq!(*actual, ContentHash::of(b"LIES!"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(stored[1].1, Ok(true)));
        assert_eq!(on_disk(&mirror, "liar.txt"), None, "nothing written");
        assert_eq!(indexed(&mirror, "liar.txt"), None);
        assert!(!mirror.is_incoming(&rel), "reads of it no longer wait");
        assert_eq!(on_disk(&mirror, "honest.txt").unwrap(), b"ok");
    }

    /// A batch is stored in groups (a few files per lock): every file of a batch larger than
    /// a group gets its own outcome, in order, across the groups' edges — a liar refused, a
    /// file superseded by a newer change skipped, the others stored and indexed.
    #[tokio::test]
    async fn a_batch_of_several_groups_has_one_outcome_per_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let project = ProjectId::parse("p").unwrap();
        let mirror = Mirror::open(dir.path(), &project, "/app").await.unwrap();
        let count = GROUP_FILES * 2 + 3;
        let (liar_at, raced_at) = (GROUP_FILES - 1, GROUP_FILES);
        let mut batch: Vec<IncomingFile> = (0..count)
            .map(|i| {
                incoming(
                    &mirror,
                    &format!("d{}/f{i}.txt", i % 3),
                    i.to_string().as_bytes(),
                )
            })
            .collect();
        batch[liar_at].content = b"not what the hash says".as_slice().into();
        mirror
            .write_local(
                &mirror.paths().mirror_path(&batch[raced_at].rel),
                b"newer".to_vec(),
            )
            .await
            .unwrap();
        let rels: Vec<RelPath> = batch.iter().map(|f| f.rel.clone()).collect();
        let stored = mirror.store_incoming(batch).await;
        assert_eq!(stored.len(), count);
        for (i, (rel, outcome)) in stored.iter().enumerate() {
            assert_eq!(*rel, rels[i]);
            let path = rel.as_str();
            match i {
                _ if i == liar_at => {
                    assert!(
                        matches!(outcome, Err(FileError::HashMismatch { .. })),
                        "{outcome:?}"
                    );
                    assert_eq!(on_disk(&mirror, path), None);
                }
                _ if i == raced_at => {
                    assert!(matches!(outcome, Ok(false)), "{outcome:?}");
                    assert_eq!(on_disk(&mirror, path).unwrap(), b"newer");
                }
                _ => {
                    assert!(matches!(outcome, Ok(true)), "{i}: {outcome:?}");
                    assert_eq!(on_disk(&mirror, path).unwrap(), i.to_string().as_bytes());
                    assert_eq!(
                        indexed(&mirror, path),
                        Some(ContentHash::of(i.to_string().as_bytes()))
                    );
                }
            }
            assert!(!mirror.is_incoming(rel), "reads of {path} no longer wait");
        }
    }

    /// Writes go outside the mirror's lock: a change that comes between the claim and the
    /// index wins, whenever it comes, and the sync's copy never overwrites it.
    #[tokio::test]
    async fn a_change_that_comes_while_a_file_is_written_wins() {
        let dir = tempfile::tempdir().unwrap();
        let project = ProjectId::parse("p").unwrap();
        let mirror = Mirror::open(dir.path(), &project, "/app").await.unwrap();
        let inner = &mirror.inner;
        let newer = |path: &str| {
            let rel = RelPath::parse(path).unwrap();
            let bytes = b"newer".to_vec();
            let hash = ContentHash::of(&bytes);
            assert!(
                inner
                    .commit_blocking(&rel, Some((bytes, hash)), None)
                    .unwrap()
            );
        };
        let remove = |path: &str| {
            let rel = RelPath::parse(path).unwrap();
            assert!(inner.commit_blocking(&rel, None, None).unwrap());
        };

        // Written before the sync's copy is created: the copy finds it there and is not written.
        let file = incoming(&mirror, "before.txt", b"sync");
        let claimed = claim(&mirror, &file).unwrap().unwrap();
        newer("before.txt");
        let written = write_new(&claimed.abs, &file.content);
        assert!(matches!(written, Written::NotCreated));
        assert!(matches!(
            inner.finish_incoming(&file, &claimed, written),
            Ok(false)
        ));
        assert_eq!(on_disk(&mirror, "before.txt").unwrap(), b"newer");
        assert_eq!(
            indexed(&mirror, "before.txt"),
            Some(ContentHash::of(b"newer"))
        );
        assert!(!mirror.is_incoming(&file.rel));

        // Written (renamed over the fresh copy) or deleted after it: not indexed.
        for (path, change) in [("after.txt", true), ("deleted.txt", false)] {
            let file = incoming(&mirror, path, b"sync");
            let claimed = claim(&mirror, &file).unwrap().unwrap();
            let written = write_new(&claimed.abs, &file.content);
            assert!(matches!(written, Written::Whole(_)));
            if change {
                newer(path)
            } else {
                remove(path)
            }
            assert!(matches!(
                inner.finish_incoming(&file, &claimed, written),
                Ok(false)
            ));
            let expected = change.then(|| b"newer".to_vec());
            assert_eq!(on_disk(&mirror, path), expected, "{path}");
            assert_eq!(
                indexed(&mirror, path),
                expected.map(|b| ContentHash::of(&b))
            );
        }

        // Its directory removed (and made again) meanwhile: the copy went with it.
        newer("d/kept.txt");
        let file = incoming(&mirror, "d/gone.txt", b"sync");
        let claimed = claim(&mirror, &file).unwrap().unwrap();
        let written = write_new(&claimed.abs, &file.content);
        remove("d");
        newer("d/other.txt");
        assert!(matches!(
            inner.finish_incoming(&file, &claimed, written),
            Ok(false)
        ));
        assert_eq!(on_disk(&mirror, "d/gone.txt"), None);
        assert_eq!(indexed(&mirror, "d/gone.txt"), None);

        // Another directory removed meanwhile: the copy is still where it was written.
        newer("e/x.txt");
        let file = incoming(&mirror, "d/stays.txt", b"sync");
        let claimed = claim(&mirror, &file).unwrap().unwrap();
        let written = write_new(&claimed.abs, &file.content);
        remove("e");
        assert!(matches!(
            inner.finish_incoming(&file, &claimed, written),
            Ok(true)
        ));
        assert_eq!(on_disk(&mirror, "d/stays.txt").unwrap(), b"sync");
        assert_eq!(
            indexed(&mirror, "d/stays.txt"),
            Some(ContentHash::of(b"sync"))
        );

        // The same path claimed twice (two connections of one upload): one writes.
        let first = incoming(&mirror, "twice.txt", b"one");
        let second = incoming(&mirror, "twice.txt", b"two");
        let claimed = claim(&mirror, &first).unwrap().unwrap();
        assert!(
            claim(&mirror, &second).unwrap().is_none(),
            "superseded by the claim"
        );
        let written = write_new(&claimed.abs, &first.content);
        assert!(matches!(
            inner.finish_incoming(&first, &claimed, written),
            Ok(true)
        ));
        assert_eq!(on_disk(&mirror, "twice.txt").unwrap(), b"one");
    }

    #[tokio::test]
    async fn writes_in_flight_count_against_the_project_limits() {
        let dir = tempfile::tempdir().unwrap();
        let project = ProjectId::parse("p").unwrap();
        let config = crate::mirror::MirrorConfig {
            limits: crate::limits::Limits {
                max_files: 2,
                max_total_bytes: 10,
                ..Default::default()
            },
            ..Default::default()
        };
        let mirror = Mirror::open_with(dir.path(), &project, "/app", config)
            .await
            .unwrap();
        let a = incoming(&mirror, "a", b"1234");
        let b = incoming(&mirror, "b", b"1234");
        let c = incoming(&mirror, "c", b"1");
        let claimed_a = claim(&mirror, &a).unwrap().unwrap();
        let too_big = incoming(&mirror, "b", b"1234567");
        assert!(matches!(
            claim(&mirror, &too_big),
            Err(FileError::ProjectTooLarge { .. })
        ));
        let claimed_b = claim(&mirror, &b).unwrap().unwrap();
        assert!(matches!(
            claim(&mirror, &c),
            Err(FileError::TooManyFiles { .. })
        ));
        // A write of its own while they are in flight is refused the same way.
        let rel = RelPath::parse("d").unwrap();
        let hash = ContentHash::of(b"1");
        assert!(matches!(
            mirror
                .inner
                .commit_blocking(&rel, Some((b"1".to_vec(), hash)), None),
            Err(FileError::TooManyFiles { .. })
        ));
        for (file, claimed) in [(&a, claimed_a), (&b, claimed_b)] {
            let written = write_new(&claimed.abs, &file.content);
            assert!(matches!(
                mirror.inner.finish_incoming(file, &claimed, written),
                Ok(true)
            ));
        }
        let state = mirror.inner.state.lock();
        assert_eq!((state.reserved_files, state.reserved_bytes), (0, 0));
        assert_eq!((state.index.len(), state.total), (2, 8));
    }

    /// Two batches at once (the receiver stores two while it reads): every file indexed and
    /// whole, in directories both make.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_batches_store_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let project = ProjectId::parse("p").unwrap();
        let mirror = Mirror::open(dir.path(), &project, "/app").await.unwrap();
        let batch = |n: usize| -> Vec<IncomingFile> {
            (0..500)
                .map(|i| {
                    let bytes = format!("batch {n} file {i}")
                        .repeat(i % 50 + 1)
                        .into_bytes();
                    incoming(
                        &mirror,
                        &format!("d{}/s{}/f{n}-{i}.txt", i % 7, i % 3),
                        &bytes,
                    )
                })
                .collect()
        };
        let (one, two) = (batch(1), batch(2));
        let (m1, m2) = (mirror.clone(), mirror.clone());
        let (r1, r2) = tokio::join!(
            tokio::spawn(async move { m1.store_incoming(one).await }),
            tokio::spawn(async move { m2.store_incoming(two).await })
        );
        for (rel, result) in r1.unwrap().into_iter().chain(r2.unwrap()) {
            assert!(matches!(result, Ok(true)), "{rel}: {result:?}");
            let bytes = std::fs::read(mirror.root().join(rel.as_str())).unwrap();
            assert_eq!(
                indexed(&mirror, rel.as_str()),
                Some(ContentHash::of(&bytes))
            );
            assert!(!mirror.is_incoming(&rel));
        }
        assert_eq!(mirror.file_count(), 1000);
        let state = mirror.inner.state.lock();
        assert_eq!((state.reserved_files, state.reserved_bytes), (0, 0));
    }
}
