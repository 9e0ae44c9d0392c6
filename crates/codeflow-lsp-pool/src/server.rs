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
    last_activity: Mutex<Instant>,
    /// Bounds requests in flight to this server; callers beyond it wait for a slot.
    slots: Semaphore,
    generation: AtomicU64,
}

/// Counts a request as pending (blocks idle shutdown) and stamps activity when it ends.
struct ActivityGuard<'a>(&'a ManagedServer);

impl<'a> ActivityGuard<'a> {
    fn new(server: &'a ManagedServer) -> Self {
        server.pending.fetch_add(1, Ordering::SeqCst);
        Self(server)
    }
}

impl Drop for ActivityGuard<'_> {
    fn drop(&mut self) {
        *self.0.last_activity.lock() = Instant::now();
        self.0.pending.fetch_sub(1, Ordering::SeqCst);
    }
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
            last_activity: Mutex::new(Instant::now()),
            slots,
            generation: AtomicU64::new(0),
            shared,
        }))
    }

    fn timing(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// Start a supervisor unless one is running, or the server failed recently (a failure is
    /// sticky for `crash_window`, so a broken server is not restarted by every request).
    pub(crate) fn ensure_started(self: &Arc<Self>) {
        if self.shared.closed.load(Ordering::SeqCst) {
            return;
        }
        let mut lc = self.lifecycle.lock();
        let startable = match &*self.phase.borrow() {
            Phase::Stopped => true,
            Phase::Failed { at, .. } => at.elapsed() >= self.timing().crash_window,
            Phase::Starting | Phase::Running(_) | Phase::Restarting | Phase::Stopping => false,
        };
        if !startable {
            return;
        }
        self.phase.send_replace(Phase::Starting);
        let cancel = CancellationToken::new();
        lc.cancel = cancel.clone();
        lc.stop_kind = StopKind::Forget;
        lc.task = Some(tokio::spawn(supervise(Arc::clone(self), cancel)));
    }

    /// The current connection, starting the server if needed and waiting while it starts or
    /// restarts. `dead` is a generation the caller saw die: wait for a newer one.
    async fn connection(self: &Arc<Self>, dead: Option<u64>) -> Result<Arc<Connection>, LspError> {
        let mut rx = self.phase.subscribe();
        loop {
            let phase = rx.borrow_and_update().clone();
            match phase {
                Phase::Running(conn) if Some(conn.generation) != dead => return Ok(conn),
                Phase::Stopped => {
                    if self.shared.closed.load(Ordering::SeqCst) {
                        return Err(LspError::PoolShutDown);
                    }
                    self.ensure_started();
                    continue;
                }
                Phase::Failed { error, at } => {
                    if self.shared.closed.load(Ordering::SeqCst) {
                        return Err(LspError::PoolShutDown);
                    }
                    if at.elapsed() < self.timing().crash_window {
                        return Err(error);
                    }
                    self.ensure_started();
                    continue;
                }
                Phase::Running(_) | Phase::Starting | Phase::Restarting | Phase::Stopping => {}
            }
            rx.changed().await.map_err(|_| LspError::PoolShutDown)?;
        }
    }

    /// Wait until the server is running (or failed), bounded.
    pub(crate) async fn wait_running(self: &Arc<Self>, limit: Duration) -> Result<(), LspError> {
        match tokio::time::timeout(limit, self.connection(None)).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(LspError::StartFailed {
                server: self.server_id.clone(),
                reason: format!("not running within {limit:?}"),
            }),
        }
    }

    /// Send a request (JSON in and out), replaying it on the next instance if this one dies.
    pub(crate) async fn request_value(
        self: &Arc<Self>,
        method: &'static str,
        send: RawSend,
        params: Value,
    ) -> Result<Value, LspError> {
        let _activity = ActivityGuard::new(self);
        let started = Instant::now();
        let limit = self.timing().request_timeout;
        let result =
            match tokio::time::timeout(limit, self.request_inner(method, send, params)).await {
                Ok(result) => result,
                Err(_) => Err(LspError::Timeout {
                    server: self.server_id.clone(),
                    method: method.to_owned(),
                    after: limit,
                }),
            };
        m::record_request(&self.language, method, result.is_ok(), started.elapsed());
        result
    }

    async fn request_inner(
        self: &Arc<Self>,
        method: &'static str,
        send: RawSend,
        params: Value,
    ) -> Result<Value, LspError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| LspError::PoolShutDown)?;
        let mut dead = None;
        let mut busy_retries = 0u32;
        loop {
            let conn = self.connection(dead).await?;
            if let Some(capability) = conn.missing_capability(method) {
                return Err(LspError::CapabilityMissing {
                    server: self.server_id.clone(),
                    capability: capability.to_owned(),
                    method: method.to_owned(),
                });
            }
            conn.readiness.wait(self.timing().readiness_timeout).await;
            match conn.call(send, params.clone()).await {
                Ok(value) => return Ok(value),
                // rust-analyzer and others answer these while (re)indexing: ask again.
                Err(async_lsp::Error::Response(e))
                    if (e.code == ErrorCode::CONTENT_MODIFIED
                        || e.code == ErrorCode::SERVER_CANCELLED)
                        && busy_retries < 5 =>
                {
                    busy_retries += 1;
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(busy_retries))).await;
                }
                Err(async_lsp::Error::Response(e)) => {
                    return Err(LspError::ServerError {
                        server: self.server_id.clone(),
                        method: method.to_owned(),
                        code: e.code.0,
                        message: e.message,
                    });
                }
                Err(async_lsp::Error::Deserialize(e)) => {
                    return Err(LspError::InvalidResponse {
                        server: self.server_id.clone(),
                        method: method.to_owned(),
                        reason: e.to_string(),
                    });
                }
                Err(other) if acts(method) => {
                    // It may have acted before the instance died: running it again could act
                    // twice. The caller decides.
                    tracing::info!(server = %self.server_id, method, "not replaying after: {other}");
                    return Err(LspError::Interrupted {
                        server: self.server_id.clone(),
                        method: method.to_owned(),
                    });
                }
                Err(other) => {
                    // The instance went away with the request unanswered: send it again to
                    // the next one. This future is the only place the answer can go, so the
                    // caller still gets exactly one.
                    tracing::debug!(server = %self.server_id, method, "replaying after: {other}");
                    dead = Some(conn.generation);
                }
            }
        }
    }

    /// Send a notification to the current instance (starting it if needed).
    pub(crate) async fn notify_value<N: Notification>(
        self: &Arc<Self>,
        params: N::Params,
    ) -> Result<(), LspError> {
        let conn = self.connection(None).await?;
        conn.notify::<N>(params).map_err(|e| LspError::StartFailed {
            server: self.server_id.clone(),
            reason: format!("instance went away: {e}"),
        })
    }

    fn current_connection(&self) -> Option<Arc<Connection>> {
        match &*self.phase.borrow() {
            Phase::Running(conn) => Some(Arc::clone(conn)),
            _ => None,
        }
    }

    // ---- documents ------------------------------------------------------------------------

    fn uri_for(&self, path: &Path) -> Result<Url, LspError> {
        document_uri(&self.root, path)
    }

    /// Open (or, if already open, replace the text of) a document. Returns its version.
    pub(crate) fn open(self: &Arc<Self>, path: &Path, text: String) -> Result<i32, LspError> {
        self.sync(path, text, true)
    }

    pub(crate) fn change(self: &Arc<Self>, path: &Path, text: String) -> Result<i32, LspError> {
        self.sync(path, text, false)
    }

    fn sync(self: &Arc<Self>, path: &Path, text: String, may_open: bool) -> Result<i32, LspError> {
        let uri = self.uri_for(path)?;
        self.ensure_started();
        // The table update and the send happen under one lock, and a new instance re-opens
        // the table under the same lock before it is published: every change reaches every
        // instance exactly once, in order.
        let mut docs = self.documents.lock();
        let conn = self.current_connection();
        let synced_at = self.diagnostics.current_seq();
        if let Some(doc) = docs.open.get_mut(&uri) {
            if *doc.text == *text {
                return Ok(doc.version);
            }
            doc.version += 1;
            doc.text = Arc::from(text);
            doc.synced_at = synced_at;
            if let Some(conn) = conn {
                let _gone = conn.notify::<DidChangeTextDocument>(DidChangeTextDocumentParams {
                    text_document: VersionedTextDocumentIdentifier::new(uri, doc.version),
                    // Full text: valid for both full and incremental sync servers.
                    content_changes: vec![TextDocumentContentChangeEvent {
                        range: None,
                        range_length: None,
                        text: doc.text.to_string(),
                    }],
                });
            }
            return Ok(doc.version);
        }
        if !may_open {
            return Err(LspError::DocumentNotOpen {
                server: self.server_id.clone(),
                uri: uri.to_string(),
            });
        }
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy())
            .unwrap_or_default();
        let doc = OpenDocument {
            language_id: self.config.language_id_for(&ext),
            version: 1,
            text: Arc::from(text),
            synced_at,
        };
        if let Some(conn) = conn {
            let _gone = conn.notify::<DidOpenTextDocument>(did_open(&uri, &doc));
        }
        docs.open.insert(uri, doc);
        Ok(1)
    }

    pub(crate) fn close(&self, path: &Path) -> Result<(), LspError> {
        let uri = self.uri_for(path)?;
        let mut docs = self.documents.lock();
        if docs.open.remove(&uri).is_none() {
            return Err(LspError::DocumentNotOpen {
                server: self.server_id.clone(),
                uri: uri.to_string(),
            });
        }
        if let Some(conn) = self.current_connection() {
            let _gone = conn.notify::<DidCloseTextDocument>(DidCloseTextDocumentParams {
                text_document: TextDocumentIdentifier::new(uri),
            });
        }
        Ok(())
    }

    pub(crate) async fn diagnostics(
        self: &Arc<Self>,
        path: &Path,
    ) -> Result<DiagnosticsReport, LspError> {
        let uri = self.uri_for(path)?;
        let conn = self.connection(None).await?;
        let doc = self.documents.lock().open.get(&uri).cloned();
        if conn.supports_pull_diagnostics() {
            let params = DocumentDiagnosticParams {
                text_document: TextDocumentIdentifier::new(uri.clone()),
                identifier: None,
                previous_result_id: None,
                work_done_progress_params: Default::default(),
                partial_result_params: Default::default(),
            };
            let params = serde_json::to_value(params).map_err(|e| LspError::InvalidParams {
                method: DocumentDiagnosticRequest::METHOD.to_owned(),
                reason: e.to_string(),
            })?;
            let value = self
                .request_value(
                    DocumentDiagnosticRequest::METHOD,
                    raw_sender::<DocumentDiagnosticRequest>(),
                    params,
                )
                .await?;
            if let Ok(DocumentDiagnosticReportResult::Report(DocumentDiagnosticReport::Full(
                full,
            ))) = serde_json::from_value::<DocumentDiagnosticReportResult>(value)
            {
                return Ok(DiagnosticsReport {
                    uri,
                    version: doc.as_ref().map(|d| d.version),
                    fresh: true,
                    source: DiagnosticsSource::Pull,
                    diagnostics: full.full_document_diagnostic_report.items,
                });
            }
            // "Unchanged" or partial: the pushed set is what we have.
        }
        // Push: wait (bounded) for a report about the current version.
        let mut rx = self.diagnostics.subscribe();
        let deadline = tokio::time::Instant::now() + self.timing().diagnostics_timeout;
        loop {
            let report = self.diagnostics.report(&uri, doc.as_ref());
            if report.fresh {
                return Ok(report);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Ok(report),
            }
        }
    }

    // ---- lifecycle ------------------------------------------------------------------------

    /// Publish a new instance: re-open documents, then make it current.
    fn go_live(&self, conn: &Arc<Connection>) {
        let docs = self.documents.lock();
        self.diagnostics.clear();
        for (uri, doc) in &docs.open {
            let _gone = conn.notify::<DidOpenTextDocument>(did_open(uri, doc));
        }
        self.phase.send_replace(Phase::Running(Arc::clone(conn)));
    }

    fn fail(&self, error: LspError) {
        tracing::warn!(project = %self.project, server = %self.server_id, "{error}");
        self.stats.lock().last_error = Some(error.to_string());
        self.phase.send_replace(Phase::Failed {
            error,
            at: Instant::now(),
        });
    }

    /// Count a crash; `Some(GaveUp)` when the window is full.
    fn record_crash(&self, reason: String) -> Option<LspError> {
        let window = self.timing().crash_window;
        let mut stats = self.stats.lock();
        let now = Instant::now();
        stats.crashes += 1;
        stats.crash_times.push_back(now);
        while stats
            .crash_times
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            stats.crash_times.pop_front();
        }
        stats.last_error = Some(reason.clone());
        let in_window = u32::try_from(stats.crash_times.len()).unwrap_or(u32::MAX);
        drop(stats);
        m::record_crash(&self.language);
        (in_window >= self.timing().max_crashes.max(1)).then(|| {
            m::record_give_up(&self.language);
            LspError::GaveUp {
                server: self.server_id.clone(),
                crashes: in_window,
                window,
                last_reason: reason,
            }
        })
    }

    fn finish_stop(&self, kind: StopKind) {
        if kind == StopKind::Forget {
            self.documents.lock().open.clear();
            self.diagnostics.clear();
        }
        self.phase.send_replace(Phase::Stopped);
    }

    /// Stop the supervisor (orderly shutdown of the instance) and wait for it.
    pub(crate) async fn stop(&self, kind: StopKind) {
        let task = {
            let mut lc = self.lifecycle.lock();
            lc.stop_kind = kind;
            lc.cancel.cancel();
            lc.task.take()
        };
        if let Some(task) = task {
            let _joined = task.await;
        }
        // A failed server has no supervisor; clear its failure so the next use starts afresh.
        self.phase.send_if_modified(|p| match p {
            Phase::Failed { .. } => {
                *p = Phase::Stopped;
                true
            }
            _ => false,
        });
        if kind == StopKind::Forget {
            self.documents.lock().open.clear();
        }
    }

    /// Stop only if nothing is pending and it was unused for `idle`. Returns whether it
    /// stopped.
    pub(crate) async fn stop_if_idle(&self, idle: Duration) -> bool {
        let active = matches!(
            &*self.phase.borrow(),
            Phase::Running(_) | Phase::Starting | Phase::Restarting
        );
        if !active
            || self.pending.load(Ordering::SeqCst) > 0
            || self.last_activity.lock().elapsed() < idle
        {
            return false;
        }
        tracing::info!(project = %self.project, server = %self.server_id, "stopping idle language server");
        self.stop(StopKind::Forget).await;
        true
    }

    /// Restart on request: stop, forget crash history, start, wait until running.
    pub(crate) async fn restart(self: &Arc<Self>) -> Result<(), LspError> {
        self.stop(StopKind::KeepDocuments).await;
        self.stats.lock().crash_times.clear();
        self.ensure_started();
        self.wait_running(self.initialize_limit()).await
    }

    /// How long starting may take: the initialize limit plus spawn slack.
    pub(crate) fn initialize_limit(&self) -> Duration {
        self.config
            .initialize_timeout
            .unwrap_or(self.timing().initialize_timeout)
            + Duration::from_secs(1)
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

    pub(crate) async fn capabilities(self: &Arc<Self>) -> Result<ServerCapabilities, LspError> {
        Ok(self.connection(None).await?.capabilities())
    }

    pub(crate) async fn wait_ready(self: &Arc<Self>, limit: Duration) -> Result<bool, LspError> {
        let conn = self.connection(None).await?;
        Ok(conn.readiness.wait(limit).await)
    }

    /// Cancel the supervisor without waiting (used when the pool is dropped).
    pub(crate) fn abort(&self) {
        self.lifecycle.lock().cancel.cancel();
    }
}

fn did_open(uri: &Url, doc: &OpenDocument) -> DidOpenTextDocumentParams {
    DidOpenTextDocumentParams {
        text_document: TextDocumentItem {
            uri: uri.clone(),
            language_id: doc.language_id.clone(),
            version: doc.version,
            text: doc.text.to_string(),
        },
    }
}

/// The `file://` URI of `path`, taken relative to `root` when it is relative. `..` is refused
/// so a caller cannot name files outside the project by accident.
pub(crate) fn document_uri(root: &Path, path: &Path) -> Result<Url, LspError> {
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(LspError::InvalidPath {
            path: path.to_path_buf(),
            reason: "`..` is not allowed".to_owned(),
        });
    }
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    Url::from_file_path(&full).map_err(|()| LspError::InvalidPath {
        path: path.to_path_buf(),
        reason: "not representable as a file URI".to_owned(),
    })
}

/// The supervisor: start, watch, restart with backoff, give up, or stop when cancelled.
async fn supervise(server: Arc<ManagedServer>, cancel: CancellationToken) {
    let timing = server.shared.config.clone();
    let mut ever_ran = false;
    let mut backoff = timing.restart_backoff;
    loop {
        let generation = server.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let started = tokio::select! {
            () = cancel.cancelled() => {
                let kind = server.lifecycle.lock().stop_kind;
                server.finish_stop(kind);
                return;
            }
            started = Instance::start(
                Arc::clone(&server.ctx),
                &server.config,
                &server.root,
                generation,
                server.config.initialize_timeout.unwrap_or(timing.initialize_timeout),
            ) => started,
        };
        match started {
            Err(error) => {
                if !ever_ran {
                    // Nothing ever worked: tell the callers now instead of looping.
                    m::record_start_failure(&server.language);
                    server.fail(error);
                    return;
                }
                if let Some(gave_up) = server.record_crash(error.to_string()) {
                    server.fail(gave_up);
                    return;
                }
            }
            Ok(mut instance) => {
                ever_ran = true;
                server.stats.lock().starts += 1;
                m::record_start(&server.language);
                tracing::info!(
                    project = %server.project, server = %server.server_id,
                    pid = ?instance.conn.pid, generation, "language server running"
                );
                let running = m::RunningGuard::new(&server.language);
                server.go_live(&instance.conn);
                let outcome = tokio::select! {
                    () = cancel.cancelled() => None,
                    reason = instance.wait_death() => Some(reason),
                };
                let ran_for = instance.conn.started.elapsed();
                match outcome {
                    None => {
                        server.phase.send_replace(Phase::Stopping);
                        instance.stop(timing.shutdown_timeout).await;
                        drop(running);
                        let kind = server.lifecycle.lock().stop_kind;
                        server.finish_stop(kind);
                        return;
                    }
                    Some(reason) => {
                        drop(running);
                        instance.process.settle_stderr().await;
                        let tail = instance.process.stderr_tail();
                        tracing::warn!(
                            project = %server.project, server = %server.server_id,
                            "language server died: {reason}; stderr tail: {tail}"
                        );
                        if ran_for > timing.crash_window {
                            backoff = timing.restart_backoff;
                        }
                        if let Some(gave_up) = server.record_crash(reason) {
                            server.fail(gave_up);
                            return;
                        }
                    }
                }
            }
        }
        server.phase.send_replace(Phase::Restarting);
        server.stats.lock().restarts += 1;
        m::record_restart(&server.language);
        tokio::select! {
            () = cancel.cancelled() => {
                let kind = server.lifecycle.lock().stop_kind;
                server.finish_stop(kind);
                return;
            }
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(timing.restart_backoff_max);
    }
}

/// A shared handle to one project's language server. Cheap to clone. Requests go to whatever
/// instance is current; a crash in the middle is invisible to the caller except as latency.
///
/// Positions and ranges are LSP's (0-based lines and UTF-16 characters).
#[derive(Clone)]
pub struct ServerHandle {
    pub(crate) server: Arc<ManagedServer>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("project", &self.server.project)
            .field("server_id", &self.server.server_id)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The server id from the table (`pylsp`, `clangd`, …).
    #[must_use]
    pub fn server_id(&self) -> &str {
        &self.server.server_id
    }

    /// The project this server works on.
    #[must_use]
    pub fn project(&self) -> &str {
        &self.server.project
    }

    /// The directory the server runs in (its workspace root).
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.server.root
    }

    /// Language label (`python`, `c`, …).
    #[must_use]
    pub fn language(&self) -> &str {
        &self.server.language
    }

    /// The `file://` URI for a path (absolute, or relative to the project root).
    ///
    /// # Errors
    /// [`LspError::InvalidPath`] for paths with `..` or that cannot be a URI.
    pub fn uri_for(&self, path: impl AsRef<Path>) -> Result<Url, LspError> {
        self.server.uri_for(path.as_ref())
    }

    /// Send request `R` and decode its result.
    ///
    /// Waits (bounded by `readiness_timeout`) for indexing to finish first, fails fast with
    /// [`LspError::CapabilityMissing`] when the server does not offer the method, is replayed
    /// on the next instance if the server crashes, and is bounded by `request_timeout`.
    /// Dropping the future sends `$/cancelRequest`.
    ///
    /// # Errors
    /// See [`LspError`].
    pub async fn request<R>(&self, params: R::Params) -> Result<R::Result, LspError>
    where
        R: Request,
    {
        let params = serde_json::to_value(params).map_err(|e| LspError::InvalidParams {
            method: R::METHOD.to_owned(),
            reason: e.to_string(),
        })?;
        let value = self
            .server
            .request_value(R::METHOD, raw_sender::<R>(), params)
            .await?;
        serde_json::from_value(value).map_err(|e| LspError::InvalidResponse {
            server: self.server.server_id.clone(),
            method: R::METHOD.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Send notification `N` to the current instance (starting the server if needed). For
    /// document sync use [`open`](Self::open)/[`change`](Self::change)/[`close`](Self::close),
    /// which survive restarts.
    ///
    /// # Errors
    /// Start failures, or [`LspError::PoolShutDown`].
    pub async fn notify<N: Notification>(&self, params: N::Params) -> Result<(), LspError> {
        self.server.notify_value::<N>(params).await
    }

    /// `didOpen` a document (version 1). Opening an already open document changes it instead.
    /// Returns the version the server now has.
    ///
    /// # Errors
    /// [`LspError::InvalidPath`].
    pub fn open(&self, path: impl AsRef<Path>, text: impl Into<String>) -> Result<i32, LspError> {
        self.server.open(path.as_ref(), text.into())
    }

    /// `didChange` with the full new text and the next version; no-op if the text is the same.
    ///
    /// # Errors
    /// [`LspError::DocumentNotOpen`], [`LspError::InvalidPath`].
    pub fn change(&self, path: impl AsRef<Path>, text: impl Into<String>) -> Result<i32, LspError> {
        self.server.change(path.as_ref(), text.into())
    }

    /// Open the document, or change it to `text` with a new version if it is open.
    ///
    /// # Errors
    /// [`LspError::InvalidPath`].
    pub fn sync_document(
        &self,
        path: impl AsRef<Path>,
        text: impl Into<String>,
    ) -> Result<i32, LspError> {
        self.server.open(path.as_ref(), text.into())
    }

    /// `didClose`.
    ///
    /// # Errors
    /// [`LspError::DocumentNotOpen`], [`LspError::InvalidPath`].
    pub fn close(&self, path: impl AsRef<Path>) -> Result<(), LspError> {
        self.server.close(path.as_ref())
    }

    /// The document's diagnostics: pulled (`textDocument/diagnostic`) when the server supports
    /// it, else the freshest pushed set, waiting (bounded by `diagnostics_timeout`) for one that
    /// describes the current version. `fresh` says whether it does.
    ///
    /// # Errors
    /// Start failures, request errors of the pull.
    pub async fn diagnostics(&self, path: impl AsRef<Path>) -> Result<DiagnosticsReport, LspError> {
        self.server.diagnostics(path.as_ref()).await
    }

    /// Whether the document at `path` is open on this server.
    #[must_use]
    pub fn is_open(&self, path: impl AsRef<Path>) -> bool {
        self.server
            .uri_for(path.as_ref())
            .is_ok_and(|uri| self.server.documents.lock().open.contains_key(&uri))
    }

    /// The server's capabilities (waits until it runs).
    ///
    /// # Errors
    /// Start failures.
    pub async fn capabilities(&self) -> Result<ServerCapabilities, LspError> {
        self.server.capabilities().await
    }

    /// The capabilities of the running instance, if one runs now.
    #[must_use]
    pub fn capabilities_now(&self) -> Option<ServerCapabilities> {
        self.server.capabilities_now()
    }

    /// Wait, at most `limit`, until the server reports no indexing in progress. Returns
    /// whether it did.
    ///
    /// # Errors
    /// Start failures.
    pub async fn wait_ready(&self, limit: Duration) -> Result<bool, LspError> {
        self.server.wait_ready(limit).await
    }

    /// A status snapshot.
    #[must_use]
    pub fn status(&self) -> ServerStatus {
        self.server.status()
    }

    /// The pid of the running instance.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.server.status().pid
    }
}

/// Requests that make the server act (run a command that may edit files through
/// `workspace/applyEdit`) rather than answer a question. Every other request only computes an
/// answer, so replaying it on a new instance is safe; these are not replayed.
fn acts(method: &str) -> bool {
    method == "workspace/executeCommand"
}
