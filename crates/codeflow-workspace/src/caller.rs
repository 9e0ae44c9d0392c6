//! Who is asking, and how to reach their files: one session's narrow view of its project.
//!
//! Everything a tool needs from the session that called it — the project, the client's root,
//! the token's rights, a line to the client's files — and nothing of sockets. A [`Caller`] for
//! a live session comes from [`Caller::for_session`]; [`Caller::local`] makes one over any
//! [`ClientFiles`] (the relay's own `FileServer`, in-process), which is how tools are tested
//! against real language servers without a socket, and how another program embeds them.
//!
//! Paths: a caller sees the project's mirror through its own client root ([`Caller::mirror`]:
//! the shared files, translated by its own [`PathMap`] — its root ↔ project-relative ↔ the
//! mirror), so two sessions that mount a project at different paths each send and receive
//! their own paths, and a mirror path never reaches a client.

use std::sync::{Arc, Weak};

use codeflow_file_stream::{ClientFiles, ClientPath, Mirror, MirrorPath, PathMap};
use codeflow_lsp_pool::ServerHandle;
use codeflow_session::{ClientRoot, Grant, ProjectId, Right, Session, SessionRegistry};
use tokio::sync::OnceCell;

use crate::error::WorkspaceError;
use crate::server_text::Scrubber;
use crate::session_client::CallerClient;
use crate::trees::TreeConflict;
use crate::workspace::{ProjectWorkspace, Workspaces};

/// How a caller's file requests reach its client.
#[derive(Clone)]
enum Link {
    /// `client/*` requests over the session (its relay).
    Session(Arc<Session>),
    /// In-process: the client's files served directly (tests, embedding), with the rights
    /// the caller was given.
    Local(Arc<dyn ClientFiles>, Grant),
}

/// One caller's view of its project (see the module docs).
pub struct Caller {
    /// The session's id (a local caller's name).
    pub id: String,
    /// The project the caller works on.
    pub project: ProjectId,
    /// The client's absolute project root.
    pub root: ClientRoot,
    /// The client serves `client/*` file requests (writes can reach it).
    pub file_stream: bool,
    link: Link,
    workspaces: Arc<Workspaces>,
    workspace: OnceCell<Arc<ProjectWorkspace>>,
    /// Set while this caller's tree was refused by the mirror (another live session's tree is
    /// there): its tools fail with the reason rather than answer about the other tree.
    conflict: parking_lot::Mutex<Option<TreeConflict>>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("id", &self.id)
            .field("project", &self.project)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// A file named by a caller, in both path spaces.
#[derive(Debug, Clone)]
pub struct ResolvedFile {
    /// The path as this caller's client knows it (what results show).
    pub client: String,
    /// Where the language servers see it.
    pub mirror: MirrorPath,
}

impl Caller {
    /// The caller behind a live session.
    pub fn for_session(session: Arc<Session>, workspaces: Arc<Workspaces>) -> Self {
        Self {
            id: session.id.clone(),
            project: session.project.clone(),
            root: session.root.clone(),
            file_stream: session.file_stream,
            link: Link::Session(session),
            workspaces,
            workspace: OnceCell::new(),
            conflict: parking_lot::Mutex::new(None),
        }
    }

    /// A caller whose client files are served in-process by `files` (for example the relay's
    /// `FileServer` over a directory).
    pub fn local(
        id: impl Into<String>,
        project: ProjectId,
        root: ClientRoot,
        grant: Grant,
        files: Arc<dyn ClientFiles>,
        workspaces: Arc<Workspaces>,
    ) -> Self {
        Self {
            id: id.into(),
            project,
            root,
            file_stream: true,
            link: Link::Local(files, grant),
            workspaces,
            workspace: OnceCell::new(),
            conflict: parking_lot::Mutex::new(None),
        }
    }

    /// The session behind this caller, if it is one.
    pub fn session(&self) -> Option<&Arc<Session>> {
        match &self.link {
            Link::Session(s) => Some(s),
            Link::Local(..) => None,
        }
    }

    /// The registry of the caller's session (its channels and sessions).
    pub fn registry(&self) -> Option<Arc<SessionRegistry>> {
        self.session().and_then(|s| s.registry())
    }

    /// Whether the caller can carry a write now or after a resume (a session that ended
    /// cannot).
    pub fn is_live(&self) -> bool {
        self.session().is_none_or(|s| !s.is_closed())
    }

    /// Whether the caller's client is connected right now.
    pub fn is_attached(&self) -> bool {
        self.session().is_none_or(|s| s.is_attached())
    }

    /// Every workspace of the server.
    pub fn workspaces(&self) -> &Arc<Workspaces> {
        &self.workspaces
    }

    /// Whether the caller's token grants `right` (a session's current token: it may be
    /// refreshed while the session lives).
    pub fn has(&self, right: Right) -> bool {
        match &self.link {
            Link::Session(session) => session.has(right),
            Link::Local(_, grant) => grant.has(right),
        }
    }

    /// Fails unless the caller's token grants `right`.
    pub fn require(&self, right: Right) -> Result<(), WorkspaceError> {
        if self.has(right) {
            Ok(())
        } else {
            Err(WorkspaceError::Forbidden(right))
        }
    }

    /// The project's workspace, opened on first use. Fails while this caller's tree is refused
    /// by the mirror (see [`crate::trees`]): answers would be about another tree.
    pub async fn workspace(&self) -> Result<Arc<ProjectWorkspace>, WorkspaceError> {
        if let Some(conflict) = self.conflict.lock().as_ref() {
            return Err(
                WorkspaceError::failed(conflict.message()).with_suggestion(conflict.suggestion())
            );
        }
        self.open_workspace().await
    }

    /// The project's workspace, whether or not this caller's tree is refused (the sync that
    /// decides it).
    pub(crate) async fn open_workspace(&self) -> Result<Arc<ProjectWorkspace>, WorkspaceError> {
        self.workspace
            .get_or_try_init(|| self.workspaces.open(&self.project, self.root.as_str()))
            .await
            .cloned()
    }

    /// The project's mirror as this caller sees it: the shared files, in this caller's client
    /// paths (requests to its client and every translation use its own root).
    pub fn mirror(&self, workspace: &ProjectWorkspace) -> Result<Mirror, WorkspaceError> {
        workspace
            .mirror
            .for_client_root(self.root.as_str())
            .map_err(|e| {
                WorkspaceError::InvalidArguments(format!(
                    "projectRoot `{}`: {e}",
                    self.root.as_str()
                ))
            })
    }

    /// This caller's own path map: its root ↔ project-relative ↔ the mirror.
    pub fn paths(&self, workspace: &ProjectWorkspace) -> Result<PathMap, WorkspaceError> {
        Ok(self.mirror(workspace)?.paths().clone())
    }

    /// `e` with the mirror's root replaced by this caller's root, once the workspace is open
    /// (before, no mirror path can be in it). The one net under every error a caller gets:
    /// errors are free text, and some carry a language server's words (its stderr, its error
    /// messages) that name the mirror.
    pub fn scrub_error(&self, e: WorkspaceError) -> WorkspaceError {
        match self.workspace.get() {
            Some(workspace) => self.scrubber(workspace).error(e),
            None => e,
        }
    }

    /// The scrubber of language servers' free text for this caller (the mirror's root → its
    /// root; see [`crate::server_text`]).
    pub fn scrubber(&self, workspace: &ProjectWorkspace) -> Scrubber {
        match self.paths(workspace) {
            Ok(paths) => Scrubber::of(&paths),
            // A root that never passes the handshake: the project-relative form.
            Err(_) => Scrubber::new(workspace.root(), ""),
        }
    }

    /// Reads a `file_path` argument: absolute in the client's filesystem, or relative to the
    /// project root. Paths outside the project are refused before anything touches a disk.
    pub async fn resolve(&self, file_path: &str) -> Result<ResolvedFile, WorkspaceError> {
        let invalid = |e: codeflow_file_stream::FileError| {
            WorkspaceError::InvalidArguments(format!("file_path `{file_path}`: {e}"))
        };
        let absolute = if file_path.starts_with('/') {
            file_path.to_owned()
        } else {
            format!(
                "{}/{}",
                self.root.as_str().trim_end_matches('/'),
                file_path.trim_start_matches("./")
            )
        };
        let path = ClientPath::parse(&absolute).map_err(invalid)?;
        let workspace = self.workspace().await?;
        let mirror = self.paths(&workspace)?.to_mirror(&path).map_err(invalid)?;
        Ok(ResolvedFile {
            client: path.as_str().to_owned(),
            mirror,
        })
    }

    /// The caller's client path of a mirror path.
    pub fn client_path(&self, workspace: &ProjectWorkspace, mirror: &MirrorPath) -> String {
        match self.paths(workspace) {
            Ok(paths) => paths.to_client(mirror).as_str().to_owned(),
            // A root that is not a POSIX path never passes the handshake; keep the
            // project-relative form rather than leak the mirror's.
            Err(_) => mirror.rel().as_str().to_owned(),
        }
    }

    /// A line to this caller's client files (requests in the caller's own paths).
    pub fn client(&self) -> CallerClient {
        match &self.link {
            Link::Session(session) => CallerClient::session(session.clone()),
            Link::Local(files, _) => CallerClient::local(files.clone()),
        }
    }

    /// The language server for a file, with the file opened on it at the mirror's content.
    pub async fn server_for(&self, file: &ResolvedFile) -> Result<ServerHandle, WorkspaceError> {
        self.server_answering(file, None).await
    }

    /// The language server that answers `operation` best for a file (see
    /// [`Operation`](codeflow_lsp_pool::Operation)), with the file opened on it.
    pub async fn server_for_operation(
        &self,
        file: &ResolvedFile,
        operation: codeflow_lsp_pool::Operation,
    ) -> Result<ServerHandle, WorkspaceError> {
        self.server_answering(file, Some(operation)).await
    }

    async fn server_answering(
        &self,
        file: &ResolvedFile,
        operation: Option<codeflow_lsp_pool::Operation>,
    ) -> Result<ServerHandle, WorkspaceError> {
        let workspace = self.workspace().await?;
        let path = file.mirror.as_path();
        let server = match operation {
            Some(operation) => workspace.lease.server_for_operation(path, operation).await,
            None => workspace.lease.server_for_file(path).await,
        }
        .map_err(|e| match e {
            // Named in the caller's path, not the mirror's.
            codeflow_lsp_pool::LspError::NoServerForFile { extension, .. } => {
                WorkspaceError::failed(format!(
                    "no language server is configured for {} (extension {extension:?})",
                    file.client
                ))
                .with_suggestion(
                    "add a language server for this extension in the server's config ([lsp.servers])",
                )
            }
            other => WorkspaceError::from_lsp(other),
        })?;
        let bytes = match workspace.mirror.read(&file.mirror).await {
            Ok(bytes) => bytes,
            Err(e) => return Err(self.unreadable(&workspace, file, e).await),
        };
        server
            .sync_document(
                file.mirror.as_path(),
                String::from_utf8_lossy(&bytes).into_owned(),
            )
            .map_err(WorkspaceError::from_lsp)?;
        Ok(server)
    }

    /// Why a file the mirror cannot give is not there, as the caller can act on it. For a
    /// file the mirror does not have and the default filter would stream, the caller's relay is
    /// asked for it: its refusal (a symlink that leads out of the project, a file over the
    /// size limit, …) is the reason the file was never streamed.
    async fn unreadable(
        &self,
        workspace: &ProjectWorkspace,
        file: &ResolvedFile,
        e: codeflow_file_stream::FileError,
    ) -> WorkspaceError {
        use codeflow_file_stream::FileError;
        const CHECK: &str = "check the path; files reach the server through codeflow-client's sync";
        let suggestion = match &e {
            FileError::NotFound(_) if !streamed_by_default(&workspace.mirror, &file.mirror) => {
                "the relay does not stream this file: the project's .gitignore (or the relay's exclude list: .git/, target/, most of node_modules/) leaves it out and git does not track it; ask about a file that is streamed, or `git add` it or change the .gitignore".to_owned()
            }
            FileError::NotFound(_) => match self.relay_refusal(&file.client).await {
                Some(reason) => format!("the relay does not stream this file: {reason}"),
                None => CHECK.to_owned(),
            },
            _ => CHECK.to_owned(),
        };
        WorkspaceError::failed(format!("cannot read {}: {e}", file.client))
            .with_suggestion(suggestion)
    }

    /// What the caller's relay answers when asked for `client_path` directly: its error
    /// message, unless the file is simply absent (or the relay does not answer in time).
    async fn relay_refusal(&self, client_path: &str) -> Option<String> {
        use codeflow_file_stream::FileError;
        const ASK_FOR: std::time::Duration = std::time::Duration::from_secs(3);
        let client = self.client();
        let asked = client.call("client/readFile", serde_json::json!({"path": client_path}));
        match tokio::time::timeout(ASK_FOR, asked).await {
            Ok(Err(refusal)) if refusal.code != FileError::NotFound(String::new()).code() => {
                Some(refusal.message)
            }
            _ => None,
        }
    }

    /// Records (or clears) the refusal of this caller's tree.
    pub(crate) fn set_conflict(&self, conflict: Option<TreeConflict>) {
        *self.conflict.lock() = conflict;
    }

    /// A weak handle, for registries that must not keep callers alive.
    pub fn downgrade(self: &Arc<Self>) -> Weak<Self> {
        Arc::downgrade(self)
    }
}

/// Whether a relay with the default exclusions streams `file`, judged from the `.gitignore`
/// files in the mirror (they are streamed): a file missing from the mirror that it would not
/// stream is missing because it is ignored, not because the path is wrong. (The relay also
/// streams ignored files git tracks; the mirror has no git index, but such a file is in it.)
fn streamed_by_default(mirror: &Mirror, file: &MirrorPath) -> bool {
    codeflow_file_stream::FileFilter::new(
        mirror.root(),
        codeflow_file_stream::ExcludeConfig::default(),
    )
    .map_or(true, |filter| filter.is_included(file.rel(), false))
}
