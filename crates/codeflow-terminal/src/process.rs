//! A terminal's processes: the shell started on a new PTY as the leader of a session of its
//! own, and the end of that whole session — the shell's process group and every job it put
//! in a group of its own (an interactive shell gives each background job one).

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::config::TerminalConfig;
use crate::reaper::Reaper;

/// A started shell: the PTY's master side and the child.
pub(crate) struct Started {
    pub pty: pty_process::Pty,
    pub child: tokio::process::Child,
    /// The shell's pid: also its session id and process group id.
    pub leader: i32,
    /// Kills the session if the server dies without doing it; `None` if it could not start
    /// (said in the log).
    pub reaper: Option<Reaper>,
}

/// Starts `command` (or the interactive shell) in `dir` on a new PTY of `cols` × `rows`.
pub(crate) fn start(
    config: &TerminalConfig,
    id: &str,
    dir: &Path,
    command: Option<&str>,
    cols: u16,
    rows: u16,
) -> std::io::Result<Started> {
    let (pty, pts) = pty_process::open().map_err(io)?;
    pty.resize(pty_process::Size::new(rows, cols)).map_err(io)?;
    // A server started with hangups ignored (`nohup`) would hand that to every shell (an
    // ignored signal stays ignored across exec), and a shell then outlives the server's
    // death, its terminal's hangup being its only tether: started through an `env` that can,
    // the shell gets the default disposition back.
    let mut cmd = match hangup_resetting_env() {
        Some(env) => pty_process::Command::new(env)
            .arg("--default-signal=HUP")
            .arg(&config.shell),
        None => pty_process::Command::new(&config.shell),
    };
    if let Some(command) = command {
        cmd = cmd.arg("-c").arg(command);
    }
    cmd = cmd
        .env_clear()
        .envs(codeflow_types::child_env::inherited())
        .env("TERM", "xterm-256color")
        .env("PWD", dir)
        .env("SHELL", &config.shell)
        .envs(config.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        // Marks every process the terminal starts (inherited), for an operator's `ps e`.
        .env("CODEFLOW_TERMINAL_ID", id)
        .current_dir(dir)
        .kill_on_drop(true);
    if let Some(uid) = config.run_as_uid {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .map_err(std::io::Error::from)?;
        let gid = config
            .run_as_gid
            .or_else(|| user.as_ref().map(|u| u.gid.as_raw()))
            .unwrap_or(uid);
        if let Some(user) = &user {
            cmd = cmd
                .env("HOME", &user.dir)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
        }
        // The group first: after the user changes there is no right to change it.
        cmd = cmd.gid(gid).uid(uid);
    } else if let Some(gid) = config.run_as_gid {
        cmd = cmd.gid(gid);
    }
    let child = cmd.spawn(pts).map_err(io)?;
    let leader = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| std::io::Error::other("the shell exited before it could be watched"))?;
    let reaper = Reaper::start(leader)
        .inspect_err(|e| {
            tracing::warn!(
                terminal = id,
                "the terminal's reaper did not start ({e}); its background jobs may outlive \
                 this server if the server is killed"
            );
        })
        .ok();
    Ok(Started {
        pty,
        child,
        leader,
        reaper,
    })
}

/// An `env` that can reset a signal to its default (GNU coreutils 8.31 and later), looked for
/// once; `None` where there is none (the shell then starts directly, as before).
fn hangup_resetting_env() -> Option<&'static Path> {
    static FOUND: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            ["/usr/bin/env", "/bin/env"]
                .into_iter()
                .map(std::path::PathBuf::from)
                .find(|env| {
                    std::process::Command::new(env)
                        .args(["--default-signal=HUP", "true"])
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                })
        })
        .as_deref()
}

fn io(e: pty_process::Error) -> std::io::Error {
    match e {
        pty_process::Error::Io(e) => e,
        other => std::io::Error::other(other.to_string()),
    }
}

/// What `/proc/<pid>/stat` says of a process.
struct Stat {
    pid: i32,
    /// `Z`: a zombie, already dead (waiting for its parent to reap it).
    zombie: bool,
    session: i32,
    /// The foreground process group of its terminal.
    tpgid: i32,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp session tty_nr tpgid …`; comm may hold spaces and parens.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        pid,
        zombie: *fields.first()? == "Z",
        session: fields.get(3)?.parse().ok()?,
        tpgid: fields.get(5)?.parse().ok()?,
    })
}

/// The pids of every live (not zombie) process in session `sid`.
fn session_members(sid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .filter(|s| s.session == sid && !s.zombie)
        .map(|s| s.pid)
        .collect()
}

/// Sends `signal` to the terminal's foreground process group (what the keyboard's ^C
/// reaches), or to the shell's group when the terminal has none.
pub(crate) fn signal_foreground(leader: i32, signal: Signal) -> nix::Result<()> {
    let group = match stat(leader) {
        Some(s) if s.tpgid > 0 => s.tpgid,
        _ => leader,
    };
    killpg(Pid::from_raw(group), signal)
}

/// How long a terminal's processes have after the hangup to end on their own (to run their
/// exit traps, remove their lock files) before they are killed.
const HANGUP_GRACE: Duration = Duration::from_secs(1);

/// Ends every process of the terminal's session — the shell's group and every job's — as
/// closing a terminal window does, and then some: each gets SIGHUP (and SIGCONT, should it be
/// stopped); whatever still runs after [`HANGUP_GRACE`] gets SIGKILL, for a few rounds while
/// processes forked meanwhile appear. A process that made a session of its own (`setsid`) has
/// left the terminal and is not found. Blocks for at most the grace and a few milliseconds.
pub(crate) fn kill_session(leader: i32) {
    let signal_all = |signal: Signal| {
        let members = session_members(leader);
        for &pid in &members {
            let _ = kill(Pid::from_raw(pid), signal);
        }
        !members.is_empty()
    };
    if !signal_all(Signal::SIGHUP) {
        return;
    }
    signal_all(Signal::SIGCONT);
    let deadline = Instant::now() + HANGUP_GRACE;
    while Instant::now() < deadline && !session_members(leader).is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    for _ in 0..5 {
        if !signal_all(Signal::SIGKILL) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::reaper::tests::{Session, until_dead};

    #[tokio::test]
    async fn a_session_is_hung_up_first_and_killed_after_the_grace() {
        let session = Session::start().await;
        let leader = session.pids[0];
        tokio::task::spawn_blocking(move || super::kill_session(leader))
            .await
            .unwrap();
        assert!(until_dead(&session.pids).await, "{:?}", session.pids);
        assert!(
            !session.lock.exists(),
            "the shell ran its exit trap on the hangup"
        );
    }
}
