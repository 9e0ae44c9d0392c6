//! CodeFlow sessions.
//!
//! A session is one client's conversation with the server: who it is ([`Grant`]), which
//! project it works on ([`ProjectId`], [`ClientRoot`]), and the service serving it. Sessions
//! outlive sockets: [`serve_socket`] performs the handshake, attaches the socket to a new or
//! resumed [`Session`], and routes messages until the socket drops; the session then waits
//! [`RegistryConfig::resume_grace`] for a resume.
//!
//! This crate knows nothing of LSP or files; what serves a session is a [`SessionService`].

#![warn(missing_docs)]

pub mod audit;
pub mod auth;
pub mod authorize;
pub mod broker;
pub mod caps;
pub mod channels;
pub mod client_cert;
pub mod handshake;
pub mod jwks;
pub mod memory;
pub mod methods;
mod metrics;
pub mod registry;
pub mod service;
pub mod session;
pub mod socket;
pub mod ssh_login;

pub use auth::{
    AuthConfig, AuthError, Authenticator, Grant, MIN_SECRET_BYTES, MintRequest, ProjectScope, Right,
};
pub use authorize::Forbidden;
pub use broker::{
    AppendId, BrokerError, BrokerEvent, ChannelBroker, StoredChannel, StoredPublication,
};
pub use caps::{Admission, ConnectionCap};
pub use channels::{Channel, ChannelConfig, Channels, Position};
pub use client_cert::CertGrant;
pub use codeflow_types::{ClientRoot, ProjectError, ProjectId};
pub use handshake::{Handshake, MAX_PROTOCOL_VERSION};
pub use methods::{MethodFamily, MethodReply};
pub use registry::{RegistryConfig, RegistryStats, SessionRegistry};
pub use service::{Delivery, SessionHandler, SessionService};
pub use session::Session;
pub use socket::{RateLimit, SocketContext, serve_socket};
