//! A JSON-RPC echo over WebSocket, both ends from this crate: an axum server answers every
//! request with its params; a client dials it and correlates the answer.
//!
//! `cargo run -p codeflow-transport --example echo`

use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::routing::get;
use codeflow_transport::{ConnectionConfig, Message, PendingRequests, connect, spawn_connection};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = ConnectionConfig::default();
    let server_config = config.clone();
    let app = Router::new().route(
        "/ws",
        get(move |upgrade: WebSocketUpgrade| {
            let config = server_config.clone();
            async move {
                config
                    .apply_to_upgrade(upgrade)
                    .on_upgrade(|socket| async move {
                        let (outbound, mut inbound) = spawn_connection(socket, config);
                        while let Some(message) = inbound.recv().await {
                            if let Message::Request { id, params, .. } = message {
                                let _ = outbound
                                    .send(&Message::response(id, params.unwrap_or_default()));
                            }
                        }
                    })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/ws", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (outbound, mut inbound) = connect(&url, None, &config).await?;
    let pending = PendingRequests::new("example");
    let request = pending.register("example/echo", json!({"hello": "world"}));
    outbound.send(&request.message)?;
    let router = pending.clone();
    tokio::spawn(async move {
        while let Some(message) = inbound.recv().await {
            router.resolve(message);
        }
    });
    let answer = request.response(Duration::from_secs(5)).await?;
    println!("echoed: {answer}");
    Ok(())
}
