//! MCP 2026-07-28 on `/mcp`: stateless requests, each carrying its version and capabilities
//! in `_meta` and the Streamable HTTP headers that mirror them (`MCP-Protocol-Version`,
//! `Mcp-Method`, `Mcp-Name`), with no `initialize` and no `Mcp-Session-Id`.
//!
//! Requests of one token on one project share a session the server opens for them (a
//! [`Bridge`] keyed by token, project and root, ended when idle), so a stateless client costs
//! one session, not one per request; what that session may do is the token's. Answers are
//! shaped by [`codeflow_transport::stateless`], as the relay shapes them.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use codeflow_session::SocketContext;
use codeflow_transport::stateless::{self, Envelope, HEADER_MISMATCH};
use codeflow_transport::{ErrorObject, Message, codes};
use serde_json::Value;

use super::bridge::Bridge;
use super::{McpQuery, resolve_project, rpc, rpc_error, with_project};
use crate::app::App;

/// A modern request, read.
pub struct ModernRequest {
    pub id: Value,
    pub method: String,
    pub params: Option<Value>,
    pub envelope: Envelope,
}

/// Serves one modern request.
pub async fn serve(
    app: App,
    query: McpQuery,
    tls: Option<axum::Extension<Arc<axum_server::tls::TlsInfo>>>,
    headers: &HeaderMap,
    token: Option<String>,
    request: ModernRequest,
) -> Response {
    let ModernRequest {
        id,
        method,
        params,
        envelope,
    } = request;
    if let Err(error) = check_headers(headers, &envelope, &method, params.as_ref()) {
        return rpc_error(StatusCode::BAD_REQUEST, id, error);
    }
    if method == "server/discover" {
        let result = app.mcp_sessions.identity().discover();
        return rpc(StatusCode::OK, &Message::response(id, result));
    }
    if stateless::removed(&method) {
        let error = ErrorObject::new(
            codes::METHOD_NOT_FOUND,
            format!(
                "method `{method}` is not part of MCP {}",
                stateless::MODERN_VERSION
            ),
        );
        return rpc_error(StatusCode::NOT_FOUND, id, error);
    }
    let (project, root) = match resolve_project(&app, query, headers) {
        Ok(p) => p,
        Err((status, error)) => return rpc_error(status, id, error),
    };
    let key = format!(
        "{}\n{}\n{root}",
        token.as_deref().unwrap_or_default(),
        project.as_str()
    );
    let stripped = stateless::strip(params);
    // A shared session that ended meanwhile (expired, server closed it) is opened again once.
    for _ in 0..2 {
        let bridge = match app.mcp_sessions.stateless_get(&key) {
            Some(bridge) => bridge,
            None => {
                let context = SocketContext {
                    header_token: token.clone(),
                    client_cert_names: crate::client_cert::names(tls.as_ref().map(|t| &t.0)),
                    rate_limit: app.rate_limit,
                    max_concurrent_requests: app.max_concurrent_requests,
                };
                match open(&app, context, &envelope, &project, &root).await {
                    Ok(bridge) => {
                        match app
                            .mcp_sessions
                            .stateless_insert(&key, bridge, &app.registry)
                        {
                            Ok(bridge) => bridge,
                            Err(error) => {
                                return rpc_error(StatusCode::SERVICE_UNAVAILABLE, id, error);
                            }
                        }
                    }
                    Err((status, error)) => return rpc_error(status, id, error),
                }
            }
        };
        let answer = bridge
            .request(id.clone(), method.clone(), stripped.clone())
            .await;
        match answer {
            Message::Response { id, result } => {
                let result = app.mcp_sessions.identity().translate(&method, result);
                return rpc(StatusCode::OK, &Message::response(id, result));
            }
            Message::Error { error, .. } if error.code == codes::SESSION_NOT_FOUND => {
                app.mcp_sessions.stateless_remove(&key, &app.registry);
            }
            Message::Error { id, error } => {
                let status = match error.code {
                    codes::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
                    codes::UNAUTHORIZED => StatusCode::UNAUTHORIZED,
                    codes::FORBIDDEN => StatusCode::FORBIDDEN,
                    _ => StatusCode::OK,
                };
                return rpc_error(status, id, error);
            }
            other => return rpc(StatusCode::OK, &other),
        }
    }
    let error = ErrorObject::new(
        codes::SESSION_NOT_FOUND,
        "the session for these requests ended twice in a row",
    )
    .with_suggestion("retry the request");
    rpc_error(StatusCode::SERVICE_UNAVAILABLE, id, error)
}

/// Opens the session a token's stateless requests on a project share.
async fn open(
    app: &App,
    context: SocketContext,
    envelope: &Envelope,
    project: &codeflow_session::ProjectId,
    root: &str,
) -> Result<Arc<Bridge>, (StatusCode, ErrorObject)> {
    let Some(admission) = app.cap.try_admit() else {
        metrics::counter!("codeflow_errors_total", "kind" => "capacity").increment(1);
        let error = ErrorObject::new(
            codes::LIMIT_EXCEEDED,
            format!("server at capacity ({} clients)", app.cap.max()),
        );
        return Err((StatusCode::SERVICE_UNAVAILABLE, error));
    };
    let bridge = Bridge::start(
        app.registry.clone(),
        app.connection.clone(),
        context,
        admission,
    );
    let params = with_project(Some(stateless::session_params(envelope)), project, root);
    let answer = bridge
        .request(Value::Null, "initialize".into(), Some(params))
        .await;
    match answer {
        Message::Response { result, .. } => {
            let session = result.get("sessionId").and_then(Value::as_str);
            *bridge.session_id.lock() = session.map(str::to_owned);
            app.mcp_sessions.learn_identity(&result);
            // The session's client has no more to say before its requests.
            bridge
                .notify(
                    "notifications/initialized".into(),
                    Some(serde_json::json!({})),
                )
                .await;
            Ok(bridge)
        }
        Message::Error { error, .. } => {
            bridge.close();
            let status = match error.code {
                codes::UNAUTHORIZED => StatusCode::UNAUTHORIZED,
                codes::FORBIDDEN => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            Err((status, error))
        }
        _ => {
            bridge.close();
            Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorObject::new(
                    codes::INTERNAL_ERROR,
                    "the session did not answer initialize",
                ),
            ))
        }
    }
}

/// Streamable HTTP's mirrored headers must match the body (`HeaderMismatch` otherwise).
fn check_headers(
    headers: &HeaderMap,
    envelope: &Envelope,
    method: &str,
    params: Option<&Value>,
) -> Result<(), ErrorObject> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mismatch =
        |what: String| ErrorObject::new(HEADER_MISMATCH, format!("Header mismatch: {what}"));
    match header("mcp-protocol-version") {
        Some(v) if v == envelope.version => {}
        Some(v) => {
            return Err(mismatch(format!(
                "MCP-Protocol-Version `{v}` does not match the body's `{}`",
                envelope.version
            )));
        }
        None => {
            return Err(mismatch(
                "the MCP-Protocol-Version header is missing".into(),
            ));
        }
    }
    match header("mcp-method") {
        Some(v) if v == method => {}
        Some(v) => {
            return Err(mismatch(format!(
                "Mcp-Method `{v}` does not match the body's `{method}`"
            )));
        }
        None => return Err(mismatch("the Mcp-Method header is missing".into())),
    }
    let name_field = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return Ok(()),
    };
    let body = params
        .and_then(|p| p.get(name_field))
        .and_then(Value::as_str)
        .unwrap_or_default();
    match header("mcp-name").map(decode) {
        Some(Some(v)) if v == body => Ok(()),
        Some(_) => Err(mismatch(format!(
            "Mcp-Name does not match the body's `{body}`"
        ))),
        None => Err(mismatch("the Mcp-Name header is missing".into())),
    }
}

/// A header value, decoded from `=?base64?…?=` when it is in that form.
fn decode(value: &str) -> Option<String> {
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        None => Some(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_decoded() {
        assert_eq!(decode("health_check").as_deref(), Some("health_check"));
        assert_eq!(
            decode("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, 世界")
        );
        assert_eq!(decode("=?base64?%%%?="), None);
    }
}
