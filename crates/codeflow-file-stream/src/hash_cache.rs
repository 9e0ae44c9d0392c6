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
