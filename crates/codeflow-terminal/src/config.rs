//! A server's terminal settings.

use std::path::PathBuf;
use std::time::Duration;

/// How terminals are started and bounded.
#[derive(Debug, Clone)]
pub struct TerminalConfig {
    /// The shell a terminal runs (`command` is run with `<shell> -c <command>`).
    pub shell: PathBuf,
    /// How long a terminal without viewers lives before its processes are killed.
    pub grace: Duration,
    /// Bytes of recent output kept for a viewer that attaches.
    pub scrollback_bytes: usize,
    /// Most terminals of one project.
    pub max_per_project: usize,
    /// Most terminals of the server.
    pub max_total: usize,
    /// Most viewers attached to one terminal at once.
    pub max_viewers: usize,
    /// Output chunks queued per viewer; a viewer that falls this far behind is cut off.
    pub viewer_queue: usize,
    /// How long a ticket may wait for its upgrade.
    pub ticket_ttl: Duration,
    /// Variables set in every terminal's environment besides the clean base (`TERM`, …).
    pub env: Vec<(String, String)>,
    /// The user the shell runs as (needs a server running as root); `None`: the server's.
    /// `HOME`, `USER` and `LOGNAME` are that user's.
    pub run_as_uid: Option<u32>,
    /// The group the shell runs as; `None` with `run_as_uid`: that user's primary group.
    pub run_as_gid: Option<u32>,
}

impl Default for TerminalConfig {
    fn default() -> Self {
        Self {
            shell: PathBuf::from("/bin/sh"),
            grace: Duration::from_secs(60),
            scrollback_bytes: 256 * 1024,
            max_per_project: 8,
            max_total: 64,
            max_viewers: 16,
            viewer_queue: 1024,
            ticket_ttl: Duration::from_secs(60),
            env: Vec::new(),
            run_as_uid: None,
            run_as_gid: None,
        }
    }
}
