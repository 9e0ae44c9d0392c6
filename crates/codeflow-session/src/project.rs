//! Validated identifiers: a project id and a client's project root.

use std::fmt;

/// A project id: 1–64 characters from `[A-Za-z0-9._-]`, not `.` or `..`.
///
/// Validated once at the handshake; everything inward trusts it (it is used in paths on the
/// server, so the check is a security boundary, not a nicety).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(String);

/// Why a project id or root was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProjectError {
    #[error(
        "project id `{0}` is invalid: use 1–64 characters from A-Z a-z 0-9 . _ - (not `.` or `..`)"
    )]
    BadId(String),
    #[error(
        "projectRoot `{0}` must be an absolute path (the project's directory in the client's container)"
    )]
    RootNotAbsolute(String),
    #[error("projectRoot is too long or contains a NUL byte")]
    BadRoot,
}

impl ProjectId {
    pub fn parse(id: &str) -> Result<Self, ProjectError> {
        let valid = (1..=64).contains(&id.len())
            && id != "."
            && id != ".."
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(Self(id.to_owned()))
        } else {
            Err(ProjectError::BadId(id.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The client's absolute path of its project directory. It names a directory in the client's
/// container, never on the server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientRoot(String);

impl ClientRoot {
    pub fn parse(root: &str) -> Result<Self, ProjectError> {
        if root.len() > 4096 || root.contains('\0') {
            return Err(ProjectError::BadRoot);
        }
        // Bytes, not string slices: a slice boundary inside a multi-byte character panics
        // (`"aé"` once took down the connection task).
        let windows_drive = matches!(
            root.as_bytes(),
            [drive, b':', b'\\' | b'/', ..] if drive.is_ascii_alphabetic()
        );
        if !(root.starts_with('/') || windows_drive) {
            return Err(ProjectError::RootNotAbsolute(
                root.chars().take(200).collect(),
            ));
        }
        let trimmed = if root.len() > 1 {
            root.trim_end_matches(['/', '\\'])
        } else {
            root
        };
        Ok(Self(
            if trimmed.is_empty() { "/" } else { trimmed }.to_owned(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids() {
        for ok in ["demo", "a", "my-proj_1.2", &"x".repeat(64)] {
            assert!(ProjectId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "../x",
            "é",
            &"x".repeat(65),
            "a\0",
        ] {
            assert!(ProjectId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roots() {
        assert_eq!(ClientRoot::parse("/app/").map(|r| r.0), Ok("/app".into()));
        assert_eq!(ClientRoot::parse("/").map(|r| r.0), Ok("/".into()));
        assert!(ClientRoot::parse("C:\\src").is_ok());
        assert!(ClientRoot::parse("app").is_err());
        assert!(ClientRoot::parse("/a\0b").is_err());
        // Multi-byte characters where a drive letter would be: an error, never a panic.
        for bad in ["aé", "é:/", "a:é", "aé/x", "ü", "日本語", "a:", "a:x"] {
            assert!(ClientRoot::parse(bad).is_err(), "{bad}");
        }
        assert!(ClientRoot::parse("/srv/é/日本").is_ok());
    }
}
