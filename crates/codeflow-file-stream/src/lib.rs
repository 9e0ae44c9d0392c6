//! CodeFlow file streaming: how a project's files on a client machine reach the language
//! servers on the CodeFlow server, and how server-side edits get back.
//!
//! Both sides of the file-stream protocol live here:
//!
//! - **relay (client) side** — [`FileServer`] answers every `client/*` request for one project
//!   root through the path [`Jail`]; [`Watcher`] turns changes on disk into
//!   [`FileChanged`] messages (full content, a line delta, or a hash) and builds the initial
//!   [`Manifest`];
//! - **server side** — [`Mirror`] keeps `<data_dir>/mirrors/<project>/` equal to the client's
//!   tree (manifest sync with bounded concurrency, live changes, exact content cache), or, for
//!   a shared project, only translates paths; [`WriteBack`] applies multi-file edits to the
//!   client all or nothing; [`PathMap`] translates [`ClientPath`]s, [`MirrorPath`]s and
//!   `file://` URIs.
//!
//! What this crate deliberately is **not**: it knows nothing of WebSocket, JSON-RPC framing,
//! LSP or MCP. The server reaches a relay through the one-method [`ClientFiles`] trait, which
//! the transport implements over its socket (and [`FileServer`] implements in-process).
//!
//! # Wiring
//!
//! Relay:
//! ```no_run
//! # async fn relay() -> Result<(), codeflow_file_stream::FileError> {
//! use codeflow_file_stream::{FileServer, Limits, Watcher, WatcherConfig};
//! let limits = Limits::from_env()?; // FILE_SIZE_LIMIT, PROJECT_FILE_LIMIT, PROJECT_BYTES_LIMIT
//! let (sink, mut changes) = tokio::sync::mpsc::channel(256);
//! let watcher = Watcher::start("/app", WatcherConfig { limits, ..Default::default() }, sink).await?;
//! // The watcher must know what the server's write-back changed (see `watcher`).
//! let files = FileServer::new("/app", limits)?.reporting_to(watcher.write_notices());
//! let manifest_params = watcher.manifest().to_params(); // send as `server/syncManifest`
//! // for each `server/fileChanged` to forward: changes.recv().await
//! // for each `client/*` request: files.handle(method, params).await -> Result<Value, FileError>
//! //   (errors go on the wire as RemoteError::from(err): code, message, data.suggestion)
//! // before forwarding each `tools/call`: watcher.flush().await?, then forward in order.
//! # let _ = (manifest_params, &mut changes); Ok(()) }
//! ```
//!
//! Server:
//! ```no_run
//! # async fn server(client: &dyn codeflow_file_stream::ClientFiles,
//! #   params: codeflow_file_stream::protocol::SyncManifestParams,
//! #   change: codeflow_file_stream::FileChanged) -> Result<(), codeflow_file_stream::FileError> {
//! use codeflow_file_stream::{Expect, Limits, Manifest, Mirror, WriteBack};
//! let mirror = Mirror::open("./.codeflow".as_ref(), &codeflow_types::ProjectId::parse("my-project").expect("a valid id"), "/app").await?;
//! let manifest = Manifest::from_params(params, &Limits::default())?;
//! let answer = mirror.plan(&manifest).to_result(); // the `server/syncManifest` result
//! mirror.sync(&manifest, client, &|p| tracing::info!(?p, "sync")).await?;
//! mirror.apply_change(change, client).await?; // per `server/fileChanged`, in arrival order
//! let path = codeflow_file_stream::ClientPath::parse("/app/src/a.py")?;
//! let in_mirror = mirror.paths().to_mirror(&path)?; // what the language server sees
//! let base = mirror.hash(&in_mirror).unwrap_or_default();
//! WriteBack::new()
//!     .write(path, b"new text\n".to_vec(), Expect::Hash(base))
//!     .apply_and_mirror(client, &mirror)
//!     .await?;
//! # let _ = answer; Ok(()) }
//! ```
//!
//! # Invariants
//!
//! - Every path from the other side passes the jail before the disk is touched, on both
//!   sides: lexical checks in [`RelPath`]/[`ClientPath`] parsing, symlink checks in
//!   [`Jail::resolve`]. A [`MirrorPath`] is only made by a [`PathMap`] and never goes on the
//!   wire; only [`ClientPath`]s do.
//! - Nothing is overwritten on the client without the hash it was based on
//!   (`expectedHash`; `null` = must not exist). Writes are atomic (temporary file + rename,
//!   permissions kept).
//! - The mirror's index and cache change only through the mirror's own writes; there is no
//!   TTL. A slow fetch never overwrites a newer change (per-path versions).
//! - Every background task has an owner: the watcher thread stops when its [`Watcher`] is
//!   stopped or dropped; every channel is bounded (see [`watcher`] for the full-sink policy).
//!
//! Error codes are stable and listed in [`error`].

#![warn(missing_docs)]

mod atomic;
mod cache;
mod chunks;
pub mod client_files;
pub mod delta;
pub mod error;
mod filter;
mod hash_cache;
pub mod jail;
pub mod limits;
mod manifest;
pub mod mirror;
pub mod paths;
pub mod protocol;
mod read_many;
mod server_files;
mod tracked;
pub mod transfer;
mod walk;
pub mod watcher;
pub mod write_back;

pub use chunks::Chunks;
pub use client_files::ClientFiles;
pub use error::{FileError, RemoteError};
pub use filter::{ExcludeConfig, FileFilter};
pub use jail::{Jail, PlainDirs};
pub use limits::Limits;
pub use manifest::Manifest;
pub use mirror::{
    ChangeOutcome, IncomingFile, Mirror, MirrorConfig, PathMark, SyncPlan, SyncProgress, SyncReport,
};
pub use paths::{ClientPath, MirrorPath, PathMap, RelPath};
pub use protocol::{ChangeType, ContentHash, Encoding, FileChanged};
pub use server_files::FileServer;
pub use tracked::TrackedFiles;
pub use watcher::{ScanFeed, Scanned, Walked, Watcher, WatcherConfig, WriteNotices};
pub use write_back::{Expect, WriteBack, WriteBackReport};
