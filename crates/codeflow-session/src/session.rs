//! One session: a client's conversation with the server, which outlives any single socket.
//!
//! The MCP service serving a session talks to the session, never to a socket. A socket
//! *attaches* after the handshake and *detaches* when it drops; what the service sends while
//! no socket is attached waits in a bounded backlog and is delivered when one attaches again.
//! The session's own requests to the client (`client/*`) wait for their answers whatever
//! happens to sockets: each attach sends every one still unanswered again (the client answers
//! a re-sent id once), and each gives up after its own timeout.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use codeflow_transport::{ErrorObject, Message, Outbound, PendingRequests, close, codes};
use parking_lot::Mutex;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::auth::{Grant, Right};
use crate::channels::{Channel, ChannelHandle, Channels, Publication, Recovery};
use crate::memory::{self, Admission, RequestMemory};
use crate::registry::SessionRegistry;
use codeflow_types::{ClientRoot, ProjectId};

/// Messages kept for a detached session before it is given up. Past this the client could not
/// be given a faithful history, so the session is closed rather than silently dropping replies.
pub const BACKLOG_LIMIT: usize = 4096;

/// Prefix for ids the session substitutes for `null` ids (legacy clients send requests without
/// ids); the response gets its `null` back on the way out.
const NULL_ID_PREFIX: &str = "codeflow-null:";

/// A session's identity and its link to a client.
pub struct Session {
    /// The session id (`sessionId` on the wire; a resume names it).
    pub id: String,
    /// The project the session works on.
    pub project: ProjectId,
    /// The project's root in the client's filesystem.
    pub root: ClientRoot,
    /// Who the client is and what it may do; replaced by `auth/refresh`.
    grant: Mutex<Grant>,
    /// The client serves `client/*` file requests.
    pub file_stream: bool,
    /// When the session was created.
    pub created: Instant,
    client_requests: PendingRequests,
    state: Mutex<State>,
    service: Mutex<Option<Arc<dyn crate::service::SessionHandler>>>,
    closed: CancellationToken,
    /// The close code and reason the session ended with (for a socket that attaches or is
    /// attaching while it ends, so it gets the same close frame).
    closed_with: Mutex<Option<(u16, String)>>,
    registry: Weak<SessionRegistry>,
    /// How long answers are remembered for re-sent requests.
    answer_ttl: Duration,
    /// The session's request rate limiter, made on first use (it outlives reconnects).
    rate: std::sync::OnceLock<governor::DefaultDirectRateLimiter>,
    /// Values other layers attach to the session, one per type (see [`Session::extension`]).
    extensions: Mutex<Vec<Arc<dyn std::any::Any + Send + Sync>>>,
}

#[derive(Default)]
struct State {
    attached: Option<Outbound>,
    /// Counts attaches: the connection a request arrived on, for telling re-sends apart.
    connection: u64,
    detached_since: Option<Instant>,
    backlog: VecDeque<String>,
    /// Recent requests and their answers (exactly-once after a resume).
    memory: RequestMemory,
    /// Channels this session is subscribed to: its own project's, and other projects' that a
    /// method family subscribed it to (`projects/join` of a project the token grants).
    subscriptions: BTreeMap<(ProjectId, Channel), Subscription>,
    /// Id of the `initialize` request whose response still has to get `sessionId` added.
    init_id: Option<Value>,
    /// The `initialize` result, replayed to a client that resumes with `initialize`.
    init_result: Option<Value>,
    /// Fields added to the first `initialize` answer only (why a resume failed).
    init_extra: Option<serde_json::Map<String, Value>>,
    null_ids: u64,
}

/// A channel subscription: the channel and the last offset handed to a socket.
struct Subscription {
    handle: ChannelHandle,
    delivered: u64,
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
        resume_grace: Duration,
    ) -> Self {
        Self {
            id,
            project,
            root,
            grant: Mutex::new(grant),
            file_stream,
            created: Instant::now(),
            client_requests: PendingRequests::new("s"),
            state: Mutex::new(State::default()),
            service: Mutex::new(None),
            closed: CancellationToken::new(),
            closed_with: Mutex::new(None),
            registry,
            answer_ttl: resume_grace + memory::ANSWER_TTL,
            rate: std::sync::OnceLock::new(),
            extensions: Mutex::new(Vec::new()),
        }
    }

    /// The registry this session belongs to (gone only during shutdown).
    pub fn registry(&self) -> Option<Arc<SessionRegistry>> {
        self.registry.upgrade()
    }

    /// Takes one request from the session's rate budget, or says how long until one is free.
    pub(crate) fn check_rate(&self, limit: crate::socket::RateLimit) -> Result<(), Duration> {
        use governor::clock::Clock;
        let limiter = self.rate.get_or_init(|| crate::socket::limiter(limit));
        limiter.check().map_err(|not_until| {
            not_until.wait_time_from(governor::clock::DefaultClock::default().now())
        })
    }

    /// Whether the token behind this session grants `right`.
    pub fn has(&self, right: Right) -> bool {
        self.grant.lock().has(right)
    }

    /// The session's current grant.
    pub fn grant(&self) -> Grant {
        self.grant.lock().clone()
    }

    /// Replaces the grant (a refreshed token).
    /// Replaces the session's grant (`auth/refresh`, a resume). Subscriptions to other
    /// projects the new grant no longer covers end with it: a narrower token stops their
    /// events at once.
    pub(crate) fn set_grant(&self, grant: Grant) {
        let dropped: Vec<Subscription> = {
            let mut state = self.state.lock();
            let gone: Vec<(ProjectId, Channel)> = state
                .subscriptions
                .keys()
                .filter(|(project, _)| *project != self.project && !grant.allows_project(project))
                .cloned()
                .collect();
            gone.iter()
                .filter_map(|key| state.subscriptions.remove(key))
                .collect()
        };
        for sub in dropped {
            sub.handle.lock().remove_subscriber(&self.id);
        }
        *self.grant.lock() = grant;
    }

    /// Resolves when the session has ended.
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    pub(crate) fn set_service(&self, handler: Arc<dyn crate::service::SessionHandler>) {
        *self.service.lock() = Some(handler);
    }

    /// Marks `id` as the `initialize` whose answer gets `sessionId` (and `extra`) added.
    pub(crate) fn expect_initialize_response(
        &self,
        id: Value,
        extra: Option<serde_json::Map<String, Value>>,
    ) {
        let mut state = self.state.lock();
        state.init_id = Some(id);
        state.init_extra = extra;
    }

    pub(crate) fn initialize_result(&self) -> Option<Value> {
        self.state.lock().init_result.clone()
    }

    /// Sends a message to the client: to the attached socket, or into the backlog while none is.
    /// An answer to a client request is also remembered, so a re-send after a reconnect gets it
    /// again instead of running the request twice.
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
                if let (Value::Object(map), Some(extra)) = (&mut result, state.init_extra.take()) {
                    map.extend(extra);
                }
                Message::Response { id, result }
            }
            other => other,
        };
        if let Some(method) = message.method() {
            crate::metrics::message_out(method);
        }
        let text = message.to_text();
        if let (true, Some(id)) = (message.is_response(), message.id()) {
            state
                .memory
                .answered(&memory::key(id), &text, self.answer_ttl);
        }
        self.push_or_close(state, text);
    }

    /// Sends the answer to the client's request `id` whose `result` is JSON text already (a
    /// tool's answer serialised once, never built as a `Value`): the same as
    /// [`Self::send_to_client`] with [`Message::response`], without parsing the result back.
    pub fn send_result_text(&self, id: Value, result: &serde_json::value::RawValue) {
        let id = self.restore_null(id);
        let mut state = self.state.lock();
        if state.init_id.as_ref() == Some(&id) {
            // `initialize`'s answer is completed by `send_to_client`.
            drop(state);
            let result = serde_json::from_str(result.get()).unwrap_or(Value::Null);
            return self.send_to_client(Message::response(id, result));
        }
        let text = Message::response_text(&id, result);
        state
            .memory
            .answered(&memory::key(&id), &text, self.answer_ttl);
        self.push_or_close(state, text);
    }

    /// [`Self::push`], closing the session when its backlog is full.
    fn push_or_close(&self, mut state: parking_lot::MutexGuard<'_, State>, text: String) {
        if self.push(&mut state, text).is_err() {
            drop(state);
            tracing::warn!(session = %self.id, "backlog full while detached; closing session");
            self.close();
        }
    }

    /// Queues `text` on the attached socket, or in the backlog. Errs when the backlog is full
    /// (the caller closes the session, after releasing the lock).
    fn push(&self, state: &mut State, text: String) -> Result<(), BacklogFull> {
        let Some(text) = self.send_attached(state, text) else {
            return Ok(());
        };
        if state.backlog.len() >= BACKLOG_LIMIT {
            return Err(BacklogFull);
        }
        state.backlog.push_back(text);
        Ok(())
    }

    /// Queues `text` on the attached socket; hands it back when none is attached. When the
    /// socket turns out to be unusable the message is lost with it and the session detaches:
    /// a client request re-sent after the resume is answered from the request memory, and a
    /// request of ours is sent again by [`Self::attach`].
    fn send_attached(&self, state: &mut State, text: String) -> Option<String> {
        let outbound = state.attached.as_ref()?;
        if let Err(e) = outbound.send_text(text) {
            if e == codeflow_transport::SendError::SlowReader {
                crate::metrics::error_sent("slow_reader");
            }
            tracing::info!(session = %self.id, error = %e, "socket unusable; holding messages until the client resumes");
            state.attached = None;
            state.detached_since = Some(Instant::now());
        }
        None
    }

    /// Decides whether a client request that arrived on `connection` runs, or is a re-send
    /// answered from memory (see [`crate::memory`]). Answers a re-send itself.
    pub(crate) fn admit_request(
        &self,
        id: &Value,
        method: &str,
        params: Option<&Value>,
        connection: u64,
    ) -> bool {
        if id.is_null() {
            return true;
        }
        // Before the lock: a large request's params take milliseconds to hash.
        let fingerprint = memory::fingerprint(method, params);
        let mut state = self.state.lock();
        let admission = state.memory.admit(memory::key(id), fingerprint, connection);
        match admission {
            Admission::Run => true,
            Admission::AlreadyRunning => {
                crate::metrics::resend("running");
                tracing::debug!(session = %self.id, %id, "re-sent request still running; its answer will follow");
                false
            }
            Admission::Answered(text) => {
                crate::metrics::resend("answered");
                tracing::debug!(session = %self.id, %id, "re-sent request answered from memory");
                let _ = self.push(&mut state, text);
                false
            }
            Admission::TooMany => {
                crate::metrics::error_sent("too_many_running");
                let error = ErrorObject::new(
                    codes::LIMIT_EXCEEDED,
                    format!(
                        "this session already has {} requests running",
                        memory::MAX_RUNNING
                    ),
                )
                .with_suggestion("wait for answers before sending more requests");
                let _ = self.push(&mut state, Message::error(id.clone(), error).to_text());
                false
            }
        }
    }

    /// Client requests running in the service now.
    /// Attaches a value of a higher layer to this session (one per type; a second replaces the
    /// first), so code that holds only the session can find it — e.g. the workspace's file
    /// state of the session. Dropped when the session ends.
    pub fn set_extension<T: std::any::Any + Send + Sync>(&self, value: Arc<T>) {
        let mut extensions = self.extensions.lock();
        extensions.retain(|e| !e.is::<T>());
        extensions.push(value);
    }

    /// The value of type `T` attached with [`Session::set_extension`], if any.
    pub fn extension<T: std::any::Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.extensions
            .lock()
            .iter()
            .find_map(|e| e.clone().downcast::<T>().ok())
    }

    /// A request the service will not answer because the client cancelled it (MCP: a
    /// cancelled request gets no response): it stops counting as running.
    pub fn request_cancelled(&self, id: &Value) {
        self.state.lock().memory.abandon(&memory::key(id));
    }

    /// Forgets remembered answers past their time (see [`crate::memory`]).
    pub(crate) fn forget_old_answers(&self) {
        self.state.lock().memory.tidy(self.answer_ttl);
    }

    /// Requests of this session running now.
    pub fn requests_running(&self) -> usize {
        self.state.lock().memory.running()
    }

    /// Subscribes to one of this session's project's channels and answers request `id` with
    /// `{channel, epoch, offset, recovered, publications}`. Events published after the answer
    /// follow it, in order.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        channels: &Channels,
        channel: Channel,
        since: Option<(String, u64)>,
        id: Value,
    ) {
        self.subscribe_inner(
            channels,
            None,
            channel,
            since,
            id,
            serde_json::Map::new(),
            false,
        );
    }

    /// `Self::subscribe` for a request of a method family: the answer carries `extra` too and
    /// is remembered like any answer (a re-sent request gets it again). `project` names
    /// another project's channel (the family decided the session may see it); `None` is the
    /// session's own.
    pub fn subscribe_answering(
        self: &Arc<Self>,
        channels: &Channels,
        project: Option<&ProjectId>,
        channel: Channel,
        since: Option<(String, u64)>,
        id: Value,
        extra: serde_json::Map<String, Value>,
    ) {
        self.subscribe_inner(channels, project, channel, since, id, extra, true);
    }

    #[allow(clippy::too_many_arguments)]
    fn subscribe_inner(
        self: &Arc<Self>,
        channels: &Channels,
        project: Option<&ProjectId>,
        channel: Channel,
        since: Option<(String, u64)>,
        id: Value,
        extra: serde_json::Map<String, Value>,
        remember: bool,
    ) {
        if self.is_closed() {
            return;
        }
        let project = project.unwrap_or(&self.project).clone();
        let handle = channels.handle(&project, channel);
        let mut state = self.state.lock();
        let Recovery {
            position,
            recovered,
            publications,
        } = {
            let mut ch = handle.lock();
            ch.add_subscriber(self);
            ch.recover(since.as_ref().map(|(e, o)| (e.as_str(), *o)))
        };
        state.subscriptions.insert(
            (project, channel),
            Subscription {
                handle: handle.clone(),
                delivered: position.offset,
            },
        );
        let mut result = extra;
        result.insert("channel".into(), channel.as_str().into());
        result.insert("epoch".into(), (&*position.epoch).into());
        result.insert("offset".into(), position.offset.into());
        result.insert("recovered".into(), recovered.into());
        result.insert(
            "publications".into(),
            publications.iter().map(|p| p.to_value()).collect(),
        );
        let text = Message::response(id.clone(), Value::Object(result)).to_text();
        if remember {
            state
                .memory
                .answered(&memory::key(&id), &text, self.answer_ttl);
        }
        let _ = self.push(&mut state, text);
    }

    /// Ends a subscription; false when there was none.
    pub(crate) fn unsubscribe(&self, channel: Channel) -> bool {
        self.unsubscribe_in(None, channel)
    }

    /// Ends a subscription to `project`'s channel (`None`: the session's own); false when
    /// there was none.
    pub(crate) fn unsubscribe_in(&self, project: Option<&ProjectId>, channel: Channel) -> bool {
        let key = (project.unwrap_or(&self.project).clone(), channel);
        let removed = self.state.lock().subscriptions.remove(&key);
        match removed {
            Some(sub) => {
                sub.handle.lock().remove_subscriber(&self.id);
                true
            }
            None => false,
        }
    }

    /// The channels this session is subscribed to (its own project's and others').
    pub fn subscriptions(&self) -> Vec<Channel> {
        self.state
            .lock()
            .subscriptions
            .keys()
            .map(|(_, channel)| *channel)
            .collect()
    }

    /// Hands a publication to the attached socket, first filling any gap since the last one
    /// delivered (publishers can race; offsets keep the order). Without a socket it does
    /// nothing: the channel's history is replayed on resume.
    pub(crate) fn deliver_event(&self, handle: &ChannelHandle, publication: &Arc<Publication>) {
        let mut state = self.state.lock();
        let state = &mut *state;
        let Some(outbound) = state.attached.clone() else {
            return;
        };
        // A handful of subscriptions per session: find the one of this channel by identity.
        let Some(sub) = state
            .subscriptions
            .values_mut()
            .find(|sub| Arc::ptr_eq(&sub.handle, handle))
        else {
            return;
        };
        if publication.offset <= sub.delivered || !Arc::ptr_eq(&sub.handle, handle) {
            return;
        }
        // The usual case, the next one: straight to the socket's queue (no history read).
        let sent = if publication.offset == sub.delivered + 1 {
            outbound
                .send_text(publication.event_text.clone())
                .map(|()| sub.delivered = publication.offset)
        } else {
            catch_up(&outbound, sub, Some(publication.offset))
        };
        if let Err(e) = sent {
            if e == codeflow_transport::SendError::SlowReader {
                crate::metrics::error_sent("slow_reader");
            }
            tracing::info!(session = %self.id, error = %e, "socket unusable while delivering events; they wait for the resume");
            state.attached = None;
            state.detached_since = Some(Instant::now());
        }
    }

    /// Hands a message from the client to the MCP service, in arrival order. Waits when the
    /// service applies back-pressure: the socket stops reading meanwhile.
    pub(crate) async fn forward_to_service(&self, message: Message) {
        let message = self.substitute_null_id(message);
        let handler = self.service.lock().clone();
        if let Some(handler) = handler {
            handler.deliver(message).await;
        }
    }

    /// Delivers a client's response to one of our `client/*` requests; hands back anything else.
    pub(crate) fn resolve_client_response(&self, message: Message) -> Option<Message> {
        self.client_requests.resolve(message)
    }

    /// Sends a request to the client (e.g. `client/readFile`) and waits for its answer. A
    /// request the socket lost (or whose answer it lost) is sent again when the client resumes,
    /// so it completes within `timeout` of the first send as long as the client comes back.
    pub async fn request_client(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, ErrorObject> {
        if !self.file_stream {
            return Err(ErrorObject::new(
                codes::NOT_IMPLEMENTED,
                "writes need a relay (codeflow-client) to write back to: this session has none (its client did not declare capabilities.experimental.codeflow.fileStream; an MCP client on /mcp reads the server's copy of the project only)",
            )
            .with_suggestion("connect through codeflow-client (the relay), which serves the project's files and writes them"));
        }
        let writes = matches!(
            method,
            "client/writeFile" | "client/writeDelta" | "client/deleteFile" | "client/renameFile"
        );
        let path = writes.then(|| {
            let field = |k: &str| params.get(k).and_then(Value::as_str).unwrap_or_default();
            match method {
                "client/renameFile" => format!("{} -> {}", field("from"), field("to")),
                _ => field("path").to_owned(),
            }
        });
        let pending = {
            // Registered and sent under the state lock, so an `attach` racing with this sends
            // it once: either here or with the unanswered requests it re-sends.
            let mut state = self.state.lock();
            let pending = self.client_requests.register(method, params);
            crate::metrics::message_out(method);
            // Not into the backlog while detached: `attach` sends every unanswered request.
            let _ = self.send_attached(&mut state, pending.message.to_text());
            pending
        };
        let answer = pending.response(timeout).await;
        if let Some(path) = path {
            let outcome = match &answer {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("error {}", e.code),
            };
            crate::audit::client_write(self, method, &path, &outcome);
        }
        answer
    }

    /// Attaches a socket, replacing any other, and delivers to it the backlog, every request
    /// of ours still unanswered (again, in the order first sent), and then the channel
    /// publications missed while detached. Returns the connection number, which tells re-sent
    /// requests apart from new ones.
    pub(crate) fn attach(&self, outbound: Outbound) -> u64 {
        let mut state = self.state.lock();
        let state = &mut *state;
        if let Some(old) = state.attached.take()
            && !old.same_connection(&outbound)
        {
            old.close(
                close::SESSION_REPLACED,
                "another connection resumed this session",
            );
        }
        state.connection += 1;
        let connection = state.connection;
        while let Some(text) = state.backlog.pop_front() {
            if outbound.send_text(text.clone()).is_err() {
                state.backlog.push_front(text);
                return connection;
            }
        }
        // Our requests the client has not answered: the old socket may have lost them or their
        // answers. The client answers a re-sent id from its memory, so none acts twice.
        let again = self.client_requests.unanswered();
        if !again.is_empty() {
            tracing::info!(session = %self.id, count = again.len(), "re-sending unanswered requests to the client");
            crate::metrics::resent_to_client(again.len());
        }
        for request in again {
            if outbound.send(&request).is_err() {
                return connection;
            }
        }
        for sub in state.subscriptions.values_mut() {
            if catch_up(&outbound, sub, None).is_err() {
                return connection;
            }
        }
        state.attached = Some(outbound);
        state.detached_since = None;
        connection
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

    /// Whether a socket is attached now.
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
        *self.closed_with.lock() = Some((code, reason.to_owned()));
        self.closed.cancel();
        self.service.lock().take();
        self.extensions.lock().clear();
        let subscriptions = std::mem::take(&mut self.state.lock().subscriptions);
        for sub in subscriptions.into_values() {
            sub.handle.lock().remove_subscriber(&self.id);
        }
        self.client_requests.fail_all(&ErrorObject::new(
            codes::UNREACHABLE,
            "the session ended before the client answered",
        ));
        if let Some(outbound) = self.state.lock().attached.take() {
            outbound.close(code, reason);
        }
    }

    /// The close code and reason the session ended with, once it has.
    pub fn close_reason(&self) -> Option<(u16, String)> {
        self.closed_with.lock().clone()
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

    fn restore_null(&self, id: Value) -> Value {
        if is_substitute(&id) { Value::Null } else { id }
    }

    fn restore_null_id(&self, message: Message) -> Message {
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

/// Whether `id` stands for a `null` id (see [`NULL_ID_PREFIX`]).
fn is_substitute(id: &Value) -> bool {
    id.as_str().is_some_and(|s| s.starts_with(NULL_ID_PREFIX))
}

/// The backlog of a detached session is full.
#[derive(Debug)]
struct BacklogFull;

/// Sends a subscription the publications after its last delivered one, up to `upto` (or the
/// channel's newest), read from the channel's history (the next publication in order is sent
/// directly by `Session::deliver_event`). A gap older than the history is announced with a
/// `channels/gap` notification before what is still kept.
fn catch_up(
    outbound: &Outbound,
    sub: &mut Subscription,
    upto: Option<u64>,
) -> Result<(), codeflow_transport::SendError> {
    let (gap, publications) = {
        let ch = sub.handle.lock();
        let upto = upto.unwrap_or(ch.position().offset);
        ch.catch_up(sub.delivered, upto)
    };
    if let Some((from, to, channel, epoch)) = gap {
        let notice = Message::notification(
            "channels/gap",
            serde_json::json!({
                "channel": channel.as_str(), "epoch": &*epoch,
                "missedFrom": from, "missedTo": to,
            }),
        );
        outbound.send(&notice)?;
        crate::metrics::error_sent("channel_gap");
        sub.delivered = to;
    }
    for p in publications {
        outbound.send_text(p.event_text.clone())?;
        sub.delivered = p.offset;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use axum::extract::ws::Message as WsMessage;
    use codeflow_transport::{ConnectionConfig, spawn_connection};
    use futures::channel::mpsc;
    use futures::{Sink, Stream, StreamExt};
    use serde_json::json;

    use super::*;
    use codeflow_types::{ClientRoot, ProjectId};

    /// An in-memory WebSocket: frames the session sends come out of the receiver kept by the
    /// test; nothing ever arrives.
    struct FakeSocket {
        incoming: mpsc::UnboundedReceiver<Result<WsMessage, std::io::Error>>,
        outgoing: mpsc::UnboundedSender<WsMessage>,
    }

    impl Stream for FakeSocket {
        type Item = Result<WsMessage, std::io::Error>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.incoming.poll_next_unpin(cx)
        }
    }

    impl Sink<WsMessage> for FakeSocket {
        type Error = mpsc::SendError;
        fn poll_ready(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.outgoing).poll_ready(cx)
        }
        fn start_send(mut self: Pin<&mut Self>, item: WsMessage) -> Result<(), Self::Error> {
            Pin::new(&mut self.outgoing).start_send(item)
        }
        fn poll_flush(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.outgoing).poll_flush(cx)
        }
        fn poll_close(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.outgoing).poll_close(cx)
        }
    }

    /// A socket's outbound side, what is sent on it, and its (silent) inbound side.
    struct Socket {
        outbound: Outbound,
        sent: mpsc::UnboundedReceiver<WsMessage>,
        _inbound: codeflow_transport::Inbound,
        _keep_open: mpsc::UnboundedSender<Result<WsMessage, std::io::Error>>,
    }

    fn socket() -> Socket {
        let (keep_open, incoming) = mpsc::unbounded();
        let (outgoing, sent) = mpsc::unbounded();
        let (outbound, inbound) = spawn_connection(
            FakeSocket { incoming, outgoing },
            ConnectionConfig::default(),
        );
        Socket {
            outbound,
            sent,
            _inbound: inbound,
            _keep_open: keep_open,
        }
    }

    impl Socket {
        async fn next_json(&mut self) -> Value {
            let frame = tokio::time::timeout(Duration::from_secs(2), self.sent.next())
                .await
                .expect("a frame within 2 s")
                .expect("the socket is open");
            match frame {
                WsMessage::Text(t) => serde_json::from_str(t.as_str()).expect("JSON"),
                other => panic!("not a text frame: {other:?}"),
            }
        }

        async fn nothing_more(&mut self) -> bool {
            tokio::time::timeout(Duration::from_millis(100), self.sent.next())
                .await
                .is_err()
        }
    }

    fn session() -> Arc<Session> {
        Arc::new(Session::new(
            "test".into(),
            ProjectId::parse("p").unwrap(),
            ClientRoot::parse("/p").unwrap(),
            Grant::anonymous(),
            true,
            Weak::new(),
            Duration::from_secs(5),
        ))
    }

    #[tokio::test]
    async fn unanswered_client_requests_are_sent_again_on_attach_once_each() {
        let session = session();
        let mut first = socket();
        session.attach(first.outbound.clone());
        let s = session.clone();
        let write = tokio::spawn(async move {
            s.request_client(
                "client/writeFile",
                json!({"path": "/p/a.py", "content": "x"}),
                Duration::from_secs(5),
            )
            .await
        });
        let sent = first.next_json().await;
        assert_eq!(sent["method"], "client/writeFile");
        let id = sent["id"].clone();

        // The socket dies before the client's answer; a request made meanwhile waits for the
        // next socket.
        session.detach(&first.outbound);
        let s = session.clone();
        let read = tokio::spawn(async move {
            s.request_client(
                "client/readFile",
                json!({"path": "/p/b.py"}),
                Duration::from_secs(5),
            )
            .await
        });
        while session.client_requests.len() < 2 {
            tokio::task::yield_now().await;
        }
        assert!(first.nothing_more().await);

        // The client resumes: both go out on the new socket, in the order first sent, once.
        let mut second = socket();
        session.attach(second.outbound.clone());
        assert_eq!(second.next_json().await, sent, "the same request, same id");
        let again = second.next_json().await;
        assert_eq!(again["method"], "client/readFile");
        assert!(second.nothing_more().await);

        // The answers complete the calls; a second answer to the same id is dropped, not
        // handed to the service.
        let answer = |id: &Value, result: Value| {
            let id = serde_json::from_value(id.clone()).unwrap();
            Message::response(id, result)
        };
        assert_eq!(
            session.resolve_client_response(answer(&id, json!({"hash": "h"}))),
            None
        );
        assert_eq!(
            session.resolve_client_response(answer(&id, json!({"hash": "h"}))),
            None
        );
        assert_eq!(
            session.resolve_client_response(answer(&again["id"], json!({"content": ""}))),
            None
        );
        assert_eq!(write.await.unwrap(), Ok(json!({"hash": "h"})));
        assert_eq!(read.await.unwrap(), Ok(json!({"content": ""})));

        // Nothing unanswered is left to send on the next resume.
        let mut third = socket();
        session.attach(third.outbound.clone());
        assert!(third.nothing_more().await);
    }
}
