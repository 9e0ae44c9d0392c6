//! Tethering a child to the server's life with util-linux's `setpriv --pdeathsig KILL`: it
//! sets the parent-death signal in the child and then executes the real program (same pid,
//! same process group), so the kernel kills the child when its parent dies. Setting it
//! ourselves would need `pre_exec`, which is unsafe code.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `setpriv`'s arguments before the program.
pub(crate) const ARGS: &[&str] = &["--pdeathsig", "KILL", "--"];

/// Where `setpriv` is looked for, in order. Not `PATH`: a child's `PATH` comes from its own
/// configuration, and the tether must not depend on it.
const CANDIDATES: &[&str] = &["/usr/bin/setpriv", "/bin/setpriv", "/usr/local/bin/setpriv"];

/// `setpriv`, when it is present and understands `--pdeathsig` (util-linux 2.33 and later);
/// probed once.
pub(crate) fn setpriv() -> Option<&'static Path> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let found = CANDIDATES
                .iter()
                .map(Path::new)
                .find(|candidate| works(candidate))
                .map(Path::to_path_buf);
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
