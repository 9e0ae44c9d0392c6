//! One managed language server for one project: the supervisor that starts, restarts and
//! stops instances, and [`ServerHandle`], through which callers talk to whatever instance is
//! current.
//!
//! Invariants:
//! - at most one supervisor task per managed server, owned through `Lifecycle`;
//! - a caller's request future returns exactly once; if the instance it was sent to dies, the
//!   same future re-sends it to the next instance (replay) — except a request that acts
//!   (`workspace/executeCommand`), which fails with `LspError::Interrupted` instead, since it
//!   may have acted already;
//! - the open-document table survives crashes and restarts and is re-opened on the new
//!   instance before any replayed request can reach it.

use std::collections::VecDeque;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_lsp::ErrorCode;
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, Notification,
};
use lsp_types::request::{DocumentDiagnosticRequest, Request};
use lsp_types::{
    DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams,
    DocumentDiagnosticParams, DocumentDiagnosticReport, DocumentDiagnosticReportResult,
    ServerCapabilities, TextDocumentContentChangeEvent, TextDocumentIdentifier, TextDocumentItem,
    Url, VersionedTextDocumentIdentifier,
};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{PoolConfig, ServerConfig};
use crate::connection::{ClientContext, Connection, Instance, RawSend, raw_sender};
use crate::documents::{
    DiagnosticStore, DiagnosticsReport, DiagnosticsSource, Documents, OpenDocument,
};
use crate::edit::EditHandlerSlot;
use crate::error::LspError;
use crate::listen::ListenerSlot;
use crate::metrics as m;
use crate::status::{ServerState, ServerStatus};

mod handle;
mod requests;
mod supervisor;
mod sync;

pub use handle::ServerHandle;
use sync::did_open;

/// What every managed server of one pool shares.
pub(crate) struct PoolShared {
    pub(crate) config: PoolConfig,
    pub(crate) edit_handler: Arc<EditHandlerSlot>,
    pub(crate) diagnostics_listener: Arc<ListenerSlot>,
    pub(crate) closed: AtomicBool,
}

/// Where a managed server is in its life. Published on a watch channel: callers wait on it.
#[derive(Clone)]
enum Phase {
    Stopped,
    Starting,
    Running(Arc<Connection>),
    Restarting,
    Stopping,
    Failed { error: LspError, at: Instant },
}

/// Why the supervisor is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopKind {
    /// Idle or pool shutdown: forget open documents.
    Forget,
    /// Restart on request: keep documents to re-open them.
    KeepDocuments,
}

struct Lifecycle {
    task: Option<JoinHandle<()>>,
    cancel: CancellationToken,
    stop_kind: StopKind,
}

#[derive(Default)]
struct Stats {
    starts: u64,
    restarts: u32,
    crashes: u32,
    crash_times: VecDeque<Instant>,
    last_error: Option<String>,
}

/// One (project, server id) entry of the pool.
/// A notification waiting for the instance being started.
type Deferred = Box<dyn FnOnce(&Connection) + Send>;

/// Notifications kept for an instance being started; beyond, the oldest are dropped (the
/// instance reads the files from disk when it starts, so file events are hints to it).
const DEFERRED_MAX: usize = 4096;

pub(crate) struct ManagedServer {
    pub(crate) server_id: String,
    pub(crate) project: String,
    pub(crate) root: PathBuf,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) language: String,
    shared: Arc<PoolShared>,
    ctx: Arc<ClientContext>,
    phase: watch::Sender<Phase>,
    documents: Mutex<Documents>,
    diagnostics: Arc<DiagnosticStore>,
    lifecycle: Mutex<Lifecycle>,
    stats: Mutex<Stats>,
    pending: AtomicUsize,
    /// Notifications for the instance being started, sent in order when it goes live
    /// ([`ManagedServer::notify_soon`]); bounded by [`DEFERRED_MAX`].
    deferred: Mutex<VecDeque<Deferred>>,
    last_activity: Mutex<Instant>,
    /// Bounds requests in flight to this server; callers beyond it wait for a slot.
    slots: Semaphore,
    generation: AtomicU64,
}

impl ManagedServer {
    pub(crate) fn new(
        shared: Arc<PoolShared>,
        project: String,
        root: PathBuf,
        server_id: String,
        config: Arc<ServerConfig>,
    ) -> Result<Arc<Self>, LspError> {
        let root_uri = Url::from_directory_path(&root).map_err(|()| LspError::InvalidPath {
            path: root.clone(),
            reason: "the project root must be an absolute directory path".to_owned(),
        })?;
        let diagnostics = Arc::new(DiagnosticStore::default());
        let ctx = Arc::new(ClientContext {
            server_id: server_id.clone(),
            project: project.clone(),
            root_uri,
            settings: config.settings.clone(),
            diagnostics: Arc::clone(&diagnostics),
            edit_handler: Arc::clone(&shared.edit_handler),
            diagnostics_listener: Arc::clone(&shared.diagnostics_listener),
            publishes_diagnostics: config.publishes_diagnostics(),
        });
        let slots = Semaphore::new(shared.config.max_in_flight_per_server.max(1));
        Ok(Arc::new(Self {
            language: config.language_label(&server_id),
            server_id,
            project,
            root,
            config,
            ctx,
            phase: watch::channel(Phase::Stopped).0,
            documents: Mutex::new(Documents::default()),
            diagnostics,
            lifecycle: Mutex::new(Lifecycle {
                task: None,
                cancel: CancellationToken::new(),
                stop_kind: StopKind::Forget,
            }),
            stats: Mutex::new(Stats::default()),
            pending: AtomicUsize::new(0),
            deferred: Mutex::new(VecDeque::new()),
            last_activity: Mutex::new(Instant::now()),
            slots,
            generation: AtomicU64::new(0),
            shared,
        }))
    }

    pub(super) fn timing(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// How long starting may take: the initialize limit plus spawn slack.
    pub(crate) fn initialize_limit(&self) -> Duration {
        self.config
            .initialize_timeout
            .unwrap_or(self.timing().initialize_timeout)
            + Duration::from_secs(1)
    }

    /// Sends notification `N` to the running instance now, or — while an instance is being
    /// started or restarted — when it goes live, in the order given; never waits. Dropped
    /// when the server is stopped or failed (it reads the disk when it starts again).
    pub(crate) fn notify_soon<N: Notification>(&self, params: N::Params)
    where
        N::Params: Send + 'static,
    {
        // The documents' lock orders this against `go_live`, which flushes under it.
        let _docs = self.documents.lock();
        match &*self.phase.borrow() {
            Phase::Running(conn) => {
                let _gone = conn.notify::<N>(params);
            }
            Phase::Starting | Phase::Restarting => {
                let mut deferred = self.deferred.lock();
                if deferred.len() >= DEFERRED_MAX {
                    deferred.pop_front();
                    tracing::debug!(project = %self.project, server = %self.server_id, "too many notifications for a starting server; the oldest dropped");
                }
                deferred.push_back(Box::new(move |conn: &Connection| {
                    let _gone = conn.notify::<N>(params);
                }));
            }
            Phase::Stopped | Phase::Stopping | Phase::Failed { .. } => {}
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        !matches!(&*self.phase.borrow(), Phase::Stopped)
    }

    pub(crate) fn status(&self) -> ServerStatus {
        let (state, conn, last_error) = match &*self.phase.borrow() {
            Phase::Stopped => (ServerState::Stopped, None, None),
            Phase::Starting => (ServerState::Starting, None, None),
            Phase::Restarting => (ServerState::Restarting, None, None),
            Phase::Stopping => (ServerState::Stopping, None, None),
            Phase::Running(c) => (ServerState::Running, Some(Arc::clone(c)), None),
            Phase::Failed { error, .. } => (ServerState::Failed, None, Some(error.to_string())),
        };
        let stats = self.stats.lock();
        ServerStatus {
            project: self.project.clone(),
            server_id: self.server_id.clone(),
            language: self.language.clone(),
            root: self.root.clone(),
            state,
            pid: conn.as_ref().and_then(|c| c.pid),
            uptime_secs: conn.as_ref().map(|c| c.started.elapsed().as_secs_f64()),
            indexing: conn.as_ref().is_some_and(|c| !c.readiness.is_ready()),
            starts: stats.starts,
            restarts: stats.restarts,
            crashes: stats.crashes,
            open_documents: self.documents.lock().open.len(),
            pending_requests: self.pending.load(Ordering::SeqCst),
            last_error: last_error.or_else(|| stats.last_error.clone()),
        }
    }

    pub(crate) fn capabilities_now(&self) -> Option<ServerCapabilities> {
        self.current_connection().map(|c| c.capabilities())
    }
}
