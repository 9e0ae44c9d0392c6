//! The `/mcp` sessions, by `Mcp-Session-Id`: bounded, and ended after an idle spell.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use codeflow_session::SessionRegistry;
use codeflow_transport::{ErrorObject, codes};
use parking_lot::Mutex;

use super::bridge::Bridge;

/// Most `/mcp` sessions at once (each also holds a connection slot).
const MAX_SESSIONS: usize = 1024;
/// A session nobody has used for this long is ended.
pub const IDLE: Duration = Duration::from_secs(30 * 60);

/// The live `/mcp` sessions.
#[derive(Default)]
pub struct McpSessions {
    sessions: Mutex<HashMap<String, Arc<Bridge>>>,
}

impl McpSessions {
    /// The session `id`, if it is live.
    pub fn get(&self, id: &str) -> Option<Arc<Bridge>> {
        self.sessions.lock().get(id).cloned()
    }

    /// Adds a session; returns its `Mcp-Session-Id`. Idle sessions are ended first; when the
    /// table is still full the new one is refused.
    pub fn insert(
        &self,
        bridge: Arc<Bridge>,
        registry: &SessionRegistry,
    ) -> Result<String, ErrorObject> {
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, b| {
            let idle = b.last_used.lock().elapsed() >= IDLE;
            if idle {
                end(b, registry);
            }
            !idle
        });
        if sessions.len() >= MAX_SESSIONS {
            return Err(ErrorObject::new(
                codes::LIMIT_EXCEEDED,
                format!("the server already has {MAX_SESSIONS} MCP HTTP sessions"),
            )
            .with_suggestion("end sessions you no longer use (DELETE /mcp)"));
        }
        let id = uuid::Uuid::new_v4().to_string();
        sessions.insert(id.clone(), bridge);
        Ok(id)
    }

    /// Ends and forgets the session `id`.
    pub fn remove(&self, id: &str, registry: &SessionRegistry) {
        if let Some(bridge) = self.sessions.lock().remove(id) {
            end(&bridge, registry);
        }
    }
}

/// Ends a bridge's CodeFlow session now (not after the resume grace a dropped socket gets).
pub fn end(bridge: &Bridge, registry: &SessionRegistry) {
    if let Some(session) = bridge
        .session_id
        .lock()
        .as_deref()
        .and_then(|sid| registry.get(sid))
    {
        session.close();
    }
    bridge.close();
}
