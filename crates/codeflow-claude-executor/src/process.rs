//! Starting the CLI and signalling its process group.
//!
//! The CLI gets an argument vector (never a shell), stdin from `/dev/null` (it waits for EOF on
//! an open stdin), its own process group (so a stop reaches every process it started), and a
//! clean environment built from an allow-list ([`environment`]): the base every CodeFlow child
//! gets (`codeflow_types::child_env`, shared with the language servers) plus the variables
//! `env_pass` names — never `CLAUDECODE*` (they change its behaviour), `CODEFLOW_*` (the
//! server's secrets) or what `env_remove` names.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use codeflow_process::ChildWrapper;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

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

fn matches(name: &str, patterns: &[String]) -> bool {
    patterns
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == pattern,
        })
}

/// The CLI's whole environment, from this process's: the clean base, plus what `env_pass`
/// names, minus what is withheld.
pub fn environment(config: &ExecutorConfig) -> Vec<(OsString, OsString)> {
    let mut env: BTreeMap<OsString, OsString> = codeflow_types::child_env::inherited()
        .map(|(name, value)| (OsString::from(name), value))
        .collect();
    for (name, value) in std::env::vars_os() {
        if matches(&name.to_string_lossy(), &config.env_pass) {
            env.insert(name, value);
        }
    }
    env.retain(|name, _| !withheld(&name.to_string_lossy(), &config.env_remove));
    env.into_iter().collect()
}

/// Whether an environment variable is withheld from the CLI.
pub fn withheld(name: &str, extra: &[String]) -> bool {
    name.starts_with("CLAUDECODE") || name.starts_with("CODEFLOW_") || matches(name, extra)
}

/// A started CLI: the child (killed with its group if dropped) and its process group id.
pub struct Started {
    /// The CLI process, in its own process group.
    pub child: Box<dyn ChildWrapper>,
    /// Its process group id (the whole group is signalled on cancel).
    pub pgid: i32,
    /// The leader's start time (clock ticks since boot, `/proc/<pid>/stat`), to recognise it
    /// after a restart without mistaking a reused pid for it.
    pub start_ticks: Option<u64>,
}

/// The variable every run's CLI carries (`CODEFLOW_RUN_ID=<runId>`), inherited by what it
/// starts: after a crash, a run's processes are found by it even when no pid was saved.
pub const RUN_MARKER: &str = "CODEFLOW_RUN_ID";

/// Starts the CLI for one run: argument vector (no shell), stdin closed, the allow-listed environment plus `RUN_MARKER`, its own process group.
pub fn spawn(
    config: &ExecutorConfig,
    cwd: &Path,
    run_id: &str,
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
    let cwd = cwd.to_path_buf();
    let env = environment(config);
    let run_id = run_id.to_owned();
    let (uid, gid) = (config.run_as_uid, config.run_as_gid);
    // Its own process group, killed on drop, and tethered: the run dies with this process
    // even if we are SIGKILLed (an orphaned run would go on spending).
    let child = codeflow_process::spawn(program.as_ref(), move |c| {
        c.args(&args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_clear()
            .envs(env)
            .env(RUN_MARKER, run_id);
        #[cfg(unix)]
        {
            if let Some(uid) = uid {
                c.uid(uid);
            }
            if let Some(gid) = gid {
                c.gid(gid);
            }
        }
    })?;
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

/// The process groups of every process whose environment carries `run_id`'s marker (read from
/// `/proc/<pid>/environ`; processes that cannot be read are skipped).
pub fn groups_of_run(run_id: &str) -> Vec<i32> {
    let needle = format!("{RUN_MARKER}={run_id}");
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let mut groups = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return groups;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            continue;
        }
        if let Some(pgid) = process_group(pid)
            && pgid > 1
            && !groups.contains(&pgid)
        {
            groups.push(pgid);
        }
    }
    groups
}

/// Whether any process of the group is still running (a zombie, killed but not yet reaped, is
/// not). Read from `/proc`; where it cannot be read the group counts as gone.
pub fn group_has_live_members(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let mut fields = after.split_whitespace();
        let state = fields.next();
        let group = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
        group == Some(pgid) && state != Some("Z")
    })
}

/// The process group of a process, from `/proc/<pid>/stat` (field 5).
fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(2)?.parse().ok()
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
    fn the_environment_is_an_allow_list() {
        // `cargo test` runs tests with CARGO_PKG_* set: not in the base, so not passed unless
        // `env_pass` names them.
        let names = |config: &ExecutorConfig| -> Vec<String> {
            environment(config)
                .into_iter()
                .map(|(k, _)| k.to_string_lossy().into_owned())
                .collect()
        };
        let plain = names(&ExecutorConfig::default());
        assert!(plain.iter().any(|n| n == "PATH"), "{plain:?}");
        assert!(
            !plain.iter().any(|n| n.starts_with("CARGO_PKG_")),
            "{plain:?}"
        );
        assert!(
            plain.iter().all(
                |n| codeflow_types::child_env::INHERITED.contains(&n.as_str())
                    || n.starts_with("ANTHROPIC_")
                    || n == "CLAUDE_CONFIG_DIR"
            ),
            "{plain:?}"
        );
        let config = ExecutorConfig {
            env_pass: vec!["CARGO_PKG_*".into(), "CODEFLOW_*".into()],
            env_remove: vec!["CARGO_PKG_VERSION".into()],
            ..ExecutorConfig::default()
        };
        let passed = names(&config);
        assert!(passed.iter().any(|n| n == "CARGO_PKG_NAME"), "{passed:?}");
        assert!(
            !passed.iter().any(|n| n == "CARGO_PKG_VERSION"),
            "{passed:?}"
        );
        assert!(
            !passed.iter().any(|n| n.starts_with("CODEFLOW_")),
            "{passed:?}"
        );
    }

    #[test]
    fn own_start_time_is_readable() {
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        assert!(start_ticks(me).is_some());
    }
}
