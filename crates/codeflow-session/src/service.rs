//! The seam between sessions and whatever serves them (the MCP tool server in CodeFlow).

use std::sync::Arc;

use codeflow_transport::Message;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::auth::Right;
use crate::session::Session;

/// Starts the service for a new session.
///
/// The service reads the client's messages from the returned sender's receiver and answers
/// through [`Session::send_to_client`]. It must end when the receiver closes (the session
/// ended). The session layer handles the handshake, resume and routing of client responses, so
/// the service never sees a socket come or go.
pub trait SessionService: Send + Sync + 'static {
    fn start(&self, session: Arc<Session>) -> ServiceInbox;

    /// The rights a `tools/call` of `tool` with these arguments needs; the session checks
    /// them before the call reaches the service (`authorize.rs`), so the session never names a
    /// tool. An unknown tool needs nothing (the service answers "unknown tool"). The default
    /// fails closed: every right.
    fn tool_rights(&self, tool: &str, arguments: Option<&Value>) -> Vec<Right> {
        let _ = (tool, arguments);
        Right::ALL.to_vec()
    }
}

/// Where a session hands its client's messages to the service. Messages are boxed: tokio
/// allocates a channel's first block (32 slots) when the channel is made, and every idle
/// session holds one such channel.
pub type ServiceInbox = mpsc::Sender<Box<Message>>;
