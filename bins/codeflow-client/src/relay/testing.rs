//! Test support: two connection ends joined in memory, over a real WebSocket.

use codeflow_transport::{ConnectionConfig, Inbound, Outbound, spawn_connection};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

/// A client end and a server end of one in-memory WebSocket connection.
pub async fn connection_pair() -> ((Outbound, Inbound), (Outbound, Inbound)) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let (client, server) = tokio::join!(
        WebSocketStream::from_raw_socket(client, Role::Client, None),
        WebSocketStream::from_raw_socket(server, Role::Server, None),
    );
    (
        spawn_connection(client, ConnectionConfig::default()),
        spawn_connection(server, ConnectionConfig::default()),
    )
}
