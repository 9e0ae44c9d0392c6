//! What a project's mirror last did with a manifest sync, for status views (the web console's
//! projects page): a sync running now, the last one that finished, the last one refused.
//!
//! Kept in the workspace's [`crate::Extensions`], so it lives and dies with the project.

use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{Value, json};

/// A project's mirror sync record.
#[derive(Debug, Default)]
pub struct SyncState {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Syncs running now (several sessions may sync at once).
    running: usize,
    /// Files the running sync still has to fetch (its last progress report).
    pending_files: usize,
    /// The running sync's last progress report, as JSON (`null` before the first).
    progress: Value,
    last: Option<Value>,
    refused: Option<Value>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl SyncState {
    /// A sync began.
    pub fn started(&self) {
        let mut inner = self.inner.lock();
        inner.running += 1;
        inner.pending_files = 0;
        inner.progress = Value::Null;
    }

    /// The running sync's progress (`via`: "transfer" or "readFiles", how the files come).
    pub fn progress(&self, p: &codeflow_file_stream::SyncProgress, via: &str) {
        let mut inner = self.inner.lock();
        inner.pending_files = p.total_files.saturating_sub(p.done_files);
        inner.progress = json!({
            "via": via,
            "files": p.done_files,
            "totalFiles": p.total_files,
            "bytes": p.done_bytes,
            "totalBytes": p.total_bytes,
        });
    }

    /// A sync ended (`outcome`: what it did, or why it failed).
    pub fn finished(&self, session: &str, outcome: Result<Value, String>) {
        let mut inner = self.inner.lock();
        inner.running = inner.running.saturating_sub(1);
        inner.pending_files = 0;
        inner.progress = Value::Null;
        let mut record = json!({"session": session, "at": now_ms()});
        match outcome {
            Ok(summary) => {
                record["ok"] = true.into();
                record["summary"] = summary;
            }
            Err(error) => {
                record["ok"] = false.into();
                record["error"] = error.into();
            }
        }
        inner.last = Some(record);
    }

    /// A sync was refused (another connected session's tree), before it started.
    pub fn refused(&self, session: &str, message: String) {
        self.inner.lock().refused =
            Some(json!({"session": session, "at": now_ms(), "message": message}));
    }

    /// The record as JSON: `{syncing, pendingFiles, progress, last, lastRefused}` (times in
    /// ms since the Unix epoch; `progress` is `{via, files, totalFiles, bytes, totalBytes}`
    /// while a sync runs; `last` and `lastRefused` null until there is one).
    pub fn to_json(&self) -> Value {
        let inner = self.inner.lock();
        json!({
            "syncing": inner.running > 0,
            "pendingFiles": inner.pending_files,
            "progress": inner.progress,
            "last": inner.last,
            "lastRefused": inner.refused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_running_finished_and_refused() {
        let state = SyncState::default();
        assert_eq!(state.to_json()["syncing"], false);
        assert!(state.to_json()["last"].is_null());
        state.started();
        let step = codeflow_file_stream::SyncProgress {
            total_files: 5,
            done_files: 2,
            total_bytes: 50,
            done_bytes: 20,
        };
        state.progress(&step, "transfer");
        let running = state.to_json();
        assert_eq!(running["syncing"], true);
        assert_eq!(running["pendingFiles"], 3);
        assert_eq!(running["progress"]["via"], "transfer");
        assert_eq!(running["progress"]["bytes"], 20);
        state.finished("s1", Ok(json!({"fetched": 3})));
        let done = state.to_json();
        assert_eq!(done["syncing"], false);
        assert_eq!(done["last"]["ok"], true);
        assert_eq!(done["last"]["summary"]["fetched"], 3);
        state.refused("s2", "another tree".into());
        assert_eq!(state.to_json()["lastRefused"]["session"], "s2");
        state.started();
        state.finished("s1", Err("disk full".into()));
        assert_eq!(state.to_json()["last"]["error"], "disk full");
    }
}
