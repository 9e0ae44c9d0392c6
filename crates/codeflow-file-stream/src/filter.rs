//! Which files of a project are streamed: `.gitignore` rules, a configurable exclude list, and
//! "partial" directories such as `node_modules` from which only what a language server reads
//! (type declarations, `package.json`) is taken, and a few files streamed even when
//! `.gitignore` leaves them out because a language server needs them (a build's
//! `compile_commands.json`, usually in an ignored `build/`). Files git tracks (a
//! [`TrackedFiles`] set, given with [`FileFilter::set_tracked`]) are streamed whatever
//! `.gitignore` says, as git itself does: a `lib/` line does not hide a tracked `lib/a.c`, and
//! the walk descends into an ignored directory that holds tracked files (taking only those).
//! The exclude list and partial directories still apply to them.
//!
//! The same [`FileFilter`] decides for the initial manifest and for every watcher event, so the
//! mirror and the live updates agree.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use parking_lot::Mutex;

use crate::error::FileError;
use crate::paths::RelPath;
use crate::tracked::TrackedFiles;

/// What to leave out of the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludeConfig {
    /// gitignore-syntax patterns that are never streamed, whatever `.gitignore` says.
    pub exclude: Vec<String>,
    /// Honour `.gitignore` files (at every level) and `.git/info/exclude`.
    pub respect_gitignore: bool,
    /// Directory names (at any depth) from which only `partial_keep` files are streamed, even
    /// when `.gitignore` ignores them.
    pub partial_dirs: Vec<String>,
    /// gitignore-syntax patterns of the files kept inside `partial_dirs`.
    pub partial_keep: Vec<String>,
    /// Project-relative paths of files streamed even when `.gitignore` ignores them or a
    /// directory on their way (`exclude` still wins). Of an ignored directory on the way only
    /// what leads to them is taken: nothing else in it is streamed or watched.
    pub always: Vec<String>,
}

impl Default for ExcludeConfig {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        ExcludeConfig {
            exclude: s(&[
                ".git/",
                "target/",
                "node_modules/.cache/",
                "__pycache__/",
                ".codeflow/",
                // our own temporary files (see `atomic.rs`)
                ".codeflow-*.tmp",
            ]),
            respect_gitignore: true,
            partial_dirs: s(&["node_modules"]),
            partial_keep: s(&["*.d.ts", "*.d.mts", "*.d.cts", "package.json"]),
            // clangd's compilation database, where CMake and Meson write it (or linked to
            // the root, as clangd's docs suggest).
            always: s(&[
                "compile_commands.json",
                "build/compile_commands.json",
                "builddir/compile_commands.json",
            ]),
        }
    }
}

/// A compiled [`ExcludeConfig`] for one project root.
#[derive(Debug)]
pub struct FileFilter {
    root: PathBuf,
    config: ExcludeConfig,
    exclude: Gitignore,
    keep: Gitignore,
    /// `.gitignore` matchers by directory (relative path); `None` when the directory has none.
    gitignores: Mutex<HashMap<String, Option<Arc<Gitignore>>>>,
    info_exclude: Option<Gitignore>,
    /// The files git tracks under the root (`None`: not a repository, or not read).
    tracked: Option<TrackedFiles>,
}

fn build(root: &Path, patterns: &[String]) -> Result<Gitignore, FileError> {
    let mut b = GitignoreBuilder::new(root);
    for p in patterns {
        b.add_line(None, p)
            .map_err(|e| FileError::InvalidParams(format!("bad pattern `{p}`: {e}")))?;
    }
    b.build()
        .map_err(|e| FileError::InvalidParams(format!("bad patterns: {e}")))
}

impl FileFilter {
    /// The filter of the tree at `root`: its `.gitignore` files and `config`'s exclusions.
    pub fn new(root: impl Into<PathBuf>, config: ExcludeConfig) -> Result<Self, FileError> {
        let root = root.into();
        let exclude = build(&root, &config.exclude)?;
        let keep = build(&root, &config.partial_keep)?;
        let info = root.join(".git/info/exclude");
        let info_exclude =
            (config.respect_gitignore && info.is_file()).then(|| Gitignore::new(&info).0);
        Ok(FileFilter {
            root,
            config,
            exclude,
            keep,
            gitignores: Mutex::new(HashMap::new()),
            info_exclude,
            tracked: None,
        })
    }

    /// This filter with the tracked set of its root read from git's index (see
    /// [`FileFilter::read_git_index`]).
    pub fn following_git_index(mut self) -> Self {
        self.read_git_index();
        self
    }

    /// Reads the files git tracks under the root (`git ls-files`) and streams them even where
    /// `.gitignore` would not; without a repository or `git`, `.gitignore` alone decides.
    /// Returns whether the set changed. Does nothing when `.gitignore` is not respected (then
    /// every file not excluded is streamed anyway).
    pub fn read_git_index(&mut self) -> bool {
        if !self.config.respect_gitignore {
            return false;
        }
        let tracked = TrackedFiles::read(&self.root);
        self.set_tracked(tracked)
    }

    /// Sets the files git tracks (paths relative to the root); returns whether they changed.
    pub fn set_tracked(&mut self, tracked: Option<TrackedFiles>) -> bool {
        if self.tracked == tracked {
            return false;
        }
        self.tracked = tracked;
        true
    }

    /// The files git tracks, as last read.
    pub fn tracked(&self) -> Option<&TrackedFiles> {
        self.tracked.as_ref()
    }

    /// The root this filter judges paths under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The exclusions it was made with.
    pub fn config(&self) -> &ExcludeConfig {
        &self.config
    }

    /// Forgets cached `.gitignore` files (call when one changed).
    pub fn reload_gitignores(&self) {
        self.gitignores.lock().clear();
    }

    fn tracked_file(&self, rel: &RelPath) -> bool {
        self.tracked
            .as_ref()
            .is_some_and(|t| t.has_file(rel.as_str()))
    }

    fn tracked_dir(&self, dir: &str) -> bool {
        self.tracked.as_ref().is_some_and(|t| t.has_dir(dir))
    }

    pub(crate) fn is_partial_dir(&self, name: &str) -> bool {
        self.config.partial_dirs.iter().any(|d| d == name)
    }

    /// The rules of the directory `dir`'s entries, worked out from the root down.
    pub(crate) fn rules_of(&self, dir: &RelPath) -> DirRules {
        let mut rules = DirRules::default().child(self, &RelPath::root(), None);
        let mut prefix = RelPath::root();
        for part in dir.components() {
            prefix = prefix.join_name(part);
            rules = rules.child(self, &prefix, None);
        }
        rules
    }

    /// Decides one entry of a directory whose ancestors were all admitted, by that
    /// directory's `rules` ([`FileFilter::rules_of`], [`DirRules::child`]).
    pub(crate) fn admits(&self, rules: &DirRules, rel: &RelPath, is_dir: bool) -> bool {
        if rel.is_root() {
            return true;
        }
        if self.exclude.matched(rel.as_str(), is_dir).is_ignore() {
            return false;
        }
        let name = rel.as_str().rsplit('/').next().unwrap_or_default();
        if is_dir {
            if rules.in_partial || self.is_partial_dir(name) || self.tracked_dir(rel.as_str()) {
                return true;
            }
            if rules.behind_ignored_way {
                return self.leads_to_always(rel, true);
            }
            return !self.gitignored(rules, rel, true) || self.leads_to_always(rel, true);
        }
        if rules.in_partial {
            return self.keep.matched(name, false).is_ignore();
        }
        if self.tracked_file(rel) {
            return true;
        }
        if rules.behind_ignored_way {
            return self.leads_to_always(rel, is_dir);
        }
        !self.gitignored(rules, rel, false) || self.leads_to_always(rel, false)
    }

    /// Whether `rel` is one of the `always` files (`is_dir` false) or a directory on the way
    /// to one.
    fn leads_to_always(&self, rel: &RelPath, is_dir: bool) -> bool {
        let rel = rel.as_str();
        self.config.always.iter().any(|a| {
            if is_dir {
                a.strip_prefix(rel)
                    .is_some_and(|rest| rest.starts_with('/'))
            } else {
                a == rel
            }
        })
    }

    fn leads_to_always_dir(&self, dir: &str) -> bool {
        self.config.always.iter().any(|a| {
            a.strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// Decides a path on its own, checking every ancestor (for watcher events).
    pub fn is_included(&self, rel: &RelPath, is_dir: bool) -> bool {
        let parts: Vec<&str> = rel.components().collect();
        let mut rules = self.rules_of(&RelPath::root());
        let mut prefix = RelPath::root();
        for (i, part) in parts.iter().enumerate() {
            prefix = prefix.join_name(part);
            let last = i + 1 == parts.len();
            if !self.admits(&rules, &prefix, !last || is_dir) {
                return false;
            }
            if !last {
                rules = rules.child(self, &prefix, None);
            }
        }
        true
    }

    /// Whether `.gitignore` (and `.git/info/exclude`) leave out `rel`, an entry of the
    /// directory `rules` are of.
    fn gitignored(&self, rules: &DirRules, rel: &RelPath, is_dir: bool) -> bool {
        if !self.config.respect_gitignore {
            return false;
        }
        let path = rel.as_str();
        let mut ignored = self
            .info_exclude
            .as_ref()
            .is_some_and(|g| g.matched(path, is_dir).is_ignore());
        // Every directory from the root down to the entry's parent may hold a .gitignore;
        // deeper files take precedence.
        for (gi, at) in &rules.gitignores {
            let m = gi.matched(&path[*at..], is_dir);
            if m.is_ignore() {
                ignored = true;
            } else if m.is_whitelist() {
                ignored = false;
            }
        }
        ignored
    }

    fn gitignore_of(&self, dir: &str) -> Option<Arc<Gitignore>> {
        if let Some(cached) = self.gitignores.lock().get(dir) {
            return cached.clone();
        }
        let abs = if dir.is_empty() {
            self.root.clone()
        } else {
            self.root.join(dir)
        };
        let file = abs.join(".gitignore");
        let gi = file.is_file().then(|| Arc::new(Gitignore::new(&file).0));
        self.gitignores.lock().insert(dir.to_owned(), gi.clone());
        gi
    }
}

/// What the entries of one directory are judged by, worked out once for the directory (a
/// walk judges every entry of a tree): the `.gitignore` files on the way to it, and whether
/// the way goes through a partial directory or an ignored one.
#[derive(Debug, Clone, Default)]
pub(crate) struct DirRules {
    /// The `.gitignore` matchers of the root and of every directory down to this one, each
    /// with the byte offset in an entry's path where the part below its directory starts.
    gitignores: Vec<(Arc<Gitignore>, usize)>,
    /// This directory or an ancestor is a partial directory.
    pub(crate) in_partial: bool,
    /// This directory or an ancestor is an ignored directory admitted only as the way to an
    /// `always` file or to tracked files: only what leads to one of those is taken from it.
    behind_ignored_way: bool,
}

impl DirRules {
    /// The rules of `dir`, an admitted directory whose parent these are the rules of (of the
    /// root: from the default rules). `has_gitignore`: whether its listing has a
    /// `.gitignore` (`None`: look).
    pub(crate) fn child(
        &self,
        filter: &FileFilter,
        dir: &RelPath,
        has_gitignore: Option<bool>,
    ) -> DirRules {
        let mut rules = self.clone();
        let path = dir.as_str();
        if !dir.is_root() {
            let name = path.rsplit('/').next().unwrap_or_default();
            rules.in_partial |= filter.is_partial_dir(name);
            rules.behind_ignored_way |= (filter.leads_to_always_dir(path)
                || filter.tracked_dir(path))
                && self.ignores_dir(filter, dir);
        }
        if filter.config.respect_gitignore
            && has_gitignore != Some(false)
            && let Some(gi) = filter.gitignore_of(path)
        {
            let at = if dir.is_root() { 0 } else { path.len() + 1 };
            rules.gitignores.push((gi, at));
        }
        rules
    }

    /// Whether `.gitignore` ignores `dir`, an entry of the directory these are the rules of.
    fn ignores_dir(&self, filter: &FileFilter, dir: &RelPath) -> bool {
        filter.gitignored(self, dir, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(gitignore: &str, config: ExcludeConfig) -> (tempfile::TempDir, FileFilter) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join(".gitignore"), gitignore).unwrap_or_else(|e| panic!("{e}"));
        let f = FileFilter::new(dir.path(), config).unwrap_or_else(|e| panic!("{e}"));
        (dir, f)
    }

    fn included(f: &FileFilter, path: &str, is_dir: bool) -> bool {
        f.is_included(
            &RelPath::parse(path).unwrap_or_else(|e| panic!("{e}")),
            is_dir,
        )
    }

    #[test]
    fn a_compilation_database_is_streamed_from_an_ignored_build_directory() {
        let (_dir, f) = filter(
            "build/\ncompile_commands.json\n*.o\n",
            ExcludeConfig::default(),
        );
        // The way to it and the file itself, though .gitignore names both.
        assert!(included(&f, "build", true));
        assert!(included(&f, "build/compile_commands.json", false));
        assert!(included(&f, "compile_commands.json", false));
        // Nothing else of the ignored directory, at any depth.
        assert!(!included(&f, "build/main.o", false));
        assert!(!included(&f, "build/CMakeCache.txt", false));
        assert!(!included(&f, "build/CMakeFiles", true));
        assert!(!included(
            &f,
            "build/CMakeFiles/compile_commands.json",
            false
        ));
        // A directory the list does not name is ignored as usual.
        assert!(!included(&f, "sub/compile_commands.json", false));
        // Other ignored files stay out.
        assert!(!included(&f, "src/a.o", false));
        assert!(included(&f, "src/a.c", false));
    }

    #[test]
    fn a_build_directory_that_is_not_ignored_is_streamed_whole() {
        let (_dir, f) = filter("*.o\n", ExcludeConfig::default());
        assert!(included(&f, "build/gen.c", false));
        assert!(included(&f, "build/sub", true));
        assert!(!included(&f, "build/main.o", false));
    }

    #[test]
    fn an_explicit_exclusion_wins_over_always() {
        let mut config = ExcludeConfig::default();
        config.exclude.push("build/".to_owned());
        let (_dir, f) = filter("", config);
        assert!(!included(&f, "build/compile_commands.json", false));
        assert!(included(&f, "compile_commands.json", false));
    }

    fn tracked_filter(gitignore: &str, tracked: &[&str]) -> (tempfile::TempDir, FileFilter) {
        let (dir, mut f) = filter(gitignore, ExcludeConfig::default());
        assert!(f.set_tracked(Some(TrackedFiles::from_paths(tracked.iter().copied()))));
        (dir, f)
    }

    #[test]
    fn a_tracked_file_is_streamed_from_an_ignored_directory_and_nothing_else_of_it() {
        let (_dir, f) = tracked_filter("lib/\n*.o\n", &["lib/a.c", "lib/sub/b.h", "setup.py"]);
        assert!(included(&f, "lib", true));
        assert!(included(&f, "lib/a.c", false));
        assert!(included(&f, "lib/sub", true));
        assert!(included(&f, "lib/sub/b.h", false));
        // Untracked files and directories of the ignored directory stay out, at any depth.
        assert!(!included(&f, "lib/b.o", false));
        assert!(!included(&f, "lib/new.c", false));
        assert!(!included(&f, "lib/sub/c.h", false));
        assert!(!included(&f, "lib/other", true));
        assert!(!included(&f, "lib/other/x.c", false));
        assert!(included(&f, "setup.py", false));
    }

    #[test]
    fn a_tracked_file_a_pattern_names_is_streamed() {
        let (_dir, f) = tracked_filter("*.h\n", &["src/api.h"]);
        assert!(included(&f, "src/api.h", false));
        assert!(!included(&f, "src/untracked.h", false));
        assert!(included(&f, "src/untracked.c", false));
    }

    #[test]
    fn the_exclude_list_and_partial_directories_win_over_tracking() {
        let (_dir, f) = tracked_filter(
            "",
            &[
                "target/debug/x.rs",
                ".git/config",
                "node_modules/p/index.js",
                "node_modules/p/index.d.ts",
            ],
        );
        assert!(!included(&f, "target", true));
        assert!(!included(&f, "target/debug/x.rs", false));
        assert!(!included(&f, ".git/config", false));
        assert!(!included(&f, "node_modules/p/index.js", false));
        assert!(included(&f, "node_modules/p/index.d.ts", false));
    }

    #[test]
    fn without_a_tracked_set_gitignore_alone_decides() {
        let (_dir, mut f) = tracked_filter("lib/\n", &["lib/a.c"]);
        assert!(included(&f, "lib/a.c", false));
        assert!(f.set_tracked(None));
        assert!(!f.set_tracked(None), "unchanged");
        assert!(!included(&f, "lib", true));
        assert!(!included(&f, "lib/a.c", false));
    }

    #[test]
    fn the_compilation_database_rule_still_holds_beside_tracked_files() {
        let (_dir, f) = tracked_filter("build/\n", &["build/gen/config.h"]);
        assert!(included(&f, "build/compile_commands.json", false));
        assert!(included(&f, "build/gen/config.h", false));
        assert!(!included(&f, "build/main.o", false));
        assert!(!included(&f, "build/CMakeFiles", true));
    }
}
