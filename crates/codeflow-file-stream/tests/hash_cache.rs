//! The watcher's persisted hash cache: a restart on an unchanged tree takes hashes from the
//! cache, anything changed is hashed again, fresh files are only persisted once they have aged,
//! and edits after a cached start still travel as deltas.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use codeflow_file_stream::{ContentHash, FileChanged, RelPath, Watcher, WatcherConfig};
use common::*;
use serde_json::Value;
use tokio::sync::mpsc;

fn config(cache: &Path, margin_ms: u64) -> WatcherConfig {
    WatcherConfig {
        hash_cache_dir: Some(cache.to_path_buf()),
        hash_cache_margin: Duration::from_millis(margin_ms),
        // These tests are about the margin itself, whatever the temp dir's file system.
        hash_cache_local_margin: Duration::from_millis(margin_ms),
        ..WatcherConfig::default()
    }
}

async fn start(root: &str, config: WatcherConfig) -> (Watcher, mpsc::Receiver<FileChanged>) {
    let (sink, rx) = mpsc::channel(64);
    let watcher = Watcher::start(root, config, sink).await.expect("watcher");
    (watcher, rx)
}

fn hash_in(watcher: &Watcher, rel: &str) -> Option<ContentHash> {
    let rel = RelPath::parse(rel).ok()?;
    watcher.manifest().get(&rel).map(|e| e.hash.clone())
}

/// The one cache file in `dir`.
fn cache_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("cache dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

fn cached_paths(dir: &Path) -> Vec<String> {
    if std::fs::read_dir(dir).expect("cache dir").next().is_none() {
        return Vec::new();
    }
    let body: Value = serde_json::from_slice(&std::fs::read(cache_file(dir)).expect("read cache"))
        .expect("cache is JSON");
    body["files"]
        .as_array()
        .expect("files array")
        .iter()
        .map(|e| e[0].as_str().expect("path string").to_owned())
        .collect()
}

#[tokio::test]
async fn a_restart_takes_unchanged_hashes_from_the_cache_and_rehashes_the_rest() -> TestResult {
    let client = temp();
    let cache = temp();
    fixture(client.path());
    write(client.path(), "a.txt", b"alpha");
    write(client.path(), "b.txt", b"bravo");
    let root = root_str(client.path());
    tokio::time::sleep(Duration::from_millis(150)).await;

    let (first, _rx) = start(&root, config(cache.path(), 50)).await;
    assert_eq!(hash_in(&first, "a.txt"), Some(ContentHash::of(b"alpha")));
    first.stop().await;
    let paths = cached_paths(cache.path());
    assert!(paths.contains(&"a.txt".to_owned()) && paths.contains(&"src/main.py".to_owned()));

    // Forge a.txt's cached hash: if the next start reports it, the cache was used.
    let file = cache_file(cache.path());
    let mut body: Value = serde_json::from_slice(&std::fs::read(&file)?)?;
    for entry in body["files"].as_array_mut().unwrap() {
        if entry[0] == "a.txt" {
            entry[2] = Value::String(ContentHash::of(b"forged").to_string());
        }
    }
    std::fs::write(&file, serde_json::to_vec(&body)?)?;
    // Same size, new content: its stamp changes, so it must be read again.
    write(client.path(), "b.txt", b"BRAVO");

    let (second, _rx) = start(&root, config(cache.path(), 50)).await;
    assert_eq!(hash_in(&second, "a.txt"), Some(ContentHash::of(b"forged")));
    assert_eq!(hash_in(&second, "b.txt"), Some(ContentHash::of(b"BRAVO")));
    second.stop().await;

    // A corrupt cache is ignored: every file is hashed from its bytes.
    std::fs::write(cache_file(cache.path()), b"{not json")?;
    let (third, _rx) = start(&root, config(cache.path(), 50)).await;
    assert_eq!(hash_in(&third, "a.txt"), Some(ContentHash::of(b"alpha")));
    third.stop().await;
    Ok(())
}

#[tokio::test]
async fn fresh_files_are_persisted_only_once_they_have_aged() -> TestResult {
    let client = temp();
    let cache = temp();
    write(client.path(), "new.txt", b"just written");
    let root = root_str(client.path());
    // Started at once: the file changed less than the margin before it was read.
    let (watcher, _rx) = start(&root, config(cache.path(), 400)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(cached_paths(cache.path()).is_empty());
    // Past the margin the watcher reads it again and persists it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !cached_paths(cache.path()).contains(&"new.txt".to_owned()) {
        assert!(std::time::Instant::now() < deadline, "never persisted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.stop().await;
    Ok(())
}

#[tokio::test]
async fn edits_after_a_cached_start_still_travel_as_deltas() -> TestResult {
    let client = temp();
    let cache = temp();
    let lines: String = (0..400).map(|i| format!("line number {i}\n")).collect();
    write(client.path(), "long.txt", lines.as_bytes());
    let root = root_str(client.path());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (first, _rx) = start(&root, config(cache.path(), 50)).await;
    first.stop().await;
    assert_eq!(cached_paths(cache.path()), vec!["long.txt".to_owned()]);

    let (second, mut rx) = start(&root, config(cache.path(), 50)).await;
    // The texts are read while the watcher is idle; a flush round-trips through its loop.
    second.flush().await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    write(
        client.path(),
        "long.txt",
        lines
            .replace("line number 7\n", "line number seven\n")
            .as_bytes(),
    );
    second.flush().await?;
    let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await?
        .expect("a change");
    assert!(event.path.ends_with("/long.txt"), "{event:?}");
    assert!(
        event.edits.is_some() && event.content.is_none(),
        "expected a delta, got {event:?}"
    );
    second.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_manifest_is_the_tree_now_without_rereading_it() -> TestResult {
    let client = temp();
    fixture(client.path());
    write(client.path(), "a.txt", b"alpha");
    write(client.path(), "b.txt", b"bravo");
    let root = root_str(client.path());
    let (watcher, mut rx) = start(&root, WatcherConfig::default()).await;
    // Drain the changes as the relay does while it waits for the manifest.
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });

    write(client.path(), "a.txt", b"ALPHA, longer");
    write(client.path(), "src/new.py", b"x = 1\n");
    std::fs::remove_file(client.path().join("b.txt"))?;
    let current = watcher.current_manifest().await?;

    let filter = codeflow_file_stream::FileFilter::new(
        client.path(),
        codeflow_file_stream::ExcludeConfig::default(),
    )?;
    let scanned = codeflow_file_stream::Manifest::scan(
        client.path(),
        &filter,
        &codeflow_file_stream::Limits::default(),
    )?;
    let hashes = |m: &codeflow_file_stream::Manifest| -> Vec<(String, String, u64)> {
        m.iter()
            .map(|(p, e)| (p.as_str().to_owned(), e.hash.to_string(), e.size))
            .collect()
    };
    assert_eq!(hashes(&current), hashes(&scanned));
    assert!(hashes(&current).iter().any(|(p, _, _)| p == "src/new.py"));
    assert!(!hashes(&current).iter().any(|(p, _, _)| p == "b.txt"));
    watcher.stop().await;
    drain.abort();
    Ok(())
}

/// A tree written a moment before the relay starts (the P5 bench's re-sync relays start about a
/// second after the tree was written): on a local file system with nanosecond timestamps the
/// hashes are trusted once the files are older than the local margin (50 ms), not 2 s, so the
/// next start takes them from the cache. Elsewhere the 2 s margin still holds them back.
#[tokio::test]
async fn a_tree_written_a_moment_ago_on_a_local_file_system_is_cached_at_once() -> TestResult {
    let client = temp();
    let cache = temp();
    fixture(client.path());
    write(client.path(), "a.txt", b"alpha");
    let root = root_str(client.path());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let defaults = WatcherConfig::default();
    assert_eq!(defaults.hash_cache_margin, Duration::from_secs(2));
    assert_eq!(defaults.hash_cache_local_margin, Duration::from_millis(50));
    let (first, _rx) = start(
        &root,
        WatcherConfig {
            hash_cache_dir: Some(cache.path().to_path_buf()),
            ..defaults.clone()
        },
    )
    .await;
    first.stop().await;
    let local = matches!(
        std::process::Command::new("stat")
            .args(["-f", "-c", "%T"])
            .arg(client.path())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .as_deref(),
        Ok("tmpfs" | "ext2/ext3" | "xfs" | "btrfs" | "overlayfs")
    );
    let cached = cached_paths(cache.path());
    if local {
        assert!(
            cached.contains(&"a.txt".to_owned()) && cached.contains(&"src/main.py".to_owned()),
            "200 ms old files on a local file system are trusted: {cached:?}"
        );
    } else {
        assert!(
            cached.is_empty(),
            "not a local file system: 200 ms old files wait for the 2 s margin: {cached:?}"
        );
    }
    Ok(())
}
