//! Identifiers every CodeFlow crate shares, validated once at the boundary and trusted inward.
//!
//! - [`ProjectId`]: `[A-Za-z0-9._-]{1,64}`, not `.` or `..` — used in paths on the server, so
//!   the check is a security boundary.
//! - [`ClientRoot`]: the client's absolute, POSIX project root.
//! - [`path_text`]: the lexical rules every path from the network passes.
//! - [`ErrorObject`]: the JSON-RPC error object, the one wire form of every error.
//! - [`child_env`]: the clean environment every child process starts from.
//!
//! A leaf crate: it depends on nothing of CodeFlow, and every other crate may use it.

#![warn(missing_docs)]

pub mod child_env;
pub mod path_text;
pub mod project;
pub mod rpc_error;

pub use project::{ClientRoot, ProjectError, ProjectId};
pub use rpc_error::ErrorObject;
