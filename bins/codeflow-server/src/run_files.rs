//! Streamed projects' files for the Claude executor ([`StreamedFiles`]): a run's working copy
//! is copied out of the project's mirror, and its changes go back to the client through the
//! file-stream write-back (`client/writeFile` / `deleteFile` with the hash each change was
//! based on, all or nothing), then into the mirror and the language servers.
//!
//! Which relay receives the write-back: the session that started the run, if it still lives
//! and serves files; otherwise a live session of the project that serves files, one with a
//! socket attached first. None: nothing is written (the run's changes are kept).

use std::path::Path;
use std::sync::{Arc, Weak};

use codeflow_claude_executor::streamed::BoxFuture;
use codeflow_claude_executor::{FileChange, StreamedFiles, WriteBackOutcome};
use codeflow_file_stream::{ClientPath, ContentHash, Expect, FileError, RelPath, WriteBack};
use codeflow_lsp_pool::lsp_types::FileChangeType;
use codeflow_session::{ProjectId, Session, SessionRegistry};
use codeflow_workspace::{Caller, Workspaces, tell_language_servers};
use parking_lot::Mutex;

/// [`StreamedFiles`] over the server's sessions and mirrors.
pub struct MirrorFiles {
    registry: Mutex<Weak<SessionRegistry>>,
    workspaces: Arc<Workspaces>,
}

impl MirrorFiles {
    pub fn new(workspaces: Arc<Workspaces>) -> Arc<Self> {
        Arc::new(Self {
            registry: Mutex::new(Weak::new()),
            workspaces,
        })
    }

    /// Connects to the registry (built after the executor).
    pub fn attach(&self, registry: &Arc<SessionRegistry>) {
        *self.registry.lock() = Arc::downgrade(registry);
    }

    /// Live sessions of `project` that serve files, in the order they are asked: `preferred`
    /// first, then attached ones, then the others.
    fn sessions(&self, project: &str, preferred: &str) -> Vec<Arc<Session>> {
        let Some(registry) = self.registry.lock().upgrade() else {
            return Vec::new();
        };
        let Ok(project) = ProjectId::parse(project) else {
            return Vec::new();
        };
        let mut sessions: Vec<Arc<Session>> = registry
            .sessions_of(&project)
            .into_iter()
            .filter(|s| s.file_stream && !s.is_closed())
            .collect();
        sessions.sort_by_key(|s| (s.id != preferred, !s.is_attached()));
        sessions
    }

    fn caller(&self, session: Arc<Session>) -> Arc<Caller> {
        Arc::new(Caller::for_session(session, self.workspaces.clone()))
    }
}

impl StreamedFiles for MirrorFiles {
    fn available(&self, project: &str) -> bool {
        !self.sessions(project, "").is_empty()
    }

    fn copy_out<'a>(
        &'a self,
        project: &'a str,
        preferred_session: &'a str,
        dest: &'a Path,
    ) -> BoxFuture<'a, Result<usize, String>> {
        Box::pin(async move {
            let session = self
                .sessions(project, preferred_session)
                .into_iter()
                .next()
                .ok_or_else(|| {
                    format!("no live session of project `{project}` serves its files")
                })?;
            let caller = self.caller(session);
            let workspace = caller.workspace().await.map_err(|e| e.to_string())?;
            let mirror = &workspace.mirror;
            let mut copied = 0;
            for rel in mirror.files().into_keys() {
                let bytes = mirror
                    .read(&mirror.paths().mirror_path(&rel))
                    .await
                    .map_err(|e| format!("cannot read {rel} from the mirror: {e}"))?;
                let target = dest.join(rel.as_str());
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
                }
                tokio::fs::write(&target, &bytes)
                    .await
                    .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
                copied += 1;
            }
            Ok(copied)
        })
    }

    fn write_back<'a>(
        &'a self,
        project: &'a str,
        preferred_session: &'a str,
        changes: &'a [FileChange],
    ) -> BoxFuture<'a, WriteBackOutcome> {
        Box::pin(async move {
            let Some(session) = self.sessions(project, preferred_session).into_iter().next() else {
                return WriteBackOutcome::NoSession;
            };
            match write(self.caller(session), changes).await {
                Ok(outcome) => outcome,
                Err(e) => WriteBackOutcome::Failed(e),
            }
        })
    }
}

/// Writes `changes` through `caller`'s relay: every conflict is found first (each file's
/// current hash against the one its change was based on), then one all-or-nothing write-back.
async fn write(caller: Arc<Caller>, changes: &[FileChange]) -> Result<WriteBackOutcome, String> {
    let workspace = caller.workspace().await.map_err(|e| e.to_string())?;
    let mirror = caller.mirror(&workspace).map_err(|e| e.to_string())?;
    let paths = mirror.paths().clone();
    let client = caller.client();
    let mut planned = Vec::with_capacity(changes.len());
    let mut conflicts = Vec::new();
    for change in changes {
        let rel = RelPath::parse(&change.path)
            .map_err(|e| format!("the run changed `{}`: {e}", change.path))?;
        let path = paths.client_path(&rel);
        let expected = change.before.as_deref().map(ContentHash::of);
        let stats = codeflow_file_stream::client_files::file_stats(&client, &path)
            .await
            .map_err(|e| format!("cannot check {path} on the client: {e}"))?;
        let differs = match (&expected, &stats) {
            (None, None) => false,
            (Some(expected), Some(stats)) => {
                !stats.is_file || stats.hash.as_ref().is_some_and(|h| h != expected)
            }
            _ => true,
        };
        if differs {
            conflicts.push(change.path.clone());
        }
        planned.push((rel, path, expected));
    }
    if !conflicts.is_empty() {
        return Ok(WriteBackOutcome::Conflicts(conflicts));
    }
    let mut plan = WriteBack::new();
    let mut told = Vec::with_capacity(changes.len());
    for (change, (rel, path, expected)) in changes.iter().zip(planned) {
        let kind = match (expected, &change.after) {
            (Some(hash), Some(after)) => {
                plan = plan.write(path, after.clone(), Expect::Hash(hash));
                FileChangeType::CHANGED
            }
            (None, Some(after)) => {
                plan = plan.write(path, after.clone(), Expect::Absent);
                FileChangeType::CREATED
            }
            (Some(hash), None) => {
                plan = plan.delete(path, hash);
                FileChangeType::DELETED
            }
            (None, None) => continue,
        };
        told.push((paths.mirror_path(&rel), kind));
    }
    match plan.apply_and_mirror(&client, &mirror).await {
        Ok(_) => {
            tell_language_servers(&workspace, &told).await;
            Ok(WriteBackOutcome::Applied {
                session: caller.id.clone(),
            })
        }
        // Changed between the check and the write: still nothing written.
        Err(FileError::Conflict { path, .. }) => {
            let rel = ClientPath::parse(&path)
                .and_then(|p| paths.client_rel(&p))
                .map(|r| r.as_str().to_owned())
                .unwrap_or(path);
            Ok(WriteBackOutcome::Conflicts(vec![rel]))
        }
        Err(e) => Err(format!("writing to the client failed: {e}")),
    }
}
