//! Readiness of one server instance, from its `$/progress` reports (and rust-analyzer's
//! `experimental/serverStatus`), so requests that need an indexed workspace wait for indexing
//! to end instead of sleeping a fixed time.

use std::collections::HashSet;
use std::time::Duration;

use lsp_types::{NumberOrString, ProgressParams, ProgressParamsValue, WorkDoneProgress};
use serde_json::Value;
use tokio::sync::watch;

#[derive(Debug, Clone, Default)]
struct ReadyState {
    /// Work-done progress tokens that began and have not ended.
    active: HashSet<String>,
    /// Last `quiescent` from `experimental/serverStatus`, if the server sent one.
    quiescent: Option<bool>,
    /// Whether `quiescent` must be true before the server counts as ready.
    needs_quiescence: bool,
    /// Text a log message must contain before the server counts as ready (`None`: no such
    /// message is awaited, or it came).
    awaited_log: Option<String>,
}

impl ReadyState {
    fn ready(&self) -> bool {
        self.active.is_empty()
            && (!self.needs_quiescence || self.quiescent == Some(true))
            && self.awaited_log.is_none()
    }
}

/// Progress tracking for one server instance (a new one per restart).
#[derive(Debug)]
pub(crate) struct Readiness {
    state: watch::Sender<ReadyState>,
}

fn token_key(token: &NumberOrString) -> String {
    match token {
        NumberOrString::Number(n) => format!("#{n}"),
        NumberOrString::String(s) => s.clone(),
    }
}

impl Readiness {
    pub(crate) fn new(needs_quiescence: bool, awaited_log: Option<String>) -> Self {
        let (state, _) = watch::channel(ReadyState {
            needs_quiescence,
            awaited_log: awaited_log.filter(|t| !t.is_empty()),
            ..ReadyState::default()
        });
        Self { state }
    }

    /// Feed a `window/logMessage` (or `showMessage`) text: the awaited one makes the server
    /// ready (basedpyright answers empty until it logs that it found the project's files).
    pub(crate) fn on_log(&self, message: &str) {
        self.state.send_if_modified(|s| {
            if s.awaited_log
                .as_deref()
                .is_some_and(|t| message.contains(t))
            {
                s.awaited_log = None;
                true
            } else {
                false
            }
        });
    }

    /// Feed a `$/progress` notification's params. Unknown shapes (partial results) are ignored.
    pub(crate) fn on_progress(&self, params: Value) {
        let Ok(progress) = serde_json::from_value::<ProgressParams>(params) else {
            return;
        };
        let key = token_key(&progress.token);
        let ProgressParamsValue::WorkDone(work) = progress.value;
        match work {
            WorkDoneProgress::Begin(begin) => {
                tracing::debug!(token = %key, title = %begin.title, "progress begin");
                self.state.send_modify(|s| {
                    s.active.insert(key);
                });
            }
            WorkDoneProgress::End(_) => {
                tracing::debug!(token = %key, "progress end");
                self.state.send_if_modified(|s| s.active.remove(&key));
            }
            WorkDoneProgress::Report(_) => {}
        }
    }

    /// Feed rust-analyzer's `experimental/serverStatus` params (`{health, quiescent}`).
    pub(crate) fn on_server_status(&self, params: &Value) {
        if let Some(q) = params.get("quiescent").and_then(Value::as_bool) {
            self.state.send_modify(|s| s.quiescent = Some(q));
        }
    }

    /// Is the server idle (no indexing in progress)?
    pub(crate) fn is_ready(&self) -> bool {
        self.state.borrow().ready()
    }

    /// Wait until ready, at most `limit`. Returns whether it became ready; the caller sends
    /// its request either way (a slow index is no reason to fail a request).
    pub(crate) async fn wait(&self, limit: Duration) -> bool {
        let mut rx = self.state.subscribe();
        matches!(
            tokio::time::timeout(limit, rx.wait_for(ReadyState::ready)).await,
            Ok(Ok(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn progress_begin_and_end() {
        let r = Readiness::new(false, None);
        assert!(r.is_ready());
        r.on_progress(json!({"token": "idx", "value": {"kind": "begin", "title": "Indexing"}}));
        assert!(!r.is_ready());
        r.on_progress(json!({"token": "idx", "value": {"kind": "report", "percentage": 50}}));
        assert!(!r.wait(Duration::from_millis(10)).await);
        r.on_progress(json!({"token": "idx", "value": {"kind": "end"}}));
        assert!(r.wait(Duration::from_millis(10)).await);
        // Garbage is ignored, not fatal.
        r.on_progress(json!({"token": 1, "value": [1, 2]}));
        assert!(r.is_ready());
    }

    #[tokio::test]
    async fn quiescence() {
        let r = Readiness::new(true, None);
        assert!(!r.is_ready());
        r.on_server_status(&json!({"health": "ok", "quiescent": false}));
        assert!(!r.is_ready());
        r.on_server_status(&json!({"health": "ok", "quiescent": true}));
        assert!(r.is_ready());
    }

    #[tokio::test]
    async fn an_awaited_log_message() {
        let r = Readiness::new(false, Some("source file".into()));
        assert!(!r.is_ready());
        r.on_log("Starting service instance");
        assert!(!r.wait(Duration::from_millis(10)).await);
        r.on_log("Found 4 source files");
        assert!(r.is_ready());
    }
}
