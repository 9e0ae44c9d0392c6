//! Path types and translation between the client's root and the mirror.
//!
//! - [`RelPath`]: a checked path relative to a project root (`/`-separated, no `..`);
//! - [`ClientPath`]: an absolute path on the client (what the agent sees, what `client/*`
//!   requests carry);
//! - [`MirrorPath`]: an absolute path inside the server's mirror (what language servers see).
//!   Only a [`PathMap`] makes one, and nothing turns it into a wire path except
//!   [`PathMap::to_client`], so a mirror path cannot be sent to a client by accident.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::FileError;
use crate::jail::{check_raw, strip_root};
use crate::limits::Limits;

/// A path relative to a project root, lexically jailed (see [`crate::jail`]). The empty
/// path is the root itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(String);

impl RelPath {
    /// Checks and normalizes a relative path (`a//b/./c` → `a/b/c`). A leading `/` is
    /// rejected: absolute paths go through [`PathMap`] or [`crate::Jail::relativize`].
    pub fn parse(raw: &str) -> Result<Self, FileError> {
        Self::parse_with(raw, &Limits::default())
    }

    /// [`RelPath::parse`] with explicit length limits.
    pub fn parse_with(raw: &str, limits: &Limits) -> Result<Self, FileError> {
        if raw.starts_with('/') {
            return Err(FileError::rejected(format!(
                "{raw} is absolute where a relative path was expected"
            )));
        }
        let parts = check_raw(raw, limits)?;
        Self::from_parts(&parts)
    }

    pub(crate) fn from_parts(parts: &[&str]) -> Result<Self, FileError> {
        Ok(RelPath(parts.join("/")))
    }

    /// The root itself.
    pub fn root() -> Self {
        RelPath(String::new())
    }

    /// Whether this is the root itself (no components).
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path as text (`/`-separated, no leading `/`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self/name` (name must be one checked component).
    pub(crate) fn join_name(&self, name: &str) -> RelPath {
        if self.0.is_empty() {
            return RelPath(name.to_owned());
        }
        let mut path = String::with_capacity(self.0.len() + 1 + name.len());
        path.push_str(&self.0);
        path.push('/');
        path.push_str(name);
        RelPath(path)
    }

    /// `self/name` for a name read from a directory listing, checked as
    /// [`RelPath::parse_with`] checks the whole path (a walk makes one per file: checking
    /// only the new component, and one allocation).
    pub(crate) fn child(&self, name: &str, limits: &Limits) -> Result<RelPath, FileError> {
        if check_raw(name, limits)? != [name] {
            return Err(FileError::rejected(format!(
                "`{name}` is not one path component"
            )));
        }
        let len = if self.0.is_empty() {
            name.len()
        } else {
            self.0.len() + 1 + name.len()
        };
        if len > limits.max_path_len {
            return Err(FileError::rejected(format!(
                "path is {len} bytes, over the limit of {}",
                limits.max_path_len
            )));
        }
        let mut path = String::with_capacity(len);
        if !self.0.is_empty() {
            path.push_str(&self.0);
            path.push('/');
        }
        path.push_str(name);
        Ok(RelPath(path))
    }

    /// True when `self` is `dir` or lies below it.
    pub fn starts_with(&self, dir: &RelPath) -> bool {
        dir.is_root()
            || self.0 == dir.0
            || (self.0.starts_with(&dir.0) && self.0.as_bytes().get(dir.0.len()) == Some(&b'/'))
    }

    /// The components.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "." } else { &self.0 })
    }
}

/// An absolute path on the client machine, normalized (`/app/src/a.ts`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientPath(String);

impl ClientPath {
    /// Checks an absolute client path (lexical jail checks apply: no `..`, no encodings).
    pub fn parse(raw: &str) -> Result<Self, FileError> {
        if !raw.starts_with('/') {
            return Err(FileError::rejected(format!(
                "{raw} is not an absolute client path"
            )));
        }
        let parts = check_raw(raw, &Limits::default())?;
        Ok(ClientPath(format!("/{}", parts.join("/"))))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self/rel`.
    pub fn join(&self, rel: &RelPath) -> ClientPath {
        if rel.is_root() {
            self.clone()
        } else if self.0 == "/" {
            ClientPath(format!("/{}", rel.0))
        } else {
            ClientPath(format!("{}/{}", self.0, rel.0))
        }
    }

    /// The `file://` URI of this path.
    pub fn to_uri(&self) -> String {
        format!("file://{}", percent_encode_path(&self.0))
    }
}

impl fmt::Display for ClientPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An absolute path inside a project's mirror (or, for a shared project, inside its
/// server-side directory). Made only by [`PathMap`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MirrorPath {
    rel: RelPath,
    abs: PathBuf,
}

impl MirrorPath {
    /// The path on the server's disk, for language servers.
    pub fn as_path(&self) -> &Path {
        &self.abs
    }

    /// The path relative to the project root.
    pub fn rel(&self) -> &RelPath {
        &self.rel
    }

    /// The `file://` URI of this path.
    pub fn to_uri(&self) -> String {
        format!(
            "file://{}",
            percent_encode_path(&self.abs.to_string_lossy())
        )
    }
}

/// Translates between a client root and a mirror root, both ways.
#[derive(Debug, Clone)]
pub struct PathMap {
    client_root: ClientPath,
    mirror_root: PathBuf,
}

impl PathMap {
    /// `client_root`: the client's absolute project root; `mirror_root`: the server-side
    /// directory holding the same tree.
    pub fn new(client_root: &str, mirror_root: impl Into<PathBuf>) -> Result<Self, FileError> {
        Ok(PathMap {
            client_root: ClientPath::parse(client_root)?,
            mirror_root: mirror_root.into(),
        })
    }

    /// The client's root.
    pub fn client_root(&self) -> &ClientPath {
        &self.client_root
    }

    /// The mirror's root on the server.
    pub fn mirror_root(&self) -> &Path {
        &self.mirror_root
    }

    /// The project-relative form of a client path; refused when outside the client root.
    pub fn client_rel(&self, path: &ClientPath) -> Result<RelPath, FileError> {
        let parts: Vec<&str> = path.0.split('/').filter(|s| !s.is_empty()).collect();
        strip_root(&parts, Path::new(&self.client_root.0))
            .ok_or_else(|| {
                FileError::rejected(format!(
                    "{path} is outside the project root {}",
                    self.client_root
                ))
            })
            .and_then(|rest| RelPath::from_parts(&rest))
    }

    /// The client path of a relative path.
    pub fn client_path(&self, rel: &RelPath) -> ClientPath {
        self.client_root.join(rel)
    }

    /// The mirror path of a relative path.
    pub fn mirror_path(&self, rel: &RelPath) -> MirrorPath {
        let abs = if rel.is_root() {
            self.mirror_root.clone()
        } else {
            self.mirror_root.join(&rel.0)
        };
        MirrorPath {
            rel: rel.clone(),
            abs,
        }
    }

    /// Client path → mirror path.
    pub fn to_mirror(&self, path: &ClientPath) -> Result<MirrorPath, FileError> {
        Ok(self.mirror_path(&self.client_rel(path)?))
    }

    /// Mirror path → client path (never fails: a `MirrorPath` is inside the root by
    /// construction).
    pub fn to_client(&self, path: &MirrorPath) -> ClientPath {
        self.client_path(&path.rel)
    }

    /// Checks a server-side absolute path (e.g. from a language server's answer) and makes it
    /// a [`MirrorPath`]; refused when outside the mirror root.
    pub fn parse_mirror(&self, path: &Path) -> Result<MirrorPath, FileError> {
        let raw = path
            .to_str()
            .ok_or_else(|| FileError::rejected("path is not valid UTF-8"))?;
        let parts = check_raw(raw, &Limits::default())?;
        if !path.is_absolute() {
            return Err(FileError::rejected(format!(
                "{raw} is not an absolute mirror path"
            )));
        }
        let rest = strip_root(&parts, &self.mirror_root).ok_or_else(|| {
            FileError::rejected(format!(
                "{raw} is outside the mirror root {}",
                self.mirror_root.display()
            ))
        })?;
        Ok(self.mirror_path(&RelPath::from_parts(&rest)?))
    }

    /// A client `file://` URI → the mirror's `file://` URI.
    pub fn uri_to_mirror(&self, uri: &str) -> Result<String, FileError> {
        let path = ClientPath::parse(&uri_path(uri)?)?;
        Ok(self.to_mirror(&path)?.to_uri())
    }

    /// A mirror `file://` URI → the client's `file://` URI.
    pub fn uri_to_client(&self, uri: &str) -> Result<String, FileError> {
        let path = uri_path(uri)?;
        Ok(self
            .to_client(&self.parse_mirror(Path::new(&path))?)
            .to_uri())
    }
}

/// The decoded path of a `file://` URI (an empty or `localhost` authority only).
pub fn uri_path(uri: &str) -> Result<String, FileError> {
    let rest = uri
        .strip_prefix("file://")
        .ok_or_else(|| FileError::rejected(format!("{uri} is not a file:// URI")))?;
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return Err(FileError::rejected(format!(
            "{uri}: file URIs with a remote host are not supported"
        )));
    }
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    percent_decode(rest)
}

fn percent_decode(s: &str) -> Result<String, FileError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| FileError::rejected(format!("bad percent-escape in {s}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| FileError::rejected("URI path is not valid UTF-8"))
}

fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> PathMap {
        match PathMap::new("/app", "/data/mirrors/p") {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn translates_both_ways() {
        let m = map();
        let c = ClientPath::parse("/app/src/a b.ts").ok();
        let mp = c.as_ref().and_then(|c| m.to_mirror(c).ok());
        assert_eq!(
            mp.as_ref().map(|p| p.as_path().to_owned()),
            Some(PathBuf::from("/data/mirrors/p/src/a b.ts"))
        );
        assert_eq!(mp.map(|p| m.to_client(&p)), c);
        assert!(
            m.to_mirror(&ClientPath::parse("/apple/x").unwrap_or_else(|e| panic!("{e}")))
                .is_err()
        );
    }

    #[test]
    fn translates_uris() {
        let m = map();
        assert_eq!(
            m.uri_to_mirror("file:///app/src/a%20b.ts").ok().as_deref(),
            Some("file:///data/mirrors/p/src/a%20b.ts")
        );
        assert_eq!(
            m.uri_to_client("file:///data/mirrors/p/src/x.py")
                .ok()
                .as_deref(),
            Some("file:///app/src/x.py")
        );
        assert!(m.uri_to_client("file:///etc/passwd").is_err());
        assert!(m.uri_to_mirror("file:///app/%2e%2e/etc/passwd").is_err());
    }

    #[test]
    fn a_child_is_checked_as_the_whole_path_would_be() {
        let limits = Limits {
            max_path_len: 12,
            ..Limits::default()
        };
        let dir = RelPath::parse("ab/cd").unwrap_or_else(|e| panic!("{e}"));
        for name in [
            "ok.rs",
            "x%2Ey",
            "x%25",
            "a\\b",
            "a\u{7}b",
            "..",
            ".",
            "",
            "a/b",
            "toolong.rs",
            "%C0",
        ] {
            let joined = format!("ab/cd/{name}");
            let whole = RelPath::parse_with(&joined, &limits)
                .ok()
                .filter(|p| p.components().count() == 3);
            assert_eq!(dir.child(name, &limits).ok(), whole, "{name:?}");
        }
        assert_eq!(
            RelPath::root().child("a", &limits).ok(),
            RelPath::parse("a").ok()
        );
        assert_eq!(
            dir.join_name("e").as_str(),
            "ab/cd/e",
            "join_name without a check"
        );
    }
}
