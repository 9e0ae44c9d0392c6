//! One socket's life on the server: the handshake, then routing between the socket and its
//! session until the socket drops.

use std::num::NonZeroU32;
use std::sync::Arc;

use codeflow_transport::{ErrorObject, Inbound, Message, Outbound, close, codes};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::Value;

use crate::handshake::{Handshake, Reconnect};
use crate::registry::SessionRegistry;
use crate::session::Session;

/// Per-socket message rate limit. Generous: one relay pipelining requests must not hit it; a
/// flood gets errors instead of starving other sockets.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 100_000,
            burst: 20_000,
        }
    }
}

/// What the HTTP layer learned before the upgrade.
#[derive(Debug, Clone, Default)]
pub struct SocketContext {
    /// A token from `Authorization: Bearer`, already checked once before the upgrade.
    pub header_token: Option<String>,
    pub rate_limit: RateLimit,
}

fn limiter(rate: RateLimit) -> DefaultDirectRateLimiter {
    let per_second = NonZeroU32::new(rate.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(rate.burst).unwrap_or(per_second);
    RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst))
}

fn reply(outbound: &Outbound, id: Value, error: ErrorObject) {
    crate::metrics::error_sent("protocol");
    let _ = outbound.send(&Message::error(id, error));
}

/// Serves one socket until it closes. Spawn it per accepted WebSocket.
pub async fn serve_socket(
    registry: Arc<SessionRegistry>,
    outbound: Outbound,
    mut inbound: Inbound,
    context: SocketContext,
) {
    let limiter = limiter(context.rate_limit);
    let Some(session) = handshake(&registry, &outbound, &mut inbound, &context).await else {
        return;
    };
    let span = tracing::info_span!("session", session = %session.id, project = %session.project);
    let _enter = span.enter();
    loop {
        let message = tokio::select! {
            m = inbound.recv() => m,
            _ = session.closed() => {
                // Session::close already sent the close frame with its reason.
                return;
            }
            _ = registry.shutting_down() => {
                outbound.close(close::GOING_AWAY, "server shutting down");
                return;
            }
        };
        let Some(message) = message else {
            session.detach(&outbound);
            tracing::debug!("socket closed; session waits for a resume");
            return;
        };
        if let Some(method) = message.method() {
            crate::metrics::message_in(method);
        }
        if limiter.check().is_err() {
            if let Some(id) = message.id().cloned().filter(|_| !message.is_response()) {
                reply(
                    &outbound,
                    id,
                    ErrorObject::new(
                        codes::LIMIT_EXCEEDED,
                        "too many messages on this connection",
                    )
                    .with_suggestion("slow down and retry"),
                );
            }
            continue;
        }
        route(&session, &outbound, message).await;
    }
}

async fn route(session: &Arc<Session>, outbound: &Outbound, message: Message) {
    match message {
        Message::Request { id, method, .. } if method == "initialize" || method == "reconnect" => {
            reply(outbound, id, ErrorObject::new(
                codes::INVALID_REQUEST,
                format!("this connection is already initialized (session {})", session.id),
            ).with_suggestion("send initialize only once per connection; open a new connection for another project"));
        }
        m if m.is_response() => {
            if let Some(other) = session.resolve_client_response(m) {
                session.forward_to_service(other).await;
            }
        }
        m => session.forward_to_service(m).await,
    }
}

/// Waits for a successful `initialize` (or `reconnect`). Returns `None` when the socket is done.
async fn handshake(
    registry: &Arc<SessionRegistry>,
    outbound: &Outbound,
    inbound: &mut Inbound,
    context: &SocketContext,
) -> Option<Arc<Session>> {
    let deadline = tokio::time::sleep(registry.config.initialize_timeout);
    tokio::pin!(deadline);
    loop {
        let message = tokio::select! {
            m = inbound.recv() => m?,
            _ = &mut deadline => {
                crate::metrics::error_sent("initialize_timeout");
                outbound.close(close::NOT_INITIALIZED, "no successful initialize within the time limit");
                return None;
            }
            _ = registry.shutting_down() => {
                outbound.close(close::GOING_AWAY, "server shutting down");
                return None;
            }
        };
        if let Some(method) = message.method() {
            crate::metrics::message_in(method);
        }
        match message {
            Message::Request { id, method, params } if method == "initialize" => {
                match initialize(registry, outbound, context, id.clone(), params).await {
                    Ok(session) => return Some(session),
                    Err(Refusal { error, close_with }) => {
                        reply(outbound, id, error);
                        if let Some(code) = close_with {
                            outbound.close(code, "handshake refused");
                            return None;
                        }
                    }
                }
            }
            Message::Request { id, method, params } if method == "reconnect" => {
                match reconnect(registry, outbound, context, params) {
                    Ok(session) => {
                        let _ = outbound.send(&Message::response(
                            id,
                            serde_json::json!({
                                "sessionId": session.id, "resumed": true,
                            }),
                        ));
                        return Some(session);
                    }
                    Err(Refusal { error, close_with }) => {
                        reply(outbound, id, error);
                        if let Some(code) = close_with {
                            outbound.close(code, "reconnect refused");
                            return None;
                        }
                    }
                }
            }
            Message::Request { id, method, .. } => {
                let error = if method.contains('/') && !is_known_method(&method) {
                    ErrorObject::new(
                        codes::METHOD_NOT_FOUND,
                        format!("method `{method}` not found"),
                    )
                } else {
                    ErrorObject::new(
                        codes::NOT_INITIALIZED,
                        format!("`{method}` sent before initialize"),
                    )
                };
                reply(outbound, id, error.with_suggestion(
                    "send initialize with project and projectRoot first; this connection will now close",
                ));
                outbound.close(close::NOT_INITIALIZED, "request before initialize");
                return None;
            }
            // Notifications and stray responses before the handshake carry nothing to act on.
            _ => {}
        }
    }
}

/// Methods CodeFlow serves after `initialize`; anything else before it is "not found", which
/// tells probing clients (`server/discover`) to fall back to `initialize`.
fn is_known_method(method: &str) -> bool {
    method.starts_with("tools/")
        || method.starts_with("channels/")
        || method.starts_with("projects/")
        || method.starts_with("claude/")
        || matches!(
            method,
            "logging/setLevel" | "server/syncManifest" | "server/fileChanged"
        )
}

struct Refusal {
    error: ErrorObject,
    close_with: Option<u16>,
}

impl Refusal {
    fn keep_open(error: ErrorObject) -> Self {
        Self {
            error,
            close_with: None,
        }
    }
    fn auth(e: crate::auth::AuthError) -> Self {
        crate::metrics::error_sent("auth");
        Self {
            error: ErrorObject::new(codes::UNAUTHORIZED, e.to_string())
                .with_suggestion(e.suggestion()),
            close_with: Some(close::POLICY),
        }
    }
}

async fn initialize(
    registry: &Arc<SessionRegistry>,
    outbound: &Outbound,
    context: &SocketContext,
    id: Value,
    params: Option<Value>,
) -> Result<Arc<Session>, Refusal> {
    let handshake = Handshake::parse(params).map_err(Refusal::keep_open)?;
    let token = handshake
        .token
        .as_deref()
        .or(context.header_token.as_deref());
    let grant = registry
        .auth
        .verify_for(token, &handshake.project)
        .map_err(Refusal::auth)?;

    if let Some(previous) = handshake
        .resume
        .as_deref()
        .and_then(|sid| registry.get(sid))
        && previous.project == handshake.project
        && previous.grant == grant
        && let Some(result) = previous.initialize_result()
    {
        previous.attach(outbound.clone());
        let _ = outbound.send(&Message::response(id, result));
        tracing::info!(session = %previous.id, "session resumed by initialize");
        return Ok(previous);
    }

    let session = registry.create(&handshake, grant).map_err(|e| Refusal {
        error: ErrorObject::new(codes::LIMIT_EXCEEDED, e.to_string())
            .with_suggestion("retry later"),
        close_with: Some(close::POLICY),
    })?;
    session.attach(outbound.clone());
    session.expect_initialize_response(id.clone());
    session
        .forward_to_service(Message::Request {
            id,
            method: "initialize".into(),
            params: Some(handshake.mcp_params),
        })
        .await;
    Ok(session)
}

fn reconnect(
    registry: &Arc<SessionRegistry>,
    outbound: &Outbound,
    context: &SocketContext,
    params: Option<Value>,
) -> Result<Arc<Session>, Refusal> {
    let request = Reconnect::parse(params).map_err(Refusal::keep_open)?;
    let Some(session) = registry.get(&request.session_id) else {
        return Err(Refusal::keep_open(
            ErrorObject::new(
                codes::SESSION_NOT_FOUND,
                format!(
                    "session {} has expired or never existed",
                    request.session_id
                ),
            )
            .with_suggestion("send initialize to start a new session"),
        ));
    };
    let token = request.token.as_deref().or(context.header_token.as_deref());
    let grant = registry
        .auth
        .verify_for(token, &session.project)
        .map_err(Refusal::auth)?;
    if grant != session.grant {
        return Err(Refusal::auth(crate::auth::AuthError::Invalid(
            "resume needs the same credentials the session was created with".into(),
        )));
    }
    session.attach(outbound.clone());
    tracing::info!(session = %session.id, "session resumed by reconnect");
    Ok(session)
}
