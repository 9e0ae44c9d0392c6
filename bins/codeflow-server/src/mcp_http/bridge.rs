//! One `/mcp` session: an in-memory connection into the same session layer `/ws` uses.
//!
//! The HTTP client's messages go through [`codeflow_session::serve_socket`] exactly as a
//! WebSocket client's would (handshake, token and rights, rate limits, request memory), over a
//! pair of in-process channels instead of a socket. The bridge numbers each request itself
//! (`h:1`, `h:2`, …) so ids the client reuses can never meet the session's request memory, and
//! hands each answer back to the HTTP request waiting for it.
//!
//! The client does not serve files (no `fileStream`), so tools that write get the session's
//! "no relay to write back to" error; notifications the server sends the session (log
//! messages, channel publications) have no stream to go to and are dropped.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::ws::Message as Frame;
use codeflow_session::{SessionRegistry, SocketContext, serve_socket};
use codeflow_transport::{ConnectionConfig, ErrorObject, Message, codes, spawn_connection};
use futures::channel::mpsc;
use futures::{Sink, SinkExt, Stream, StreamExt};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::oneshot;

/// Frames queued each way between the bridge and the session layer.
const QUEUE: usize = 256;

/// The session layer's end of the in-memory connection.
struct MemorySocket {
    incoming: mpsc::Receiver<Frame>,
    outgoing: mpsc::Sender<Frame>,
}

impl Stream for MemorySocket {
    type Item = Result<Frame, std::convert::Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.incoming)
            .poll_next(cx)
            .map(|f| f.map(Ok))
    }
}

impl Sink<Frame> for MemorySocket {
    type Error = mpsc::SendError;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.outgoing).poll_ready(cx)
    }
    fn start_send(mut self: Pin<&mut Self>, item: Frame) -> Result<(), Self::Error> {
        Pin::new(&mut self.outgoing).start_send(item)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.outgoing).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.outgoing).poll_close(cx)
    }
}

type Waiting = Arc<Mutex<Option<HashMap<String, oneshot::Sender<Message>>>>>;

/// The HTTP side of one in-memory session.
pub struct Bridge {
    to_session: mpsc::Sender<Frame>,
    /// Requests waiting for their answer, by the bridge's id; `None` once the session ended.
    waiting: Waiting,
    next_id: AtomicU64,
    /// The token the session was opened with: later requests must carry the same one.
    pub token: Option<String>,
    /// The CodeFlow session behind it (from `initialize`'s answer), to close it with the bridge.
    pub session_id: Mutex<Option<String>>,
    pub last_used: Mutex<Instant>,
    /// The connection slot this session holds (`max_connections`), released with it.
    _admission: codeflow_session::Admission,
}

impl Bridge {
    /// Starts a session task on an in-memory connection.
    pub fn start(
        registry: Arc<SessionRegistry>,
        mut config: ConnectionConfig,
        context: SocketContext,
        admission: codeflow_session::Admission,
    ) -> Arc<Self> {
        let (to_session, session_in) = mpsc::channel(QUEUE);
        let (session_out, mut from_session) = mpsc::channel(QUEUE);
        // Nothing between the two ends can go quiet: no heartbeats.
        config.ping_interval = None;
        let token = context.header_token.clone();
        let (outbound, inbound) = spawn_connection(
            MemorySocket {
                incoming: session_in,
                outgoing: session_out,
            },
            config,
        );
        tokio::spawn(serve_socket(registry, outbound, inbound, context));
        let waiting: Waiting = Arc::new(Mutex::new(Some(HashMap::new())));
        let bridge = Arc::new(Self {
            to_session: to_session.clone(),
            waiting: waiting.clone(),
            next_id: AtomicU64::new(1),
            token,
            session_id: Mutex::new(None),
            last_used: Mutex::new(Instant::now()),
            _admission: admission,
        });
        // The reader: answers to their requests, pings answered, the rest dropped. It ends
        // with the connection (the session layer closed it, or every sender is gone).
        let mut replies = to_session;
        tokio::spawn(async move {
            while let Some(frame) = from_session.next().await {
                match frame {
                    Frame::Text(text) => match serde_json::from_str::<Value>(text.as_str())
                        .map_err(|_| ())
                        .and_then(|v| Message::from_value(v).map_err(|_| ()))
                    {
                        Ok(m @ (Message::Response { .. } | Message::Error { .. })) => {
                            let key = m.id().map(Value::to_string).unwrap_or_default();
                            let waiter = waiting.lock().as_mut().and_then(|w| w.remove(&key));
                            if let Some(waiter) = waiter {
                                let _ = waiter.send(m);
                            }
                        }
                        Ok(Message::Request { id, method, .. }) => {
                            let error = ErrorObject::new(
                                codes::METHOD_NOT_FOUND,
                                format!("an HTTP MCP client takes no requests (`{method}`)"),
                            );
                            let text = Message::error(id, error).to_text();
                            let _ = replies.send(Frame::Text(text.into())).await;
                        }
                        Ok(Message::Notification { .. }) | Err(_) => {}
                    },
                    Frame::Ping(payload) => {
                        let _ = replies.send(Frame::Pong(payload)).await;
                    }
                    Frame::Close(_) => break,
                    Frame::Binary(_) | Frame::Pong(_) => {}
                }
            }
            // The session's connection ended: nobody will answer what is waiting.
            waiting.lock().take();
        });
        bridge
    }

    /// Sends a client request on the session and waits for its answer, under the client's
    /// own id. Dropping the future (the HTTP client went away) cancels the request.
    pub async fn request(&self, id: Value, method: String, params: Option<Value>) -> Message {
        *self.last_used.lock() = Instant::now();
        let own = Value::String(format!(
            "h:{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        ));
        let (tx, rx) = oneshot::channel();
        {
            let mut waiting = self.waiting.lock();
            let Some(waiting) = waiting.as_mut() else {
                return Message::error(id, ended());
            };
            waiting.insert(own.to_string(), tx);
        }
        let text = Message::Request {
            id: own.clone(),
            method,
            params,
        }
        .to_text();
        if self
            .to_session
            .clone()
            .send(Frame::Text(text.into()))
            .await
            .is_err()
        {
            return Message::error(id, ended());
        }
        let mut cancel = CancelOnDrop {
            to_session: self.to_session.clone(),
            id: Some(own),
        };
        let answer = rx.await;
        cancel.id = None;
        match answer {
            Ok(Message::Response { result, .. }) => Message::response(id, result),
            Ok(Message::Error { error, .. }) => Message::error(id, error),
            _ => Message::error(id, ended()),
        }
    }

    /// Sends a client notification on the session.
    pub async fn notify(&self, method: String, params: Option<Value>) {
        *self.last_used.lock() = Instant::now();
        let text = Message::Notification { method, params }.to_text();
        let _ = self.to_session.clone().send(Frame::Text(text.into())).await;
    }

    /// Whether the session behind the bridge has ended (nothing will answer any more).
    pub fn is_ended(&self) -> bool {
        self.waiting.lock().is_none()
    }

    /// Ends the connection (the session then ends with it, see [`super::sessions`]).
    pub fn close(&self) {
        self.to_session.clone().close_channel();
    }
}

fn ended() -> ErrorObject {
    ErrorObject::new(
        codes::SESSION_NOT_FOUND,
        "the MCP session ended (the server closed it or it expired)",
    )
    .with_suggestion("start a new session with initialize")
}

/// Sends `notifications/cancelled` for a request whose HTTP client went away.
struct CancelOnDrop {
    to_session: mpsc::Sender<Frame>,
    id: Option<Value>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let text = Message::notification(
                "notifications/cancelled",
                serde_json::json!({"requestId": id, "reason": "the HTTP client went away"}),
            )
            .to_text();
            let _ = self.to_session.try_send(Frame::Text(text.into()));
        }
    }
}
