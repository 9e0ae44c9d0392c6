//! The seam between sessions and whatever serves them (the MCP tool server in CodeFlow).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use codeflow_transport::Message;
use serde_json::Value;

use crate::auth::Right;
use crate::session::Session;

/// Starts the service for a new session.
///
/// The session layer handles the handshake, resume, authorization and the routing of client
/// responses, so the service never sees a socket come or go: it gets the client's other
/// messages through [`SessionHandler::deliver`] and answers through
/// [`Session::send_to_client`].
pub trait SessionService: Send + Sync + 'static {
    /// Makes the handler of a new session.
    fn start(&self, session: Arc<Session>) -> Arc<dyn SessionHandler>;

    /// The rights a `tools/call` of `tool` with these arguments needs; the session checks
    /// them before the call reaches the service (`authorize.rs`), so the session never names a
    /// tool. An unknown tool needs nothing (the service answers "unknown tool"). The default
    /// fails closed: every right.
    fn tool_rights(&self, tool: &str, arguments: Option<&Value>) -> Vec<Right> {
        let _ = (tool, arguments);
        Right::ALL.to_vec()
    }
}

/// What [`SessionHandler::deliver`] returns: done when the message has been taken in.
pub type Delivery<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Serves one session's client messages.
///
/// `deliver` is called on the socket's routing task, once per message, in the order the
/// client sent them, and the next message waits until its future is done. So: answer a quick
/// request right there (no task hop: `ping` costs one wake of the routing task), hand slow
/// work to a task of your own, and wait inside `deliver` only to apply back-pressure (the
/// socket stops reading meanwhile). Work that must see every earlier message (a tool call
/// after a file change) can rely on this order.
///
/// The handler is dropped when the session ends; tasks it started should watch
/// [`Session::closed`].
pub trait SessionHandler: Send + Sync + 'static {
    /// Takes one client message (see the trait's documentation for the rules).
    fn deliver(&self, message: Message) -> Delivery<'_>;
}
