//! The files git tracks under a root, read from git's index with `git ls-files -z` (one call,
//! run in the root, no shell). The [`FileFilter`](crate::FileFilter) streams them even when a
//! `.gitignore` rule matches them, as git itself does: `.gitignore` only concerns untracked
//! files. A root that is not in a git work tree, or a machine without `git`, has no tracked set
//! (and `.gitignore` alone decides, as before).

use std::collections::HashSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Longest one git call may take; a git that hangs (a stuck network mount) is killed and the
/// tracked set is left as it was.
const GIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The tracked files under a root, as paths relative to it, and every directory that holds
/// one at any depth (the walk descends into an ignored directory only for those).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackedFiles {
    files: HashSet<String>,
    dirs: HashSet<String>,
}

impl TrackedFiles {
    /// The set of `paths` (relative to the root, `/`-separated).
    pub fn from_paths<I, S>(paths: I) -> TrackedFiles
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut tracked = TrackedFiles::default();
        for path in paths {
            let path: String = path.into();
            if path.is_empty() || path.starts_with('/') || path.split('/').any(|c| c == "..") {
                continue;
            }
            let mut end = path.len();
            while let Some(slash) = path[..end].rfind('/') {
                end = slash;
                // Ancestors are shared: once one is in, so are all above it.
                if !tracked.dirs.insert(path[..end].to_owned()) {
                    break;
                }
            }
            tracked.files.insert(path);
        }
        tracked
    }

    /// The tracked set of `root`'s work tree below `root`: `None` when `root` is not in a git
    /// work tree, `git` is missing, or it failed or took too long.
    pub fn read(root: &Path) -> Option<TrackedFiles> {
        let out = git(root, &["ls-files", "-z"])?;
        let paths = out
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .filter_map(|p| std::str::from_utf8(p).ok());
        Some(TrackedFiles::from_paths(paths))
    }

    /// The absolute path of the index file of `root`'s repository (whose changes, a `git add`,
    /// `rm` or `checkout`, change the tracked set); `None` as for [`TrackedFiles::read`].
    pub fn index_file(root: &Path) -> Option<PathBuf> {
        let out = git(root, &["rev-parse", "--git-path", "index"])?;
        let text = std::str::from_utf8(&out)
            .ok()?
            .trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            return None;
        }
        Some(root.join(text))
    }

    /// Whether git tracks the file at `rel`.
    pub fn has_file(&self, rel: &str) -> bool {
        self.files.contains(rel)
    }

    /// Whether the directory at `rel` holds a tracked file (at any depth).
    pub fn has_dir(&self, rel: &str) -> bool {
        self.dirs.contains(rel)
    }

    /// How many files are tracked.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is tracked.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Runs `git args` in `root` and returns its output when it succeeds within [`GIT_TIMEOUT`].
fn git(root: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(root)
        // Never take the optional index lock (an editor's or the agent's git is not disturbed).
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::Builder::new()
        .name("codeflow-git-read".into())
        .spawn(move || {
            let mut out = Vec::new();
            let ok = stdout.read_to_end(&mut out).is_ok();
            let _ = tx.send(ok.then_some(out));
        });
    if reader.is_err() {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    match rx.recv_timeout(GIT_TIMEOUT) {
        Ok(out) => {
            let status = child.wait().ok()?;
            if status.success() { out } else { None }
        }
        Err(_) => {
            tracing::warn!(root = %root.display(), "git {args:?} took too long; killed");
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ancestor_of_a_tracked_file_holds_it() {
        let t = TrackedFiles::from_paths(["lib/sub/a.c", "lib/b.h", "top.py"]);
        assert!(t.has_file("lib/sub/a.c"));
        assert!(t.has_file("top.py"));
        assert!(t.has_dir("lib"));
        assert!(t.has_dir("lib/sub"));
        assert!(!t.has_dir("lib/sub/a.c"));
        assert!(!t.has_file("lib"));
        assert!(!t.has_dir("li"));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn paths_that_leave_the_root_are_dropped() {
        let t = TrackedFiles::from_paths(["../x.c", "/etc/passwd", "", "a/../../b"]);
        assert!(t.is_empty());
    }
}
