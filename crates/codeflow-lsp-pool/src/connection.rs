//! One running instance of a language server: the process, the `async-lsp` main loop, the
//! handlers for the server's own requests, and request sending with known ids (for
//! `$/cancelRequest`).
//!
//! An instance lives from spawn to exit. Restarts make a new instance; what must survive a
//! restart (open documents, diagnostics, pending callers) lives in `server.rs`.

use std::collections::HashSet;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_lsp::router::Router;
use async_lsp::{AnyNotification, MainLoop, ResponseError, ServerSocket};
use futures::future::BoxFuture;
use lsp_types::notification::{Cancel, Exit, Initialized};
use lsp_types::request::Request;
use lsp_types::{
    ApplyWorkspaceEditResponse, CancelParams, ClientCapabilities, ConfigurationParams,
    InitializeParams, InitializeResult, InitializedParams, NumberOrString,
    PublishDiagnosticsParams, RegistrationParams, ServerCapabilities, ShowDocumentResult,
    ShowMessageRequestParams, UnregistrationParams, Url, WorkspaceFolder,
};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

use crate::config::ServerConfig;
use crate::documents::DiagnosticStore;
use crate::edit::{ApplyEditContext, EditHandlerSlot};
use crate::error::LspError;
use crate::listen::ListenerSlot;
use crate::process::{ServerProcess, resolve_command};
use crate::readiness::Readiness;

/// A request sender with the method fixed at compile time and params/result as JSON.
///
/// Stored as a plain fn pointer so a caller's request can be re-sent to the next instance
/// after a crash without keeping its types around.
pub(crate) type RawSend =
    fn(ServerSocket, Value) -> BoxFuture<'static, Result<Value, async_lsp::Error>>;

/// `R` with JSON params and result: same method on the wire, decoded by the caller.
struct Raw<R>(PhantomData<R>);

impl<R: Request> Request for Raw<R> {
    type Params = Value;
    type Result = Value;
    const METHOD: &'static str = R::METHOD;
}

fn send_raw<R: Request>(
    socket: ServerSocket,
    params: Value,
) -> BoxFuture<'static, Result<Value, async_lsp::Error>> {
    Box::pin(async move { socket.request::<Raw<R>>(params).await })
}

/// The sender for request type `R`.
pub(crate) fn raw_sender<R: Request>() -> RawSend {
    send_raw::<R>
}

/// Loopback event that ends the main loop (and with it the server's stdin).
struct StopLoop;

/// What the client side of the connection needs to answer the server.
pub(crate) struct ClientContext {
    pub(crate) server_id: String,
    pub(crate) project: String,
    pub(crate) root_uri: Url,
    pub(crate) settings: Option<Value>,
    pub(crate) diagnostics: Arc<DiagnosticStore>,
    pub(crate) edit_handler: Arc<EditHandlerSlot>,
    pub(crate) diagnostics_listener: Arc<ListenerSlot>,
    /// Whether this server's pushed diagnostics go to the listener (servers preferred for a
    /// few operations only keep theirs to themselves).
    pub(crate) publishes_diagnostics: bool,
}

/// Per-instance state the router updates.
struct RouterState {
    ctx: Arc<ClientContext>,
    readiness: Arc<Readiness>,
    registrations: Arc<Mutex<HashSet<String>>>,
}

/// An initialized (or initializing) connection to one server instance.
pub(crate) struct Connection {
    /// Increases by one per instance of the same managed server.
    pub(crate) generation: u64,
    socket: ServerSocket,
    /// The id the main loop will give the next outgoing request (it counts from 0 in queue
    /// order; every request goes through `call`, which holds this lock while queueing).
    next_id: Mutex<i32>,
    capabilities: OnceLock<(ServerCapabilities, Value)>,
    pub(crate) readiness: Arc<Readiness>,
    registrations: Arc<Mutex<HashSet<String>>>,
    pub(crate) pid: Option<u32>,
    pub(crate) started: Instant,
}

/// Sends `$/cancelRequest` if the request future is dropped before its answer arrived.
struct CancelOnDrop {
    socket: ServerSocket,
    id: i32,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            tracing::debug!(id = self.id, "cancelling request");
            // Fails only when the main loop is gone, and then there is nothing to cancel.
            let _ignored = self.socket.notify::<Cancel>(CancelParams {
                id: NumberOrString::Number(self.id),
            });
        }
    }
}

impl Connection {
    /// Queue a request and return a future for its answer. Dropping the future before it
    /// completes cancels the request on the server.
    pub(crate) fn call(
        &self,
        send: RawSend,
        params: Value,
    ) -> impl Future<Output = Result<Value, async_lsp::Error>> + Send + 'static {
        let (id, fut) = {
            let mut next = self.next_id.lock();
            let id = *next;
            *next = next.wrapping_add(1);
            let mut fut = send(self.socket.clone(), params);
            // The first poll queues the request to the main loop; doing it under the lock keeps
            // our count equal to the id the main loop assigns. The waker is replaced on the
            // next poll by the caller's own.
            let mut cx = Context::from_waker(futures::task::noop_waker_ref());
            if let Poll::Ready(done) = fut.as_mut().poll(&mut cx) {
                fut = Box::pin(std::future::ready(done));
            }
            (id, fut)
        };
        let guard = CancelOnDrop {
            socket: self.socket.clone(),
            id,
            armed: true,
        };
        async move {
            // Bind the whole guard inside the future (a closure would capture only the field
            // and drop the guard, cancelling at once).
            let mut guard = guard;
            let result = fut.await;
            guard.armed = false;
            result
        }
    }

    /// Send a notification (queued; fails only when the instance is gone).
    pub(crate) fn notify<N: lsp_types::notification::Notification>(
        &self,
        params: N::Params,
    ) -> Result<(), async_lsp::Error> {
        self.socket.notify::<N>(params)
    }

    pub(crate) fn capabilities(&self) -> ServerCapabilities {
        self.capabilities
            .get()
            .map(|(c, _)| c.clone())
            .unwrap_or_default()
    }

    /// Does the server offer what `method` needs (statically, or by dynamic registration)?
    /// `None` when the method has no capability to check.
    pub(crate) fn missing_capability(&self, method: &str) -> Option<&'static str> {
        let field = capability_field(method)?;
        if self.registrations.lock().contains(method) {
            return None;
        }
        let provided = self
            .capabilities
            .get()
            .and_then(|(_, json)| json.get(field))
            .is_some_and(|v| !matches!(v, Value::Null | Value::Bool(false)));
        (!provided).then_some(field)
    }

    pub(crate) fn supports_pull_diagnostics(&self) -> bool {
        self.missing_capability("textDocument/diagnostic").is_none()
    }
}

/// The capability field in `ServerCapabilities` that a request method needs.
fn capability_field(method: &str) -> Option<&'static str> {
    Some(match method {
        "textDocument/definition" => "definitionProvider",
        "textDocument/declaration" => "declarationProvider",
        "textDocument/typeDefinition" => "typeDefinitionProvider",
        "textDocument/implementation" => "implementationProvider",
        "textDocument/references" => "referencesProvider",
        "textDocument/hover" => "hoverProvider",
        "textDocument/completion" => "completionProvider",
        "textDocument/signatureHelp" => "signatureHelpProvider",
        "textDocument/documentSymbol" => "documentSymbolProvider",
        "workspace/symbol" => "workspaceSymbolProvider",
        "textDocument/codeAction" => "codeActionProvider",
        "textDocument/formatting" => "documentFormattingProvider",
        "textDocument/rangeFormatting" => "documentRangeFormattingProvider",
        "textDocument/rename" | "textDocument/prepareRename" => "renameProvider",
        "textDocument/prepareCallHierarchy" => "callHierarchyProvider",
        "textDocument/diagnostic" => "diagnosticProvider",
        "workspace/executeCommand" => "executeCommandProvider",
        "textDocument/foldingRange" => "foldingRangeProvider",
        "textDocument/semanticTokens/full" => "semanticTokensProvider",
        "textDocument/inlayHint" => "inlayHintProvider",
        _ => return None,
    })
}

/// A spawned, initialized server instance: the connection plus what must be stopped.
pub(crate) struct Instance {
    pub(crate) conn: Arc<Connection>,
    pub(crate) process: ServerProcess,
    mainloop: JoinHandle<Result<(), async_lsp::Error>>,
}

impl Instance {
    /// Spawn the server and run `initialize`/`initialized`.
    pub(crate) async fn start(
        ctx: Arc<ClientContext>,
        config: &ServerConfig,
        root: &Path,
        generation: u64,
        initialize_timeout: Duration,
    ) -> Result<Self, LspError> {
        let server = ctx.server_id.clone();
        let program = resolve_command(&server, config)?;
        let (process, pipes) = ServerProcess::spawn(&server, &program, config, root)?;
        let readiness = Arc::new(Readiness::new(
            config.wait_for_quiescence,
            config.ready_after_log.clone(),
        ));
        let registrations = Arc::new(Mutex::new(HashSet::new()));
        let state = RouterState {
            ctx: Arc::clone(&ctx),
            readiness: Arc::clone(&readiness),
            registrations: Arc::clone(&registrations),
        };
        let (mainloop, socket) = MainLoop::new_client(|_server| build_router(state));
        let span =
            tracing::debug_span!("lsp", project = %ctx.project, server = %server, generation);
        let mainloop = tokio::spawn(tracing::Instrument::instrument(
            mainloop.run_buffered(pipes.stdout.compat(), pipes.stdin.compat_write()),
            span,
        ));
        let conn = Arc::new(Connection {
            generation,
            socket,
            next_id: Mutex::new(0),
            capabilities: OnceLock::new(),
            readiness,
            registrations,
            pid: process.pid(),
            started: Instant::now(),
        });
        let mut instance = Self {
            conn,
            process,
            mainloop,
        };
        match instance
            .initialize(&ctx, config, root, initialize_timeout)
            .await
        {
            Ok(()) => Ok(instance),
            Err(reason) => {
                instance.process.kill_and_reap().await;
                instance.process.settle_stderr().await;
                let tail = instance.process.stderr_tail();
                instance.mainloop.abort();
                let reason = if tail.is_empty() {
                    reason
                } else {
                    format!("{reason}; stderr: {tail}")
                };
                Err(LspError::StartFailed { server, reason })
            }
        }
    }

    async fn initialize(
        &mut self,
        ctx: &ClientContext,
        config: &ServerConfig,
        root: &Path,
        limit: Duration,
    ) -> Result<(), String> {
        let params = initialize_params(ctx, config, root);
        let params = serde_json::to_value(params).map_err(|e| e.to_string())?;
        let call = self
            .conn
            .call(raw_sender::<lsp_types::request::Initialize>(), params);
        let answer = tokio::select! {
            answer = tokio::time::timeout(limit, call) => answer,
            // A server that dies before answering: report how, rather than a bare "stopped".
            status = self.process.wait() => {
                return Err(match status {
                    Ok(s) => format!("exited before answering initialize ({s})"),
                    Err(e) => format!("could not wait for the process: {e}"),
                });
            }
        };
        let value = match answer {
            Err(_elapsed) => return Err(format!("no answer to initialize within {limit:?}")),
            Ok(Ok(value)) => value,
            Ok(Err(async_lsp::Error::ServiceStopped)) => {
                // The main loop ended first. Bytes that are not LSP explain it best; at EOF,
                // the process's exit does.
                let ended = tokio::time::timeout(Duration::from_secs(1), &mut self.mainloop).await;
                if let Ok(Ok(Err(
                    e @ (async_lsp::Error::Protocol(_) | async_lsp::Error::Deserialize(_)),
                ))) = ended
                {
                    return Err(format!(
                        "did not speak LSP before initialize completed: {e}"
                    ));
                }
                if let Ok(Ok(status)) =
                    tokio::time::timeout(Duration::from_millis(500), self.process.wait()).await
                {
                    return Err(format!("exited before answering initialize ({status})"));
                }
                return Err("closed its output before answering initialize".to_owned());
            }
            Ok(Err(e)) => return Err(format!("initialize failed: {e}")),
        };
        let result: InitializeResult = serde_json::from_value(value.clone())
            .map_err(|e| format!("invalid initialize result: {e}"))?;
        let caps_json = value.get("capabilities").cloned().unwrap_or(Value::Null);
        let _already_set = self.conn.capabilities.set((result.capabilities, caps_json));
        self.conn
            .notify::<Initialized>(InitializedParams {})
            .map_err(|e| format!("could not send initialized: {e}"))?;
        Ok(())
    }

    /// Wait until the instance ends on its own (exit, broken pipe, protocol garbage) and
    /// return why. The process group is killed and reaped before this returns.
    pub(crate) async fn wait_death(&mut self) -> String {
        let reason = tokio::select! {
            ended = &mut self.mainloop => match ended {
                Ok(Ok(())) => "connection closed".to_owned(),
                Ok(Err(e)) => format!("connection lost: {e}"),
                Err(join) => format!("connection task failed: {join}"),
            },
            status = self.process.wait() => match status {
                Ok(s) => format!("process exited ({s})"),
                Err(e) => format!("process wait failed: {e}"),
            },
        };
        self.process.kill_and_reap().await;
        self.mainloop.abort();
        reason
    }

    /// Orderly stop: `shutdown`, `exit`, close stdin, wait; then kill the group if it lingers
    /// (jedi and `tsc --lsp` exit only when stdin closes, some not even then).
    pub(crate) async fn stop(mut self, limit: Duration) {
        if self.process.try_status().is_none() {
            let shutdown = self
                .conn
                .call(raw_sender::<lsp_types::request::Shutdown>(), Value::Null);
            let _answer_or_timeout = tokio::time::timeout(limit, shutdown).await;
            let _gone = self.conn.notify::<Exit>(());
            // Ending the main loop drops its writer, which closes the server's stdin. The
            // `exit` above is queued before this event and flushed first.
            let _gone = self.conn.socket.emit(StopLoop);
            let _ended = tokio::time::timeout(limit, &mut self.mainloop).await;
            if tokio::time::timeout(limit, self.process.wait())
                .await
                .is_err()
            {
                tracing::debug!("server did not exit in time; killing its process group");
            }
        }
        self.process.kill_and_reap().await;
        self.mainloop.abort();
    }
}

fn initialize_params(ctx: &ClientContext, config: &ServerConfig, root: &Path) -> InitializeParams {
    let capabilities: ClientCapabilities = serde_json::from_value(json!({
        "workspace": {
            "applyEdit": true,
            "workspaceEdit": { "documentChanges": true, "resourceOperations": ["create", "rename", "delete"] },
            "configuration": true,
            "workspaceFolders": true,
            "didChangeConfiguration": { "dynamicRegistration": false },
            "symbol": { "dynamicRegistration": false },
            "executeCommand": { "dynamicRegistration": false },
            "fileOperations": { "willRename": true, "didRename": true, "didCreate": true, "didDelete": true }
        },
        "textDocument": {
            "synchronization": { "dynamicRegistration": false, "didSave": true },
            "publishDiagnostics": { "versionSupport": true, "relatedInformation": true },
            "diagnostic": { "dynamicRegistration": true, "relatedDocumentSupport": false },
            "definition": { "linkSupport": false },
            "declaration": { "linkSupport": false },
            "typeDefinition": { "linkSupport": false },
            "implementation": { "linkSupport": false },
            "references": {},
            "hover": { "contentFormat": ["markdown", "plaintext"] },
            "documentSymbol": { "hierarchicalDocumentSymbolSupport": true },
            "completion": { "completionItem": { "snippetSupport": false } },
            "signatureHelp": {},
            "codeAction": { "codeActionLiteralSupport": { "codeActionKind": { "valueSet": [
                "", "quickfix", "refactor", "refactor.extract", "refactor.inline",
                "refactor.rewrite", "source", "source.organizeImports"
            ] } } },
            "formatting": {},
            "rename": { "prepareSupport": true },
            "callHierarchy": {}
        },
        "window": { "workDoneProgress": true, "showMessage": {}, "showDocument": { "support": false } },
        "general": { "positionEncodings": ["utf-16"] },
        // rust-analyzer reports readiness through this when asked.
        "experimental": { "serverStatusNotification": true }
    }))
    .unwrap_or_default();
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ctx.project.clone());
    #[allow(deprecated)] // root_uri/root_path are deprecated in LSP but older servers need them
    InitializeParams {
        process_id: Some(std::process::id()),
        root_path: Some(root.to_string_lossy().into_owned()),
        root_uri: Some(ctx.root_uri.clone()),
        initialization_options: config.initialization_options.clone(),
        capabilities,
        workspace_folders: Some(vec![WorkspaceFolder {
            uri: ctx.root_uri.clone(),
            name,
        }]),
        client_info: Some(lsp_types::ClientInfo {
            name: "codeflow".to_owned(),
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        }),
        ..InitializeParams::default()
    }
}

/// Look `section` (dotted) up in the server's settings; `null` when absent.
fn lookup_section(settings: Option<&Value>, section: Option<&str>) -> Value {
    let Some(settings) = settings else {
        return Value::Null;
    };
    let Some(section) = section.filter(|s| !s.is_empty()) else {
        return settings.clone();
    };
    section
        .split('.')
        .try_fold(settings, |v, key| v.get(key))
        .cloned()
        .unwrap_or(Value::Null)
}

type Handled<T> = BoxFuture<'static, Result<T, ResponseError>>;

fn build_router(state: RouterState) -> Router<RouterState> {
    use lsp_types::request as req;
    let mut router = Router::new(state);
    router
        .request::<req::WorkspaceConfiguration, _>(|st, params: ConfigurationParams| {
            let answer: Vec<Value> = params
                .items
                .iter()
                .map(|item| lookup_section(st.ctx.settings.as_ref(), item.section.as_deref()))
                .collect();
            ready_ok(answer)
        })
        .request::<req::WorkDoneProgressCreate, _>(|_, _| ready_ok(()))
        .request::<req::RegisterCapability, _>(|st, params: RegistrationParams| {
            let mut regs = st.registrations.lock();
            for r in params.registrations {
                regs.insert(r.method);
            }
            ready_ok(())
        })
        .request::<req::UnregisterCapability, _>(|st, params: UnregistrationParams| {
            let mut regs = st.registrations.lock();
            for r in params.unregisterations {
                regs.remove(&r.method);
            }
            ready_ok(())
        })
        .request::<req::ApplyWorkspaceEdit, _>(|st, params| -> Handled<_> {
            let ctx = Arc::clone(&st.ctx);
            Box::pin(async move {
                let handler = ctx.edit_handler.get();
                let Some(handler) = handler else {
                    return Ok(ApplyWorkspaceEditResponse {
                        applied: false,
                        failure_reason: Some(
                            "this client applies no edits requested by the server".to_owned(),
                        ),
                        failed_change: None,
                    });
                };
                let edit_ctx = ApplyEditContext {
                    project: ctx.project.clone(),
                    server_id: ctx.server_id.clone(),
                };
                Ok(handler.apply_edit(edit_ctx, params).await)
            })
        })
        .request::<req::ShowMessageRequest, _>(|st, params: ShowMessageRequestParams| {
            // Nobody is there to click: log it and choose no action, which LSP allows.
            tracing::info!(server = %st.ctx.server_id, "server asked: {}", params.message);
            ready_ok(None)
        })
        .request::<req::WorkspaceFoldersRequest, _>(|st, _| {
            ready_ok(Some(vec![WorkspaceFolder {
                uri: st.ctx.root_uri.clone(),
                name: st.ctx.project.clone(),
            }]))
        })
        .request::<req::ShowDocument, _>(|_, _| ready_ok(ShowDocumentResult { success: false }))
        .request::<req::SemanticTokensRefresh, _>(|_, _| ready_ok(()))
        .request::<req::InlayHintRefreshRequest, _>(|_, _| ready_ok(()))
        .request::<req::CodeLensRefresh, _>(|_, _| ready_ok(()))
        .request::<req::WorkspaceDiagnosticRefresh, _>(|_, _| ready_ok(()))
        .request::<req::InlineValueRefreshRequest, _>(|_, _| ready_ok(()))
        // Every notification goes through the catch-all: a typed handler whose params fail to
        // decode would end the main loop, and an unknown notification must never do that.
        .unhandled_notification(on_notification)
        .event(|_, _: StopLoop| ControlFlow::Break(Ok(())))
        .unhandled_event(|_, _| ControlFlow::Continue(()));
    router
}

fn ready_ok<T: Send + 'static>(value: T) -> Handled<T> {
    Box::pin(std::future::ready(Ok(value)))
}

fn on_notification(
    st: &mut RouterState,
    notif: AnyNotification,
) -> ControlFlow<async_lsp::Result<()>> {
    match notif.method.as_str() {
        "$/progress" => st.readiness.on_progress(notif.params),
        "textDocument/publishDiagnostics" => {
            match serde_json::from_value::<PublishDiagnosticsParams>(notif.params) {
                Ok(p) => {
                    if let Some(listener) = st
                        .ctx
                        .diagnostics_listener
                        .get()
                        .filter(|_| st.ctx.publishes_diagnostics)
                    {
                        listener.on_diagnostics(&st.ctx.project, &st.ctx.server_id, &p);
                    }
                    st.ctx.diagnostics.publish(p);
                }
                Err(e) => tracing::debug!("ignoring malformed publishDiagnostics: {e}"),
            }
        }
        "experimental/serverStatus" => st.readiness.on_server_status(&notif.params),
        "window/logMessage" | "window/showMessage" => {
            let message = notif
                .params
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("");
            tracing::debug!(server = %st.ctx.server_id, "{}: {message}", notif.method);
            st.readiness.on_log(message);
        }
        other => tracing::trace!(server = %st.ctx.server_id, "ignoring notification {other}"),
    }
    ControlFlow::Continue(())
}
