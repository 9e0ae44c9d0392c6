//! One run's supervision: read its stream-json, watch its clocks, stop it, report how it ended.
//!
//! Watchdogs: the run's time limit; a stall (no complete output line for `stall_timeout`); a
//! process that does not exit `exit_grace` after its `result` line or after closing its output.
//! Stopping sends SIGINT to the process group, then SIGTERM, then SIGKILL, `kill_grace` apart.
//! Whenever the group leader has exited, the rest of its group is killed at once: nothing a run
//! started outlives it (a grandchild that ignores SIGTERM included).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, BufReader};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::ExecutorConfig;
use crate::lines::{Line, LineReader};
use crate::process::{Started, describe, signal_group};
use crate::stream_json::{StreamLine, interpret};

/// Bytes of stderr kept for the `complete` event.
const STDERR_TAIL: usize = 4096;

/// What the supervisor reports while the run goes.
pub(crate) trait RunObserver: Send + Sync {
    /// An event for the project's channel and log (`output` or `error`).
    fn event(&self, event: Value) -> impl std::future::Future<Output = ()> + Send;
    /// The conversation id from a `system/init` line.
    fn conversation(&self, id: &str) -> impl std::future::Future<Output = ()> + Send;
}

/// Why a run is being stopped.
#[derive(Debug, Clone)]
pub(crate) struct StopCause {
    pub reason: String,
    pub aborted: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub success: bool,
    pub aborted: bool,
    pub reason: String,
    pub cost_usd: Option<f64>,
    pub num_turns: Option<u64>,
    pub result_subtype: Option<String>,
    pub stderr_tail: String,
    pub lines: u64,
}

/// A request to stop a run, with the reason its `complete` event will give.
#[derive(Debug, Default)]
pub(crate) struct RunCancel {
    pub token: CancellationToken,
    pub reason: Mutex<String>,
}

impl RunCancel {
    /// Asks the run to stop; the first reason given wins.
    pub fn stop(&self, reason: &str) {
        let mut r = self.reason.lock();
        if r.is_empty() {
            *r = reason.to_owned();
        }
        drop(r);
        self.token.cancel();
    }
}

/// Kills the group if the supervisor is dropped before it finished (runtime shutdown).
struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, Signal::SIGKILL);
    }
}

struct Stopping {
    cause: StopCause,
    step: u8,
    next_at: Instant,
}

pub(crate) async fn supervise<O: RunObserver>(
    mut started: Started,
    run_id: &str,
    config: &ExecutorConfig,
    timeout: Duration,
    cancel: &RunCancel,
    observer: &O,
) -> Outcome {
    let pgid = started.pgid;
    let _guard = GroupGuard(pgid);
    let begun = Instant::now();
    let stdout = started.child.stdout().take();
    let stderr = started.child.stderr().take();

    // stderr: keep the tail, in a task owned by this function.
    let tail: Arc<Mutex<VecDeque<u8>>> = Arc::default();
    let tail_in = tail.clone();
    let stderr_task = tokio::spawn(async move {
        let Some(mut stderr) = stderr else { return };
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let mut t = tail_in.lock();
            t.extend(&buf[..n]);
            while t.len() > STDERR_TAIL {
                t.pop_front();
            }
        }
    });

    // The leader's exit, from a task that owns the child.
    let (exit_tx, mut exit_rx) = tokio::sync::oneshot::channel();
    let mut child = started.child;
    let waiter = tokio::spawn(async move {
        let status = child.wait().await;
        let _ = exit_tx.send(status);
    });

    let mut reader = stdout.map(|s| LineReader::new(BufReader::new(s), config.max_line_bytes));
    let mut stdout_done = reader.is_none();
    let mut exit: Option<Result<std::process::ExitStatus, String>> = None;
    let mut outcome = Outcome::default();
    let mut result_seen: Option<Value> = None;
    let deadline = begun + timeout;
    let mut last_line = Instant::now();
    // When the process must have exited (after `result` or after closing its output).
    let mut exit_by: Option<Instant> = None;
    let mut stopping: Option<Stopping> = None;
    let mut seq: u64 = 0;

    let begin_stop = |stopping: &mut Option<Stopping>, cause: StopCause| {
        if stopping.is_none() {
            tracing::info!(run = run_id, reason = %cause.reason, "stopping run");
            signal_group(pgid, Signal::SIGINT);
            *stopping = Some(Stopping {
                cause,
                step: 1,
                next_at: Instant::now() + config.kill_grace,
            });
        }
    };

    while !(stdout_done && exit.is_some()) {
        let mut wake = deadline;
        if stopping.is_none() {
            wake = wake.min(last_line + config.stall_timeout);
            if let Some(t) = exit_by {
                wake = wake.min(t);
            }
        }
        if let Some(s) = &stopping {
            wake = s.next_at;
        }
        tokio::select! {
            line = async {
                match reader.as_mut() {
                    Some(r) => r.next().await,
                    None => std::future::pending().await,
                }
            }, if !stdout_done => {
                match line {
                    Ok(Some(Line::Text(bytes))) => {
                        last_line = Instant::now();
                        seq += 1;
                        outcome.lines = seq;
                        match interpret(&bytes) {
                            StreamLine::Message { message, conversation, is_result } => {
                                if let Some(id) = conversation {
                                    observer.conversation(&id).await;
                                }
                                if is_result {
                                    result_seen = Some(message.clone());
                                    exit_by.get_or_insert(Instant::now() + config.exit_grace);
                                }
                                observer.event(json!({
                                    "type": "output", "runId": run_id, "seq": seq, "message": message,
                                })).await;
                            }
                            StreamLine::NotAnObject { excerpt } => {
                                observer.event(json!({
                                    "type": "error", "runId": run_id, "seq": seq,
                                    "error": "the CLI printed a line that is not a JSON object",
                                    "excerpt": excerpt,
                                })).await;
                            }
                        }
                    }
                    Ok(Some(Line::TooLong { limit })) => {
                        seq += 1;
                        outcome.lines = seq;
                        observer.event(json!({
                            "type": "error", "runId": run_id, "seq": seq,
                            "error": format!("the CLI printed a line longer than {limit} bytes; it was skipped"),
                        })).await;
                    }
                    Ok(None) | Err(_) => {
                        stdout_done = true;
                        if exit.is_none() {
                            exit_by.get_or_insert(Instant::now() + config.exit_grace);
                        }
                    }
                }
            }
            status = &mut exit_rx, if exit.is_none() => {
                exit = Some(match status {
                    Ok(Ok(s)) => Ok(s),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("lost track of the process".into()),
                });
                // Nothing the run started may outlive it; this also closes pipes that a
                // grandchild kept open.
                signal_group(pgid, Signal::SIGKILL);
                if !stdout_done {
                    // Whatever is still buffered is read; a pipe held open by a process outside
                    // the group is given up after the grace.
                    stopping.get_or_insert(Stopping {
                        cause: StopCause { reason: String::new(), aborted: false },
                        step: 3,
                        next_at: Instant::now() + config.exit_grace,
                    });
                }
            }
            _ = cancel.token.cancelled(), if stopping.is_none() => {
                let reason = cancel.reason.lock().clone();
                begin_stop(&mut stopping, StopCause { reason, aborted: true });
            }
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if let Some(s) = &mut stopping {
                    if now >= s.next_at {
                        match s.step {
                            1 => {
                                signal_group(pgid, Signal::SIGTERM);
                                s.step = 2;
                                s.next_at = now + config.kill_grace;
                            }
                            2 => {
                                signal_group(pgid, Signal::SIGKILL);
                                s.step = 3;
                                s.next_at = now + config.kill_grace.max(Duration::from_secs(1));
                            }
                            _ => {
                                // Killed and still no end of output: a process outside the
                                // group holds the pipe. Stop reading.
                                signal_group(pgid, Signal::SIGKILL);
                                stdout_done = true;
                                if exit.is_none() {
                                    s.next_at = now + Duration::from_secs(1);
                                }
                            }
                        }
                    }
                } else if now >= deadline {
                    begin_stop(&mut stopping, StopCause {
                        reason: format!("timed out after {} s", timeout.as_secs_f64()),
                        aborted: true,
                    });
                } else if now >= last_line + config.stall_timeout {
                    begin_stop(&mut stopping, StopCause {
                        reason: format!("stalled: no output for {} s", config.stall_timeout.as_secs_f64()),
                        aborted: true,
                    });
                } else if exit_by.is_some_and(|t| now >= t) {
                    let reason = if result_seen.is_some() {
                        "the CLI did not exit after its result; it was stopped"
                    } else {
                        "the CLI closed its output but did not exit; it was stopped"
                    };
                    begin_stop(&mut stopping, StopCause { reason: reason.into(), aborted: false });
                }
            }
        }
    }
    signal_group(pgid, Signal::SIGKILL);
    // SIGKILL is delivered when each process next runs: wait (bounded) until none of the
    // group is left, so the run's end means nothing it started still runs.
    let gone_by = Instant::now() + Duration::from_secs(2);
    while pgid > 1 && crate::process::group_has_live_members(pgid) && Instant::now() < gone_by {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    waiter.abort();
    // stderr ends with the group; do not wait for a pipe someone outside still holds.
    let _ = tokio::time::timeout(Duration::from_millis(500), stderr_task).await;
    outcome.stderr_tail =
        String::from_utf8_lossy(&tail.lock().iter().copied().collect::<Vec<u8>>()).into_owned();

    if let Some(Ok(status)) = &exit {
        let (code, signal) = describe(status);
        outcome.exit_code = code;
        outcome.signal = signal;
    }
    if let Some(result) = &result_seen {
        outcome.cost_usd = result["total_cost_usd"].as_f64();
        outcome.num_turns = result["num_turns"].as_u64();
        outcome.result_subtype = result["subtype"].as_str().map(str::to_owned);
    }
    let stop = stopping.map(|s| s.cause).filter(|c| !c.reason.is_empty());
    let result_ok = result_seen
        .as_ref()
        .is_some_and(|r| r["is_error"] != Value::Bool(true));
    match stop {
        Some(cause) => {
            outcome.aborted = cause.aborted;
            outcome.success = !cause.aborted && result_ok;
            outcome.reason = cause.reason;
        }
        None => {
            outcome.success = result_ok && outcome.exit_code == Some(0);
            outcome.reason = match (&exit, &result_seen) {
                (Some(Err(e)), _) => format!("failed: {e}"),
                _ if outcome.success => "completed".into(),
                (_, Some(_)) if !result_ok => format!(
                    "the CLI reported an error ({})",
                    outcome.result_subtype.as_deref().unwrap_or("error")
                ),
                (_, Some(_)) => format!("the CLI exited with status {}", fmt_status(&outcome)),
                (_, None) => format!(
                    "the CLI ended without a result (exit {})",
                    fmt_status(&outcome)
                ),
            };
        }
    }
    outcome
}

fn fmt_status(o: &Outcome) -> String {
    match (o.exit_code, o.signal) {
        (Some(c), _) => format!("code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown".into(),
    }
}
