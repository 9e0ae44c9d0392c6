//! Following git's index: the filter's tracked set ([`TrackedFiles`]) is read at start, again
//! when the repository's index file changes (`git add`, `git rm`, a checkout, a commit: the
//! index's directory is watched, not recursively) and at every periodic re-stat (which also
//! finds a repository created after the start). When the set changed, the tree is re-stat'ed:
//! newly tracked files are streamed, and files no longer tracked that `.gitignore` leaves out
//! are deleted from the mirror. A flush does not run git: an index change it drains is
//! followed before it completes.

use super::*;
use crate::tracked::TrackedFiles;

impl Worker {
    /// Reads the tracked set and returns whether it changed; on the first success, finds the
    /// index file and watches its directory.
    pub(super) fn read_git_index(&mut self) -> bool {
        let changed = self.filter.read_git_index();
        if self.git_index.is_none() && self.filter.tracked().is_some() {
            self.git_index = TrackedFiles::index_file(self.filter.root()).and_then(|file| {
                let dir = file.parent()?.canonicalize().ok()?;
                Some(dir.join(file.file_name()?))
            });
            if let Some(dir) = self.git_index.as_ref().and_then(|i| i.parent()) {
                self.events.watch(dir, &self.control);
            }
        }
        changed
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
