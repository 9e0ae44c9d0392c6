//! `GET /ws/terminal/{id}`: one viewer of a terminal over its own WebSocket, independent of
//! `/ws` (no session, no JSON-RPC, no shared queue). The credential — a single-use ticket
//! from `terminals/create` / `terminals/attach`, or `Authorization: Bearer <jwt>` — is checked
//! before the upgrade. Binary frames are the terminal's bytes both ways; text frames are JSON
//! control messages (`resize`, `signal` in; `exit`, `error` out). A new viewer gets the
//! scrollback first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use codeflow_session::Right;
use codeflow_terminal::{Control, Event, ServerControl, Viewer};
use futures::{SinkExt, StreamExt};
use serde_json::json;

use crate::app::App;

/// Close codes of a terminal socket (docs/protocol.md).
mod close {
    /// The terminal exited or was closed.
    pub const NORMAL: u16 = 1000;
    /// No answer to pings.
    pub const HEARTBEAT: u16 = 4001;
    /// The viewer fell behind the terminal's output.
    pub const SLOW_READER: u16 = 4002;
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
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Some(refused) = crate::routes::check_origin(&app, &headers) {
        return refused;
    }
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
        Err(e) => return refuse(StatusCode::NOT_FOUND, e, "the terminal is gone"),
    };
    let ping = app.connection.ping_interval;
    let pong_timeout = app.connection.pong_timeout;
    upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(socket, viewer, ping, pong_timeout))
}

async fn serve(
    socket: WebSocket,
    mut viewer: Viewer,
    ping: Option<Duration>,
    pong_timeout: Duration,
) {
    metrics::gauge!("codeflow_terminal_viewers").increment(1.0);
    let (mut sink, mut stream) = socket.split();
    let backlog = std::mem::take(&mut viewer.backlog);
    let mut ok = true;
    for chunk in backlog {
        if sink.send(Message::Binary(chunk)).await.is_err() {
            ok = false;
            break;
        }
    }
    let (code, reason) = if !ok {
        (None, String::new())
    } else if let Some(code) = viewer.exited {
        let _ = sink
            .send(Message::Text(ServerControl::Exit { code }.to_text().into()))
            .await;
        (Some(close::NORMAL), "the terminal exited".to_owned())
    } else {
        pump(&mut sink, &mut stream, &mut viewer, ping, pong_timeout).await
    };
    if let Some(code) = code {
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from(reason),
            })))
            .await;
    }
    metrics::gauge!("codeflow_terminal_viewers").decrement(1.0);
}

type Sink = futures::stream::SplitSink<WebSocket, Message>;
type Stream = futures::stream::SplitStream<WebSocket>;

/// Moves bytes both ways until one side ends; returns the close frame to send.
async fn pump(
    sink: &mut Sink,
    stream: &mut Stream,
    viewer: &mut Viewer,
    ping: Option<Duration>,
    pong_timeout: Duration,
) -> (Option<u16>, String) {
    let period = ping.unwrap_or(Duration::from_secs(3600));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            event = viewer.next() => match event {
                Ok(Some(Event::Output(bytes))) => {
                    if sink.send(Message::Binary(bytes)).await.is_err() {
                        return (None, String::new());
                    }
                }
                Ok(Some(Event::Exit(code))) => {
                    let _ = sink
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
            message = stream.next() => {
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
                            if sink.send(Message::Text(error.into())).await.is_err() {
                                return (None, String::new());
                            }
                        }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return (None, String::new()),
                }
            }
            _ = ticker.tick(), if ping.is_some() => {
                if heard.elapsed() > period + pong_timeout {
                    return (Some(close::HEARTBEAT), "no answer to pings".into());
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return (None, String::new());
                }
            }
        }
    }
}
