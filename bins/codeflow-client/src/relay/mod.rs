//! The relay loop: the agent's MCP on stdio on one side, the server's WebSocket on the other.
//!
//! The loop owns the pieces, each doing one job, and routes messages between them:
//! [`link`] (up, or down and dialling), [`in_flight`] (the agent's requests, re-sent after a
//! resume), [`flush_gate`] (calls wait for the watcher's flush), [`manifest_sync`] (the
//! server's mirror of the tree), [`tools_cache`] (`tools/list` while offline) and
//! [`crate::serving`] (the server's `client/*` requests, answered once).

mod flush_gate;
mod in_flight;
mod link;
mod manifest_sync;
mod modern;
#[cfg(test)]
mod testing;
mod tools_cache;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use codeflow_transport::frame::Utf8Bytes;
use codeflow_transport::{ConnectionConfig, ErrorObject, Message, RawMessage, codes};
use futures::FutureExt;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::cli::Resolved;
use crate::files::LocalFiles;
use crate::serving::{Served, Serving};
use crate::stdio::{self, FromAgent};
use crate::upstream::{self, Established, HandshakeMemory, Reestablished};
use flush_gate::{Flush, FlushGate};
use in_flight::{InFlight, MAX_IN_FLIGHT};
use link::{Event, Link};
use manifest_sync::{ManifestSync, is_begin, is_own, send_change};
use modern::{MODERN_INIT_ID, ModernEdge};
use tools_cache::ToolsCache;

/// Most agent messages held while the server is unreachable.
const OFFLINE_QUEUE: usize = 1024;

struct Relay {
    target: Resolved,
    memory: Arc<Mutex<HandshakeMemory>>,
    /// Lines for the agent's stdout: each message's JSON text.
    to_agent: mpsc::Sender<Utf8Bytes>,
    link: Link,
    in_flight: InFlight,
    /// Agent messages waiting for a connection, with when they arrived.
    waiting: VecDeque<(Instant, Message)>,
    initialize_id: Option<Value>,
    initialized: bool,
    tools: ToolsCache,
    files: LocalFiles,
    /// The server's `client/*` requests being served, and answers to re-sent ones.
    serving: Serving,
    sync: ManifestSync,
    gate: FlushGate,
    /// The tree's git state (`git status` output), sent as `server/gitState` when it changes
    /// and to every new session.
    git: tokio::sync::watch::Receiver<Option<String>>,
    /// With `--ssh-key`: the login signed for the current connection, until an `initialize`
    /// uses it.
    login: Option<Value>,
    /// New tokens from `--token-file` / `--token-command`, and the task that watches for them.
    renewed: Option<(mpsc::Receiver<String>, crate::tokens::AbortOnDrop)>,
    refreshes: u64,
    /// The MCP 2026-07-28 edge: which requests are modern, and what the server said of itself.
    modern: ModernEdge,
    /// Modern requests waiting for the session the relay opens for them.
    held_modern: Vec<Message>,
    /// Sends the scan's files for a streamed first sync (`server/syncBegin`).
    uploader: Option<Arc<crate::upload::Uploader>>,
    /// A streamed first sync in progress.
    streaming: Option<Streaming>,
}

/// A streamed first sync (see [`manifest_sync::ManifestSync::begin`]).
enum Streaming {
    /// `server/syncBegin` sent (`id`), the scan's files waiting for its answer.
    Begun {
        id: Value,
        feed: codeflow_file_stream::ScanFeed,
    },
    /// The upload runs; its manifest follows when it is over, or goes as soon as the scan is
    /// over when the server takes it while the upload runs (`early`).
    Uploading {
        operation_id: String,
        task: tokio::task::JoinHandle<Result<Value, String>>,
        early: bool,
        /// The manifest went while the upload ran: the upload's end is told to the server
        /// (`server/syncUploadOver`), and only then do changes flow.
        manifest_sent: bool,
    },
}

/// How a streamed sync's upload ended.
struct UploadEnded {
    operation_id: String,
    outcome: Result<Value, String>,
    manifest_sent: bool,
}

/// Prefix of the relay's own `auth/refresh` requests.
const REFRESH_ID_PREFIX: &str = "r:refresh:";

pub async fn run(target: Resolved) -> anyhow::Result<()> {
    let (to_agent, stdout_writer) = stdio::spawn_stdout();
    let mut from_agent = stdio::spawn_stdin(to_agent.clone());
    let config = target.connection_config();
    let memory: Arc<Mutex<HandshakeMemory>> = Arc::default();
    // Dial while the watcher scans the tree: the two do not depend on each other.
    let mut link = Link::dial(dialer(&target, &config, &memory));
    let scan_started = Instant::now();
    let files = match LocalFiles::start(&target.root, target.cache_dir.clone()).await {
        Ok(files) => {
            let walked = files.walked();
            tracing::info!(
                files = files.initial_len(),
                to_read = walked.to_read_files,
                ms = scan_started.elapsed().as_millis() as u64,
                "tree walked"
            );
            files
        }
        Err(e) => {
            link.close("the relay could not start");
            return Err(e);
        }
    };
    let renewed = target.tokens.watch();
    let git = crate::git_state::watch(target.root.clone());
    let uploader = crate::upload::Uploader::new(&target, files.initial());
    let mut relay = Relay {
        renewed,
        login: None,
        refreshes: 0,
        target,
        memory,
        to_agent,
        link,
        in_flight: InFlight::default(),
        waiting: VecDeque::new(),
        initialize_id: None,
        initialized: false,
        tools: ToolsCache::default(),
        serving: Serving::new(files.file_server()).with_uploader(uploader.clone()),
        uploader,
        streaming: None,
        files,
        sync: ManifestSync::default(),
        gate: FlushGate::default(),
        git,
        modern: ModernEdge::default(),
        held_modern: Vec::new(),
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        if let Some(why) = relay.files.failure() {
            let why = format!(
                "the relay's scan of {} failed: {why}",
                relay.target.root.display()
            );
            relay.link.close("the relay could not start");
            return Err(anyhow::anyhow!(why));
        }
        tokio::select! {
            // A full flush gate stops reading the agent until a flush releases some.
            m = from_agent.recv(), if !relay.gate.is_full() => match m {
                Some(FromAgent::Message(m)) => relay.on_agent_message(m).await,
                Some(FromAgent::Eof) | None => break,
            },
            event = relay.link.next() => match event {
                Event::Message(m) => relay.on_server_message(m).await,
                Event::Raw(raw) => relay.on_server_raw(raw).await,
                Event::Ended => relay.lost_connection(),
                Event::Dialed(established) => relay.connected(established).await,
            },
            Some(change) = relay.files.changes.recv(), if relay.sync.is_live() && relay.link.is_up() => {
                if let Some(outbound) = relay.link.outbound() {
                    send_change(outbound, change);
                }
            }
            Ok(()) = relay.git.changed(), if relay.sync.is_live() && relay.link.is_up() => {
                relay.send_git_state();
            }
            Some(token) = next_token(&mut relay.renewed) => relay.token_renewed(token),
            () = relay.gate.flushed() => relay.flush_completed().await,
            served = relay.serving.next() => relay.answer_served(served).await,
            _ = ticker.tick() => relay.expire_waiting().await,
            outcome = crate::files::scan_ended(&mut relay.files.scanning), if relay.files.is_scanning() => {
                relay.files.take_scan(outcome);
                relay.manifest_while_uploading().await;
            }
            ended = uploaded(&mut relay.streaming) => relay.streamed_upload_over(ended).await,
        }
    }
    relay.link.close("the agent closed the relay");
    drop(relay);
    // Let queued replies reach the agent and the close frame reach the server.
    stdout_writer.finish(Duration::from_secs(2)).await;
    Ok(())
}

/// The next renewed token, or never when the token is fixed.
async fn next_token(
    renewed: &mut Option<(mpsc::Receiver<String>, crate::tokens::AbortOnDrop)>,
) -> Option<String> {
    match renewed {
        Some((rx, _)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Completes when a streamed first sync's upload ends (never while none runs). Cancel-safe.
async fn uploaded(streaming: &mut Option<Streaming>) -> UploadEnded {
    let Some(Streaming::Uploading {
        operation_id,
        task,
        manifest_sent,
        ..
    }) = streaming
    else {
        return std::future::pending().await;
    };
    let outcome = match task.await {
        Ok(outcome) => outcome,
        Err(e) => Err(format!("the upload task failed: {e}")),
    };
    let ended = UploadEnded {
        operation_id: std::mem::take(operation_id),
        outcome,
        manifest_sent: *manifest_sent,
    };
    *streaming = None;
    ended
}

/// Starts a watcher flush for the [`FlushGate`].
fn flush(files: &LocalFiles) -> Flush {
    let flush = files.start_flush();
    Box::pin(async move {
        if let Err(e) = flush.await {
            tracing::warn!("watcher flush failed: {e}");
        }
    })
}

impl Relay {
    async fn tell_agent(&mut self, message: Message) {
        let message = self.for_agent(message);
        let _ = self.to_agent.send(message.to_text().into()).await;
    }

    /// An answer as the agent's era expects it: a modern request's result is translated.
    fn for_agent(&mut self, message: Message) -> Message {
        match message {
            Message::Response { id, result } => match self.modern.answered(&id) {
                Some(method) => {
                    let result = self.modern.translate(&method, result);
                    Message::Response { id, result }
                }
                None => Message::Response { id, result },
            },
            Message::Error { id, error } => {
                self.modern.answered(&id);
                Message::Error { id, error }
            }
            other => other,
        }
    }

    async fn connected(&mut self, established: Option<Established>) {
        let Some(Established {
            outbound,
            inbound,
            early,
            kind,
            login,
        }) = established
        else {
            self.link.redial();
            return;
        };
        tracing::info!(?kind, "connected to {}", self.target.server);
        self.login = login;
        if kind != Reestablished::Resumed {
            // Another session: its request ids start over.
            self.serving.new_session();
        }
        if kind == Reestablished::Fresh {
            // The old session is gone with whatever it was doing (its instance died, restarted,
            // or the session expired). Reads go again on the new session; a write may or may
            // not have been applied there, and running it again could apply it twice: the
            // agent is told its outcome is unknown.
            let tools = &self.tools;
            let lost = self.in_flight.keep_rerunnable(|m| rerunnable(tools, m));
            for (id, what) in lost {
                let error = ErrorObject::new(
                    codes::UNREACHABLE,
                    format!(
                        "outcome unknown: the server lost this `{what}` call (the instance serving the session died or restarted, or the session expired) and it may or may not have been applied; it was not run again"
                    ),
                )
                .with_suggestion(
                    "check the call's effect (read the files it would change) before retrying it",
                );
                self.tell_agent(Message::error(id, error)).await;
            }
        }
        self.link.up(outbound, inbound);
        if let Some(streaming) = self.streaming.take() {
            tracing::info!(
                "the streamed sync was cut with the connection; sending the manifest instead"
            );
            // A resumed session's sync has its manifest and waits for the upload's end.
            if let Some(operation_id) = streaming.abandon() {
                self.sync.owe_over(operation_id);
            }
        }
        self.sync.tell_over_again(self.link.outbound(), kind).await;
        if self.sync.needed_after(kind) {
            self.sync
                .send(&mut self.files, self.link.outbound(), false)
                .await;
            // A new session knows nothing of the tree's git state either.
            self.git.mark_changed();
        }
        // Answers the server kept while we were away come first (and its re-sent `client/*`
        // requests).
        for m in early {
            self.on_server_message(m).await;
        }
        // After a resume the server answers re-sent calls from its memory; on a new session
        // only reads are left in flight, and they simply run again.
        self.resend_in_flight().await;
        while let Some((_, m)) = self.waiting.pop_front() {
            self.send_upstream(m).await;
        }
    }

    /// After a resume: sends every request still unanswered again, in the order first sent.
    /// The server answers each re-send from its memory (or once the original finishes), so
    /// nothing runs twice, and answers that arrive twice are dropped in
    /// [`Self::on_server_message`].
    async fn resend_in_flight(&mut self) {
        let again = self.in_flight.replay();
        if again.is_empty() {
            return;
        }
        tracing::info!(
            "re-sending {} unanswered request(s) after the resume",
            again.len()
        );
        let Some(outbound) = self.link.outbound() else {
            return;
        };
        for message in again {
            if outbound.send_wait(&message).await.is_err() {
                // The new socket died too: they go again after the next resume.
                return;
            }
        }
    }

    /// A new token from `--token-file` / `--token-command`: the live session swaps to it
    /// (`auth/refresh`) before the old one expires; dials and handshakes use it from now on.
    fn token_renewed(&mut self, token: String) {
        let has_session = self.memory.lock().session_id.is_some();
        let Some(outbound) = self.link.outbound().filter(|_| has_session) else {
            tracing::info!("token renewed; the next connection uses it");
            return;
        };
        self.refreshes += 1;
        let id = Value::String(format!("{REFRESH_ID_PREFIX}{}", self.refreshes));
        let _ = outbound.send(&Message::request(
            id,
            "auth/refresh",
            serde_json::json!({"token": token}),
        ));
    }

    /// Sends every file change the watcher has queued (a flush puts its changes there before it
    /// completes).
    fn send_queued_changes(&mut self) {
        while let Ok(change) = self.files.changes.try_recv() {
            if let Some(outbound) = self.link.outbound() {
                send_change(outbound, change);
            }
        }
    }

    async fn flush_completed(&mut self) {
        // The flush put its changes in the queue before completing: send them first.
        self.send_queued_changes();
        let released = self.gate.release(|| flush(&self.files));
        for message in released {
            self.send_or_wait(message).await;
        }
    }

    /// Sends the tree's git state (when it is a repository) as `server/gitState`.
    fn send_git_state(&mut self) {
        let state = self.git.borrow_and_update().clone();
        if let (Some(porcelain), Some(outbound)) = (state, self.link.outbound()) {
            let _ = outbound.send(&Message::notification(
                "server/gitState",
                serde_json::json!({ "porcelain": porcelain }),
            ));
        }
    }

    fn lost_connection(&mut self) {
        let needed = self.memory.lock().session_id.is_some()
            || self.initialize_id.is_some()
            || !self.waiting.is_empty();
        if !needed {
            // The agent has not initialized yet, so the server closed a socket nobody used:
            // dial again when the agent speaks, not in a loop meanwhile.
            tracing::info!(
                "the connection to {} closed before the agent initialized; dialling again on the agent's first message",
                self.target.server
            );
            self.link.rest();
            return;
        }
        tracing::warn!(
            "lost the connection to {}; reconnecting",
            self.target.server
        );
        self.link.lost();
        // An unanswered `initialize` died with the socket: send it again on the next one.
        if let Some(id) = self.initialize_id.clone()
            && self.in_flight.forget(&id)
            && let Some(params) = self.memory.lock().init_params.clone()
        {
            self.waiting
                .push_front((Instant::now(), Message::request(id, "initialize", params)));
        }
    }

    /// The server refused the relay's token and no other token can come (`--token`): waiting
    /// for the server is pointless, so calls fail at once with why. The link keeps dialling
    /// (the server's secret may change back).
    fn token_refused(&self) -> Option<ErrorObject> {
        if self.link.is_up() || self.target.tokens.renews() {
            return None;
        }
        let memory = self.memory.lock();
        let why = memory
            .last_dial_error
            .clone()
            .filter(|_| memory.token_refused)?;
        Some(ErrorObject::new(codes::UNAUTHORIZED, why).with_suggestion(
            "restart codeflow-client with a valid --token (or pass --token-file / --token-command, which renew without a restart); `codeflow-client check` tells what the server refused",
        ))
    }

    async fn expire_waiting(&mut self) {
        if let Some(error) = self.token_refused() {
            let waiting: Vec<Message> = self.waiting.drain(..).map(|(_, m)| m).collect();
            for message in waiting {
                match message {
                    Message::Request { id, .. } => self.refuse(id, error.clone()).await,
                    // Notifications wait for a connection that may yet come.
                    other => self.waiting.push_back((Instant::now(), other)),
                }
            }
            for (id, _) in self.in_flight.give_up() {
                self.refuse(id, error.clone()).await;
            }
            return;
        }
        let wait = self.target.offline_wait;
        while let Some((since, _)) = self.waiting.front() {
            if since.elapsed() < wait {
                break;
            }
            if let Some((_, m)) = self.waiting.pop_front()
                && let Message::Request { id, method, .. } = m
            {
                self.gave_up(id, &method, wait).await;
            }
        }
        // Calls sent before the link died wait as long for a resume; then their outcome is
        // unknown, and the agent is told so instead of waiting forever.
        if self
            .link
            .down_since()
            .is_some_and(|since| since.elapsed() >= wait)
            && !self.in_flight.is_empty()
        {
            for (id, method) in self.in_flight.give_up() {
                let error = ErrorObject::new(
                    codes::UNREACHABLE,
                    format!(
                        "server unreachable, retrying: the connection was lost while `{method}` was running and has not come back within {} s; the call may or may not have completed",
                        wait.as_secs()
                    ),
                )
                .with_suggestion(
                    "check that codeflow-server is running (codeflow-client check); check the call's effect before retrying it",
                );
                self.tell_agent(Message::error(id, error)).await;
            }
        }
    }

    async fn on_agent_message(&mut self, message: Message) {
        match &message {
            Message::Request { id, method, params } => {
                let id = id.clone();
                // MCP 2026-07-28: the request says its era in `_meta`.
                match modern::envelope(params.as_ref()) {
                    Ok(Some(envelope)) => return self.on_modern_request(message, envelope).await,
                    Ok(None) if method == "server/discover" => {
                        // A probe without the revision's `_meta` is malformed for it.
                        let error = ErrorObject::new(
                            codes::INVALID_PARAMS,
                            "`server/discover` needs `_meta` with `io.modelcontextprotocol/protocolVersion` and `io.modelcontextprotocol/clientCapabilities`",
                        );
                        self.tell_agent(Message::error(id, error)).await;
                        return;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        self.tell_agent(Message::error(id, error)).await;
                        return;
                    }
                }
                match method.as_str() {
                    "initialize" => {
                        self.modern.agent_is_modern = false;
                        let params = upstream::augment_initialize(&self.target, params.clone());
                        self.memory.lock().init_params = Some(params.clone());
                        self.initialize_id = Some(id.clone());
                        self.send_or_wait(Message::request(id, "initialize", params))
                            .await;
                    }
                    "ping" if !self.link.is_up() => {
                        self.tell_agent(Message::response(id, serde_json::json!({})))
                            .await;
                    }
                    "tools/list" if !self.link.is_up() && self.tools.get().is_some() => {
                        let cached = self.tools.get().unwrap_or_default();
                        self.tell_agent(Message::response(id, cached)).await;
                    }
                    m if !self.initialized && self.initialize_id.is_none() => {
                        let error = ErrorObject::new(
                            codes::NOT_INITIALIZED,
                            format!("`{m}` sent before initialize"),
                        )
                        .with_suggestion("send initialize first");
                        self.tell_agent(Message::error(id, error)).await;
                    }
                    _ => self.forward_request(message).await,
                }
            }
            Message::Notification { method, .. } => {
                if method == "notifications/initialized" {
                    self.initialized = true;
                }
                if self.gate.is_holding() {
                    self.gate.hold_behind(message);
                } else {
                    self.send_or_wait(message).await;
                }
            }
            // Answers to the server's own requests (e.g. roots/list): only meaningful now.
            _ => {
                if let Some(outbound) = self.link.outbound() {
                    let _ = outbound.send_wait(&message).await;
                }
            }
        }
    }

    /// Sends an agent's request on its way to the server: a tool call waits for the watcher's
    /// flush, and everything keeps the agent's order behind held calls.
    async fn forward_request(&mut self, message: Message) {
        let method = message.method().unwrap_or_default();
        // A Claude run copies the server's mirror: it too should see every change on disk up
        // to now.
        let needs_flush = matches!(method, "tools/call" | "claude/execute")
            && self.sync.is_live()
            && self.link.is_up();
        if needs_flush && !self.gate.is_holding() && self.files.is_quiet() {
            // Nothing on disk changed that the watcher has not handled: what it found is
            // queued (sent first), and the call goes now, without the round trip to it.
            self.send_queued_changes();
            self.send_or_wait(message).await;
        } else if needs_flush {
            self.gate.hold_call(message, || flush(&self.files));
        } else if self.gate.is_holding() {
            self.gate.hold_behind(message);
        } else {
            self.send_or_wait(message).await;
        }
    }

    /// A 2026-07-28 request (see [`modern`]): answered here, or sent on the session the relay
    /// keeps with the server (opened for it when the agent never sent `initialize`).
    async fn on_modern_request(&mut self, message: Message, envelope: modern::Envelope) {
        let Message::Request { id, method, params } = message else {
            return;
        };
        if method == "server/discover" {
            let result = self.modern.discover();
            self.tell_agent(Message::response(id, result)).await;
            return;
        }
        if modern::removed(&method) {
            let error = ErrorObject::new(
                codes::METHOD_NOT_FOUND,
                format!(
                    "method `{method}` is not part of MCP {}",
                    modern::MODERN_VERSION
                ),
            );
            self.tell_agent(Message::error(id, error)).await;
            return;
        }
        self.modern.sent(&id, &method);
        let request = Message::Request {
            id: id.clone(),
            method: method.clone(),
            params: modern::strip(params),
        };
        if method == "tools/list" && !self.link.is_up() && self.tools.get().is_some() {
            let cached = self.tools.get().unwrap_or_default();
            self.tell_agent(Message::response(id, cached)).await;
            return;
        }
        let has_session = self.initialized || self.memory.lock().session_id.is_some();
        if has_session {
            self.forward_request(request).await;
            return;
        }
        self.held_modern.push(request);
        if self.initialize_id.is_none() {
            // Open the server's session for this agent with what its request says of it.
            self.modern.agent_is_modern = true;
            let params =
                upstream::augment_initialize(&self.target, Some(modern::session_params(&envelope)));
            self.memory.lock().init_params = Some(params.clone());
            let init_id = Value::String(MODERN_INIT_ID.into());
            self.initialize_id = Some(init_id.clone());
            self.send_or_wait(Message::request(init_id, "initialize", params))
                .await;
        }
    }

    /// The server answered the session the relay opened for a modern agent: its held requests
    /// go out now.
    async fn modern_session_opened(&mut self) {
        self.initialized = true;
        self.send_or_wait(Message::notification(
            "notifications/initialized",
            serde_json::json!({}),
        ))
        .await;
        for request in std::mem::take(&mut self.held_modern) {
            self.forward_request(request).await;
        }
    }

    /// The session for held modern requests was refused or could not be opened: each gets the
    /// reason.
    async fn modern_session_refused(&mut self, error: ErrorObject) {
        for request in std::mem::take(&mut self.held_modern) {
            if let Message::Request { id, .. } = request {
                self.tell_agent(Message::error(id, error.clone())).await;
            }
        }
    }

    async fn send_or_wait(&mut self, message: Message) {
        if let Message::Request { id, .. } = &message
            && let Some(error) = self.token_refused()
        {
            self.refuse(id.clone(), error).await;
            return;
        }
        if self.link.is_up() {
            self.send_upstream(message).await;
        } else if self.waiting.len() < OFFLINE_QUEUE {
            // A resting link dials now; a dial waiting out its backoff tries again now.
            self.link.redial();
            self.link.hurry();
            self.waiting.push_back((Instant::now(), message));
        } else if let Message::Request { id, method, .. } = message {
            let wait = self.target.offline_wait;
            self.gave_up(id, &method, wait).await;
        }
    }

    /// A request that could not reach the server: the agent's gets the error; the relay's own
    /// `initialize` for a modern agent passes it to the requests waiting for that session.
    async fn gave_up(&mut self, id: Value, method: &str, wait: Duration) {
        let why = self.memory.lock().last_dial_error.clone();
        let error = unreachable_error(method, &self.target.server, wait, why.as_deref());
        self.refuse(id, error).await;
    }

    /// Answers a request the server will not see with `error`: the agent's own, or the relay's
    /// `initialize` for a modern agent, whose error goes to the requests waiting for it.
    async fn refuse(&mut self, id: Value, error: ErrorObject) {
        if !is_modern_init(&id) {
            self.tell_agent(Message::error(id, error)).await;
            return;
        }
        self.initialize_id = None;
        self.memory.lock().init_params = None;
        self.modern_session_refused(error).await;
    }

    async fn send_upstream(&mut self, mut message: Message) {
        if self.link.outbound().is_none() {
            self.waiting.push_back((Instant::now(), message));
            return;
        }
        // The agent's `initialize` goes out with the newest token and this connection's login.
        if let Message::Request { method, params, .. } = &mut message
            && method == "initialize"
            && let Some(params) = params.as_mut()
        {
            upstream::with_credentials(&self.target, params, self.login.take().as_ref());
        }
        let Some(outbound) = self.link.outbound() else {
            return;
        };
        if let Message::Request { id, .. } = &message
            && !self.in_flight.has_room()
        {
            let error = ErrorObject::new(
                codes::LIMIT_EXCEEDED,
                format!("the relay already has {MAX_IN_FLIGHT} requests waiting for the server"),
            )
            .with_suggestion("wait for answers before sending more requests");
            let reply = self.for_agent(Message::error(id.clone(), error));
            let _ = self.to_agent.send(reply.to_text().into()).await;
            return;
        }
        self.in_flight.sent(&message);
        if outbound.send_wait(&message).await.is_err() {
            // The socket died under us; the message goes out after the reconnect.
            if let Some(id) = message.id() {
                self.in_flight.forget(id);
            }
            self.waiting.push_back((Instant::now(), message));
        }
    }

    /// A server message kept as its text: an answer to one of the agent's requests that the
    /// relay has nothing to change in goes to the agent as it arrived (the common case: every
    /// tool call's answer); anything else is parsed and handled by [`Self::on_server_message`].
    async fn on_server_raw(&mut self, raw: RawMessage) {
        if self.passes_through(&raw) {
            if let Some(id) = raw.id() {
                self.in_flight.answered(id);
            }
            let _ = self.to_agent.send(raw.into_text()).await;
            return;
        }
        match raw.to_message() {
            Ok(message) => self.on_server_message(message).await,
            Err(e) => tracing::warn!("dropping a server message that does not parse: {e}"),
        }
    }

    /// Whether the server's answer `raw` needs nothing from the relay but forgetting its
    /// request: an answer to an agent request in flight that is not `initialize` (the session
    /// is learnt from it), not `tools/list` (cached), not a modern request's (translated), and
    /// written on one line. Exactly the answers [`Self::on_server_message`] would pass on
    /// unchanged.
    fn passes_through(&self, raw: &RawMessage) -> bool {
        let Some(id) = raw.id() else {
            return false;
        };
        raw.is_response()
            && raw.is_single_line()
            && !is_refresh(id)
            && !is_own(id)
            && self.initialize_id.as_ref() != Some(id)
            && !self.modern.expects(id)
            && self
                .in_flight
                .method(id)
                .is_some_and(|method| method != "tools/list")
    }

    async fn on_server_message(&mut self, message: Message) {
        match message {
            Message::Request { id, method, params } if method.starts_with("client/") => {
                if let Some(text) = self.serving.request(id, method, params) {
                    self.send_answer(text).await;
                }
            }
            Message::Response { ref id, ref result } if is_refresh(id) => {
                tracing::info!("token refreshed on the live session: {result}");
            }
            Message::Error { ref id, ref error } if is_refresh(id) => {
                tracing::warn!("the server refused the renewed token: {error}");
            }
            Message::Response { ref id, ref result } if is_begin(id) => {
                self.begun(id, Ok(result)).await;
            }
            Message::Error { ref id, ref error } if is_begin(id) => {
                self.begun(id, Err(error)).await;
            }
            Message::Response { ref id, ref result } if is_own(id) && !is_modern_init(id) => {
                self.sync.answered();
                tracing::info!("sync done: {}", manifest_sync::sync_summary(result));
                tracing::debug!("sync answer: {result}");
            }
            Message::Error { ref id, ref error } if is_own(id) && !is_modern_init(id) => {
                self.sync.answered();
                tracing::warn!("sync failed: {error}");
            }
            // A second answer to the same request (a re-send crossed the original answer):
            // the agent already has it.
            Message::Response { ref id, .. } | Message::Error { ref id, .. }
                if !self.in_flight.contains(id) =>
            {
                tracing::debug!(%id, "dropping a repeated answer");
            }
            Message::Response { ref id, ref result } => {
                let method = self.in_flight.answered(id);
                let initialized_now = self.initialize_id.as_ref() == Some(id);
                if initialized_now {
                    self.initialize_id = None;
                    let sid = result
                        .get("sessionId")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    self.memory.lock().session_id = sid;
                    self.modern.server_initialized(result);
                }
                self.tools.answered(method.as_deref(), result);
                if is_modern_init(id) {
                    self.modern_session_opened().await;
                } else {
                    self.tell_agent(message).await;
                    // Modern requests that arrived while the agent's own `initialize` was
                    // out go on its session.
                    if initialized_now {
                        for request in std::mem::take(&mut self.held_modern) {
                            self.forward_request(request).await;
                        }
                    }
                }
                if initialized_now && self.sync.wants_first() {
                    self.first_sync().await;
                }
            }
            Message::Error { ref id, ref error } => {
                self.in_flight.answered(id);
                let refused_init = self.initialize_id.as_ref() == Some(id);
                if refused_init {
                    self.initialize_id = None;
                    self.memory.lock().init_params = None;
                }
                if refused_init && !self.held_modern.is_empty() || is_modern_init(id) {
                    let error = error.clone();
                    if !is_modern_init(id) {
                        self.tell_agent(message).await;
                    }
                    self.modern_session_refused(error).await;
                } else {
                    self.tell_agent(message).await;
                }
            }
            // An agent that never opened a session speaks 2026-07-28: it gets only the
            // notifications tied to its requests, and no requests at all (the revision has
            // none from server to client on stdio).
            Message::Notification { ref method, .. }
                if self.modern.agent_is_modern && !modern::notification_for_modern(method) =>
            {
                tracing::debug!(
                    "not sending `{method}` to a {} agent",
                    modern::MODERN_VERSION
                );
            }
            Message::Request { id, method, .. } if self.modern.agent_is_modern => {
                let error = ErrorObject::new(
                    codes::METHOD_NOT_FOUND,
                    format!(
                        "the agent speaks MCP {} and takes no requests (`{method}`)",
                        modern::MODERN_VERSION
                    ),
                );
                if let Some(outbound) = self.link.outbound() {
                    let _ = outbound.send_wait(&Message::error(id, error)).await;
                }
            }
            other => self.tell_agent(other).await,
        }
    }

    /// A `client/*` request was served: its answer goes to the connection up now (if none is,
    /// the server sends the request again on resume and gets the answer from memory).
    async fn answer_served(&mut self, served: Served) {
        if let Some(text) = self.serving.finished(served) {
            self.send_answer(text).await;
        }
    }

    async fn send_answer(&self, text: String) {
        if let Some(outbound) = self.link.outbound() {
            let _ = outbound.send_text_wait(text).await;
        }
    }
}

impl Streaming {
    /// Stops a streamed sync cut by a lost connection. Returns the upload whose manifest went
    /// while it ran, if any: the server's sync waits for its end.
    fn abandon(self) -> Option<String> {
        match self {
            Streaming::Uploading {
                task,
                operation_id,
                manifest_sent,
                ..
            } => {
                task.abort();
                manifest_sent.then_some(operation_id)
            }
            Streaming::Begun { .. } => None,
        }
    }
}

impl Relay {
    /// The session's first sync: streamed (`server/syncBegin`) when the scan still has much to
    /// read, else the manifest at once (after the scan).
    async fn first_sync(&mut self) {
        if self.uploader.is_some()
            && let Some(feed) = self.files.take_feed()
        {
            let walked = self.files.walked();
            if let Some(id) = self.sync.begin(walked, self.link.outbound()).await {
                tracing::info!(
                    files = walked.files,
                    to_read = walked.to_read_files,
                    "streamed sync asked for"
                );
                self.streaming = Some(Streaming::Begun { id, feed });
                return;
            }
        }
        self.sync
            .send(&mut self.files, self.link.outbound(), true)
            .await;
        self.git.mark_changed();
    }

    /// The server answered `server/syncBegin`: the upload starts, or (declined, or an older
    /// server's -32601) the manifest goes as before.
    async fn begun(&mut self, id: &Value, answer: Result<&Value, &ErrorObject>) {
        let Some(Streaming::Begun { id: asked, .. }) = &self.streaming else {
            tracing::debug!(%id, "dropping the answer to an abandoned server/syncBegin");
            return;
        };
        if asked != id {
            tracing::debug!(%id, "dropping the answer to an earlier server/syncBegin");
            return;
        }
        let Some(Streaming::Begun { feed, .. }) = self.streaming.take() else {
            return;
        };
        let accepted =
            match answer {
                Ok(result) => serde_json::from_value::<
                    codeflow_file_stream::transfer::SyncBeginResult,
                >(result.clone())
                .ok()
                .filter(|b| b.transfers),
                Err(error) => {
                    tracing::info!(
                        "the server does not begin streamed syncs ({}); sending the manifest",
                        error.message
                    );
                    None
                }
            };
        let (Some(begun), Some(uploader)) = (accepted, self.uploader.clone()) else {
            drop(feed);
            self.sync
                .send(&mut self.files, self.link.outbound(), true)
                .await;
            self.git.mark_changed();
            return;
        };
        let operation_id = begun.operation_id.clone();
        let early = begun.manifest_while_uploading;
        let task = tokio::spawn(async move { uploader.stream(begun, feed).await });
        self.streaming = Some(Streaming::Uploading {
            operation_id,
            task,
            early,
            manifest_sent: false,
        });
        self.manifest_while_uploading().await;
    }

    /// The scan is over while a streamed sync's upload runs, and the server takes the
    /// manifest meanwhile: it goes now, so the server has parsed it when the upload ends.
    async fn manifest_while_uploading(&mut self) {
        let Some(Streaming::Uploading {
            operation_id,
            early: true,
            manifest_sent: sent @ false,
            ..
        }) = &mut self.streaming
        else {
            return;
        };
        if self.files.is_scanning() || self.sync.is_live() {
            return;
        }
        *sent = self
            .sync
            .send_streamed(&mut self.files, self.link.outbound(), operation_id, true)
            .await;
        if *sent {
            tracing::info!("streamed sync: manifest sent while the upload runs");
        }
    }

    /// A streamed sync's upload ended: its manifest goes now (unless a reconnect already sent
    /// one, or it went while the upload ran: then the server is told the upload is over), and
    /// the server completes the sync with it.
    async fn streamed_upload_over(&mut self, ended: UploadEnded) {
        match ended.outcome {
            Ok(summary) => tracing::info!(
                "streamed sync upload: {}",
                manifest_sync::sync_summary(&summary)
            ),
            Err(why) => tracing::warn!("{why}; the server reads what it lacks"),
        }
        if ended.manifest_sent {
            self.sync
                .upload_over(self.link.outbound(), &ended.operation_id)
                .await;
            self.git.mark_changed();
        } else if !self.sync.is_live() {
            self.sync
                .send_streamed(
                    &mut self.files,
                    self.link.outbound(),
                    &ended.operation_id,
                    false,
                )
                .await;
            self.git.mark_changed();
        }
    }
}

fn is_modern_init(id: &Value) -> bool {
    id.as_str() == Some(MODERN_INIT_ID)
}

/// Whether an agent request may run again on a new session without harm: the MCP methods
/// that only read, and tool calls of read-only tools (`readOnlyHint` in the server's
/// `tools/list`) or in dry-run mode. Anything else (writes, Claude runs, project changes) is
/// not.
fn rerunnable(tools: &ToolsCache, message: &Message) -> bool {
    let Message::Request { method, params, .. } = message else {
        return false;
    };
    match method.as_str() {
        "ping" | "tools/list" | "logging/setLevel" | "resources/list" | "prompts/list" => true,
        "tools/call" => {
            let name = params
                .as_ref()
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let dry_run = params
                .as_ref()
                .and_then(|p| p.pointer("/arguments/dry_run"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            tools.read_only(name) || (dry_run && name != "batch_execute")
        }
        _ => false,
    }
}

fn is_refresh(id: &Value) -> bool {
    id.as_str()
        .is_some_and(|s| s.starts_with(REFRESH_ID_PREFIX))
}

/// The agent's error for a call that could not reach the server, with why the last dial
/// failed (refused, TLS, 404…) so the agent can tell its user what to fix.
fn unreachable_error(method: &str, server: &str, wait: Duration, why: Option<&str>) -> ErrorObject {
    let why = why
        .map(|e| format!(" (last attempt: {e})"))
        .unwrap_or_default();
    ErrorObject::new(
        codes::UNREACHABLE,
        format!(
            "server unreachable, retrying: `{method}` could not reach {server} within {} s{why}",
            wait.as_secs()
        ),
    )
    .with_suggestion("check that codeflow-server is running (codeflow-client check), then retry")
}

/// Dials the server (with backoff, until it answers) and re-runs the handshake; one dial per
/// call, on its own task (see [`Link`]).
fn dialer(
    target: &Resolved,
    config: &ConnectionConfig,
    memory: &Arc<Mutex<HandshakeMemory>>,
) -> link::Dial {
    let (target, config, memory) = (target.clone(), config.clone(), memory.clone());
    Arc::new(move |hurry| {
        let (target, config, memory) = (target.clone(), config.clone(), memory.clone());
        async move { upstream::establish(&target, &config, &memory, &hurry).await }.boxed()
    })
}
