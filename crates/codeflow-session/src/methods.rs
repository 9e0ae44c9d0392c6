//! Method families served beside a session's service: the server registers handlers for
//! families such as `projects/*` and `claude/*`, and the socket's router hands their requests
//! to them instead of the MCP service. This keeps the session layer free of what serves them
//! (the Claude executor lives in a crate the session layer does not know).

use std::sync::Arc;

use codeflow_transport::ErrorObject;
use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::channels::Channel;
use crate::session::Session;
use codeflow_types::ProjectId;

/// What a handler answers.
#[derive(Debug)]
pub enum MethodReply {
    /// Answer with this result.
    Result(Value),
    /// Subscribe the session to a channel (with `since` for recovery, as
    /// `channels/subscribe`), then answer with the subscription's result (`channel`, `epoch`,
    /// `offset`, `recovered`, `publications`) plus `extra`. Events published after the answer
    /// follow it in order. `project`: another project's channel, which the family has checked
    /// the session may see; `None` is the session's own project.
    Subscribe {
        /// Another project whose channel it is (`None`: the session's own).
        project: Option<ProjectId>,
        /// The channel.
        channel: Channel,
        /// `(epoch, offset)` to recover from, as `channels/subscribe`'s `since`.
        since: Option<(String, u64)>,
        /// Fields added to the answer.
        extra: Map<String, Value>,
    },
    /// End the session's subscription to `channel` (of `project`, `None` the session's own),
    /// then answer with `extra` plus `unsubscribed` (whether there was one).
    Unsubscribe {
        /// Another project whose channel it is (`None`: the session's own).
        project: Option<ProjectId>,
        /// The channel.
        channel: Channel,
        /// Fields added to the answer.
        extra: Map<String, Value>,
    },
}

/// A family of methods served by the server beside the MCP service.
///
/// A request is admitted like any other (a re-send after a reconnect is answered from the
/// session's memory, not run twice), then the future runs on its own task. It must finish on
/// its own (not wait for the client): it is not cancelled when the session ends, so that work
/// it started is never left half done.
pub trait MethodFamily: Send + Sync + 'static {
    /// Whether this family serves `method`.
    fn serves(&self, method: &str) -> bool;

    /// Handles one request.
    fn handle(
        &self,
        session: Arc<Session>,
        method: String,
        params: Option<Value>,
    ) -> BoxFuture<'static, Result<MethodReply, ErrorObject>>;
}
