//! One socket's life on the server: the handshake, then routing between the socket and its
//! session until the socket drops.

use std::num::NonZeroU32;
use std::sync::Arc;

use codeflow_transport::{ErrorObject, Inbound, Message, Outbound, close, codes};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::Value;
use tracing::Instrument;

use crate::channels::Channel;
use crate::handshake::{Handshake, Reconnect};
use crate::registry::SessionRegistry;
use crate::session::Session;

/// Per-socket message rate limit. Generous: one relay pipelining requests must not hit it; a
/// flood gets errors instead of starving other sockets.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Requests per second a session may send on average.
    pub per_second: u32,
    /// Requests a session may send at once above the average.
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

/// What the HTTP layer learned before the upgrade, and the per-session limits.
#[derive(Debug, Clone)]
pub struct SocketContext {
    /// A token from `Authorization: Bearer`, already checked once before the upgrade.
    pub header_token: Option<String>,
    /// The names (subject CN and SANs) of the client certificate the TLS layer verified, if
    /// any: a credential when `[[auth.client_certs]]` maps one of them.
    pub client_cert_names: Vec<String>,
    /// Requests per second per session (over it: -32004 with `retryAfterMs`).
    pub rate_limit: RateLimit,
    /// Requests running at once per session (over it: -32004).
    pub max_concurrent_requests: usize,
}

impl Default for SocketContext {
    fn default() -> Self {
        Self {
            header_token: None,
            client_cert_names: Vec::new(),
            rate_limit: RateLimit::default(),
            max_concurrent_requests: crate::memory::MAX_RUNNING,
        }
    }
}

pub(crate) fn limiter(rate: RateLimit) -> DefaultDirectRateLimiter {
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
    let _on_panic = CloseOnPanic(outbound.clone());
    let Some((session, connection)) = handshake(&registry, &outbound, &mut inbound, &context).await
    else {
        return;
    };
    // `instrument`, not `span.enter()`: an entered span held across `.await` leaks into
    // whatever else runs on the thread, and log lines pile up every session's span.
    let span = tracing::info_span!("session", session = %session.id, project = %session.project);
    route_loop(registry, session, connection, outbound, inbound, context)
        .instrument(span)
        .await;
}

async fn route_loop(
    registry: Arc<SessionRegistry>,
    session: Arc<Session>,
    connection: u64,
    outbound: Outbound,
    mut inbound: Inbound,
    context: SocketContext,
) {
    let _detach = DetachOnDrop {
        session: &session,
        outbound: &outbound,
    };
    let mut expiry = token_expiry(&session);
    loop {
        let message = tokio::select! {
            m = inbound.recv() => m,
            _ = async { if let Some(e) = expiry.as_mut() { e.await } }, if expiry.is_some() => {
                crate::metrics::error_sent("token_expired");
                crate::audit::expired(&session);
                session.close_with(
                    close::TOKEN_EXPIRED,
                    "the session's token expired; mint a new one and start a new session (send auth/refresh before expiry to keep a session)",
                );
                return;
            }
            _ = session.closed() => {
                // Session::close sent the close frame to the attached socket; this one may not
                // have been attached yet (a shutdown right after the handshake), so it sends the
                // same frame itself (a second close frame is ignored).
                if let Some((code, reason)) = session.close_reason() {
                    outbound.close(code, reason);
                }
                return;
            }
            _ = registry.shutting_down() => {
                outbound.close(close::GOING_AWAY, "server shutting down");
                return;
            }
        };
        let Some(message) = message else {
            tracing::debug!("socket closed; session waits for a resume");
            return;
        };
        if let Some(method) = message.method() {
            crate::metrics::message_in(method);
        }
        // Limits per session (a reconnect does not reset them), for requests: they can be
        // answered. Notifications and responses are bounded by back-pressure instead.
        if let Message::Request { id, .. } = &message {
            if let Err(retry_after) = session.check_rate(context.rate_limit) {
                crate::metrics::error_sent("rate_limited");
                let retry_ms = u64::try_from(retry_after.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1);
                let _ = outbound.send(&Message::error(
                    id.clone(),
                    ErrorObject {
                        code: codes::LIMIT_EXCEEDED,
                        message: format!(
                            "too many requests from this session (limit {} per second, burst {})",
                            context.rate_limit.per_second, context.rate_limit.burst
                        ),
                        data: Some(serde_json::json!({
                            "limit": "rate",
                            "retryAfterMs": retry_ms,
                            "suggestion": format!("retry after {retry_ms} ms, and send fewer requests per second"),
                        })),
                    },
                ));
                continue;
            }
            if session.requests_running() >= context.max_concurrent_requests
                && !is_session_level(message.method().unwrap_or_default())
            {
                crate::metrics::error_sent("too_many_running");
                let _ = outbound.send(&Message::error(
                    id.clone(),
                    ErrorObject {
                        code: codes::LIMIT_EXCEEDED,
                        message: format!(
                            "this session already has {} requests running (max_concurrent_requests)",
                            context.max_concurrent_requests
                        ),
                        data: Some(serde_json::json!({
                            "limit": "concurrent_requests",
                            "suggestion": "wait for answers before sending more requests",
                        })),
                    },
                ));
                continue;
            }
        }
        let refresh = message.method() == Some("auth/refresh");
        route(&registry, &session, &outbound, connection, message).await;
        if refresh {
            expiry = token_expiry(&session);
        }
    }
}

/// Requests the session layer answers itself (never counted as running in the service).
fn is_session_level(method: &str) -> bool {
    matches!(method, "ping" | "auth/refresh") || method.starts_with("channels/")
}

/// A timer that fires when the session's token expires (`None` for anonymous sessions).
fn token_expiry(session: &Session) -> Option<std::pin::Pin<Box<tokio::time::Sleep>>> {
    let exp = session.grant().expires_at?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let left = std::time::Duration::from_secs(exp.saturating_sub(now));
    Some(Box::pin(tokio::time::sleep(left)))
}

/// `auth/refresh {token}`: swaps the session's token for a new one of the same subject that
/// grants the session's project. The rights become the new token's. A refused token leaves
/// the session as it was.
fn refresh(
    registry: &SessionRegistry,
    session: &Session,
    outbound: &Outbound,
    id: Value,
    params: Option<Value>,
) {
    let token = params
        .as_ref()
        .and_then(|p| p.get("token"))
        .and_then(Value::as_str);
    let Some(token) = token else {
        return reply(
            outbound,
            id,
            ErrorObject::new(codes::INVALID_PARAMS, "auth/refresh needs `token`")
                .with_suggestion("send {\"token\": \"<new jwt>\"}"),
        );
    };
    let outcome = registry
        .auth
        .verify_for(Some(token), &session.project)
        .and_then(|grant| {
            if grant.subject == session.grant().subject {
                Ok(grant)
            } else {
                Err(crate::auth::AuthError::Invalid(
                    "a refresh must be for the same subject (`sub`) as the session's token".into(),
                ))
            }
        });
    match outcome {
        Ok(grant) => {
            let expires_at = grant.expires_at;
            session.set_grant(grant);
            crate::audit::authenticated(session, "refresh");
            let _ = outbound.send(&Message::response(
                id,
                serde_json::json!({"refreshed": true, "expiresAt": expires_at}),
            ));
        }
        Err(e) => {
            crate::audit::auth_failed("refresh", Some(session.project.as_str()), &e);
            crate::metrics::error_sent("auth");
            reply(
                outbound,
                id,
                ErrorObject::new(codes::UNAUTHORIZED, format!("refresh refused: {e}"))
                    .with_suggestion(e.suggestion()),
            );
        }
    }
}

/// Detaches the socket from its session however the routing loop ends — a return, or a panic
/// unwinding through it — so a session never stays attached to a socket nobody serves.
struct DetachOnDrop<'a> {
    session: &'a Arc<Session>,
    outbound: &'a Outbound,
}

impl Drop for DetachOnDrop<'_> {
    fn drop(&mut self) {
        self.session.detach(self.outbound);
    }
}

/// Closes the socket with 1011 when serving it panics (a bug, never the client's input), so
/// the client learns at once instead of waiting for a heartbeat timeout.
struct CloseOnPanic(Outbound);

impl Drop for CloseOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            crate::metrics::error_sent("panic");
            self.0.close(
                close::SERVER_ERROR,
                "internal error while serving this socket",
            );
        }
    }
}

async fn route(
    registry: &Arc<SessionRegistry>,
    session: &Arc<Session>,
    outbound: &Outbound,
    connection: u64,
    message: Message,
) {
    // The one authorization point: nothing below runs for a message its grant does not allow.
    if let Message::Request { method, params, .. } | Message::Notification { method, params } =
        &message
        && let Err(refused) = crate::authorize::authorize(
            &session.grant(),
            &session.project,
            registry.service(),
            method,
            params.as_ref(),
        )
    {
        crate::metrics::error_sent("forbidden");
        crate::audit::refused(session, method, &refused);
        if let Some(id) = message.id().cloned() {
            let _ = outbound.send(&Message::error(id, refused.to_error()));
        }
        return;
    }
    if let Some(method) = message.method()
        && (method.starts_with("projects/")
            || method.starts_with("claude/")
            || method.starts_with("terminals/"))
    {
        crate::audit::operation(session, method);
    }
    match message {
        Message::Request { id, method, .. } if method == "initialize" || method == "reconnect" => {
            reply(outbound, id, ErrorObject::new(
                codes::INVALID_REQUEST,
                format!("this connection is already initialized (session {})", session.id),
            ).with_suggestion("send initialize only once per connection; open a new connection for another project"));
        }
        Message::Request { id, method, params } if method == "auth/refresh" => {
            refresh(registry, session, outbound, id, params);
        }
        Message::Request { id, method, params }
            if matches!(
                method.as_str(),
                "channels/subscribe" | "channels/unsubscribe" | "channels/publish"
            ) =>
        {
            channel_request(registry, session, outbound, id, &method, params).await;
        }
        Message::Request { id, method, params } if registry.method_family(&method).is_some() => {
            if let Some(family) = registry.method_family(&method)
                && session.admit_request(&id, &method, params.as_ref(), connection)
            {
                family_request(registry, session, family, id, method, params);
            }
        }
        m if m.is_response() => {
            if let Some(other) = session.resolve_client_response(m) {
                session.forward_to_service(other).await;
            }
        }
        Message::Request { id, method, params } => {
            if session.admit_request(&id, &method, params.as_ref(), connection) {
                session
                    .forward_to_service(Message::Request { id, method, params })
                    .await;
            }
        }
        m => session.forward_to_service(m).await,
    }
}

/// Runs a request of a registered method family on its own task and answers it through the
/// session (so the answer is remembered for a re-send, and waits in the backlog if the socket
/// dropped meanwhile).
fn family_request(
    registry: &Arc<SessionRegistry>,
    session: &Arc<Session>,
    family: Arc<dyn crate::methods::MethodFamily>,
    id: Value,
    method: String,
    params: Option<Value>,
) {
    let registry = registry.clone();
    let session = session.clone();
    let work = family.handle(session.clone(), method, params);
    tokio::spawn(async move {
        match work.await {
            Ok(crate::methods::MethodReply::Result(result)) => {
                session.send_to_client(Message::response(id, result));
            }
            Ok(crate::methods::MethodReply::Subscribe {
                project,
                channel,
                since,
                extra,
            }) => {
                let target = project.as_ref().unwrap_or(&session.project);
                if let Err(e) = registry.channels().prepare(target, channel).await {
                    crate::metrics::error_sent("method");
                    session.send_to_client(Message::error(id, broker_unreachable(&e)));
                    return;
                }
                session.subscribe_answering(
                    registry.channels(),
                    project.as_ref(),
                    channel,
                    since,
                    id,
                    extra,
                );
            }
            Ok(crate::methods::MethodReply::Unsubscribe {
                project,
                channel,
                mut extra,
            }) => {
                let was = session.unsubscribe_in(project.as_ref(), channel);
                extra.insert("unsubscribed".into(), Value::Bool(was));
                session.send_to_client(Message::response(id, Value::Object(extra)));
            }
            Err(error) => {
                crate::metrics::error_sent("method");
                session.send_to_client(Message::error(id, error));
            }
        }
    });
}

fn channel_params(
    params: Option<Value>,
) -> Result<(Channel, serde_json::Map<String, Value>), ErrorObject> {
    let params = match params {
        Some(Value::Object(p)) => p,
        _ => serde_json::Map::new(),
    };
    let name = params
        .get("channel")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ErrorObject::new(codes::INVALID_PARAMS, "`channel` is required")
                .with_suggestion(CHANNEL_NAMES)
        })?;
    let channel = Channel::parse(name).ok_or_else(|| {
        ErrorObject::new(codes::INVALID_PARAMS, format!("unknown channel `{name}`"))
            .with_suggestion(CHANNEL_NAMES)
    })?;
    Ok((channel, params))
}

/// The error for a channel request the broker could not serve.
fn broker_unreachable(e: &crate::broker::BrokerError) -> ErrorObject {
    ErrorObject::new(codes::UNREACHABLE, format!("channels unavailable: {e}")).with_suggestion(
        "retry shortly; the server reconnects to its broker (cluster_url) by itself",
    )
}

const CHANNEL_NAMES: &str =
    "channels are: files, diagnostics, ai-response, search, validation, git";

/// `channels/subscribe`, `channels/unsubscribe` and (when enabled) `channels/publish`, always on
/// the session's own project: a session never sees another project's channels (R6).
async fn channel_request(
    registry: &Arc<SessionRegistry>,
    session: &Arc<Session>,
    outbound: &Outbound,
    id: Value,
    method: &str,
    params: Option<Value>,
) {
    let (channel, params) = match channel_params(params) {
        Ok(p) => p,
        Err(e) => return reply(outbound, id, e),
    };
    // `project` other than the session's was refused by the authorization point.
    let channels = registry.channels();
    match method {
        "channels/subscribe" => {
            let since = match params.get("since") {
                None | Some(Value::Null) => None,
                Some(since) => {
                    let epoch = since.get("epoch").and_then(Value::as_str);
                    let offset = since.get("offset").and_then(Value::as_u64);
                    match (epoch, offset) {
                        (Some(e), Some(o)) => Some((e.to_owned(), o)),
                        _ => {
                            return reply(
                                outbound,
                                id,
                                ErrorObject::new(
                                    codes::INVALID_PARAMS,
                                    "`since` must be {\"epoch\": string, \"offset\": number}",
                                )
                                .with_suggestion(
                                    "pass back the epoch and offset of the last event you received",
                                ),
                            );
                        }
                    }
                }
            };
            if let Err(e) = channels.prepare(&session.project, channel).await {
                return reply(outbound, id, broker_unreachable(&e));
            }
            session.subscribe(channels, channel, since, id);
        }
        "channels/unsubscribe" => {
            let was = session.unsubscribe(channel);
            let _ = outbound.send(&Message::response(
                id,
                serde_json::json!({"channel": channel.as_str(), "unsubscribed": was}),
            ));
        }
        _ if !channels.config().client_publish => {
            reply(
                outbound,
                id,
                ErrorObject::new(
                    codes::METHOD_NOT_FOUND,
                    "method `channels/publish` not found",
                )
                .with_suggestion("only server components publish on channels"),
            );
        }
        _ => {
            // Test and benchmark publisher (enabled by `ChannelConfig::client_publish`).
            let count = params.get("count").and_then(Value::as_u64).unwrap_or(1);
            let pad = params.get("padBytes").and_then(Value::as_u64).unwrap_or(0);
            let data = params.get("data").cloned().unwrap_or(Value::Null);
            let pad = "x".repeat(usize::try_from(pad.min(1 << 20)).unwrap_or(0));
            let mut first = None;
            let mut last = channels.position(&session.project, channel);
            for seq in 0..count.min(1_000_000) {
                let payload = if count == 1 && pad.is_empty() {
                    data.clone()
                } else {
                    serde_json::json!({"seq": seq, "data": data, "pad": pad})
                };
                last = if channels.clustered() {
                    match channels
                        .publish_confirmed(&session.project, channel, payload)
                        .await
                    {
                        Ok(position) => position,
                        Err(e) => return reply(outbound, id, broker_unreachable(&e)),
                    }
                } else {
                    channels.publish(&session.project, channel, payload)
                };
                first.get_or_insert(last.offset);
                if seq % 64 == 63 {
                    tokio::task::yield_now().await;
                }
            }
            let _ = outbound.send(&Message::response(
                id,
                serde_json::json!({
                    "channel": channel.as_str(), "epoch": &*last.epoch,
                    "first": first, "last": last.offset,
                }),
            ));
        }
    }
}

/// Waits for a successful `initialize` (or `reconnect`). Returns `None` when the socket is done.
async fn handshake(
    registry: &Arc<SessionRegistry>,
    outbound: &Outbound,
    inbound: &mut Inbound,
    context: &SocketContext,
) -> Option<(Arc<Session>, u64)> {
    let deadline = tokio::time::sleep(registry.config.initialize_timeout);
    tokio::pin!(deadline);
    // The SSH-login challenge issued on this connection; the next `initialize` takes it.
    let mut challenge: Option<crate::ssh_login::Challenge> = None;
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
            Message::Request { id, method, .. } if method == "auth/challenge" => {
                if registry.auth.ssh_login_enabled() {
                    let issued = crate::ssh_login::Challenge::new();
                    let _ = outbound.send(&Message::response(
                        id,
                        serde_json::json!({
                            "challenge": issued.value,
                            "namespace": crate::ssh_login::NAMESPACE,
                            "expiresInSecs": crate::ssh_login::CHALLENGE_TTL.as_secs(),
                        }),
                    ));
                    challenge = Some(issued);
                } else {
                    reply(
                        outbound,
                        id,
                        ErrorObject::new(
                            codes::INVALID_REQUEST,
                            "SSH-key login is not enabled on this server",
                        )
                        .with_suggestion("log in with a token; the operator enables SSH keys with auth.authorized_keys"),
                    );
                }
            }
            Message::Request { id, method, params } if method == "initialize" => {
                let issued = challenge.take();
                match initialize(registry, outbound, context, id.clone(), params, issued).await {
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
                match reconnect(registry, outbound, context, id.clone(), params) {
                    Ok(attached) => return Some(attached),
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
        || method.starts_with("terminals/")
        || method.starts_with("auth/")
        || matches!(
            method,
            "logging/setLevel"
                | "server/syncManifest"
                | "server/syncBegin"
                | "server/fileChanged"
                | "server/gitState"
                | "files/beginTransfer"
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
    challenge: Option<crate::ssh_login::Challenge>,
) -> Result<(Arc<Session>, u64), Refusal> {
    let handshake = Handshake::parse(params).map_err(Refusal::keep_open)?;
    let token = handshake
        .token
        .as_deref()
        .or(context.header_token.as_deref());
    let ssh = handshake.ssh_login.as_ref().map(|login| (login, challenge));
    let grant = registry
        .auth
        .login_for(token, ssh, &context.client_cert_names, &handshake.project)
        .map_err(|e| {
            crate::audit::auth_failed("initialize", Some(handshake.project.as_str()), &e);
            Refusal::auth(e)
        })?;

    if let Some(previous) = handshake
        .resume
        .as_deref()
        .and_then(|sid| registry.get(sid))
        && !previous.is_closed()
        && previous.project == handshake.project
        && previous.grant().same_access(&grant)
        && let Some(mut result) = previous.initialize_result()
    {
        // The backlog and missed channel events go out first, then the answer.
        let connection = previous.attach(outbound.clone());
        if let Value::Object(map) = &mut result {
            map.insert("resumed".into(), Value::Bool(true));
        }
        let _ = outbound.send(&Message::response(id, result));
        previous.set_grant(grant);
        crate::metrics::resume("initialize");
        crate::audit::authenticated(&previous, "resume");
        tracing::info!(session = %previous.id, "session resumed by initialize");
        return Ok((previous, connection));
    }
    // Asked to resume, but cannot: say why in the result of the fresh session.
    let resume_note = handshake.resume.as_deref().map(|sid| {
        crate::metrics::resume("not_found");
        let mut note = serde_json::Map::new();
        note.insert("resumed".into(), Value::Bool(false));
        note.insert(
            "resumeError".into(),
            serde_json::json!({
                "code": codes::SESSION_NOT_FOUND,
                "message": format!("session {sid} cannot be resumed: it expired (sessions are kept {} s after a disconnect), never existed, or belongs to other credentials or another project; this is a new session", registry.config.resume_grace.as_secs()),
            }),
        );
        note
    });

    let session = registry.create(&handshake, grant).map_err(|e| {
        crate::metrics::error_sent("max_sessions");
        Refusal {
            error: ErrorObject::new(codes::LIMIT_EXCEEDED, e.to_string())
                .with_suggestion("retry later"),
            close_with: Some(close::POLICY),
        }
    })?;
    crate::audit::authenticated(&session, "initialize");
    let connection = session.attach(outbound.clone());
    session.expect_initialize_response(id.clone(), resume_note);
    session
        .forward_to_service(Message::Request {
            id,
            method: "initialize".into(),
            params: Some(handshake.mcp_params),
        })
        .await;
    Ok((session, connection))
}

fn reconnect(
    registry: &Arc<SessionRegistry>,
    outbound: &Outbound,
    context: &SocketContext,
    id: Value,
    params: Option<Value>,
) -> Result<(Arc<Session>, u64), Refusal> {
    let request = Reconnect::parse(params).map_err(Refusal::keep_open)?;
    // The token is checked before the session is looked up, and a session of a project the
    // token does not cover is answered like one that does not exist: a client learns nothing
    // about other projects' sessions (R6).
    let token = request.token.as_deref().or(context.header_token.as_deref());
    let grant = registry
        .auth
        .login(token, None, &context.client_cert_names)
        .map_err(|e| {
            crate::audit::auth_failed("reconnect", None, &e);
            Refusal::auth(e)
        })?;
    let Some(session) = registry
        .get(&request.session_id)
        .filter(|s| !s.is_closed() && grant.allows_project(&s.project))
    else {
        crate::metrics::resume("not_found");
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
    if !grant.same_access(&session.grant()) {
        let e = crate::auth::AuthError::Invalid(
            "resume needs the same credentials the session was created with".into(),
        );
        crate::audit::auth_failed("reconnect", Some(session.project.as_str()), &e);
        return Err(Refusal::auth(e));
    }
    session.set_grant(grant);
    // The backlog and missed channel events go out first, then the answer.
    let connection = session.attach(outbound.clone());
    let _ = outbound.send(&Message::response(
        id,
        serde_json::json!({"sessionId": session.id, "resumed": true}),
    ));
    crate::metrics::resume("reconnect");
    crate::audit::authenticated(&session, "reconnect");
    tracing::info!(session = %session.id, "session resumed by reconnect");
    Ok((session, connection))
}
