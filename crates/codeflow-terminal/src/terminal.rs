//! One terminal: its shell on a PTY, the tasks that pump the PTY, its scrollback, and the
//! viewers watching it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::control::{Control, signal};
use crate::process::{self, Started};
use crate::scrollback::Scrollback;

/// What a viewer receives.
#[derive(Debug, Clone)]
pub enum Event {
    /// Bytes the terminal wrote.
    Output(Bytes),
    /// The shell exited with this code; nothing follows.
    Exit(i32),
}

/// What `terminals/list` says of a terminal.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// The terminal's id.
    pub id: String,
    /// The project it runs in.
    pub project: String,
    /// Its command (`null`: the interactive shell).
    pub command: Option<String>,
    /// Current columns.
    pub cols: u16,
    /// Current rows.
    pub rows: u16,
    /// When it was made, in ms since the Unix epoch.
    pub created_at: u64,
    /// Viewers attached now.
    pub viewers: usize,
    /// Whether its shell has exited.
    pub exited: bool,
    /// The shell's exit code, once exited.
    pub exit_code: Option<i32>,
}

enum Input {
    Data(Bytes),
    Resize(u16, u16),
}

pub(crate) struct State {
    scrollback: Scrollback,
    pub(crate) exited: Option<i32>,
    pub(crate) viewers: usize,
    size: (u16, u16),
    /// Bumped whenever the viewer count changes; a grace timer acts only if it is unchanged.
    pub(crate) epoch: u64,
}

/// A running (or exited) terminal.
pub struct Terminal {
    id: String,
    project: String,
    command: Option<String>,
    created_at: u64,
    leader: i32,
    pub(crate) state: Mutex<State>,
    events: broadcast::Sender<Event>,
    input: mpsc::Sender<Input>,
    stop: CancellationToken,
}

/// Largest chunk read from the PTY at once (and sent as one binary frame).
const READ_CHUNK: usize = 16 * 1024;
/// Inputs queued for the PTY before a viewer's writes wait.
const INPUT_QUEUE: usize = 256;

impl Terminal {
    /// Starts the shell and the tasks that serve it (on `tracker`, stopped by `stop`).
    pub(crate) fn start(
        config: &crate::TerminalConfig,
        spec: &crate::NewTerminal,
        id: String,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> std::io::Result<Arc<Self>> {
        let Started {
            pty,
            mut child,
            leader,
            reaper,
        } = process::start(
            config,
            &id,
            &spec.dir,
            spec.command.as_deref(),
            spec.cols,
            spec.rows,
        )?;
        let (mut reader, mut writer) = pty.into_split();
        let (events, _) = broadcast::channel(config.viewer_queue.max(16));
        let (input, mut inputs) = mpsc::channel(INPUT_QUEUE);
        let terminal = Arc::new(Self {
            id,
            project: spec.project.clone(),
            command: spec.command.clone(),
            created_at: now_ms(),
            leader,
            state: Mutex::new(State {
                scrollback: Scrollback::new(config.scrollback_bytes),
                exited: None,
                viewers: 0,
                size: (spec.cols, spec.rows),
                epoch: 0,
            }),
            events,
            input,
            stop,
        });
        metrics::gauge!("codeflow_terminals_live").increment(1.0);
        let (code_tx, mut code_rx) = watch::channel(None::<i32>);

        // The shell: wait for it, or kill its session when stopped; either way nothing it
        // started outlives it.
        let t = terminal.clone();
        tracker.spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status.ok(),
                () = t.stop.cancelled() => None,
            };
            let leader = t.leader;
            let _ = tokio::task::spawn_blocking(move || process::kill_session(leader)).await;
            // Killed in order: its reaper has nothing left to do.
            drop(reaper);
            let status = match status {
                Some(s) => Some(s),
                None => child.wait().await.ok(),
            };
            let code = status.map_or(-1, |s| {
                use std::os::unix::process::ExitStatusExt;
                s.code()
                    .or_else(|| s.signal().map(|n| 128 + n))
                    .unwrap_or(-1)
            });
            let _ = code_tx.send(Some(code));
            // The reader publishes the exit after the last output; if it is stuck, do it here.
            tokio::time::sleep(Duration::from_secs(2)).await;
            t.finish(code);
        });

        // PTY → scrollback and viewers.
        let t = terminal.clone();
        tracker.spawn(async move {
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => t.output(&buf[..n]),
                }
            }
            let code = loop {
                if let Some(code) = *code_rx.borrow_and_update() {
                    break code;
                }
                if code_rx.changed().await.is_err() {
                    break -1;
                }
            };
            t.finish(code);
        });

        // Viewers → PTY.
        let t = terminal.clone();
        tracker.spawn(async move {
            loop {
                let next = tokio::select! {
                    next = inputs.recv() => next,
                    () = t.stop.cancelled() => None,
                };
                match next {
                    None => break,
                    Some(Input::Data(bytes)) => {
                        metrics::counter!("codeflow_terminal_bytes_total", "direction" => "in")
                            .increment(bytes.len() as u64);
                        if writer.write_all(&bytes).await.is_err() {
                            break;
                        }
                        let _ = writer.flush().await;
                    }
                    Some(Input::Resize(cols, rows)) => {
                        let _ = writer.resize(pty_process::Size::new(rows, cols));
                    }
                }
            }
        });
        Ok(terminal)
    }

    /// The terminal's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The project it runs in.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// Whether its shell has exited.
    pub fn exited(&self) -> bool {
        self.state.lock().exited.is_some()
    }

    /// What `terminals/list` shows.
    pub fn info(&self) -> Info {
        let state = self.state.lock();
        Info {
            id: self.id.clone(),
            project: self.project.clone(),
            command: self.command.clone(),
            cols: state.size.0,
            rows: state.size.1,
            created_at: self.created_at,
            viewers: state.viewers,
            exited: state.exited.is_some(),
            exit_code: state.exited,
        }
    }

    /// Kills the terminal's processes (its viewers then get `exit`).
    pub fn kill(&self) {
        self.stop.cancel();
    }

    fn output(&self, bytes: &[u8]) {
        metrics::counter!("codeflow_terminal_bytes_total", "direction" => "out")
            .increment(bytes.len() as u64);
        let mut state = self.state.lock();
        state.scrollback.push(bytes);
        // No viewer is not an error: the scrollback keeps it.
        let _ = self
            .events
            .send(Event::Output(Bytes::copy_from_slice(bytes)));
    }

    fn finish(&self, code: i32) {
        let mut state = self.state.lock();
        if state.exited.is_none() {
            state.exited = Some(code);
            let _ = self.events.send(Event::Exit(code));
            metrics::gauge!("codeflow_terminals_live").decrement(1.0);
        }
    }

    /// Attaches a viewer: the scrollback (as chunks), then every event after it.
    pub(crate) fn attach(
        self: &Arc<Self>,
        max_viewers: usize,
        on_leave: Box<dyn FnOnce() + Send + Sync>,
    ) -> Result<Viewer, crate::TerminalError> {
        let mut state = self.state.lock();
        if state.viewers >= max_viewers {
            return Err(crate::TerminalError::Limit {
                what: "viewing this terminal",
                limit: max_viewers,
            });
        }
        state.viewers += 1;
        state.epoch += 1;
        Ok(Viewer {
            terminal: self.clone(),
            backlog: state.scrollback.chunks(64 * 1024),
            exited: state.exited,
            events: self.events.subscribe(),
            on_leave: Some(on_leave),
        })
    }
}

/// One viewer of a terminal. Dropping it detaches it (the grace starts after the last).
pub struct Viewer {
    terminal: Arc<Terminal>,
    /// The scrollback at attach time, to send before anything else.
    pub backlog: Vec<Bytes>,
    /// The exit code if the shell had exited at attach time (then no event follows).
    pub exited: Option<i32>,
    events: broadcast::Receiver<Event>,
    on_leave: Option<Box<dyn FnOnce() + Send + Sync>>,
}

/// A viewer fell behind the terminal's output by more than its queue.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the viewer fell {0} chunks behind the terminal's output")]
pub struct Lagged(pub u64);

impl Viewer {
    /// The terminal it views.
    pub fn terminal(&self) -> &Arc<Terminal> {
        &self.terminal
    }

    /// The next event; `Ok(None)` once the terminal is gone.
    pub async fn next(&mut self) -> Result<Option<Event>, Lagged> {
        match self.events.recv().await {
            Ok(event) => Ok(Some(event)),
            Err(broadcast::error::RecvError::Closed) => Ok(None),
            Err(broadcast::error::RecvError::Lagged(n)) => Err(Lagged(n)),
        }
    }

    /// Keystrokes (or pasted bytes) for the terminal; waits while its input queue is full.
    /// `false` when the terminal no longer takes input.
    pub async fn write(&self, bytes: Bytes) -> bool {
        self.terminal.input.send(Input::Data(bytes)).await.is_ok()
    }

    /// Applies a control message.
    pub async fn control(&self, control: Control) -> Result<(), String> {
        match control {
            Control::Resize { cols, rows } => {
                if cols == 0 || rows == 0 {
                    return Err("resize needs cols and rows of at least 1".into());
                }
                self.terminal.state.lock().size = (cols, rows);
                self.terminal
                    .input
                    .send(Input::Resize(cols, rows))
                    .await
                    .map_err(|_| "the terminal has exited".to_owned())
            }
            Control::Signal { name } => {
                let sig = signal(&name).ok_or_else(|| {
                    format!(
                        "unknown signal `{name}`: use SIGINT, SIGTERM, SIGHUP, SIGKILL, SIGQUIT, SIGTSTP, SIGCONT, SIGUSR1, SIGUSR2 or SIGWINCH"
                    )
                })?;
                if self.terminal.exited() {
                    return Err("the terminal has exited".into());
                }
                process::signal_foreground(self.terminal.leader, sig)
                    .map_err(|e| format!("cannot send {name}: {e}"))
            }
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        if let Some(on_leave) = self.on_leave.take() {
            on_leave();
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
