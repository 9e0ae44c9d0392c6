//! Bulk transfers: `files/beginTransfer` on `/ws` makes an operation — the files to send, in
//! order, bound to the session's project and subject — and `/ws/file-stream/{operation_id}`
//! (`file_stream_socket.rs`) carries them in the framed binary format of
//! `codeflow_file_stream::transfer`. An operation is used by one socket at a time; after a
//! dropped connection it resumes from the file after the last one acknowledged; once its
//! summary is sent it is spent.
//!
//! Download (server → client): from a server-side project's directory, a shared project's,
//! or a streamed project's mirror. Upload (client → server): into a streamed project's mirror,
//! each file stored whole once its hash checks, through the mirror's own atomic write.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use codeflow_file_stream::{Jail, Limits, RelPath};
use codeflow_session::{MethodFamily, MethodReply, Session};
use codeflow_transport::{ErrorObject, codes};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// How long an operation waits for its first connection, and for a resume after a drop.
pub const OPERATION_TTL: Duration = Duration::from_secs(60);
/// Most operations waiting or running at once.
const MAX_OPERATIONS: usize = 1024;

/// One file of an operation.
#[derive(Debug, Clone)]
pub struct Item {
    pub rel: RelPath,
    pub path: PathBuf,
    pub size: u64,
}

impl Operation {
    /// The first file not settled yet (where a connection starts).
    pub fn first_unsettled(&self) -> usize {
        self.settled
            .iter()
            .position(|s| !s)
            .unwrap_or(self.settled.len())
    }
}

/// A transfer that was begun.
#[derive(Debug)]
pub struct Operation {
    pub project: String,
    pub subject: String,
    pub items: Vec<Item>,
    pub total_bytes: u64,
    /// Per file: acknowledged by the client, or skipped (reported in a summary). A resumed
    /// connection sends the others.
    pub settled: Vec<bool>,
    /// Counts the connections that took it; a newer one supersedes an older one still
    /// running (a client resuming before the server noticed the drop).
    pub generation: u64,
    /// Every file is settled: it is spent.
    pub done: bool,
    /// It may not be (re)started after this.
    pub expires: Instant,
    /// For an upload: where the files go and what arrived (a download has `None`).
    pub upload: Option<Upload>,
    /// For a sync's upload (`client/uploadFiles`): the files the sync planned, and where they
    /// are stored (`sync_receive.rs`).
    pub sync: Option<Arc<codeflow_workspace::SyncUpload>>,
}

/// An upload's state: the mirror it writes, the paths it may write, what was stored.
pub struct Upload {
    /// Keeps the project's mirror open while the upload lives (`None` once it is over).
    pub workspace: Option<Arc<codeflow_workspace::ProjectWorkspace>>,
    /// `paths` of `files/beginTransfer`, when given: only these may be sent.
    pub allowed: Option<std::collections::HashSet<String>>,
    /// Indices of the files stored (acknowledged).
    pub received: std::collections::BTreeSet<u64>,
    /// Bytes stored.
    pub bytes: u64,
    /// Files refused, as reported.
    pub rejected: Vec<Value>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("received", &self.received.len())
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// The server's operations.
#[derive(Default)]
pub struct Operations {
    map: Mutex<HashMap<String, Arc<Mutex<Operation>>>>,
}

/// Why an operation id is refused at the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Spent,
    Expired,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Self::Unknown => "no such transfer operation",
            Self::Spent => {
                "this transfer operation was completed already (an operation id is used once)"
            }
            Self::Expired => "this transfer operation has expired",
        }
    }
}

impl Operations {
    /// Forgets expired operations; a spent one is kept (as spent, without its files) until
    /// its expiry, so that its id is answered "used" rather than "unknown" meanwhile.
    fn prune(map: &mut HashMap<String, Arc<Mutex<Operation>>>) {
        let now = Instant::now();
        map.retain(|_, o| o.lock().expires > now);
    }

    fn insert(&self, op: Operation) -> Result<String, ErrorObject> {
        let mut map = self.map.lock();
        Self::prune(&mut map);
        if map.len() >= MAX_OPERATIONS {
            return Err(ErrorObject::new(
                codes::LIMIT_EXCEEDED,
                format!("{MAX_OPERATIONS} transfers are waiting or running already"),
            )
            .with_suggestion("retry when one has finished"));
        }
        let bytes: [u8; 24] = rand::random();
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        map.insert(id.clone(), Arc::new(Mutex::new(op)));
        Ok(id)
    }

    /// Takes the operation for a connection: its generation, which an older connection still
    /// sending sees superseded.
    pub fn start(&self, id: &str) -> Result<(Arc<Mutex<Operation>>, u64), Refusal> {
        let op = self.map.lock().get(id).cloned().ok_or(Refusal::Unknown)?;
        {
            let mut o = op.lock();
            if o.done || (o.upload.is_none() && o.settled.iter().all(|s| *s)) {
                return Err(Refusal::Spent);
            }
            if o.expires <= Instant::now() {
                return Err(Refusal::Expired);
            }
            o.generation += 1;
            // While a connection runs, the operation does not expire.
            o.expires = Instant::now() + Duration::from_secs(365 * 86_400);
        }
        let generation = op.lock().generation;
        Ok((op, generation))
    }

    /// The project an operation belongs to (for the credential check).
    pub fn project_of(&self, id: &str) -> Option<String> {
        let mut map = self.map.lock();
        let project = map.get(id).map(|o| o.lock().project.clone());
        Self::prune(&mut map);
        project
    }
}

/// A sync's upload: made by the sync itself (`client/uploadFiles` tells the relay its id),
/// bound to the sync's session's project and subject like any other operation.
impl codeflow_workspace::SyncUploads for Operations {
    fn begin(
        &self,
        session: &Arc<Session>,
        upload: Arc<codeflow_workspace::SyncUpload>,
    ) -> Result<(String, String), ErrorObject> {
        let id = self.insert(Operation {
            project: session.project.as_str().to_owned(),
            subject: session.grant().subject,
            items: Vec::new(),
            settled: Vec::new(),
            total_bytes: upload.total_bytes(),
            generation: 0,
            done: false,
            expires: Instant::now() + OPERATION_TTL,
            upload: Some(Upload {
                workspace: None,
                allowed: None,
                received: Default::default(),
                bytes: 0,
                rejected: Vec::new(),
            }),
            sync: Some(upload),
        })?;
        let url = format!("/ws/file-stream/{id}");
        Ok((id, url))
    }
}

/// `files/beginTransfer`.
pub struct TransferMethods {
    operations: Arc<Operations>,
    workspaces: Arc<codeflow_workspace::Workspaces>,
    executor: Arc<codeflow_claude_executor::Executor>,
    shared: std::collections::BTreeMap<String, PathBuf>,
    mirrors: PathBuf,
    limits: Limits,
}

impl TransferMethods {
    pub fn new(
        operations: Arc<Operations>,
        workspaces: Arc<codeflow_workspace::Workspaces>,
        executor: Arc<codeflow_claude_executor::Executor>,
        shared: std::collections::BTreeMap<String, PathBuf>,
        data_dir: &Path,
        limits: Limits,
    ) -> Arc<Self> {
        Arc::new(Self {
            operations,
            workspaces,
            executor,
            shared,
            mirrors: data_dir.join("mirrors"),
            limits,
        })
    }

    /// Where the session's project's files are on the server.
    fn root(&self, project: &str) -> Option<PathBuf> {
        match self.executor.project_dir(project) {
            Some(dir) if !dir.as_os_str().is_empty() => return Some(dir),
            _ => {}
        }
        if let Some(dir) = self.shared.get(project) {
            return Some(dir.clone());
        }
        let mirror = self.mirrors.join(project);
        mirror.is_dir().then_some(mirror)
    }
}

/// When an operation made now expires, in ms since the Unix epoch.
fn expires_at() -> u64 {
    SystemTime::now()
        .checked_add(OPERATION_TTL)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

fn invalid(message: impl Into<String>) -> ErrorObject {
    ErrorObject::new(codes::INVALID_PARAMS, message)
        .with_suggestion("see docs/protocol.md, \"Bulk transfers\"")
}

/// Every regular file under `root` (symbolic links are not followed nor sent), sorted.
fn walk(root: &Path, limits: &Limits) -> Result<Vec<(RelPath, PathBuf, u64)>, ErrorObject> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() {
                let Some(rel) = path
                    .strip_prefix(root)
                    .ok()
                    .and_then(|r| r.to_str())
                    .and_then(|r| RelPath::parse_with(r, limits).ok())
                else {
                    continue;
                };
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((rel, path, size));
                if out.len() as u64 > limits.max_files {
                    return Err(ErrorObject::new(
                        codes::LIMIT_EXCEEDED,
                        format!("the project has more than {} files", limits.max_files),
                    ));
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    Ok(out)
}

impl MethodFamily for TransferMethods {
    fn serves(&self, method: &str) -> bool {
        method == "files/beginTransfer"
    }

    fn handle(
        &self,
        session: Arc<Session>,
        _method: String,
        params: Option<Value>,
    ) -> BoxFuture<'static, Result<MethodReply, ErrorObject>> {
        let params = params.unwrap_or(Value::Null);
        let project = session.project.as_str().to_owned();
        let root = self.root(&project);
        let operations = self.operations.clone();
        let limits = self.limits;
        let subject = session.grant().subject;
        let workspaces = self.workspaces.clone();
        let server_side = self
            .executor
            .project_dir(&project)
            .is_some_and(|d| !d.as_os_str().is_empty());
        Box::pin(async move {
            match params.get("direction").and_then(Value::as_str) {
                Some("download") => {}
                Some("upload") => {
                    if server_side {
                        return Err(invalid(format!(
                            "project `{project}` is a server-side project: uploads go to a streamed project's mirror"
                        )));
                    }
                    if !session.has(codeflow_session::Right::FileWrite) {
                        return Err(ErrorObject::new(
                            codes::FORBIDDEN,
                            "an upload writes the project's mirror: it needs the `file:write` right",
                        )
                        .with_suggestion("use a token whose scope includes file:write"));
                    }
                    let allowed = match params.get("paths") {
                        None | Some(Value::Null) => None,
                        Some(Value::Array(paths)) => Some(
                            paths
                                .iter()
                                .map(|p| {
                                    p.as_str()
                                        .ok_or_else(|| invalid("`paths` must be strings"))
                                        .and_then(|raw| {
                                            RelPath::parse_with(raw, &limits)
                                                .map(|r| r.as_str().to_owned())
                                                .map_err(ErrorObject::from)
                                        })
                                })
                                .collect::<Result<std::collections::HashSet<_>, _>>()?,
                        ),
                        Some(_) => {
                            return Err(invalid("`paths` must be an array of relative paths"));
                        }
                    };
                    let workspace = workspaces
                        .open(&session.project, session.root.as_str())
                        .await
                        .map_err(|e| ErrorObject::new(codes::INTERNAL_ERROR, e.to_string()))?;
                    if workspace.mirror.is_shared() {
                        return Err(ErrorObject::new(
                            codeflow_file_stream::error::codes::SHARED_PROJECT,
                            format!("project `{project}` is shared: nothing is streamed to it"),
                        ));
                    }
                    let id = operations.insert(Operation {
                        project,
                        subject,
                        items: Vec::new(),
                        settled: Vec::new(),
                        total_bytes: 0,
                        generation: 0,
                        done: false,
                        expires: Instant::now() + OPERATION_TTL,
                        sync: None,
                        upload: Some(Upload {
                            workspace: Some(workspace),
                            allowed,
                            received: Default::default(),
                            bytes: 0,
                            rejected: Vec::new(),
                        }),
                    })?;
                    return Ok(MethodReply::Result(json!({
                        "operationId": id,
                        "url": format!("/ws/file-stream/{id}"),
                        "expiresAt": expires_at(),
                        "direction": "upload",
                        // Files may come in one frame each (`0x03`).
                        "wholeFrames": true,
                    })));
                }
                _ => return Err(invalid("`direction` must be \"download\" or \"upload\"")),
            }
            let Some(root) = root else {
                return Err(invalid(format!(
                    "project `{project}` has no files on this server yet"
                )));
            };
            let all = params.get("all").and_then(Value::as_bool) == Some(true);
            let paths = params.get("paths").and_then(Value::as_array).cloned();
            let items = match (all, paths) {
                (true, None) => {
                    let root = root.clone();
                    tokio::task::spawn_blocking(move || walk(&root, &limits))
                        .await
                        .map_err(|e| ErrorObject::new(codes::INTERNAL_ERROR, e.to_string()))??
                        .into_iter()
                        .map(|(rel, path, size)| Item { rel, path, size })
                        .collect::<Vec<_>>()
                }
                (false, Some(paths)) => {
                    let jail = Jail::new(&root)
                        .map_err(|e| ErrorObject::new(codes::INTERNAL_ERROR, e.to_string()))?;
                    let mut items = Vec::with_capacity(paths.len());
                    for p in paths {
                        let raw = p
                            .as_str()
                            .ok_or_else(|| invalid("`paths` must be strings"))?;
                        // The same jail as every file request: lexical rules, then no symbolic
                        // link leading out.
                        let rel = RelPath::parse_with(raw, &limits).map_err(ErrorObject::from)?;
                        let path = jail.resolve(&rel).map_err(ErrorObject::from)?;
                        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                        items.push(Item { rel, path, size });
                    }
                    items
                }
                _ => {
                    return Err(invalid(
                        "give either `paths` (relative paths) or `all: true`",
                    ));
                }
            };
            let total_bytes = items.iter().map(|i| i.size).sum();
            let total_files = items.len();
            let id = operations.insert(Operation {
                project,
                subject,
                settled: vec![false; items.len()],
                items,
                total_bytes,
                generation: 0,
                done: false,
                expires: Instant::now() + OPERATION_TTL,
                upload: None,
                sync: None,
            })?;
            Ok(MethodReply::Result(json!({
                "operationId": id,
                "url": format!("/ws/file-stream/{id}"),
                "expiresAt": expires_at(),
                "direction": "download",
                "totalFiles": total_files,
                "totalBytes": total_bytes,
            })))
        })
    }
}
