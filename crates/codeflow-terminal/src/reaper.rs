//! A terminal's reaper: a small process outside the server that ends the terminal's whole
//! session when the server dies without doing it itself (SIGKILL, the OOM killer).
//!
//! Without it, a dead server's terminals rely on the shell: the PTY's hangup reaches the
//! shell, and the shell is expected to pass it on to its jobs. It may not — bash that reads
//! end-of-file from the hung-up terminal before it handles the hangup exits without signalling
//! its background jobs, and they run on. The reaper does not depend on the shell: it blocks
//! reading a pipe whose only write end the server holds (close-on-exec, so no other child
//! inherits it); when the server dies the kernel closes that end, the read returns, and the
//! reaper ends every process whose session is the terminal's — SIGHUP first, SIGKILL a second
//! later for what still runs, as the server's own `kill_session` does. When the terminal ends
//! in order the server ends its session itself and then kills the reaper, which has nothing
//! left to do.
//!
//! It is `/bin/sh` running the script below — no helper binary to install — in a process
//! group of its own (a ^C meant for the server's foreground group does not reach it).

use std::io::{self, PipeWriter};
use std::process::Stdio;

/// Waits for the server's end of its standard input to close, then ends the session `$1` as
/// the server's own `kill_session` does: SIGHUP and SIGCONT to each of its live processes,
/// up to a second for them to end, then SIGKILL for a few rounds while processes forked
/// meanwhile appear. A process is in the session if field 4 after its command name is `$1`
/// (the name may hold spaces and parentheses, hence the cut at the last `) `), live unless
/// its state is `Z`. POSIX `sh` only (`dash` here); the fields split unquoted are numbers and
/// a state letter, nothing a glob would expand.
const SCRIPT: &str = r#"sid=$1
read -r _ || :
signal_all() {
    found=1
    for stat in /proc/[0-9]*/stat; do
        { read -r line < "$stat"; } 2>/dev/null || continue
        set -- ${line##*") "}
        [ "$4" = "$sid" ] && [ "$1" != Z ] || continue
        found=0
        pid=${stat#/proc/}
        [ -z "$sig" ] || kill -s "$sig" "${pid%/stat}" 2>/dev/null
    done
    return "$found"
}
pause() { sleep 0.05 2>/dev/null || sleep 1; }
sig=HUP; signal_all || exit 0
sig=CONT; signal_all
sig=; n=0
while [ "$n" -lt 20 ] && signal_all; do n=$((n + 1)); pause; done
sig=KILL; n=0
while [ "$n" -lt 5 ] && signal_all; do n=$((n + 1)); pause; done
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
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use super::*;

    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
            .unwrap_or(false)
    }

    /// A session like a terminal's: its leader (`bash`, with an exit trap that removes
    /// `lock`, as a script holding a lock file has) and two jobs in groups of their own (as an
    /// interactive shell's background jobs are, `set -m`), the second ignoring hangups.
    pub(crate) struct Session {
        _leader: tokio::process::Child,
        pub(crate) pids: Vec<i32>,
        pub(crate) lock: PathBuf,
        _dir: tempfile::TempDir,
    }

    impl Session {
        pub(crate) async fn start() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let lock = dir.path().join("lock");
            // `setsid` execs in place (the child of a spawn is not a group leader), so the
            // leader's pid is the session's id.
            let mut leader = tokio::process::Command::new("setsid")
                .args([
                    "bash",
                    "-c",
                    "trap 'rm -f \"$0\"' EXIT; touch \"$0\"; set -m; \
                     sleep 301 & a=$!; (trap '' HUP; exec sleep 302) & b=$!; \
                     echo $$ $a $b; wait",
                ])
                .arg(&lock)
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
            assert!(lock.exists());
            Self {
                _leader: leader,
                pids,
                lock,
                _dir: dir,
            }
        }
    }

    pub(crate) async fn until_dead(pids: &[i32]) -> bool {
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
    async fn the_server_end_closing_ends_the_whole_session() {
        let session = Session::start().await;
        let Reaper {
            _child: mut child,
            _server_end: server_end,
        } = Reaper::start(session.pids[0]).unwrap();
        assert!(session.pids.iter().all(|&p| alive(p)));
        // What the kernel does when the server dies: its end of the pipe closes.
        drop(server_end);
        assert!(
            until_dead(&session.pids).await,
            "session members alive: {:?}",
            session.pids
        );
        assert!(
            !session.lock.exists(),
            "hung up first: the shell ran its exit trap"
        );
        let status = child.wait().await.unwrap();
        assert!(status.success(), "the reaper ends by itself: {status}");
    }

    #[tokio::test]
    async fn a_dropped_reaper_ends_nothing() {
        let session = Session::start().await;
        let reaper = Reaper::start(session.pids[0]).unwrap();
        drop(reaper);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(session.pids.iter().all(|&p| alive(p)), "{:?}", session.pids);
        // Another one cleans up.
        let Reaper {
            _child: _kept_until_done,
            _server_end: server_end,
        } = Reaper::start(session.pids[0]).unwrap();
        drop(server_end);
        assert!(until_dead(&session.pids).await);
    }
}
