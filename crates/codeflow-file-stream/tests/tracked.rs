//! Files git tracks: a Watcher on a real git repository streams them even where `.gitignore`
//! names them, and follows `git add` / `git rm --cached` through the index.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use codeflow_file_stream::{
    ChangeType, ExcludeConfig, FileChanged, FileFilter, RelPath, Watcher, WatcherConfig,
};
use common::*;
use tokio::sync::mpsc;

fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

/// A repository with `.gitignore` naming `lib/`, `lib/a.c` tracked, `lib/b.o` not.
fn repo() -> tempfile::TempDir {
    let dir = temp();
    write(dir.path(), ".gitignore", b"lib/\n");
    write(dir.path(), "setup.py", b"print()\n");
    write(dir.path(), "lib/a.c", b"int a;\n");
    write(dir.path(), "lib/b.o", b"\x7fELF");
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", ".gitignore", "setup.py"]);
    git(dir.path(), &["add", "-f", "lib/a.c"]);
    dir
}

/// Flushes until an event for `path` of kind `kind` arrives (the index's event may come after
/// a first flush), or panics after 10 s.
async fn wait_for(
    watcher: &Watcher,
    rx: &mut mpsc::Receiver<FileChanged>,
    path: &str,
    kind: ChangeType,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        watcher.flush().await.expect("flush");
        while let Ok(ev) = rx.try_recv() {
            if ev.path == path && ev.change_type == kind {
                return;
            }
            seen.push((ev.path, ev.change_type));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {kind:?} for {path}; saw {seen:?}");
}

fn rel(path: &str) -> RelPath {
    RelPath::parse(path).expect("path")
}

#[tokio::test]
async fn a_tracked_file_in_an_ignored_directory_is_streamed_and_followed() {
    let dir = repo();
    let root = root_str(dir.path());
    let (sink, mut rx) = mpsc::channel(64);
    let watcher = Watcher::start(&root, WatcherConfig::default(), sink)
        .await
        .expect("watcher");
    let manifest = watcher.manifest();
    assert!(
        manifest.get(&rel("lib/a.c")).is_some(),
        "tracked, though ignored"
    );
    assert!(manifest.get(&rel("setup.py")).is_some());
    assert!(
        manifest.get(&rel("lib/b.o")).is_none(),
        "untracked and ignored"
    );
    assert!(
        manifest
            .iter()
            .all(|(r, _)| !r.as_str().starts_with(".git/"))
    );

    // An edit of the tracked file is streamed: its directory is watched.
    write(dir.path(), "lib/a.c", b"int a = 1;\n");
    wait_for(
        &watcher,
        &mut rx,
        &format!("{root}/lib/a.c"),
        ChangeType::Changed,
    )
    .await;

    // A new file there is ignored until git tracks it.
    write(dir.path(), "lib/new.c", b"int n;\n");
    watcher.flush().await.expect("flush");
    while let Ok(ev) = rx.try_recv() {
        assert_ne!(ev.path, format!("{root}/lib/new.c"), "untracked: {ev:?}");
    }
    git(dir.path(), &["add", "-f", "lib/new.c"]);
    wait_for(
        &watcher,
        &mut rx,
        &format!("{root}/lib/new.c"),
        ChangeType::Created,
    )
    .await;

    // Untracked again: ignored again, so it leaves the mirror.
    git(dir.path(), &["rm", "-q", "-f", "--cached", "lib/a.c"]);
    wait_for(
        &watcher,
        &mut rx,
        &format!("{root}/lib/a.c"),
        ChangeType::Deleted,
    )
    .await;
    watcher.stop().await;
}

#[tokio::test]
async fn a_root_below_the_repository_top_streams_its_tracked_files() {
    let dir = temp();
    write(dir.path(), "py/.gitignore", b"lib/\n");
    write(dir.path(), "py/lib/a.c", b"int a;\n");
    write(dir.path(), "py/lib/b.o", b"obj");
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "-f", "py/lib/a.c"]);
    let root = root_str(&dir.path().join("py"));
    let (sink, mut rx) = mpsc::channel(64);
    let watcher = Watcher::start(&root, WatcherConfig::default(), sink)
        .await
        .expect("watcher");
    assert!(watcher.manifest().get(&rel("lib/a.c")).is_some());
    assert!(watcher.manifest().get(&rel("lib/b.o")).is_none());
    // The index lives above the root: its changes are still followed.
    write(dir.path(), "py/lib/c.c", b"int c;\n");
    git(dir.path(), &["add", "-f", "py/lib/c.c"]);
    wait_for(
        &watcher,
        &mut rx,
        &format!("{root}/lib/c.c"),
        ChangeType::Created,
    )
    .await;
    watcher.stop().await;
}

/// The start-up walk runs while git's index is read: what the index adds (a tracked file a
/// pattern names, a tracked file's ignored directory) is in the first scan all the same, in
/// the walk's figures and in the feed.
#[tokio::test]
async fn what_git_tracks_is_in_the_streamed_first_scan() {
    let dir = temp();
    write(dir.path(), ".gitignore", b"*.h\nlib/\n");
    write(dir.path(), "src/main.c", b"int main;\n");
    write(dir.path(), "src/api.h", b"int api;\n");
    write(dir.path(), "src/other.h", b"int other;\n");
    write(dir.path(), "lib/deep/a.c", b"int a;\n");
    write(dir.path(), "lib/deep/b.o", b"obj");
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", ".gitignore", "src/main.c"]);
    git(dir.path(), &["add", "-f", "src/api.h", "lib/deep/a.c"]);
    let root = root_str(dir.path());
    let (sink, mut rx) = mpsc::channel(64);
    let (watcher, mut feed) =
        Watcher::start_streaming(&root, WatcherConfig::default(), sink, 1 << 20)
            .await
            .expect("watcher");
    assert_eq!(feed.walked.files, 4, "{:?}", feed.walked);
    let mut fed = Vec::new();
    while let Some(file) = feed.next().await {
        fed.push(file.rel.as_str().to_owned());
    }
    fed.sort();
    assert_eq!(
        fed,
        [".gitignore", "lib/deep/a.c", "src/api.h", "src/main.c"]
    );
    let manifest = feed
        .take_manifest()
        .expect("manifest")
        .await
        .expect("scan")
        .expect("manifest");
    assert!(manifest.get(&rel("src/api.h")).is_some());
    assert!(manifest.get(&rel("src/other.h")).is_none());
    // The tracked file's ignored directory is watched too.
    write(dir.path(), "lib/deep/a.c", b"int a = 2;\n");
    wait_for(
        &watcher,
        &mut rx,
        &format!("{root}/lib/deep/a.c"),
        ChangeType::Changed,
    )
    .await;
    watcher.stop().await;
}

#[tokio::test]
async fn outside_a_repository_gitignore_alone_decides() {
    let dir = temp();
    write(dir.path(), ".gitignore", b"lib/\n");
    write(dir.path(), "lib/a.c", b"int a;\n");
    write(dir.path(), "main.py", b"print()\n");
    let root = root_str(dir.path());
    let (sink, _rx) = mpsc::channel(64);
    let watcher = Watcher::start(&root, WatcherConfig::default(), sink)
        .await
        .expect("watcher");
    assert!(watcher.manifest().get(&rel("main.py")).is_some());
    assert!(watcher.manifest().get(&rel("lib/a.c")).is_none());
    watcher.stop().await;
}

fn included(f: &FileFilter, path: &str) -> bool {
    f.is_included(&rel(path), false)
}

#[test]
fn the_filter_reads_the_tracked_set_relative_to_a_root_below_the_top() {
    let dir = temp();
    write(dir.path(), "py/.gitignore", b"lib/\n");
    write(dir.path(), "py/lib/a.c", b"int a;");
    write(dir.path(), "py/lib/b.o", b"obj");
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "-f", "py/lib/a.c"]);
    let f = FileFilter::new(dir.path().join("py"), ExcludeConfig::default())
        .expect("filter")
        .following_git_index();
    let tracked = f.tracked().expect("a repository");
    assert!(tracked.has_file("lib/a.c"), "relative to the root");
    assert_eq!(tracked.len(), 1);
    assert!(included(&f, "lib/a.c"));
    assert!(!included(&f, "lib/b.o"));
}

#[test]
fn outside_a_repository_the_filter_has_no_tracked_set() {
    let dir = temp();
    write(dir.path(), ".gitignore", b"lib/\n");
    // A temporary directory inside a work tree would make this test meaningless.
    let in_repo = std::process::Command::new("git")
        .args(["rev-parse", "--is-inside-work-tree"])
        .current_dir(dir.path())
        .output()
        .is_ok_and(|o| o.status.success());
    if in_repo {
        return;
    }
    let f = FileFilter::new(dir.path(), ExcludeConfig::default())
        .expect("filter")
        .following_git_index();
    assert!(f.tracked().is_none());
    assert!(!included(&f, "lib/a.c"));
}
