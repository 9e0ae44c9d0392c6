//! MCP logging to the agent: `logging/setLevel` picks the threshold, and the server's notable
//! events for this session (a finished sync, a language server that gave up) are sent as
//! `notifications/message`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use codeflow_session::Session;
use codeflow_transport::Message;
use serde_json::{Value, json};

/// MCP (syslog) levels, in order.
const LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// A session's log channel to its client.
#[derive(Debug)]
pub struct ClientLog {
    session: Arc<Session>,
    threshold: AtomicU8,
}

impl ClientLog {
    /// Starts at `info`, as most clients expect until they say otherwise.
    pub fn new(session: Arc<Session>) -> Self {
        Self {
            session,
            threshold: AtomicU8::new(1),
        }
    }

    /// Sets the threshold from an MCP level name; unknown names are refused.
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        let index = LEVELS.iter().position(|l| *l == level).ok_or_else(|| {
            format!(
                "unknown log level `{level}`; use one of {}",
                LEVELS.join(", ")
            )
        })?;
        self.threshold.store(index as u8, Ordering::Relaxed);
        Ok(())
    }
}

impl codeflow_workspace::ClientNotices for ClientLog {
    fn notice(&self, level: &str, data: Value) {
        self.log(level, data);
    }
}

impl ClientLog {
    /// Sends `data` at `level` if the client wants that level.
    pub fn log(&self, level: &str, data: Value) {
        let Some(index) = LEVELS.iter().position(|l| *l == level) else {
            return;
        };
        if (index as u8) < self.threshold.load(Ordering::Relaxed) {
            return;
        }
        self.session.send_to_client(Message::notification(
            "notifications/message",
            json!({"level": level, "logger": "codeflow", "data": data}),
        ));
    }
}
