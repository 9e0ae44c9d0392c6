//! The server's copy of a project: `<data_dir>/mirrors/<project>/`, filled by manifest sync,
//! kept fresh by `server/fileChanged`, read by language servers and by tools.
//!
//! The mirror keeps an index (relative path → hash, size) of what is on its disk and a
//! byte-budgeted content cache; both change only through [`Mirror`]'s own writes, so the cache
//! is exact — there is no TTL. Each path has a version, bumped by every write, so that a slow
//! fetch started by a sync never overwrites a newer change that arrived meanwhile.
//!
//! A **shared** project ([`Mirror::shared`]) has the files on a server-side path already: it
//! fetches nothing, writes nothing, and only translates paths.

mod fetch;
mod incoming;

pub use incoming::IncomingFile;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use parking_lot::Mutex;

use crate::atomic::{TMP_PREFIX, TMP_SUFFIX, write_atomic};
use crate::cache::ContentCache;
use crate::client_files::ClientFiles;
use crate::delta;
use crate::error::FileError;
use crate::jail::Jail;
use crate::limits::Limits;
use crate::manifest::Manifest;
use crate::paths::{ClientPath, MirrorPath, PathMap, RelPath};
use crate::protocol::{
    ChangeType, ContentHash, Encoding, FileChanged, LineEdit, SyncManifestResult, decode_content,
};
use codeflow_types::ProjectId;

/// Tuning of a [`Mirror`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorConfig {
    /// Size and count limits of the project's files.
    pub limits: Limits,
    /// `client/readFile` requests in flight at once during a sync; batches of small files
    /// (`client/readFiles`) are limited to an eighth of it.
    pub fetch_concurrency: usize,
    /// Bytes of file content kept in memory for [`Mirror::read`].
    pub cache_bytes: usize,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            limits: Limits::default(),
            fetch_concurrency: 32,
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What a sync will do: fetch `needed`, delete `removed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Files to fetch from the client (missing or stale in the mirror).
    pub needed: Vec<RelPath>,
    /// Mirror files the manifest no longer lists.
    pub removed: Vec<RelPath>,
}

impl SyncPlan {
    /// The answer to `server/syncManifest`.
    pub fn to_result(&self) -> SyncManifestResult {
        SyncManifestResult {
            needed: self.needed.iter().map(|p| p.as_str().to_owned()).collect(),
            removed: self.removed.iter().map(|p| p.as_str().to_owned()).collect(),
        }
    }
}

/// Progress of a sync, reported after every fetched file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncProgress {
    /// Files the sync fetches.
    pub total_files: usize,
    /// Files fetched so far.
    pub done_files: usize,
    /// Bytes the sync fetches.
    pub total_bytes: u64,
    /// Bytes fetched so far.
    pub done_bytes: u64,
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Files fetched from the client.
    pub fetched: Vec<RelPath>,
    /// Bytes fetched.
    pub fetched_bytes: u64,
    /// Mirror files deleted because the manifest no longer lists them.
    pub removed: Vec<RelPath>,
    /// Files already up to date.
    pub unchanged: usize,
    /// Files not fetched, with the reason (too large, vanished, unreadable, superseded).
    pub skipped: Vec<(RelPath, FileError)>,
}

/// How a `fileChanged` was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// Written from the content in the notification.
    Content,
    /// Written by applying the notification's delta.
    Delta,
    /// Written from a `client/readFile` (no content, or the delta's base did not match).
    Fetched,
    /// The mirror already had this content.
    Unchanged,
    /// Removed from the mirror.
    Removed,
    /// A shared project: nothing to do.
    Shared,
}

/// A point in one mirror path's history ([`Mirror::mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathMark(u64);

#[derive(Debug, Clone)]
struct IndexEntry {
    hash: ContentHash,
    size: u64,
}

#[derive(Debug)]
struct State {
    /// Change only through [`State::index_insert`] and [`State::index_remove`], which keep
    /// `total` equal to the sum of the sizes.
    index: HashMap<RelPath, IndexEntry>,
    total: u64,
    versions: HashMap<RelPath, u64>,
    cache: ContentCache,
    /// Paths a running sync's transfer will store: reads of them wait (see `incoming`).
    incoming: std::collections::HashSet<RelPath>,
    /// Counts removals of directories: directories known to exist are known only as of one.
    dirs_removed: u64,
    /// Files and bytes that incoming writes outside the lock will add (see `incoming`): the
    /// project's limits count them, so two writers at once cannot overshoot.
    reserved_files: u64,
    reserved_bytes: u64,
}

impl State {
    fn version(&self, rel: &RelPath) -> u64 {
        self.versions.get(rel).copied().unwrap_or(0)
    }

    /// Moves the path's version on; returns the new one. (No key is cloned for a path that has
    /// a version already.)
    fn bump(&mut self, rel: &RelPath) -> u64 {
        match self.versions.get_mut(rel) {
            Some(version) => {
                *version += 1;
                *version
            }
            None => {
                self.versions.insert(rel.clone(), 1);
                1
            }
        }
    }

    /// Checks the project's limits for `size` bytes at `rel` (what is reserved counted in) and
    /// returns what the write adds: (files, bytes).
    fn room_for(&self, limits: &Limits, rel: &RelPath, size: u64) -> Result<(u64, u64), FileError> {
        let old = self.index.get(rel).map(|e| e.size);
        let new_file = u64::from(old.is_none());
        let old = old.unwrap_or(0);
        limits.check_project(
            self.index.len() as u64 + self.reserved_files + new_file,
            self.total + self.reserved_bytes - old + size,
        )?;
        Ok((new_file, size.saturating_sub(old)))
    }

    fn index_insert(&mut self, rel: RelPath, entry: IndexEntry) {
        self.total += entry.size;
        if let Some(old) = self.index.insert(rel, entry) {
            self.total -= old.size;
        }
    }

    fn index_remove(&mut self, rel: &RelPath) {
        if let Some(old) = self.index.remove(rel) {
            self.total -= old.size;
        }
    }
}

/// One project's mirror. Cheap to clone; clones share state.
///
/// A handle speaks one client root ([`Mirror::paths`]): the root of the session that opened
/// the mirror, or, through [`Mirror::for_client_root`], another session's, so each session's
/// requests and answers are in its own paths while the files and their index are shared.
#[derive(Debug, Clone)]
pub struct Mirror {
    inner: Arc<Inner>,
    paths: PathMap,
}

#[derive(Debug)]
struct Inner {
    project: ProjectId,
    jail: Jail,
    shared: bool,
    config: MirrorConfig,
    state: Mutex<State>,
    /// Woken whenever incoming files were stored or given up.
    stored: tokio::sync::Notify,
}

impl Mirror {
    /// Opens (creating if needed) the mirror at `<data_dir>/mirrors/<project_id>/` for a
    /// client whose project root is `client_root`, and indexes what it already holds.
    pub async fn open(
        data_dir: &Path,
        project_id: &ProjectId,
        client_root: &str,
    ) -> Result<Self, FileError> {
        Self::open_with(data_dir, project_id, client_root, MirrorConfig::default()).await
    }

    /// [`Mirror::open`] with explicit tuning.
    pub async fn open_with(
        data_dir: &Path,
        project_id: &ProjectId,
        client_root: &str,
        config: MirrorConfig,
    ) -> Result<Self, FileError> {
        let dir = data_dir.join("mirrors").join(project_id.as_str());
        let client_root = client_root.to_owned();
        let project = project_id.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| FileError::io(&dir.display().to_string(), &e))?;
            let jail = Jail::new(&dir)?;
            let index = index_dir(jail.canonical_root())?;
            let paths = PathMap::new(&client_root, jail.canonical_root())?;
            Ok(Mirror::build(project, paths, jail, false, config, index))
        })
        .await
        .map_err(|e| FileError::Io(format!("mirror open task failed: {e}")))?
    }

    /// A shared project: the server sees the client's files at `server_root` already.
    /// Nothing is fetched or written; [`Mirror::paths`] translates, [`Mirror::read`] reads
    /// `server_root` through the jail.
    pub fn shared(
        project_id: &ProjectId,
        client_root: &str,
        server_root: &Path,
        config: MirrorConfig,
    ) -> Result<Self, FileError> {
        let jail = Jail::new(server_root)?;
        let paths = PathMap::new(client_root, jail.canonical_root())?;
        Ok(Mirror::build(
            project_id.clone(),
            paths,
            jail,
            true,
            config,
            HashMap::new(),
        ))
    }

    fn build(
        project: ProjectId,
        paths: PathMap,
        jail: Jail,
        shared: bool,
        config: MirrorConfig,
        index: HashMap<RelPath, IndexEntry>,
    ) -> Self {
        Mirror {
            paths,
            inner: Arc::new(Inner {
                project,
                jail,
                shared,
                config,
                state: Mutex::new(State {
                    total: index.values().map(|e| e.size).sum(),
                    index,
                    versions: HashMap::new(),
                    cache: ContentCache::new(config.cache_bytes),
                    incoming: Default::default(),
                    dirs_removed: 0,
                    reserved_files: 0,
                    reserved_bytes: 0,
                }),
                stored: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The project this mirrors.
    pub fn project(&self) -> &ProjectId {
        &self.inner.project
    }

    /// Path translation between this handle's client root and the mirror.
    pub fn paths(&self) -> &PathMap {
        &self.paths
    }

    /// This mirror (the same files and state) for a client whose project root is
    /// `client_root`: its requests to the client and its path translation use that root.
    pub fn for_client_root(&self, client_root: &str) -> Result<Mirror, FileError> {
        Ok(Mirror {
            inner: Arc::clone(&self.inner),
            paths: PathMap::new(client_root, self.paths.mirror_root())?,
        })
    }

    /// The directory language servers should run in (canonical).
    pub fn root(&self) -> &Path {
        self.paths.mirror_root()
    }

    /// Whether this is a shared project's directory (nothing streamed) rather than a mirror.
    pub fn is_shared(&self) -> bool {
        self.inner.shared
    }

    /// How many files the mirror holds (without copying the index, as [`Self::files`] does).
    pub fn file_count(&self) -> usize {
        self.inner.state.lock().index.len()
    }

    /// Every file the mirror holds, with its hash.
    pub fn files(&self) -> BTreeMap<RelPath, ContentHash> {
        let state = self.inner.state.lock();
        state
            .index
            .iter()
            .map(|(k, v)| (k.clone(), v.hash.clone()))
            .collect()
    }

    /// The hash the mirror holds for a path.
    pub fn hash(&self, path: &MirrorPath) -> Option<ContentHash> {
        self.inner
            .state
            .lock()
            .index
            .get(path.rel())
            .map(|e| e.hash.clone())
    }

    /// What a sync against `manifest` would fetch and delete.
    pub fn plan(&self, manifest: &Manifest) -> SyncPlan {
        if self.inner.shared {
            return SyncPlan::default();
        }
        let state = self.inner.state.lock();
        let needed = manifest
            .iter()
            .filter(|(rel, entry)| state.index.get(*rel).is_none_or(|e| e.hash != entry.hash))
            .map(|(rel, _)| rel.clone())
            .collect();
        let mut removed: Vec<RelPath> = state
            .index
            .keys()
            .filter(|rel| manifest.get(rel).is_none())
            .cloned()
            .collect();
        removed.sort();
        SyncPlan { needed, removed }
    }

    /// Brings the mirror to `manifest`: fetches files it lacks or holds stale (up to
    /// `fetch_concurrency` at once), deletes files the manifest does not list, and calls
    /// `progress` once before fetching and after each fetched file. Per-file failures are reported in
    /// [`SyncReport::skipped`]; a lost connection or a manifest over the project limits fails
    /// the whole sync.
    pub async fn sync(
        &self,
        manifest: &Manifest,
        client: &dyn ClientFiles,
        progress: &(dyn Fn(&SyncProgress) + Send + Sync),
    ) -> Result<SyncReport, FileError> {
        let mut report = SyncReport::default();
        if self.inner.shared {
            return Ok(report);
        }
        let limits = self.inner.config.limits;
        limits.check_project(manifest.len() as u64, manifest.total_bytes())?;
        let mut plan = self.plan(manifest);
        report.unchanged = manifest.len() - plan.needed.len();

        // Deletions first: they free room and cannot conflict with fetches.
        report.removed = self.remove_paths(std::mem::take(&mut plan.removed)).await?;

        let mut todo = Vec::new();
        for rel in plan.needed {
            let Some(entry) = manifest.get(&rel) else {
                continue;
            };
            // Refuse before asking the client: too large, or a symlink in the mirror leads out.
            if let Err(e) = limits
                .check_file_size(rel.as_str(), entry.size)
                .and_then(|()| self.inner.jail.resolve(&rel).map(|_| ()))
            {
                report.skipped.push((rel, e));
                continue;
            }
            let version = self.inner.state.lock().version(&rel);
            todo.push((rel, entry.size, version));
        }
        let mut done = SyncProgress {
            total_files: todo.len(),
            done_files: 0,
            total_bytes: todo.iter().map(|t| t.1).sum(),
            done_bytes: 0,
        };
        // Once before the first answer: a sync that hangs on its first request shows too.
        progress(&done);
        let fetches = self.fetch_all(todo, client);
        futures::pin_mut!(fetches);
        while let Some((rel, result)) = fetches.next().await {
            match result {
                Ok(Some(bytes)) => {
                    report.fetched_bytes += bytes;
                    done.done_bytes += bytes;
                    report.fetched.push(rel);
                }
                Ok(None) => report.skipped.push((
                    rel,
                    FileError::Conflict {
                        path: "superseded by a newer change".into(),
                        actual: None,
                    },
                )),
                Err(e @ FileError::Unavailable(_)) => return Err(e),
                Err(e) => report.skipped.push((rel, e)),
            }
            done.done_files += 1;
            progress(&done);
        }
        report.fetched.sort();
        tracing::debug!(
            project = %self.inner.project,
            fetched = report.fetched.len(),
            removed = report.removed.len(),
            unchanged = report.unchanged,
            skipped = report.skipped.len(),
            "mirror synced"
        );
        Ok(report)
    }

    /// Applies a `server/fileChanged` notification. Notifications for one project must be
    /// applied in the order they arrived. A delta whose base is not what the mirror holds is
    /// refused internally ([`FileError::BaseMismatch`]) and the file is read whole instead.
    pub async fn apply_change(
        &self,
        change: FileChanged,
        client: &dyn ClientFiles,
    ) -> Result<ChangeOutcome, FileError> {
        if self.inner.shared {
            return Ok(ChangeOutcome::Shared);
        }
        let client_path = ClientPath::parse(&change.path)?;
        let rel = self.paths.client_rel(&client_path)?;
        if rel.is_root() {
            return Err(FileError::NotAFile(change.path));
        }
        let (version, current) = {
            let state = self.inner.state.lock();
            (
                state.version(&rel),
                state.index.get(&rel).map(|e| e.hash.clone()),
            )
        };
        if change.change_type == ChangeType::Deleted {
            self.commit(rel, None, Some(version)).await?;
            return Ok(ChangeOutcome::Removed);
        }
        if change.hash.is_some() && change.hash == current {
            return Ok(ChangeOutcome::Unchanged);
        }
        if let Some(content) = &change.content {
            let bytes = decode_content(content, change.encoding.unwrap_or(Encoding::Utf8))?;
            self.inner
                .config
                .limits
                .check_file_size(rel.as_str(), bytes.len() as u64)?;
            let actual = ContentHash::of(&bytes);
            if let Some(expected) = change.hash
                && expected != actual
            {
                return Err(FileError::HashMismatch {
                    path: change.path,
                    expected,
                    actual,
                });
            }
            self.commit(rel, Some((bytes, actual)), Some(version))
                .await?;
            return Ok(ChangeOutcome::Content);
        }
        if let (Some(base), Some(edits)) = (&change.base_hash, &change.edits) {
            match self
                .apply_delta(
                    &self.paths.mirror_path(&rel),
                    base,
                    edits,
                    change.hash.as_ref(),
                )
                .await
            {
                Ok(_) => return Ok(ChangeOutcome::Delta),
                Err(
                    e @ (FileError::BaseMismatch { .. }
                    | FileError::HashMismatch { .. }
                    | FileError::BadContent(_)),
                ) => {
                    tracing::debug!(path = %rel, error = %e, "delta refused; reading the whole file");
                }
                Err(e) => return Err(e),
            }
        }
        match self.fetch(&rel, version, client).await {
            Ok(_) => Ok(ChangeOutcome::Fetched),
            // Deleted again before we could read it; the fetch mirrored the deletion.
            Err(FileError::NotFound(_)) => Ok(ChangeOutcome::Removed),
            Err(e) => Err(e),
        }
    }

    /// Applies a line delta to the mirror's copy. Refused with [`FileError::BaseMismatch`]
    /// when the mirror does not hold `base`, and with [`FileError::HashMismatch`] when the
    /// result is not `result` (if given); nothing is written then.
    pub async fn apply_delta(
        &self,
        path: &MirrorPath,
        base: &ContentHash,
        edits: &[LineEdit],
        result: Option<&ContentHash>,
    ) -> Result<ContentHash, FileError> {
        let rel = path.rel().clone();
        let (version, current) = {
            let state = self.inner.state.lock();
            (
                state.version(&rel),
                state.index.get(&rel).map(|e| e.hash.clone()),
            )
        };
        if current.as_ref() != Some(base) {
            return Err(FileError::BaseMismatch {
                path: rel.to_string(),
                actual: current,
            });
        }
        let old = self.read(path).await?;
        let old = std::str::from_utf8(&old)
            .map_err(|_| FileError::BadContent(format!("{rel} is not UTF-8 text")))?;
        let new = delta::apply(old, edits)?;
        let hash = ContentHash::of(new.as_bytes());
        if let Some(expected) = result
            && *expected != hash
        {
            return Err(FileError::HashMismatch {
                path: rel.to_string(),
                expected: expected.clone(),
                actual: hash,
            });
        }
        self.inner
            .config
            .limits
            .check_file_size(rel.as_str(), new.len() as u64)?;
        if !self
            .commit(
                rel.clone(),
                Some((new.into_bytes(), hash.clone())),
                Some(version),
            )
            .await?
        {
            return Err(FileError::BaseMismatch {
                path: rel.to_string(),
                actual: self
                    .inner
                    .state
                    .lock()
                    .index
                    .get(&rel)
                    .map(|e| e.hash.clone()),
            });
        }
        Ok(hash)
    }

    /// Where a path stands in the mirror's history now; pass it to
    /// [`Mirror::record_local`] after writing to the client.
    pub fn mark(&self, path: &MirrorPath) -> PathMark {
        PathMark(self.inner.state.lock().version(path.rel()))
    }

    /// Records a write-back's result for one path (`Some`: written with this content, `None`:
    /// deleted or renamed away) unless the mirror applied a change to that path since `mark`,
    /// taken before the client was written. Such a change is the client's echo of this very
    /// write or something newer — the relay's watcher reports every path its file server
    /// wrote again after the write — so it wins: this never overwrites it, and never fails
    /// because it already happened. Idempotent. Returns whether it wrote.
    pub async fn record_local(
        &self,
        path: &MirrorPath,
        content: Option<Vec<u8>>,
        mark: PathMark,
    ) -> Result<bool, FileError> {
        if self.inner.shared {
            return Err(FileError::SharedProject);
        }
        let rel = path.rel().clone();
        let wanted = content.as_deref().map(ContentHash::of);
        {
            let state = self.inner.state.lock();
            let holds = state.index.get(&rel).map(|e| &e.hash);
            if holds == wanted.as_ref() {
                return Ok(false);
            }
        }
        self.commit(rel, content.zip(wanted), Some(mark.0)).await
    }

    /// Records content written on the server side (e.g. after a successful write-back), so
    /// the mirror does not wait for the client's echo.
    pub async fn write_local(
        &self,
        path: &MirrorPath,
        bytes: Vec<u8>,
    ) -> Result<ContentHash, FileError> {
        if self.inner.shared {
            return Err(FileError::SharedProject);
        }
        let hash = ContentHash::of(&bytes);
        self.commit(path.rel().clone(), Some((bytes, hash.clone())), None)
            .await?;
        Ok(hash)
    }

    /// Removes a file from the mirror (server-side deletion after a write-back).
    pub async fn remove_local(&self, path: &MirrorPath) -> Result<(), FileError> {
        if self.inner.shared {
            return Err(FileError::SharedProject);
        }
        self.commit(path.rel().clone(), None, None)
            .await
            .map(|_| ())
    }

    /// The content of a mirror file, from the cache when it holds it.
    /// A file a running sync is receiving is read once it is stored whole.
    pub async fn read(&self, path: &MirrorPath) -> Result<Bytes, FileError> {
        let rel = path.rel().clone();
        let version = loop {
            // Created before the check: a store that lands in between still wakes it.
            let stored = self.inner.stored.notified();
            {
                let state = self.inner.state.lock();
                if let Some(bytes) = state.cache.get(&rel) {
                    return Ok(bytes);
                }
                if !state.incoming.contains(&rel) {
                    break state.version(&rel);
                }
            }
            stored.await;
        };
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let abs = inner.jail.resolve(&rel)?;
            let meta = std::fs::metadata(&abs).map_err(|e| FileError::io(&rel.to_string(), &e))?;
            if !meta.is_file() {
                return Err(FileError::NotAFile(rel.to_string()));
            }
            inner
                .config
                .limits
                .check_file_size(rel.as_str(), meta.len())?;
            let bytes =
                Bytes::from(std::fs::read(&abs).map_err(|e| FileError::io(&rel.to_string(), &e))?);
            if !inner.shared {
                let mut state = inner.state.lock();
                if state.version(&rel) == version {
                    state.cache.insert(rel, bytes.clone());
                }
            }
            Ok(bytes)
        })
        .await
        .map_err(|e| FileError::Io(format!("mirror read task failed: {e}")))?
    }

    /// Writes (`Some`: the bytes and their hash, computed by the caller, who always has it) or
    /// deletes (`None`) a mirror file, unless its version moved past `if_version`. Returns
    /// whether it did.
    async fn commit(
        &self,
        rel: RelPath,
        content: Option<(Vec<u8>, ContentHash)>,
        if_version: Option<u64>,
    ) -> Result<bool, FileError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.commit_blocking(&rel, content, if_version))
            .await
            .map_err(|e| FileError::Io(format!("mirror write task failed: {e}")))?
    }
}

impl Inner {
    fn commit_blocking(
        &self,
        rel: &RelPath,
        content: Option<(Vec<u8>, ContentHash)>,
        if_version: Option<u64>,
    ) -> Result<bool, FileError> {
        if rel.is_root() {
            return Err(FileError::NotAFile(".".into()));
        }
        let shown = rel.to_string();
        // Shared with the cache without a copy.
        let content = content.map(|(bytes, hash)| (Bytes::from(bytes), hash));
        let mut state = self.state.lock();
        if if_version.is_some_and(|v| v != state.version(rel)) {
            return Ok(false);
        }
        match content {
            Some((bytes, hash)) => {
                let size = bytes.len() as u64;
                state.room_for(&self.config.limits, rel, size)?;
                let abs = self.make_room_for(rel, &mut state)?;
                write_atomic(&abs, &bytes, false, false)?;
                state.index_insert(rel.clone(), IndexEntry { hash, size });
                state.cache.insert(rel.clone(), bytes);
            }
            None => {
                let abs = self.jail.resolve(rel)?;
                match std::fs::symlink_metadata(&abs) {
                    Ok(m) if m.is_dir() => {
                        std::fs::remove_dir_all(&abs).map_err(|e| FileError::io(&shown, &e))?;
                        self.forget_under(rel, &mut state);
                    }
                    Ok(_) => std::fs::remove_file(&abs).map_err(|e| FileError::io(&shown, &e))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(FileError::io(&shown, &e)),
                }
                state.index_remove(rel);
                state.cache.remove(rel);
            }
        }
        state.bump(rel);
        Ok(true)
    }

    /// Where the client replaced a file by a directory (or the reverse), the mirror's stale
    /// entry is in the way of the new one: remove it. Returns where `rel` is on disk.
    fn make_room_for(&self, rel: &RelPath, state: &mut State) -> Result<PathBuf, FileError> {
        // One `lstat` per directory on the way: the root is canonical and every component
        // checked is a real directory, so none of them leads out; a non-directory in the way
        // (a file, or a symlink that stays inside) is removed itself, never followed. Nothing below a missing
        // component exists.
        let parts: Vec<&str> = rel.components().collect();
        let mut prefix = RelPath::root();
        let mut abs = self.jail.canonical_root().to_path_buf();
        for part in &parts[..parts.len().saturating_sub(1)] {
            prefix = prefix.join_name(part);
            abs.push(part);
            match std::fs::symlink_metadata(&abs) {
                Ok(m) if m.is_dir() => {}
                Ok(m) => {
                    if m.file_type().is_symlink() {
                        // One that leads out is refused, not quietly replaced.
                        self.jail.resolve(&prefix)?;
                    }
                    std::fs::remove_file(&abs)
                        .map_err(|e| FileError::io(&prefix.to_string(), &e))?;
                    state.index_remove(&prefix);
                    state.cache.remove(&prefix);
                    state.bump(&prefix);
                    return Ok(self.jail.canonical_root().join(rel.as_str()));
                }
                Err(_) => return Ok(self.jail.canonical_root().join(rel.as_str())),
            }
        }
        let abs = self.jail.resolve(rel)?;
        if let Ok(m) = std::fs::symlink_metadata(&abs)
            && m.is_dir()
        {
            std::fs::remove_dir_all(&abs).map_err(|e| FileError::io(&rel.to_string(), &e))?;
            self.forget_under(rel, state);
        }
        Ok(abs)
    }

    fn forget_under(&self, dir: &RelPath, state: &mut State) {
        state.dirs_removed += 1;
        let gone: Vec<RelPath> = state
            .index
            .keys()
            .filter(|k| k.starts_with(dir))
            .cloned()
            .collect();
        for k in gone {
            state.index_remove(&k);
            state.cache.remove(&k);
            state.bump(&k);
        }
    }
}

/// Indexes an existing mirror directory by hashing every file (exact; no stored index can go
/// stale). Leftover temporary files from an interrupted write are removed.
fn index_dir(root: &Path) -> Result<HashMap<RelPath, IndexEntry>, FileError> {
    let mut index = HashMap::new();
    let mut stack: Vec<(PathBuf, RelPath)> = vec![(root.to_path_buf(), RelPath::root())];
    while let Some((dir, rel_dir)) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| FileError::io(&dir.display().to_string(), &e))?;
        for entry in entries.filter_map(Result::ok) {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(ft) = entry.file_type() else { continue };
            let Ok(rel) = RelPath::parse(rel_dir.join_name(&name).as_str()) else {
                continue;
            };
            if ft.is_dir() {
                stack.push((entry.path(), rel));
            } else if ft.is_file() {
                if name.starts_with(TMP_PREFIX) && name.ends_with(TMP_SUFFIX) {
                    let _ = std::fs::remove_file(entry.path());
                    continue;
                }
                let Ok(bytes) = std::fs::read(entry.path()) else {
                    continue;
                };
                index.insert(
                    rel,
                    IndexEntry {
                        hash: ContentHash::of(&bytes),
                        size: bytes.len() as u64,
                    },
                );
            }
        }
    }
    Ok(index)
}
