//! The server's terminals: made, found, listed, closed; limits; the grace after the last
//! viewer leaves; shutdown.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::TerminalConfig;
use crate::error::TerminalError;
use crate::terminal::{Info, Terminal, Viewer};

/// What a new terminal runs, where.
#[derive(Debug, Clone)]
pub struct NewTerminal {
    /// The project it belongs to.
    pub project: String,
    /// The directory it starts in (the project's).
    pub dir: PathBuf,
    /// A command for the shell to run (`<shell> -c <command>`); `None` = an interactive shell.
    pub command: Option<String>,
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

/// Every terminal of the server.
#[derive(Clone)]
pub struct Terminals {
    inner: Arc<Inner>,
}

struct Inner {
    config: TerminalConfig,
    /// The runtime terminals' tasks and I/O run on (its own threads, so that load elsewhere
    /// in the server does not delay keystrokes).
    runtime: tokio::runtime::Handle,
    terminals: Mutex<HashMap<String, Arc<Terminal>>>,
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Terminals {
    /// No terminals yet; their tasks and PTYs live on `runtime`.
    pub fn new(config: TerminalConfig, runtime: tokio::runtime::Handle) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                runtime,
                terminals: Mutex::default(),
                tracker: TaskTracker::new(),
                stop: CancellationToken::new(),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &TerminalConfig {
        &self.inner.config
    }

    /// The runtime terminals run on: a viewer's socket is best served there too.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.inner.runtime
    }

    /// Starts a terminal; its grace runs until a first viewer attaches.
    pub fn create(&self, spec: &NewTerminal) -> Result<Arc<Terminal>, TerminalError> {
        let inner = &self.inner;
        if inner.stop.is_cancelled() {
            return Err(TerminalError::ShuttingDown);
        }
        let mut terminals = inner.terminals.lock();
        let live = terminals.values().filter(|t| !t.exited());
        let (total, of_project) = live.fold((0, 0), |(all, mine), t| {
            (all + 1, mine + usize::from(t.project() == spec.project))
        });
        if total >= inner.config.max_total {
            return Err(TerminalError::Limit {
                what: "on this server",
                limit: inner.config.max_total,
            });
        }
        if of_project >= inner.config.max_per_project {
            return Err(TerminalError::Limit {
                what: "in this project",
                limit: inner.config.max_per_project,
            });
        }
        let id = format!("t-{}", uuid_like());
        // The PTY and the child are registered with the terminals' runtime.
        let _runtime = inner.runtime.enter();
        let terminal = Terminal::start(
            &inner.config,
            spec,
            id.clone(),
            &inner.tracker,
            inner.stop.child_token(),
        )
        .map_err(|e| TerminalError::Spawn(e.to_string()))?;
        terminals.insert(id, terminal.clone());
        drop(terminals);
        self.start_grace(&terminal, 0);
        tracing::info!(terminal = %terminal.id(), project = %spec.project, "terminal started");
        Ok(terminal)
    }

    /// The terminal of this id.
    pub fn get(&self, id: &str) -> Result<Arc<Terminal>, TerminalError> {
        self.inner
            .terminals
            .lock()
            .get(id)
            .cloned()
            .ok_or_else(|| TerminalError::NotFound(id.to_owned()))
    }

    /// The terminals of `project`, oldest first.
    pub fn list(&self, project: &str) -> Vec<Info> {
        let mut list: Vec<Info> = self
            .inner
            .terminals
            .lock()
            .values()
            .filter(|t| t.project() == project)
            .map(|t| t.info())
            .collect();
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        list
    }

    /// Kills the terminal's whole session of processes and forgets it.
    pub fn close(&self, id: &str) -> Result<(), TerminalError> {
        let terminal = self
            .inner
            .terminals
            .lock()
            .remove(id)
            .ok_or_else(|| TerminalError::NotFound(id.to_owned()))?;
        terminal.kill();
        tracing::info!(terminal = %id, "terminal closed");
        Ok(())
    }

    /// Attaches a viewer to the terminal (it stops the grace).
    pub fn attach(&self, id: &str) -> Result<Viewer, TerminalError> {
        let terminal = self.get(id)?;
        let this = self.clone();
        let t = terminal.clone();
        terminal.attach(
            self.inner.config.max_viewers,
            Box::new(move || {
                let epoch = {
                    let mut state = t.state.lock();
                    state.viewers = state.viewers.saturating_sub(1);
                    state.epoch += 1;
                    (state.viewers == 0).then_some(state.epoch)
                };
                if let Some(epoch) = epoch {
                    this.start_grace(&t, epoch);
                }
            }),
        )
    }

    /// After the grace, a terminal still without viewers (and unchanged since `epoch`) is
    /// killed and forgotten.
    fn start_grace(&self, terminal: &Arc<Terminal>, epoch: u64) {
        let inner = self.inner.clone();
        let terminal = terminal.clone();
        let grace = self.inner.config.grace;
        let runtime = self.inner.runtime.clone();
        self.inner.tracker.spawn_on(async move {
            tokio::select! {
                () = tokio::time::sleep(grace) => {}
                () = inner.stop.cancelled() => return,
            }
            let expired = {
                let state = terminal.state.lock();
                state.viewers == 0 && state.epoch == epoch
            };
            if expired {
                let mut terminals = inner.terminals.lock();
                if terminals
                    .get(terminal.id())
                    .is_some_and(|t| Arc::ptr_eq(t, &terminal))
                {
                    terminals.remove(terminal.id());
                }
                drop(terminals);
                terminal.kill();
                tracing::info!(terminal = %terminal.id(), "terminal's grace ran out without a viewer; killed");
            }
        }, &runtime);
    }

    /// Kills every terminal and waits (at most `limit`) for their tasks.
    pub async fn shutdown(&self, limit: Duration) {
        self.inner.stop.cancel();
        self.inner.terminals.lock().clear();
        self.inner.tracker.close();
        let _ = tokio::time::timeout(limit, self.inner.tracker.wait()).await;
    }
}

/// 128 random bits, hex.
fn uuid_like() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
