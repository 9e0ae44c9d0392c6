//! A project's metadata, persisted as `<state_dir>/<id>/project.json` with atomic writes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a project is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// No run is going on.
    Idle,
    /// A run is going on (one per project at a time).
    Executing,
    /// The last run could not be started (see `lastError`); the next run may succeed.
    Error,
}

/// The run a project is executing, as persisted: enough to close it after a restart and to
/// stop a process group left behind by a crashed server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveRun {
    /// The run's id.
    pub run_id: String,
    /// The run's process group id (killed on restart if it survived).
    pub pgid: i32,
    /// The leader's start time in clock ticks (to tell a reused pid apart).
    #[serde(default)]
    pub start_ticks: Option<u64>,
    /// Milliseconds since the Unix epoch.
    pub started_at: u64,
}

/// A project's persisted metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectMeta {
    /// The project id.
    pub id: String,
    /// The directory, relative to the projects root (empty for a streamed project).
    pub path: String,
    /// The project's files live in a client container and reach the server as a mirror:
    /// runs work on a private copy and write their changes back.
    #[serde(default)]
    pub streamed: bool,
    /// Idle, executing, or error.
    pub status: Status,
    /// The Claude conversation to resume (from the latest `system/init`).
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// Milliseconds since the Unix epoch of the last run or message.
    pub last_active: u64,
    /// The run going on, while executing.
    #[serde(default)]
    pub current_run: Option<LiveRun>,
    /// Why the last run failed, if it did.
    #[serde(default)]
    pub last_error: Option<String>,
    /// How many runs the project has had.
    #[serde(default)]
    pub runs: u64,
}

/// Where a project's metadata file is.
pub fn meta_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join(id).join("project.json")
}

/// Where a project's message log is.
pub fn log_dir(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join(id).join("messages")
}

/// Writes the metadata atomically and durably.
pub fn save(state_dir: &Path, meta: &ProjectMeta) -> std::io::Result<()> {
    let path = meta_path(state_dir, &meta.id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
    crate::atomic::write_atomic(&path, &bytes)
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    crate::log::now_micros() / 1000
}
