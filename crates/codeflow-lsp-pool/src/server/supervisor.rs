//! The supervisor: one task per managed server that starts an instance, watches it, restarts
//! it with backoff, gives up, or stops it when cancelled or idle.

use super::*;

impl ManagedServer {
    /// Start a supervisor unless one is running, or the server failed recently (a failure is
    /// sticky for `crash_window`, so a broken server is not restarted by every request).
    pub(crate) fn ensure_started(self: &Arc<Self>) {
        if self.shared.closed.load(Ordering::SeqCst) {
            return;
        }
        let mut lc = self.lifecycle.lock();
        let startable = match &*self.phase.borrow() {
            Phase::Stopped => true,
            Phase::Failed { at, .. } => at.elapsed() >= self.timing().crash_window,
            Phase::Starting | Phase::Running(_) | Phase::Restarting | Phase::Stopping => false,
        };
        if !startable {
            return;
        }
        self.phase.send_replace(Phase::Starting);
        let cancel = CancellationToken::new();
        lc.cancel = cancel.clone();
        lc.stop_kind = StopKind::Forget;
        lc.task = Some(tokio::spawn(supervise(Arc::clone(self), cancel)));
    }

    /// The current connection, starting the server if needed and waiting while it starts or
    /// restarts. `dead` is a generation the caller saw die: wait for a newer one.
    pub(super) async fn connection(
        self: &Arc<Self>,
        dead: Option<u64>,
    ) -> Result<Arc<Connection>, LspError> {
        let mut rx = self.phase.subscribe();
        loop {
            let phase = rx.borrow_and_update().clone();
            match phase {
                Phase::Running(conn) if Some(conn.generation) != dead => return Ok(conn),
                Phase::Stopped => {
                    if self.shared.closed.load(Ordering::SeqCst) {
                        return Err(LspError::PoolShutDown);
                    }
                    self.ensure_started();
                    continue;
                }
                Phase::Failed { error, at } => {
                    if self.shared.closed.load(Ordering::SeqCst) {
                        return Err(LspError::PoolShutDown);
                    }
                    if at.elapsed() < self.timing().crash_window {
                        return Err(error);
                    }
                    self.ensure_started();
                    continue;
                }
                Phase::Running(_) | Phase::Starting | Phase::Restarting | Phase::Stopping => {}
            }
            rx.changed().await.map_err(|_| LspError::PoolShutDown)?;
        }
    }

    /// Wait until the server is running (or failed), bounded.
    pub(crate) async fn wait_running(self: &Arc<Self>, limit: Duration) -> Result<(), LspError> {
        match tokio::time::timeout(limit, self.connection(None)).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(LspError::StartFailed {
                server: self.server_id.clone(),
                reason: format!("not running within {limit:?}"),
            }),
        }
    }

    /// Publish a new instance: re-open documents, then make it current.
    pub(super) fn go_live(&self, conn: &Arc<Connection>) {
        let docs = self.documents.lock();
        self.diagnostics.clear();
        for (uri, doc) in &docs.open {
            let _gone = conn.notify::<DidOpenTextDocument>(did_open(uri, doc));
        }
        for deferred in self.deferred.lock().drain(..) {
            deferred(conn);
        }
        self.phase.send_replace(Phase::Running(Arc::clone(conn)));
    }

    pub(super) fn fail(&self, error: LspError) {
        tracing::warn!(project = %self.project, server = %self.server_id, "{error}");
        self.stats.lock().last_error = Some(error.to_string());
        self.phase.send_replace(Phase::Failed {
            error,
            at: Instant::now(),
        });
    }

    /// Count a crash; `Some(GaveUp)` when the window is full.
    pub(super) fn record_crash(&self, reason: String) -> Option<LspError> {
        let window = self.timing().crash_window;
        let mut stats = self.stats.lock();
        let now = Instant::now();
        stats.crashes += 1;
        stats.crash_times.push_back(now);
        while stats
            .crash_times
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            stats.crash_times.pop_front();
        }
        stats.last_error = Some(reason.clone());
        let in_window = u32::try_from(stats.crash_times.len()).unwrap_or(u32::MAX);
        drop(stats);
        m::record_crash(&self.language);
        (in_window >= self.timing().max_crashes.max(1)).then(|| {
            m::record_give_up(&self.language);
            LspError::GaveUp {
                server: self.server_id.clone(),
                crashes: in_window,
                window,
                last_reason: reason,
            }
        })
    }

    pub(super) fn finish_stop(&self, kind: StopKind) {
        if kind == StopKind::Forget {
            self.documents.lock().open.clear();
            self.diagnostics.clear();
        }
        self.phase.send_replace(Phase::Stopped);
    }

    /// Stop the supervisor (orderly shutdown of the instance) and wait for it.
    pub(crate) async fn stop(&self, kind: StopKind) {
        let task = {
            let mut lc = self.lifecycle.lock();
            lc.stop_kind = kind;
            lc.cancel.cancel();
            lc.task.take()
        };
        if let Some(task) = task {
            let _joined = task.await;
        }
        // A failed server has no supervisor; clear its failure so the next use starts afresh.
        self.phase.send_if_modified(|p| match p {
            Phase::Failed { .. } => {
                *p = Phase::Stopped;
                true
            }
            _ => false,
        });
        if kind == StopKind::Forget {
            self.documents.lock().open.clear();
        }
    }

    /// Stop only if nothing is pending and it was unused for `idle`. Returns whether it
    /// stopped.
    pub(crate) async fn stop_if_idle(&self, idle: Duration) -> bool {
        let active = matches!(
            &*self.phase.borrow(),
            Phase::Running(_) | Phase::Starting | Phase::Restarting
        );
        if !active
            || self.pending.load(Ordering::SeqCst) > 0
            || self.last_activity.lock().elapsed() < idle
        {
            return false;
        }
        tracing::info!(project = %self.project, server = %self.server_id, "stopping idle language server");
        self.stop(StopKind::Forget).await;
        true
    }

    /// Restart on request: stop, forget crash history, start, wait until running.
    pub(crate) async fn restart(self: &Arc<Self>) -> Result<(), LspError> {
        self.stop(StopKind::KeepDocuments).await;
        self.stats.lock().crash_times.clear();
        self.ensure_started();
        self.wait_running(self.initialize_limit()).await
    }

    /// Cancel the supervisor without waiting (used when the pool is dropped).
    pub(crate) fn abort(&self) {
        self.lifecycle.lock().cancel.cancel();
    }
}

/// The supervisor: start, watch, restart with backoff, give up, or stop when cancelled.
async fn supervise(server: Arc<ManagedServer>, cancel: CancellationToken) {
    let timing = server.shared.config.clone();
    let mut ever_ran = false;
    let mut backoff = timing.restart_backoff;
    loop {
        let generation = server.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let started = tokio::select! {
            () = cancel.cancelled() => {
                let kind = server.lifecycle.lock().stop_kind;
                server.finish_stop(kind);
                return;
            }
            started = Instance::start(
                Arc::clone(&server.ctx),
                &server.config,
                &server.root,
                generation,
                server.config.initialize_timeout.unwrap_or(timing.initialize_timeout),
            ) => started,
        };
        match started {
            Err(error) => {
                if !ever_ran {
                    // Nothing ever worked: tell the callers now instead of looping.
                    m::record_start_failure(&server.language);
                    server.fail(error);
                    return;
                }
                if let Some(gave_up) = server.record_crash(error.to_string()) {
                    server.fail(gave_up);
                    return;
                }
            }
            Ok(mut instance) => {
                ever_ran = true;
                server.stats.lock().starts += 1;
                m::record_start(&server.language);
                tracing::info!(
                    project = %server.project, server = %server.server_id,
                    pid = ?instance.conn.pid, generation, "language server running"
                );
                let running = m::RunningGuard::new(&server.language);
                server.go_live(&instance.conn);
                let outcome = tokio::select! {
                    () = cancel.cancelled() => None,
                    reason = instance.wait_death() => Some(reason),
                };
                let ran_for = instance.conn.started.elapsed();
                match outcome {
                    None => {
                        server.phase.send_replace(Phase::Stopping);
                        instance.stop(timing.shutdown_timeout).await;
                        drop(running);
                        let kind = server.lifecycle.lock().stop_kind;
                        server.finish_stop(kind);
                        return;
                    }
                    Some(reason) => {
                        drop(running);
                        instance.process.settle_stderr().await;
                        let tail = instance.process.stderr_tail();
                        tracing::warn!(
                            project = %server.project, server = %server.server_id,
                            "language server died: {reason}; stderr tail: {tail}"
                        );
                        if ran_for > timing.crash_window {
                            backoff = timing.restart_backoff;
                        }
                        if let Some(gave_up) = server.record_crash(reason) {
                            server.fail(gave_up);
                            return;
                        }
                    }
                }
            }
        }
        server.phase.send_replace(Phase::Restarting);
        server.stats.lock().restarts += 1;
        m::record_restart(&server.language);
        tokio::select! {
            () = cancel.cancelled() => {
                let kind = server.lifecycle.lock().stop_kind;
                server.finish_stop(kind);
                return;
            }
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(timing.restart_backoff_max);
    }
}
