//! The tree walk: every directory the [`FileFilter`] admits below a start directory is handed
//! to `on_dir` before it is listed (the watcher watches it there, so a file created after the
//! listing still has an event), every admitted regular file to `on_file` with its metadata.
//!
//! [`walk_parallel`] lists directories on a few threads: the relay's start-up walk (10,000
//! files in 1,200 directories: listings, a `statx` per file, filter rules, an inotify watch per
//! directory) kept one core busy for ~60 ms while the others waited, and nothing else of the
//! start-up can begin before it ends. Its callbacks still run one at a time.
//!
//! Only entries a listing reports as directories are entered, and a directory's path is its
//! parent's path and its name: no symlink is followed on the way down (a directory swapped
//! for a symlink between its parent's listing and its own is the local race outside the
//! jail's threat model, see `jail.rs`). A symlink counts as a file when [`Jail::resolve`]
//! finds it inside the root and it leads to a regular file; other symlinks are skipped.

use std::fs::{DirEntry, Metadata};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Condvar, Mutex};

use crate::error::FileError;
use crate::filter::{DirRules, FileFilter};
use crate::jail::Jail;
use crate::limits::Limits;
use crate::paths::RelPath;

/// One regular file met by a walk.
pub(crate) struct WalkedFile {
    pub rel: RelPath,
    pub abs: PathBuf,
    pub meta: Metadata,
}

/// A directory to list.
struct Dir {
    rel: RelPath,
    abs: PathBuf,
    /// The rules of its parent's entries (it is one of them).
    above: Arc<DirRules>,
    /// It or an ancestor is a partial directory.
    in_partial: bool,
}

/// What one listing found: the admitted files (with their metadata) and directories, and the
/// entries the filter left out (path, whether a directory).
struct Listing {
    files: Vec<WalkedFile>,
    dirs: Vec<Dir>,
    left_out: Vec<(RelPath, bool)>,
}

/// Walks `start` (a directory below `jail`'s root) depth-first through `filter`, calling
/// `on_dir` for every admitted directory (including `start`; with whether it is in a partial
/// directory) before it is listed, and `on_file` for every admitted regular file, in path
/// order within a directory.
pub(crate) fn walk(
    jail: &Jail,
    filter: &FileFilter,
    start: &RelPath,
    on_dir: &mut dyn FnMut(&RelPath, &Path, bool),
    on_file: &mut dyn FnMut(WalkedFile) -> Result<(), FileError>,
) -> Result<(), FileError> {
    let limits = Limits::default();
    let first = first_dir(jail, filter, start)?;
    on_dir(&first.rel, &first.abs, first.in_partial);
    let mut stack = vec![first];
    while let Some(dir) = stack.pop() {
        let Some(listing) = list(jail, filter, &limits, &dir) else {
            continue;
        };
        for sub in &listing.dirs {
            on_dir(&sub.rel, &sub.abs, sub.in_partial);
        }
        for file in listing.files {
            on_file(file)?;
        }
        stack.extend(listing.dirs);
    }
    Ok(())
}

/// [`walk`] on up to `threads` threads (this one included). The callbacks run one at a time,
/// in no fixed order across directories: `on_dir` for a listing's subdirectories together
/// (each still before its own listing), `on_file` for the files a thread found whenever no
/// other thread is in it (so a thread never waits for it but at its end). The first error of
/// `on_file` stops the walk and is returned. Returns the entries the filter left out (path,
/// whether a directory), for a second look once the filter knows more ([`walk_one`]).
pub(crate) fn walk_parallel(
    jail: &Jail,
    filter: &FileFilter,
    start: &RelPath,
    threads: usize,
    on_dir: &mut (dyn FnMut(&RelPath, &Path, bool) + Send),
    on_file: &mut (dyn FnMut(WalkedFile) -> Result<(), FileError> + Send),
) -> Result<Vec<(RelPath, bool)>, FileError> {
    let limits = Limits::default();
    let first = first_dir(jail, filter, start)?;
    on_dir(&first.rel, &first.abs, first.in_partial);
    let queue = Mutex::new(Queue {
        dirs: vec![first],
        busy: 0,
        failed: None,
        left_out: Vec::new(),
    });
    let ready = Condvar::new();
    let on_dir = Mutex::new(on_dir);
    let on_file = Mutex::new(on_file);
    let on_file_failed = AtomicBool::new(false);
    let work = || {
        let mut found: Vec<WalkedFile> = Vec::new();
        while let Some(dir) = Queue::take(&queue, &ready) {
            let Some(mut listing) = list(jail, filter, &limits, &dir) else {
                Queue::done(&queue, &ready, Ok(()), Vec::new(), Vec::new());
                continue;
            };
            if !listing.dirs.is_empty() {
                let mut on_dir = on_dir.lock();
                for sub in &listing.dirs {
                    (*on_dir)(&sub.rel, &sub.abs, sub.in_partial);
                }
            }
            found.extend(listing.files);
            let outcome = match on_file.try_lock() {
                Some(mut on_file) => hand_over(&mut found, &mut **on_file, &on_file_failed),
                None => Ok(()),
            };
            let left_out = std::mem::take(&mut listing.left_out);
            Queue::done(&queue, &ready, outcome, listing.dirs, left_out);
        }
        if !found.is_empty() {
            let outcome = hand_over(&mut found, &mut **on_file.lock(), &on_file_failed);
            Queue::done_late(&queue, outcome);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            // A thread that cannot start leaves its share to the others.
            let _ = std::thread::Builder::new()
                .name("codeflow-walk".into())
                .spawn_scoped(scope, work);
        }
        work();
    });
    let queue = queue.into_inner();
    match queue.failed {
        Some(e) => Err(e),
        None => Ok(queue.left_out),
    }
}

/// Takes `rel`, an entry a walk's filter left out (`is_dir`: it was a directory) and admits
/// now: a directory is walked ([`walk`]), a file handed to `on_file` as a walk would.
pub(crate) fn walk_one(
    jail: &Jail,
    filter: &FileFilter,
    rel: &RelPath,
    is_dir: bool,
    on_dir: &mut dyn FnMut(&RelPath, &Path, bool),
    on_file: &mut dyn FnMut(WalkedFile) -> Result<(), FileError>,
) -> Result<(), FileError> {
    if is_dir {
        return walk(jail, filter, rel, on_dir, on_file);
    }
    let abs = jail.canonical_root().join(rel.as_str());
    let Ok(lstat) = std::fs::symlink_metadata(&abs) else {
        return Ok(());
    };
    let file_type = lstat.file_type();
    match file_meta(jail, rel, &abs, file_type, || Ok(lstat)) {
        Some(meta) => on_file(WalkedFile {
            rel: rel.clone(),
            abs,
            meta,
        }),
        None => Ok(()),
    }
}

/// Hands the files found so far to `on_file` (called with its lock held), unless it failed
/// before: then it is never called again.
fn hand_over(
    found: &mut Vec<WalkedFile>,
    on_file: &mut dyn FnMut(WalkedFile) -> Result<(), FileError>,
    failed: &AtomicBool,
) -> Result<(), FileError> {
    if failed.load(Ordering::Relaxed) {
        found.clear();
        return Ok(());
    }
    let outcome = found.drain(..).try_for_each(on_file);
    if outcome.is_err() {
        failed.store(true, Ordering::Relaxed);
    }
    outcome
}

/// The directories waiting to be listed by [`walk_parallel`]'s threads.
struct Queue {
    dirs: Vec<Dir>,
    /// Directories being listed: while any is, more may come.
    busy: usize,
    failed: Option<FileError>,
    /// What the listings' filter left out.
    left_out: Vec<(RelPath, bool)>,
}

impl Queue {
    /// The next directory to list, waiting while others are listed; `None` when the walk is
    /// over (or failed).
    fn take(queue: &Mutex<Queue>, ready: &Condvar) -> Option<Dir> {
        let mut q = queue.lock();
        loop {
            if q.failed.is_some() {
                return None;
            }
            if let Some(dir) = q.dirs.pop() {
                q.busy += 1;
                return Some(dir);
            }
            if q.busy == 0 {
                return None;
            }
            ready.wait(&mut q);
        }
    }

    /// A directory is listed: its subdirectories wait their turn (what its filter left out is
    /// kept), or its error ends the walk.
    fn done(
        queue: &Mutex<Queue>,
        ready: &Condvar,
        outcome: Result<(), FileError>,
        dirs: Vec<Dir>,
        left_out: Vec<(RelPath, bool)>,
    ) {
        let mut q = queue.lock();
        q.busy -= 1;
        q.left_out.extend(left_out);
        let wake = match outcome {
            Ok(()) => !dirs.is_empty() || q.busy == 0,
            Err(e) => {
                q.failed.get_or_insert(e);
                true
            }
        };
        q.dirs.extend(dirs);
        drop(q);
        if wake {
            ready.notify_all();
        }
    }

    /// A thread's last files were handed over (after the walk): its error, if any, is the
    /// walk's.
    fn done_late(queue: &Mutex<Queue>, outcome: Result<(), FileError>) {
        if let Err(e) = outcome {
            queue.lock().failed.get_or_insert(e);
        }
    }
}

/// The start directory of a walk, with the rules of its parent's entries.
fn first_dir(jail: &Jail, filter: &FileFilter, start: &RelPath) -> Result<Dir, FileError> {
    let abs = jail.resolve(start)?;
    let parts: Vec<&str> = start.components().collect();
    let above = match parts.split_last() {
        Some((_, parent)) => filter.rules_of(&RelPath::from_parts(parent)?),
        None => DirRules::default(),
    };
    Ok(Dir {
        rel: start.clone(),
        abs,
        above: Arc::new(above),
        in_partial: parts.iter().any(|c| filter.is_partial_dir(c)),
    })
}

/// Lists `dir`: its admitted files with their metadata and its admitted subdirectories, in
/// name order (`None`: it vanished or cannot be read, which is not fatal: the tree is live).
fn list(jail: &Jail, filter: &FileFilter, limits: &Limits, dir: &Dir) -> Option<Listing> {
    let entries = match std::fs::read_dir(&dir.abs) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::debug!(dir = %dir.rel, error = %e, "skipping unreadable directory");
            return None;
        }
    };
    let mut named: Vec<(String, DirEntry)> = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        match entry.file_name().into_string() {
            Ok(name) => named.push((name, entry)),
            Err(_) => tracing::debug!(dir = %dir.rel, "skipping a non-UTF-8 file name"),
        }
    }
    named.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let has_gitignore = named
        .binary_search_by(|(name, _)| name.as_str().cmp(".gitignore"))
        .is_ok();
    let rules = Arc::new(dir.above.child(filter, &dir.rel, Some(has_gitignore)));
    let mut listing = Listing {
        files: Vec::new(),
        dirs: Vec::new(),
        left_out: Vec::new(),
    };
    for (name, entry) in named {
        let Ok(rel) = dir.rel.child(&name, limits) else {
            continue;
        };
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            if filter.admits(&rules, &rel, true) {
                listing.dirs.push(Dir {
                    rel,
                    abs: child_path(&dir.abs, &name),
                    above: Arc::clone(&rules),
                    in_partial: rules.in_partial || filter.is_partial_dir(&name),
                });
            } else {
                listing.left_out.push((rel, true));
            }
            continue;
        }
        if !(file_type.is_file() || file_type.is_symlink()) {
            continue;
        }
        if !filter.admits(&rules, &rel, false) {
            listing.left_out.push((rel, false));
            continue;
        }
        let abs = child_path(&dir.abs, &name);
        if let Some(meta) = file_meta(jail, &rel, &abs, file_type, || entry.metadata()) {
            listing.files.push(WalkedFile { rel, abs, meta });
        }
    }
    Some(listing)
}

/// The metadata of an entry the filter admitted as a file: a regular file's own (`stat`, read
/// only then), a symlink's target's when it is a regular file inside the root; `None` for
/// anything else, or what vanished.
fn file_meta(
    jail: &Jail,
    rel: &RelPath,
    abs: &Path,
    file_type: std::fs::FileType,
    stat: impl FnOnce() -> std::io::Result<Metadata>,
) -> Option<Metadata> {
    if file_type.is_symlink() {
        // Followed only to a regular file inside the root.
        jail.resolve(rel).ok()?;
        return std::fs::metadata(abs).ok().filter(Metadata::is_file);
    }
    if !file_type.is_file() {
        return None;
    }
    stat().ok()
}

/// `dir/name`, in one allocation.
fn child_path(dir: &Path, name: &str) -> PathBuf {
    let mut path = PathBuf::with_capacity(dir.as_os_str().len() + 1 + name.len());
    path.push(dir);
    path.push(name);
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::ExcludeConfig;
    use crate::tracked::TrackedFiles;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap_or(root)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
    }

    /// A tree with something for every rule: nested `.gitignore`s (one re-admitting what
    /// its parent ignores), a partial directory, an ignored directory with a tracked file and
    /// the compilation database, symlinks in and out of the root, a name the jail refuses.
    fn tree() -> (tempfile::TempDir, tempfile::TempDir, Jail, FileFilter) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        write(root, ".gitignore", "*.log\nbuild/\nlib/\n");
        write(root, "a.rs", "a");
        write(root, "x.log", "ignored");
        write(root, "src/main.rs", "m");
        write(root, "src/.gitignore", "gen/\n!keep.log\n");
        write(root, "src/keep.log", "re-admitted below");
        write(root, "src/gen/out.rs", "ignored by src/.gitignore");
        write(root, "src/deep/er/x.rs", "x");
        write(root, "src/deep/er/y.log", "ignored from the root");
        write(root, "node_modules/p/index.js", "left out");
        write(root, "node_modules/p/index.d.ts", "kept");
        write(root, "node_modules/p/package.json", "{}");
        write(root, "build/compile_commands.json", "[]");
        write(root, "build/main.o", "ignored");
        write(root, "lib/a.c", "tracked");
        write(root, "lib/b.c", "untracked");
        write(root, "target/debug/x", "excluded");
        write(root, "odd%2e/f.rs", "a name the jail refuses");
        for i in 0..40 {
            write(root, &format!("many/d{}/f{i}.rs", i % 9), "many");
        }
        write(outside.path(), "secret.rs", "outside");
        std::os::unix::fs::symlink(outside.path().join("secret.rs"), root.join("out.rs"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(outside.path(), root.join("outdir"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(root.join("a.rs"), root.join("in.rs"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(root.join("src"), root.join("srclink"))
            .unwrap_or_else(|e| panic!("{e}"));
        let jail = Jail::new(root).unwrap_or_else(|e| panic!("{e}"));
        let mut filter = FileFilter::new(jail.canonical_root(), ExcludeConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        filter.set_tracked(Some(TrackedFiles::from_paths(["lib/a.c"])));
        (dir, outside, jail, filter)
    }

    type Found = (Vec<(String, bool)>, Vec<(String, u64)>);

    fn serial(jail: &Jail, filter: &FileFilter, start: &RelPath) -> Found {
        let (mut dirs, mut files) = (Vec::new(), Vec::new());
        walk(
            jail,
            filter,
            start,
            &mut |rel, abs, partial| {
                assert_eq!(abs, jail.canonical_root().join(rel.as_str()));
                dirs.push((rel.as_str().to_owned(), partial));
            },
            &mut |f| {
                assert_eq!(f.abs, jail.canonical_root().join(f.rel.as_str()));
                files.push((f.rel.as_str().to_owned(), f.meta.len()));
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        (dirs, files)
    }

    fn parallel(jail: &Jail, filter: &FileFilter, start: &RelPath, threads: usize) -> Found {
        let (mut dirs, mut files) = (Vec::new(), Vec::new());
        walk_parallel(
            jail,
            filter,
            start,
            threads,
            &mut |rel, _, partial| dirs.push((rel.as_str().to_owned(), partial)),
            &mut |f| {
                files.push((f.rel.as_str().to_owned(), f.meta.len()));
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        dirs.sort();
        files.sort();
        (dirs, files)
    }

    fn names(found: &[(String, u64)]) -> Vec<&str> {
        let mut names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn the_walk_takes_what_the_filter_admits_and_no_link_out_of_the_root() {
        let (_dir, _outside, jail, filter) = tree();
        let (dirs, files) = serial(&jail, &filter, &RelPath::root());
        let mut expected = vec![
            ".gitignore",
            "a.rs",
            "build/compile_commands.json",
            "in.rs",
            "lib/a.c",
            "node_modules/p/index.d.ts",
            "node_modules/p/package.json",
            "src/.gitignore",
            "src/deep/er/x.rs",
            "src/keep.log",
            "src/main.rs",
        ];
        let many: Vec<String> = (0..40)
            .map(|i| format!("many/d{}/f{i}.rs", i % 9))
            .collect();
        expected.extend(many.iter().map(String::as_str));
        expected.sort_unstable();
        assert_eq!(names(&files), expected);
        // Every directory admitted is handed over (partial ones marked), nothing else.
        let dir_names: Vec<&str> = dirs.iter().map(|(d, _)| d.as_str()).collect();
        for d in [
            "",
            "src",
            "src/deep/er",
            "build",
            "lib",
            "node_modules/p",
            "many/d3",
        ] {
            assert!(dir_names.contains(&d), "{d} in {dir_names:?}");
        }
        for d in ["src/gen", "target", "outdir", "srclink", "odd%2e"] {
            assert!(!dir_names.contains(&d), "{d} in {dir_names:?}");
        }
        assert!(dirs.contains(&("node_modules/p".to_owned(), true)));
        assert!(dirs.contains(&("src".to_owned(), false)));
        // Each file of a directory after the directory's own turn, in name order.
        let src: Vec<&str> = files
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| n.starts_with("src/") && n.matches('/').count() == 1)
            .collect();
        assert_eq!(src, ["src/.gitignore", "src/keep.log", "src/main.rs"]);
    }

    #[test]
    fn a_parallel_walk_finds_what_the_serial_walk_finds() {
        let (_dir, _outside, jail, filter) = tree();
        for start in ["", "src", "node_modules", "many"] {
            let start = RelPath::parse(start).unwrap_or_else(|e| panic!("{e}"));
            let (mut dirs, mut files) = serial(&jail, &filter, &start);
            dirs.sort();
            files.sort();
            for threads in [1, 2, 4] {
                assert_eq!(
                    parallel(&jail, &filter, &start, threads),
                    (dirs.clone(), files.clone()),
                    "from {start}, {threads} threads"
                );
            }
        }
    }

    #[test]
    fn a_parallel_walk_stops_at_the_first_error() {
        let (_dir, _outside, jail, filter) = tree();
        let mut seen = 0;
        let result = walk_parallel(
            &jail,
            &filter,
            &RelPath::root(),
            2,
            &mut |_, _, _| {},
            &mut |_| {
                seen += 1;
                if seen == 5 {
                    Err(FileError::rejected("too many"))
                } else {
                    Ok(())
                }
            },
        );
        assert!(matches!(result, Err(FileError::PathRejected { .. })));
        // The other thread ends the directory it had (at most 5 files here), no more.
        assert!(
            seen <= 10,
            "the walk went on after the error ({seen} files)"
        );
    }
}
