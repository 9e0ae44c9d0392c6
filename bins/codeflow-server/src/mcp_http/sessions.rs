//! The `/mcp` sessions, by `Mcp-Session-Id`: bounded, and ended after an idle spell.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use codeflow_session::SessionRegistry;
use codeflow_transport::stateless::ServerIdentity;
use codeflow_transport::{ErrorObject, codes};
use parking_lot::Mutex;

use super::bridge::Bridge;

/// Most `/mcp` sessions at once (each also holds a connection slot).
const MAX_SESSIONS: usize = 1024;
/// A session nobody has used for this long is ended.
pub const IDLE: Duration = Duration::from_secs(30 * 60);

/// The live `/mcp` sessions: those clients opened (2025-11-25) and those the server opened for
/// a token's stateless requests on a project (2026-07-28).
#[derive(Default)]
pub struct McpSessions {
    sessions: Mutex<HashMap<String, Arc<Bridge>>>,
    /// Stateless requests' sessions, by token, project and root.
    stateless: Mutex<HashMap<String, Arc<Bridge>>>,
    /// What the server says of itself, for `server/discover` and modern answers.
    identity: Mutex<ServerIdentity>,
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
        sweep(&mut sessions, registry);
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

    /// The session stateless requests with this key share, if it is live.
    pub fn stateless_get(&self, key: &str) -> Option<Arc<Bridge>> {
        self.stateless.lock().get(key).cloned()
    }

    /// Adds the session for stateless requests with this key; when another request opened one
    /// meanwhile, ends this one and returns that.
    pub fn stateless_insert(
        &self,
        key: &str,
        bridge: Arc<Bridge>,
        registry: &SessionRegistry,
    ) -> Result<Arc<Bridge>, ErrorObject> {
        let mut stateless = self.stateless.lock();
        if let Some(existing) = stateless.get(key) {
            end(&bridge, registry);
            return Ok(existing.clone());
        }
        sweep(&mut stateless, registry);
        if stateless.len() >= MAX_SESSIONS {
            end(&bridge, registry);
            return Err(ErrorObject::new(
                codes::LIMIT_EXCEEDED,
                format!("the server already has {MAX_SESSIONS} sessions for stateless MCP clients"),
            ));
        }
        stateless.insert(key.to_owned(), bridge.clone());
        Ok(bridge)
    }

    /// Ends and forgets the stateless session with this key.
    pub fn stateless_remove(&self, key: &str, registry: &SessionRegistry) {
        if let Some(bridge) = self.stateless.lock().remove(key) {
            end(&bridge, registry);
        }
    }

    /// The server's identity as last heard.
    pub fn identity(&self) -> ServerIdentity {
        self.identity.lock().clone()
    }

    /// Learns the server's identity from a session's `initialize` answer.
    pub fn learn_identity(&self, initialize_result: &serde_json::Value) {
        self.identity.lock().learn(initialize_result);
    }

    /// Ends and forgets the session `id`.
    pub fn remove(&self, id: &str, registry: &SessionRegistry) {
        if let Some(bridge) = self.sessions.lock().remove(id) {
            end(&bridge, registry);
        }
    }
}

/// Ends the sessions nobody has used for [`IDLE`].
fn sweep(sessions: &mut HashMap<String, Arc<Bridge>>, registry: &SessionRegistry) {
    sessions.retain(|_, b| {
        let idle = b.last_used.lock().elapsed() >= IDLE;
        if idle {
            end(b, registry);
        }
        !idle
    });
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
