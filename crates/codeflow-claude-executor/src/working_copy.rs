//! A run's private working copy of a streamed project, and the record of what it changed.
//!
//! Layout, under `<state_dir>/<project>/runs/<runId>/`:
//! - while the run lives: `base/` (the project as copied from the mirror, never touched) and
//!   `work/` (the same files, where the CLI runs);
//! - once it ended: `changes.json` ([`Record`]), and `before/<path>` / `after/<path>` holding
//!   the two sides of every changed file; `base/` and `work/` are removed.
//!
//! Only regular files count: a symbolic link or other special file the run made is ignored (and
//! never followed).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::streamed::FileChange;

/// Most run records kept per project; older ones are deleted when a run ends.
pub const KEEP_RUNS: usize = 50;

/// The directory of one run of a project.
pub fn run_dir(state_dir: &Path, project: &str, run_id: &str) -> PathBuf {
    runs_dir(state_dir, project).join(run_id)
}

/// The directory of a project's runs.
pub fn runs_dir(state_dir: &Path, project: &str) -> PathBuf {
    state_dir.join(project).join("runs")
}

/// `base/` and `work/` of a run directory.
pub fn base_and_work(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("base"), dir.join("work"))
}

/// One changed file as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedFile {
    /// The project-relative path.
    pub path: String,
    /// `created`, `modified` or `deleted`.
    pub action: String,
}

/// What a run changed and what became of it (`changes.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The run's id.
    pub run_id: String,
    /// The project the run was for.
    pub project: String,
    /// Every file the run changed.
    pub files: Vec<ChangedFile>,
    /// Whether the changes were written to the client.
    pub applied: bool,
    /// Files that changed on the client meanwhile (nothing was written).
    pub conflicts: Vec<String>,
    /// What happened to the changes, in words.
    pub write_back: String,
    /// Milliseconds since the Unix epoch.
    pub ended_at: u64,
}

/// Creates the run directory with an empty `base/` (the caller fills it) .
pub fn prepare(dir: &Path) -> std::io::Result<PathBuf> {
    let (base, _) = base_and_work(dir);
    std::fs::create_dir_all(&base)?;
    Ok(base)
}

/// Copies every regular file under `from` to `to` (created).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(to)?;
    let mut copied = 0;
    for rel in regular_files(from)? {
        let target = to.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from.join(&rel), &target)?;
        copied += 1;
    }
    Ok(copied)
}

/// Gives `root` and everything under it to the user and group the CLI runs as (`None`: left
/// as is), so a run under another user can write its working copy — and only that.
pub fn hand_over(root: &Path, uid: Option<u32>, gid: Option<u32>) -> std::io::Result<()> {
    if uid.is_none() && gid.is_none() {
        return Ok(());
    }
    std::os::unix::fs::lchown(root, uid, gid)?;
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            hand_over(&entry.path(), uid, gid)?;
        } else {
            std::os::unix::fs::lchown(entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Every regular file under `root`, relative, `/`-separated, sorted. Symbolic links are not
/// followed.
pub fn regular_files(root: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && prefix.is_empty() => {
                return Ok(out);
            }
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not UTF-8: no client path can name it
            };
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push((entry.path(), rel));
            } else if kind.is_file() {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The files `work` holds differently from `base`: created, modified, deleted.
pub fn changes(base: &Path, work: &Path) -> std::io::Result<Vec<FileChange>> {
    let before = regular_files(base)?;
    let after = regular_files(work)?;
    let mut all: Vec<&String> = before.iter().chain(after.iter()).collect();
    all.sort();
    all.dedup();
    let mut out = Vec::new();
    for rel in all {
        let old = read_if(&base.join(rel), before.binary_search(rel).is_ok())?;
        let new = read_if(&work.join(rel), after.binary_search(rel).is_ok())?;
        if old != new {
            out.push(FileChange {
                path: rel.clone(),
                before: old,
                after: new,
            });
        }
    }
    Ok(out)
}

fn read_if(path: &Path, present: bool) -> std::io::Result<Option<Vec<u8>>> {
    if present {
        std::fs::read(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Stores the changes and the record in `dir`, then removes `base/` and `work/`.
pub fn keep(dir: &Path, changes: &[FileChange], record: &Record) -> std::io::Result<()> {
    for change in changes {
        for (side, content) in [("before", &change.before), ("after", &change.after)] {
            if let Some(bytes) = content {
                let path = dir.join(side).join(&change.path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(path, bytes)?;
            }
        }
    }
    let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    crate::atomic::write_atomic(&dir.join("changes.json"), &bytes)?;
    let (base, work) = base_and_work(dir);
    for tree in [base, work] {
        match std::fs::remove_dir_all(&tree) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// A kept run's record and changes; `None` when the run has no record (yet).
pub fn load(dir: &Path) -> std::io::Result<Option<(Record, Vec<FileChange>)>> {
    let bytes = match std::fs::read(dir.join("changes.json")) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let record: Record = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
    let mut changes = Vec::with_capacity(record.files.len());
    for file in &record.files {
        let side = |name: &str| -> std::io::Result<Option<Vec<u8>>> {
            match std::fs::read(dir.join(name).join(&file.path)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        };
        changes.push(FileChange {
            path: file.path.clone(),
            before: side("before")?,
            after: side("after")?,
        });
    }
    Ok(Some((record, changes)))
}

/// Removes run directories without a record: working copies of runs that never started (a
/// server that died while copying). Called on start, after live runs were closed.
pub fn sweep(runs: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(runs) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && !entry.path().join("changes.json").exists()
        {
            std::fs::remove_dir_all(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Deletes the oldest run directories of a project beyond `keep` (by modification time).
pub fn prune(runs: &Path, keep: usize) -> std::io::Result<()> {
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(runs)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if dirs.len() <= keep {
        return Ok(());
    }
    dirs.sort();
    let excess = dirs.len() - keep;
    for (_, dir) in dirs.into_iter().take(excess) {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}

/// The changes as one unified diff (`a/<path>` → `b/<path>`; `/dev/null` for a created or
/// deleted side). Content that is not UTF-8 is named, not shown.
pub fn unified_diff(changes: &[FileChange]) -> String {
    let mut out = String::new();
    for change in changes {
        let old_name = match change.before {
            Some(_) => format!("a/{}", change.path),
            None => "/dev/null".to_owned(),
        };
        let new_name = match change.after {
            Some(_) => format!("b/{}", change.path),
            None => "/dev/null".to_owned(),
        };
        let text = |side: &Option<Vec<u8>>| -> Option<String> {
            match side {
                None => Some(String::new()),
                Some(b) => String::from_utf8(b.clone()).ok(),
            }
        };
        out.push_str(&format!("diff --git a/{0} b/{0}\n", change.path));
        match (change.before.is_none(), change.after.is_none()) {
            (true, _) => out.push_str("new file\n"),
            (_, true) => out.push_str("deleted file\n"),
            _ => {}
        }
        match (text(&change.before), text(&change.after)) {
            (Some(old), Some(new)) => {
                let diff = similar::TextDiff::from_lines(&old, &new);
                out.push_str(
                    &diff
                        .unified_diff()
                        .context_radius(3)
                        .header(&old_name, &new_name)
                        .to_string(),
                );
            }
            _ => out.push_str(&format!("Binary files {old_name} and {new_name} differ\n")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_working_copy_is_handed_to_the_runs_user() {
        use std::os::unix::fs::MetadataExt;
        // /proc/self belongs to the process's effective user.
        if std::fs::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
            return; // only root may give files away
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("sub")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(work.join("sub/f.txt"), "x").unwrap_or_else(|e| panic!("{e}"));
        hand_over(&work, Some(65534), Some(65534)).unwrap_or_else(|e| panic!("{e}"));
        for path in [work.clone(), work.join("sub"), work.join("sub/f.txt")] {
            let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (meta.uid(), meta.gid()),
                (65534, 65534),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn changes_between_trees_and_their_diff() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let base = dir.path().join("base");
        let work = dir.path().join("work");
        for (rel, text) in [
            ("a.txt", "one\ntwo\n"),
            ("sub/b.txt", "b\n"),
            ("c.txt", "c\n"),
        ] {
            let p = base.join(rel);
            std::fs::create_dir_all(p.parent().unwrap_or(&base)).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(p, text).unwrap_or_else(|e| panic!("{e}"));
        }
        copy_tree(&base, &work).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(work.join("a.txt"), "one\nTWO\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::remove_file(work.join("c.txt")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(work.join("sub/new.txt"), "new\n").unwrap_or_else(|e| panic!("{e}"));
        let found = changes(&base, &work).unwrap_or_else(|e| panic!("{e}"));
        let summary: Vec<(&str, &str)> = found
            .iter()
            .map(|c| (c.path.as_str(), c.action()))
            .collect();
        assert_eq!(
            summary,
            [
                ("a.txt", "modified"),
                ("c.txt", "deleted"),
                ("sub/new.txt", "created")
            ]
        );
        let diff = unified_diff(&found);
        assert!(diff.contains("--- a/a.txt\n+++ b/a.txt\n"), "{diff}");
        assert!(diff.contains("-two\n+TWO\n"), "{diff}");
        assert!(
            diff.contains("--- /dev/null\n+++ b/sub/new.txt\n"),
            "{diff}"
        );

        let record = Record {
            run_id: "r".into(),
            project: "p".into(),
            files: found
                .iter()
                .map(|c| ChangedFile {
                    path: c.path.clone(),
                    action: c.action().into(),
                })
                .collect(),
            applied: false,
            conflicts: vec!["a.txt".into()],
            write_back: "conflict".into(),
            ended_at: 1,
        };
        keep(dir.path(), &found, &record).unwrap_or_else(|e| panic!("{e}"));
        assert!(!base.exists() && !work.exists());
        let (loaded, again) = load(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no record"));
        assert_eq!(loaded, record);
        assert_eq!(again, found);
    }
}
