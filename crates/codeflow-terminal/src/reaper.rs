//! A terminal's reaper: a small process outside the server that kills the terminal's whole
//! session when the server dies without doing it itself (SIGKILL, the OOM killer).
//!
//! Without it, a dead server's terminals rely on the shell: the PTY's hangup reaches the
//! shell, and the shell is expected to pass it on to its jobs. It may not — bash that reads
//! end-of-file from the hung-up terminal before it handles the hangup exits without signalling
//! its background jobs, and they run on. The reaper does not depend on the shell: it blocks
//! reading a pipe whose only write end the server holds (close-on-exec, so no other child
//! inherits it); when the server dies the kernel closes that end, the read returns, and the
//! reaper kills every process whose session is the terminal's. When the terminal ends in
//! order the server kills its session itself and then the reaper, which has nothing to do.
//!
//! It is `/bin/sh` running the script below — no helper binary to install — in a process
//! group of its own (a ^C meant for the server's foreground group does not reach it).

use std::io::{self, PipeWriter};
use std::process::Stdio;

/// Waits for the server's end of its standard input to close, then kills the session `$1`: its
/// leader's group first, then every process `/proc` lists in it (field 4 after the command
/// name, which may hold spaces and parentheses, hence the cut at the last `) `), for a few
/// rounds while processes forked in the meantime appear. POSIX `sh` only (`dash` here); the
/// fields split unquoted are numbers and a state letter, nothing a glob would expand.
const SCRIPT: &str = r#"sid=$1
read -r _ || :
kill -s KILL -- "-$sid" 2>/dev/null
round=0
while [ "$round" -lt 5 ]; do
    round=$((round + 1))
    found=
    for stat in /proc/[0-9]*/stat; do
        { read -r line < "$stat"; } 2>/dev/null || continue
        set -- ${line##*") "}
        if [ "$4" = "$sid" ]; then
            pid=${stat#/proc/}
            kill -s KILL "${pid%/stat}" 2>/dev/null
            found=1
        fi
    done
    [ -n "$found" ] || exit 0
    sleep 0.05 2>/dev/null || sleep 1
done
"#;

/// A running reaper for one terminal's session. Dropping it kills the reaper (first) and
/// closes the pipe: call it once the session is already killed.
pub(crate) struct Reaper {
    /// Declared first, so dropped first: killed before its pipe closes. (Both are only held:
    /// dropping them is their use.)
    _child: tokio::process::Child,
    _server_end: PipeWriter,
}

impl Reaper {
    /// Starts the reaper of session `sid` (the shell's pid). Needs a Tokio runtime, which
    /// reaps it.
    pub(crate) fn start(sid: i32) -> io::Result<Self> {
        let (reaper_end, server_end) = io::pipe()?;
        let child = tokio::process::Command::new("/bin/sh")
            .args(["-c", SCRIPT, "codeflow-terminal-reaper"])
            .arg(sid.to_string())
            .stdin(Stdio::from(reaper_end))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/")
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        Ok(Self {
            _child: child,
            _server_end: server_end,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::{Duration, Instant};

    use super::*;

    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
            .unwrap_or(false)
    }

    /// A session of three processes: a leader (`bash`) and two `sleep`s in groups of their
    /// own, as an interactive shell's background jobs are (`set -m`). Returns the leader's
    /// handle and all three pids.
    async fn session() -> (tokio::process::Child, Vec<i32>) {
        // `setsid` execs in place (the child of a spawn is not a group leader), so the
        // leader's pid is the session's id.
        let mut leader = tokio::process::Command::new("setsid")
            .args([
                "bash",
                "-c",
                "set -m; sleep 301 & a=$!; sleep 302 & b=$!; echo $$ $a $b; wait",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut out = tokio::io::BufReader::new(leader.stdout.take().unwrap());
        let mut line = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line)
            .await
            .unwrap();
        let pids: Vec<i32> = line
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(pids.len(), 3, "{line}");
        (leader, pids)
    }

    async fn until_dead(pids: &[i32]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while pids.iter().any(|&p| alive(p)) {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    #[tokio::test]
    async fn the_server_end_closing_kills_the_whole_session() {
        let (_leader, pids) = session().await;
        let Reaper {
            _child: mut child,
            _server_end: server_end,
        } = Reaper::start(pids[0]).unwrap();
        assert!(pids.iter().all(|&p| alive(p)));
        // What the kernel does when the server dies: its end of the pipe closes.
        drop(server_end);
        assert!(until_dead(&pids).await, "session members alive: {pids:?}");
        let status = child.wait().await.unwrap();
        assert!(status.success(), "the reaper ends by itself: {status}");
    }

    #[tokio::test]
    async fn a_dropped_reaper_kills_nothing() {
        let (_leader, pids) = session().await;
        let reaper = Reaper::start(pids[0]).unwrap();
        drop(reaper);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(pids.iter().all(|&p| alive(p)), "{pids:?}");
        // Another one cleans up.
        let Reaper {
            _child: _kept_until_done,
            _server_end: server_end,
        } = Reaper::start(pids[0]).unwrap();
        drop(server_end);
        assert!(until_dead(&pids).await);
    }
}
