//! Runs the `claude` CLI for CodeFlow projects.
//!
//! - [`Executor`] — the projects store (metadata persisted per project with atomic writes,
//!   reloaded on start, live runs of a previous process closed with
//!   `complete {reason: "server restarted"}`), runs, and the methods clients call
//!   (`projects/*`, `claude/*`).
//! - `run` — one run's supervision: stream-json lines, watchdogs, stopping its process group.
//! - [`process`] — starting the CLI (argument vector, stdin closed, filtered environment, own
//!   process group) and signalling its group.
//! - [`lines`] — bounded-length line reading; [`stream_json`] — what one line of it is.
//! - [`log`] and [`history`] — the per-project message log (group commit, rotation, torn-line
//!   repair) and its time queries.
//! - [`paths`] — project ids and directories under the projects root.
//! - [`sink`] — the seams to the server: [`EventSink`] (where run events go) and [`Caller`]
//!   (who asks, and what they may do); [`streamed`] — [`StreamedFiles`], a streamed project's
//!   files (copied out into a run's working copy, its changes written back to the client).
//! - [`working_copy`] — a run's private copy of a streamed project and the record of its
//!   changes (`claude/changes`).
//!
//! It deliberately knows nothing of sessions, WebSocket or LSP.

#![warn(missing_docs)]

pub mod atomic;
pub mod config;
pub mod error;
pub mod executor;
pub mod history;
pub mod lines;
pub mod log;
mod metrics;
pub mod paths;
pub mod process;
pub mod project;
pub(crate) mod run;
pub mod sink;
pub mod stream_json;
pub mod streamed;
pub mod working_copy;

pub use config::{ExecutorConfig, Limits, LogConfig};
pub use error::{ErrorKind, ExecError};
pub use executor::Executor;
pub use history::{HistoryPage, HistoryQuery};
pub use log::{MessageLog, NewEntry};
pub use sink::{Caller, EventSink, Need};
pub use streamed::{FileChange, StreamedFiles, WriteBackOutcome};
