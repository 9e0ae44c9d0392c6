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
use codeflow_lsp_pool::lsp_types::{
    DidChangeWatchedFilesParams, FileChangeType, FileEvent, notification::DidChangeWatchedFiles,
};
use codeflow_session::{Channel, Session};
use codeflow_transport::{ErrorObject, Message, codes};
use serde_json::{Value, json};
use tokio::sync::{OnceCell, mpsc, watch};

use crate::client::{Rebase, SessionClient};
use crate::client_log::ClientLog;
use crate::context::ServerServices;
use crate::error::ToolError;
use crate::workspace::ProjectWorkspace;

/// File events queued per session. When full, the socket reader waits (back-pressure on the
/// relay), which never loses an event.
const EVENT_QUEUE: usize = 1024;

enum QueuedEvent {
    Sync { id: Value, params: Option<Value> },
    Changed(Option<Value>),
}

/// The file side of one session.
pub struct SessionFiles {
    session: Arc<Session>,
    log: Arc<ClientLog>,
    services: Arc<ServerServices>,
    workspace: OnceCell<Arc<ProjectWorkspace>>,
    received: AtomicU64,
    applied: watch::Sender<u64>,
    /// Created with the task on the first file event: most sessions of a busy server are idle,
    /// and an idle session should not hold a task and a queue.
    events: std::sync::OnceLock<mpsc::Sender<QueuedEvent>>,
    me: std::sync::Weak<SessionFiles>,
}

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
        services: Arc<ServerServices>,
        log: Arc<ClientLog>,
    ) -> Arc<Self> {
        let (applied, _) = watch::channel(0);
        Arc::new_cyclic(|me| Self {
            session,
            log,
            services,
            workspace: OnceCell::new(),
            received: AtomicU64::new(0),
            applied,
            events: std::sync::OnceLock::new(),
            me: me.clone(),
        })
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
            other => return Some(other),
        };
        self.received.fetch_add(1, Ordering::SeqCst);
        if self.events().send(event).await.is_err() {
            // The task is gone (session closing): count it as applied so nobody waits on it.
            self.applied.send_modify(|n| *n += 1);
        }
        None
    }

    /// Waits until every file event received so far has been applied to the mirror.
    pub async fn caught_up(&self) {
        let target = self.received.load(Ordering::SeqCst);
        let mut applied = self.applied.subscribe();
        let _ = applied.wait_for(|n| *n >= target).await;
    }

    /// The project's workspace, opened on first use.
    pub async fn workspace(&self) -> Result<Arc<ProjectWorkspace>, ToolError> {
        self.workspace
            .get_or_try_init(|| {
                self.services
                    .workspaces
                    .open(&self.session.project, self.session.root.as_str())
            })
            .await
            .cloned()
    }

    /// Talks to this session's relay, in the mirror's path space.
    pub fn client(&self, workspace: &ProjectWorkspace) -> SessionClient {
        SessionClient::new(
            self.session.clone(),
            workspace.mirror.paths().client_root().as_str(),
        )
    }

    /// This session's root → the mirror's client root, when they differ.
    pub fn rebase_in(&self, workspace: &ProjectWorkspace) -> Option<Rebase> {
        Rebase::new(
            self.session.root.as_str(),
            workspace.mirror.paths().client_root().as_str(),
        )
    }

    /// A path in the mirror's client space, back in this session's own root.
    fn client_path_of(&self, workspace: &ProjectWorkspace, path: &str) -> String {
        match self.rebase_in(workspace) {
            Some(r) => r.reversed().path(path),
            None => path.to_owned(),
        }
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
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
                let reply = match sync_manifest(&files, params).await {
                    Ok(result) => Message::response(id, result),
                    Err(e) => Message::error(id, e),
                };
                session.send_to_client(reply);
            }
            QueuedEvent::Changed(params) => {
                if let Err(e) = file_changed(&files, params).await {
                    tracing::warn!(session = %session.id, error = %e.message, "fileChanged not applied");
                }
            }
        }
        files.applied.send_modify(|n| *n += 1);
    }
}

fn file_error(e: &FileError) -> ErrorObject {
    let remote = RemoteError::from(e);
    ErrorObject {
        code: remote.code,
        message: remote.message,
        data: remote.data,
    }
}

fn tool_error(e: ToolError) -> ErrorObject {
    ErrorObject::new(codes::INTERNAL_ERROR, e.to_text())
}

async fn sync_manifest(files: &SessionFiles, params: Option<Value>) -> Result<Value, ErrorObject> {
    let params: SyncManifestParams = serde_json::from_value(params.unwrap_or(Value::Null))
        .map_err(|e| {
            ErrorObject::new(
                codes::INVALID_PARAMS,
                format!("invalid server/syncManifest params: {e}"),
            )
        })?;
    let workspace = files.workspace().await.map_err(tool_error)?;
    let mirror = &workspace.mirror;
    let manifest = Manifest::from_params(params, &files.services.workspaces.config().mirror.limits)
        .map_err(|e| file_error(&e))?;
    let plan = mirror.plan(&manifest);
    let client = files.client(&workspace);
    let project = files.session.project.to_string();
    let started = std::time::Instant::now();
    let report = mirror
        .sync(&manifest, &client, &|p| {
            metrics::gauge!("codeflow_sync_pending_files", "project" => project.clone())
                .set((p.total_files - p.done_files) as f64);
        })
        .await
        .map_err(|e| file_error(&e))?;
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
    files.services.workspaces.prestart(
        &workspace,
        mirror.files().into_keys().map(|p| p.as_str().to_owned()),
    );
    if let Some(registry) = files.session.registry() {
        registry.channels().publish(
            &files.session.project,
            Channel::Files,
            json!({
                "event": "synced",
                "fetched": report.fetched.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                "removed": report.removed.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            }),
        );
    }
    files.log.log(
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
        session = %files.session.id,
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

async fn file_changed(files: &SessionFiles, params: Option<Value>) -> Result<(), ErrorObject> {
    let workspace = files.workspace().await.map_err(tool_error)?;
    let params = match files.rebase_in(&workspace) {
        Some(r) => r.params(params.unwrap_or(Value::Null)),
        None => params.unwrap_or(Value::Null),
    };
    let change: FileChanged = serde_json::from_value(params).map_err(|e| {
        ErrorObject::new(
            codes::INVALID_PARAMS,
            format!("invalid server/fileChanged params: {e}"),
        )
    })?;
    let path = ClientPath::parse(&change.path).map_err(|e| file_error(&e))?;
    let mirror_path = workspace
        .mirror
        .paths()
        .to_mirror(&path)
        .map_err(|e| file_error(&e))?;
    let kind = match change.change_type {
        ChangeType::Created => FileChangeType::CREATED,
        ChangeType::Changed => FileChangeType::CHANGED,
        ChangeType::Deleted => FileChangeType::DELETED,
    };
    let client = files.client(&workspace);
    let event = json!({
        "path": files.client_path_of(&workspace, &change.path),
        "changeType": change.change_type,
        "hash": change.hash,
    });
    workspace
        .mirror
        .apply_change(change, &client)
        .await
        .map_err(|e| file_error(&e))?;
    if let Some(registry) = files.session.registry() {
        registry
            .channels()
            .publish(&files.session.project, Channel::Files, event);
    }
    metrics::counter!("codeflow_file_changes_total").increment(1);
    tell_language_servers(&workspace, &[(mirror_path, kind)]).await;
    Ok(())
}

/// Brings running language servers up to date: open documents get the new text
/// (`didChange`), everything else a `didChangeWatchedFiles`. Servers that are not running will
/// read the mirror when they start.
pub(crate) async fn tell_language_servers(
    workspace: &ProjectWorkspace,
    changes: &[(MirrorPath, FileChangeType)],
) {
    if changes.is_empty() {
        return;
    }
    for server in workspace.lease.running_servers() {
        let mut watched = Vec::new();
        for (path, kind) in changes {
            let disk_path = path.as_path();
            if server.is_open(disk_path) {
                if *kind == FileChangeType::DELETED {
                    let _ = server.close(disk_path);
                } else if let Ok(bytes) = workspace.mirror.read(path).await {
                    let _ = server
                        .sync_document(disk_path, String::from_utf8_lossy(&bytes).into_owned());
                }
            } else if let Ok(uri) = server.uri_for(disk_path) {
                watched.push(FileEvent { uri, typ: *kind });
            }
        }
        if !watched.is_empty() {
            let _ = server
                .notify::<DidChangeWatchedFiles>(DidChangeWatchedFilesParams { changes: watched })
                .await;
        }
    }
}
