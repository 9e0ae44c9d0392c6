//! Starting the CLI and signalling its process group.
//!
//! The CLI gets an argument vector (never a shell), stdin from `/dev/null` (it waits for EOF on
//! an open stdin), its own process group (so a stop reaches every process it started), and an
//! environment without `CLAUDECODE*` (they change its behaviour), `CODEFLOW_*` (the server's
//! secrets) and whatever the configuration adds.

use std::path::Path;
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use process_wrap::tokio::{ChildWrapper, CommandWrap, KillOnDrop, ProcessGroup};

use crate::config::ExecutorConfig;

/// The argument vector for a run (without the program).
pub fn arguments(config: &ExecutorConfig, prompt: &str, resume: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "-p".to_owned(),
        prompt.to_owned(),
        "--output-format".to_owned(),
        "stream-json".to_owned(),
        "--verbose".to_owned(),
    ];
    if let Some(id) = resume {
        args.push("--resume".into());
        args.push(id.into());
    }
    args.extend(config.claude_args.iter().cloned());
    args
}

/// Whether an environment variable is withheld from the CLI.
pub fn withheld(name: &str, extra: &[String]) -> bool {
    name.starts_with("CLAUDECODE")
        || name.starts_with("CODEFLOW_")
        || extra.iter().any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == pattern,
        })
}

/// A started CLI: the child (killed with its group if dropped) and its process group id.
pub struct Started {
    pub child: Box<dyn ChildWrapper>,
    pub pgid: i32,
    /// The leader's start time (clock ticks since boot, `/proc/<pid>/stat`), to recognise it
    /// after a restart without mistaking a reused pid for it.
    pub start_ticks: Option<u64>,
}

pub fn spawn(
    config: &ExecutorConfig,
    cwd: &Path,
    prompt: &str,
    resume: Option<&str>,
) -> std::io::Result<Started> {
    // Resource limits go through `prlimit`, which sets them and then execs the CLI (same pid,
    // same process group): `pre_exec` would need unsafe code.
    let limits = config.limits.prlimit_args();
    let (program, mut args) = if limits.is_empty() {
        (config.claude_cmd.clone(), Vec::new())
    } else {
        let mut a = limits;
        a.push("--".into());
        a.push(config.claude_cmd.clone());
        ("prlimit".to_owned(), a)
    };
    args.extend(arguments(config, prompt, resume));
    let mut command = CommandWrap::with_new(&program, |c| {
        c.args(&args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars_os() {
            if withheld(&name.to_string_lossy(), &config.env_remove) {
                c.env_remove(&name);
            }
        }
        #[cfg(unix)]
        {
            if let Some(uid) = config.run_as_uid {
                c.uid(uid);
            }
            if let Some(gid) = config.run_as_gid {
                c.gid(gid);
            }
        }
    });
    command.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
    let child = command.spawn()?;
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| std::io::Error::other("the CLI exited before its pid was read"))?;
    Ok(Started {
        child,
        pgid: pid,
        start_ticks: start_ticks(pid),
    })
}

/// Sends `signal` to every process of the group. False when the group is gone.
pub fn signal_group(pgid: i32, signal: Signal) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), signal).is_ok()
}

/// The start time of a process, from `/proc/<pid>/stat` (field 22), if it exists.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count after it.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Exit code and terminating signal of a status.
pub fn describe(status: &ExitStatus) -> (Option<i32>, Option<i32>) {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        (status.code(), status.signal())
    }
    #[cfg(not(unix))]
    {
        (status.code(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_filter() {
        let extra = vec!["ANTHROPIC_BASE*".to_owned(), "SECRET".to_owned()];
        for name in [
            "CLAUDECODE",
            "CLAUDECODE_X",
            "CODEFLOW_JWT_SECRET",
            "SECRET",
            "ANTHROPIC_BASE_URL",
        ] {
            assert!(withheld(name, &extra), "{name}");
        }
        for name in ["PATH", "HOME", "ANTHROPIC_API_KEY", "SECRETS"] {
            assert!(!withheld(name, &extra), "{name}");
        }
    }

    #[test]
    fn own_start_time_is_readable() {
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        assert!(start_ticks(me).is_some());
    }
}
