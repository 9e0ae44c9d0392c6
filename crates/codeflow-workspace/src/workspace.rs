//! A project's server-side state, shared by every session of the project: its mirror (the
//! client's files, where the language servers run) and its lease on the language-server pool.
//!
//! A [`ProjectWorkspace`] lives while any session of its project holds it; when the last one
//! ends, the lease drops and the pool stops the project's servers after its idle timeout. The
//! mirror's files stay on disk, so the next session re-syncs only differences.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use codeflow_file_stream::{Mirror, MirrorConfig};
use codeflow_lsp_pool::{LspPool, ProjectKey, ProjectLease};
use codeflow_session::{ProjectId, SessionRegistry};

use crate::compile_db::{CompilationDatabase, Refreshed};
use crate::error::WorkspaceError;
use crate::extensions::Extensions;
use crate::git_state::{AbortOnDrop, watch};
use crate::trees::TreeHolders;

/// One project's mirror and language servers.
pub struct ProjectWorkspace {
    /// The project.
    pub project: ProjectId,
    /// Its mirror (or the shared directory).
    pub mirror: Mirror,
    /// Its lease on the language-server pool (servers stop when the last lease goes).
    pub lease: ProjectLease,
    /// Per-project state of the layers above (caches that live and die with the project).
    pub extensions: Extensions,
    /// The live sessions whose trees the mirror holds (a sync that would remove their files
    /// is refused).
    pub trees: TreeHolders,
    /// The copy of the project's `compile_commands.json` with the mirror's paths, for clangd.
    compile_db: CompilationDatabase,
    /// The poller of a shared git project's state (`git` channel), stopped with the workspace.
    git: parking_lot::Mutex<Option<AbortOnDrop>>,
}

impl ProjectWorkspace {
    /// Keeps the copy of the project's compilation database current after the tree rooted at
    /// `client_root` changed one (see [`crate::compile_db`]), and restarts the servers that
    /// take one when it appeared or went. Failures are logged: clangd then works as without
    /// a database.
    pub async fn follow_compilation_database(&self, client_root: &str) {
        let db = self.compile_db.clone();
        let root = self.lease.root().to_path_buf();
        let from = client_root.to_owned();
        let refreshed = tokio::task::spawn_blocking(move || db.refresh(&root, &from)).await;
        match refreshed {
            Ok(Ok(Refreshed::AppearedOrWent)) => {
                match self.lease.restart_compilation_database_users().await {
                    Ok(ids) if !ids.is_empty() => tracing::info!(
                        project = %self.project, servers = ?ids,
                        "the compilation database appeared or went; restarted the servers that read it"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        project = %self.project, error = %e,
                        "the compilation database changed; restarting a server that reads it failed"
                    ),
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(
                project = %self.project, error = %e,
                "cannot keep the copy of the compilation database; clangd goes without it"
            ),
            Err(e) => {
                tracing::warn!(project = %self.project, error = %e, "compilation database task")
            }
        }
    }
}

impl std::fmt::Debug for ProjectWorkspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectWorkspace")
            .field("project", &self.project)
            .field("mirror", &self.mirror.root())
            .finish()
    }
}

/// Settings for opening workspaces.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceConfig {
    /// `<data_dir>/mirrors/<project>/` holds streamed projects.
    pub data_dir: PathBuf,
    /// Limits and settings of the mirrors.
    pub mirror: MirrorConfig,
    /// Projects the server sees through a shared volume: project id → server-side directory.
    /// Nothing is streamed for them.
    pub shared: HashMap<String, PathBuf>,
    /// After a project's first sync, start the language servers for its most common languages
    /// (at most this many), so the first question does not pay for a cold start. 0 disables.
    pub prestart_servers: usize,
}

/// Every open workspace, by project.
pub struct Workspaces {
    config: WorkspaceConfig,
    pool: LspPool,
    open: tokio::sync::Mutex<HashMap<ProjectId, Weak<ProjectWorkspace>>>,
    /// Path maps of opened projects, for callers that cannot wait (language-server callbacks).
    paths: parking_lot::Mutex<HashMap<String, codeflow_file_stream::PathMap>>,
    /// The registry whose channels project events go to (`git`), once the server attached it.
    registry: std::sync::OnceLock<Weak<SessionRegistry>>,
    /// Where syncs begin their uploads, once the server set it (none: syncs read files).
    uploads: std::sync::OnceLock<Arc<dyn crate::SyncUploads>>,
}

impl std::fmt::Debug for Workspaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspaces")
            .field("data_dir", &self.config.data_dir)
            .finish_non_exhaustive()
    }
}

impl Workspaces {
    /// Workspaces opened on demand, with language servers from `pool`.
    pub fn new(config: WorkspaceConfig, pool: LspPool) -> Self {
        Self {
            config,
            pool,
            open: tokio::sync::Mutex::new(HashMap::new()),
            paths: parking_lot::Mutex::new(HashMap::new()),
            registry: std::sync::OnceLock::new(),
            uploads: std::sync::OnceLock::new(),
        }
    }

    /// Lets syncs send what the mirror lacks over one upload transfer (the server's
    /// `/ws/file-stream` operations) when the relay offers it.
    pub fn set_sync_uploads(&self, uploads: Arc<dyn crate::SyncUploads>) {
        let _ = self.uploads.set(uploads);
    }

    /// Where syncs begin their uploads, if anywhere.
    pub fn sync_uploads(&self) -> Option<&Arc<dyn crate::SyncUploads>> {
        self.uploads.get()
    }

    /// Connects the workspaces to the registry whose project channels they feed (the `git`
    /// channel of shared git projects); created after the workspaces, so set afterwards.
    pub fn attach(&self, registry: &Arc<SessionRegistry>) {
        let _ = self.registry.set(Arc::downgrade(registry));
    }

    /// The language-server pool.
    pub fn pool(&self) -> &LspPool {
        &self.pool
    }

    /// The settings workspaces are opened with.
    pub fn config(&self) -> &WorkspaceConfig {
        &self.config
    }

    /// The workspace of `project`, opening it on first use. `client_root` is the root of the
    /// session asking; the mirror keeps the root of the session that opened it, and other
    /// sessions see it through their own roots (see [`crate::Caller::mirror`]).
    pub async fn open(
        &self,
        project: &ProjectId,
        client_root: &str,
    ) -> Result<Arc<ProjectWorkspace>, WorkspaceError> {
        let mut open = self.open.lock().await;
        if let Some(existing) = open.get(project).and_then(Weak::upgrade) {
            return Ok(existing);
        }
        let mirror = match self.config.shared.get(project.as_str()) {
            Some(server_root) => {
                Mirror::shared(project, client_root, server_root, self.config.mirror)
            }
            None => {
                Mirror::open_with(
                    &self.config.data_dir,
                    project,
                    client_root,
                    self.config.mirror,
                )
                .await
            }
        }
        .map_err(|e| {
            WorkspaceError::failed(format!(
                "cannot open the mirror of project `{project}`: {e}"
            ))
        })?;
        let compile_db = CompilationDatabase::new(&self.config.data_dir, project);
        let lease = self.pool.lease(
            ProjectKey::new(project.clone(), mirror.root())
                .with_compilation_database(compile_db.dir()),
        );
        let workspace = Arc::new(ProjectWorkspace {
            project: project.clone(),
            mirror,
            lease,
            extensions: Extensions::default(),
            trees: TreeHolders::default(),
            compile_db,
            git: parking_lot::Mutex::new(None),
        });
        // A mirror kept from an earlier run, or a shared directory, may hold a database.
        workspace.follow_compilation_database(client_root).await;
        // A shared project's directory is the client's tree: its git state can be watched (a
        // streamed mirror holds no `.git`).
        if workspace.mirror.is_shared()
            && workspace.root().join(".git").exists()
            && let Some(registry) = self.registry.get()
        {
            *workspace.git.lock() = Some(watch(&workspace, registry.clone()));
        }
        open.retain(|_, w| w.strong_count() > 0);
        open.insert(project.clone(), Arc::downgrade(&workspace));
        self.paths
            .lock()
            .insert(project.to_string(), workspace.mirror.paths().clone());
        Ok(workspace)
    }

    /// The path map of a project opened at least once (without waiting).
    pub fn paths_of(&self, project: &str) -> Option<codeflow_file_stream::PathMap> {
        self.paths.lock().get(project).cloned()
    }

    /// Starts, in the background, the language servers for the project's most common file
    /// extensions among `files` (relative paths), at most `prestart_servers` of them. Servers
    /// the table marks `prestart = false` (data formats) are passed over, so they never take
    /// the place of a programming language.
    pub fn prestart(&self, workspace: &Arc<ProjectWorkspace>, files: impl Iterator<Item = String>) {
        let limit = self.config.prestart_servers;
        if limit == 0 {
            return;
        }
        let mut chosen: Vec<String> = Vec::new();
        for sample in by_extension_count(files) {
            if chosen.len() >= limit {
                break;
            }
            // Extensions without a configured server are skipped; start failures surface on
            // the first real request with their full message.
            if let Some(id) = workspace.lease.prestartable_server(&sample)
                && !chosen.contains(&id)
            {
                chosen.push(id);
            }
        }
        if chosen.is_empty() {
            return;
        }
        let workspace = Arc::clone(workspace);
        tokio::spawn(async move {
            for id in chosen {
                let _ = workspace.lease.server_by_id(&id).await;
            }
        });
    }

    /// The workspace of `project` if some session holds it open.
    pub async fn get(&self, project: &ProjectId) -> Option<Arc<ProjectWorkspace>> {
        self.open.lock().await.get(project).and_then(Weak::upgrade)
    }
}

impl ProjectWorkspace {
    /// The mirror directory the language servers run in.
    pub fn root(&self) -> &Path {
        self.mirror.root()
    }
}

/// One file of each extension among `files`, the most common extension first (ties in the
/// order first seen, so the choice does not vary from run to run).
fn by_extension_count(files: impl Iterator<Item = String>) -> Vec<String> {
    let mut by_extension: Vec<(String, usize, String)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for rel in files {
        let Some(ext) = Path::new(&rel).extension().and_then(|e| e.to_str()) else {
            continue;
        };
        match index.get(ext) {
            Some(&i) => by_extension[i].1 += 1,
            None => {
                index.insert(ext.to_owned(), by_extension.len());
                by_extension.push((ext.to_owned(), 1, rel));
            }
        }
    }
    by_extension.sort_by_key(|(_, count, _)| std::cmp::Reverse(*count));
    by_extension
        .into_iter()
        .map(|(_, _, sample)| sample)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::by_extension_count;

    #[test]
    fn samples_come_most_common_extension_first_ties_in_first_seen_order() {
        let files = [
            "a.json", "b.py", "c.json", "d.ts", "Makefile", "e.json", "f.py", "g.rs", "h.ts",
        ];
        let ranked = by_extension_count(files.iter().map(|f| (*f).to_owned()));
        assert_eq!(ranked, ["a.json", "b.py", "d.ts", "g.rs"]);
    }
}
