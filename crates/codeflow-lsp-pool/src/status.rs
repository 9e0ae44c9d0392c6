//! Status snapshots for the `health_check` tool.

use std::path::PathBuf;

use serde::Serialize;

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    /// Not running (never started, or stopped when idle); starts on next use.
    Stopped,
    /// Spawned, `initialize` not answered yet.
    Starting,
    /// Initialized and serving.
    Running,
    /// Crashed; waiting out the backoff or re-initializing.
    Restarting,
    /// Orderly shutdown in progress.
    Stopping,
    /// Could not start, or gave up after repeated crashes (see `last_error`).
    Failed,
}

/// One managed server, as `health_check` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    /// Project id.
    pub project: String,
    /// Server id.
    pub server_id: String,
    /// Language label.
    pub language: String,
    /// The server's root directory.
    pub root: PathBuf,
    /// State.
    pub state: ServerState,
    /// Pid of the running instance.
    pub pid: Option<u32>,
    /// Seconds since the running instance started.
    pub uptime_secs: Option<f64>,
    /// True while the server reports indexing (`$/progress` not ended).
    pub indexing: bool,
    /// Instances that initialized successfully.
    pub starts: u64,
    /// Automatic restarts after crashes.
    pub restarts: u32,
    /// Crashes seen (exits, broken pipes, failed re-initializations).
    pub crashes: u32,
    /// Documents open in the server.
    pub open_documents: usize,
    /// Requests waiting for an answer.
    pub pending_requests: usize,
    /// The last failure, if any.
    pub last_error: Option<String>,
}
