//! A language-server child process: found on `PATH`, spawned in its own process group and
//! tethered to the server's life (`codeflow_process`), its stderr kept (a short tail) for error
//! messages, and killed as a group so that helpers it started (tsserver, clangd's workers)
//! never outlive it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use codeflow_process::ChildWrapper;
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tokio::task::JoinHandle;

use crate::config::ServerConfig;
use crate::error::LspError;

/// Lines of stderr kept per process for error reports. Older lines are dropped: the tail is
/// what explains a crash.
const STDERR_TAIL_LINES: usize = 20;

/// Find `command` the way `execvp` would: a path is used as is, a bare name is searched on
/// `PATH` (the server's own `env` may override `PATH`).
pub(crate) fn resolve_command(server_id: &str, config: &ServerConfig) -> Result<PathBuf, LspError> {
    let not_installed = || {
        LspError::NotInstalled {
        server: server_id.to_owned(),
        command: config.command.clone(),
        hint: config.install_hint.clone().unwrap_or_else(|| {
            format!(
                "install `{}` and make sure it is on PATH, or set its full path in the server table",
                config.command
            )
        }),
    }
    };
    let command = Path::new(&config.command);
    if command.components().count() > 1 {
        return if is_executable(command) {
            Ok(command.to_path_buf())
        } else {
            Err(not_installed())
        };
    }
    let path_var = config
        .env
        .get("PATH")
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join(command))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(not_installed)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A running language-server process.
pub(crate) struct ServerProcess {
    child: Box<dyn ChildWrapper>,
    pid: Option<u32>,
    exited: Option<ExitStatus>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_task: Option<JoinHandle<()>>,
}

/// The pipes of a freshly spawned server, handed to the LSP main loop.
pub(crate) struct ServerPipes {
    pub(crate) stdin: ChildStdin,
    pub(crate) stdout: ChildStdout,
}

impl ServerProcess {
    /// Spawn `program` with the server's args and env, working directory `root`.
    pub(crate) fn spawn(
        server_id: &str,
        program: &Path,
        config: &ServerConfig,
        root: &Path,
    ) -> Result<(Self, ServerPipes), LspError> {
        let args = config.args.clone();
        let env = config.env.clone();
        let root = root.to_path_buf();
        // Its own process group (one signal stops it and every helper it forked), killed on
        // drop, and tethered: it dies with this process even if we are SIGKILLed.
        let mut child = codeflow_process::spawn(program.as_os_str(), move |c| {
            // A clean environment: the basics a language server needs, then the table's
            // `env`. Never the CodeFlow server's own (its secrets live there).
            c.args(&args)
                .env_clear()
                .envs(crate::child_env::inherited())
                .envs(&env)
                .current_dir(root)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        })
        .map_err(|e| LspError::StartFailed {
            server: server_id.to_owned(),
            reason: format!("could not run {}: {e}", program.display()),
        })?;
        let pid = child.id();
        let missing = |what: &str| LspError::StartFailed {
            server: server_id.to_owned(),
            reason: format!("no {what} pipe on the child"),
        };
        let stdin = child.stdin().take().ok_or_else(|| missing("stdin"))?;
        let stdout = child.stdout().take().ok_or_else(|| missing("stdout"))?;
        let stderr = child.stderr().take();
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
        let stderr_task = stderr.map(|s| {
            tokio::spawn(drain_stderr(
                server_id.to_owned(),
                s,
                Arc::clone(&stderr_tail),
            ))
        });
        let process = Self {
            child,
            pid,
            exited: None,
            stderr_tail,
            stderr_task,
        };
        Ok((process, ServerPipes { stdin, stdout }))
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Wait for the server process itself to exit.
    pub(crate) async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        let status = self.child.wait().await?;
        self.exited = Some(status);
        Ok(status)
    }

    /// Has it exited already? (Does not block.)
    pub(crate) fn try_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// SIGKILL the whole process group. Errors are ignored: the group may already be gone.
    pub(crate) fn kill_group(&mut self) {
        // process-wrap's ProcessGroupChild::start_kill is killpg(SIGKILL).
        let _ignored = self.child.start_kill();
    }

    /// Kill the group and reap the leader.
    pub(crate) async fn kill_and_reap(&mut self) {
        self.kill_group();
        let _ignored = self.wait().await;
        // Helpers that were re-parented are not ours to reap, but they were in the group
        // and got the signal above; signal once more in case the leader's exit raced it.
        self.kill_group();
    }

    /// The last lines the server wrote to stderr, for error messages.
    pub(crate) fn stderr_tail(&self) -> String {
        let tail = self.stderr_tail.lock();
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Let the stderr reader finish (it ends at EOF once the process is gone), bounded.
    pub(crate) async fn settle_stderr(&mut self) {
        if let Some(task) = self.stderr_task.as_mut() {
            let _ignored = tokio::time::timeout(std::time::Duration::from_millis(200), task).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // No orphans, even when the owner was dropped mid-flight (runtime shutdown, panic).
        if self.exited.is_none() {
            self.kill_group();
        }
        if let Some(task) = self.stderr_task.take() {
            task.abort();
        }
    }
}

async fn drain_stderr(server: String, stderr: ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stderr).lines();
    // Keep reading until EOF: a server blocked on a full stderr pipe would stop answering.
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(target: "codeflow_lsp_pool::stderr", server = %server, "{line}");
        let mut tail = tail.lock();
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}
