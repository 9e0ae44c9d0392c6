//! What a tool call can reach: its session and the server's shared services.

use std::sync::Arc;
use std::time::Instant;

use codeflow_session::{Right, Session};

use crate::error::ToolError;

/// Services shared by every session of a server.
#[derive(Debug)]
pub struct ServerServices {
    pub started: Instant,
    pub version: &'static str,
}

impl Default for ServerServices {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// The context of one tool call.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub session: Arc<Session>,
    pub services: Arc<ServerServices>,
}

impl ToolContext {
    /// Fails unless the session's token grants `right`.
    pub fn require(&self, right: Right) -> Result<(), ToolError> {
        if self.session.has(right) {
            Ok(())
        } else {
            Err(ToolError::Forbidden(right))
        }
    }
}
