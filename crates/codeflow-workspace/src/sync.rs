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
use codeflow_file_stream::{
    ClientPath, FileError, Manifest, MirrorPath, RemoteError, SyncProgress,
};
use codeflow_lsp_pool::lsp_types::FileChangeType;
use codeflow_session::{Channel, Session};
use codeflow_transport::{ErrorObject, Message, codes};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::caller::Caller;
use crate::compile_db::CompilationDatabase;
use crate::error::WorkspaceError;
use crate::lsp_sync::tell_language_servers;
use crate::sync_state::SyncState;
use crate::trees::TreeConflict;

/// File events queued per session. When full, the socket reader waits (back-pressure on the
/// relay), which never loses an event.
const EVENT_QUEUE: usize = 1024;

enum QueuedEvent {
    Sync {
        id: Value,
        params: Option<Value>,
    },
    /// `server/syncBegin`: the sync whose manifest comes later, through `manifest`.
    Begin {
        id: Value,
        params: Option<Value>,
        manifest: oneshot::Receiver<ManifestRequest>,
    },
    Changed(Option<Value>),
}

/// A `server/syncManifest` request: its id and params.
pub(crate) type ManifestRequest = (Value, Option<Value>);

/// How long a begun sync waits for the relay's manifest (the relay sends it once its scan
/// and upload are over; the session's calls wait meanwhile, as for any sync).
pub(crate) const MANIFEST_WAIT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

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
    /// The running sync's progress (`None` when none runs), for calls waiting on it.
    progress: watch::Sender<Option<Value>>,
    /// A begun sync (`server/syncBegin`) waiting for its manifest: the next
    /// `server/syncManifest` goes to it rather than into the queue behind it.
    awaiting_manifest: parking_lot::Mutex<Option<oneshot::Sender<ManifestRequest>>>,
    /// The last upload operation the relay said is over (`server/syncUploadOver`), for a begun
    /// sync whose manifest came while its upload ran.
    upload_over: watch::Sender<Option<String>>,
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
            progress: watch::channel(None).0,
            awaiting_manifest: parking_lot::Mutex::new(None),
            upload_over: watch::channel(None).0,
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
                // A begun sync takes it: that sync is still counted as unapplied, so calls
                // wait for it whole.
                let Some(waiting) = self.awaiting_manifest.lock().take() else {
                    return self.queue(QueuedEvent::Sync { id, params }).await;
                };
                match waiting.send((id, params)) {
                    Ok(()) => return None,
                    Err((id, params)) => QueuedEvent::Sync { id, params },
                }
            }
            Message::Request { id, method, params }
                if method == codeflow_file_stream::transfer::SYNC_BEGIN =>
            {
                let (tx, manifest) = oneshot::channel();
                *self.awaiting_manifest.lock() = Some(tx);
                QueuedEvent::Begin {
                    id,
                    params,
                    manifest,
                }
            }
            Message::Notification { method, params } if method == "server/fileChanged" => {
                QueuedEvent::Changed(params)
            }
            Message::Notification { method, params }
                if method == codeflow_file_stream::transfer::SYNC_UPLOAD_OVER =>
            {
                // Not queued: the begun sync it ends is the event running now.
                if let Some(id) = params
                    .as_ref()
                    .and_then(|p| p.get("operationId"))
                    .and_then(Value::as_str)
                {
                    self.upload_over.send_replace(Some(id.to_owned()));
                }
                return None;
            }
            Message::Notification { method, params } if method == "server/gitState" => {
                self.git_state(params.as_ref()).await;
                return None;
            }
            other => return Some(other),
        };
        self.queue(event).await
    }

    /// Queues one file event for the session's task.
    async fn queue(&self, event: QueuedEvent) -> Option<Message> {
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

    /// [`Self::caught_up`], telling the client how a running sync progresses meanwhile: with
    /// `progress_token` (a `tools/call`'s `_meta.progressToken`), each step of the sync goes
    /// to the session as MCP `notifications/progress` (`progress`/`total` in files), rising only.
    pub async fn caught_up_reporting(&self, progress_token: Option<Value>) {
        let Some(token) = progress_token else {
            return self.caught_up().await;
        };
        let target = self.received.load(Ordering::SeqCst);
        let mut applied = self.applied.subscribe();
        let mut progress = self.progress.subscribe();
        progress.mark_changed();
        let mut last = None;
        loop {
            tokio::select! {
                _ = applied.wait_for(|n| *n >= target) => return,
                Ok(()) = progress.changed() => {
                    let step = progress.borrow_and_update().clone();
                    let Some(step) = step else { continue };
                    let done = step["files"].as_u64().unwrap_or(0);
                    if last.is_some_and(|l| done <= l) {
                        continue;
                    }
                    last = Some(done);
                    self.session.send_to_client(Message::notification(
                        "notifications/progress",
                        json!({
                            "progressToken": token,
                            "progress": done,
                            "total": step["totalFiles"],
                            "message": format!(
                                "waiting for the mirror's sync: {done} of {} files, {} of {} bytes",
                                step["totalFiles"], step["bytes"], step["totalBytes"]
                            ),
                        }),
                    ));
                }
            }
        }
    }

    /// The caller this session's file events are applied for.
    pub fn caller(&self) -> &Arc<Caller> {
        &self.caller
    }

    /// Where notable file events are told to the client.
    pub(crate) fn notices(&self) -> &dyn ClientNotices {
        self.notices.as_ref()
    }

    /// Completes when the relay has said the upload `operation_id` is over
    /// (`server/syncUploadOver`), even if it said so before this was called.
    pub(crate) async fn upload_over(&self, operation_id: &str) {
        let mut over = self.upload_over.subscribe();
        let _ = over
            .wait_for(|last| last.as_deref() == Some(operation_id))
            .await;
    }

    /// The running sync's progress, for calls waiting on it.
    pub(crate) fn progress(&self) -> &watch::Sender<Option<Value>> {
        &self.progress
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
                let reply = match sync_manifest_reporting(
                    &files.caller,
                    files.notices.as_ref(),
                    params,
                    Some(&files.progress),
                    None,
                )
                .await
                {
                    Ok(result) => Message::response(id, result),
                    Err(e) => Message::error(id, e),
                };
                session.send_to_client(reply);
            }
            QueuedEvent::Begin {
                id,
                params,
                manifest,
            } => crate::sync_begin::run(&files, &session, id, params, manifest).await,
            QueuedEvent::Changed(params) => {
                if let Err(e) = file_changed(&files.caller, params).await {
                    tracing::warn!(session = %session.id, error = %e.message, "fileChanged not applied");
                }
            }
        }
        files.applied.send_modify(|n| *n += 1);
    }
}

pub(crate) fn file_error(e: &FileError) -> ErrorObject {
    RemoteError::from(e)
}

pub(crate) fn workspace_error(e: WorkspaceError) -> ErrorObject {
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
    sync_manifest_reporting(caller, notices, params, None, None).await
}

/// [`sync_manifest`], its progress also going to `progress` (the session's calls waiting on
/// it, see [`SessionFiles::caught_up_reporting`]). `streamed`: the files a begun sync
/// (`server/syncBegin`) received before this manifest; they are in the mirror already, and
/// the upload takes no more.
pub(crate) async fn sync_manifest_reporting(
    caller: &Caller,
    notices: &dyn ClientNotices,
    params: Option<Value>,
    progress: Option<&watch::Sender<Option<Value>>>,
    streamed: Option<crate::sync_begin::Streamed>,
) -> Result<Value, ErrorObject> {
    let parsed = ParsedManifest::parse(&caller.workspaces().config().mirror.limits, params)?;
    sync_parsed(caller, notices, parsed, progress, streamed).await
}

/// A `server/syncManifest`'s params, checked and made a [`Manifest`] (what can be done before
/// the mirror is looked at: a manifest sent while its streamed upload runs is parsed at once).
pub(crate) struct ParsedManifest {
    manifest: Manifest,
    dry_run: bool,
    offers_transfers: bool,
    offers_all: bool,
}

impl ParsedManifest {
    /// Checks `params` under the server's mirror `limits`.
    pub(crate) fn parse(
        limits: &codeflow_file_stream::Limits,
        params: Option<Value>,
    ) -> Result<Self, ErrorObject> {
        let params: SyncManifestParams = serde_json::from_value(params.unwrap_or(Value::Null))
            .map_err(|e| {
                ErrorObject::new(
                    codes::INVALID_PARAMS,
                    format!("invalid server/syncManifest params: {e}"),
                )
            })?;
        let dry_run = params.dry_run;
        let offers_transfers = params.transfers;
        let offers_all = params.transfers && params.upload_all;
        let manifest = Manifest::from_params(params, limits).map_err(|e| file_error(&e))?;
        Ok(Self {
            manifest,
            dry_run,
            offers_transfers,
            offers_all,
        })
    }
}

/// Applies a parsed manifest (see [`sync_manifest_reporting`]).
pub(crate) async fn sync_parsed(
    caller: &Caller,
    notices: &dyn ClientNotices,
    parsed: ParsedManifest,
    progress: Option<&watch::Sender<Option<Value>>>,
    streamed: Option<crate::sync_begin::Streamed>,
) -> Result<Value, ErrorObject> {
    // The streamed files are all there will be: the plan below sees them in the mirror.
    let streamed = streamed.inspect(|s| s.upload.end());
    let ParsedManifest {
        manifest,
        dry_run,
        offers_transfers,
        offers_all,
    } = parsed;
    let workspace = caller.open_workspace().await.map_err(workspace_error)?;
    let mirror = &caller.mirror(&workspace).map_err(workspace_error)?;
    let plan = mirror.plan(&manifest);
    tracing::debug!(session = %caller.id, files = manifest.len(), needed = plan.needed.len(), "sync planned");
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
    let started = std::time::Instant::now();
    // What the mirror lacks goes over one upload when the relay offers it and it is worth it;
    // whatever that did not bring (a file changed since its manifest entry, a transfer that
    // failed) is fetched with `client/readFiles` below.
    let mut transferred: (Vec<codeflow_file_stream::RelPath>, u64) = (Vec::new(), 0);
    let mut removed_first = Vec::new();
    let mut transfer_summary = Value::Null;
    let mut running = match streamed {
        Some(streamed) => {
            transferred = streamed.upload.stored();
            transfer_summary = json!({"streamed": streamed.operation_id,
                "files": transferred.0.len(), "bytes": transferred.1});
            streamed.running
        }
        None => RunningSync::start(progress_sink(caller, &workspace, progress)),
    };
    if offers_transfers && worth_a_transfer(&plan, &manifest) {
        match upload_missing(
            caller,
            mirror,
            &manifest,
            &plan,
            &running,
            &mut removed_first,
            offers_all,
        )
        .await
        {
            Ok(((stored, bytes), mut summary)) => {
                // After a streamed upload (cut short), both count.
                if let (Some(streamed), Some(fields)) =
                    (transfer_summary.get("streamed"), summary.as_object_mut())
                {
                    fields.insert("streamed".into(), streamed.clone());
                }
                transferred.0.extend(stored);
                transferred.1 += bytes;
                transfer_summary = summary;
            }
            Err(e) => {
                tracing::warn!(session = %caller.id, "sync upload failed ({}); reading the files instead", e.message);
                transfer_summary = json!({"error": e.message});
            }
        }
    }
    tracing::debug!(session = %caller.id, ms = started.elapsed().as_millis() as u64, "sync upload over");
    let report = mirror
        .sync(&manifest, &client, &|p| running.progress(p, "readFiles"))
        .await;
    tracing::debug!(session = %caller.id, ms = started.elapsed().as_millis() as u64, "sync readFiles pass over");
    let report = match report {
        Ok(mut report) => {
            let (stored, bytes) = std::mem::take(&mut transferred);
            report.unchanged = report.unchanged.saturating_sub(stored.len());
            let transferred_files = stored.len();
            report.fetched.extend(stored);
            report.fetched.sort();
            report.fetched.dedup();
            report.fetched_bytes += bytes;
            report.removed.append(&mut removed_first);
            report.removed.sort();
            metrics::counter!("codeflow_sync_transferred_files_total")
                .increment(transferred_files as u64);
            metrics::counter!("codeflow_sync_transferred_bytes_total").increment(bytes);
            transfer_summary = match transfer_summary {
                Value::Null => Value::Null,
                mut summary => {
                    summary["stored"] = transferred_files.into();
                    summary["storedBytes"] = bytes.into();
                    summary
                }
            };
            running.finish(Ok(json!({
                "fetched": report.fetched.len(),
                "removed": report.removed.len(),
                "unchanged": report.unchanged,
                "skipped": report.skipped.len(),
                "transfer": transfer_summary,
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
    tracing::debug!(session = %caller.id, ms = started.elapsed().as_millis() as u64, "sync: language servers told");
    if report
        .fetched
        .iter()
        .chain(report.removed.iter())
        .any(|rel| CompilationDatabase::is_source(rel.as_str()))
    {
        workspace
            .follow_compilation_database(caller.root.as_str())
            .await;
    }
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
        "transfer": transfer_summary,
        "skipped": report.skipped.iter().map(|(p, e)| json!({"path": p.as_str(), "error": e.to_string()})).collect::<Vec<_>>(),
        "durationMs": started.elapsed().as_millis() as u64,
    }))
}

/// The progress sink of `caller`'s sync.
pub(crate) fn progress_sink(
    caller: &Caller,
    workspace: &crate::ProjectWorkspace,
    progress: Option<&watch::Sender<Option<Value>>>,
) -> SyncProgressSink {
    SyncProgressSink {
        project: caller.project.clone(),
        state: workspace.extensions.get::<SyncState>(),
        registry: caller.registry(),
        watch: progress.cloned(),
        last_published: parking_lot::Mutex::new(None),
        session: caller.id.to_string(),
    }
}

/// Where a running sync's progress goes: the project's [`SyncState`] (status views,
/// `health_check`), `codeflow_sync_pending_files`, the project's `files` channel
/// (`syncProgress`, at most every [`PUBLISH_EVERY`] and at the end of each phase), and the
/// session's calls waiting on it.
pub(crate) struct SyncProgressSink {
    project: codeflow_session::ProjectId,
    state: Arc<SyncState>,
    registry: Option<Arc<codeflow_session::SessionRegistry>>,
    watch: Option<watch::Sender<Option<Value>>>,
    last_published: parking_lot::Mutex<Option<std::time::Instant>>,
    session: String,
}

/// How often a sync's progress goes on the `files` channel.
const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

impl SyncProgressSink {
    pub(crate) fn report(&self, p: &SyncProgress, via: &str) {
        self.state.progress(p, via);
        metrics::gauge!("codeflow_sync_pending_files", "project" => self.project.to_string())
            .set((p.total_files - p.done_files.min(p.total_files)) as f64);
        let event = json!({
            "event": "syncProgress",
            "session": self.session,
            "via": via,
            "files": p.done_files,
            "totalFiles": p.total_files,
            "bytes": p.done_bytes,
            "totalBytes": p.total_bytes,
        });
        if let Some(watch) = &self.watch {
            watch.send_replace(Some(event.clone()));
        }
        let due = {
            let mut last = self.last_published.lock();
            let due = p.done_files == 0
                || p.done_files >= p.total_files
                || last.is_none_or(|t| t.elapsed() >= PUBLISH_EVERY);
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        };
        if due && let Some(registry) = &self.registry {
            registry
                .channels()
                .publish(&self.project, Channel::Files, event);
        }
    }
}

/// One running sync, as status shows it (see [`SyncProgressSink`]). Whatever way the sync
/// ends — fetched, failed, or abandoned because its session left and the future was dropped —
/// the gauge goes back to 0 and the state records the end, so only a sync that hangs keeps the
/// gauge above 0.
pub(crate) struct RunningSync {
    pub(crate) sink: Arc<SyncProgressSink>,
    ended: bool,
}

impl RunningSync {
    pub(crate) fn start(sink: SyncProgressSink) -> Self {
        sink.state.started();
        Self {
            sink: Arc::new(sink),
            ended: false,
        }
    }

    /// How far the sync is (`via`: "transfer" or "readFiles").
    fn progress(&self, p: &SyncProgress, via: &str) {
        self.sink.report(p, via);
    }

    fn finish(&mut self, outcome: Result<Value, String>) {
        self.ended = true;
        self.sink.state.finished(&self.sink.session, outcome);
        metrics::gauge!("codeflow_sync_pending_files", "project" => self.sink.project.to_string())
            .set(0.0);
        if let Some(watch) = &self.sink.watch {
            watch.send_replace(None);
        }
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

/// A sync uses a transfer from this many files, or bytes, on; smaller ones (a few edits missed
/// while disconnected) are a handful of `client/readFiles` round trips.
const TRANSFER_MIN_FILES: usize = 16;
const TRANSFER_MIN_BYTES: u64 = 1024 * 1024;

/// How long the relay may take to send a sync's upload (it reports progress meanwhile).
const UPLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

fn worth_a_transfer(plan: &codeflow_file_stream::SyncPlan, manifest: &Manifest) -> bool {
    let bytes: u64 = plan
        .needed
        .iter()
        .filter_map(|rel| manifest.get(rel))
        .map(|e| e.size)
        .sum();
    plan.needed.len() >= TRANSFER_MIN_FILES || bytes >= TRANSFER_MIN_BYTES
}

/// Ends a sync's upload however the sync ends (a dropped future included).
pub(crate) struct EndUpload(pub(crate) Arc<crate::sync_upload::SyncUpload>);

impl Drop for EndUpload {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Asks the relay for what the mirror lacks over one upload (`client/uploadFiles`); returns
/// what was stored, and the relay's summary of the transfer.
async fn upload_missing(
    caller: &Caller,
    mirror: &codeflow_file_stream::Mirror,
    manifest: &Manifest,
    plan: &codeflow_file_stream::SyncPlan,
    running: &RunningSync,
    removed: &mut Vec<codeflow_file_stream::RelPath>,
    offers_all: bool,
) -> Result<((Vec<codeflow_file_stream::RelPath>, u64), Value), ErrorObject> {
    use crate::sync_upload::{Expected, SyncUpload};
    use codeflow_file_stream::transfer::{UPLOAD_FILES, UploadAll, UploadFilesParams};
    let unavailable = |why: &str| ErrorObject::new(codes::INTERNAL_ERROR, why.to_owned());
    let session = caller
        .session()
        .ok_or_else(|| unavailable("no session to upload from"))?;
    let uploads = caller
        .workspaces()
        .sync_uploads()
        .ok_or_else(|| unavailable("this server takes no uploads"))?;
    let limits = caller.workspaces().config().mirror.limits;
    limits
        .check_project(manifest.len() as u64, manifest.total_bytes())
        .map_err(|e| file_error(&e))?;
    // Deletions first: they free room, and a file replaced by a directory (or the reverse)
    // is out of the way.
    *removed = mirror
        .remove_unlisted(manifest)
        .await
        .map_err(|e| file_error(&e))?;
    let files: Vec<Expected> = plan
        .needed
        .iter()
        .filter_map(|rel| {
            let entry = manifest.get(rel)?;
            // Too large, or leading out of the mirror: left to the fetch below, which reports it.
            limits.check_file_size(rel.as_str(), entry.size).ok()?;
            Some(Expected {
                rel: rel.clone(),
                size: entry.size,
                hash: entry.hash.clone(),
                mark: mirror.mark_rel(rel),
            })
        })
        .collect();
    let sink = running.sink.clone();
    let upload = SyncUpload::new(
        mirror.clone(),
        files,
        Arc::new(move |p| sink.report(p, "transfer")),
    );
    let _end = EndUpload(upload.clone());
    running.progress(
        &SyncProgress {
            total_files: upload.total_files(),
            done_files: 0,
            total_bytes: upload.total_bytes(),
            done_bytes: 0,
        },
        "transfer",
    );
    let (operation_id, url) = uploads.begin(session, upload.clone())?;
    // The plan lists files in the manifest's (path) order: when it is the whole manifest, a
    // relay that kept it is told so instead of being sent 10,000 entries back.
    let whole_manifest = offers_all && upload.total_files() == manifest.len();
    let params = UploadFilesParams {
        operation_id,
        url,
        files: if whole_manifest {
            Vec::new()
        } else {
            upload.entries()
        },
        all: whole_manifest.then(|| UploadAll {
            files: upload.total_files() as u64,
            bytes: upload.total_bytes(),
        }),
        whole_frames: true,
    };
    let params = serde_json::to_value(params)
        .map_err(|e| ErrorObject::new(codes::INTERNAL_ERROR, e.to_string()))?;
    tracing::debug!(session = %caller.id, files = upload.total_files(), "asking the relay for the upload");
    let summary = session
        .request_client(UPLOAD_FILES, params, UPLOAD_TIMEOUT)
        .await;
    upload.end();
    let stored = upload.stored();
    match summary {
        Ok(summary) => Ok((stored, summary)),
        // What arrived before the failure stays; the fetch reads the rest.
        Err(e) if !stored.0.is_empty() => Ok((stored, json!({"error": e.message}))),
        Err(e) => Err(e),
    }
}

/// The refusal of `caller`'s sync, if it would remove files another live session's tree has
/// (see [`crate::trees`]).
pub(crate) fn tree_conflict(
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
    let database = CompilationDatabase::is_source(mirror_path.rel().as_str());
    tell_language_servers(&workspace, &[(mirror_path, kind)]).await;
    if database {
        workspace
            .follow_compilation_database(caller.root.as_str())
            .await;
    }
    Ok(())
}
