//! The path jail: every path from the other side is checked here before the disk is touched.
//!
//! Two layers:
//! - **lexical** (used by [`crate::RelPath::parse`] and [`crate::ClientPath::parse`]): NUL and other control
//!   characters, backslashes, `..` components anywhere (even ones that would stay inside),
//!   percent-encoded dots, slashes, backslashes, NULs and percents (`%2e`, `%2f`, `%5c`, `%00`,
//!   `%25`, and overlong UTF-8 lead bytes `%c0`/`%c1`), over-long paths and names;
//! - **on disk** ([`Jail::resolve`]): the deepest existing ancestor is canonicalized and must lie
//!   in the canonical root, so a symlink anywhere on the way that leads out is refused; a
//!   dangling symlink is refused too, since writing through it could create a file outside.
//!
//! Writes replace the final path component by `rename`, so they never write *through* a final
//! symlink. A symlink swapped in between the check and the use (a race by a local process with
//! write access to the tree) is outside this jail's threat model: the other side of the socket
//! cannot create symlinks.

use std::path::{Component, Path, PathBuf};

use crate::error::FileError;
use crate::limits::Limits;
use crate::paths::RelPath;

/// Lexical checks on a raw path string from the other side; returns its components
/// (`/`-separated, empty and `.` components dropped).
pub(crate) fn check_raw<'a>(raw: &'a str, limits: &Limits) -> Result<Vec<&'a str>, FileError> {
    codeflow_types::path_text::components(raw, limits.max_path_len, limits.max_name_len)
        .map_err(FileError::rejected)
}

/// Directories [`Jail::resolve_remembering`] found to be real directories (not symlinks).
#[derive(Debug, Default)]
pub struct PlainDirs(std::collections::HashSet<PathBuf>);

/// A directory on this machine that paths must stay inside, symlinks included.
#[derive(Debug, Clone)]
pub struct Jail {
    /// The root as configured (may itself go through symlinks, e.g. `/tmp` on macOS).
    root: PathBuf,
    /// The canonical root; resolved paths must lie inside it.
    canonical: PathBuf,
}

impl Jail {
    /// Opens a jail on an existing directory.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, FileError> {
        let root = root.into();
        let canonical = std::fs::canonicalize(&root)
            .map_err(|e| FileError::io(&format!("project root {}", root.display()), &e))?;
        if !canonical.is_dir() {
            return Err(FileError::NotADirectory(root.display().to_string()));
        }
        Ok(Jail { root, canonical })
    }

    /// The root as configured.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The canonical root.
    pub fn canonical_root(&self) -> &Path {
        &self.canonical
    }

    /// Resolves a checked relative path to an absolute path on disk, refusing symlinks that
    /// lead out of the root (anywhere on the path, including the final component) and
    /// dangling symlinks. The returned path is under the canonical root; the final component
    /// is not resolved, so callers can tell a symlink (inside the root) from its target.
    pub fn resolve(&self, rel: &RelPath) -> Result<PathBuf, FileError> {
        self.resolve_remembering(rel, &mut PlainDirs::default())
    }

    /// [`Jail::resolve`] for many paths in a row (a sync's upload reads 10,000 files): the
    /// directories found plain on the way (real directories, not symlinks) are remembered in
    /// `plain` and not checked again for the next paths. Only for one pass whose results are
    /// used right away: a directory replaced by a symlink later is not seen (the same race
    /// [`Jail::resolve`] has between its check and the caller's use, just longer).
    pub fn resolve_remembering(
        &self,
        rel: &RelPath,
        plain: &mut PlainDirs,
    ) -> Result<PathBuf, FileError> {
        let full = self.canonical.join(rel.as_str());
        // Fast path: `lstat` each component below the (already canonical) root. Plain
        // directories down to the first missing component, or to a final non-symlink, cannot
        // lead out, and need no canonicalisation (a `realpath` costs a `readlink` for every
        // component of the absolute path, and this runs for every file a sync writes).
        let parts: Vec<&str> = rel.components().collect();
        let mut walked = self.canonical.clone();
        for (i, part) in parts.iter().enumerate() {
            walked.push(part);
            if i + 1 < parts.len() && plain.0.contains(&walked) {
                continue;
            }
            match std::fs::symlink_metadata(&walked) {
                Ok(m) if m.is_dir() => {
                    plain.0.insert(walked.clone());
                }
                Ok(m) if !m.file_type().is_symlink() && i + 1 == parts.len() => break,
                // A symlink, or a file where a directory should be: the careful path decides.
                Ok(_) => return self.resolve_canonical(rel, full),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(FileError::io(&rel.to_string(), &e)),
            }
        }
        Ok(full)
    }

    /// [`Jail::resolve`] for a path that meets a symlink: canonicalizes the deepest existing
    /// ancestor (or the path itself) and checks that it lies in the root.
    fn resolve_canonical(&self, rel: &RelPath, full: PathBuf) -> Result<PathBuf, FileError> {
        let mut existing = full.as_path();
        loop {
            match std::fs::symlink_metadata(existing) {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    existing = existing.parent().ok_or_else(|| {
                        FileError::rejected("path has no existing ancestor inside the root")
                    })?;
                }
                Err(e) => return Err(FileError::io(&rel.to_string(), &e)),
            }
        }
        let canonical = std::fs::canonicalize(existing).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                FileError::rejected(format!("{rel}: a dangling symlink is on the path"))
            } else {
                FileError::io(&rel.to_string(), &e)
            }
        })?;
        if !canonical.starts_with(&self.canonical) {
            return Err(FileError::rejected(format!(
                "{rel}: a symlink on the path leads out of the project root"
            )));
        }
        Ok(full)
    }

    /// Splits an absolute path on this machine into a checked relative path, accepting the
    /// root either as configured or canonical. Relative input is taken relative to the root.
    pub fn relativize(&self, raw: &str, limits: &Limits) -> Result<RelPath, FileError> {
        let parts = check_raw(raw, limits)?;
        let path = Path::new(raw);
        if !path.is_absolute() {
            return RelPath::from_parts(&parts);
        }
        for root in [&self.root, &self.canonical] {
            if let Some(rel) = strip_root(&parts, root) {
                return RelPath::from_parts(&rel);
            }
        }
        Err(FileError::rejected(format!(
            "{raw} is outside the project root {}",
            self.root.display()
        )))
    }
}

/// If the components `parts` of an absolute path start with `root`'s components, the rest.
pub(crate) fn strip_root<'a>(parts: &[&'a str], root: &Path) -> Option<Vec<&'a str>> {
    let root_parts: Vec<&str> = root
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    if parts.len() < root_parts.len() || parts[..root_parts.len()] != root_parts[..] {
        return None;
    }
    Some(parts[root_parts.len()..].to_vec())
}
