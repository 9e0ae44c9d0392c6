//! The server's child processes — language servers and `claude` runs — started so that none
//! outlives the server, however it ends.
//!
//! Every child is:
//! - the leader of its own process group, so one `killpg` stops it and every helper it forked;
//! - killed when its handle is dropped without an orderly stop (process-wrap's `KillOnDrop`);
//! - **tethered**: started through `setpriv --pdeathsig KILL` (`tether.rs`), so the kernel kills
//!   it when the server process dies, even by `SIGKILL` or an OOM kill, when no code of ours
//!   runs. The parent-death signal fires when the *thread* that forked the child ends, so
//!   every tethered child is forked by one thread that lives as long as the process
//!   (`launcher.rs`), never by a runtime worker or a blocking-pool thread that may retire.
//!   The signal is armed by `setpriv` after the fork, so `spawn` returns only once it is:
//!   a server killed in between would otherwise leave that child behind.
//!
//! Where `setpriv` is missing (not util-linux, or older than 2.33) children are started
//! untethered, and a warning says once that they may outlive a killed server.

mod launcher;
mod tether;

use std::ffi::OsStr;
use std::io;

pub use process_wrap::tokio::ChildWrapper;
use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use tokio::process::Command;

/// Whether children are tethered to the server's life on this machine (`setpriv` with
/// `--pdeathsig` was found).
pub fn tethered() -> bool {
    tether::setpriv().is_some()
}

/// Start `program` as a child of the server: its own process group, killed on drop, tethered
/// where possible. `configure` sets its arguments, environment, directory and pipes, exactly
/// as for a plain [`Command`] of `program`.
///
/// Must be called inside a Tokio runtime (the child is reaped by it). Blocks the caller for
/// the fork and exec only (about a millisecond; where tethered, until the tether is armed —
/// `setpriv` has executed the program), as any process spawn does.
pub fn spawn<F>(program: &OsStr, configure: F) -> io::Result<Box<dyn ChildWrapper>>
where
    F: FnOnce(&mut Command) + Send + 'static,
{
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| io::Error::other("a child process must be started inside a Tokio runtime"))?;
    let program = program.to_owned();
    launcher::run(move || {
        let _entered = runtime.enter();
        let setpriv = tether::setpriv();
        let mut command = match setpriv {
            Some(setpriv) => CommandWrap::with_new(setpriv, |c| {
                c.args(tether::ARGS).arg(&program);
            }),
            None => CommandWrap::with_new(&program, |_| {}),
        };
        configure(command.command_mut());
        command.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
        let child = command.spawn()?;
        if let (Some(setpriv), Some(pid)) = (setpriv, child.id()) {
            tether::wait_until_armed(pid, setpriv);
        }
        Ok(child)
    })?
}
