//! The watcher's persisted hash cache: `(path, size, mtime, ctime, inode) → hash` of a client
//! tree, kept in one file per tree. A relay that starts again on a tree it has seen stats its
//! files instead of reading and hashing them all (git's index does the same).
//!
//! **Racy entries.** A file written in the same timestamp tick as it was read could change
//! without its stamp changing. So an entry is only ever saved when its mtime and ctime are older
//! than the moment its hash was read by at least [`WatcherConfig::hash_cache_margin`]
//! (`crate::WatcherConfig`): the baseline scan saves the entries old enough at its start, and
//! re-reads the younger ones once they have aged (see the watcher's deferred save).
//!
//! The cache is an optimisation only: a missing, unreadable, corrupt or foreign file is
//! ignored (the tree is hashed as if it were absent), and a failed save costs nothing but time
//! at the next start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::paths::RelPath;
use crate::protocol::ContentHash;

/// Bump when the file's meaning changes; other versions are ignored.
const FORMAT_VERSION: u32 = 1;

/// Cheap identity of a file version: size, mtime, ctime (nanoseconds since the epoch), inode.
/// Any write, rename over or `touch` changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    len: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
}

impl Stamp {
    pub(crate) fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            Stamp {
                len: meta.len(),
                mtime_ns: meta
                    .mtime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(meta.mtime_nsec()),
                ctime_ns: meta
                    .ctime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(meta.ctime_nsec()),
                ino: meta.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            Stamp {
                len: meta.len(),
                mtime_ns,
                ctime_ns: mtime_ns,
                ino: 0,
            }
        }
    }

    /// Matches no file on disk: the next re-stat checks the file again.
    pub(crate) const UNKNOWN: Stamp = Stamp {
        len: u64::MAX,
        mtime_ns: i64::MIN,
        ctime_ns: i64::MIN,
        ino: 0,
    };

    /// Size and mtime (milliseconds since the epoch), unless this is [`Stamp::UNKNOWN`].
    pub(crate) fn size_and_mtime_ms(&self) -> Option<(u64, u64)> {
        (*self != Stamp::UNKNOWN).then(|| {
            (
                self.len,
                u64::try_from(self.mtime_ns / 1_000_000).unwrap_or(0),
            )
        })
    }

    /// Whether a hash read at `read_at` can be trusted for this stamp later: the file's last
    /// change (mtime and ctime) is at least `margin` older than the read.
    pub(crate) fn settled_before(&self, read_at: SystemTime, margin: Duration) -> bool {
        if *self == Stamp::UNKNOWN {
            return false;
        }
        let Some(limit) = read_at
            .checked_sub(margin)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
        else {
            return false;
        };
        self.mtime_ns < limit && self.ctime_ns < limit
    }
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    /// The tree's canonical root: a cache file copied elsewhere is not believed.
    root: String,
    files: Vec<(String, Stamp, ContentHash)>,
}

/// A loaded cache for one tree.
#[derive(Debug, Default)]
pub(crate) struct HashCache {
    file: Option<PathBuf>,
    root: String,
    entries: HashMap<String, (Stamp, ContentHash)>,
}

impl HashCache {
    /// The cache file for `root` in `dir`.
    pub(crate) fn file_in(dir: &Path, root: &Path) -> PathBuf {
        let key = blake3::hash(root.to_string_lossy().as_bytes()).to_hex();
        dir.join(format!("hashes-{}.json", &key[..24]))
    }

    /// Loads the cache of `root` from `file` (`None`: no cache). Anything unusable yields an
    /// empty cache.
    pub(crate) fn load(file: Option<PathBuf>, root: &Path) -> HashCache {
        let root = root.to_string_lossy().into_owned();
        let mut cache = HashCache {
            file,
            root,
            entries: HashMap::new(),
        };
        let Some(path) = &cache.file else {
            return cache;
        };
        if let Some(dir) = path.parent() {
            prune(dir, path, SystemTime::now());
        }
        let parsed = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<CacheFile>(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(f) if f.version == FORMAT_VERSION && f.root == cache.root => {
                cache.entries = f
                    .files
                    .into_iter()
                    .map(|(path, stamp, hash)| (path, (stamp, hash)))
                    .collect();
            }
            Ok(_) => {
                tracing::debug!(file = %path.display(), "hash cache is for another tree or version; ignored")
            }
            Err(e) => tracing::debug!(file = %path.display(), error = %e, "no usable hash cache"),
        }
        cache
    }

    /// The cached hash of `rel`, if its stamp is unchanged.
    pub(crate) fn lookup(&self, rel: &RelPath, stamp: &Stamp) -> Option<ContentHash> {
        match self.entries.get(rel.as_str()) {
            Some((s, hash)) if s == stamp => Some(hash.clone()),
            _ => None,
        }
    }

    /// Whether saving is configured.
    pub(crate) fn enabled(&self) -> bool {
        self.file.is_some()
    }

    /// Replaces the cache with `entries` (already filtered to settled ones) and writes it.
    pub(crate) fn save<'a>(
        &mut self,
        entries: impl Iterator<Item = (&'a RelPath, Stamp, &'a ContentHash)>,
    ) {
        let Some(path) = &self.file else { return };
        let entries: HashMap<String, (Stamp, ContentHash)> = entries
            .map(|(rel, stamp, hash)| (rel.as_str().to_owned(), (stamp, hash.clone())))
            .collect();
        if entries.is_empty() && self.entries.is_empty() {
            // Nothing to remember and nothing stale to replace: leave no file behind.
            return;
        }
        self.entries = entries;
        let mut files: Vec<(String, Stamp, ContentHash)> = self
            .entries
            .iter()
            .map(|(p, (s, h))| (p.clone(), *s, h.clone()))
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let body = CacheFile {
            version: FORMAT_VERSION,
            root: self.root.clone(),
            files,
        };
        let written = serde_json::to_vec(&body)
            .map_err(|e| e.to_string())
            .and_then(|bytes| write_atomic(path, &bytes, false, false).map_err(|e| e.to_string()));
        match written {
            Ok(()) => {
                tracing::debug!(file = %path.display(), entries = self.entries.len(), "hash cache saved")
            }
            Err(e) => {
                tracing::debug!(file = %path.display(), error = %e, "cannot save the hash cache")
            }
        }
    }
}

/// A cache file not written for this long belongs to a tree gone or long unused.
const STALE_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

/// At most this many cache files are kept in a directory (one per tree root); the oldest go.
const MAX_FILES: usize = 256;

/// Removes the cache files of `dir` that are stale, then the oldest beyond [`MAX_FILES`],
/// never `keep` (the tree being loaded): every root a relay ever served leaves one file, and
/// a machine that serves many short-lived roots would otherwise gather them without end.
fn prune(dir: &Path, keep: &Path, now: SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("hashes-") && name.ends_with(".json")
        })
        .filter(|e| e.path() != keep)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    for (i, (modified, path)) in files.iter().enumerate() {
        let stale = now
            .duration_since(*modified)
            .is_ok_and(|age| age > STALE_AFTER);
        // `keep` counts as one of the files kept.
        if stale || i + 1 >= MAX_FILES {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_and_surplus_cache_files_are_removed_but_never_the_trees_own() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let write = |name: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, b"{}").unwrap_or_else(|e| panic!("{e}"));
            p
        };
        let own = write("hashes-own.json");
        let other = write("hashes-other.json");
        let unrelated = write("notes.txt");
        // Forty days later the others are stale; the tree's own file stays.
        let later = SystemTime::now() + Duration::from_secs(40 * 24 * 3600);
        prune(dir.path(), &own, later);
        assert!(own.exists() && unrelated.exists());
        assert!(!other.exists(), "a stale cache file is removed");

        // Too many recent ones: the oldest go, down to MAX_FILES with the tree's own.
        for i in 0..MAX_FILES + 10 {
            write(&format!("hashes-{i:04}.json"));
        }
        prune(dir.path(), &own, SystemTime::now());
        let left = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("hashes-"))
            .count();
        assert_eq!(left, MAX_FILES);
        assert!(own.exists());
    }
}
