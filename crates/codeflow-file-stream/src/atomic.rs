//! Atomic file replacement: write a temporary file in the same directory, then rename it over
//! the target, so a reader sees the old or the new content and never a torn file.

use std::io::Write as _;
use std::path::Path;

use crate::error::FileError;
use crate::protocol::ContentHash;

/// Prefix and suffix of our temporary files; the default excludes skip them.
pub(crate) const TMP_PREFIX: &str = ".codeflow-";
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Replaces `target` with `bytes`. An existing file keeps its permissions; a new one gets
/// `0644` less the umask. With `create_new`, an existing target is a conflict and is left alone. With
/// `durable`, the data is synced before the rename (client files; the mirror skips it).
pub(crate) fn write_atomic(
    target: &Path,
    bytes: &[u8],
    create_new: bool,
    durable: bool,
) -> Result<(), FileError> {
    let name = target.display().to_string();
    let dir = target
        .parent()
        .ok_or_else(|| FileError::NotAFile(name.clone()))?;
    std::fs::create_dir_all(dir).map_err(|e| FileError::io(&name, &e))?;
    // An existing file keeps its exact mode (set after creation: `open` would apply the
    // umask); a new one is created 0644 (less the umask) in the same call.
    let existing = std::fs::metadata(target).ok().map(|m| m.permissions());
    let mut builder = tempfile::Builder::new();
    builder.prefix(TMP_PREFIX).suffix(TMP_SUFFIX);
    if existing.is_none()
        && let Some(perms) = default_permissions()
    {
        builder.permissions(perms);
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| FileError::io(&name, &e))?;
    tmp.write_all(bytes).map_err(|e| FileError::io(&name, &e))?;
    if let Some(perms) = existing {
        tmp.as_file()
            .set_permissions(perms)
            .map_err(|e| FileError::io(&name, &e))?;
    }
    if durable {
        tmp.as_file()
            .sync_data()
            .map_err(|e| FileError::io(&name, &e))?;
    }
    if create_new {
        tmp.persist_noclobber(target).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                FileError::Conflict {
                    path: name.clone(),
                    actual: std::fs::read(target).ok().map(|b| ContentHash::of(&b)),
                }
            } else {
                FileError::io(&name, &e.error)
            }
        })?;
    } else {
        tmp.persist(target)
            .map_err(|e| FileError::io(&name, &e.error))?;
    }
    Ok(())
}

#[cfg(unix)]
fn default_permissions() -> Option<std::fs::Permissions> {
    use std::os::unix::fs::PermissionsExt as _;
    Some(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn default_permissions() -> Option<std::fs::Permissions> {
    None
}
