//! `workspace/applyEdit`: a server asking the client to change files (after a code action or
//! command). The pool does not write files itself; it routes the request to its owner.

use std::sync::Arc;

use futures::future::BoxFuture;
use lsp_types::{ApplyWorkspaceEditParams, ApplyWorkspaceEditResponse};
use parking_lot::RwLock;

/// Which server asked, so the owner can translate paths and pick the right client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyEditContext {
    /// Project id.
    pub project: String,
    /// Server id.
    pub server_id: String,
}

/// Applies the edits a language server asks for. Install one with
/// [`LspPool::set_apply_edit_handler`](crate::LspPool::set_apply_edit_handler); without one,
/// the pool answers `applied: false` with a reason.
pub trait ApplyEditHandler: Send + Sync + 'static {
    /// Apply `params.edit` (all or nothing) and say whether it was applied.
    fn apply_edit(
        &self,
        ctx: ApplyEditContext,
        params: ApplyWorkspaceEditParams,
    ) -> BoxFuture<'static, ApplyWorkspaceEditResponse>;
}

/// The pool's current handler, shared with every connection so a handler installed later is
/// used by servers that are already running.
#[derive(Default)]
pub(crate) struct EditHandlerSlot {
    handler: RwLock<Option<Arc<dyn ApplyEditHandler>>>,
}

impl EditHandlerSlot {
    pub(crate) fn get(&self) -> Option<Arc<dyn ApplyEditHandler>> {
        self.handler.read().clone()
    }

    pub(crate) fn set(&self, handler: Option<Arc<dyn ApplyEditHandler>>) {
        *self.handler.write() = handler;
    }
}
