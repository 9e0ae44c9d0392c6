//! A WebSocket connection that yields JSON-RPC messages and accepts them for sending.
//!
//! [`spawn_connection`] hands the socket to one task that owns it for its whole life: it reads
//! frames, turns text frames into [`Message`]s (answering malformed ones itself), writes what the
//! [`Outbound`] handle queues, pings the peer, and closes the socket with a code that says why.
//! One task (rather than a reader and a writer) keeps the close logic in one place.

use std::sync::Arc;
use std::time::Duration;

use futures::{Sink, SinkExt, Stream, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::close;
use crate::frame::{Frame, Utf8Bytes, WsFrame};
use crate::gate::Gate;
use crate::legacy;
use crate::message::{ErrorObject, Message, codes};
use crate::raw::RawMessage;

/// Limits and timers of one connection. Defaults suit a relay ↔ server link.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Largest message accepted, in bytes. A bigger one closes the socket with 1009.
    pub max_message_size: usize,
    /// Messages queued for writing before the peer counts as a slow reader and is cut off.
    pub outbound_capacity: usize,
    /// Messages read ahead of the consumer before reading pauses (back-pressure, not loss).
    pub inbound_capacity: usize,
    /// Deepest nesting of arrays and objects accepted in a message; deeper ones get -32600
    /// before they are parsed.
    pub max_json_depth: usize,
    /// How often to ping; `None` disables heartbeats.
    pub ping_interval: Option<Duration>,
    /// How long past a ping without hearing anything before the peer counts as gone.
    pub pong_timeout: Duration,
    /// When set, connection tasks run on this tracker, so a server shutting down can wait for
    /// every socket to finish sending its close frame before the process exits.
    pub tracker: Option<tokio_util::task::TaskTracker>,
    /// For dialing `wss://`: how the server's certificate is checked (`None` = public roots).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Keep each plain message's text and read only its envelope ([`RawMessage`]) instead of
    /// parsing it whole: for a peer that forwards most messages as they are (the relay), read
    /// with [`Inbound::recv_incoming`]. [`Inbound::recv`] still yields parsed messages.
    pub keep_text: bool,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            // A 10 MB file base64-encoded plus its envelope fits.
            max_message_size: 16 * 1024 * 1024,
            outbound_capacity: 1024,
            inbound_capacity: 64,
            max_json_depth: DEFAULT_JSON_DEPTH,
            ping_interval: Some(Duration::from_secs(25)),
            pong_timeout: Duration::from_secs(10),
            tracker: None,
            tls: None,
            keep_text: false,
        }
    }
}

impl ConnectionConfig {
    /// The tungstenite settings that go with these limits. tungstenite's defaults (128 KiB read
    /// and write buffers, an unbounded write buffer) would cost each idle connection hundreds of
    /// KiB; these keep an idle socket small and bound what a slow peer can make us hold.
    pub fn websocket_config(&self) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(WRITE_BUFFER)
            .max_write_buffer_size(self.max_message_size + WRITE_BUFFER * 2)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }

    /// Applies the same limits to an axum upgrade.
    pub fn apply_to_upgrade(
        &self,
        upgrade: axum::extract::ws::WebSocketUpgrade,
    ) -> axum::extract::ws::WebSocketUpgrade {
        upgrade
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(WRITE_BUFFER)
            .max_write_buffer_size(self.max_message_size + WRITE_BUFFER * 2)
            .max_message_size(self.max_message_size)
            .max_frame_size(self.max_message_size)
    }
}

/// Default for [`ConnectionConfig::max_json_depth`]: serde_json's own recursion limit. The
/// server sets a lower one (`max_json_depth`).
pub const DEFAULT_JSON_DEPTH: usize = 128;

/// Whether `text` nests arrays and objects deeper than `max` (brackets inside strings do not
/// count). One pass over the bytes, before any parsing.
pub fn nesting_exceeds(text: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Read buffer per connection. Small on purpose: most messages are a few hundred bytes, and
/// tungstenite grows the buffer for a big one.
pub const READ_BUFFER: usize = 4 * 1024;
/// Bytes gathered before a write is flushed to the socket.
pub const WRITE_BUFFER: usize = 4 * 1024;
/// How long a close frame may take to go out before the socket is dropped without it (a
/// peer that does not read never takes it).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CloseReason {
    /// The peer closed the socket (with its code, if any).
    ClosedByPeer(Option<u16>),
    /// We closed it with this code and reason.
    ClosedByUs(u16, String),
    /// The socket failed (reset, broken pipe).
    Io(String),
}

/// Why a message could not be queued.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// The connection has ended; nothing more can be sent on it.
    #[error("the connection is closed")]
    Closed,
    /// The outbound queue is full: the peer stopped reading, and the connection is closed.
    #[error(
        "the peer is not reading; its outbound queue is full and the connection is being closed"
    )]
    SlowReader,
}

/// A write's outcome: done (perhaps asking for a close queued behind its frames), failed, or
/// interrupted by a close request or a stall (the close to send).
type WriteOutcome = Result<Result<Option<(u16, String)>, String>, (u16, String)>;

/// Runs a write on the socket. A peer that stops reading blocks a write once the socket
/// buffers fill; a close request (slow reader, session replaced) must still get through, and a
/// write stuck longer than `stall` counts as the peer being gone.
async fn guarded<E: std::fmt::Display>(
    closer: &mut mpsc::Receiver<(u16, String)>,
    closes: &Gate,
    stall: Duration,
    write: impl std::future::Future<Output = Result<Option<(u16, String)>, E>>,
) -> WriteOutcome {
    tokio::select! {
        biased;
        r = write => Ok(r.map_err(|e| e.to_string())),
        // Through the same gate as in `Driver::run`: the close slot remembers one waker, and
        // it must stay the gate's.
        Some(request) = closes.pass(std::future::poll_fn(|cx| closer.poll_recv(cx))) => Err(request),
        _ = tokio::time::sleep(stall) => Err((
            close::HEARTBEAT_TIMEOUT,
            "the peer stopped reading".to_owned(),
        )),
    }
}

/// Frames written with one flush at most (see `Driver::write_queued`).
const WRITE_BATCH: usize = 64;

enum Command {
    Send(Utf8Bytes),
    // Boxed: closing is rare, and every queue slot is as big as the biggest command.
    Close(Box<(u16, String)>),
}

/// Queues messages for a connection. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    commands: mpsc::Sender<Command>,
    // Closing must get through even when the queue is full, so it has its own slot.
    closer: mpsc::Sender<(u16, String)>,
    id: Arc<()>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").finish_non_exhaustive()
    }
}

impl Outbound {
    /// Queues a message without waiting. A full queue means the peer is not reading: the
    /// connection is closed with [`close::SLOW_READER`] so it cannot hold up anyone else.
    pub fn send(&self, message: &Message) -> Result<(), SendError> {
        self.send_text(message.to_text())
    }

    /// Queues an already-serialised message: a `String` (moved, not copied) or a shared
    /// [`Utf8Bytes`] that many connections send without a copy each (a channel event).
    pub fn send_text(&self, text: impl Into<Utf8Bytes>) -> Result<(), SendError> {
        match self.commands.try_send(Command::Send(text.into())) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Closed),
            Err(mpsc::error::TrySendError::Full(_)) => {
                let _ = self.closer.try_send((
                    close::SLOW_READER,
                    "outbound queue full: the client is not reading its messages".into(),
                ));
                Err(SendError::SlowReader)
            }
        }
    }

    /// Queues a message, waiting for room. For producers that can afford to wait (a relay
    /// forwarding its agent's requests), never for fan-out.
    pub async fn send_wait(&self, message: &Message) -> Result<(), SendError> {
        self.commands
            .send(Command::Send(message.to_text().into()))
            .await
            .map_err(|_| SendError::Closed)
    }

    /// [`Outbound::send_wait`] for an already-serialised message (a large one built off the
    /// caller's loop, say).
    pub async fn send_text_wait(&self, text: String) -> Result<(), SendError> {
        self.commands
            .send(Command::Send(text.into()))
            .await
            .map_err(|_| SendError::Closed)
    }

    /// Asks the connection to close with this code after what is queued before it.
    pub fn close(&self, code: u16, reason: impl Into<String>) {
        let reason = reason.into();
        if self
            .commands
            .try_send(Command::Close(Box::new((code, reason.clone()))))
            .is_err()
        {
            let _ = self.closer.try_send((code, reason));
        }
    }

    /// Whether the connection task has ended.
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    /// Whether two handles queue to the same connection.
    pub fn same_connection(&self, other: &Outbound) -> bool {
        Arc::ptr_eq(&self.id, &other.id)
    }
}

/// A message read from a connection: parsed, or (with [`ConnectionConfig::keep_text`]) kept as
/// its text with its envelope read.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// Parsed whole.
    Message(Message),
    /// Its text, with kind, id and method (see [`RawMessage`]).
    Raw(RawMessage),
}

/// Messages read from a connection, in order.
pub struct Inbound {
    // Boxed: tokio allocates a channel's first block of 32 slots up front, and an idle
    // connection should not hold 32 × 96 bytes for messages it is not receiving.
    messages: mpsc::Receiver<Box<Incoming>>,
    closed: watch::Receiver<Option<CloseReason>>,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound").finish_non_exhaustive()
    }
}

impl Inbound {
    /// The next message; `None` once the connection has ended.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            match *self.messages.recv().await? {
                Incoming::Message(m) => return Some(m),
                Incoming::Raw(raw) => match raw.to_message() {
                    Ok(m) => return Some(m),
                    // Cannot happen: the envelope was read from valid JSON-RPC.
                    Err(e) => tracing::warn!("dropping a message that no longer parses: {e}"),
                },
            }
        }
    }

    /// The next message as it was read: kept as text when the connection keeps text
    /// ([`ConnectionConfig::keep_text`]) and the message is plain; `None` once the connection
    /// has ended.
    pub async fn recv_incoming(&mut self) -> Option<Incoming> {
        self.messages.recv().await.map(|m| *m)
    }

    /// Why the connection ended, once it has.
    pub async fn close_reason(&mut self) -> CloseReason {
        match self.closed.wait_for(Option::is_some).await {
            Ok(r) => r.clone().unwrap_or(CloseReason::Io("unknown".into())),
            Err(_) => CloseReason::Io("connection task ended".into()),
        }
    }
}

/// Starts the task that owns `socket`. It ends when the socket closes, when
/// [`Outbound::close`] is called, or when every [`Outbound`] and the [`Inbound`] are dropped.
pub fn spawn_connection<S, M, E>(socket: S, config: ConnectionConfig) -> (Outbound, Inbound)
where
    S: Stream<Item = Result<M, E>> + Sink<M> + Send + Unpin + 'static,
    <S as Sink<M>>::Error: std::fmt::Display,
    M: WsFrame,
    E: std::error::Error + Send + Sync + 'static,
{
    let (commands_tx, commands_rx) = mpsc::channel(config.outbound_capacity.max(1));
    let (closer_tx, closer_rx) = mpsc::channel(1);
    let (inbound_tx, inbound_rx) = mpsc::channel(config.inbound_capacity.max(1));
    let (closed_tx, closed_rx) = watch::channel(None);
    let driver = Driver {
        socket,
        config,
        inbound: inbound_tx,
        commands: commands_rx,
        closer: closer_rx,
        reads: Gate::new(),
        closes: Gate::new(),
        ticks: Gate::new(),
        last_heard: Instant::now(),
        _frame: std::marker::PhantomData,
    };
    let tracker = driver.config.tracker.clone();
    let task = async move {
        let reason = driver.run().await;
        tracing::debug!(?reason, "connection ended");
        let _ = closed_tx.send(Some(reason));
    };
    match tracker {
        Some(tracker) => drop(tracker.spawn(task)),
        None => drop(tokio::spawn(task)),
    }
    (
        Outbound {
            commands: commands_tx,
            closer: closer_tx,
            id: Arc::new(()),
        },
        Inbound {
            messages: inbound_rx,
            closed: closed_rx,
        },
    )
}

struct Driver<S, M> {
    socket: S,
    config: ConnectionConfig,
    inbound: mpsc::Sender<Box<Incoming>>,
    commands: mpsc::Receiver<Command>,
    closer: mpsc::Receiver<(u16, String)>,
    /// The socket's reads, the close slot and the heartbeat are polled only after they woke
    /// (see [`Gate`]): a task woken for an outbound message does not touch them.
    reads: Gate,
    closes: Gate,
    ticks: Gate,
    last_heard: Instant,
    _frame: std::marker::PhantomData<fn() -> M>,
}

enum Step {
    Continue,
    End(CloseReason),
}

impl<S, M, E> Driver<S, M>
where
    S: Stream<Item = Result<M, E>> + Sink<M> + Send + Unpin + 'static,
    <S as Sink<M>>::Error: std::fmt::Display,
    M: WsFrame,
    E: std::error::Error + Send + Sync + 'static,
{
    async fn run(mut self) -> CloseReason {
        let period = self
            .config
            .ping_interval
            .unwrap_or(Duration::from_secs(3600));
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let step = tokio::select! {
                biased;
                Some((code, reason)) = self.closes.pass(std::future::poll_fn(|cx| self.closer.poll_recv(cx))) => {
                    self.close(code, reason).await
                }
                frame = self.reads.pass(self.socket.next()) => self.on_frame(frame).await,
                command = self.commands.recv() => match command {
                    Some(Command::Send(text)) => self.write_queued(text).await,
                    Some(Command::Close(close)) => {
                        let (code, reason) = *close;
                        self.close(code, reason).await
                    }
                    // Every sender is gone: nobody can talk on this connection any more.
                    None => self.close(close::NORMAL, "connection no longer used".into()).await,
                },
                _ = self.ticks.pass(std::future::poll_fn(|cx| ticker.poll_tick(cx))), if self.config.ping_interval.is_some() => {
                    self.heartbeat().await
                }
            };
            if let Step::End(reason) = step {
                return reason;
            }
        }
    }

    async fn heartbeat(&mut self) -> Step {
        let period = self.config.ping_interval.unwrap_or_default();
        if self.last_heard.elapsed() > period + self.config.pong_timeout {
            return self
                .close(close::HEARTBEAT_TIMEOUT, "no answer to pings".into())
                .await;
        }
        self.write(Frame::Ping(bytes::Bytes::new())).await
    }

    async fn write(&mut self, frame: Frame) -> Step {
        let stall = self.stall_limit();
        let socket = &mut self.socket;
        let outcome = guarded(&mut self.closer, &self.closes, stall, async move {
            socket.send(M::from_frame(frame)).await.map(|()| None)
        })
        .await;
        self.after_write(outcome).await
    }

    /// Writes `first` and whatever else is already queued behind it (up to [`WRITE_BATCH`]
    /// frames) with one flush: under load, one `send` system call carries many answers
    /// instead of one each. A close queued among them is honoured after the frames before it.
    async fn write_queued(&mut self, first: Utf8Bytes) -> Step {
        let stall = self.stall_limit();
        let (socket, commands) = (&mut self.socket, &mut self.commands);
        let outcome = guarded(&mut self.closer, &self.closes, stall, async move {
            socket.feed(M::from_frame(Frame::Text(first))).await?;
            let mut close_after = None;
            for _ in 1..WRITE_BATCH {
                match commands.try_recv() {
                    Ok(Command::Send(text)) => {
                        socket.feed(M::from_frame(Frame::Text(text))).await?
                    }
                    Ok(Command::Close(close)) => {
                        close_after = Some(*close);
                        break;
                    }
                    Err(_) => break,
                }
            }
            socket.flush().await?;
            Ok::<_, <S as Sink<M>>::Error>(close_after)
        })
        .await;
        self.after_write(outcome).await
    }

    /// How long a write may be stuck before the peer counts as gone: as long as a silent
    /// peer is allowed.
    fn stall_limit(&self) -> Duration {
        self.config.ping_interval.unwrap_or(Duration::from_secs(60)) + self.config.pong_timeout
    }

    async fn after_write(&mut self, outcome: WriteOutcome) -> Step {
        match outcome {
            Ok(Ok(None)) => Step::Continue,
            Ok(Ok(Some((code, reason)))) => self.close(code, reason).await,
            Ok(Err(e)) => Step::End(CloseReason::Io(e)),
            Err((code, reason)) => self.close(code, reason).await,
        }
    }

    /// Sends the close frame (giving up after [`CLOSE_TIMEOUT`] when the peer is not reading)
    /// and ends the connection.
    async fn close(&mut self, code: u16, reason: String) -> Step {
        let frame = M::from_frame(Frame::Close(Some((code, reason.clone()))));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let _ = self.socket.send(frame).await;
            let _ = self.socket.close().await;
        })
        .await;
        Step::End(CloseReason::ClosedByUs(code, reason))
    }

    async fn reply_error(&mut self, id: Value, error: ErrorObject) -> Step {
        self.write(Frame::Text(Message::error(id, error).to_text().into()))
            .await
    }

    async fn on_frame(&mut self, frame: Option<Result<M, E>>) -> Step {
        let frame = match frame {
            None => return Step::End(CloseReason::ClosedByPeer(None)),
            Some(Err(e)) => return self.on_read_error(e).await,
            Some(Ok(m)) => m,
        };
        self.last_heard = Instant::now();
        match frame.into_frame() {
            Some(Frame::Text(text)) => self.on_text(text).await,
            Some(Frame::Binary(_)) => {
                self.reply_error(
                    Value::Null,
                    ErrorObject::new(codes::INVALID_REQUEST, "binary frames are not supported")
                        .with_suggestion("send each JSON-RPC message as one UTF-8 text frame"),
                )
                .await
            }
            Some(Frame::Close(code)) => Step::End(CloseReason::ClosedByPeer(code.map(|c| c.0))),
            // Pongs only refresh `last_heard`; the libraries answer pings themselves.
            Some(Frame::Ping(_) | Frame::Pong(_)) | None => Step::Continue,
        }
    }

    async fn on_read_error(&mut self, e: E) -> Step {
        if is_capacity_error(&e) {
            metrics::counter!("codeflow_errors_total", "kind" => "too_big").increment(1);
            let limit = self.config.max_message_size;
            return self
                .close(
                    close::TOO_BIG,
                    format!("message larger than the {limit}-byte limit"),
                )
                .await;
        }
        Step::End(CloseReason::Io(e.to_string()))
    }

    async fn deliver(&mut self, incoming: Incoming) -> Step {
        match self.inbound.send(Box::new(incoming)).await {
            Ok(()) => Step::Continue,
            Err(_) => {
                self.close(close::NORMAL, "no longer listening".into())
                    .await
            }
        }
    }

    async fn on_text(&mut self, text: Utf8Bytes) -> Step {
        let max_depth = self.config.max_json_depth;
        let too_deep = nesting_exceeds(&text, max_depth);
        if self.config.keep_text
            && !too_deep
            && let Some(raw) = RawMessage::parse(text.clone())
        {
            return self.deliver(Incoming::Raw(raw)).await;
        }
        if too_deep {
            metrics::counter!("codeflow_errors_total", "kind" => "json_depth").increment(1);
            return self
                .reply_error(
                    Value::Null,
                    ErrorObject::new(
                        codes::INVALID_REQUEST,
                        format!(
                            "the message nests arrays and objects deeper than {max_depth} levels"
                        ),
                    )
                    .with_suggestion("flatten the message; no CodeFlow method needs that depth"),
                )
                .await;
        }
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                return self
                    .reply_error(
                        Value::Null,
                        ErrorObject::new(codes::PARSE_ERROR, format!("frame is not JSON: {e}"))
                            .with_suggestion("send one JSON-RPC 2.0 object per text frame"),
                    )
                    .await;
            }
        };
        if value.is_array() {
            return self
                .reply_error(
                    Value::Null,
                    ErrorObject::new(codes::INVALID_REQUEST, "JSON-RPC batches are not supported")
                        .with_suggestion("send each message in its own frame"),
                )
                .await;
        }
        let id = value.get("id").cloned().unwrap_or(Value::Null);
        match Message::from_value(legacy::normalise(value)) {
            Ok(message) => self.deliver(Incoming::Message(message)).await,
            Err(e) => {
                self.reply_error(
                    id,
                    ErrorObject::new(
                        codes::INVALID_REQUEST,
                        format!("invalid JSON-RPC message: {e}"),
                    ),
                )
                .await
            }
        }
    }
}

/// Whether a read error means "message or frame too big". axum wraps tungstenite's error, so
/// walk the source chain.
fn is_capacity_error(e: &(dyn std::error::Error + 'static)) -> bool {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(WsError::Capacity(_)) = err.downcast_ref::<WsError>() {
            return true;
        }
        current = err.source();
    }
    false
}

#[cfg(test)]
mod depth_tests {
    use super::nesting_exceeds;

    #[test]
    fn counts_brackets_outside_strings_only() {
        assert!(!nesting_exceeds(r#"{"a":[1,{"b":2}]}"#, 3));
        assert!(nesting_exceeds(r#"{"a":[1,{"b":[2]}]}"#, 3));
        assert!(!nesting_exceeds(r#"{"a":"[[[[[[[[{{{{{"}"#, 1));
        assert!(!nesting_exceeds(r#"{"a":"\"[[[[["}"#, 1));
        assert!(nesting_exceeds(&"[".repeat(100), 64));
        assert!(!nesting_exceeds("]]]]]]", 1));
    }
}

#[cfg(test)]
mod queue_tests {
    #[test]
    fn a_queued_command_is_no_bigger_than_its_text() {
        // Each connection's queue allocates its slots in blocks; a bigger command grows every
        // connection that has sent anything (P3, idle sessions).
        assert_eq!(
            std::mem::size_of::<super::Command>(),
            std::mem::size_of::<super::Utf8Bytes>()
        );
    }
}
