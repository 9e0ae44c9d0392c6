//! The watcher's persisted hash cache: `(path, size, mtime, ctime, inode) → hash` of a client
//! tree, kept in one file per tree. A relay that starts again on a tree it has seen stats its
//! files instead of reading and hashing them all (git's index does the same).
//!
//! **Racy entries.** A file written in the same timestamp tick as it was read could change
//! without its stamp changing. So an entry is only ever saved when its mtime and ctime are older
//! than the moment its hash was read (taken before the read) by a margin ([`Settling`]): the
//! baseline scan saves the entries old enough at its start, and re-reads the younger ones once
//! they have aged (see the watcher's deferred save).
//!
//! The margin must cover how far a later write's timestamps can fall behind the read. On a
//! local file system that stores nanosecond timestamps taken from this kernel's clock (tmpfs,
//! ext4, xfs, btrfs, overlayfs), a write after the read gets an mtime and ctime from the
//! kernel's coarse clock, which lags the real time by less than one scheduler tick (≤ 10 ms):
//! a file whose timestamps are more than a tick older than the read cannot be written again
//! without its stamp changing, so [`WatcherConfig::hash_cache_local_margin`] (50 ms) is
//! enough there. Everywhere else — another file system type, a file on another device than
//! the root (a mount inside the tree), or timestamps with no sub-second part (a file system
//! keeping whole seconds, e.g. ext4 with small inodes) — the timestamps may be coarse or come
//! from another machine's clock, and [`WatcherConfig::hash_cache_margin`] (2 s) applies.
//! (`crate::WatcherConfig`)
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
const FORMAT_VERSION: u32 = 2;

/// Cheap identity of a file version: size, mtime, ctime (nanoseconds since the epoch), inode
/// and device. Any write, rename over or `touch` changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    len: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    dev: u64,
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
                dev: meta.dev(),
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
                dev: 0,
            }
        }
    }

    /// Matches no file on disk: the next re-stat checks the file again.
    pub(crate) const UNKNOWN: Stamp = Stamp {
        len: u64::MAX,
        mtime_ns: i64::MIN,
        ctime_ns: i64::MIN,
        ino: 0,
        dev: 0,
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

    /// Whether both timestamps have a sub-second part (a file system keeping whole seconds
    /// never gives one; a nanosecond one gives `.000000000` once in a billion writes, which
    /// only costs the longer margin).
    fn has_subsecond_times(&self) -> bool {
        self.mtime_ns % 1_000_000_000 != 0 && self.ctime_ns % 1_000_000_000 != 0
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

/// How long after its last change a file's hash may be trusted (see the module docs): the
/// local margin for files on the root's device when that is a local file system with
/// nanosecond timestamps from this kernel, and the file's times have a sub-second part; the
/// general margin otherwise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settling {
    margin: Duration,
    local_margin: Duration,
    /// The root's device, when its file system qualifies for the local margin.
    local_dev: Option<u64>,
}

impl Settling {
    /// The rule for the tree at `root` (the local margin is never longer than `margin`).
    pub(crate) fn for_root(root: &Path, margin: Duration, local_margin: Duration) -> Self {
        Settling {
            margin,
            local_margin: local_margin.min(margin),
            local_dev: local_fine_device(root),
        }
    }

    /// Whether the root is on a local file system with fine timestamps (see
    /// [`Settling::for_root`]).
    pub(crate) fn is_local(&self) -> bool {
        self.local_dev.is_some()
    }

    /// The general margin for every file (no file system is taken as local).
    #[cfg(test)]
    fn general(margin: Duration) -> Self {
        Settling {
            margin,
            local_margin: margin,
            local_dev: None,
        }
    }

    /// The margin that applies to a file with this stamp.
    pub(crate) fn margin_for(&self, stamp: &Stamp) -> Duration {
        if self.local_dev == Some(stamp.dev) && stamp.has_subsecond_times() {
            self.local_margin
        } else {
            self.margin
        }
    }

    /// Whether a hash read at `read_at` (taken before the read) can be trusted for `stamp`.
    pub(crate) fn settled(&self, stamp: &Stamp, read_at: SystemTime) -> bool {
        stamp.settled_before(read_at, self.margin_for(stamp))
    }
}

/// The device of `root` when its file system stores nanosecond timestamps taken from this
/// kernel's clock (a local one: tmpfs, ext2/3/4, xfs, btrfs, overlayfs); `None` otherwise
/// (network and FUSE file systems, whose times may come from another clock, and anything
/// unknown).
#[cfg(target_os = "linux")]
fn local_fine_device(root: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    const TMPFS: u32 = 0x0102_1994;
    const EXT: u32 = 0xEF53;
    const XFS: u32 = 0x5846_5342;
    const BTRFS: u32 = 0x9123_683E;
    const OVERLAYFS: u32 = 0x794C_7630;
    let kind = rustix::fs::statfs(root).ok()?.f_type as u64 as u32;
    if ![TMPFS, EXT, XFS, BTRFS, OVERLAYFS].contains(&kind) {
        return None;
    }
    Some(std::fs::metadata(root).ok()?.dev())
}

#[cfg(not(target_os = "linux"))]
fn local_fine_device(_root: &Path) -> Option<u64> {
    None
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

    fn stamp(mtime_ns: i64, ctime_ns: i64, dev: u64) -> Stamp {
        Stamp {
            len: 1,
            mtime_ns,
            ctime_ns,
            ino: 7,
            dev,
        }
    }

    fn ns(t: SystemTime) -> i64 {
        i64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()).unwrap_or(0)
    }

    #[test]
    fn the_local_margin_applies_only_to_fine_timestamps_on_the_roots_device() {
        let settling = Settling {
            margin: Duration::from_secs(2),
            local_margin: Duration::from_millis(50),
            local_dev: Some(3),
        };
        let read_at = SystemTime::now();
        let ago = |ms: u64| ns(read_at - Duration::from_millis(ms)) / 1000 * 1000 + 123;
        // Changed 10 ms before the read: within a tick of it, never trusted.
        assert!(!settling.settled(&stamp(ago(10), ago(10), 3), read_at));
        // 200 ms before, on the root's local device: trusted.
        assert!(settling.settled(&stamp(ago(200), ago(200), 3), read_at));
        // The ctime counts too (a `touch -d` back in time leaves it recent).
        assert!(!settling.settled(&stamp(ago(5000), ago(10), 3), read_at));
        // Another device (a mount inside the tree): the general margin.
        assert!(!settling.settled(&stamp(ago(200), ago(200), 4), read_at));
        assert!(settling.settled(&stamp(ago(2500), ago(2500), 4), read_at));
        // Whole-second timestamps (a coarse file system): the general margin.
        let whole = |ms: u64| ago(ms) / 1_000_000_000 * 1_000_000_000;
        assert!(!settling.settled(&stamp(whole(200), whole(200), 3), read_at));
        assert!(settling.settled(&stamp(whole(3500), whole(3500), 3), read_at));
        // No local file system known: the general margin for all.
        let general = Settling::general(Duration::from_secs(2));
        assert!(!general.settled(&stamp(ago(200), ago(200), 3), read_at));
        assert!(!settling.settled(&Stamp::UNKNOWN, read_at));
    }

    /// The racy case, on the temp dir's real file system: a file read right after it was
    /// written is not trusted (a second write in the same timestamp tick may leave its stamp
    /// as it was), while one trusted by the local margin cannot be written again without its
    /// stamp changing.
    #[test]
    fn a_file_written_within_a_tick_of_its_read_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path().canonicalize().unwrap_or_else(|e| panic!("{e}"));
        let settling = Settling::for_root(&root, Duration::from_secs(2), Duration::from_millis(50));
        let path = root.join("f.txt");
        let stat = || Stamp::of(&std::fs::metadata(&path).unwrap_or_else(|e| panic!("{e}")));
        for round in 0..20 {
            // Written, then read at once: too fresh, whatever the file system (unless this
            // thread was held up for most of the local margin in between).
            let before_write = SystemTime::now();
            std::fs::write(&path, format!("a{round:03}")).unwrap_or_else(|e| panic!("{e}"));
            let read_at = SystemTime::now();
            let first = stat();
            if read_at
                .duration_since(before_write)
                .is_ok_and(|d| d < Duration::from_millis(30))
            {
                assert!(!settling.settled(&first, read_at), "round {round}");
            }
            // Written again at once, same size: the stamp may or may not change (same tick);
            // the entry was never trusted, so either way nothing stale is kept.
            std::fs::write(&path, format!("b{round:03}")).unwrap_or_else(|e| panic!("{e}"));
        }
        if settling.local_dev.is_none() {
            // Not a local file system with fine timestamps: only the general margin applies.
            return;
        }
        std::thread::sleep(Duration::from_millis(120));
        let read_at = SystemTime::now();
        let before = stat();
        assert!(
            settling.settled(&before, read_at),
            "120 ms old on a local file system: trusted"
        );
        // Any write after the read gives a new stamp.
        std::fs::write(&path, b"c000").unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(
            stat(),
            before,
            "a write after a trusted read changes the stamp"
        );
    }

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
