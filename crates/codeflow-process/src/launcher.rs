//! The one thread that forks every child of the server.
//!
//! A parent-death signal (`PR_SET_PDEATHSIG`, set by `setpriv` in the child) is sent when the
//! thread that forked the child ends — not the process. Tokio's blocking-pool threads retire
//! after a few idle seconds, so a child forked there would be killed at a random moment. This
//! thread is started once and never ends while the process lives, so the signal comes exactly
//! when the server dies.

use std::io;
use std::sync::OnceLock;
use std::sync::mpsc::{Sender, sync_channel};

type Job = Box<dyn FnOnce() + Send>;

fn jobs() -> &'static io::Result<Sender<Job>> {
    static JOBS: OnceLock<io::Result<Sender<Job>>> = OnceLock::new();
    JOBS.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("codeflow-launcher".into())
            .spawn(move || {
                // The sender lives in a static: this loop ends only with the process.
                while let Ok(job) = receiver.recv() {
                    job();
                }
            })
            .map(|_detached| sender)
    })
}

/// Run `job` on the launcher thread and wait for its result.
pub(crate) fn run<T, F>(job: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let sender = jobs()
        .as_ref()
        .map_err(|e| io::Error::other(format!("the launcher thread could not start: {e}")))?;
    let (reply, answer) = sync_channel(1);
    sender
        .send(Box::new(move || {
            // The caller may have given up waiting (its task was cancelled); nothing to do.
            let _ignored = reply.send(job());
        }))
        .map_err(|_| io::Error::other("the launcher thread has stopped"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the launcher thread dropped a job"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_runs_on_one_long_lived_thread() {
        let first = run(|| std::thread::current().id()).unwrap();
        let names: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    run(|| {
                        (
                            std::thread::current().id(),
                            std::thread::current().name().map(str::to_owned),
                        )
                    })
                    .unwrap()
                })
            })
            .map(|t| t.join().unwrap())
            .collect();
        for (id, name) in names {
            assert_eq!(id, first);
            assert_eq!(name.as_deref(), Some("codeflow-launcher"));
        }
    }
}
