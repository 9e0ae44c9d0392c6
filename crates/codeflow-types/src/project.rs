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
    /// The project id breaks the rules of [`ProjectId`] (shown up to 80 characters).
    #[error(
        "project id `{0}` is invalid: use 1–64 characters from A-Z a-z 0-9 . _ - (not `.` or `..`)"
    )]
    BadId(String),
    /// The root is not an absolute path.
    #[error(
        "projectRoot `{0}` must be an absolute path (the project's directory in the client's container)"
    )]
    RootNotAbsolute(String),
    /// The root is a Windows path (a drive letter or a UNC path); the relay serves POSIX paths.
    #[error(
        "projectRoot `{0}` is a Windows path; CodeFlow's relay serves POSIX paths: run codeflow-client inside WSL or the dev container, where the project has a path like /workspace/app"
    )]
    RootNotPosix(String),
    /// The root fails the lexical path rules (`path_text`): the root, then why.
    #[error("projectRoot `{0}` is not a usable path: {1}")]
    BadRoot(String, String),
}

impl ProjectId {
    /// Checks `id` against the rules above.
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

    /// The id as text.
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
    /// Checks `root`: absolute, POSIX, within the path rules; returned normalised (one `/`
    /// between components, no trailing `/`).
    pub fn parse(root: &str) -> Result<Self, ProjectError> {
        let shown = || root.chars().take(200).collect::<String>();
        // Bytes, not string slices: a root may start with a multi-byte character.
        let windows_drive = matches!(root.as_bytes(), [d, b':', ..] if d.is_ascii_alphabetic())
            || root.starts_with("\\\\");
        if windows_drive {
            return Err(ProjectError::RootNotPosix(shown()));
        }
        if !root.starts_with('/') {
            return Err(ProjectError::RootNotAbsolute(shown()));
        }
        let parts = crate::path_text::components(root, 4096, 255)
            .map_err(|why| ProjectError::BadRoot(shown(), why))?;
        Ok(Self(format!("/{}", parts.join("/"))))
    }

    /// The root as text.
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
        assert!(matches!(
            ClientRoot::parse("C:\\src"),
            Err(ProjectError::RootNotPosix(_))
        ));
        assert!(ClientRoot::parse("C:/src").is_err());
        assert!(ClientRoot::parse("\\\\server\\share").is_err());
        for hostile in ["aé", "é", "éa/b", "a", ""] {
            assert!(ClientRoot::parse(hostile).is_err(), "{hostile}");
        }
        assert_eq!(ClientRoot::parse("/é/ü").map(|r| r.0), Ok("/é/ü".into()));
        assert!(ClientRoot::parse("app").is_err());
        assert!(ClientRoot::parse("/a\0b").is_err());
        assert!(ClientRoot::parse("/a/../etc").is_err());
        assert_eq!(
            ClientRoot::parse("/a//b/./").map(|r| r.0),
            Ok("/a/b".into())
        );
        // Multi-byte characters where a drive letter would be: an error, never a panic.
        for bad in ["aé", "é:/", "a:é", "aé/x", "ü", "日本語", "a:", "a:x"] {
            assert!(ClientRoot::parse(bad).is_err(), "{bad}");
        }
        assert!(ClientRoot::parse("/srv/é/日本").is_ok());
    }
}
