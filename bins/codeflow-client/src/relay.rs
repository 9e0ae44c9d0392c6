//! The relay loop: the agent's MCP on stdio on one side, the server's WebSocket on the other.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codeflow_transport::{ConnectionConfig, ErrorObject, Inbound, Message, Outbound, close, codes};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::cli::Resolved;
use crate::files::LocalFiles;
use crate::stdio::{self, FromAgent};
use crate::upstream::{self, Established, HandshakeMemory, Reestablished};

/// Most agent messages held while the server is unreachable.
const OFFLINE_QUEUE: usize = 1024;

struct Relay {
    target: Resolved,
    config: ConnectionConfig,
    memory: Arc<Mutex<HandshakeMemory>>,
    to_agent: mpsc::Sender<Message>,
    upstream: Option<(Outbound, Inbound)>,
    reconnecting: Option<tokio::task::JoinHandle<Established>>,
    /// Agent requests sent upstream and not yet answered, kept whole so they can be sent again
    /// after a resume (the server answers a re-send from its memory, never runs it twice).
    in_flight: HashMap<Value, InFlight>,
    /// Numbers requests in sending order, so re-sends keep the agent's order.
    sent_count: u64,
    /// Since when the server has been unreachable.
    disconnected_since: Option<Instant>,
    /// Agent messages waiting for a connection, with when they arrived.
    waiting: VecDeque<(Instant, Message)>,
    initialize_id: Option<Value>,
    initialized: bool,
    tools_cache: Option<Value>,
    files: LocalFiles,
    /// The server has been sent a manifest for the current session: file changes flow.
    live: bool,
    syncs: u64,
    /// Read-your-writes without stalling the loop: agent messages held until a watcher flush
    /// that started after they arrived has completed, in arrival order.
    held: VecDeque<(u64, Message)>,
    flushes_started: u64,
    flushes_done: u64,
    flushing: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

/// An agent request sent upstream and not answered yet.
struct InFlight {
    method: String,
    message: Message,
    order: u64,
}

/// Prefix of ids the relay uses for its own requests; their answers stay in the relay.
const OWN_ID_PREFIX: &str = "r:";

pub async fn run(target: Resolved) -> anyhow::Result<()> {
    let (to_agent, stdout_task) = stdio::spawn_stdout();
    let mut from_agent = stdio::spawn_stdin(to_agent.clone());
    // Dial while the watcher scans the tree: the two do not depend on each other.
    let config = target.connection_config();
    let memory: Arc<Mutex<HandshakeMemory>> = Arc::default();
    let dialing = spawn_establish(&target, &config, &memory);
    let files = match LocalFiles::start(&target.root, target.cache_dir.clone()).await {
        Ok(files) => files,
        Err(e) => {
            dialing.abort();
            return Err(e);
        }
    };
    let mut relay = Relay {
        target,
        config,
        memory,
        to_agent,
        upstream: None,
        reconnecting: Some(dialing),
        in_flight: HashMap::new(),
        sent_count: 0,
        disconnected_since: Some(Instant::now()),
        waiting: VecDeque::new(),
        initialize_id: None,
        initialized: false,
        tools_cache: None,
        files,
        live: false,
        syncs: 0,
        held: VecDeque::new(),
        flushes_started: 0,
        flushes_done: 0,
        flushing: None,
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            m = from_agent.recv() => match m {
                Some(FromAgent::Message(m)) => relay.on_agent_message(m).await,
                Some(FromAgent::Eof) | None => break,
            },
            m = next_upstream(&mut relay.upstream) => match m {
                Some(m) => relay.on_server_message(m).await,
                None => relay.lost_connection(),
            },
            established = join_reconnect(&mut relay.reconnecting) => relay.connected(established).await,
            Some(change) = relay.files.changes.recv(), if relay.live && relay.upstream.is_some() => {
                relay.send_change(change);
            }
            () = flush_done(&mut relay.flushing) => relay.flush_completed().await,
            _ = ticker.tick() => relay.expire_waiting().await,
        }
    }
    if let Some((outbound, _)) = &relay.upstream {
        outbound.close(close::NORMAL, "the agent closed the relay");
    }
    if let Some(task) = relay.reconnecting.take() {
        task.abort();
    }
    drop(relay);
    // Let queued replies reach the agent and the close frame reach the server.
    if let Some(thread) = stdout_task {
        let joined = tokio::task::spawn_blocking(move || thread.join());
        let _ = tokio::time::timeout(Duration::from_secs(2), joined).await;
    }
    Ok(())
}

async fn flush_done(
    flushing: &mut Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
) {
    match flushing.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn next_upstream(upstream: &mut Option<(Outbound, Inbound)>) -> Option<Message> {
    match upstream {
        Some((_, inbound)) => inbound.recv().await,
        None => std::future::pending().await,
    }
}

async fn join_reconnect(
    task: &mut Option<tokio::task::JoinHandle<Established>>,
) -> Option<Established> {
    let Some(handle) = task.as_mut() else {
        return std::future::pending().await;
    };
    let outcome = handle.await.ok();
    *task = None;
    outcome
}

impl Relay {
    fn start_connecting(&mut self) {
        self.reconnecting = Some(spawn_establish(&self.target, &self.config, &self.memory));
    }

    async fn to_agent(&self, message: Message) {
        let _ = self.to_agent.send(message).await;
    }

    async fn connected(&mut self, established: Option<Established>) {
        let Some(Established {
            outbound,
            inbound,
            early,
            kind,
        }) = established
        else {
            self.start_connecting();
            return;
        };
        tracing::info!(?kind, "connected to {}", self.target.server);
        if kind == Reestablished::Fresh {
            // The old session is gone with whatever it was doing; its calls cannot be answered.
            // (Running them again on the new session could run a write twice.)
            for (id, InFlight { method, .. }) in self.in_flight.drain() {
                let error = ErrorObject::new(
                    codes::UNREACHABLE,
                    format!(
                        "the server lost this `{method}` call (it restarted or the session expired)"
                    ),
                )
                .with_suggestion("retry the call");
                let _ = self.to_agent.send(Message::error(id, error)).await;
            }
        }
        self.upstream = Some((outbound, inbound));
        if kind == Reestablished::Fresh {
            // A new session knows nothing of this project's files yet.
            self.live = false;
            self.start_sync(false).await;
        } else if kind == Reestablished::Resumed && self.syncs > 0 {
            // What this relay wrote just before the socket died (file changes, or the manifest
            // itself) may never have reached the server. A manifest of the tree as it is now
            // heals that: the server compares hashes and fetches only what differs.
            self.start_sync(false).await;
        }
        self.disconnected_since = None;
        // Answers the server kept while we were away come first.
        for m in early {
            self.on_server_message(m).await;
        }
        if kind == Reestablished::Resumed {
            self.resend_in_flight().await;
        }
        while let Some((_, m)) = self.waiting.pop_front() {
            self.send_upstream(m).await;
        }
    }

    /// After a resume: sends every request still unanswered again, in the order first sent.
    /// Their answers may have died with the old socket; the server answers each re-send from
    /// its memory (or once the original finishes), so nothing runs twice and answers that
    /// arrive twice are dropped in [`Self::on_server_message`].
    async fn resend_in_flight(&mut self) {
        let mut again: Vec<(u64, Message)> = self
            .in_flight
            .values()
            .map(|f| (f.order, f.message.clone()))
            .collect();
        if again.is_empty() {
            return;
        }
        again.sort_by_key(|(order, _)| *order);
        tracing::info!(
            "re-sending {} unanswered request(s) after the resume",
            again.len()
        );
        let Some(outbound) = self.upstream.as_ref().map(|(o, _)| o.clone()) else {
            return;
        };
        for (_, message) in again {
            if outbound.send_wait(&message).await.is_err() {
                // The new socket died too: they go again after the next resume.
                return;
            }
        }
    }

    /// Sends `server/syncManifest`; from then on watcher changes flow to the server, in order
    /// behind the manifest.
    async fn start_sync(&mut self, initial: bool) {
        self.syncs += 1;
        let id = Value::String(format!("{OWN_ID_PREFIX}sync:{}", self.syncs));
        // Changes the watcher hands over while the manifest is taken: sent after it. Those
        // already in the manifest are re-applied harmlessly (each carries its path's whole new
        // state, in order); none is lost.
        let mut caught = Vec::new();
        let text = match initial.then(|| self.files.take_initial_text()).flatten() {
            Some(params) => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"server/syncManifest","params":{params}}}"#
            ),
            None => {
                let manifest = if initial {
                    self.files.initial_manifest()
                } else {
                    let snapshot = self.files.current_manifest();
                    tokio::pin!(snapshot);
                    let taken = loop {
                        tokio::select! {
                            biased;
                            manifest = &mut snapshot => break manifest,
                            Some(change) = self.files.changes.recv() => caught.push(change),
                        }
                    };
                    taken.unwrap_or_else(|e| {
                        tracing::warn!("no current manifest ({e}); sending the starting one");
                        self.files.initial_manifest()
                    })
                };
                Message::request(id, "server/syncManifest", manifest).to_text()
            }
        };
        if let Some((outbound, _)) = &self.upstream
            && outbound.send_text_wait(text).await.is_ok()
        {
            self.live = true;
            for change in caught {
                self.send_change(change);
            }
        }
    }

    fn send_change(&self, change: codeflow_file_stream::FileChanged) {
        let Some((outbound, _)) = &self.upstream else {
            return;
        };
        match serde_json::to_value(&change) {
            Ok(params) => {
                let _ = outbound.send(&Message::notification("server/fileChanged", params));
            }
            Err(e) => tracing::warn!("cannot encode a file change: {e}"),
        }
    }

    /// Holds `message` until a watcher flush that starts now (or after the flush already
    /// running) completes, so every change on disk before the message reaches the server first.
    /// Pipelined calls share flushes; the loop keeps serving meanwhile.
    fn hold_for_flush(&mut self, message: Message) {
        let needed = if self.flushing.is_some() {
            // The running flush may have started before this message's writes.
            self.flushes_started + 1
        } else {
            self.start_flush();
            self.flushes_started
        };
        self.held.push_back((needed, message));
    }

    fn start_flush(&mut self) {
        self.flushes_started += 1;
        let flush = self.files.start_flush();
        self.flushing = Some(Box::pin(async move {
            if let Err(e) = flush.await {
                tracing::warn!("watcher flush failed: {e}");
            }
        }));
    }

    async fn flush_completed(&mut self) {
        self.flushing = None;
        self.flushes_done = self.flushes_started;
        // The flush put its changes in the queue before completing: send them first.
        while let Ok(change) = self.files.changes.try_recv() {
            self.send_change(change);
        }
        while let Some((needed, _)) = self.held.front() {
            if *needed > self.flushes_done {
                break;
            }
            if let Some((_, message)) = self.held.pop_front() {
                self.send_or_wait(message).await;
            }
        }
        if !self.held.is_empty() {
            self.start_flush();
        }
    }

    fn lost_connection(&mut self) {
        tracing::warn!(
            "lost the connection to {}; reconnecting",
            self.target.server
        );
        self.upstream = None;
        self.disconnected_since = Some(Instant::now());
        // An unanswered `initialize` died with the socket: send it again on the next one.
        if let Some(id) = self.initialize_id.clone()
            && self.in_flight.remove(&id).is_some()
            && let Some(params) = self.memory.lock().init_params.clone()
        {
            self.waiting
                .push_front((Instant::now(), Message::request(id, "initialize", params)));
        }
        self.start_connecting();
    }

    async fn expire_waiting(&mut self) {
        let wait = self.target.offline_wait;
        while let Some((since, _)) = self.waiting.front() {
            if since.elapsed() < wait {
                break;
            }
            if let Some((_, m)) = self.waiting.pop_front()
                && let Message::Request { id, method, .. } = m
            {
                self.to_agent(unreachable(id, &method, &self.target.server, wait))
                    .await;
            }
        }
        // Calls sent before the link died wait as long for a resume; then their outcome is
        // unknown, and the agent is told so instead of waiting forever.
        if self
            .disconnected_since
            .is_some_and(|since| since.elapsed() >= wait)
            && !self.in_flight.is_empty()
        {
            let mut lost: Vec<(Value, InFlight)> = self.in_flight.drain().collect();
            lost.sort_by_key(|(_, f)| f.order);
            for (id, f) in lost {
                let error = ErrorObject::new(
                    codes::UNREACHABLE,
                    format!(
                        "server unreachable, retrying: the connection was lost while `{}` was running and has not come back within {} s; the call may or may not have completed",
                        f.method,
                        wait.as_secs()
                    ),
                )
                .with_suggestion(
                    "check that codeflow-server is running (codeflow-client check); check the call's effect before retrying it",
                );
                self.to_agent(Message::error(id, error)).await;
            }
        }
    }

    async fn on_agent_message(&mut self, message: Message) {
        match &message {
            Message::Request { id, method, params } => {
                let id = id.clone();
                match method.as_str() {
                    "initialize" => {
                        let params = upstream::augment_initialize(&self.target, params.clone());
                        self.memory.lock().init_params = Some(params.clone());
                        self.initialize_id = Some(id.clone());
                        self.send_or_wait(Message::request(id, "initialize", params))
                            .await;
                    }
                    // Probes from newer MCP clients: answer here so they fall back to
                    // `initialize` without costing the server connection.
                    "server/discover" => {
                        self.to_agent(Message::error(
                            id,
                            ErrorObject::new(
                                codes::METHOD_NOT_FOUND,
                                "method `server/discover` not found",
                            ),
                        ))
                        .await;
                    }
                    "ping" if self.upstream.is_none() => {
                        self.to_agent(Message::response(id, serde_json::json!({})))
                            .await;
                    }
                    "tools/list" if self.upstream.is_none() && self.tools_cache.is_some() => {
                        let cached = self.tools_cache.clone().unwrap_or_default();
                        self.to_agent(Message::response(id, cached)).await;
                    }
                    m if !self.initialized && self.initialize_id.is_none() => {
                        let error = ErrorObject::new(
                            codes::NOT_INITIALIZED,
                            format!("`{m}` sent before initialize"),
                        )
                        .with_suggestion("send initialize first");
                        self.to_agent(Message::error(id, error)).await;
                    }
                    "tools/call" if self.live && self.upstream.is_some() => {
                        self.hold_for_flush(message);
                    }
                    _ if !self.held.is_empty() => {
                        // Keep the agent's order behind held calls.
                        let needed = self.held.back().map_or(0, |(n, _)| *n);
                        self.held.push_back((needed, message));
                    }
                    _ => self.send_or_wait(message).await,
                }
            }
            Message::Notification { method, .. } => {
                if method == "notifications/initialized" {
                    self.initialized = true;
                }
                if self.held.is_empty() {
                    self.send_or_wait(message).await;
                } else {
                    let needed = self.held.back().map_or(0, |(n, _)| *n);
                    self.held.push_back((needed, message));
                }
            }
            // Answers to the server's own requests (e.g. roots/list): only meaningful now.
            _ => {
                if let Some((outbound, _)) = &self.upstream {
                    let _ = outbound.send_wait(&message).await;
                }
            }
        }
    }

    async fn send_or_wait(&mut self, message: Message) {
        if self.upstream.is_some() {
            self.send_upstream(message).await;
        } else if self.waiting.len() < OFFLINE_QUEUE {
            self.waiting.push_back((Instant::now(), message));
        } else if let Message::Request { id, method, .. } = message {
            let wait = self.target.offline_wait;
            self.to_agent(unreachable(id, &method, &self.target.server, wait))
                .await;
        }
    }

    async fn send_upstream(&mut self, message: Message) {
        let Some((outbound, _)) = &self.upstream else {
            self.waiting.push_back((Instant::now(), message));
            return;
        };
        if let Message::Request { id, method, .. } = &message {
            self.sent_count += 1;
            self.in_flight.insert(
                id.clone(),
                InFlight {
                    method: method.clone(),
                    message: message.clone(),
                    order: self.sent_count,
                },
            );
        }
        if outbound.send_wait(&message).await.is_err() {
            // The socket died under us; the message goes out after the reconnect.
            if let Some(id) = message.id() {
                self.in_flight.remove(id);
            }
            self.waiting.push_back((Instant::now(), message));
        }
    }

    async fn on_server_message(&mut self, message: Message) {
        match message {
            Message::Request { id, method, params } if method.starts_with("client/") => {
                if let Some((outbound, _)) = &self.upstream {
                    self.files.serve(outbound.clone(), id, method, params);
                }
            }
            Message::Response { ref id, ref result } if is_own(id) => {
                tracing::info!("sync done: {result}");
            }
            Message::Error { ref id, ref error } if is_own(id) => {
                tracing::warn!("sync failed: {error}");
            }
            // A second answer to the same request (a re-send crossed the original answer):
            // the agent already has it.
            Message::Response { ref id, .. } | Message::Error { ref id, .. }
                if !self.in_flight.contains_key(id) =>
            {
                tracing::debug!(%id, "dropping a repeated answer");
            }
            Message::Response { ref id, ref result } => {
                let method = self.in_flight.remove(id).map(|f| f.method);
                let initialized_now = self.initialize_id.as_ref() == Some(id);
                if initialized_now {
                    self.initialize_id = None;
                    let sid = result
                        .get("sessionId")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    self.memory.lock().session_id = sid;
                }
                if method.as_deref() == Some("tools/list") {
                    self.tools_cache = Some(result.clone());
                }
                self.to_agent(message).await;
                if initialized_now && !self.live {
                    self.start_sync(true).await;
                }
            }
            Message::Error { ref id, .. } => {
                self.in_flight.remove(id);
                if self.initialize_id.as_ref() == Some(id) {
                    self.initialize_id = None;
                    self.memory.lock().init_params = None;
                }
                self.to_agent(message).await;
            }
            other => self.to_agent(other).await,
        }
    }
}

fn is_own(id: &Value) -> bool {
    id.as_str().is_some_and(|s| s.starts_with(OWN_ID_PREFIX))
}

fn unreachable(id: Value, method: &str, server: &str, wait: Duration) -> Message {
    Message::error(
        id,
        ErrorObject::new(
            codes::UNREACHABLE,
            format!(
                "server unreachable, retrying: `{method}` could not reach {server} within {} s",
                wait.as_secs()
            ),
        )
        .with_suggestion(
            "check that codeflow-server is running (codeflow-client check), then retry",
        ),
    )
}

/// Starts dialling the server (with backoff, until it answers) on its own task.
fn spawn_establish(
    target: &Resolved,
    config: &ConnectionConfig,
    memory: &Arc<Mutex<HandshakeMemory>>,
) -> tokio::task::JoinHandle<Established> {
    let (target, config, memory) = (target.clone(), config.clone(), memory.clone());
    tokio::spawn(async move { upstream::establish(&target, &config, &memory).await })
}
