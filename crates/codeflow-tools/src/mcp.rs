//! The MCP server. rmcp gives the protocol's types and its version negotiation; the dispatch
//! is ours, and the only module that names rmcp is this one: it changes fast, so its types
//! stop here and the rest of CodeFlow speaks [`Message`] and [`crate::Tool`].
//!
//! Each session gets a [`McpSession`], which the session layer hands the client's messages in
//! arrival order on the socket's routing task ([`SessionHandler::deliver`]). `initialize`,
//! `ping`, `tools/list` and `logging/setLevel` are answered right there; a `tools/call` runs
//! on a task of its own, except a tool that answers from memory (`health_check`,
//! [`crate::Tool::answers_from_memory`]): it is tried right there once, and answered at once
//! when neither the file events before it nor the tool has to wait (else the try is dropped
//! and the call starts afresh on its own task). Tools that may wait are never polled here: a
//! language server's or the client's answer comes through tasks this one must not hold up. rmcp's own serve loop is not used: it costs four task hops per
//! request (loop → handler task → loop → send task) before the answer even reaches the
//! socket's writer, which was most of the server's share of a round trip (P1 in
//! `docs/benchmarks.md`). The answers keep rmcp's shapes: results are built from rmcp's model
//! types and `initialize` is negotiated by rmcp's rule.
//!
//! File-stream traffic (`server/syncManifest`, `server/fileChanged`) arrives in the same order
//! and goes to the workspace's [`SessionFiles`] before any later message is looked at, so a
//! tool call waits for every file event that arrived before it.

// MCP logging (`logging/setLevel`, `notifications/message`) is part of the 2025-11-25 contract
// clients use; rmcp marks it deprecated for the 2026 revision, which WebSocket sessions never
// negotiate.
#![allow(deprecated)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use codeflow_session::{Delivery, Session, SessionHandler, SessionService};
use codeflow_transport::{ErrorObject, Message, codes};
use parking_lot::Mutex;
use rmcp::ServerHandler;
use rmcp::model::{
    Implementation, InitializeRequestParams, ListToolsResult, ProtocolVersion, ServerCapabilities,
    ServerConfig, Tool as McpTool,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use codeflow_workspace::{Caller, EditRouter, SessionFiles};

use crate::catalogue::Catalogue;
use crate::client_log::ClientLog;
use crate::context::{ServerServices, ToolContext};
use crate::error::ToolError;

/// The newest MCP revision served over WebSocket (see `codeflow_session::MAX_PROTOCOL_VERSION`).
const MAX_VERSION: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// Serves every session with the tool catalogue.
#[derive(Debug, Clone)]
pub struct McpService {
    router: Arc<EditRouter>,
    catalogue: Arc<Catalogue>,
    services: Arc<ServerServices>,
    /// The `tools/list` result, built once: it is the same for every session.
    tools_list: Arc<Value>,
}

impl McpService {
    /// The MCP service for `catalogue`.
    pub fn new(catalogue: Catalogue, services: Arc<ServerServices>) -> Self {
        let tools: Vec<McpTool> = catalogue
            .iter()
            .filter_map(|t| describe(t.as_ref()))
            .collect();
        let tools_list = serde_json::to_value(ListToolsResult::with_all_items(tools))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "tools/list result not serialisable");
                serde_json::json!({"tools": []})
            });
        Self {
            router: EditRouter::new(),
            catalogue: Arc::new(catalogue),
            services,
            tools_list: Arc::new(tools_list),
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
        // Clients use it to decide what may run again after a lost session (the relay
        // re-sends only read-only calls to a new session).
        "annotations": {"readOnlyHint": crate::rights::read_only(tool.name())},
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
    fn start(&self, session: Arc<Session>) -> Arc<dyn SessionHandler> {
        let log = Arc::new(ClientLog::new(session.clone()));
        let caller = Arc::new(Caller::for_session(
            session.clone(),
            self.services.workspaces.clone(),
        ));
        let files = SessionFiles::start(session.clone(), caller.clone(), log.clone());
        self.router.register(&caller);
        Arc::new(McpSession {
            shared: Arc::new(Shared {
                session,
                context: ToolContext::new(caller, self.services.clone()),
                files,
                catalogue: self.catalogue.clone(),
                running: Mutex::new(HashMap::new()),
            }),
            identity: Identity {
                version: self.services.version,
            },
            tools_list: self.tools_list.clone(),
            log,
        })
    }

    fn tool_rights(&self, tool: &str, arguments: Option<&Value>) -> Vec<codeflow_session::Right> {
        crate::rights::tool_rights(&self.catalogue, tool, arguments)
    }
}

/// One session's MCP server.
struct McpSession {
    shared: Arc<Shared>,
    identity: Identity,
    tools_list: Arc<Value>,
    log: Arc<ClientLog>,
}

/// What a running tool call needs from its session.
struct Shared {
    session: Arc<Session>,
    context: ToolContext,
    files: Arc<SessionFiles>,
    catalogue: Arc<Catalogue>,
    /// Tool calls running, by the JSON text of their id, for `notifications/cancelled`.
    running: Mutex<HashMap<String, CancellationToken>>,
}

impl SessionHandler for McpSession {
    fn deliver(&self, message: Message) -> Delivery<'_> {
        Box::pin(async move {
            // File-stream traffic is the workspace's: queued in order (waiting here when the
            // queue is full, which stops the socket reading).
            let Some(message) = self.shared.files.intercept(message).await else {
                return;
            };
            match message {
                Message::Request { id, method, params } => {
                    if let Some(reply) = self.request(id, &method, params) {
                        self.shared.session.send_to_client(reply);
                    }
                }
                Message::Notification { method, params } => self.notification(&method, params),
                // We send the client no requests of our own (its `client/*` answers are the
                // session's), so a response here answers nothing.
                Message::Response { .. } | Message::Error { .. } => {}
            }
        })
    }
}

impl McpSession {
    /// Answers a request at once, or starts it and returns `None` (`tools/call`).
    fn request(&self, id: Value, method: &str, params: Option<Value>) -> Option<Message> {
        Some(match method {
            "ping" => Message::response(id, Value::Object(serde_json::Map::new())),
            "tools/call" => return self.call_tool(id, params),
            "tools/list" => Message::response(id, self.tools_list.as_ref().clone()),
            "initialize" => match self.initialize(params) {
                Ok(result) => Message::response(id, result),
                Err(e) => Message::error(id, e),
            },
            "logging/setLevel" => {
                let level = params
                    .as_ref()
                    .and_then(|p| p.get("level"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match self.log.set_level(level) {
                    Ok(()) => Message::response(id, Value::Object(serde_json::Map::new())),
                    Err(e) => Message::error(id, ErrorObject::new(codes::INVALID_PARAMS, e)),
                }
            }
            other => Message::error(
                id,
                ErrorObject::new(
                    codes::METHOD_NOT_FOUND,
                    format!("method `{other}` not found"),
                )
                .with_suggestion(
                    "this server offers tools: initialize, ping, tools/list, tools/call, logging/setLevel",
                ),
            ),
        })
    }

    fn notification(&self, method: &str, params: Option<Value>) {
        if method == "notifications/cancelled"
            && let Some(id) = params.as_ref().and_then(|p| p.get("requestId"))
        {
            let key = id.to_string();
            if let Some(token) = self.shared.running.lock().remove(&key) {
                token.cancel();
                // MCP: a cancelled request is not answered.
                self.shared.session.request_cancelled(id);
            }
        }
        // `notifications/initialized` and anything else need nothing from us.
    }

    /// `initialize`: rmcp's negotiation over our identity and capabilities.
    fn initialize(&self, params: Option<Value>) -> Result<Value, ErrorObject> {
        let request: InitializeRequestParams =
            serde_json::from_value(params.unwrap_or(Value::Null)).map_err(|e| {
                ErrorObject::new(
                    codes::INVALID_PARAMS,
                    format!("invalid params for `initialize`: {e}"),
                )
            })?;
        let result = self
            .identity
            .negotiate_initialize(&request)
            .map_err(|e| ErrorObject {
                code: i64::from(e.code.0),
                message: e.message.into_owned(),
                data: e.data,
            })?;
        serde_json::to_value(result)
            .map_err(|e| ErrorObject::new(codes::INTERNAL_ERROR, e.to_string()))
    }

    /// `tools/call`: checked here, run on a task of its own, answered from there.
    fn call_tool(&self, id: Value, params: Option<Value>) -> Option<Message> {
        let progress_token = params
            .as_ref()
            .and_then(|p| p.pointer("/_meta/progressToken"))
            .cloned();
        let (name, args) = match call_params(params) {
            Ok(p) => p,
            Err(e) => return Some(Message::error(id, e)),
        };
        let Some(tool) = self.shared.catalogue.get(&name).cloned() else {
            return Some(Message::error(
                id,
                ErrorObject::new(
                    codes::METHOD_NOT_FOUND,
                    format!("unknown tool `{name}`; tools/list names the available tools"),
                ),
            ));
        };
        if tool.answers_from_memory() && progress_token.is_none() {
            return match self.try_at_once(id, tool.as_ref(), args) {
                Ok(()) => None,
                Err((id, args)) => self.spawn_call(id, tool, args, None),
            };
        }
        self.spawn_call(id, tool, args, progress_token)
    }

    /// Runs a tool that answers from memory right here, when nothing has to be waited for:
    /// the file events received before it are applied and the tool's future is ready at its
    /// first poll, and the answer is sent. Otherwise nothing happened, and the id and the
    /// arguments come back for a task. A tool that writes its answer as text
    /// ([`crate::Tool::answer_at_once`]) has it serialised once, straight into the frame.
    fn try_at_once(
        &self,
        id: Value,
        tool: &dyn crate::Tool,
        args: Value,
    ) -> Result<(), (Value, Value)> {
        use futures::FutureExt;
        // Ready at once when every file event received so far is applied.
        if self.shared.files.caught_up().now_or_never().is_none() {
            return Err((id, args));
        }
        let started = std::time::Instant::now();
        if let Some(outcome) = self.shared.context.run_at_once(tool, &args) {
            record_call(tool, started, outcome.is_ok());
            match tool_result_text(outcome) {
                Ok(result) => self.shared.session.send_result_text(id, &result),
                Err(e) => self.shared.session.send_to_client(Message::error(id, e)),
            }
            return Ok(());
        }
        let Some(outcome) = self.shared.context.run(tool, args.clone()).now_or_never() else {
            return Err((id, args));
        };
        record_call(tool, started, outcome.is_ok());
        self.shared
            .session
            .send_to_client(Message::response(id, tool_result(outcome)));
        Ok(())
    }

    /// Runs a tool call on a task of its own, answered from there.
    fn spawn_call(
        &self,
        id: Value,
        tool: Arc<dyn crate::Tool>,
        args: Value,
        progress_token: Option<Value>,
    ) -> Option<Message> {
        let cancel = CancellationToken::new();
        let key = id.to_string();
        self.shared
            .running
            .lock()
            .insert(key.clone(), cancel.clone());
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let outcome = tokio::select! {
                r = async {
                    // Read-your-writes: file changes that reached us before this call are
                    // applied to the mirror before the tool looks at it.
                    // (A call with a progressToken hears how a running sync progresses.)
                    shared.files.caught_up_reporting(progress_token).await;
                    shared.context.run(tool.as_ref(), args).await
                } => Some(r),
                _ = cancel.cancelled() => None,
                _ = shared.session.closed() => None,
            };
            record_call(
                tool.as_ref(),
                started,
                matches!(outcome.as_ref(), Some(Ok(_))),
            );
            let Some(outcome) = outcome else {
                return;
            };
            shared.running.lock().remove(&key);
            shared
                .session
                .send_to_client(Message::response(id, tool_result(outcome)));
        });
        None
    }
}

/// A call's duration, and an error when it failed or was cancelled (`ok` false).
fn record_call(tool: &dyn crate::Tool, started: std::time::Instant, ok: bool) {
    metrics::histogram!("codeflow_tool_duration_seconds", "tool" => tool.name())
        .record(started.elapsed().as_secs_f64());
    if !ok {
        metrics::counter!("codeflow_tool_errors_total", "tool" => tool.name()).increment(1);
    }
}

/// `tools/call`'s params: the tool's name and its arguments (an object, or null when absent).
fn call_params(params: Option<Value>) -> Result<(String, Value), ErrorObject> {
    let invalid = |what: &str| {
        ErrorObject::new(
            codes::INVALID_PARAMS,
            format!("invalid params for `tools/call`: {what}"),
        )
        .with_suggestion("send {\"name\": \"<tool>\", \"arguments\": {…}}")
    };
    let Some(Value::Object(mut params)) = params else {
        return Err(invalid("params must be an object"));
    };
    let Some(Value::String(name)) = params.remove("name") else {
        return Err(invalid("`name` must be a string"));
    };
    let args = match params.remove("arguments") {
        None | Some(Value::Null) => Value::Null,
        Some(a @ Value::Object(_)) => a,
        Some(_) => return Err(invalid("`arguments` must be an object")),
    };
    Ok((name, args))
}

/// A tool's outcome as MCP's `CallToolResult`: the text for the agent, the structured output
/// for programs, and `isError` for a tool error (which is a result, not a JSON-RPC error).
fn tool_result(outcome: Result<crate::ToolOutput, ToolError>) -> Value {
    // rmcp's `CallToolResult` shape, built directly: through rmcp's type the structured
    // answer would be copied once more (`tool_results_keep_rmcp_shape` holds them equal).
    let (text, structured, is_error) = match outcome {
        Ok(output) => (output.text, Some(output.structured), false),
        Err(e) => (e.to_text(), None, true),
    };
    let mut result = serde_json::Map::with_capacity(4);
    let mut block = serde_json::Map::with_capacity(2);
    block.insert("type".into(), Value::String("text".into()));
    block.insert("text".into(), Value::String(text));
    result.insert("content".into(), Value::Array(vec![Value::Object(block)]));
    if let Some(structured) = structured {
        result.insert("structuredContent".into(), structured);
    }
    result.insert("isError".into(), Value::Bool(is_error));
    result.insert("resultType".into(), Value::String("complete".into()));
    Value::Object(result)
}

/// [`tool_result`] for an answer whose `structuredContent` is JSON text already: the result
/// written as text around it (same members, never built as a `Value`).
fn tool_result_text(
    outcome: Result<crate::ToolOutputText, ToolError>,
) -> Result<Box<serde_json::value::RawValue>, ErrorObject> {
    use serde_json::value::RawValue;
    #[derive(serde::Serialize)]
    struct TextBlock<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        text: &'a str,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct CallResult<'a> {
        content: [TextBlock<'a>; 1],
        #[serde(skip_serializing_if = "Option::is_none")]
        structured_content: Option<&'a RawValue>,
        is_error: bool,
        result_type: &'static str,
    }
    let (text, structured, is_error) = match &outcome {
        Ok(output) => (
            Cow::Borrowed(output.text.as_str()),
            Some(&*output.structured),
            false,
        ),
        Err(e) => (Cow::Owned(e.to_text()), None, true),
    };
    let result = CallResult {
        content: [TextBlock {
            kind: "text",
            text: &text,
        }],
        structured_content: structured,
        is_error,
        result_type: "complete",
    };
    serde_json::value::to_raw_value(&result)
        .map_err(|e| ErrorObject::new(codes::INTERNAL_ERROR, e.to_string()))
}

/// The server's identity and capabilities, as rmcp's handler trait describes them (used for
/// its `initialize` negotiation only).
struct Identity {
    version: &'static str,
}

impl ServerHandler for Identity {
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
        .with_server_info(Implementation::new("codeflow", self.version))
        .with_protocol_version(MAX_VERSION)
        .with_instructions(
            "CodeFlow gives code intelligence for this project from a central server: find definitions and references, rename, diagnostics and more. Paths are your project's paths; lines and characters are 1-based.",
        )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&MAX_VERSION))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rmcp::model::{CallToolResult, ContentBlock};

    #[test]
    fn call_params_are_checked() {
        assert!(call_params(Some(serde_json::json!({"name": "x"}))).is_ok());
        assert_eq!(
            call_params(Some(
                serde_json::json!({"name": "x", "arguments": {"a": 1}})
            ))
            .map(|(_, a)| a),
            Ok(serde_json::json!({"a": 1}))
        );
        for bad in [
            None,
            Some(serde_json::json!([])),
            Some(serde_json::json!({})),
            Some(serde_json::json!({"name": 1})),
            Some(serde_json::json!({"name": "x", "arguments": [1]})),
        ] {
            assert_eq!(
                call_params(bad).map_err(|e| e.code),
                Err(codes::INVALID_PARAMS)
            );
        }
    }

    #[test]
    fn tool_results_keep_mcp_shape() {
        let ok = tool_result(Ok(crate::ToolOutput {
            text: "hi".into(),
            structured: serde_json::json!({"n": 1}),
        }));
        assert_eq!(ok["content"][0]["text"], "hi");
        assert_eq!(ok["structuredContent"]["n"], 1);
        assert_ne!(ok["isError"], true);
        let err = tool_result(Err(ToolError::Cancelled));
        assert_eq!(err["isError"], true);
    }

    #[test]
    fn tool_results_as_text_are_the_same_results() {
        let structured = serde_json::json!({"n": 1, "list": [1, "two"], "s": "a\"b"});
        let output = crate::ToolOutput {
            text: "hi \"there\"\n".into(),
            structured: structured.clone(),
        };
        let as_text = crate::ToolOutputText {
            text: output.text.clone(),
            structured: serde_json::value::to_raw_value(&structured).unwrap(),
        };
        let text = tool_result_text(Ok(as_text)).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(text.get()).unwrap(),
            tool_result(Ok(output))
        );
        let text = tool_result_text(Err(ToolError::Cancelled)).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(text.get()).unwrap(),
            tool_result(Err(ToolError::Cancelled))
        );
    }

    #[test]
    fn tool_results_keep_rmcp_shape() {
        let output = crate::ToolOutput {
            text: "hi".into(),
            structured: serde_json::json!({"n": 1, "list": [1, "two"]}),
        };
        let mut rmcp_ok = CallToolResult::success(vec![ContentBlock::text(output.text.clone())]);
        rmcp_ok.structured_content = Some(output.structured.clone());
        assert_eq!(
            tool_result(Ok(output)),
            serde_json::to_value(rmcp_ok).unwrap()
        );
        let error = ToolError::Cancelled;
        let rmcp_err = CallToolResult::error(vec![ContentBlock::text(error.to_text())]);
        assert_eq!(
            tool_result(Err(error)),
            serde_json::to_value(rmcp_err).unwrap()
        );
    }
}
