//! A batch of edits (`batch_execute`): every plan committed in its scope is recorded, so an
//! atomic batch can put each file back as it was; a dry-run batch only describes its commits.
//! The scope is passed explicitly to each [`crate::EditPlan`] of the batch, never found
//! implicitly, so a commit outside a batch can never silently become a dry run.

use std::collections::BTreeMap;
use std::sync::Arc;

use codeflow_file_stream::{ContentHash, Expect, MirrorPath, RelPath, WriteBack};
use codeflow_lsp_pool::lsp_types::FileChangeType;
use parking_lot::Mutex;

use crate::caller::Caller;
use crate::edits::{PlannedFile, write_error};
use crate::error::WorkspaceError;
use crate::lsp_sync::tell_language_servers;
use crate::workspace::ProjectWorkspace;

/// What a batch wrote to one file.
#[derive(Debug)]
struct Touched {
    mirror: MirrorPath,
    /// The content before the batch's first write (`None`: the file did not exist).
    original: Option<Vec<u8>>,
    /// The hash the batch left (`None`: the batch deleted it).
    now: Option<ContentHash>,
}

/// A file as a dry-run batch's plans would leave it (for `preview_edit`).
#[derive(Debug, Clone)]
pub struct Planned {
    /// The file in the mirror.
    pub mirror: MirrorPath,
    /// Its content before the batch (`None`: it did not exist).
    pub original: Option<Vec<u8>>,
    /// Its content after the batch's plans (`None`: deleted).
    pub planned: Option<Vec<u8>>,
}

/// The scope `batch_execute` runs its operations in (see the module docs).
#[derive(Debug, Default)]
pub struct BatchScope {
    dry_run: bool,
    touched: Mutex<BTreeMap<RelPath, Touched>>,
    /// In a dry run: what each described commit would leave, by file, in commit order.
    planned: Mutex<BTreeMap<RelPath, Planned>>,
}

impl BatchScope {
    /// A batch; `dry_run`: its operations only say what they would do.
    pub fn new(dry_run: bool) -> Arc<Self> {
        Arc::new(Self {
            dry_run,
            touched: Mutex::new(BTreeMap::new()),
            planned: Mutex::new(BTreeMap::new()),
        })
    }

    /// Records what a described (dry-run) commit would leave.
    pub(crate) fn record_planned(&self, files: &BTreeMap<RelPath, PlannedFile>) {
        let mut planned = self.planned.lock();
        for (rel, file) in files {
            let original = file.original.as_ref().map(|(b, _)| &b[..]);
            if original == file.current.as_deref() {
                continue;
            }
            planned
                .entry(rel.clone())
                .and_modify(|p| p.planned = file.current.clone())
                .or_insert_with(|| Planned {
                    mirror: file.mirror.clone(),
                    original: original.map(<[u8]>::to_vec),
                    planned: file.current.clone(),
                });
        }
    }

    /// In a dry run: every file the described commits would change, as they would leave it.
    pub fn planned(&self) -> Vec<Planned> {
        self.planned.lock().values().cloned().collect()
    }

    /// Whether the batch only describes its commits.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    pub(crate) fn record(&self, files: &BTreeMap<RelPath, PlannedFile>) {
        let mut touched = self.touched.lock();
        for (rel, file) in files {
            let original = file.original.as_ref().map(|(b, _)| &b[..]);
            if original == file.current.as_deref() {
                continue;
            }
            let now = file.current.as_deref().map(ContentHash::of);
            touched
                .entry(rel.clone())
                .and_modify(|t| t.now = now.clone())
                .or_insert_with(|| Touched {
                    mirror: file.mirror.clone(),
                    original: original.map(<[u8]>::to_vec),
                    now,
                });
        }
    }

    /// The client paths the batch changed.
    pub fn changed(&self, caller: &Caller, workspace: &ProjectWorkspace) -> Vec<String> {
        self.touched
            .lock()
            .values()
            .filter(|t| t.original.as_deref().map(ContentHash::of) != t.now)
            .map(|t| caller.client_path(workspace, &t.mirror))
            .collect()
    }

    /// Puts every file the batch changed back as it was, all or nothing; each restore expects
    /// the hash the batch wrote, so a change made meanwhile by someone else is never undone.
    /// Returns the client paths restored.
    pub async fn roll_back(
        &self,
        caller: &Caller,
        workspace: &ProjectWorkspace,
    ) -> Result<Vec<String>, WorkspaceError> {
        let touched: Vec<(RelPath, Touched)> = std::mem::take(&mut *self.touched.lock())
            .into_iter()
            .collect();
        let mirror = caller.mirror(workspace)?;
        let paths = mirror.paths();
        let mut plan = WriteBack::new();
        let mut restored = Vec::new();
        let mut changes = Vec::new();
        for (_, t) in &touched {
            let client = paths.to_client(&t.mirror);
            let kind = match (&t.original, &t.now) {
                (Some(orig), Some(now)) if ContentHash::of(orig) == *now => continue,
                (Some(orig), Some(now)) => {
                    plan = plan.write(client, orig.clone(), Expect::Hash(now.clone()));
                    FileChangeType::CHANGED
                }
                (Some(orig), None) => {
                    plan = plan.write(client, orig.clone(), Expect::Absent);
                    FileChangeType::CREATED
                }
                (None, Some(now)) => {
                    plan = plan.delete(client, now.clone());
                    FileChangeType::DELETED
                }
                (None, None) => continue,
            };
            restored.push(caller.client_path(workspace, &t.mirror));
            changes.push((t.mirror.clone(), kind));
        }
        if plan.is_empty() {
            return Ok(restored);
        }
        plan.apply_and_mirror(&caller.client(), &mirror)
            .await
            .map_err(write_error)?;
        tell_language_servers(workspace, &changes).await;
        Ok(restored)
    }
}
