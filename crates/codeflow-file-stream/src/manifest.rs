//! The project manifest: every streamed file with its size, mtime and hash, built by walking
//! the client root through a [`FileFilter`].

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::path::Path;
use std::time::UNIX_EPOCH;

use crate::error::FileError;
use crate::filter::FileFilter;
use crate::jail::Jail;
use crate::limits::Limits;
use crate::paths::RelPath;
use crate::protocol::{ContentHash, ManifestEntry, SyncManifestParams};
use crate::walk::walk;

/// The files of a project, keyed by relative path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    files: BTreeMap<RelPath, ManifestEntry>,
    /// Files left out because they exceed the per-file size limit: (path, size).
    skipped: Vec<(RelPath, u64)>,
}

/// Milliseconds since the Unix epoch of a file's modification time (0 when unknown).
pub(crate) fn mtime_ms(meta: &Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Manifest {
    /// Walks `root` and hashes every admitted file. Files over the size limit are left out
    /// (see [`Manifest::skipped`]); exceeding the project limits is an error.
    pub fn scan(root: &Path, filter: &FileFilter, limits: &Limits) -> Result<Manifest, FileError> {
        Self::scan_with(root, filter, limits, &mut |_, _| {})
    }

    /// [`Manifest::scan`], also handing every file's bytes to `on_content` (the watcher keeps
    /// texts to compute deltas against).
    pub fn scan_with(
        root: &Path,
        filter: &FileFilter,
        limits: &Limits,
        on_content: &mut dyn FnMut(&RelPath, &[u8]),
    ) -> Result<Manifest, FileError> {
        let jail = Jail::new(root)?;
        Self::scan_jail(
            &jail,
            filter,
            limits,
            &RelPath::root(),
            on_content,
            &mut |_, _, _| {},
        )
    }

    pub(crate) fn scan_jail(
        jail: &Jail,
        filter: &FileFilter,
        limits: &Limits,
        start: &RelPath,
        on_content: &mut dyn FnMut(&RelPath, &[u8]),
        on_dir: &mut dyn FnMut(&RelPath, &Path, bool),
    ) -> Result<Manifest, FileError> {
        let mut manifest = Manifest::default();
        let mut total: u64 = 0;
        walk(jail, filter, start, on_dir, &mut |f| {
            let size = f.meta.len();
            if limits.check_file_size(f.rel.as_str(), size).is_err() {
                tracing::warn!(path = %f.rel, size, limit = limits.max_file_size, "file over the size limit is not streamed");
                manifest.skipped.push((f.rel, size));
                return Ok(());
            }
            let bytes = match std::fs::read(&f.abs) {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(path = %f.rel, error = %e, "file vanished during scan");
                    return Ok(());
                }
            };
            total += bytes.len() as u64;
            limits.check_project(manifest.files.len() as u64 + 1, total)?;
            on_content(&f.rel, &bytes);
            let entry = ManifestEntry {
                path: f.rel.as_str().to_owned(),
                size: bytes.len() as u64,
                mtime: mtime_ms(&f.meta),
                hash: ContentHash::of(&bytes),
            };
            manifest.files.insert(f.rel, entry);
            Ok(())
        })?;
        Ok(manifest)
    }

    /// Builds a manifest from `server/syncManifest` params, checking every path.
    pub fn from_params(params: SyncManifestParams, limits: &Limits) -> Result<Manifest, FileError> {
        let mut entries = Vec::with_capacity(params.files.len());
        for entry in params.files {
            let rel = RelPath::parse_with(&entry.path, limits)?;
            if rel.is_root() {
                return Err(FileError::rejected("a manifest entry names the root"));
            }
            entries.push((rel, entry));
        }
        // Built at once rather than by 10,000 inserts: a relay lists its files in path order,
        // which the build's sort finds already sorted. A path listed twice keeps its last
        // entry, as inserting did.
        Ok(Manifest {
            files: BTreeMap::from_iter(entries),
            skipped: Vec::new(),
        })
    }

    /// The `server/syncManifest` params for this manifest.
    pub fn to_params(&self) -> SyncManifestParams {
        SyncManifestParams {
            files: self.files.values().cloned().collect(),
            dry_run: false,
            transfers: false,
            upload_all: false,
        }
    }

    /// The entry of a file.
    pub fn get(&self, rel: &RelPath) -> Option<&ManifestEntry> {
        self.files.get(rel)
    }

    /// Every file, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&RelPath, &ManifestEntry)> {
        self.files.iter()
    }

    /// How many files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the tree has no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The bytes of every file together.
    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|e| e.size).sum()
    }

    /// Files left out for exceeding the per-file size limit.
    pub fn skipped(&self) -> &[(RelPath, u64)] {
        &self.skipped
    }

    pub(crate) fn insert(&mut self, rel: RelPath, entry: ManifestEntry) {
        self.files.insert(rel, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_become_a_path_ordered_manifest_whatever_their_order() {
        let entry = |path: &str, size: u64| ManifestEntry {
            path: path.into(),
            size,
            mtime: 0,
            hash: ContentHash::of(path.as_bytes()),
        };
        let params = |files: Vec<ManifestEntry>| SyncManifestParams {
            files,
            dry_run: false,
            transfers: false,
            upload_all: false,
        };
        let manifest = Manifest::from_params(
            params(vec![
                entry("b/c.txt", 1),
                entry("a.txt", 2),
                entry("b/a.txt", 3),
                entry("a.txt", 4),
            ]),
            &Limits::default(),
        )
        .unwrap();
        let listed: Vec<(&str, u64)> = manifest
            .iter()
            .map(|(rel, e)| (rel.as_str(), e.size))
            .collect();
        assert_eq!(
            listed,
            [("a.txt", 4), ("b/a.txt", 3), ("b/c.txt", 1)],
            "path order; a path listed twice keeps its last entry"
        );
        assert_eq!(manifest.total_bytes(), 8);
        assert!(
            Manifest::from_params(params(vec![entry("../out", 1)]), &Limits::default()).is_err()
        );
        assert!(Manifest::from_params(params(vec![entry(".", 1)]), &Limits::default()).is_err());
    }
}
