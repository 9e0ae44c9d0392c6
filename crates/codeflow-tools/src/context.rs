//! What a tool call can reach: its session, the session's files, and the server's shared
//! services (workspaces and the language-server pool).

use std::sync::Arc;
use std::time::Instant;

use codeflow_file_stream::{ClientPath, MirrorPath};
use codeflow_lsp_pool::{LspPool, ServerHandle};
use codeflow_session::{Right, Session};

use crate::error::ToolError;
use crate::sync::SessionFiles;
use crate::workspace::{ProjectWorkspace, Workspaces};

/// Services shared by every session of a server.
#[derive(Debug)]
pub struct ServerServices {
    pub started: Instant,
    pub version: &'static str,
    pub workspaces: Workspaces,
}

impl ServerServices {
    pub fn new(workspaces: Workspaces) -> Self {
        Self {
            started: Instant::now(),
            version: env!("CARGO_PKG_VERSION"),
            workspaces,
        }
    }

    pub fn pool(&self) -> &LspPool {
        self.workspaces.pool()
    }
}

/// The context of one tool call.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub session: Arc<Session>,
    pub services: Arc<ServerServices>,
    pub files: Arc<SessionFiles>,
}

/// A file named by a tool argument, in both path spaces.
#[derive(Debug, Clone)]
pub struct ResolvedFile {
    /// The path as this session's client knows it (what results show).
    pub client: String,
    /// Where the language servers see it.
    pub mirror: MirrorPath,
}

impl ToolContext {
    /// Fails unless the session's token grants `right`.
    pub fn require(&self, right: Right) -> Result<(), ToolError> {
        if self.session.has(right) {
            Ok(())
        } else {
            Err(ToolError::Forbidden(right))
        }
    }

    pub async fn workspace(&self) -> Result<Arc<ProjectWorkspace>, ToolError> {
        self.files.workspace().await
    }

    /// Reads a `file_path` argument: absolute in the client's filesystem, or relative to the
    /// project root. Paths outside the project are refused before anything touches a disk.
    pub async fn resolve(&self, file_path: &str) -> Result<ResolvedFile, ToolError> {
        let root = self.session.root.as_str();
        let absolute = if file_path.starts_with('/') {
            file_path.to_owned()
        } else {
            format!(
                "{}/{}",
                root.trim_end_matches('/'),
                file_path.trim_start_matches("./")
            )
        };
        let workspace = self.workspace().await?;
        let in_mirror_space = match self.files.rebase_in(&workspace) {
            Some(r) => r.path(&absolute),
            None => absolute.clone(),
        };
        let path = ClientPath::parse(&in_mirror_space)
            .map_err(|e| ToolError::InvalidArguments(format!("file_path `{file_path}`: {e}")))?;
        let mirror =
            workspace.mirror.paths().to_mirror(&path).map_err(|e| {
                ToolError::InvalidArguments(format!("file_path `{file_path}`: {e}"))
            })?;
        Ok(ResolvedFile {
            client: absolute,
            mirror,
        })
    }

    /// The client's path for a mirror path, in this session's root.
    pub fn client_path(&self, workspace: &ProjectWorkspace, mirror: &MirrorPath) -> String {
        let path = workspace.mirror.paths().to_client(mirror);
        match self.files.rebase_in(workspace) {
            Some(r) => r.reversed().path(path.as_str()),
            None => path.as_str().to_owned(),
        }
    }

    /// The language server for a file, with the file opened on it at the mirror's content.
    pub async fn server_for(&self, file: &ResolvedFile) -> Result<ServerHandle, ToolError> {
        let workspace = self.workspace().await?;
        let server = workspace
            .lease
            .server_for_file(file.mirror.as_path())
            .await
            .map_err(ToolError::from_lsp)?;
        let bytes = workspace.mirror.read(&file.mirror).await.map_err(|e| {
            ToolError::failed(format!("cannot read {}: {e}", file.client)).with_suggestion(
                "check the path; files reach the server through codeflow-client's sync",
            )
        })?;
        server
            .sync_document(
                file.mirror.as_path(),
                String::from_utf8_lossy(&bytes).into_owned(),
            )
            .map_err(ToolError::from_lsp)?;
        Ok(server)
    }
}
