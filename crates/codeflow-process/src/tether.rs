//! Tethering a child to the server's life with util-linux's `setpriv --pdeathsig KILL`: it
//! sets the parent-death signal in the child and then executes the real program (same pid,
//! same process group), so the kernel kills the child when its parent dies. Setting it
//! ourselves would need `pre_exec`, which is unsafe code.
//!
//! The signal is armed only once `setpriv` has run far enough to set it: a server killed
//! between the fork and that moment would leave the child untethered for good (the kernel
//! does not look back). So a tethered start waits until the child has executed its real
//! program — `setpriv` sets the signal before it executes it — before it returns
//! ([`wait_until_armed`]).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `setpriv`'s arguments before the program.
pub(crate) const ARGS: &[&str] = &["--pdeathsig", "KILL", "--"];

/// Where `setpriv` is looked for, in order. Not `PATH`: a child's `PATH` comes from its own
/// configuration, and the tether must not depend on it.
const CANDIDATES: &[&str] = &["/usr/bin/setpriv", "/bin/setpriv", "/usr/local/bin/setpriv"];

/// `setpriv`, when it is present and understands `--pdeathsig` (util-linux 2.33 and later);
/// probed once. The path is canonical: it is what `/proc/<pid>/exe` shows while a child is
/// still `setpriv`.
pub(crate) fn setpriv() -> Option<&'static Path> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let found = CANDIDATES
                .iter()
                .map(Path::new)
                .filter_map(|candidate| std::fs::canonicalize(candidate).ok())
                .find(|candidate| works(candidate));
            if found.is_none() {
                tracing::warn!(
                    "`setpriv --pdeathsig` (util-linux) was not found: language servers and \
                     Claude runs may outlive this server if it is killed; install util-linux"
                );
            }
            found
        })
        .as_deref()
}

/// Does `setpriv` at `path` run a program (itself, asked for its version) with `--pdeathsig`?
fn works(path: &Path) -> bool {
    std::process::Command::new(path)
        .args(ARGS)
        .arg(path)
        .arg("--version")
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Longest a tethered start waits for `setpriv` to arm the signal: far more than it takes
/// (about a millisecond) even on a loaded machine; past it the child runs anyway, with a
/// warning.
const ARM_DEADLINE: Duration = Duration::from_secs(5);

/// Waits until the child `pid`, started as `setpriv`, is no longer `setpriv`: it has executed
/// its program (the signal is armed), or it has already ended (nothing to tether).
pub(crate) fn wait_until_armed(pid: u32, setpriv: &Path) {
    let exe = format!("/proc/{pid}/exe");
    let started = Instant::now();
    let mut pause = Duration::from_micros(50);
    loop {
        // A child that ended (a zombie, or reaped) has no readable `exe`.
        match std::fs::read_link(&exe) {
            Ok(now) if now == setpriv => {}
            _ => return,
        }
        if started.elapsed() > ARM_DEADLINE {
            tracing::warn!(
                pid,
                "a child was still starting after {ARM_DEADLINE:?}; it may outlive this \
                 server if the server is killed"
            );
            return;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}
