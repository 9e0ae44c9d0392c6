//! The pool: managed servers keyed by (project, server id), leases that keep a project warm,
//! and the reaper that stops idle servers.

use codeflow_types::ProjectId;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Operation, PoolConfig, ServerConfig};
use crate::edit::{ApplyEditHandler, EditHandlerSlot};
use crate::error::LspError;
use crate::listen::{DiagnosticsListener, ListenerSlot};
use crate::process::resolve_command;
use crate::server::{ManagedServer, PoolShared, ServerHandle, StopKind};
use crate::status::ServerStatus;

/// A project as the caller names it: an id and the directory (on this machine) holding its
/// files. The language servers run with this directory as their root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProjectKey {
    /// Project id.
    pub id: ProjectId,
    /// Absolute path of the project's directory (the mirror).
    pub root: PathBuf,
    /// Where the project's compilation database is kept for servers that take one
    /// ([`ServerConfig::compilation_database_arg`]); the directory need not exist.
    pub compilation_database: Option<PathBuf>,
}

impl ProjectKey {
    /// Build a key.
    pub fn new(id: ProjectId, root: impl Into<PathBuf>) -> Self {
        Self {
            id,
            root: root.into(),
            compilation_database: None,
        }
    }

    /// The key with the directory of the project's compilation database.
    #[must_use]
    pub fn with_compilation_database(mut self, dir: impl Into<PathBuf>) -> Self {
        self.compilation_database = Some(dir.into());
        self
    }
}

struct Project {
    root: PathBuf,
    compilation_database: Option<PathBuf>,
    leases: usize,
    /// When the last lease was dropped (None while leased).
    idle_since: Option<Instant>,
    servers: HashMap<String, Arc<ManagedServer>>,
}

struct PoolInner {
    shared: Arc<PoolShared>,
    table: BTreeMap<String, Arc<ServerConfig>>,
    projects: Mutex<HashMap<String, Project>>,
    /// Servers of a project whose root changed: stopped by the reaper.
    retired: Mutex<Vec<Arc<ManagedServer>>>,
    reaper: Mutex<Option<JoinHandle<()>>>,
    cancel: CancellationToken,
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // Dropped without `shutdown()`: ask every supervisor to stop. Their processes are
        // killed by `ServerProcess`'s own drop if the runtime goes away first.
        self.cancel.cancel();
        for project in self.projects.get_mut().values() {
            for server in project.servers.values() {
                server.abort();
            }
        }
    }
}

/// The language-server pool. Cheap to clone (an `Arc` inside); every clone is the same pool.
///
/// Create it inside a tokio runtime.
#[derive(Clone)]
pub struct LspPool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for LspPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LspPool")
            .field("servers", &self.inner.table.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LspPool {
    /// A pool with this configuration. Nothing starts until a lease asks for a server.
    #[must_use]
    pub fn new(config: PoolConfig) -> Self {
        let table = config
            .effective_servers()
            .into_iter()
            .map(|(id, c)| (id, Arc::new(c)))
            .collect();
        Self {
            inner: Arc::new(PoolInner {
                shared: Arc::new(PoolShared {
                    config,
                    edit_handler: Arc::new(EditHandlerSlot::default()),
                    diagnostics_listener: Arc::new(ListenerSlot::default()),
                    closed: AtomicBool::new(false),
                }),
                table,
                projects: Mutex::new(HashMap::new()),
                retired: Mutex::new(Vec::new()),
                reaper: Mutex::new(None),
                cancel: CancellationToken::new(),
            }),
        }
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &PoolConfig {
        &self.inner.shared.config
    }

    /// The effective server table (ids → config).
    pub fn servers(&self) -> impl Iterator<Item = (&str, &ServerConfig)> {
        self.inner.table.iter().map(|(id, c)| (id.as_str(), &**c))
    }

    /// Install (or remove, with `None`) the handler for `workspace/applyEdit`. Applies to
    /// running servers too.
    pub fn set_apply_edit_handler(&self, handler: Option<Arc<dyn ApplyEditHandler>>) {
        self.inner.shared.edit_handler.set(handler);
    }

    /// Install (or remove) the listener for every server's `publishDiagnostics`; it applies to
    /// running servers too.
    pub fn set_diagnostics_listener(&self, listener: Option<Arc<dyn DiagnosticsListener>>) {
        self.inner.shared.diagnostics_listener.set(listener);
    }

    /// Take a lease on a project. While any lease on it lives, its servers are not stopped for
    /// idleness. Servers start on first use through the lease.
    ///
    /// If the project is known with a different root, its old servers are retired (a server
    /// is never reused for another root).
    #[must_use]
    pub fn lease(&self, key: ProjectKey) -> ProjectLease {
        self.ensure_reaper();
        // Canonical roots give the same URIs the servers produce (e.g. through symlinked /tmp).
        let root = std::fs::canonicalize(&key.root).unwrap_or(key.root);
        let mut projects = self.inner.projects.lock();
        let project = projects
            .entry(key.id.to_string())
            .or_insert_with(|| Project {
                root: root.clone(),
                compilation_database: key.compilation_database.clone(),
                leases: 0,
                idle_since: None,
                servers: HashMap::new(),
            });
        if project.root != root {
            tracing::info!(project = %key.id, old = ?project.root, new = ?root, "project root changed; retiring its servers");
            self.inner
                .retired
                .lock()
                .extend(project.servers.drain().map(|(_, s)| s));
            project.root = root.clone();
        }
        project.compilation_database = key.compilation_database;
        project.leases += 1;
        project.idle_since = None;
        ProjectLease {
            pool: self.clone(),
            project: key.id.to_string(),
            root,
        }
    }

    /// Status of every managed server (running or not).
    #[must_use]
    pub fn status(&self) -> Vec<ServerStatus> {
        let servers: Vec<Arc<ManagedServer>> = {
            let projects = self.inner.projects.lock();
            projects
                .values()
                .flat_map(|p| p.servers.values().cloned())
                .collect()
        };
        let mut out: Vec<ServerStatus> = servers.iter().map(|s| s.status()).collect();
        out.sort_by(|a, b| (&a.project, &a.server_id).cmp(&(&b.project, &b.server_id)));
        out
    }

    /// Status of one project's servers.
    #[must_use]
    pub fn project_status(&self, project: &str) -> Vec<ServerStatus> {
        self.status()
            .into_iter()
            .filter(|s| s.project == project)
            .collect()
    }

    /// Restart a project's servers: all of them, or those handling any of `extensions`
    /// (with or without the dot). Servers that are not running are left to start on next
    /// use. Open documents are re-opened; requests in flight are replayed. A server that
    /// had given up is started again. Returns the ids restarted.
    ///
    /// # Errors
    /// The first restart failure (the others are still attempted).
    pub async fn restart_project(
        &self,
        project: &str,
        extensions: Option<&[String]>,
    ) -> Result<Vec<String>, LspError> {
        self.restart_where(project, |config| {
            extensions.is_none_or(|exts| exts.iter().any(|e| config.handles_extension(e)))
        })
        .await
    }

    /// Restarts a project's active servers whose configuration `chosen` accepts (see
    /// [`LspPool::restart_project`]).
    async fn restart_where(
        &self,
        project: &str,
        chosen: impl Fn(&ServerConfig) -> bool,
    ) -> Result<Vec<String>, LspError> {
        if self.inner.shared.closed.load(Ordering::SeqCst) {
            return Err(LspError::PoolShutDown);
        }
        let servers: Vec<Arc<ManagedServer>> = {
            let projects = self.inner.projects.lock();
            projects
                .get(project)
                .map(|p| p.servers.values().cloned().collect())
                .unwrap_or_default()
        };
        let chosen = servers
            .into_iter()
            .filter(|s| s.is_active() && chosen(&s.config));
        let results = futures::future::join_all(chosen.map(|s| async move {
            let result = s.restart().await;
            (s.server_id.clone(), result)
        }))
        .await;
        let mut restarted = Vec::new();
        let mut first_error = None;
        for (id, result) in results {
            match result {
                Ok(()) => restarted.push(id),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => {
                restarted.sort();
                Ok(restarted)
            }
        }
    }

    /// Stop every server (orderly, then killing what lingers) and refuse new work. Leases
    /// still held become inert.
    pub async fn shutdown(&self) {
        self.inner.shared.closed.store(true, Ordering::SeqCst);
        self.inner.cancel.cancel();
        let reaper = self.inner.reaper.lock().take();
        if let Some(reaper) = reaper {
            let _joined = reaper.await;
        }
        let mut servers: Vec<Arc<ManagedServer>> = {
            let projects = self.inner.projects.lock();
            projects
                .values()
                .flat_map(|p| p.servers.values().cloned())
                .collect()
        };
        servers.append(&mut self.inner.retired.lock());
        futures::future::join_all(servers.iter().map(|s| s.stop(StopKind::Forget))).await;
    }

    fn ensure_reaper(&self) {
        let mut reaper = self.inner.reaper.lock();
        if reaper.is_some() || self.inner.cancel.is_cancelled() {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let idle = self.inner.shared.config.idle_timeout;
        let cancel = self.inner.cancel.clone();
        *reaper = Some(tokio::spawn(reap_idle(weak, idle, cancel)));
    }

    /// Find or create the managed server for (project, server id), and start it.
    async fn acquire(
        &self,
        project: &str,
        root: &Path,
        server_id: &str,
    ) -> Result<ServerHandle, LspError> {
        if self.inner.shared.closed.load(Ordering::SeqCst) {
            return Err(LspError::PoolShutDown);
        }
        let config =
            self.inner
                .table
                .get(server_id)
                .cloned()
                .ok_or_else(|| LspError::UnknownServer {
                    server: server_id.to_owned(),
                })?;
        // A missing binary is reported at once and leaves no state behind.
        resolve_command(server_id, &config)?;
        let server = {
            let mut projects = self.inner.projects.lock();
            let project_entry = projects.get_mut(project).ok_or(LspError::PoolShutDown)?;
            if project_entry.root != root {
                return Err(LspError::InvalidPath {
                    path: root.to_path_buf(),
                    reason: "the project was leased again with another root; take a new lease"
                        .to_owned(),
                });
            }
            match project_entry.servers.get(server_id) {
                Some(s) => Arc::clone(s),
                None => {
                    let config = with_compilation_database(
                        config,
                        project_entry.compilation_database.as_deref(),
                    );
                    let s = ManagedServer::new(
                        Arc::clone(&self.inner.shared),
                        project.to_owned(),
                        root.to_path_buf(),
                        server_id.to_owned(),
                        config,
                    )?;
                    project_entry
                        .servers
                        .insert(server_id.to_owned(), Arc::clone(&s));
                    s
                }
            }
        };
        server.ensure_started();
        server.wait_running(server.initialize_limit()).await?;
        Ok(ServerHandle { server })
    }

    /// Pick the server for a file: among servers claiming its name or extension, one whose root
    /// markers exist in the project root wins; user-configured servers come before defaults.
    fn server_id_for(&self, root: &Path, path: &Path) -> Result<String, LspError> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        let user = &self.inner.shared.config.servers;
        let mut candidates: Vec<(&String, &Arc<ServerConfig>)> = self
            .inner
            .table
            .iter()
            .filter(|(_, c)| c.handles_path(path))
            .collect();
        // Main servers first; one preferred for a few operations answers alone only when the
        // extension has no main server.
        candidates.sort_by_key(|(id, c)| {
            (
                !c.is_main(),
                !c.markers_match(root),
                !user.contains_key(*id),
            )
        });
        candidates
            .first()
            .map(|(id, _)| (*id).clone())
            .ok_or_else(|| LspError::NoServerForFile {
                path: path.to_path_buf(),
                extension: ext,
            })
    }

    /// The server preferred for `operation` on this file, if one claims it (markers and user
    /// configuration break ties as for main servers).
    fn preferred_server_for(
        &self,
        root: &Path,
        path: &Path,
        operation: Operation,
    ) -> Option<String> {
        let ext = path.extension()?.to_string_lossy().into_owned();
        let user = &self.inner.shared.config.servers;
        let mut candidates: Vec<(&String, &Arc<ServerConfig>)> = self
            .inner
            .table
            .iter()
            .filter(|(_, c)| c.handles_extension(&ext) && c.preferred_for.contains(&operation))
            .collect();
        candidates.sort_by_key(|(id, c)| (!c.markers_match(root), !user.contains_key(*id)));
        candidates.first().map(|(id, _)| (*id).clone())
    }
}

/// `config` with the project's compilation database directory appended to its arguments, when
/// the server takes one.
fn with_compilation_database(config: Arc<ServerConfig>, dir: Option<&Path>) -> Arc<ServerConfig> {
    match (&config.compilation_database_arg, dir) {
        (Some(arg), Some(dir)) => {
            let mut with = (*config).clone();
            with.args.push(format!("{arg}{}", dir.display()));
            Arc::new(with)
        }
        _ => config,
    }
}

/// A claim on a project: keeps its servers from idle shutdown while it lives, and is how
/// callers get servers. Drop it when the session leaves.
pub struct ProjectLease {
    pool: LspPool,
    project: String,
    root: PathBuf,
}

impl std::fmt::Debug for ProjectLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectLease")
            .field("project", &self.project)
            .field("root", &self.root)
            .finish()
    }
}

impl ProjectLease {
    /// Project id.
    #[must_use]
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The project root (canonicalized).
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The server for a file (by extension), started and initialized. The path may be
    /// absolute or relative to the root; it need not exist.
    ///
    /// # Errors
    /// [`LspError::NoServerForFile`], [`LspError::NotInstalled`], [`LspError::StartFailed`],
    /// [`LspError::GaveUp`], [`LspError::PoolShutDown`].
    pub async fn server_for_file(&self, path: impl AsRef<Path>) -> Result<ServerHandle, LspError> {
        let id = self.pool.server_id_for(&self.root, path.as_ref())?;
        self.pool.acquire(&self.project, &self.root, &id).await
    }

    /// The server that answers `operation` best for a file: the one the table prefers for it,
    /// or the file's main server. A preferred server that is not installed falls back to the
    /// main server (logged once per start attempt); its answers are then what the main server
    /// gives.
    ///
    /// # Errors
    /// As [`server_for_file`](Self::server_for_file).
    pub async fn server_for_operation(
        &self,
        path: impl AsRef<Path>,
        operation: Operation,
    ) -> Result<ServerHandle, LspError> {
        let path = path.as_ref();
        if let Some(id) = self.pool.preferred_server_for(&self.root, path, operation) {
            match self.pool.acquire(&self.project, &self.root, &id).await {
                Ok(server) => return Ok(server),
                Err(e @ (LspError::NotInstalled { .. } | LspError::GaveUp { .. })) => {
                    tracing::warn!(
                        "{} is preferred for {} but unavailable ({e}); asking the main server",
                        id,
                        operation.name()
                    );
                }
                Err(e) => return Err(e),
            }
        }
        self.server_for_file(path).await
    }

    /// Restarts this project's running servers that take a compilation database
    /// ([`ServerConfig::compilation_database_arg`]): a server reads whether its directory
    /// exists when it starts, so one must restart when the database appears or goes.
    /// Returns the ids restarted.
    ///
    /// # Errors
    /// The first restart failure (the others are still attempted).
    pub async fn restart_compilation_database_users(&self) -> Result<Vec<String>, LspError> {
        self.pool
            .restart_where(&self.project, |c| c.compilation_database_arg.is_some())
            .await
    }

    /// The id of the server that would serve `path`, if the table allows starting it ahead of
    /// the first request (`prestart`); nothing is started.
    #[must_use]
    pub fn prestartable_server(&self, path: impl AsRef<Path>) -> Option<String> {
        let id = self.pool.server_id_for(&self.root, path.as_ref()).ok()?;
        self.pool
            .inner
            .table
            .get(&id)
            .is_some_and(|c| c.prestart)
            .then_some(id)
    }

    /// The server with this id, started and initialized.
    ///
    /// # Errors
    /// As [`server_for_file`](Self::server_for_file), or [`LspError::UnknownServer`].
    pub async fn server_by_id(&self, server_id: &str) -> Result<ServerHandle, LspError> {
        self.pool
            .acquire(&self.project, &self.root, server_id)
            .await
    }

    /// Status of this project's servers.
    #[must_use]
    pub fn status(&self) -> Vec<ServerStatus> {
        self.pool.project_status(&self.project)
    }

    /// Handles to this project's servers that are running now, without starting any: for
    /// telling servers about file changes they may care about.
    #[must_use]
    pub fn running_servers(&self) -> Vec<ServerHandle> {
        let projects = self.pool.inner.projects.lock();
        projects
            .get(&self.project)
            .filter(|p| p.root == self.root)
            .map(|p| {
                p.servers
                    .values()
                    .filter(|s| s.is_active())
                    .map(|s| ServerHandle {
                        server: Arc::clone(s),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for ProjectLease {
    fn drop(&mut self) {
        let mut projects = self.pool.inner.projects.lock();
        if let Some(p) = projects.get_mut(&self.project)
            && p.root == self.root
        {
            p.leases = p.leases.saturating_sub(1);
            if p.leases == 0 {
                p.idle_since = Some(Instant::now());
            }
        }
    }
}

/// Stop servers of unleased projects once idle. Wakes a few times per idle period, so a
/// server stops between `idle` and `1.25 × idle` after it was last used.
async fn reap_idle(pool: Weak<PoolInner>, idle: Duration, cancel: CancellationToken) {
    let tick = (idle / 4).clamp(Duration::from_millis(20), Duration::from_secs(5));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
        let Some(inner) = pool.upgrade() else { return };
        let candidates: Vec<Arc<ManagedServer>> = {
            let projects = inner.projects.lock();
            projects
                .values()
                .filter(|p| p.leases == 0 && p.idle_since.is_some_and(|t| t.elapsed() >= idle))
                .flat_map(|p| p.servers.values().cloned())
                .collect()
        };
        let retired: Vec<Arc<ManagedServer>> = std::mem::take(&mut *inner.retired.lock());
        drop(inner);
        for server in retired {
            server.stop(StopKind::Forget).await;
        }
        for server in candidates {
            server.stop_if_idle(idle).await;
        }
    }
}
