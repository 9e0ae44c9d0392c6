//! HTTP routes: `/ws`, `/mcp` (MCP Streamable HTTP, see [`crate::mcp_http`]), `/healthz`,
//! `/readyz`, `/metrics`, and the web console on `/ui`.

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use codeflow_session::{SocketContext, serve_socket};
use codeflow_transport::{close, spawn_connection};
use serde_json::json;

use crate::app::App;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/ws", get(websocket))
        .route(
            "/mcp",
            axum::routing::post(crate::mcp_http::post)
                .get(crate::mcp_http::get)
                .delete(crate::mcp_http::delete),
        )
        .route("/ws/terminal/{id}", get(crate::terminal_socket::upgrade))
        .route(
            "/ws/file-stream/{operation_id}",
            get(crate::file_stream_socket::upgrade),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::console::routes())
        .with_state(app)
}

pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_owned())
}

/// Browsers send `Origin`; a page on another site must not drive a server the browser can
/// reach (cross-site WebSocket hijacking). Clients that are not browsers send none. `Some` is
/// the refusal to answer with.
pub(crate) fn refuse_origin(app: &App, headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or_default();
    let allowed = app
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        || console_origin(origin, headers, app.registry.auth.requires_auth());
    if allowed {
        return None;
    }
    metrics::counter!("codeflow_errors_total", "kind" => "origin").increment(1);
    Some(
        (
            StatusCode::FORBIDDEN,
            axum::Json(json!({
                "error": format!("origin `{origin}` is not allowed"),
                "suggestion": "the operator can add it to allowed_origins",
            })),
        )
            .into_response(),
    )
}

async fn websocket(
    State(app): State<App>,
    tls: Option<axum::Extension<std::sync::Arc<axum_server::tls::TlsInfo>>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Some(refused) = refuse_origin(&app, &headers) {
        return refused;
    }
    let header_token = bearer_token(&headers);
    // A bad header token is refused before the upgrade: no socket is spent on it. (A token in
    // the initialize params can only be checked after.)
    if let Some(token) = &header_token
        && let Err(e) = app.registry.auth.verify(Some(token))
    {
        metrics::counter!("codeflow_errors_total", "kind" => "auth").increment(1);
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": e.to_string(), "suggestion": e.suggestion()})),
        )
            .into_response();
    }
    // The admission holds the connection's slot and its share of the connections gauge until
    // it is dropped, which also happens when the task below panics.
    let admission = app.cap.try_admit();
    let config = app.connection.clone();
    app.connection
        .apply_to_upgrade(upgrade)
        .on_upgrade(move |socket| async move {
            let (outbound, inbound) = spawn_connection(socket, config);
            let Some(_admission) = admission else {
                metrics::counter!("codeflow_errors_total", "kind" => "capacity").increment(1);
                outbound.close(
                    close::POLICY,
                    format!("server at capacity ({} clients)", app.cap.max()),
                );
                return;
            };
            let context = SocketContext {
                header_token,
                client_cert_names: crate::client_cert::names(tls.as_ref().map(|t| &t.0)),
                rate_limit: app.rate_limit,
                max_concurrent_requests: app.max_concurrent_requests,
            };
            serve_socket(app.registry.clone(), outbound, inbound, context).await;
        })
}

/// Whether `origin` is the server's own web console (`/ui`, served from this host and port):
/// the `Origin`'s host and port are the request's `Host`. Allowed when the server checks
/// credentials (a page can do nothing without a token the user pasted), or when the host is a
/// loopback address (a DNS-rebinding page has its own host name, never `127.0.0.1`).
fn console_origin(origin: &str, headers: &HeaderMap, requires_auth: bool) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Some(authority) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    if !authority.eq_ignore_ascii_case(host) {
        return false;
    }
    let name = match authority.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => authority,
    };
    requires_auth || matches!(name, "127.0.0.1" | "[::1]" | "localhost")
}

async fn healthz(State(app): State<App>) -> impl IntoResponse {
    let stats = app.registry.stats();
    axum::Json(json!({
        "status": "ok",
        "service": "codeflow-server",
        "version": app.services.version,
        "uptime_secs": app.services.started.elapsed().as_secs_f64(),
        "connections": app.cap.in_use(),
        "sessions": stats.sessions,
        "projects": stats.projects.len(),
    }))
}

async fn readyz(State(app): State<App>) -> impl IntoResponse {
    if app.registry.is_shutting_down() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "reason": "shutting down"})),
        )
    } else {
        (StatusCode::OK, axum::Json(json!({"ready": true})))
    }
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, h.parse().expect("header"));
        headers
    }

    #[test]
    fn the_console_origin_is_the_servers_own() {
        let local = host("127.0.0.1:8080");
        assert!(console_origin("http://127.0.0.1:8080", &local, false));
        assert!(!console_origin("http://127.0.0.1:9090", &local, false));
        assert!(!console_origin("http://evil.example", &local, true));
        assert!(!console_origin("null", &local, true));
        // A name (DNS rebinding could point it at us): only when credentials are checked.
        let named = host("codeflow.example");
        assert!(!console_origin("https://codeflow.example", &named, false));
        assert!(console_origin("https://codeflow.example", &named, true));
        assert!(!console_origin(
            "https://codeflow.example",
            &HeaderMap::new(),
            true
        ));
    }
}
