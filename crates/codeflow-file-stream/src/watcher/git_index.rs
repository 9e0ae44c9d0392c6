//! Following git's index: the filter's tracked set ([`TrackedFiles`]) is read at start (on a
//! thread of its own while the start-up walk runs with `.gitignore` alone; then what the walk
//! left out and git tracks is taken, see `Worker::walk_baseline`), again
//! when the repository's index file changes (`git add`, `git rm`, a checkout, a commit: the
//! index's directory is watched, not recursively) and at every periodic re-stat (which also
//! finds a repository created after the start). When the set changed, the tree is re-stat'ed:
//! newly tracked files are streamed, and files no longer tracked that `.gitignore` leaves out
//! are deleted from the mirror. A flush does not run git: an index change it drains is
//! followed before it completes.

use super::*;
use crate::tracked::TrackedFiles;

/// What one reading of git's index found: the tracked set, and the index file when it was
/// looked for.
pub(super) struct IndexRead {
    pub(super) tracked: Option<TrackedFiles>,
    pub(super) index: Option<PathBuf>,
}

impl IndexRead {
    /// Reads the tracked set of `root`, and with `find_index` (and a repository) where its
    /// index file is.
    fn run(root: &Path, find_index: bool) -> IndexRead {
        let tracked = TrackedFiles::read(root);
        let index = if find_index && tracked.is_some() {
            TrackedFiles::index_file(root).and_then(|file| {
                let dir = file.parent()?.canonicalize().ok()?;
                Some(dir.join(file.file_name()?))
            })
        } else {
            None
        };
        IndexRead { tracked, index }
    }
}

/// git's index being read on a thread of its own while the start-up walk runs (starting git
/// takes milliseconds, reading a large repository's index more).
pub(super) struct IndexReading(std::thread::JoinHandle<IndexRead>);

impl IndexReading {
    /// What it found (`None`: the thread failed; nothing is known).
    pub(super) fn finish(self) -> Option<IndexRead> {
        self.0.join().ok()
    }
}

impl Worker {
    /// Reads the tracked set and returns whether it changed; on the first success, finds the
    /// index file and watches its directory.
    pub(super) fn read_git_index(&mut self) -> bool {
        if !self.filter.config().respect_gitignore {
            return false;
        }
        let read = IndexRead::run(self.filter.root(), self.git_index.is_none());
        let changed = self.filter.set_tracked(read.tracked);
        self.watch_git_index(read.index);
        changed
    }

    /// Starts reading git's index behind the start-up walk (`None`: nothing to read, as
    /// `.gitignore` is not followed; or no thread could start: read now).
    pub(super) fn read_git_index_behind(&mut self) -> Option<IndexReading> {
        if !self.filter.config().respect_gitignore {
            return None;
        }
        let root = self.filter.root().to_path_buf();
        let find_index = self.git_index.is_none();
        match std::thread::Builder::new()
            .name("codeflow-git-index".into())
            .spawn(move || IndexRead::run(&root, find_index))
        {
            Ok(thread) => Some(IndexReading(thread)),
            Err(_) => {
                self.read_git_index();
                None
            }
        }
    }

    /// Watches the directory of the index file found (the first time one is).
    pub(super) fn watch_git_index(&mut self, index: Option<PathBuf>) {
        if self.git_index.is_some() || index.is_none() {
            return;
        }
        self.git_index = index;
        if let Some(dir) = self.git_index.as_ref().and_then(|i| i.parent()) {
            self.events.watch(dir, &self.control);
        }
    }

    /// Whether a raw event's path is in git's directory (the index's): then it is no file of
    /// the tree, and a change of the index itself is noted.
    pub(super) fn git_event(&mut self, path: &Path) -> bool {
        let Some(index) = &self.git_index else {
            return false;
        };
        if !index.parent().is_some_and(|dir| path.starts_with(dir)) {
            return false;
        }
        if path == index {
            self.index_changed = true;
        }
        true
    }

    /// After the index changed: re-reads the tracked set, and re-stats the tree if it changed.
    pub(super) fn follow_index_change(&mut self) {
        if std::mem::take(&mut self.index_changed) && self.read_git_index() {
            tracing::debug!(
                tracked = self.filter.tracked().map_or(0, TrackedFiles::len),
                "git's tracked files changed; re-stat'ing the tree"
            );
            self.full_rescan();
        }
    }
}
