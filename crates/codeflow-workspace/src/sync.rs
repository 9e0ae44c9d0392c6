//! A session's file traffic on the server: `server/syncManifest` and `server/fileChanged`
//! from the relay, applied to the project's mirror in arrival order, and passed on to the
//! language servers.
//!
//! Ordering is the point. The relay flushes its watcher before each `tools/call`, so the
//! file events that precede a call on the socket describe the disk at the moment of the call;
//! [`SessionFiles::caught_up`] makes the call wait until all of them are in the mirror.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use codeflow_file_stream::protocol::{ChangeType, FileChanged, SyncManifestParams};
use codeflow_file_stream::{ClientPath, FileError, Manifest, MirrorPath, RemoteError};
use codeflow_lsp_pool::lsp_types::FileChangeType;
use codeflow_session::{Channel, Session};
use codeflow_transport::{ErrorObject, Message, codes};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::caller::Caller;
use crate::error::WorkspaceError;
use crate::lsp_sync::tell_language_servers;
use crate::sync_state::SyncState;
use crate::trees::TreeConflict;

/// File events queued per session. When full, the socket reader waits (back-pressure on the
/// relay), which never loses an event.
const EVENT_QUEUE: usize = 1024;

enum QueuedEvent {
    Sync { id: Value, params: Option<Value> },
    Changed(Option<Value>),
}

/// Where notable file events are told to the client (MCP's `notifications/message` in
/// CodeFlow): `level` is a syslog level name, `data` the event.
pub trait ClientNotices: Send + Sync {
    /// Tells the client of one event at `level` (if it wants that level).
    fn notice(&self, level: &str, data: Value);
}

/// Tells nobody.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNotices;

impl ClientNotices for NoNotices {
    fn notice(&self, _level: &str, _data: Value) {}
}

/// The file side of one session.
pub struct SessionFiles {
    session: Arc<Session>,
    caller: Arc<Caller>,
    notices: Arc<dyn ClientNotices>,
    received: AtomicU64,
    applied: watch::Sender<u64>,
    /// Created with the task on the first file event: most sessions of a busy server are idle,
    /// and an idle session should not hold a task and a queue.
    events: std::sync::OnceLock<mpsc::Sender<QueuedEvent>>,
    me: std::sync::Weak<SessionFiles>,
    /// The last git state this session's relay reported (published once per change).
    git: parking_lot::Mutex<Option<crate::git_state::GitState>>,
}

/// Largest `server/gitState` output taken (the relay cuts its own at 256 KiB).
const MAX_GIT_STATE: usize = 1024 * 1024;

impl std::fmt::Debug for SessionFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionFiles")
            .field("session", &self.session.id)
            .field("received", &self.received.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SessionFiles {
    /// The file side of a session; its task starts with the first file event and ends with
    /// the session.
    pub fn start(
        session: Arc<Session>,
        caller: Arc<Caller>,
        notices: Arc<dyn ClientNotices>,
    ) -> Arc<Self> {
        let (applied, _) = watch::channel(0);
        let files = Arc::new_cyclic(|me| Self {
            session: session.clone(),
            caller,
            notices,
            received: AtomicU64::new(0),
            applied,
            events: std::sync::OnceLock::new(),
            me: me.clone(),
            git: parking_lot::Mutex::new(None),
        });
        // Found from the session by work that does not go through the MCP handler (a Claude
        // run copying the mirror waits for the session's file events as a tool call does).
        session.set_extension(files.clone());
        files
    }

    /// Waits until every file event `session` sent so far is in the mirror (at once for a
    /// session without file state).
    pub async fn caught_up_of(session: &Session) {
        if let Some(files) = session.extension::<SessionFiles>() {
            files.caught_up().await;
        }
    }

    /// The queue to the session's file task, starting the task on first use.
    fn events(&self) -> &mpsc::Sender<QueuedEvent> {
        self.events.get_or_init(|| {
            let (events, rx) = mpsc::channel(EVENT_QUEUE);
            tokio::spawn(run(self.me.clone(), self.session.clone(), rx));
            events
        })
    }

    /// Takes file-stream messages out of the session's inbound traffic; hands back the rest.
    pub async fn intercept(&self, message: Message) -> Option<Message> {
        let event = match message {
            Message::Request { id, method, params } if method == "server/syncManifest" => {
                QueuedEvent::Sync { id, params }
            }
            Message::Notification { method, params } if method == "server/fileChanged" => {
                QueuedEvent::Changed(params)
            }
            Message::Notification { method, params } if method == "server/gitState" => {
                self.git_state(params.as_ref()).await;
                return None;
            }
            other => return Some(other),
        };
        self.received.fetch_add(1, Ordering::SeqCst);
        if self.events().send(event).await.is_err() {
            // The task is gone (session closing): count it as applied so nobody waits on it.
            self.applied.send_modify(|n| *n += 1);
        }
        None
    }

    /// The relay's `git status` of its tree (a streamed mirror holds no `.git`): published on
    /// the project's `git` channel as the shared projects' poller does, once per change.
    async fn git_state(&self, params: Option<&Value>) {
        let Some(porcelain) = params
            .and_then(|p| p.get("porcelain"))
            .and_then(Value::as_str)
            .filter(|text| text.len() <= MAX_GIT_STATE)
        else {
            tracing::debug!(session = %self.caller.id, "ignoring a malformed server/gitState");
            return;
        };
        // A shared project's directory is read by the server itself (`git_state.rs`).
        if self
            .caller
            .workspace()
            .await
            .is_ok_and(|w| w.mirror.is_shared())
        {
            return;
        }
        let state = crate::git_state::GitState::parse(porcelain);
        {
            let mut last = self.git.lock();
            if last.as_ref() == Some(&state) {
                return;
            }
            *last = Some(state.clone());
        }
        if let Some(registry) = self.caller.registry() {
            registry
                .channels()
                .publish(&self.caller.project, Channel::Git, state.to_json());
        }
    }

    /// Waits until every file event received so far has been applied to the mirror.
    pub async fn caught_up(&self) {
        let target = self.received.load(Ordering::SeqCst);
        let mut applied = self.applied.subscribe();
        let _ = applied.wait_for(|n| *n >= target).await;
    }

    /// The caller this session's file events are applied for.
    pub fn caller(&self) -> &Arc<Caller> {
        &self.caller
    }
}

async fn run(
    files: std::sync::Weak<SessionFiles>,
    session: Arc<Session>,
    mut rx: mpsc::Receiver<QueuedEvent>,
) {
    loop {
        let event = tokio::select! {
            e = rx.recv() => e,
            _ = session.closed() => None,
        };
        let Some(event) = event else { break };
        let Some(files) = files.upgrade() else { break };
        match event {
            QueuedEvent::Sync { id, params } => {
                let reply = match sync_manifest(&files.caller, files.notices.as_ref(), params).await
                {
                    Ok(result) => Message::response(id, result),
                    Err(e) => Message::error(id, e),
                };
                session.send_to_client(reply);
            }
            QueuedEvent::Changed(params) => {
                if let Err(e) = file_changed(&files.caller, params).await {
                    tracing::warn!(session = %session.id, error = %e.message, "fileChanged not applied");
                }
            }
        }
        files.applied.send_modify(|n| *n += 1);
    }
}

fn file_error(e: &FileError) -> ErrorObject {
    RemoteError::from(e)
}

fn workspace_error(e: WorkspaceError) -> ErrorObject {
    ErrorObject::new(codes::INTERNAL_ERROR, e.to_text())
}

/// Applies a `server/syncManifest` from `caller`'s client: fetches what the mirror lacks,
/// drops what the client no longer has, tells the language servers, and answers with what
/// was done.
pub async fn sync_manifest(
    caller: &Caller,
    notices: &dyn ClientNotices,
    params: Option<Value>,
) -> Result<Value, ErrorObject> {
    let params: SyncManifestParams = serde_json::from_value(params.unwrap_or(Value::Null))
        .map_err(|e| {
            ErrorObject::new(
                codes::INVALID_PARAMS,
                format!("invalid server/syncManifest params: {e}"),
            )
        })?;
    let dry_run = params.dry_run;
    let workspace = caller.open_workspace().await.map_err(workspace_error)?;
    let mirror = &caller.mirror(&workspace).map_err(workspace_error)?;
    let manifest = Manifest::from_params(params, &caller.workspaces().config().mirror.limits)
        .map_err(|e| file_error(&e))?;
    let plan = mirror.plan(&manifest);
    if let Some(conflict) = tree_conflict(caller, &workspace, &plan) {
        tracing::warn!(session = %caller.id, project = %caller.project, other = %conflict.other.session, "sync refused: {}", conflict.message());
        let error = ErrorObject {
            code: codes::CONFLICT,
            message: conflict.message(),
            data: Some(conflict.to_json()),
        };
        if !dry_run {
            workspace
                .extensions
                .get::<SyncState>()
                .refused(&caller.id, conflict.message());
            caller.set_conflict(Some(conflict));
        }
        return Err(error);
    }
    if dry_run {
        let result = plan.to_result();
        return Ok(json!({"needed": result.needed, "removed": result.removed, "dryRun": true}));
    }
    caller.set_conflict(None);
    workspace
        .trees
        .hold(&caller.id, caller.root.as_str(), caller.session());
    let client = caller.client();
    let project = caller.project.to_string();
    let started = std::time::Instant::now();
    let mut running = RunningSync::start(
        project,
        workspace.extensions.get::<SyncState>(),
        caller.id.to_string(),
    );
    let report = mirror
        .sync(&manifest, &client, &|p| {
            running.progress(p.total_files - p.done_files)
        })
        .await;
    let report = match report {
        Ok(report) => {
            running.finish(Ok(json!({
                "fetched": report.fetched.len(),
                "removed": report.removed.len(),
                "unchanged": report.unchanged,
                "skipped": report.skipped.len(),
                "durationMs": started.elapsed().as_millis() as u64,
            })));
            report
        }
        Err(e) => {
            running.finish(Err(e.to_string()));
            return Err(file_error(&e));
        }
    };
    metrics::counter!("codeflow_sync_fetched_files_total").increment(report.fetched.len() as u64);
    metrics::counter!("codeflow_sync_fetched_bytes_total").increment(report.fetched_bytes);
    let changed: Vec<(MirrorPath, FileChangeType)> = report
        .fetched
        .iter()
        .map(|rel| (mirror.paths().mirror_path(rel), FileChangeType::CHANGED))
        .chain(
            report
                .removed
                .iter()
                .map(|rel| (mirror.paths().mirror_path(rel), FileChangeType::DELETED)),
        )
        .collect();
    tell_language_servers(&workspace, &changed).await;
    caller.workspaces().prestart(
        &workspace,
        mirror.files().into_keys().map(|p| p.as_str().to_owned()),
    );
    if let Some(registry) = caller.registry() {
        registry.channels().publish(
            &caller.project,
            Channel::Files,
            json!({
                "event": "synced",
                "fetched": report.fetched.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                "removed": report.removed.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            }),
        );
    }
    notices.notice(
        "info",
        json!({
            "event": "mirror synced",
            "fetched": report.fetched.len(),
            "removed": report.removed.len(),
            "unchanged": report.unchanged,
            "skipped": report.skipped.len(),
        }),
    );
    tracing::info!(
        session = %caller.id,
        fetched = report.fetched.len(),
        removed = report.removed.len(),
        unchanged = report.unchanged,
        ms = started.elapsed().as_millis() as u64,
        "mirror synced"
    );
    Ok(json!({
        "needed": plan.to_result().needed,
        "removed": plan.to_result().removed,
        "fetched": report.fetched.len(),
        "fetchedBytes": report.fetched_bytes,
        "unchanged": report.unchanged,
        "skipped": report.skipped.iter().map(|(p, e)| json!({"path": p.as_str(), "error": e.to_string()})).collect::<Vec<_>>(),
        "durationMs": started.elapsed().as_millis() as u64,
    }))
}

/// One running sync, as status shows it: `codeflow_sync_pending_files` and the project's
/// [`SyncState`]. Whatever way the sync ends — fetched, failed, or abandoned because its session
/// left and the future was dropped — the gauge goes back to 0 and the state records the end,
/// so only a sync that hangs keeps the gauge above 0.
struct RunningSync {
    project: String,
    state: std::sync::Arc<SyncState>,
    session: String,
    ended: bool,
}

impl RunningSync {
    fn start(project: String, state: std::sync::Arc<SyncState>, session: String) -> Self {
        state.started();
        Self {
            project,
            state,
            session,
            ended: false,
        }
    }

    /// Files the sync still has to fetch.
    fn progress(&self, files: usize) {
        self.state.progress(files);
        self.gauge(files as f64);
    }

    fn finish(&mut self, outcome: Result<Value, String>) {
        self.ended = true;
        self.state.finished(&self.session, outcome);
        self.gauge(0.0);
    }

    fn gauge(&self, files: f64) {
        metrics::gauge!("codeflow_sync_pending_files", "project" => self.project.clone())
            .set(files);
    }
}

impl Drop for RunningSync {
    fn drop(&mut self) {
        if !self.ended {
            self.finish(Err(
                "abandoned: its session ended before the sync did".to_owned()
            ));
        }
    }
}

/// The refusal of `caller`'s sync, if it would remove files another live session's tree has
/// (see [`crate::trees`]).
fn tree_conflict(
    caller: &Caller,
    workspace: &crate::ProjectWorkspace,
    plan: &codeflow_file_stream::SyncPlan,
) -> Option<TreeConflict> {
    if plan.removed.is_empty() {
        return None;
    }
    let other = workspace.trees.others(&caller.id).into_iter().next()?;
    Some(TreeConflict {
        project: caller.project.to_string(),
        root: caller.root.as_str().to_owned(),
        other,
        would_remove: plan.removed.iter().map(|p| p.as_str().to_owned()).collect(),
    })
}

/// Applies a `server/fileChanged` from `caller`'s client to the mirror and tells the language
/// servers.
pub async fn file_changed(caller: &Caller, params: Option<Value>) -> Result<(), ErrorObject> {
    // A caller whose tree was refused changes nothing in the other tree's mirror.
    let workspace = caller.workspace().await.map_err(workspace_error)?;
    let mirror = caller.mirror(&workspace).map_err(workspace_error)?;
    let change: FileChanged =
        serde_json::from_value(params.unwrap_or(Value::Null)).map_err(|e| {
            ErrorObject::new(
                codes::INVALID_PARAMS,
                format!("invalid server/fileChanged params: {e}"),
            )
        })?;
    let path = ClientPath::parse(&change.path).map_err(|e| file_error(&e))?;
    let mirror_path = mirror
        .paths()
        .to_mirror(&path)
        .map_err(|e| file_error(&e))?;
    let kind = match change.change_type {
        ChangeType::Created => FileChangeType::CREATED,
        ChangeType::Changed => FileChangeType::CHANGED,
        ChangeType::Deleted => FileChangeType::DELETED,
    };
    let client = caller.client();
    let event = json!({
        "path": path.as_str(),
        "changeType": change.change_type,
        "hash": change.hash,
    });
    mirror
        .apply_change(change, &client)
        .await
        .map_err(|e| file_error(&e))?;
    if let Some(registry) = caller.registry() {
        registry
            .channels()
            .publish(&caller.project, Channel::Files, event);
    }
    metrics::counter!("codeflow_file_changes_total").increment(1);
    tell_language_servers(&workspace, &[(mirror_path, kind)]).await;
    Ok(())
}
