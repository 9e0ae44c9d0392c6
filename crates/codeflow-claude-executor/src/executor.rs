//! The executor: the projects store, runs, message logs and the methods clients call.
//!
//! Methods (params and results in `docs/protocol.md`): `projects/create`, `projects/delete`,
//! `projects/list`, `projects/get`, `projects/join`, `projects/leave`, `projects/post`,
//! `projects/history`, `claude/execute`, `claude/cancel`.
//!
//! One run per project: a second `claude/execute` while one runs is refused with an error that
//! names the running run (queueing would hide from the caller that its prompt waits behind
//! another, possibly for the whole time limit; a refusal lets it decide).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ExecutorConfig;
use crate::error::{ErrorKind, ExecError, Result};
use crate::history::{HistoryQuery, MAX_LIMIT};
use crate::log::{MessageLog, NewEntry};
use crate::paths;
use crate::process;
use crate::project::{self, LiveRun, ProjectMeta, Status, now_millis};
use crate::run::{Outcome, RunCancel, RunObserver, supervise};
use crate::sink::{Caller, EventSink, Need};
use crate::streamed::StreamedFiles;
use crate::working_copy;

mod streamed_run;

use streamed_run::add_changes;

/// Longest prompt accepted, in bytes (the OS limits one argument to 128 KiB on Linux).
pub const MAX_PROMPT_BYTES: usize = 128 * 1024 - 1;

/// Longest `projects/post` payload, in bytes of JSON.
pub const MAX_POST_BYTES: usize = 1024 * 1024;

pub(crate) struct Project {
    meta: Mutex<ProjectMeta>,
    dir: PathBuf,
    log: MessageLog,
    /// Sessions joined to the project.
    members: Mutex<BTreeSet<String>>,
    /// Serialises metadata writes so they land in the order they were made.
    save: tokio::sync::Mutex<()>,
}

struct LiveHandle {
    project: String,
    cancel: Arc<RunCancel>,
}

/// The executor. Build it with [`Executor::open`]; stop it with [`Executor::shutdown`].
pub struct Executor {
    config: ExecutorConfig,
    root: PathBuf,
    sink: Arc<dyn EventSink>,
    projects: Mutex<BTreeMap<String, Arc<Project>>>,
    runs: Mutex<HashMap<String, LiveHandle>>,
    tasks: TaskTracker,
    closing: CancellationToken,
    /// Streamed projects' files (set by the server once its sessions exist).
    streams: Mutex<Option<Arc<dyn StreamedFiles>>>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("root", &self.root)
            .field("projects", &self.projects.lock().len())
            .finish_non_exhaustive()
    }
}

fn io_err(what: &str, e: impl std::fmt::Display) -> ExecError {
    ExecError::internal(format!("{what}: {e}"))
}

impl Executor {
    /// Loads every project from the state directory, closes runs a previous server left live
    /// (`complete {reason: "server restarted"}`, project back to `idle`, a process group left
    /// behind killed), and starts the message-log writers.
    pub async fn open(config: ExecutorConfig, sink: Arc<dyn EventSink>) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&config.projects_root)
            .map_err(|e| io_err("cannot create the projects root", e))?;
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|e| io_err("cannot create the projects state directory", e))?;
        let root = config
            .projects_root
            .canonicalize()
            .map_err(|e| io_err("cannot resolve the projects root", e))?;
        let executor = Arc::new(Self {
            config,
            root,
            sink,
            projects: Mutex::new(BTreeMap::new()),
            runs: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            closing: CancellationToken::new(),
            streams: Mutex::new(None),
        });
        let entries = std::fs::read_dir(&executor.config.state_dir)
            .map_err(|e| io_err("cannot read the projects state directory", e))?;
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if paths::check_id(&id).is_err() {
                continue;
            }
            let path = project::meta_path(&executor.config.state_dir, &id);
            let meta: ProjectMeta = match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot load project metadata; skipping the project");
                    continue;
                }
            };
            if meta.id != id {
                tracing::error!(path = %path.display(), "project metadata names another id; skipping");
                continue;
            }
            let dir = if meta.streamed {
                PathBuf::new()
            } else {
                executor.root.join(&meta.path)
            };
            let Some(log) = open_log_or_set_aside(&executor.config, &id) else {
                continue;
            };
            let project = Arc::new(Project {
                meta: Mutex::new(meta),
                dir,
                log,
                members: Mutex::new(BTreeSet::new()),
                save: tokio::sync::Mutex::new(()),
            });
            executor.projects.lock().insert(id.clone(), project.clone());
            executor.recover(&id, &project).await?;
            let runs = working_copy::runs_dir(&executor.config.state_dir, &id);
            match working_copy::sweep(&runs) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(project = %id, removed = n, "removed working copies of runs that never started");
                }
                Err(e) => {
                    tracing::warn!(project = %id, error = %e, "cannot clean the project's run directory");
                }
            }
        }
        Ok(executor)
    }

    /// Closes a run a previous server process left live.
    async fn recover(&self, id: &str, project: &Arc<Project>) -> Result<()> {
        let live = {
            let mut meta = project.meta.lock();
            if meta.status != Status::Executing {
                return Ok(());
            }
            meta.status = Status::Idle;
            meta.current_run.take()
        };
        let streamed = project.meta.lock().streamed;
        if let Some(live) = &live {
            // Its processes may still run: every process carrying the run's marker (also when
            // the server died before saving the pid, or the leader is gone and a grandchild
            // lives on), and the saved group, unless the pid now names another process.
            let mut groups = process::groups_of_run(&live.run_id);
            if live.pgid > 1
                && live.start_ticks.is_some()
                && process::start_ticks(live.pgid) == live.start_ticks
                && !groups.contains(&live.pgid)
            {
                groups.push(live.pgid);
            }
            for pgid in groups {
                tracing::warn!(
                    project = id,
                    pgid,
                    run = %live.run_id,
                    "killing the process group of a run left by the previous server"
                );
                process::signal_group(pgid, Signal::SIGKILL);
            }
            let mut event = json!({
                "type": "complete", "runId": live.run_id, "exitCode": null, "signal": null,
                "success": false, "aborted": true, "reason": "server restarted",
                "costUsd": null, "durationMs": now_millis().saturating_sub(live.started_at),
            });
            if streamed {
                let record = self
                    .finish_working_copy(
                        id,
                        &live.run_id,
                        "",
                        Some("the server restarted during the run"),
                    )
                    .await;
                add_changes(&mut event, &record);
            }
            self.emit(id, project, "", event).await;
        }
        self.persist(project).await?;
        tracing::info!(
            project = id,
            "project was executing when the server stopped; now idle"
        );
        Ok(())
    }

    /// Connects streamed projects' files (runs on a streamed project need it).
    pub fn set_streamed_files(&self, streams: Arc<dyn StreamedFiles>) {
        *self.streams.lock() = Some(streams);
    }

    fn streams(&self) -> Option<Arc<dyn StreamedFiles>> {
        self.streams.lock().clone()
    }

    /// The configuration.
    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    /// Serves one method. `params` are the request's params (an object or null).
    pub async fn call(
        self: &Arc<Self>,
        method: &str,
        params: Value,
        caller: &dyn Caller,
    ) -> Result<Value> {
        let mut params = match params {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            _ => return Err(ExecError::invalid("params must be an object")),
        };
        match method {
            "projects/create" => self.create(&params, caller).await,
            "projects/delete" => self.delete(&params, caller).await,
            "projects/list" => Ok(self.list(caller)),
            "projects/get" => {
                let (id, project) = self.target(&params, caller, Need::Manage)?;
                Ok(self.info(&id, &project))
            }
            "projects/join" => {
                let (id, project) = self.target(&params, caller, Need::Manage)?;
                project
                    .members
                    .lock()
                    .insert(caller.session_id().to_owned());
                Ok(self.info(&id, &project))
            }
            "projects/leave" => {
                let (id, project) = self.target(&params, caller, Need::Manage)?;
                let was = project.members.lock().remove(caller.session_id());
                let mut info = self.info(&id, &project);
                info["left"] = Value::Bool(was);
                Ok(info)
            }
            "projects/post" => self.post(&mut params, caller).await,
            "projects/history" => self.history(&params, caller).await,
            "claude/execute" => self.execute(&params, caller).await,
            "claude/cancel" => self.cancel(&params, caller),
            "claude/changes" => self.run_changes(&params, caller).await,
            other => Err(ExecError::new(
                ErrorKind::NotFound,
                format!("method `{other}` not found"),
            )),
        }
    }

    /// Forgets a session's memberships (it ended).
    pub fn session_ended(&self, session_id: &str) {
        for project in self.projects.lock().values() {
            project.members.lock().remove(session_id);
        }
    }

    /// The project a method's params name, after the caller's rights are checked.
    fn target(
        &self,
        params: &serde_json::Map<String, Value>,
        caller: &dyn Caller,
        need: Need,
    ) -> Result<(String, Arc<Project>)> {
        let id = project_param(params)?;
        caller.check(need, &id)?;
        let project = self
            .projects
            .lock()
            .get(&id)
            .cloned()
            .ok_or_else(|| ExecError::no_project(&id))?;
        Ok((id, project))
    }

    fn info(&self, id: &str, project: &Project) -> Value {
        let meta = project.meta.lock().clone();
        json!({
            "id": id,
            "path": meta.path,
            "streamed": meta.streamed,
            "status": meta.status,
            "conversationId": meta.conversation_id,
            "subscribers": project.members.lock().len(),
            "createdAt": meta.created_at,
            "lastActive": meta.last_active,
            "currentRun": meta.current_run.as_ref().map(|r| &r.run_id),
            "lastError": meta.last_error,
            "runs": meta.runs,
        })
    }

    async fn persist(&self, project: &Arc<Project>) -> Result<()> {
        let _order = project.save.lock().await;
        let meta = project.meta.lock().clone();
        let state_dir = self.config.state_dir.clone();
        tokio::task::spawn_blocking(move || project::save(&state_dir, &meta))
            .await
            .map_err(|e| io_err("metadata writer failed", e))?
            .map_err(|e| io_err("cannot save project metadata", e))
    }

    async fn create(
        &self,
        params: &serde_json::Map<String, Value>,
        caller: &dyn Caller,
    ) -> Result<Value> {
        let id = params
            .get("id")
            .or_else(|| params.get("project"))
            .and_then(Value::as_str)
            .ok_or_else(|| ExecError::invalid("`id` (a string) is required"))?
            .to_owned();
        paths::check_id(&id)?;
        caller.check(Need::Manage, &id)?;
        let streamed = match params.get("streamed") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ExecError::invalid("`streamed` must be a boolean")),
        };
        let rel = match params.get("path") {
            None | Some(Value::Null) if streamed => String::new(),
            None | Some(Value::Null) => id.clone(),
            Some(_) if streamed => {
                return Err(ExecError::invalid(
                    "a streamed project has no `path`: its files are the client's",
                ));
            }
            Some(Value::String(p)) => paths::normalise(p)?,
            Some(_) => return Err(ExecError::invalid("`path` must be a string")),
        };
        {
            let projects = self.projects.lock();
            if projects.contains_key(&id) {
                return Err(ExecError::new(
                    ErrorKind::Conflict,
                    format!("project `{id}` exists already"),
                )
                .suggest("use projects/get, or delete it first"));
            }
            if projects.len() >= self.config.max_projects {
                return Err(ExecError::new(
                    ErrorKind::Limit,
                    format!(
                        "the server holds its maximum of {} projects",
                        self.config.max_projects
                    ),
                )
                .suggest("delete projects you no longer need, or raise max_projects"));
            }
            for (other, p) in projects.iter().filter(|_| !streamed) {
                let theirs = p.meta.lock().path.clone();
                if theirs.is_empty() {
                    continue; // a streamed project has no directory
                }
                let nested = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
                if nested(&rel, &theirs) || nested(&theirs, &rel) {
                    return Err(ExecError::new(
                        ErrorKind::Conflict,
                        format!("path `{rel}` overlaps project `{other}` (`{theirs}`)"),
                    )
                    .suggest("give each project its own directory"));
                }
            }
        }
        let dir = if streamed {
            PathBuf::new()
        } else {
            let root = self.root.clone();
            let rel_for_dir = rel.clone();
            tokio::task::spawn_blocking(move || paths::resolve_dir(&root, &rel_for_dir))
                .await
                .map_err(|e| io_err("directory check failed", e))??
        };
        let now = now_millis();
        let meta = ProjectMeta {
            id: id.clone(),
            path: rel,
            streamed,
            status: Status::Idle,
            conversation_id: None,
            created_at: now,
            last_active: now,
            current_run: None,
            last_error: None,
            runs: 0,
        };
        let log = MessageLog::open(
            project::log_dir(&self.config.state_dir, &id),
            self.config.log.clone(),
        )
        .map_err(|e| io_err("cannot open the message log", e))?;
        let project = Arc::new(Project {
            meta: Mutex::new(meta),
            dir,
            log,
            members: Mutex::new(BTreeSet::new()),
            save: tokio::sync::Mutex::new(()),
        });
        {
            let mut projects = self.projects.lock();
            if projects.contains_key(&id) {
                return Err(ExecError::new(
                    ErrorKind::Conflict,
                    format!("project `{id}` exists already"),
                ));
            }
            projects.insert(id.clone(), project.clone());
        }
        if let Err(e) = self.persist(&project).await {
            self.projects.lock().remove(&id);
            return Err(e);
        }
        tracing::info!(project = %id, dir = %project.dir.display(), "project created");
        Ok(self.info(&id, &project))
    }

    async fn delete(
        &self,
        params: &serde_json::Map<String, Value>,
        caller: &dyn Caller,
    ) -> Result<Value> {
        let (id, project) = self.target(params, caller, Need::Manage)?;
        {
            let meta = project.meta.lock();
            if let Some(run) = &meta.current_run {
                return Err(ExecError::new(
                    ErrorKind::Conflict,
                    format!("project `{id}` is executing run {}", run.run_id),
                )
                .suggest("cancel the run with claude/cancel, then delete")
                .with_data(json!({"runId": run.run_id})));
            }
        }
        self.projects.lock().remove(&id);
        let _ = project.log.flush().await;
        let state = self.config.state_dir.join(&id);
        tokio::task::spawn_blocking(move || {
            std::fs::remove_dir_all(&state)?;
            if let Some(parent) = state.parent() {
                crate::atomic::sync_dir(parent)?;
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(|e| io_err("delete failed", e))?
        .map_err(|e| io_err("cannot remove the project's state", e))?;
        tracing::info!(project = %id, "project deleted (its directory is left in place)");
        Ok(json!({"id": id, "deleted": true, "directoryKept": true}))
    }

    fn list(&self, caller: &dyn Caller) -> Value {
        let projects: Vec<(String, Arc<Project>)> = self
            .projects
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let visible: Vec<Value> = projects
            .iter()
            .filter(|(id, _)| caller.check(Need::Manage, id).is_ok())
            .map(|(id, p)| self.info(id, p))
            .collect();
        json!({"projects": visible})
    }

    async fn post(
        &self,
        params: &mut serde_json::Map<String, Value>,
        caller: &dyn Caller,
    ) -> Result<Value> {
        let (_, project) = self.target(params, caller, Need::Manage)?;
        let payload = params.remove("payload").unwrap_or(Value::Null);
        if payload.to_string().len() > MAX_POST_BYTES {
            return Err(ExecError::new(
                ErrorKind::Limit,
                format!("`payload` is larger than {MAX_POST_BYTES} bytes"),
            ));
        }
        let kind = match params.get("kind") {
            None | Some(Value::Null) => "message".to_owned(),
            Some(Value::String(k)) if (1..=64).contains(&k.len()) && !k.starts_with("run.") => {
                k.clone()
            }
            Some(_) => {
                return Err(ExecError::invalid(
                    "`kind` must be a string of 1–64 bytes not starting with `run.`",
                ));
            }
        };
        let ts = project
            .log
            .append(NewEntry {
                session: caller.session_id().to_owned(),
                kind,
                payload,
            })
            .await
            .map_err(|e| io_err("append failed", e))?;
        project.meta.lock().last_active = now_millis();
        Ok(json!({"ts": ts}))
    }

    async fn history(
        &self,
        params: &serde_json::Map<String, Value>,
        caller: &dyn Caller,
    ) -> Result<Value> {
        let (_, project) = self.target(params, caller, Need::Manage)?;
        let num = |k: &str| -> Result<Option<u64>> {
            match params.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                    ExecError::invalid(format!(
                        "`{k}` must be a timestamp in microseconds since the Unix epoch"
                    ))
                }),
            }
        };
        let query = HistoryQuery {
            since: num("since")?,
            until: num("until")?,
            before: num("before")?,
            limit: usize::try_from(num("limit")?.unwrap_or(100))
                .unwrap_or(MAX_LIMIT)
                .clamp(1, MAX_LIMIT),
        };
        let dir = project.log.dir().to_path_buf();
        let page = tokio::task::spawn_blocking(move || crate::history::query(&dir, &query))
            .await
            .map_err(|e| io_err("history query failed", e))?
            .map_err(|e| io_err("cannot read the message log", e))?;
        Ok(json!({
            "entries": page.entries, "more": page.more, "nextBefore": page.next_before,
        }))
    }

    async fn execute(
        self: &Arc<Self>,
        params: &serde_json::Map<String, Value>,
        caller: &dyn Caller,
    ) -> Result<Value> {
        let (id, project) = self.target(params, caller, Need::Execute)?;
        if self.closing.is_cancelled() {
            return Err(ExecError::new(
                ErrorKind::Conflict,
                "the server is shutting down",
            ));
        }
        let prompt = params
            .get("prompt")
            .and_then(Value::as_str)
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| ExecError::invalid("`prompt` (a non-empty string) is required"))?;
        if prompt.len() > MAX_PROMPT_BYTES || prompt.contains('\0') {
            return Err(ExecError::invalid(format!(
                "`prompt` must be at most {MAX_PROMPT_BYTES} bytes without NUL bytes"
            )));
        }
        let timeout = match params.get("timeoutSecs") {
            None | Some(Value::Null) => self.config.default_timeout,
            Some(v) => {
                let secs = v
                    .as_f64()
                    .filter(|s| *s > 0.0)
                    .ok_or_else(|| ExecError::invalid("`timeoutSecs` must be a positive number"))?;
                let asked = Duration::from_secs_f64(secs.min(1e9));
                if asked > self.config.max_timeout {
                    return Err(ExecError::invalid(format!(
                        "`timeoutSecs` may be at most {} on this server",
                        self.config.max_timeout.as_secs()
                    )));
                }
                asked
            }
        };
        let streamed = project.meta.lock().streamed;
        let streams = if streamed {
            // The run's changes are written to the client's files.
            caller.check(Need::WriteFiles, &id)?;
            let streams = self.streams().filter(|s| s.available(&id)).ok_or_else(|| {
                ExecError::new(
                    ErrorKind::Conflict,
                    format!("no live session of project `{id}` serves its files"),
                )
                .suggest(
                    "start codeflow-client for the project (it streams the files), then run again",
                )
            })?;
            Some(streams)
        } else {
            None
        };
        let run_id = uuid::Uuid::new_v4().to_string();
        // Claim the project (one run at a time).
        let resume = {
            let mut meta = project.meta.lock();
            if let Some(run) = &meta.current_run {
                return Err(ExecError::new(
                    ErrorKind::Conflict,
                    format!("project `{id}` is already executing run {}", run.run_id),
                )
                .suggest("wait for its `complete` event, or stop it with claude/cancel")
                .with_data(json!({"runId": run.run_id})));
            }
            let resume = match params.get("resume") {
                None | Some(Value::Null) | Some(Value::Bool(false)) => None,
                Some(Value::Bool(true)) => Some(meta.conversation_id.clone().ok_or_else(|| {
                    ExecError::invalid(format!("project `{id}` has no conversation to resume yet"))
                        .suggest("run once without `resume`")
                })?),
                Some(Value::String(s)) if valid_conversation(s) => Some(s.clone()),
                Some(_) => {
                    return Err(ExecError::invalid(
                        "`resume` must be true or a conversation id ([A-Za-z0-9_-], not starting with `-`)",
                    ));
                }
            };
            meta.status = Status::Executing;
            meta.current_run = Some(LiveRun {
                run_id: run_id.clone(),
                pgid: 0,
                start_ticks: None,
                started_at: now_millis(),
            });
            resume
        };
        let cwd = match &streams {
            None => project.dir.clone(),
            Some(streams) => match self
                .working_copy(streams.as_ref(), &id, &run_id, caller.session_id())
                .await
            {
                Ok(work) => work,
                Err(e) => {
                    {
                        let mut meta = project.meta.lock();
                        meta.status = Status::Idle;
                        meta.current_run = None;
                    }
                    let _ = self.persist(&project).await;
                    return Err(e);
                }
            },
        };
        // The claim is durable before the CLI exists: a server that dies from here on finds
        // the run on its next start and kills what carries the run's marker.
        if let Err(e) = self.persist(&project).await {
            {
                let mut meta = project.meta.lock();
                meta.status = Status::Idle;
                meta.current_run = None;
            }
            if streams.is_some() {
                let dir = working_copy::run_dir(&self.config.state_dir, &id, &run_id);
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(e.suggest("check the data directory's disk; the run was not started"));
        }
        let started = match process::spawn(&self.config, &cwd, &run_id, prompt, resume.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                if streams.is_some() {
                    let dir = working_copy::run_dir(&self.config.state_dir, &id, &run_id);
                    let _ = std::fs::remove_dir_all(dir);
                }
                let message = format!("cannot start `{}`: {e}", self.config.claude_cmd);
                {
                    let mut meta = project.meta.lock();
                    meta.status = Status::Error;
                    meta.current_run = None;
                    meta.last_error = Some(message.clone());
                }
                let _ = self.persist(&project).await;
                return Err(ExecError::internal(message)
                    .suggest("check the server's claude_cmd setting (CLAUDE_CMD) and that the CLI is installed"));
            }
        };
        {
            let mut meta = project.meta.lock();
            if let Some(run) = &mut meta.current_run {
                run.pgid = started.pgid;
                run.start_ticks = started.start_ticks;
            }
            meta.last_error = None;
            meta.last_active = now_millis();
            meta.runs += 1;
        }
        crate::metrics::run_started();
        let cancel = Arc::new(RunCancel::default());
        self.runs.lock().insert(
            run_id.clone(),
            LiveHandle {
                project: id.clone(),
                cancel: cancel.clone(),
            },
        );
        if let Err(e) = self.persist(&project).await {
            tracing::error!(project = %id, error = %e, "cannot persist the run's start; it runs anyway");
        }
        let session = caller.session_id().to_owned();
        self.emit(
            &id,
            &project,
            &session,
            json!({
                "type": "started", "runId": run_id, "prompt": prompt,
                "resume": resume, "timeoutSecs": timeout.as_secs_f64(),
            }),
        )
        .await;
        let executor = self.clone();
        let run = run_id.clone();
        self.tasks.spawn(async move {
            executor
                .run(id, project, run, session, started, timeout, cancel)
                .await;
        });
        Ok(json!({"runId": run_id}))
    }

    #[allow(clippy::too_many_arguments)]
    async fn run(
        self: Arc<Self>,
        id: String,
        project: Arc<Project>,
        run_id: String,
        session: String,
        started: process::Started,
        timeout: Duration,
        cancel: Arc<RunCancel>,
    ) {
        let begun = std::time::Instant::now();
        let observer = Observer {
            executor: &self,
            id: &id,
            project: &project,
            session: &session,
        };
        let outcome: Outcome =
            supervise(started, &run_id, &self.config, timeout, &cancel, &observer).await;
        // A streamed project stays `executing` until the changes are back on the client, so a
        // next run copies files that include them.
        let changes = if project.meta.lock().streamed {
            let refused = (!outcome.success).then_some("the run did not succeed");
            Some(
                self.finish_working_copy(&id, &run_id, &session, refused)
                    .await,
            )
        } else {
            None
        };
        let duration_ms = u64::try_from(begun.elapsed().as_millis()).unwrap_or(u64::MAX);
        let conversation = {
            let mut meta = project.meta.lock();
            meta.status = Status::Idle;
            meta.current_run = None;
            meta.last_active = now_millis();
            meta.conversation_id.clone()
        };
        // The metadata is durable before `complete` goes out: a client that reacts to it
        // (a new run) finds the project idle, also after a crash right after.
        if let Err(e) = self.persist(&project).await {
            tracing::error!(project = %id, error = %e, "cannot persist the end of a run");
        }
        self.runs.lock().remove(&run_id);
        crate::metrics::run_completed(outcome.success, outcome.aborted, outcome.lines);
        tracing::info!(project = %id, run = %run_id, reason = %outcome.reason, success = outcome.success, "run ended");
        let mut event = json!({
                "type": "complete", "runId": run_id,
                "exitCode": outcome.exit_code, "signal": outcome.signal,
                "success": outcome.success, "aborted": outcome.aborted,
                "reason": outcome.reason, "costUsd": outcome.cost_usd,
                "durationMs": duration_ms, "numTurns": outcome.num_turns,
                "resultSubtype": outcome.result_subtype,
                "conversationId": conversation, "lines": outcome.lines,
                "stderr": outcome.stderr_tail,
        });
        if let Some(record) = &changes {
            add_changes(&mut event, record);
        }
        self.emit(&id, &project, &session, event).await;
    }

    fn cancel(
        &self,
        params: &serde_json::Map<String, Value>,
        caller: &dyn Caller,
    ) -> Result<Value> {
        let run_id = params
            .get("runId")
            .and_then(Value::as_str)
            .ok_or_else(|| ExecError::invalid("`runId` (a string) is required"))?;
        let (project, cancel) = {
            let runs = self.runs.lock();
            let handle = runs.get(run_id).ok_or_else(|| {
                ExecError::new(
                    ErrorKind::NotFound,
                    format!("run {run_id} is not running (it ended, or never existed)"),
                )
                .suggest("its `complete` event (or projects/history) tells how it ended")
            })?;
            (handle.project.clone(), handle.cancel.clone())
        };
        // A caller without rights on the project learns no more than "not running".
        caller.check(Need::Execute, &project).map_err(|_| {
            ExecError::new(
                ErrorKind::NotFound,
                format!("run {run_id} is not running (it ended, or never existed)"),
            )
        })?;
        cancel.stop("cancelled");
        Ok(json!({"runId": run_id, "project": project, "cancelling": true}))
    }

    /// Publishes a run event and records it in the project's log, in order.
    async fn emit(&self, id: &str, project: &Project, session: &str, mut event: Value) {
        // Sessions may watch several projects' runs: every event names its project.
        event["project"] = Value::String(id.to_owned());
        let kind = format!("run.{}", event["type"].as_str().unwrap_or("event"));
        self.sink.publish(id, event.clone());
        project
            .log
            .record(NewEntry {
                session: session.to_owned(),
                kind,
                payload: event,
            })
            .await;
    }

    /// The working directory of a project.
    pub fn project_dir(&self, id: &str) -> Option<PathBuf> {
        self.projects.lock().get(id).map(|p| p.dir.clone())
    }

    /// The projects root (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stops every run (each ends with `complete {reason: "server shutting down"}`), waits for
    /// them, and flushes every log.
    pub async fn shutdown(&self) {
        self.closing.cancel();
        let live: Vec<Arc<RunCancel>> = self
            .runs
            .lock()
            .values()
            .map(|h| h.cancel.clone())
            .collect();
        for cancel in live {
            cancel.stop("server shutting down");
        }
        self.tasks.close();
        self.tasks.wait().await;
        let projects: Vec<Arc<Project>> = self.projects.lock().values().cloned().collect();
        for project in projects {
            let _ = project.log.flush().await;
        }
    }
}

struct Observer<'a> {
    executor: &'a Executor,
    id: &'a str,
    project: &'a Arc<Project>,
    session: &'a str,
}

impl RunObserver for Observer<'_> {
    async fn event(&self, event: Value) {
        self.executor
            .emit(self.id, self.project, self.session, event)
            .await;
    }

    async fn conversation(&self, conversation: &str) {
        let changed = {
            let mut meta = self.project.meta.lock();
            let changed = meta.conversation_id.as_deref() != Some(conversation);
            meta.conversation_id = Some(conversation.to_owned());
            changed
        };
        if changed && let Err(e) = self.executor.persist(self.project).await {
            tracing::error!(project = %self.id, error = %e, "cannot persist the conversation id");
        }
    }
}

/// Opens a project's message log on start. A log that cannot be opened (an unreadable
/// directory, say; unreadable segments are set aside by the log itself) is renamed to
/// `messages.corrupt-<ms>` and a fresh one started; if even that fails the project is skipped.
/// Either way the server starts.
fn open_log_or_set_aside(config: &ExecutorConfig, id: &str) -> Option<MessageLog> {
    let dir = project::log_dir(&config.state_dir, id);
    let first = match MessageLog::open(dir.clone(), config.log.clone()) {
        Ok(log) => return Some(log),
        Err(e) => e,
    };
    let aside = dir.with_file_name(format!("messages.corrupt-{}", now_millis()));
    tracing::error!(
        project = id, dir = %dir.display(), error = %first,
        "cannot open the project's message log; setting it aside as {} and starting a new one",
        aside.display()
    );
    let opened = std::fs::rename(&dir, &aside)
        .and_then(|()| MessageLog::open(dir.clone(), config.log.clone()));
    match opened {
        Ok(log) => Some(log),
        Err(e) => {
            tracing::error!(project = id, error = %e, "cannot start a new message log either; the project is not loaded");
            None
        }
    }
}

fn valid_conversation(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

fn project_param(params: &serde_json::Map<String, Value>) -> Result<String> {
    let id = params
        .get("project")
        .or_else(|| params.get("id"))
        .and_then(Value::as_str)
        .ok_or_else(|| ExecError::invalid("`project` (a project id) is required"))?;
    paths::check_id(id)?;
    Ok(id.to_owned())
}
