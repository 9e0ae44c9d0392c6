//! The seam to a streamed project's files: a project whose files live in a client container
//! and reach the server as a mirror. The executor copies them out into a run's private working
//! copy and hands the run's changes back; the server implements both over its mirror and the
//! file-stream write-back (the executor knows nothing of sessions or sockets).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

/// A boxed future borrowing its arguments.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One file a run changed, relative to the project root (`/`-separated, no `..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The project-relative path.
    pub path: String,
    /// The content the run started from (`None`: the run created the file).
    pub before: Option<Vec<u8>>,
    /// The content the run left (`None`: the run deleted the file).
    pub after: Option<Vec<u8>>,
}

impl FileChange {
    /// `created`, `deleted` or `modified`.
    pub fn action(&self) -> &'static str {
        match (&self.before, &self.after) {
            (None, _) => "created",
            (_, None) => "deleted",
            _ => "modified",
        }
    }
}

/// How handing a run's changes back to the client ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteBackOutcome {
    /// Every change was written, through the relay of `session`.
    Applied {
        /// The session whose relay wrote them.
        session: String,
    },
    /// These files changed on the client since the run's copy was taken (or appeared there):
    /// nothing was written.
    Conflicts(Vec<String>),
    /// No live session of the project serves files: nothing was written.
    NoSession,
    /// The write failed (and was rolled back where anything had been written).
    Failed(String),
}

/// A streamed project's files, as the server holds them.
pub trait StreamedFiles: Send + Sync + 'static {
    /// Whether `project` is a streamed project the server can copy now (a live session of it
    /// serves its files).
    fn available(&self, project: &str) -> bool;

    /// Writes every file of the project's mirror under `dest` (an empty directory), returning
    /// how many.
    fn copy_out<'a>(
        &'a self,
        project: &'a str,
        preferred_session: &'a str,
        dest: &'a Path,
    ) -> BoxFuture<'a, Result<usize, String>>;

    /// Writes `changes` to the client of a live session of `project` (the one that started
    /// the run, `preferred_session`, when it still lives), all or nothing, each guarded by the
    /// hash of its `before`.
    fn write_back<'a>(
        &'a self,
        project: &'a str,
        preferred_session: &'a str,
        changes: &'a [FileChange],
    ) -> BoxFuture<'a, WriteBackOutcome>;
}
