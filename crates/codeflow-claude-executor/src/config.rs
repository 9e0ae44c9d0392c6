//! The executor's settings (the server fills them from its configuration).

use std::path::PathBuf;
use std::time::Duration;

/// Everything the executor needs to know; see `docs/configuration.md` for the keys.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Projects' working directories live under this directory.
    pub projects_root: PathBuf,
    /// Project metadata and message logs: `<state_dir>/<project>/project.json` and
    /// `<state_dir>/<project>/messages/`.
    pub state_dir: PathBuf,
    /// The CLI to run (a name looked up in `PATH`, or a path).
    pub claude_cmd: String,
    /// Extra arguments appended after CodeFlow's own (e.g. `--model`, `--permission-mode`).
    pub claude_args: Vec<String>,
    /// A run's time limit when the request names none.
    pub default_timeout: Duration,
    /// The largest time limit a request may ask for.
    pub max_timeout: Duration,
    /// A run that prints no complete line for this long is stopped. Claude Code prints nothing
    /// while a tool runs (its Bash tool allows 2 minutes by default), so this is longer.
    pub stall_timeout: Duration,
    /// How long a process may take to exit after its `result` line (or after closing its
    /// output) before it is stopped.
    pub exit_grace: Duration,
    /// The wait between SIGINT, SIGTERM and SIGKILL when a run is stopped.
    pub kill_grace: Duration,
    /// Longest stream-json line accepted; longer lines become error events.
    pub max_line_bytes: usize,
    /// Most projects the server holds.
    pub max_projects: usize,
    /// Variables of the server's environment passed to the CLI besides the clean base every
    /// child gets (`codeflow_types::child_env`: `PATH`, `HOME`, the locale, toolchains). A
    /// trailing `*` matches a prefix. `CLAUDECODE*` and `CODEFLOW_*` never pass.
    pub env_pass: Vec<String>,
    /// Environment variables not passed to the CLI even when the base or `env_pass` has them,
    /// besides `CLAUDECODE*` and `CODEFLOW_*` (which are always removed). A trailing `*`
    /// matches a prefix.
    pub env_remove: Vec<String>,
    /// Run the CLI as this user and group (the server must be allowed to switch).
    pub run_as_uid: Option<u32>,
    /// See `run_as_uid`.
    pub run_as_gid: Option<u32>,
    /// Resource limits for the CLI and everything it starts.
    pub limits: Limits,
    /// The message log.
    pub log: LogConfig,
}

/// What `env_pass` is unless configured: the CLI's credentials and settings.
pub fn default_env_pass() -> Vec<String> {
    vec!["ANTHROPIC_*".to_owned(), "CLAUDE_CONFIG_DIR".to_owned()]
}

/// Resource limits (`setrlimit`) applied to a run through util-linux `prlimit`, which must be
/// installed when any is set. Unset limits are inherited from the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Address space per process, in MiB (`RLIMIT_AS`).
    pub memory_mb: Option<u64>,
    /// CPU time per process, in seconds (`RLIMIT_CPU`).
    pub cpu_secs: Option<u64>,
    /// Open files per process (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// Processes of the run's user (`RLIMIT_NPROC`; counts all of that user's processes).
    pub processes: Option<u64>,
}

impl Limits {
    /// `prlimit` options for the set limits (empty when none is set).
    pub fn prlimit_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(mb) = self.memory_mb {
            args.push(format!("--as={}", mb.saturating_mul(1024 * 1024)));
        }
        if let Some(s) = self.cpu_secs {
            args.push(format!("--cpu={s}"));
        }
        if let Some(n) = self.open_files {
            args.push(format!("--nofile={n}"));
        }
        if let Some(n) = self.processes {
            args.push(format!("--nproc={n}"));
        }
        args
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            projects_root: PathBuf::from("./.codeflow/projects-root"),
            state_dir: PathBuf::from("./.codeflow/projects"),
            claude_cmd: "claude".into(),
            claude_args: Vec::new(),
            default_timeout: Duration::from_secs(300),
            max_timeout: Duration::from_secs(3600),
            stall_timeout: Duration::from_secs(240),
            exit_grace: Duration::from_secs(10),
            kill_grace: Duration::from_secs(3),
            max_line_bytes: 4 * 1024 * 1024,
            max_projects: 1000,
            env_pass: default_env_pass(),
            env_remove: Vec::new(),
            run_as_uid: None,
            run_as_gid: None,
            limits: Limits::default(),
            log: LogConfig::default(),
        }
    }
}

/// Message-log settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A segment is sealed and a new one started once it reaches this size.
    pub rotate_bytes: u64,
    /// A segment is sealed and a new one started once its first entry is this old.
    pub rotate_age: Duration,
    /// Sealed segments last written longer ago than this are deleted (`None`: kept).
    pub retention: Option<Duration>,
    /// Appends queued per project before appenders wait.
    pub queue: usize,
    /// Most appends written and synced together (one group commit).
    pub batch: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            rotate_bytes: 1024 * 1024 * 1024,
            rotate_age: Duration::from_secs(30 * 24 * 3600),
            retention: None,
            queue: 16 * 1024,
            batch: 4096,
        }
    }
}
