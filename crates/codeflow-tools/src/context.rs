//! What a tool call can reach: its caller (the session's narrow view of its project, see
//! [`Caller`]), the batch it runs in, and the server's shared services.

use std::sync::Arc;
use std::time::Instant;

use codeflow_file_stream::MirrorPath;
use codeflow_lsp_pool::{LspPool, ServerHandle};
use codeflow_session::Right;
use codeflow_workspace::{BatchScope, Caller, EditPlan, ProjectWorkspace, Workspaces};

pub use codeflow_workspace::ResolvedFile;

use crate::error::ToolError;

/// Services shared by every session of a server.
#[derive(Debug)]
pub struct ServerServices {
    /// When the server started (`health_check`'s uptime).
    pub started: Instant,
    /// The server's version.
    pub version: &'static str,
    /// Every project's workspace (mirror and language servers).
    pub workspaces: Arc<Workspaces>,
}

impl ServerServices {
    /// The services over `workspaces`.
    pub fn new(workspaces: Arc<Workspaces>) -> Self {
        Self {
            started: Instant::now(),
            version: env!("CARGO_PKG_VERSION"),
            workspaces,
        }
    }

    /// The language-server pool.
    pub fn pool(&self) -> &LspPool {
        self.workspaces.pool()
    }
}

/// The context of one tool call.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// Who calls: project, root, rights, and the line to its files.
    pub caller: Arc<Caller>,
    /// The server's shared services.
    pub services: Arc<ServerServices>,
    /// The batch (`batch_execute`) this call is an operation of: its writes are recorded for a
    /// roll-back, or only described in a dry-run batch.
    pub batch: Option<Arc<BatchScope>>,
}

impl ToolContext {
    /// A context for one caller (not part of a batch).
    pub fn new(caller: Arc<Caller>, services: Arc<ServerServices>) -> Self {
        Self {
            caller,
            services,
            batch: None,
        }
    }

    /// This context, for the operations of `batch`.
    pub fn in_batch(&self, batch: &Arc<BatchScope>) -> Self {
        Self {
            batch: Some(Arc::clone(batch)),
            ..self.clone()
        }
    }

    /// Runs `tool` for this caller: how every call is made (the MCP adapter, a batch's
    /// operations, a preview), so every error reaches the agent in its own paths.
    pub async fn run(
        &self,
        tool: &dyn crate::Tool,
        args: serde_json::Value,
    ) -> Result<crate::ToolOutput, ToolError> {
        tool.call(self, args)
            .await
            .map_err(|e| self.caller.scrub_error(e))
    }

    /// [`Tool::answer_at_once`](crate::Tool::answer_at_once) for this caller, errors as
    /// [`Self::run`] gives them; `None` when the tool would have to wait.
    pub fn run_at_once(
        &self,
        tool: &dyn crate::Tool,
        args: &serde_json::Value,
    ) -> Option<Result<crate::catalogue::ToolOutputText, ToolError>> {
        tool.answer_at_once(self, args)
            .map(|r| r.map_err(|e| self.caller.scrub_error(e)))
    }

    /// Fails unless the caller's token grants `right`.
    pub fn require(&self, right: Right) -> Result<(), ToolError> {
        self.caller.require(right)
    }

    /// The caller's project workspace, opened if needed.
    pub async fn workspace(&self) -> Result<Arc<ProjectWorkspace>, ToolError> {
        self.caller.workspace().await
    }

    /// Reads a `file_path` argument (see [`Caller::resolve`]).
    pub async fn resolve(&self, file_path: &str) -> Result<ResolvedFile, ToolError> {
        self.caller.resolve(file_path).await
    }

    /// The caller's client path for a mirror path.
    pub fn client_path(&self, workspace: &ProjectWorkspace, mirror: &MirrorPath) -> String {
        self.caller.client_path(workspace, mirror)
    }

    /// The language server for a file, with the file opened on it at the mirror's content.
    pub async fn server_for(&self, file: &ResolvedFile) -> Result<ServerHandle, ToolError> {
        self.caller.server_for(file).await
    }

    /// The language server that answers `operation` best for a file, with the file opened.
    pub async fn server_for_operation(
        &self,
        file: &ResolvedFile,
        operation: codeflow_lsp_pool::Operation,
    ) -> Result<ServerHandle, ToolError> {
        self.caller.server_for_operation(file, operation).await
    }

    /// Whether this call writes nothing: it asked for a dry run, or it is an operation of a
    /// dry-run batch.
    pub fn is_dry_run(&self, asked: bool) -> bool {
        asked || self.batch.as_ref().is_some_and(|b| b.is_dry_run())
    }

    /// An edit plan for this call: the caller's project, in this call's batch if any.
    pub fn edit_plan(&self, workspace: Arc<ProjectWorkspace>) -> Result<EditPlan, ToolError> {
        EditPlan::new(&self.caller, workspace, self.batch.as_ref())
    }
}
