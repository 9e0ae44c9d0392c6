//! Project ids and project directories: the security boundary between a request and the disk.
//!
//! A project's directory is named relative to the configured projects root. Absolute paths,
//! `.` and `..` components, NUL bytes and symbolic links anywhere along the way are refused, so
//! no request can make a run work (or the server create directories) outside the root.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{ExecError, Result};

/// Checks a project id: 1–64 characters from `[A-Za-z0-9._-]`, not `.` or `..` (the same rule
/// as the session handshake's).
pub fn check_id(id: &str) -> Result<()> {
    let valid = (1..=64).contains(&id.len())
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ExecError::invalid(format!(
            "project id `{}` is invalid",
            id.chars().take(80).collect::<String>()
        ))
        .suggest("use 1–64 characters from A-Z a-z 0-9 . _ - (not `.` or `..`)"))
    }
}

/// The normalised relative form of a requested project path (components joined with `/`), or
/// why it is refused.
pub fn normalise(rel: &str) -> Result<String> {
    let refuse = |why: &str| {
        Err(ExecError::invalid(format!(
            "project path `{}` is refused: {why}",
            rel.chars().take(200).collect::<String>()
        ))
        .suggest(
            "give a path relative to the server's projects root, without `..`, e.g. `team/app`",
        ))
    };
    if rel.len() > 1024 || rel.contains('\0') {
        return refuse("too long or contains a NUL byte");
    }
    if rel.starts_with('/') || rel.starts_with('\\') || Path::new(rel).is_absolute() {
        return refuse("it is absolute");
    }
    let mut parts = Vec::new();
    for part in rel.split(['/', '\\']) {
        match part {
            "" => {}
            "." | ".." => return refuse("`.` and `..` components are not allowed"),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return refuse("it is empty");
    }
    Ok(parts.join("/"))
}

/// Resolves `rel` (already [`normalise`]d) under `root` (canonical), creating the directories
/// that are missing. Every existing component must be a real directory, not a symbolic link.
pub fn resolve_dir(root: &Path, rel: &str) -> Result<PathBuf> {
    let mut current = root.to_path_buf();
    for part in rel.split('/') {
        current.push(part);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(ExecError::invalid(format!(
                    "project path `{rel}` is refused: `{}` is a symbolic link",
                    current.strip_prefix(root).unwrap_or(&current).display()
                ))
                .suggest("project directories may not pass through symbolic links; use the real directory"));
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(ExecError::invalid(format!(
                    "project path `{rel}` is refused: `{}` is not a directory",
                    current.strip_prefix(root).unwrap_or(&current).display()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match std::fs::create_dir(&current) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        // Created meanwhile: check it again.
                        let meta = std::fs::symlink_metadata(&current).map_err(io_error)?;
                        if !meta.is_dir() {
                            return Err(ExecError::invalid(format!(
                                "project path `{rel}` changed while it was being created"
                            )));
                        }
                    }
                    Err(e) => return Err(io_error(e)),
                }
            }
            Err(e) => return Err(io_error(e)),
        }
    }
    // Defence in depth: the resolved directory is inside the root.
    let real = current.canonicalize().map_err(io_error)?;
    if !real.starts_with(root) {
        return Err(ExecError::invalid(format!(
            "project path `{rel}` resolves outside the projects root"
        )));
    }
    Ok(real)
}

fn io_error(e: io::Error) -> ExecError {
    ExecError::internal(format!("cannot prepare the project directory: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(check_id("demo-1.x_y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_paths_only() {
        assert_eq!(normalise("a/b/").ok().as_deref(), Some("a/b"));
        assert_eq!(normalise("a//b").ok().as_deref(), Some("a/b"));
        for bad in ["/etc", "..", "a/../../b", "./a", "", "/", "a\0b", "\\x"] {
            assert!(normalise(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn symlinks_are_refused_and_dirs_created() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root_path = root.path().canonicalize().unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(outside.path(), root_path.join("out"))
            .unwrap_or_else(|e| panic!("{e}"));
        let err = resolve_dir(&root_path, "out/x").err();
        assert!(err.is_some_and(|e| e.message.contains("symbolic link")));
        assert!(
            !outside.path().join("x").exists(),
            "nothing created outside"
        );
        let made = resolve_dir(&root_path, "a/b").unwrap_or_else(|e| panic!("{e}"));
        assert!(made.is_dir() && made.starts_with(&root_path));
        std::fs::write(root_path.join("file"), b"x").unwrap_or_else(|e| panic!("{e}"));
        assert!(resolve_dir(&root_path, "file").is_err());
    }
}
