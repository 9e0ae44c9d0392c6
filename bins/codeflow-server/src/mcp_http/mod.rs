//! `/mcp`: MCP's Streamable HTTP transport (revision 2025-11-25, with sessions) for MCP
//! clients that run without the relay.
//!
//! - `POST /mcp?project=ID[&root=/abs/path]` with `initialize` opens a session (the project can
//!   also come in the `CodeFlow-Project` header); the answer carries `Mcp-Session-Id`, which
//!   every later POST (and `DELETE`, which ends the session) sends back.
//! - Same tokens and rights as `/ws`: `Authorization: Bearer <token>`, checked before anything
//!   else (401) and by the session's handshake (project scope, rights); a session's later
//!   requests must carry the token it was opened with.
//! - The project must be one the server can read without a relay: a shared project
//!   (`shared_projects`), or one whose mirror a relay has already filled. Reads work; writes
//!   need a relay to write back to and get an error saying so.
//! - Each request is answered with one JSON body; there is no server→client stream (`GET` is
//!   405), so server notifications are not delivered.
//!
//! Behind it is [`bridge::Bridge`]: the same session layer `/ws` uses, over in-memory channels.
//! rmcp's Streamable HTTP server is not used: it drives rmcp's own serve loop, and CodeFlow's
//! dispatcher (`codeflow_tools::mcp`) is not an rmcp service.

mod bridge;
mod modern;
mod sessions;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use codeflow_session::{ProjectId, SocketContext};
use codeflow_transport::{ErrorObject, Message, codes, legacy, stateless};
use serde::Deserialize;
use serde_json::{Value, json};

pub use sessions::McpSessions;

use crate::app::App;
use bridge::Bridge;

/// The header naming the session (MCP Streamable HTTP).
const SESSION_HEADER: &str = "mcp-session-id";
/// The header that may name the project instead of `?project=`.
const PROJECT_HEADER: &str = "codeflow-project";

/// `/mcp`'s query: which project, and the client's path of it.
#[derive(Debug, Deserialize, Default)]
pub struct McpQuery {
    project: Option<String>,
    root: Option<String>,
}

/// A JSON-RPC message as the HTTP answer.
pub(crate) fn rpc(status: StatusCode, message: &Message) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        message.to_text(),
    )
        .into_response()
}

pub(crate) fn rpc_error(status: StatusCode, id: Value, error: ErrorObject) -> Response {
    let mut response = rpc(status, &Message::error(id, error));
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// `POST /mcp`.
pub async fn post(
    State(app): State<App>,
    Query(query): Query<McpQuery>,
    tls: Option<axum::Extension<Arc<axum_server::tls::TlsInfo>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = crate::routes::refuse_origin(&app, &headers) {
        return refused;
    }
    let token = crate::routes::bearer_token(&headers);
    if let Some(t) = &token
        && let Err(e) = app.registry.auth.verify(Some(t))
    {
        metrics::counter!("codeflow_errors_total", "kind" => "auth").increment(1);
        let error =
            ErrorObject::new(codes::UNAUTHORIZED, e.to_string()).with_suggestion(e.suggestion());
        return rpc_error(StatusCode::UNAUTHORIZED, Value::Null, error);
    }
    let message = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(_)) => {
            let error = ErrorObject::new(
                codes::INVALID_REQUEST,
                "batches are not part of MCP 2025-11-25: send one JSON-RPC message per POST",
            );
            return rpc_error(StatusCode::BAD_REQUEST, Value::Null, error);
        }
        Ok(v) => match Message::from_value(legacy::normalise(v)) {
            Ok(m) => m,
            Err(e) => {
                let error = ErrorObject::new(codes::INVALID_REQUEST, e.to_string());
                return rpc_error(StatusCode::BAD_REQUEST, Value::Null, error);
            }
        },
        Err(e) => {
            let error = ErrorObject::new(codes::PARSE_ERROR, format!("the body is not JSON: {e}"));
            return rpc_error(StatusCode::BAD_REQUEST, Value::Null, error);
        }
    };
    // MCP 2026-07-28: a request that declares its version in `_meta` needs no session.
    if let Message::Request { id, params, .. } = &message {
        match stateless::envelope(params.as_ref()) {
            Ok(Some(envelope)) => {
                let Message::Request { id, method, params } = message else {
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                };
                let request = modern::ModernRequest {
                    id,
                    method,
                    params,
                    envelope,
                };
                return modern::serve(app, query, tls, &headers, token, request).await;
            }
            Ok(None) => {}
            Err(error) => return rpc_error(StatusCode::BAD_REQUEST, id.clone(), error),
        }
    }
    let session_id = headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match session_id {
        None => open(app, query, tls, &headers, token, message).await,
        Some(sid) => {
            let Some(bridge) = app.mcp_sessions.get(&sid) else {
                let id = message.id().cloned().unwrap_or(Value::Null);
                let error = ErrorObject::new(
                    codes::SESSION_NOT_FOUND,
                    format!("no MCP session `{sid}` (it ended or expired)"),
                )
                .with_suggestion("start a new session with initialize, without Mcp-Session-Id");
                return rpc_error(StatusCode::NOT_FOUND, id, error);
            };
            if bridge.token != token {
                let id = message.id().cloned().unwrap_or(Value::Null);
                let error = ErrorObject::new(
                    codes::UNAUTHORIZED,
                    "this MCP session was opened with another token",
                )
                .with_suggestion("send the Authorization header the session was opened with, or start a new session");
                return rpc_error(StatusCode::UNAUTHORIZED, id, error);
            }
            match message {
                Message::Request { id, method, params } => {
                    let answer = bridge.request(id, method, params).await;
                    let lost = matches!(&answer, Message::Error { error, .. } if error.code == codes::SESSION_NOT_FOUND);
                    if lost && bridge.is_ended() {
                        // The session ended (its token expired, the server closed it): 404
                        // tells the client to start a new one.
                        app.mcp_sessions.remove(&sid, &app.registry);
                        return rpc(StatusCode::NOT_FOUND, &answer);
                    }
                    rpc(StatusCode::OK, &answer)
                }
                Message::Notification { method, params } => {
                    bridge.notify(method, params).await;
                    StatusCode::ACCEPTED.into_response()
                }
                // The server sends an HTTP client no requests, so there is nothing to answer.
                Message::Response { .. } | Message::Error { .. } => {
                    StatusCode::ACCEPTED.into_response()
                }
            }
        }
    }
}

/// A POST without a session: it must be `initialize`, which opens one.
async fn open(
    app: App,
    query: McpQuery,
    tls: Option<axum::Extension<Arc<axum_server::tls::TlsInfo>>>,
    headers: &HeaderMap,
    token: Option<String>,
    message: Message,
) -> Response {
    let (id, params) = match message {
        Message::Request { id, method, params } if method == "initialize" => (id, params),
        other => {
            let id = other.id().cloned().unwrap_or(Value::Null);
            let error = ErrorObject::new(
                codes::INVALID_REQUEST,
                "no MCP session: this endpoint serves MCP 2025-11-25 with sessions; send initialize first (without Mcp-Session-Id)",
            );
            return rpc_error(StatusCode::BAD_REQUEST, id, error);
        }
    };
    let (project, root) = match resolve_project(&app, query, headers) {
        Ok(p) => p,
        Err((status, error)) => return rpc_error(status, id, error),
    };
    let Some(admission) = app.cap.try_admit() else {
        metrics::counter!("codeflow_errors_total", "kind" => "capacity").increment(1);
        let error = ErrorObject::new(
            codes::LIMIT_EXCEEDED,
            format!("server at capacity ({} clients)", app.cap.max()),
        );
        return rpc_error(StatusCode::SERVICE_UNAVAILABLE, id, error);
    };
    let context = SocketContext {
        header_token: token,
        client_cert_names: crate::client_cert::names(tls.as_ref().map(|t| &t.0)),
        rate_limit: app.rate_limit,
        max_concurrent_requests: app.max_concurrent_requests,
    };
    let bridge = Bridge::start(
        app.registry.clone(),
        app.connection.clone(),
        context,
        admission,
    );
    let params = with_project(params, &project, &root);
    let answer = bridge.request(id, "initialize".into(), Some(params)).await;
    match &answer {
        Message::Response { result, .. } => {
            app.mcp_sessions.learn_identity(result);
            let codeflow_session = result.get("sessionId").and_then(Value::as_str);
            *bridge.session_id.lock() = codeflow_session.map(str::to_owned);
            let sid = match app.mcp_sessions.insert(bridge.clone(), &app.registry) {
                Ok(sid) => sid,
                Err(error) => {
                    sessions::end(&bridge, &app.registry);
                    return rpc_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        answer.id().cloned().unwrap_or(Value::Null),
                        error,
                    );
                }
            };
            let mut response = rpc(StatusCode::OK, &answer);
            if let Ok(value) = HeaderValue::from_str(&sid) {
                response.headers_mut().insert(SESSION_HEADER, value);
            }
            response
        }
        Message::Error { error, .. } => {
            let status = match error.code {
                codes::UNAUTHORIZED => StatusCode::UNAUTHORIZED,
                codes::FORBIDDEN => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            bridge.close();
            let mut response = rpc(status, &answer);
            if status == StatusCode::UNAUTHORIZED {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
        _ => rpc(StatusCode::INTERNAL_SERVER_ERROR, &answer),
    }
}

/// The project a request names (`?project=` or the `CodeFlow-Project` header) and the client's
/// path of it, or the HTTP status and error that refuse it.
pub(crate) fn resolve_project(
    app: &App,
    query: McpQuery,
    headers: &HeaderMap,
) -> Result<(ProjectId, String), (StatusCode, ErrorObject)> {
    let project = query.project.or_else(|| {
        headers
            .get(PROJECT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let Some(project) = project else {
        let error = ErrorObject::new(codes::INVALID_PARAMS, "which project? `/mcp` needs one")
            .with_suggestion("use /mcp?project=<id> (or the CodeFlow-Project header)");
        return Err((StatusCode::BAD_REQUEST, error));
    };
    let project = ProjectId::parse(&project).map_err(|e| {
        let error = ErrorObject::new(codes::INVALID_PARAMS, e.to_string())
            .with_suggestion("pick an id like `my-project` or `app.v2`");
        (StatusCode::BAD_REQUEST, error)
    })?;
    let root = project_root(app, &project, query.root).map_err(|e| (StatusCode::NOT_FOUND, e))?;
    Ok((project, root))
}

/// The client's path of the project (`root=`), or a default: a shared project's directory, the
/// root of the relay that opened the mirror, or `/<project>`. A project the server cannot read
/// without a relay is refused.
fn project_root(
    app: &App,
    project: &ProjectId,
    root: Option<String>,
) -> Result<String, ErrorObject> {
    let workspaces = &app.services.workspaces;
    let config = workspaces.config();
    let shared = config.shared.get(project.as_str());
    if shared.is_none()
        && !config
            .data_dir
            .join("mirrors")
            .join(project.as_str())
            .is_dir()
    {
        return Err(ErrorObject::new(
            codes::INVALID_PARAMS,
            format!(
                "project `{project}` has no mirror on this server and is not a shared project: `/mcp` reads what the server already has"
            ),
        )
        .with_suggestion(
            "connect through codeflow-client once (it streams the project here), or configure the project in shared_projects",
        ));
    }
    if let Some(root) = root {
        return Ok(root);
    }
    if let Some(dir) = shared {
        return Ok(dir.to_string_lossy().into_owned());
    }
    if let Some(paths) = workspaces.paths_of(project.as_str()) {
        return Ok(paths.client_root().as_str().to_owned());
    }
    Ok(format!("/{project}"))
}

/// The client's `initialize` params with what the session layer needs: the project and root,
/// and no file streaming (an HTTP client serves no files).
pub(crate) fn with_project(params: Option<Value>, project: &ProjectId, root: &str) -> Value {
    let mut params = match params {
        Some(Value::Object(p)) => p,
        _ => serde_json::Map::new(),
    };
    params.insert("project".into(), json!(project.as_str()));
    params.insert("projectRoot".into(), json!(root));
    // The token is the Authorization header's (the session layer reads it from there).
    params.remove("token");
    if let Some(Value::Object(caps)) = params.get_mut("capabilities")
        && let Some(Value::Object(experimental)) = caps.get_mut("experimental")
    {
        experimental.remove("codeflow");
    }
    Value::Object(params)
}

/// `DELETE /mcp`: ends the session named by `Mcp-Session-Id`.
pub async fn delete(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(refused) = crate::routes::refuse_origin(&app, &headers) {
        return refused;
    }
    let token = crate::routes::bearer_token(&headers);
    let Some(sid) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
        return (StatusCode::BAD_REQUEST, "DELETE /mcp needs Mcp-Session-Id").into_response();
    };
    match app.mcp_sessions.get(sid) {
        Some(bridge) if bridge.token == token => {
            app.mcp_sessions.remove(sid, &app.registry);
            StatusCode::NO_CONTENT.into_response()
        }
        Some(_) => (
            StatusCode::UNAUTHORIZED,
            "this MCP session was opened with another token",
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /mcp`: no server→client stream is offered.
pub async fn get() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST, DELETE")],
        "this server sends no messages of its own on /mcp: POST requests, read each answer",
    )
        .into_response()
}
