//! `workspace/applyEdit` from a language server (after a command or code action): applied to
//! the project's files through one of the project's sessions, all or nothing, exactly like a
//! tool's edit. The pool routes the request here; it never writes files itself.
//! `workspace/applyEdit` is answered `applied: false` with the reason when no live caller of the
//! project can write (none attached with the `file:write` right and a relay serving files).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use codeflow_lsp_pool::lsp_types::{ApplyWorkspaceEditParams, ApplyWorkspaceEditResponse};
use codeflow_lsp_pool::{ApplyEditContext, ApplyEditHandler};
use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::caller::Caller;
use crate::edits::EditPlan;

/// The live callers, by id, that can carry an edit back to a client. Held weakly: the router
/// must not keep ended sessions alive.
#[derive(Default)]
pub struct EditRouter {
    callers: Mutex<HashMap<String, Weak<Caller>>>,
}

impl std::fmt::Debug for EditRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EditRouter")
            .field("callers", &self.callers.lock().len())
            .finish()
    }
}

impl EditRouter {
    /// A router with no sessions yet (they register as they start).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Makes `caller` a candidate for carrying language servers' edits of its project.
    pub fn register(&self, caller: &Arc<Caller>) {
        let mut callers = self.callers.lock();
        callers.retain(|_, c| c.strong_count() > 0);
        callers.insert(caller.id.clone(), Arc::downgrade(caller));
    }

    /// A caller of `project` that can write: live, serving files, allowed.
    fn caller_for(&self, project: &str) -> Option<Arc<Caller>> {
        let callers = self.callers.lock();
        let mut candidates: Vec<Arc<Caller>> = callers
            .values()
            .filter_map(Weak::upgrade)
            .filter(|c| c.project.as_str() == project && c.file_stream && c.is_live())
            .filter(|c| c.has(codeflow_session::Right::FileWrite))
            .collect();
        // An attached session can answer now; others would wait for a resume.
        candidates.sort_by_key(|c| !c.is_attached());
        candidates.into_iter().next()
    }
}

fn refused(reason: String) -> ApplyWorkspaceEditResponse {
    ApplyWorkspaceEditResponse {
        applied: false,
        failure_reason: Some(reason),
        failed_change: None,
    }
}

impl ApplyEditHandler for EditRouter {
    fn apply_edit(
        &self,
        ctx: ApplyEditContext,
        params: ApplyWorkspaceEditParams,
    ) -> BoxFuture<'static, ApplyWorkspaceEditResponse> {
        let caller = self.caller_for(&ctx.project);
        Box::pin(async move {
            let Some(caller) = caller else {
                return refused(format!(
                    "no connected client of project `{}` can write files",
                    ctx.project
                ));
            };
            let workspace = match caller.workspace().await {
                Ok(w) => w,
                Err(e) => return refused(e.to_text()),
            };
            let mut plan = match EditPlan::new(&caller, workspace, None) {
                Ok(plan) => plan,
                Err(e) => return refused(e.to_text()),
            };
            if let Err(e) = plan.workspace_edit(params.edit).await {
                return refused(e.to_text());
            }
            match plan.commit_without_diagnostics(false).await {
                Ok(_) => ApplyWorkspaceEditResponse {
                    applied: true,
                    failure_reason: None,
                    failed_change: None,
                },
                Err(e) => refused(e.to_text()),
            }
        })
    }
}
