//! Whose trees a mirror holds: the sessions that synced a project's mirror and still live.
//!
//! A project id is shared by every container of a project, but their trees may differ
//! (branches, worktrees, another checkout). One mirror holds one tree, so a session whose sync
//! would remove files that another connected session synced is refused ([`TreeConflict`]):
//! nothing is changed, and the message says what to do (give the other tree its own project
//! id, or stop the other relay). Files a connected session has are never deleted by another
//! session's sync; a session whose relay is away does not hold its tree, and its re-sync on
//! resume is checked like any other.

use std::sync::Weak;

use codeflow_session::Session;

/// How to tell whether a holder still holds its tree.
enum Liveness {
    /// A session: while its relay is connected. A detached session does not hold its tree —
    /// a relay restarted on the same tree (with a file deleted while it was away) must be able
    /// to sync — and when it resumes, its own re-sync is checked like any other.
    Session(Weak<Session>),
    /// An in-process caller: lives as long as its workspace (nothing tells its end).
    Local,
}

struct Holder {
    id: String,
    root: String,
    live: Liveness,
}

impl Holder {
    fn is_live(&self) -> bool {
        match &self.live {
            Liveness::Session(s) => s
                .upgrade()
                .is_some_and(|s| !s.is_closed() && s.is_attached()),
            Liveness::Local => true,
        }
    }
}

/// Another live session whose tree is in the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherTree {
    /// The other session's id.
    pub session: String,
    /// The other session's root, in its client's filesystem.
    pub root: String,
    /// Whether its relay is connected now (always, for sessions; kept for the wire format).
    pub attached: bool,
}

/// The sessions whose trees a mirror holds.
#[derive(Default)]
pub struct TreeHolders {
    holders: parking_lot::Mutex<Vec<Holder>>,
}

impl std::fmt::Debug for TreeHolders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeHolders")
            .field("holders", &self.holders.lock().len())
            .finish()
    }
}

impl TreeHolders {
    /// Records that session `id` (root `root`) synced its tree into the mirror.
    pub fn hold(&self, id: &str, root: &str, session: Option<&std::sync::Arc<Session>>) {
        let mut holders = self.holders.lock();
        holders.retain(|h| h.id != id && h.is_live());
        holders.push(Holder {
            id: id.to_owned(),
            root: root.to_owned(),
            live: match session {
                Some(s) => Liveness::Session(std::sync::Arc::downgrade(s)),
                None => Liveness::Local,
            },
        });
    }

    /// The live holders other than `id`.
    pub fn others(&self, id: &str) -> Vec<OtherTree> {
        let mut holders = self.holders.lock();
        holders.retain(Holder::is_live);
        holders
            .iter()
            .filter(|h| h.id != id)
            .map(|h| OtherTree {
                session: h.id.clone(),
                root: h.root.clone(),
                attached: match &h.live {
                    Liveness::Session(s) => s.upgrade().is_some_and(|s| s.is_attached()),
                    Liveness::Local => true,
                },
            })
            .collect()
    }
}

/// A sync refused because it would remove files another live session's tree has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeConflict {
    /// The project whose mirror it is.
    pub project: String,
    /// The refused session's root.
    pub root: String,
    /// The session whose tree would have lost files.
    pub other: OtherTree,
    /// Project-relative paths the sync would have removed (all of them).
    pub would_remove: Vec<String>,
}

impl TreeConflict {
    /// The refusal in words a person can act on.
    pub fn message(&self) -> String {
        let sample: Vec<&str> = self
            .would_remove
            .iter()
            .take(5)
            .map(String::as_str)
            .collect();
        let more = self.would_remove.len().saturating_sub(sample.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!(
            "project `{}` is already served from a different tree: syncing {} would remove {} file(s) that live session {} ({}, root {}) has ({}{more}); nothing was changed",
            self.project,
            self.root,
            self.would_remove.len(),
            self.other.session,
            if self.other.attached {
                "connected"
            } else {
                "disconnected"
            },
            self.other.root,
            sample.join(", "),
        )
    }

    /// What to do about it.
    pub fn suggestion(&self) -> String {
        format!(
            "give this tree its own project id (e.g. `--project {}-2`), or stop the other relay first",
            self.project
        )
    }

    /// The refusal as JSON (`data` of the `-32009` error and the check's dry run).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "project": self.project,
            "root": self.root,
            "otherSession": self.other.session,
            "otherRoot": self.other.root,
            "otherAttached": self.other.attached,
            "wouldRemove": self.would_remove,
            "suggestion": self.suggestion(),
        })
    }
}
