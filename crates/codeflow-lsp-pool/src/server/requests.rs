//! Requests and notifications to whatever instance is current, replayed on the next instance
//! when one dies mid-request (unless the request acts).

use super::*;

/// Counts a request as pending (blocks idle shutdown) and stamps activity when it ends.
struct ActivityGuard<'a>(&'a ManagedServer);

impl<'a> ActivityGuard<'a> {
    fn new(server: &'a ManagedServer) -> Self {
        server.pending.fetch_add(1, Ordering::SeqCst);
        Self(server)
    }
}

impl Drop for ActivityGuard<'_> {
    fn drop(&mut self) {
        *self.0.last_activity.lock() = Instant::now();
        self.0.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ManagedServer {
    /// Send a request (JSON in and out), replaying it on the next instance if this one dies.
    pub(crate) async fn request_value(
        self: &Arc<Self>,
        method: &'static str,
        send: RawSend,
        params: Value,
    ) -> Result<Value, LspError> {
        let _activity = ActivityGuard::new(self);
        let started = Instant::now();
        let limit = self.timing().request_timeout;
        let result =
            match tokio::time::timeout(limit, self.request_inner(method, send, params)).await {
                Ok(result) => result,
                Err(_) => Err(LspError::Timeout {
                    server: self.server_id.clone(),
                    method: method.to_owned(),
                    after: limit,
                }),
            };
        m::record_request(&self.language, method, result.is_ok(), started.elapsed());
        result
    }

    pub(super) async fn request_inner(
        self: &Arc<Self>,
        method: &'static str,
        send: RawSend,
        params: Value,
    ) -> Result<Value, LspError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| LspError::PoolShutDown)?;
        let mut dead = None;
        let mut busy_retries = 0u32;
        loop {
            let conn = self.connection(dead).await?;
            if let Some(capability) = conn.missing_capability(method) {
                return Err(LspError::CapabilityMissing {
                    server: self.server_id.clone(),
                    capability: capability.to_owned(),
                    method: method.to_owned(),
                });
            }
            conn.readiness.wait(self.timing().readiness_timeout).await;
            self.wait_parsed(&params).await;
            match conn.call(send, params.clone()).await {
                Ok(value) => return Ok(value),
                // rust-analyzer and others answer these while (re)indexing: ask again.
                Err(async_lsp::Error::Response(e))
                    if (e.code == ErrorCode::CONTENT_MODIFIED
                        || e.code == ErrorCode::SERVER_CANCELLED)
                        && busy_retries < 5 =>
                {
                    busy_retries += 1;
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(busy_retries))).await;
                }
                Err(async_lsp::Error::Response(e)) => {
                    return Err(LspError::ServerError {
                        server: self.server_id.clone(),
                        method: method.to_owned(),
                        code: e.code.0,
                        message: e.message,
                    });
                }
                Err(async_lsp::Error::Deserialize(e)) => {
                    return Err(LspError::InvalidResponse {
                        server: self.server_id.clone(),
                        method: method.to_owned(),
                        reason: e.to_string(),
                    });
                }
                Err(other) if acts(method) => {
                    // It may have acted before the instance died: running it again could act
                    // twice. The caller decides.
                    tracing::info!(server = %self.server_id, method, "not replaying after: {other}");
                    return Err(LspError::Interrupted {
                        server: self.server_id.clone(),
                        method: method.to_owned(),
                    });
                }
                Err(other) => {
                    // The instance went away with the request unanswered: send it again to
                    // the next one. This future is the only place the answer can go, so the
                    // caller still gets exactly one.
                    tracing::debug!(server = %self.server_id, method, "replaying after: {other}");
                    dead = Some(conn.generation);
                }
            }
        }
    }

    /// Send a notification to the current instance (starting it if needed).
    pub(crate) async fn notify_value<N: Notification>(
        self: &Arc<Self>,
        params: N::Params,
    ) -> Result<(), LspError> {
        let conn = self.connection(None).await?;
        conn.notify::<N>(params).map_err(|e| LspError::StartFailed {
            server: self.server_id.clone(),
            reason: format!("instance went away: {e}"),
        })
    }

    pub(super) fn current_connection(&self) -> Option<Arc<Connection>> {
        match &*self.phase.borrow() {
            Phase::Running(conn) => Some(Arc::clone(conn)),
            _ => None,
        }
    }

    // ---- documents ------------------------------------------------------------------------

    pub(crate) async fn capabilities(self: &Arc<Self>) -> Result<ServerCapabilities, LspError> {
        Ok(self.connection(None).await?.capabilities())
    }

    pub(crate) async fn wait_ready(self: &Arc<Self>, limit: Duration) -> Result<bool, LspError> {
        let conn = self.connection(None).await?;
        Ok(conn.readiness.wait(limit).await)
    }
}

/// Requests that make the server act (run a command that may edit files through
/// `workspace/applyEdit`) rather than answer a question. Every other request only computes an
/// answer, so replaying it on a new instance is safe; these are not replayed.
fn acts(method: &str) -> bool {
    method == "workspace/executeCommand"
}
