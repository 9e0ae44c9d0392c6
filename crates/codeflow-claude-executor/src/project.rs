//! A project's metadata, persisted as `<state_dir>/<id>/project.json` with atomic writes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a project is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Idle,
    Executing,
    /// The last run could not be started (see `lastError`); the next run may succeed.
    Error,
}

/// The run a project is executing, as persisted: enough to close it after a restart and to
/// stop a process group left behind by a crashed server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveRun {
    pub run_id: String,
    pub pgid: i32,
    #[serde(default)]
    pub start_ticks: Option<u64>,
    /// Milliseconds since the Unix epoch.
    pub started_at: u64,
}

/// A project's persisted metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectMeta {
    pub id: String,
    /// The directory, relative to the projects root (empty for a streamed project).
    pub path: String,
    /// The project's files live in a client container and reach the server as a mirror:
    /// runs work on a private copy and write their changes back.
    #[serde(default)]
    pub streamed: bool,
    pub status: Status,
    /// The Claude conversation to resume (from the latest `system/init`).
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    pub last_active: u64,
    #[serde(default)]
    pub current_run: Option<LiveRun>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub runs: u64,
}

pub fn meta_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join(id).join("project.json")
}

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
