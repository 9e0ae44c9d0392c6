//! Server-side terminals: a shell in a PTY per terminal, started in a project's directory as a
//! session (and process group) of its own; any number of viewers attached over their own
//! sockets; a bounded scrollback sent first to each new viewer; a grace period after the last
//! viewer leaves, then the whole session of processes is killed; single-use tickets for
//! browsers, which cannot send an `Authorization` header on a WebSocket upgrade.
//!
//! Knows nothing of sockets, sessions or rights: the server wires a viewer to a WebSocket
//! and decides who may open what (`bins/codeflow-server/src/terminals.rs`).

#![warn(missing_docs)]

mod config;
mod control;
mod error;
mod process;
mod reaper;
mod registry;
mod scrollback;
mod terminal;
mod ticket;

pub use config::TerminalConfig;
pub use control::{Control, ServerControl};
pub use error::TerminalError;
pub use registry::{NewTerminal, Terminals};
pub use terminal::{Event, Info, Terminal, Viewer};
pub use ticket::{Ticket, TicketError, Tickets};
