//! One session: a client's conversation with the server, which outlives any single socket.
//!
//! The MCP service serving a session talks to the session, never to a socket. A socket
//! *attaches* after the handshake and *detaches* when it drops; what the service sends while
//! no socket is attached waits in a bounded backlog and is delivered when one attaches again.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use codeflow_transport::{ErrorObject, Message, Outbound, PendingRequests, close, codes};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::auth::{Grant, Right};
use crate::project::{ClientRoot, ProjectId};
use crate::registry::SessionRegistry;

/// Messages kept for a detached session before it is given up. Past this the client could not
/// be given a faithful history, so the session is closed rather than silently dropping replies.
pub const BACKLOG_LIMIT: usize = 4096;

/// Prefix for ids the session substitutes for `null` ids (legacy clients send requests without
/// ids); the response gets its `null` back on the way out.
const NULL_ID_PREFIX: &str = "codeflow-null:";

/// A session's identity and its link to a client.
pub struct Session {
    pub id: String,
    pub project: ProjectId,
    pub root: ClientRoot,
    pub grant: Grant,
    /// The client serves `client/*` file requests.
    pub file_stream: bool,
    pub created: Instant,
    client_requests: PendingRequests,
    state: Mutex<State>,
    service: Mutex<Option<mpsc::Sender<Message>>>,
    closed: CancellationToken,
    registry: Weak<SessionRegistry>,
}

#[derive(Default)]
struct State {
    attached: Option<Outbound>,
    detached_since: Option<Instant>,
    backlog: VecDeque<String>,
    /// Id of the `initialize` request whose response still has to get `sessionId` added.
    init_id: Option<Value>,
    /// The `initialize` result, replayed to a client that resumes with `initialize`.
    init_result: Option<Value>,
    null_ids: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(
        id: String,
        project: ProjectId,
        root: ClientRoot,
        grant: Grant,
        file_stream: bool,
        registry: Weak<SessionRegistry>,
    ) -> Self {
        Self {
            id,
            project,
            root,
            grant,
            file_stream,
            created: Instant::now(),
            client_requests: PendingRequests::new("s"),
            state: Mutex::new(State::default()),
            service: Mutex::new(None),
            closed: CancellationToken::new(),
            registry,
        }
    }

    /// The registry this session belongs to (gone only during shutdown).
    pub fn registry(&self) -> Option<Arc<SessionRegistry>> {
        self.registry.upgrade()
    }

    /// Whether the token behind this session grants `right`.
    pub fn has(&self, right: Right) -> bool {
        self.grant.has(right)
    }

    /// Resolves when the session has ended.
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    pub(crate) fn set_service(&self, inbound: mpsc::Sender<Message>) {
        *self.service.lock() = Some(inbound);
    }

    pub(crate) fn expect_initialize_response(&self, id: Value) {
        self.state.lock().init_id = Some(id);
    }

    pub(crate) fn initialize_result(&self) -> Option<Value> {
        self.state.lock().init_result.clone()
    }

    /// Sends a message to the client: to the attached socket, or into the backlog while none is.
    pub fn send_to_client(&self, message: Message) {
        let message = self.restore_null_id(message);
        let mut state = self.state.lock();
        let message = match message {
            Message::Response { id, mut result } if state.init_id.as_ref() == Some(&id) => {
                state.init_id = None;
                if let Value::Object(map) = &mut result {
                    map.insert("sessionId".into(), Value::String(self.id.clone()));
                }
                state.init_result = Some(result.clone());
                Message::Response { id, result }
            }
            other => other,
        };
        if let Some(method) = message.method() {
            crate::metrics::message_out(method);
        }
        let text = message.to_text();
        if let Some(outbound) = &state.attached {
            match outbound.send_text(text.clone()) {
                Ok(()) => return,
                Err(e) => {
                    tracing::info!(session = %self.id, error = %e, "socket unusable; holding messages until the client resumes");
                    state.attached = None;
                    state.detached_since = Some(Instant::now());
                }
            }
        }
        if state.backlog.len() >= BACKLOG_LIMIT {
            drop(state);
            tracing::warn!(session = %self.id, "backlog full while detached; closing session");
            self.close();
            return;
        }
        state.backlog.push_back(text);
    }

    /// Hands a message from the client to the MCP service. Waits when the service is busy:
    /// that back-pressure reaches the socket, which stops reading.
    pub(crate) async fn forward_to_service(&self, message: Message) {
        let message = self.substitute_null_id(message);
        let sender = self.service.lock().clone();
        if let Some(sender) = sender {
            let _ = sender.send(message).await;
        }
    }

    /// Delivers a client's response to one of our `client/*` requests; hands back anything else.
    pub(crate) fn resolve_client_response(&self, message: Message) -> Option<Message> {
        self.client_requests.resolve(message)
    }

    /// Sends a request to the client (e.g. `client/readFile`) and waits for its answer.
    pub async fn request_client(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, ErrorObject> {
        if !self.file_stream {
            return Err(ErrorObject::new(
                codes::NOT_IMPLEMENTED,
                "this client does not serve files (it did not declare capabilities.experimental.codeflow.fileStream)",
            )
            .with_suggestion("connect through codeflow-client, which serves the project's files"));
        }
        let pending = self.client_requests.register(method, params);
        self.send_to_client(pending.message.clone());
        pending.response(timeout).await
    }

    /// Attaches a socket, replacing any other, and delivers the backlog to it.
    pub(crate) fn attach(&self, outbound: Outbound) {
        let mut state = self.state.lock();
        if let Some(old) = state.attached.take()
            && !old.same_connection(&outbound)
        {
            old.close(
                close::SESSION_REPLACED,
                "another connection resumed this session",
            );
        }
        while let Some(text) = state.backlog.pop_front() {
            if outbound.send_text(text.clone()).is_err() {
                state.backlog.push_front(text);
                return;
            }
        }
        state.attached = Some(outbound);
        state.detached_since = None;
    }

    /// Detaches `outbound` if it is still the attached socket.
    pub(crate) fn detach(&self, outbound: &Outbound) {
        let mut state = self.state.lock();
        if state
            .attached
            .as_ref()
            .is_some_and(|a| a.same_connection(outbound))
        {
            state.attached = None;
            state.detached_since = Some(Instant::now());
        }
    }

    /// How long the session has had no socket, if it has none.
    pub fn detached_for(&self) -> Option<Duration> {
        self.state.lock().detached_since.map(|t| t.elapsed())
    }

    pub fn is_attached(&self) -> bool {
        self.state.lock().attached.is_some()
    }

    /// Ends the session: stops its MCP service, fails its pending client requests, closes its
    /// socket if one is attached.
    pub fn close(&self) {
        self.close_with(close::SESSION_CLOSED, "session closed");
    }

    /// Ends the session, closing an attached socket with `code`.
    pub fn close_with(&self, code: u16, reason: &str) {
        if self.closed.is_cancelled() {
            return;
        }
        self.closed.cancel();
        self.service.lock().take();
        self.client_requests.fail_all(&ErrorObject::new(
            codes::UNREACHABLE,
            "the session ended before the client answered",
        ));
        if let Some(outbound) = self.state.lock().attached.take() {
            outbound.close(code, reason);
        }
    }

    fn substitute_null_id(&self, message: Message) -> Message {
        match message {
            Message::Request {
                id: Value::Null,
                method,
                params,
            } => {
                let mut state = self.state.lock();
                state.null_ids += 1;
                let id = Value::String(format!("{NULL_ID_PREFIX}{}", state.null_ids));
                Message::Request { id, method, params }
            }
            other => other,
        }
    }

    fn restore_null_id(&self, message: Message) -> Message {
        let is_substitute = |id: &Value| id.as_str().is_some_and(|s| s.starts_with(NULL_ID_PREFIX));
        match message {
            Message::Response { id, result } if is_substitute(&id) => Message::Response {
                id: Value::Null,
                result,
            },
            Message::Error { id, error } if is_substitute(&id) => Message::Error {
                id: Value::Null,
                error,
            },
            other => other,
        }
    }
}
