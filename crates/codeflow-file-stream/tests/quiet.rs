//! `Watcher::is_quiet`: true only when every change made before the question is in the sink
//! already, for a tree of any size; any change (a write in place, a create, a delete, a
//! rename, a new directory, a `.gitignore` edit, a write of the relay's own file server) makes
//! it false at once, before the watcher has seen the change's event.
#![cfg(target_os = "linux")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use codeflow_file_stream::{FileChanged, FileServer, Limits, Watcher, WatcherConfig};
use common::*;
use parking_lot::Mutex;
use tokio::sync::mpsc;

struct Tree {
    dir: tempfile::TempDir,
    watcher: Watcher,
    changes: Arc<Mutex<Vec<FileChanged>>>,
    _drain: tokio::task::JoinHandle<()>,
}

impl Tree {
    async fn start(
        files: &[(String, String)],
        config: WatcherConfig,
    ) -> Result<Tree, Box<dyn std::error::Error>> {
        let dir = temp();
        for (rel, text) in files {
            write(dir.path(), rel, text.as_bytes());
        }
        let (sink, mut rx) = mpsc::channel::<FileChanged>(64);
        let watcher = Watcher::start(root_str(dir.path()), config, sink).await?;
        let changes = Arc::new(Mutex::new(Vec::new()));
        let drain = {
            let changes = Arc::clone(&changes);
            tokio::spawn(async move {
                while let Some(change) = rx.recv().await {
                    changes.lock().push(change);
                }
            })
        };
        Ok(Tree {
            dir,
            watcher,
            changes,
            _drain: drain,
        })
    }

    async fn small() -> Result<Tree, Box<dyn std::error::Error>> {
        Tree::start(&small_tree(), WatcherConfig::default()).await
    }

    /// Waits until the watcher is quiet (it settles by itself once its events are handled).
    async fn quiet(&self) -> TestResult {
        for _ in 0..1000 {
            if self.watcher.is_quiet() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err("the watcher never became quiet".into())
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    /// The last change the sink received for `rel` (the drain task runs beside the test: a
    /// change handed to the sink before a quiet answer is there once the channel is read).
    async fn last_change(&self, rel: &str) -> Option<FileChanged> {
        let suffix = format!("/{rel}");
        // The drain task empties the channel; give it its turn.
        for _ in 0..100 {
            if let Some(c) = self
                .changes
                .lock()
                .iter()
                .rev()
                .find(|c| c.path.ends_with(&suffix))
            {
                return Some(c.clone());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None
    }
}

fn small_tree() -> Vec<(String, String)> {
    [
        ("src/main.py", "print('hi')\n"),
        ("src/lib/util.py", "X = 1\n"),
        ("README.md", "# readme\n"),
        (".gitignore", "*.log\n"),
    ]
    .iter()
    .map(|(p, t)| (p.to_string(), t.to_string()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_once_idle_and_asking_changes_nothing() -> TestResult {
    let tree = Tree::small().await?;
    tree.quiet().await?;
    assert!(tree.watcher.is_quiet(), "asking again changes nothing");
    tree.watcher.flush().await?;
    tree.quiet().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_place_is_seen_before_its_event_is_read() -> TestResult {
    let tree = Tree::small().await?;
    tree.quiet().await?;
    // Same size, same second: only the event tells.
    std::fs::write(tree.path("src/main.py"), "print('ho')\n")?;
    assert!(!tree.watcher.is_quiet(), "the write is seen at once");
    tree.quiet().await?;
    let change = tree.last_change("src/main.py").await.ok_or("no change")?;
    assert_eq!(change.content.as_deref(), Some("print('ho')\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_deletes_renames_and_new_directories_are_seen_at_once() -> TestResult {
    let tree = Tree::small().await?;
    tree.quiet().await?;

    write(tree.dir.path(), "src/lib/new.py", b"Y = 2\n");
    assert!(!tree.watcher.is_quiet(), "a new file in a subdirectory");
    tree.quiet().await?;
    assert!(tree.last_change("src/lib/new.py").await.is_some());

    std::fs::remove_file(tree.path("README.md"))?;
    assert!(!tree.watcher.is_quiet(), "a deleted file");
    tree.quiet().await?;

    std::fs::rename(tree.path("src/lib/util.py"), tree.path("src/util.py"))?;
    assert!(!tree.watcher.is_quiet(), "a rename between directories");
    tree.quiet().await?;
    assert!(tree.last_change("src/util.py").await.is_some());

    std::fs::create_dir(tree.path("docs"))?;
    assert!(!tree.watcher.is_quiet(), "a new directory");
    tree.quiet().await?;
    // Its files are watched from then on.
    write(tree.dir.path(), "docs/a.md", b"a\n");
    assert!(!tree.watcher.is_quiet(), "a file in the new directory");
    tree.quiet().await?;
    assert!(tree.last_change("docs/a.md").await.is_some());

    // Reading files wakes nobody and leaves the watcher quiet.
    let _ = std::fs::read(tree.path("src/main.py"))?;
    let _ = std::fs::read_dir(tree.path("src"))?.count();
    assert!(tree.watcher.is_quiet(), "reads are not changes");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_gitignore_is_seen() -> TestResult {
    let mut files = small_tree();
    files.push(("sub/.gitignore".into(), "a.txt\n".into()));
    files.push(("sub/a.txt".into(), "ignored\n".into()));
    let tree = Tree::start(&files, WatcherConfig::default()).await?;
    tree.quiet().await?;
    // Same size: `a.txt` is streamed from now on.
    std::fs::write(tree.path("sub/.gitignore"), "b.txt\n")?;
    assert!(!tree.watcher.is_quiet());
    tree.quiet().await?;
    assert!(tree.last_change("sub/a.txt").await.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_of_the_relays_file_server_is_not_quiet_until_applied() -> TestResult {
    let tree = Tree::small().await?;
    let server = FileServer::new(root_str(tree.dir.path()), Limits::default())?
        .reporting_to(tree.watcher.write_notices());
    tree.quiet().await?;
    let path = root_str(tree.dir.path()) + "/src/new.py";
    server
        .handle(
            "client/writeFile",
            serde_json::json!({"path": path, "content": "Z = 3\n"}),
        )
        .await?;
    assert!(!tree.watcher.is_quiet());
    tree.quiet().await?;
    Ok(())
}

/// The property callers rely on, many times over: whenever the watcher says it is quiet, the
/// sink has the latest content of a file written just before, in a tree too large to be
/// re-stat'ed by every flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_means_the_change_is_in_the_sink_in_a_large_tree() -> TestResult {
    let files: Vec<(String, String)> = (0..1500)
        .map(|i| (format!("d{}/f{i}.txt", i % 30), format!("file {i}\n")))
        .collect();
    let config = WatcherConfig {
        flush_full_scan_below: 1000,
        ..WatcherConfig::default()
    };
    let tree = Tree::start(&files, config).await?;
    tree.quiet().await?;
    for round in 0..50 {
        let rel = format!("d{}/f{}.txt", round % 30, round * 7 % 1500);
        let text = format!("round {round}\n");
        std::fs::write(tree.path(&rel), &text)?;
        assert!(!tree.watcher.is_quiet(), "round {round}: the write is seen");
        tree.quiet().await?;
        let change = tree.last_change(&rel).await.ok_or("no change")?;
        assert_eq!(
            change.content.as_deref(),
            Some(text.as_str()),
            "round {round}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_quiet_with_portable_events() -> TestResult {
    let config = WatcherConfig {
        portable_events: true,
        ..WatcherConfig::default()
    };
    let tree = Tree::start(&small_tree(), config).await?;
    tree.watcher.flush().await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !tree.watcher.is_quiet(),
        "notify's queue cannot be asked: every call flushes"
    );
    Ok(())
}
