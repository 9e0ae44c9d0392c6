//! All sessions of a server: creation, lookup for resume, expiry after the grace period, and
//! the counts `health_check` and `/metrics` report.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authenticator, Grant};
use crate::channels::{ChannelConfig, Channels};
use crate::handshake::Handshake;
use crate::service::SessionService;
use crate::session::Session;

/// Session settings.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// How long a session without a socket is kept for a resume.
    pub resume_grace: Duration,
    /// How long a new socket may take to send a successful `initialize`.
    pub initialize_timeout: Duration,
    /// Most sessions (attached or waiting for a resume) held at once.
    pub max_sessions: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            resume_grace: Duration::from_secs(60),
            initialize_timeout: Duration::from_secs(10),
            max_sessions: 100_000,
        }
    }
}

/// Counts for health and metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RegistryStats {
    /// Sessions the server holds.
    pub sessions: usize,
    /// Of those, sessions with a connection now.
    pub attached: usize,
    /// Sessions per project.
    pub projects: BTreeMap<String, usize>,
}

/// Why a session could not be created.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CreateError {
    /// The server holds its maximum of sessions.
    #[error("the server holds its maximum of {0} sessions")]
    AtCapacity(usize),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// The sessions of one server.
pub struct SessionRegistry {
    /// Limits and timings of sessions.
    pub config: RegistryConfig,
    /// Checks credentials at the handshake and on `auth/refresh`.
    pub auth: Authenticator,
    service: Arc<dyn SessionService>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    channels: Channels,
    shutdown: CancellationToken,
    /// Method families served beside the MCP service (see [`crate::methods`]).
    families: parking_lot::RwLock<Vec<Arc<dyn crate::methods::MethodFamily>>>,
    /// When the server started.
    pub started: Instant,
}

impl std::fmt::Debug for SessionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRegistry")
            .field("sessions", &self.sessions.lock().len())
            .finish_non_exhaustive()
    }
}

impl SessionRegistry {
    /// Creates the registry with default channel settings and starts its expiry task (stopped
    /// by [`Self::shutdown`]).
    pub fn new(
        config: RegistryConfig,
        auth: Authenticator,
        service: Arc<dyn SessionService>,
    ) -> Arc<Self> {
        Self::with_channels(config, ChannelConfig::default(), auth, service)
    }

    /// Creates the registry with these channel settings and starts its expiry task.
    pub fn with_channels(
        config: RegistryConfig,
        channels: ChannelConfig,
        auth: Authenticator,
        service: Arc<dyn SessionService>,
    ) -> Arc<Self> {
        let registry = Arc::new(Self {
            config,
            auth,
            service,
            sessions: Mutex::new(HashMap::new()),
            channels: Channels::new(channels),
            shutdown: CancellationToken::new(),
            families: parking_lot::RwLock::new(Vec::new()),
            started: Instant::now(),
        });
        let weak = Arc::downgrade(&registry);
        let stop = registry.shutdown.clone();
        let period = (registry.config.resume_grace / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                let Some(registry) = weak.upgrade() else {
                    break;
                };
                registry.expire_detached();
            }
        });
        registry
    }

    /// Creates a session for a handshake that passed authentication and starts its service.
    pub fn create(
        self: &Arc<Self>,
        handshake: &Handshake,
        grant: Grant,
    ) -> Result<Arc<Session>, CreateError> {
        if self.shutdown.is_cancelled() {
            return Err(CreateError::ShuttingDown);
        }
        let session = {
            let mut sessions = self.sessions.lock();
            if sessions.len() >= self.config.max_sessions {
                return Err(CreateError::AtCapacity(self.config.max_sessions));
            }
            let id = uuid::Uuid::new_v4().to_string();
            let session = Arc::new(Session::new(
                id.clone(),
                handshake.project.clone(),
                handshake.root.clone(),
                grant,
                handshake.file_stream,
                Arc::downgrade(self),
                self.config.resume_grace,
            ));
            sessions.insert(id, session.clone());
            crate::metrics::sessions(sessions.len());
            session
        };
        let handler = self.service.start(session.clone());
        session.set_service(handler);
        tracing::info!(session = %session.id, project = %session.project, "session created");
        Ok(session)
    }

    /// Registers a family of methods served beside the MCP service; the first registered
    /// family that serves a method gets it.
    pub fn add_method_family(&self, family: Arc<dyn crate::methods::MethodFamily>) {
        self.families.write().push(family);
    }

    /// The family serving `method`, if one does.
    pub(crate) fn method_family(
        &self,
        method: &str,
    ) -> Option<Arc<dyn crate::methods::MethodFamily>> {
        self.families
            .read()
            .iter()
            .find(|f| f.serves(method))
            .cloned()
    }

    /// The service serving this registry's sessions.
    pub(crate) fn service(&self) -> &dyn SessionService {
        self.service.as_ref()
    }

    /// The event channels of every project: publish here (see [`Channels::publish`]).
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    /// The session with this id, if it lives.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.lock().get(id).cloned()
    }

    /// Ends a session and forgets it.
    pub fn remove(&self, id: &str) {
        let removed = {
            let mut sessions = self.sessions.lock();
            let removed = sessions.remove(id);
            crate::metrics::sessions(sessions.len());
            removed
        };
        if let Some(session) = removed {
            session.close();
            tracing::info!(session = %id, "session ended");
        }
    }

    /// Counts for health and metrics.
    pub fn stats(&self) -> RegistryStats {
        let sessions = self.sessions.lock();
        let mut stats = RegistryStats {
            sessions: sessions.len(),
            ..RegistryStats::default()
        };
        for s in sessions.values() {
            if s.is_attached() {
                stats.attached += 1;
            }
            *stats.projects.entry(s.project.to_string()).or_default() += 1;
        }
        stats
    }

    /// Sessions of `project`, for services that need to reach every client of a project.
    pub fn sessions_of(&self, project: &crate::ProjectId) -> Vec<Arc<Session>> {
        self.sessions
            .lock()
            .values()
            .filter(|s| &s.project == project)
            .cloned()
            .collect()
    }

    /// Resolves when the server begins shutting down.
    pub async fn shutting_down(&self) {
        self.shutdown.cancelled().await
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Closes every session and stops the expiry task.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
        let all: Vec<_> = self.sessions.lock().drain().map(|(_, s)| s).collect();
        crate::metrics::sessions(0);
        for session in all {
            session.close_with(
                codeflow_transport::close::GOING_AWAY,
                "server shutting down",
            );
        }
    }

    fn expire_detached(&self) {
        let grace = self.config.resume_grace;
        let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
        let expired: Vec<String> = sessions
            .iter()
            .filter(|s| s.is_closed() || s.detached_for().is_some_and(|d| d >= grace))
            .map(|s| s.id.clone())
            .collect();
        // Answers remembered for re-sends are released once past their time, also by sessions
        // that stay idle (the chaos soak's memory check relies on it).
        for session in &sessions {
            session.forget_old_answers();
        }
        for id in expired {
            self.remove(&id);
        }
    }
}
