//! The executor's two seams to the server: where run events go, and who is asking.

use serde_json::Value;

use crate::error::ExecError;

/// Where run events go: the server publishes them on the project's `ai-response` channel.
/// Called in event order, from the run's task; must not block.
pub trait EventSink: Send + Sync + 'static {
    /// Publishes `event` on `project`'s `ai-response` channel.
    fn publish(&self, project: &str, event: Value);
}

/// The right a method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// `projects/*`.
    Manage,
    /// `claude/*`.
    Execute,
    /// Writing the client's files: a run on a streamed project writes its changes back.
    WriteFiles,
}

/// Who is calling: the server implements it over its session and token.
pub trait Caller: Send + Sync {
    /// The calling session's id (recorded in the message log).
    fn session_id(&self) -> &str;
    /// Whether the caller may do what `need` covers on `project`; the error says why not.
    fn check(&self, need: Need, project: &str) -> Result<(), ExecError>;
}
