//! Diagnostics as they arrive: an owner of the pool can listen to every server's
//! `textDocument/publishDiagnostics` (CodeFlow publishes them on a project's `diagnostics`
//! channel). The pool keeps its own copy for `diagnostics()` either way.

use std::sync::Arc;

use lsp_types::PublishDiagnosticsParams;
use parking_lot::RwLock;

/// Receives every `publishDiagnostics` of every server. Called on the server's connection
/// task: it must return quickly and never block (queue work elsewhere if needed).
pub trait DiagnosticsListener: Send + Sync + 'static {
    /// One `publishDiagnostics` of server `server_id` (an id of the server table) of
    /// `project`, with the server's own URIs (paths in the project's directory).
    fn on_diagnostics(&self, project: &str, server_id: &str, params: &PublishDiagnosticsParams);
}

/// The pool's current listener, shared with every connection so one installed later reaches
/// servers already running.
#[derive(Default)]
pub(crate) struct ListenerSlot {
    listener: RwLock<Option<Arc<dyn DiagnosticsListener>>>,
}

impl ListenerSlot {
    pub(crate) fn get(&self) -> Option<Arc<dyn DiagnosticsListener>> {
        self.listener.read().clone()
    }

    pub(crate) fn set(&self, listener: Option<Arc<dyn DiagnosticsListener>>) {
        *self.listener.write() = listener;
    }
}
