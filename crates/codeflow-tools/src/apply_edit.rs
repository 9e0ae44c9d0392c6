//! `workspace/applyEdit` from a language server (after a command or code action): applied to
//! the project's files through one of the project's sessions, all or nothing, exactly like a
//! tool's edit. The pool routes the request here; it never writes files itself.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use codeflow_lsp_pool::lsp_types::{ApplyWorkspaceEditParams, ApplyWorkspaceEditResponse};
use codeflow_lsp_pool::{ApplyEditContext, ApplyEditHandler};
use codeflow_session::Session;
use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::context::{ServerServices, ToolContext};
use crate::edits::EditPlan;
use crate::sync::SessionFiles;

/// A session and its file side, held weakly: the router must not keep ended sessions alive.
type SessionRef = (Weak<Session>, Weak<SessionFiles>);

/// The live sessions, by id, that can carry an edit back to a client.
#[derive(Default)]
pub struct EditRouter {
    sessions: Mutex<HashMap<String, SessionRef>>,
    services: Mutex<Weak<ServerServices>>,
}

impl std::fmt::Debug for EditRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EditRouter")
            .field("sessions", &self.sessions.lock().len())
            .finish()
    }
}

impl EditRouter {
    pub fn new(services: &Arc<ServerServices>) -> Arc<Self> {
        let router = Arc::new(Self::default());
        *router.services.lock() = Arc::downgrade(services);
        router
    }

    pub(crate) fn register(&self, session: &Arc<Session>, files: &Arc<SessionFiles>) {
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, (s, _)| s.strong_count() > 0);
        sessions.insert(
            session.id.clone(),
            (Arc::downgrade(session), Arc::downgrade(files)),
        );
    }

    /// A context for a session of `project` that can write: attached, serving files, allowed.
    fn context_for(&self, project: &str) -> Option<ToolContext> {
        let services = self.services.lock().upgrade()?;
        let sessions = self.sessions.lock();
        let mut candidates: Vec<ToolContext> = sessions
            .values()
            .filter_map(|(s, f)| Some((s.upgrade()?, f.upgrade()?)))
            .filter(|(s, _)| s.project.as_str() == project && s.file_stream && !s.is_closed())
            .filter(|(s, _)| s.has(codeflow_session::Right::FileWrite))
            .map(|(session, files)| ToolContext {
                session,
                services: services.clone(),
                files,
            })
            .collect();
        // An attached session can answer now; others would wait for a resume.
        candidates.sort_by_key(|c| !c.session.is_attached());
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
        let context = self.context_for(&ctx.project);
        Box::pin(async move {
            let Some(context) = context else {
                return refused(format!(
                    "no connected client of project `{}` can write files",
                    ctx.project
                ));
            };
            let workspace = match context.workspace().await {
                Ok(w) => w,
                Err(e) => return refused(e.to_text()),
            };
            let mut plan = EditPlan::new(&context, workspace);
            if let Err(e) = plan.workspace_edit(params.edit).await {
                return refused(e.to_text());
            }
            match plan.commit(false).await {
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
