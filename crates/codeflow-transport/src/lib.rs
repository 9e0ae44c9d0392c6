//! WebSocket JSON-RPC transport for CodeFlow.
//!
//! This crate turns WebSocket frames into JSON-RPC 2.0 [`Message`]s and back, for both ends of
//! a CodeFlow link: the server (axum's WebSocket) and the relay (tokio-tungstenite). It owns
//! frame and buffer limits, heartbeats, the bounded outbound queue with its slow-reader policy,
//! request/response correlation in both directions ([`PendingRequests`]), the codeflow-buddy
//! legacy message form ([`legacy::normalise`]), the shapes of MCP 2026-07-28's stateless
//! requests and answers ([`stateless`]), TLS set-up and reconnect backoff.
//!
//! It deliberately knows nothing of projects, sessions, LSP or MCP tools: a message is routed
//! by its shape (request, notification, response), never by what it means.

#![warn(missing_docs)]

pub mod backoff;
pub mod client;
pub mod close;
pub mod connection;
pub mod frame;
mod gate;
pub mod legacy;
pub mod message;
pub mod pending;
pub mod raw;
pub mod stateless;
pub mod tls;

pub use backoff::Backoff;
pub use client::{ConnectError, connect};
pub use connection::{
    CloseReason, ConnectionConfig, Inbound, Incoming, Outbound, SendError, spawn_connection,
};
pub use message::{ErrorObject, Message, RequestId, codes};
pub use pending::{PendingRequest, PendingRequests};
pub use raw::RawMessage;
