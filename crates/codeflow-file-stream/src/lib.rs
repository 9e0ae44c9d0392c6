//! CodeFlow file streaming (placeholder docs; see the end of the work).

mod atomic;
pub mod client_files;
pub mod delta;
pub mod error;
mod filter;
pub mod jail;
pub mod limits;
mod manifest;
mod cache;
pub mod mirror;
pub mod write_back;
pub mod watcher;
pub mod paths;
pub mod protocol;
mod server_files;

pub use client_files::ClientFiles;
pub use error::{FileError, RemoteError};
pub use filter::{ExcludeConfig, FileFilter};
pub use jail::Jail;
pub use limits::Limits;
pub use manifest::Manifest;
pub use paths::{ClientPath, MirrorPath, PathMap, RelPath};
pub use protocol::{ChangeType, ContentHash, Encoding, FileChanged};
pub use server_files::FileServer;
pub use mirror::{ChangeOutcome, Mirror, MirrorConfig, SyncPlan, SyncProgress, SyncReport};
pub use write_back::{Expect, WriteBack, WriteBackReport};
pub use watcher::{Watcher, WatcherConfig};
