//! Embedding the session layer in another service: a `SessionService` that answers `ping`,
//! behind the same handshake, auth and resume CodeFlow uses.
//!
//! `cargo run -p codeflow-session --example embed`, then connect with any WebSocket client and
//! send `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"project":"demo","projectRoot":"/app"}}`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::routing::get;
use codeflow_session::{
    AuthConfig, Authenticator, Delivery, RegistryConfig, Session, SessionHandler, SessionRegistry,
    SessionService, SocketContext, serve_socket,
};
use codeflow_transport::{ConnectionConfig, ErrorObject, Message, codes, spawn_connection};
use serde_json::json;

/// Answers `initialize` and `ping`; everything else is "method not found".
struct PingService;

impl SessionService for PingService {
    fn start(&self, session: Arc<Session>) -> Arc<dyn SessionHandler> {
        Arc::new(PingSession(session))
    }
}

/// One session of the ping service. Each answer is quick, so it is sent from `deliver`
/// itself; slow work would go to a task of its own.
struct PingSession(Arc<Session>);

impl SessionHandler for PingSession {
    fn deliver(&self, message: Message) -> Delivery<'_> {
        if let Message::Request { id, method, .. } = message {
            let reply = match method.as_str() {
                "initialize" => {
                    Message::response(id, json!({"serverInfo": {"name": "embed", "version": "0"}}))
                }
                "ping" => Message::response(id, json!({})),
                other => Message::error(
                    id,
                    ErrorObject::new(codes::METHOD_NOT_FOUND, format!("no {other}")),
                ),
            };
            self.0.send_to_client(reply);
        }
        Box::pin(async {})
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = SessionRegistry::new(
        RegistryConfig::default(),
        Authenticator::new(AuthConfig::default()),
        Arc::new(PingService),
    );
    let app = Router::new()
        .route(
            "/ws",
            get(|State(registry): State<Arc<SessionRegistry>>, upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(move |socket| async move {
                    let (outbound, inbound) = spawn_connection(socket, ConnectionConfig::default());
                    serve_socket(registry, outbound, inbound, SocketContext::default()).await;
                })
            }),
        )
        .with_state(registry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3999").await?;
    println!("listening on ws://127.0.0.1:3999/ws");
    axum::serve(listener, app).await?;
    Ok(())
}
