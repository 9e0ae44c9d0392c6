//! The MCP server, on rmcp. This is the only module that names rmcp: it changes fast, so its
//! types stop here and the rest of CodeFlow speaks [`Message`] and [`crate::Tool`].
//!
//! Each session gets its own rmcp service, driven over a pair of channels: client messages come
//! in through the sender returned by [`McpService::start`], and rmcp's output goes straight to
//! [`Session::send_to_client`]. rmcp therefore never sees a socket, so a reconnect is invisible
//! to it.

// MCP logging (`logging/setLevel`, `notifications/message`) is part of the 2025-11-25 contract
// clients use; rmcp marks it deprecated for the 2026 revision, which WebSocket sessions never
// negotiate.
#![allow(deprecated)]

use std::borrow::Cow;
use std::sync::Arc;

use codeflow_session::{ServiceInbox, Session, SessionService};
use codeflow_transport::{ErrorObject, Message, codes};
use futures::StreamExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientJsonRpcMessage, ContentBlock,
    Implementation, ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities,
    ServerConfig, ServerJsonRpcMessage, SetLevelRequestParams, Tool as McpTool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::Value;
use tokio::sync::mpsc;

use codeflow_workspace::{Caller, EditRouter, SessionFiles};

use crate::catalogue::Catalogue;
use crate::client_log::ClientLog;
use crate::context::{ServerServices, ToolContext};
use crate::error::ToolError;

/// Messages buffered from a session to its MCP service. When full, the socket reader waits.
const INBOUND_CAPACITY: usize = 256;

/// The newest MCP revision served over WebSocket (see `codeflow_session::MAX_PROTOCOL_VERSION`).
const MAX_VERSION: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// Serves every session with the tool catalogue.
#[derive(Debug, Clone)]
pub struct McpService {
    router: Arc<EditRouter>,
    catalogue: Arc<Catalogue>,
    services: Arc<ServerServices>,
    tools: Arc<Vec<McpTool>>,
}

impl McpService {
    pub fn new(catalogue: Catalogue, services: Arc<ServerServices>) -> Self {
        let tools = catalogue
            .iter()
            .filter_map(|t| describe(t.as_ref()))
            .collect();
        Self {
            router: EditRouter::new(),
            catalogue: Arc::new(catalogue),
            services,
            tools: Arc::new(tools),
        }
    }
}

/// A catalogue tool as MCP describes it. Built through serde so rmcp's non-exhaustive structs
/// do not tie this code to one rmcp release.
fn describe(tool: &dyn crate::Tool) -> Option<McpTool> {
    let value = serde_json::json!({
        "name": tool.name(),
        "description": tool.description(),
        "inputSchema": tool.input_schema(),
        "outputSchema": tool.output_schema(),
    });
    match serde_json::from_value(value) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(tool = tool.name(), error = %e, "tool description rejected by rmcp");
            None
        }
    }
}

impl McpService {
    /// Applies language servers' `workspace/applyEdit` through the project's sessions; install
    /// it on the pool with `LspPool::set_apply_edit_handler`.
    pub fn edit_router(&self) -> Arc<EditRouter> {
        self.router.clone()
    }
}

impl SessionService for McpService {
    fn start(&self, session: Arc<Session>) -> ServiceInbox {
        let (tx, rx) = mpsc::channel::<Box<Message>>(INBOUND_CAPACITY);
        let log = Arc::new(ClientLog::new(session.clone()));
        let caller = Arc::new(Caller::for_session(
            session.clone(),
            self.services.workspaces.clone(),
        ));
        let files = SessionFiles::start(session.clone(), caller.clone(), log.clone());
        self.router.register(&caller);
        let handler = Handler {
            context: ToolContext::new(caller, self.services.clone()),
            files: files.clone(),
            catalogue: self.catalogue.clone(),
            tools: self.tools.clone(),
            log,
        };
        let errors_to = session.clone();
        let stream = tokio_stream_from(rx).filter_map(move |message| {
            let files = files.clone();
            let errors_to = errors_to.clone();
            async move {
                // File-stream traffic is the server's own business, not MCP's.
                let message = files.intercept(message).await?;
                let parsed = into_rmcp(&message);
                if let Err(error) = &parsed
                    && let Some(id) = message.id().cloned().filter(|_| !message.is_response())
                {
                    errors_to.send_to_client(Message::error(id, error.clone()));
                }
                parsed.ok()
            }
        });
        let out = session.clone();
        let sink = Box::pin(futures::sink::unfold(
            out,
            |out, message: ServerJsonRpcMessage| async move {
                match from_rmcp(&message) {
                    Some(m) => out.send_to_client(m),
                    None => tracing::error!("rmcp produced a message that is not JSON-RPC"),
                }
                Ok::<_, std::convert::Infallible>(out)
            },
        ));
        let session_id = session.id.clone();
        tokio::spawn(async move {
            // Boxed: the handshake's state is large (≈ 7 KB) and needed only until the
            // service runs; unboxed it would size this task for the session's whole life.
            let serving = Box::pin(rmcp::serve_server(handler, (sink, Box::pin(stream))));
            match serving.await {
                Ok(running) => {
                    let _ = running.waiting().await;
                }
                Err(e) => {
                    tracing::info!(session = %session_id, error = %e, "MCP service did not start")
                }
            }
            // Whatever ended the service, the session cannot be served any more.
            session.close();
        });
        tx
    }

    fn tool_rights(&self, tool: &str, arguments: Option<&Value>) -> Vec<codeflow_session::Right> {
        crate::rights::tool_rights(&self.catalogue, tool, arguments)
    }
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Box<Message>>,
) -> impl futures::Stream<Item = Message> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|m| m.map(|m| *m)))
}

fn into_rmcp(message: &Message) -> Result<ClientJsonRpcMessage, ErrorObject> {
    serde_json::from_value(message.to_value()).map_err(|e| match message.method() {
        Some(method) => ErrorObject::new(
            codes::INVALID_PARAMS,
            format!("invalid params for `{method}`: {e}"),
        ),
        None => ErrorObject::new(codes::INVALID_REQUEST, format!("invalid message: {e}")),
    })
}

fn from_rmcp(message: &ServerJsonRpcMessage) -> Option<Message> {
    let value = serde_json::to_value(message).ok()?;
    Message::from_value(value).ok()
}

struct Handler {
    log: Arc<ClientLog>,
    context: ToolContext,
    files: Arc<SessionFiles>,
    catalogue: Arc<Catalogue>,
    tools: Arc<Vec<McpTool>>,
}

impl ServerHandler for Handler {
    // `logging/setLevel` is part of the contract clients rely on (MCP 2025-11-25); rmcp marks
    // it deprecated for the 2026 revision, which WebSocket sessions do not negotiate.
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_logging()
                .build(),
        )
        .with_server_info(Implementation::new("codeflow", self.context.services.version))
        .with_protocol_version(MAX_VERSION)
        .with_instructions(
            "CodeFlow gives code intelligence for this project from a central server: find definitions and references, rename, diagnostics and more. Paths are your project's paths; lines and characters are 1-based.",
        )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&MAX_VERSION))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let level = serde_json::to_value(request.level)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.log
            .set_level(&level)
            .map_err(|e| McpError::invalid_params(e, None))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(tool) = self.catalogue.get(&request.name) else {
            return Err(McpError::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                format!(
                    "unknown tool `{}`; tools/list names the available tools",
                    request.name
                ),
                None,
            ));
        };
        let args = request.arguments.map(Value::Object).unwrap_or(Value::Null);
        let started = std::time::Instant::now();
        let outcome = tokio::select! {
            r = async {
                // Read-your-writes: file changes that reached us before this call are applied
                // to the mirror before the tool looks at it.
                self.files.caught_up().await;
                tool.call(&self.context, args).await
            } => r,
            _ = context.ct.cancelled() => Err(ToolError::Cancelled),
        };
        metrics::histogram!("codeflow_tool_duration_seconds", "tool" => tool.name())
            .record(started.elapsed().as_secs_f64());
        if outcome.is_err() {
            metrics::counter!("codeflow_tool_errors_total", "tool" => tool.name()).increment(1);
        }
        Ok(CallToolResponse::Complete(match outcome {
            Ok(output) => {
                let mut result = CallToolResult::success(vec![ContentBlock::text(output.text)]);
                result.structured_content = Some(output.structured);
                result
            }
            Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_text())]),
        }))
    }
}
