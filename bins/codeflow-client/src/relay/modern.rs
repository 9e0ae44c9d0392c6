//! The agent edge for MCP 2026-07-28, the stateless revision (its wire shapes are
//! [`codeflow_transport::stateless`]).
//!
//! A modern agent sends no `initialize`: every request carries its protocol version and
//! capabilities in `_meta`, and it may probe with `server/discover` first. The server's side
//! stays a 2025-11-25 session (it keeps the server→client `client/*` requests file streaming
//! needs), so the relay translates:
//! - `server/discover` is answered here, without the server, so an agent's probe (the official
//!   SDKs probe on a short-lived copy of the relay) never waits for a connection;
//! - the first modern request opens the WebSocket session with an `initialize` built from its
//!   `_meta` (held requests go out once the server has answered it, or get its refusal);
//! - each request goes upstream without the protocol's `_meta` keys, and each answer comes back
//!   with `resultType: "complete"` and the server's identity in `_meta` (and `ttlMs` and
//!   `cacheScope` on `tools/list`, which the revision requires);
//! - methods the revision removed (`ping`, `logging/setLevel`) get "method not found", and
//!   session-wide notifications (`notifications/message` and the like) are not sent to an
//!   agent that never opened a session of its own.
//!
//! Agents that send `initialize` are served exactly as before; the era is chosen per request,
//! so both can share one relay.

use std::collections::HashMap;

pub use codeflow_transport::stateless::{
    Envelope, MODERN_VERSION, ServerIdentity, envelope, removed, session_params, strip,
};
use serde_json::Value;

/// The id of the relay's own `initialize` for a modern agent.
pub const MODERN_INIT_ID: &str = "r:modern-initialize";

/// Most modern requests remembered for translating their answers; more than the relay keeps
/// in flight, so only a bug could fill it.
const MAX_REMEMBERED: usize = 8192;

/// What the modern edge keeps: which requests are modern (their answers are translated) and
/// what the server said about itself.
#[derive(Debug, Default)]
pub struct ModernEdge {
    /// Modern requests not answered yet: JSON text of the id → method.
    pending: HashMap<String, String>,
    identity: ServerIdentity,
    /// Whether a modern request has been served (and no `initialize` from the agent).
    pub agent_is_modern: bool,
}

impl ModernEdge {
    /// Remembers a modern request, to translate its answer.
    pub fn sent(&mut self, id: &Value, method: &str) {
        if self.pending.len() >= MAX_REMEMBERED {
            tracing::warn!("too many unanswered modern requests remembered; forgetting them");
            self.pending.clear();
        }
        self.pending.insert(id.to_string(), method.to_owned());
    }

    /// Whether `id` is a modern request's (its answer is translated). Cheap while no modern
    /// request is pending, which is always for an agent that sent `initialize`.
    pub fn expects(&self, id: &Value) -> bool {
        !self.pending.is_empty() && self.pending.contains_key(&id.to_string())
    }

    /// The method of a modern request this answers (and forgets it); `None` for a legacy one.
    pub fn answered(&mut self, id: &Value) -> Option<String> {
        self.pending.remove(&id.to_string())
    }

    /// Learns the server's identity from an `initialize` answer.
    pub fn server_initialized(&mut self, result: &Value) {
        self.identity.learn(result);
    }

    /// The `server/discover` result.
    pub fn discover(&self) -> Value {
        self.identity.discover()
    }

    /// A server result as the revision shapes it.
    pub fn translate(&self, method: &str, result: Value) -> Value {
        self.identity.translate(method, result)
    }
}

/// Server notifications a modern agent may get: only those tied to one of its requests.
pub fn notification_for_modern(method: &str) -> bool {
    matches!(method, "notifications/progress" | "notifications/cancelled")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_of_modern_requests_are_known_by_their_id() {
        let mut edge = ModernEdge::default();
        edge.sent(&json!(1), "tools/call");
        assert_eq!(edge.answered(&json!("1")), None, "ids keep their type");
        assert_eq!(edge.answered(&json!(1)).as_deref(), Some("tools/call"));
        assert_eq!(edge.answered(&json!(1)), None);
    }
}
