//! The project's git state on the `git` channel: branch, HEAD and dirty files, published when
//! they change.
//!
//! A shared project (its directory is the client's tree) is read here: `git status
//! --porcelain=v2 --branch` (a child with the clean environment every child gets), every
//! [`POLL_EVERY`], by one task per workspace that ends with the workspace. A streamed mirror
//! never holds `.git` (the relay does not send it): its relay reads the same output in its own
//! tree and sends it as `server/gitState` when it changes (`sync.rs` parses it with
//! [`GitState::parse`] and publishes it on the same channel).

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use codeflow_session::{Channel, SessionRegistry};
use serde_json::{Value, json};

use crate::workspace::ProjectWorkspace;

/// How often a git project's state is read.
pub const POLL_EVERY: Duration = Duration::from_secs(5);
/// Longest one `git status` may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many dirty files are listed in an event (the count is always whole).
const MAX_LISTED: usize = 200;

/// A repository's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GitState {
    /// The branch checked out (`None`: detached HEAD).
    pub branch: Option<String>,
    /// HEAD's commit (`None`: no commit yet).
    pub head: Option<String>,
    /// Changed, staged, untracked and conflicted files, relative to the root, sorted.
    pub dirty: Vec<String>,
}

impl GitState {
    /// The `git` channel's event: `{branch, head, dirty (at most 200), dirty_count}`.
    pub fn to_json(&self) -> Value {
        json!({
            "branch": self.branch,
            "head": self.head,
            "dirty": self.dirty.iter().take(MAX_LISTED).collect::<Vec<_>>(),
            "dirty_count": self.dirty.len(),
        })
    }

    /// Reads `git status --porcelain=v2 --branch` output.
    pub fn parse(output: &str) -> Self {
        let mut state = GitState::default();
        for line in output.lines() {
            if let Some(oid) = line.strip_prefix("# branch.oid ") {
                state.head = (oid != "(initial)").then(|| oid.to_owned());
            } else if let Some(head) = line.strip_prefix("# branch.head ") {
                state.branch = (head != "(detached)").then(|| head.to_owned());
            } else if line.starts_with('#') {
                continue;
            } else {
                let path = match line.chars().next() {
                    Some('1') => line.splitn(9, ' ').nth(8),
                    Some('2') => line
                        .splitn(10, ' ')
                        .nth(9)
                        .and_then(|p| p.split('\t').next()),
                    Some('u') => line.splitn(11, ' ').nth(10),
                    Some('?') => line.strip_prefix("? "),
                    _ => None,
                };
                if let Some(path) = path {
                    state.dirty.push(unquote(path));
                }
            }
        }
        state.dirty.sort();
        state.dirty.dedup();
        state
    }

    /// The state of the repository at `root`; `None` when it is not one (or git fails).
    pub async fn read(root: &Path) -> Option<Self> {
        if !root.join(".git").exists() {
            return None;
        }
        let mut command = tokio::process::Command::new("git");
        command
            .arg("-C")
            .arg(root)
            .args([
                "status",
                "--porcelain=v2",
                "--branch",
                "--untracked-files=all",
            ])
            .env_clear()
            .envs(codeflow_types::child_env::inherited())
            // Reading must not take git's index lock (a user's own git would then fail).
            .env("GIT_OPTIONAL_LOCKS", "0")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(GIT_TIMEOUT, command.output())
            .await
            .ok()?
            .ok()?;
        output
            .status
            .success()
            .then(|| Self::parse(&String::from_utf8_lossy(&output.stdout)))
    }
}

/// Git quotes paths with unusual characters (`"a b\"c"`): the path itself.
fn unquote(path: &str) -> String {
    let Some(inner) = path.strip_prefix('"').and_then(|p| p.strip_suffix('"')) else {
        return path.to_owned();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Aborts a task when dropped (the workspace owns its git poller this way).
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the poller of `workspace`'s git state, publishing on `registry`'s `git` channel of
/// the project whenever it changes (the first state included). The task holds the workspace
/// weakly and is aborted when the workspace goes.
pub(crate) fn watch(
    workspace: &Arc<ProjectWorkspace>,
    registry: Weak<SessionRegistry>,
) -> AbortOnDrop {
    let weak = Arc::downgrade(workspace);
    AbortOnDrop(tokio::spawn(async move {
        let mut last: Option<GitState> = None;
        loop {
            let Some(workspace) = weak.upgrade() else {
                return;
            };
            let root = workspace.root().to_path_buf();
            let project = workspace.project.clone();
            drop(workspace);
            if let Some(state) = GitState::read(&root).await
                && last.as_ref() != Some(&state)
            {
                if let Some(registry) = registry.upgrade() {
                    registry
                        .channels()
                        .publish(&project, Channel::Git, state.to_json());
                }
                last = Some(state);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_v2_is_read() {
        let out = "# branch.oid 1234abcd\n# branch.head main\n# branch.upstream origin/main\n\
1 .M N... 100644 100644 100644 aaa bbb src/a file.py\n\
2 R. N... 100644 100644 100644 aaa bbb R100 new.py\told.py\n\
u UU N... 100644 100644 100644 100644 a b c conflict.py\n\
? \"odd\\\"name.txt\"\n";
        let state = GitState::parse(out);
        assert_eq!(state.branch.as_deref(), Some("main"));
        assert_eq!(state.head.as_deref(), Some("1234abcd"));
        assert_eq!(
            state.dirty,
            vec!["conflict.py", "new.py", "odd\"name.txt", "src/a file.py"]
        );
        let detached = GitState::parse("# branch.oid (initial)\n# branch.head (detached)\n");
        assert_eq!((detached.branch, detached.head), (None, None));
    }

    #[tokio::test]
    async fn a_real_repository() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "-c",
                    "init.defaultBranch=trunk",
                ])
                .args(args)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        assert_eq!(GitState::read(dir.path()).await, None, "not a repository");
        git(&["init", "-q"]);
        std::fs::write(dir.path().join("a.txt"), "a\n").unwrap();
        git(&["add", "a.txt"]);
        git(&["commit", "-q", "-m", "one"]);
        let clean = GitState::read(dir.path()).await.unwrap();
        assert_eq!(clean.branch.as_deref(), Some("trunk"));
        assert_eq!(clean.head.as_ref().map(String::len), Some(40));
        assert!(clean.dirty.is_empty());
        std::fs::write(dir.path().join("a.txt"), "b\n").unwrap();
        std::fs::write(dir.path().join("new.txt"), "n\n").unwrap();
        let dirty = GitState::read(dir.path()).await.unwrap();
        assert_eq!(dirty.dirty, vec!["a.txt", "new.txt"]);
        assert_eq!(dirty.head, clean.head);
    }
}
