//! `GET /ws/terminal/{id}`: one viewer of a terminal over its own WebSocket, independent of
//! `/ws` (no session, no JSON-RPC, no shared queue). The credential — a single-use ticket
//! from `terminals/create` / `terminals/attach`, or `Authorization: Bearer <jwt>` — is checked
//! before the upgrade. Binary frames are the terminal's bytes both ways; text frames are JSON
//! control messages (`resize`, `signal` in; `exit`, `error` out). A new viewer gets the
//! scrollback first.
//!
//! After the upgrade the connection is taken over by the terminals' own runtime (its own
//! thread and I/O driver, next to its PTY; `socket_fd.rs`), so work that occupies the main
//! runtime's workers — a flood on `/ws` — does not delay keystrokes. Where that cannot be done
//! (TLS, a kernel without `pidfd_getfd`) the socket is served on the main runtime.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use codeflow_session::Right;
use codeflow_terminal::{Control, Event, ServerControl, Viewer};
use futures::{FutureExt, SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use crate::app::App;
use crate::socket_fd::SocketFd;

/// Close codes of a terminal socket (docs/protocol.md).
mod close {
    /// The terminal exited or was closed.
    pub const NORMAL: u16 = 1000;
    /// No answer to pings.
    pub const HEARTBEAT: u16 = 4001;
    /// The viewer fell behind the terminal's output.
    pub const SLOW_READER: u16 = 4002;
    /// A message over the size limit.
    pub const TOO_BIG: u16 = 1009;
}

/// Largest message a viewer may send (keystrokes, a paste).
const MAX_MESSAGE: usize = 1024 * 1024;

fn refuse(status: StatusCode, error: impl std::fmt::Display, suggestion: &str) -> Response {
    metrics::counter!("codeflow_errors_total", "kind" => "terminal_refused").increment(1);
    (
        status,
        axum::Json(json!({"error": error.to_string(), "suggestion": suggestion})),
    )
        .into_response()
}

pub async fn upgrade(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    mut request: Request,
) -> Response {
    let headers = request.headers().clone();
    if let Some(refused) = crate::routes::refuse_origin(&app, &headers) {
        return refused;
    }
    let accept = match accept_key(&headers) {
        Ok(a) => a,
        Err(why) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                why,
                "open it with a WebSocket client",
            );
        }
    };
    let terminal = match app.terminals.get(&id) {
        Ok(t) => t,
        Err(e) => {
            return refuse(
                StatusCode::NOT_FOUND,
                e,
                "terminals/list names the project's terminals",
            );
        }
    };
    let grant = if let Some(ticket) = query.get("ticket") {
        match app.terminal_tickets.redeem(ticket, &id) {
            Ok(bound) if bound.project == terminal.project() => bound.grant,
            Ok(_) => {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "the ticket is for another project",
                    "ask for a fresh ticket with terminals/attach {id} on /ws",
                );
            }
            Err(e) => {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    e,
                    "ask for a fresh ticket with terminals/attach {id} on /ws",
                );
            }
        }
    } else if let Some(token) = crate::routes::bearer_token(&headers) {
        match app.registry.auth.verify(Some(&token)) {
            Ok(grant) => grant,
            Err(e) => return refuse(StatusCode::UNAUTHORIZED, &e, e.suggestion()),
        }
    } else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "a terminal socket needs `?ticket=` (from terminals/create or terminals/attach) or `Authorization: Bearer <token>`",
            "call terminals/attach {id} on /ws and open the `url` it returns",
        );
    };
    if !grant.has(Right::TerminalOpen) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this credential lacks the `terminal:open` right",
            "use a token whose scope includes terminal:open",
        );
    }
    if !grant.allows_project_name(terminal.project()) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "this credential does not grant project `{}`",
                terminal.project()
            ),
            "use a token whose `projects` includes it",
        );
    }
    let viewer = match app.terminals.attach(&id) {
        Ok(v) => v,
        Err(e @ codeflow_terminal::TerminalError::Limit { .. }) => {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many viewers: {e}"),
                "close another viewer of this terminal",
            );
        }
        Err(e) => return refuse(StatusCode::NOT_FOUND, e, "the terminal is gone"),
    };
    let heartbeat = Heartbeat {
        every: app.connection.ping_interval,
        timeout: app.connection.pong_timeout,
    };
    let socket_fd = request
        .extensions()
        .get::<ConnectInfo<SocketFd>>()
        .map(|c| c.0);
    let on_upgrade = hyper::upgrade::on(&mut request);
    let runtime = app.terminals.runtime().clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "terminal socket upgrade failed");
                return;
            }
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let mut io = hyper_util::rt::TokioIo::new(upgraded);
        if let Some(tcp) = socket_fd.and_then(|s| s.take()) {
            // Bytes hyper read past the request (a client may not send frames before the
            // 101, but be lenient) go first; then hyper's side is dropped and the socket
            // lives on in our own descriptor.
            let mut early = Vec::new();
            let mut buf = [0u8; 4096];
            while let Some(Ok(n)) = io.read(&mut buf).now_or_never() {
                if n == 0 {
                    return;
                }
                early.extend_from_slice(&buf[..n]);
            }
            drop(io);
            tracing::debug!("terminal socket moved to the terminals' runtime");
            runtime.spawn(async move {
                let tcp = match tcp
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpStream::from_std(tcp))
                {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(error = %e, "terminal socket lost");
                        return;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let ws =
                    WebSocketStream::from_partially_read(tcp, early, Role::Server, Some(config))
                        .await;
                serve(ws, viewer, heartbeat).await;
            });
        } else {
            tracing::debug!("terminal socket served on the main runtime");
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
            serve(ws, viewer, heartbeat).await;
        }
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// The `Sec-WebSocket-Accept` of a valid WebSocket upgrade request, or why it is not one.
fn accept_key(headers: &HeaderMap) -> Result<String, &'static str> {
    let has = |name: header::HeaderName, word: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case(word)))
        })
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return Err("not a WebSocket upgrade (Connection: upgrade, Upgrade: websocket)");
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13")) {
        return Err("unsupported WebSocket version (13 is)");
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or("no Sec-WebSocket-Key")?;
    Ok(tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

#[derive(Clone, Copy)]
struct Heartbeat {
    every: Option<Duration>,
    timeout: Duration,
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut socket: WebSocketStream<S>,
    mut viewer: Viewer,
    heartbeat: Heartbeat,
) {
    metrics::gauge!("codeflow_terminal_viewers").increment(1.0);
    let backlog = std::mem::take(&mut viewer.backlog);
    let mut ok = true;
    for chunk in backlog {
        if socket.feed(Message::Binary(chunk)).await.is_err() {
            ok = false;
            break;
        }
    }
    ok = ok && socket.flush().await.is_ok();
    let (code, reason) = if !ok {
        (None, String::new())
    } else if let Some(code) = viewer.exited {
        let _ = socket
            .send(Message::Text(ServerControl::Exit { code }.to_text().into()))
            .await;
        (Some(close::NORMAL), "the terminal exited".to_owned())
    } else {
        pump(&mut socket, &mut viewer, heartbeat).await
    };
    if let Some(code) = code {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), socket.close(Some(frame))).await;
    }
    metrics::gauge!("codeflow_terminal_viewers").decrement(1.0);
}

/// Moves bytes both ways until one side ends; returns the close frame to send.
async fn pump<S: AsyncRead + AsyncWrite + Unpin>(
    socket: &mut WebSocketStream<S>,
    viewer: &mut Viewer,
    heartbeat: Heartbeat,
) -> (Option<u16>, String) {
    let period = heartbeat.every.unwrap_or(Duration::from_secs(3600));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            event = viewer.next() => match event {
                Ok(Some(Event::Output(bytes))) => {
                    if socket.send(Message::Binary(bytes)).await.is_err() {
                        return (None, String::new());
                    }
                }
                Ok(Some(Event::Exit(code))) => {
                    let _ = socket
                        .send(Message::Text(ServerControl::Exit { code }.to_text().into()))
                        .await;
                    return (Some(close::NORMAL), "the terminal exited".into());
                }
                Ok(None) => return (Some(close::NORMAL), "the terminal was closed".into()),
                Err(lagged) => {
                    metrics::counter!("codeflow_errors_total", "kind" => "slow_reader").increment(1);
                    return (Some(close::SLOW_READER), format!("slow reader: {lagged}; attach again for the scrollback"));
                }
            },
            message = socket.next() => {
                heard = Instant::now();
                match message {
                    Some(Ok(Message::Binary(bytes))) => {
                        if !viewer.write(bytes).await {
                            return (Some(close::NORMAL), "the terminal exited".into());
                        }
                    }
                    Some(Ok(Message::Text(text))) => {
                        let outcome = match Control::parse(text.as_str()) {
                            Ok(control) => viewer.control(control).await,
                            Err(e) => Err(e),
                        };
                        if let Err(message) = outcome {
                            let error = ServerControl::Error { message }.to_text();
                            if socket.send(Message::Text(error.into())).await.is_err() {
                                return (None, String::new());
                            }
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => return (None, String::new()),
                    Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                        return (Some(close::TOO_BIG), "message too big".into());
                    }
                    Some(Err(_)) => return (None, String::new()),
                    Some(Ok(_)) => {} // pings are answered by tungstenite; pongs only count
                }
            }
            _ = ticker.tick(), if heartbeat.every.is_some() => {
                if heard.elapsed() > period + heartbeat.timeout {
                    return (Some(close::HEARTBEAT), "no answer to pings".into());
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return (None, String::new());
                }
            }
        }
    }
}
