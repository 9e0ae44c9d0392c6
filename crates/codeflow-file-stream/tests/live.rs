//! Live changes: a Watcher on a real client tree feeding a Mirror through fileChanged.

mod common;

use std::sync::Arc;
use std::time::Duration;

use codeflow_file_stream::{
    ChangeOutcome, ChangeType, ContentHash, FileChanged, FileError, FileServer, Limits, Mirror,
    Watcher, WatcherConfig, delta,
};
use common::*;
use parking_lot::Mutex;
use tokio::sync::mpsc;

const MARKER: &str = "/__marker__";

type Applied = Vec<(FileChanged, Result<ChangeOutcome, FileError>)>;

struct Harness {
    _client: tempfile::TempDir,
    _data: tempfile::TempDir,
    root: String,
    watcher: Watcher,
    sink: mpsc::Sender<FileChanged>,
    acks: mpsc::Receiver<()>,
    mirror: Mirror,
    /// The relay's file server, reporting its writes to the watcher as the relay's does.
    files: FileServer,
    events: Arc<Mutex<Applied>>,
    consumer: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start(config: WatcherConfig) -> Result<Harness, Box<dyn std::error::Error>> {
        let client = temp();
        let data = temp();
        fixture(client.path());
        let lines: String = (0..300).map(|i| format!("line number {i}\n")).collect();
        write(client.path(), "src/long.txt", lines.as_bytes());
        let root = root_str(client.path());
        // A small sink, so back-pressure is exercised.
        let (sink, mut rx) = mpsc::channel::<FileChanged>(4);
        let watcher = Watcher::start(&root, config, sink.clone()).await?;
        let server =
            FileServer::new(&root, Limits::default())?.reporting_to(watcher.write_notices());
        let files = server.clone();
        let mirror = Mirror::open(
            data.path(),
            &codeflow_types::ProjectId::parse("live").expect("project id"),
            &root,
        )
        .await?;
        mirror.sync(watcher.manifest(), &server, &|_| {}).await?;

        let (ack_tx, acks) = mpsc::channel(1);
        let events = Arc::new(Mutex::new(Vec::new()));
        let consumer = {
            let events = Arc::clone(&events);
            let mirror = mirror.clone();
            tokio::spawn(async move {
                while let Some(ev) = rx.recv().await {
                    if ev.path == MARKER {
                        if ack_tx.send(()).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    let outcome = mirror.apply_change(ev.clone(), &server).await;
                    events.lock().push((ev, outcome));
                }
            })
        };
        Ok(Harness {
            _client: client,
            _data: data,
            root,
            watcher,
            sink,
            acks,
            mirror,
            files,
            events,
            consumer,
        })
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        std::path::Path::new(&self.root).join(rel)
    }

    /// flush(), then wait until the consumer applied everything flushed.
    async fn settle(&mut self) -> Result<Applied, Box<dyn std::error::Error>> {
        tokio::time::timeout(Duration::from_secs(10), self.watcher.flush()).await??;
        self.sink.send(FileChanged::deleted(MARKER.into())).await?;
        tokio::time::timeout(Duration::from_secs(10), self.acks.recv()).await?;
        Ok(std::mem::take(&mut *self.events.lock()))
    }

    async fn mirror_text(&self, rel: &str) -> Result<String, Box<dyn std::error::Error>> {
        let cp = codeflow_file_stream::ClientPath::parse(&format!("{}/{rel}", self.root))?;
        let bytes = self
            .mirror
            .read(&self.mirror.paths().to_mirror(&cp)?)
            .await?;
        Ok(String::from_utf8(bytes.to_vec())?)
    }

    async fn stop(self) {
        self.watcher.stop().await;
        drop(self.sink);
        let _ = self.consumer.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_creates_deletes_and_renames_reach_the_mirror() -> TestResult {
    for config in configs() {
        let label = format!(
            "portable events: {}, full re-stat below {} files",
            config.portable_events, config.flush_full_scan_below
        );
        // Shown with a failure's output.
        eprintln!("config: {label}");
        edits_creates_deletes_and_renames(config).await?;
    }
    Ok(())
}

async fn edits_creates_deletes_and_renames(config: WatcherConfig) -> TestResult {
    let mut h = Harness::start(config).await?;

    // A one-line edit in a longer file travels as a delta.
    let edited = std::fs::read_to_string(h.path("src/long.txt"))?
        .replace("line number 150\n", "line one-fifty\n");
    std::fs::write(h.path("src/long.txt"), &edited)?;
    let events = h.settle().await?;
    assert_eq!(events.len(), 1, "{events:?}");
    let (ev, outcome) = &events[0];
    assert_eq!(ev.change_type, ChangeType::Changed);
    assert!(
        ev.edits.is_some() && ev.content.is_none(),
        "sent as a delta: {ev:?}"
    );
    assert_eq!(outcome.as_ref().ok(), Some(&ChangeOutcome::Delta));
    assert_eq!(h.mirror_text("src/long.txt").await?, edited);

    // A small edit travels as content; a new file is created; binary goes as base64.
    std::fs::write(h.path("src/main.py"), b"print('v2')\n")?;
    write(std::path::Path::new(&h.root), "src/new/mod.py", b"X = 1\n");
    std::fs::write(h.path("data/blob.bin"), [0u8, 255, 1, 254])?;
    let events = h.settle().await?;
    let by_path = |p: &str| events.iter().find(|(e, _)| e.path.ends_with(p)).cloned();
    let (main, _) = by_path("src/main.py").ok_or("main.py event")?;
    assert_eq!(main.content.as_deref(), Some("print('v2')\n"));
    let (created, _) = by_path("src/new/mod.py").ok_or("mod.py event")?;
    assert_eq!(created.change_type, ChangeType::Created);
    let (blob, _) = by_path("data/blob.bin").ok_or("blob event")?;
    assert_eq!(blob.encoding, Some(codeflow_file_stream::Encoding::Base64));
    assert_eq!(h.mirror_text("src/new/mod.py").await?, "X = 1\n");

    // Ignored and excluded paths produce nothing.
    write(std::path::Path::new(&h.root), "build/x.js", b"1\n");
    write(
        std::path::Path::new(&h.root),
        "node_modules/pkg/other.js",
        b"1\n",
    );
    assert!(h.settle().await?.is_empty());

    // Delete and rename are mirrored (a rename is a deletion plus a creation).
    std::fs::remove_file(h.path("README.md"))?;
    std::fs::rename(h.path("src/lib/util.ts"), h.path("src/lib/renamed.ts"))?;
    let events = h.settle().await?;
    let kinds: Vec<(String, ChangeType)> = events
        .iter()
        .map(|(e, _)| (e.path.trim_start_matches(&h.root).to_owned(), e.change_type))
        .collect();
    assert!(
        kinds.contains(&("/README.md".into(), ChangeType::Deleted)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("/src/lib/util.ts".into(), ChangeType::Deleted)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("/src/lib/renamed.ts".into(), ChangeType::Created)),
        "{kinds:?}"
    );
    assert!(!h.mirror.root().join("README.md").exists());
    assert!(!h.mirror.root().join("src/lib/util.ts").exists());
    assert_eq!(
        h.mirror_text("src/lib/renamed.ts").await?,
        "export const x: number = 1;\n"
    );

    // After all of it, the mirror equals a fresh scan of the client, hash by hash.
    let filter = codeflow_file_stream::FileFilter::new(&h.root, Default::default())?;
    let fresh = codeflow_file_stream::Manifest::scan(
        std::path::Path::new(&h.root),
        &filter,
        &Limits::default(),
    )?;
    let expected: std::collections::BTreeMap<String, String> = fresh
        .iter()
        .map(|(p, e)| (p.as_str().to_owned(), e.hash.as_str().to_owned()))
        .collect();
    assert_eq!(tree_hashes(h.mirror.root()), expected);
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_reflects_an_edit_made_just_before() -> TestResult {
    // Events are held back long, so only flush() can deliver them in time.
    let config = WatcherConfig {
        settle: Duration::from_secs(30),
        max_delay: Duration::from_secs(30),
        ..WatcherConfig::default()
    };
    let mut h = Harness::start(config).await?;
    for i in 0..20 {
        let text = format!("print({i})\n");
        std::fs::write(h.path("src/main.py"), &text)?;
        h.settle().await?;
        assert_eq!(h.mirror_text("src/main.py").await?, text, "round {i}");
    }
    // New files and deletions too.
    write(std::path::Path::new(&h.root), "fresh.txt", b"fresh\n");
    h.settle().await?;
    assert_eq!(h.mirror_text("fresh.txt").await?, "fresh\n");
    std::fs::remove_file(h.path("fresh.txt"))?;
    h.settle().await?;
    assert!(!h.mirror.root().join("fresh.txt").exists());
    h.stop().await;
    Ok(())
}

/// A tree too large to re-stat at every flush, whose events are held back long: only a
/// flush can deliver a change in time.
fn large_tree_held_events() -> WatcherConfig {
    WatcherConfig {
        settle: Duration::from_secs(30),
        max_delay: Duration::from_secs(30),
        flush_full_scan_below: 0,
        ..WatcherConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_without_full_scan_still_sees_recent_files() -> TestResult {
    let mut h = Harness::start(large_tree_held_events()).await?;
    // The first edit makes the file hot (notify delivers it); later edits are caught by
    // flush's re-check of hot files even before their events arrive.
    std::fs::write(h.path("src/main.py"), b"print(0)\n")?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.settle().await?;
    assert_eq!(h.mirror_text("src/main.py").await?, "print(0)\n");
    for i in 1..10 {
        let text = format!("print({i}) # hot\n");
        std::fs::write(h.path("src/main.py"), &text)?;
        h.settle().await?;
        assert_eq!(h.mirror_text("src/main.py").await?, text);
    }
    h.stop().await;
    Ok(())
}

/// In a tree too large to re-stat at every flush, a flush still sees a file created or
/// written just before it, in an old or a brand-new directory, though the file was never
/// touched before (not "recent") and its event may not have been read yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_tree_flush_sees_every_change_made_just_before() -> TestResult {
    let mut h = Harness::start(large_tree_held_events()).await?;
    let root = std::path::PathBuf::from(&h.root);
    for i in 0..20 {
        let created = format!("src/created{i}.py");
        write(&root, &created, format!("C = {i}\n").as_bytes());
        let nested = format!("fresh{i}/deep/x.py");
        write(&root, &nested, format!("N = {i}\n").as_bytes());
        h.settle().await?;
        assert_eq!(
            h.mirror_text(&created).await?,
            format!("C = {i}\n"),
            "round {i}"
        );
        assert_eq!(
            h.mirror_text(&nested).await?,
            format!("N = {i}\n"),
            "round {i}"
        );
    }
    h.stop().await;
    Ok(())
}

/// A directory deleted and created again at the same path is a new directory to watch: files
/// written in it later reach the mirror (in a tree too large to re-stat at every flush).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_made_again_at_the_same_path_is_watched_again() -> TestResult {
    let config = WatcherConfig {
        flush_full_scan_below: 0,
        ..WatcherConfig::default()
    };
    let mut h = Harness::start(config).await?;
    std::fs::remove_dir_all(h.path("src/lib"))?;
    std::fs::create_dir(h.path("src/lib"))?;
    h.settle().await?;
    assert!(!h.mirror.root().join("src/lib/util.ts").exists());
    // Written once the new directory's creation was handled: only its watch can report it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::write(h.path("src/lib/later.ts"), b"export const later = 1;\n")?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.settle().await?;
    assert_eq!(
        h.mirror_text("src/lib/later.ts").await?,
        "export const later = 1;\n"
    );
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_against_the_wrong_base_is_refused_and_the_file_read_whole() -> TestResult {
    // No watcher here: it would race the test in bringing the mirror up to date.
    let client = temp();
    let data = temp();
    fixture(client.path());
    let lines: String = (0..300).map(|i| format!("line number {i}\n")).collect();
    write(client.path(), "src/long.txt", lines.as_bytes());
    let root = root_str(client.path());
    let server = FileServer::new(&root, Limits::default())?;
    let mirror = Mirror::open(
        data.path(),
        &codeflow_types::ProjectId::parse("delta").expect("project id"),
        &root,
    )
    .await?;
    let filter = codeflow_file_stream::FileFilter::new(
        client.path(),
        codeflow_file_stream::ExcludeConfig::default(),
    )?;
    let manifest =
        codeflow_file_stream::Manifest::scan(client.path(), &filter, &Limits::default())?;
    mirror.sync(&manifest, &server, &|_| {}).await?;
    let mirror_text = |rel: &'static str| {
        let mirror = mirror.clone();
        let root = root.clone();
        async move {
            let cp = codeflow_file_stream::ClientPath::parse(&format!("{root}/{rel}"))?;
            let bytes = mirror.read(&mirror.paths().to_mirror(&cp)?).await?;
            Ok::<_, Box<dyn std::error::Error>>(String::from_utf8(bytes.to_vec())?)
        }
    };
    let path = format!("{root}/src/long.txt");
    let cp = codeflow_file_stream::ClientPath::parse(&path)?;
    let mp = mirror.paths().to_mirror(&cp)?;
    let old = mirror_text("src/long.txt").await?;
    assert_eq!(old, lines);
    let new = old.replace("line number 7\n", "seven\n");
    std::fs::write(client.path().join("src/long.txt"), &new)?;
    let edits = delta::compute(&old, &new);
    let wrong = ContentHash::of(b"not the base");

    let refused = mirror.apply_delta(&mp, &wrong, &edits, None).await;
    assert!(
        matches!(refused, Err(FileError::BaseMismatch { .. })),
        "{refused:?}"
    );
    assert_eq!(mirror_text("src/long.txt").await?, old, "nothing written");

    let change = FileChanged {
        path: path.clone(),
        change_type: ChangeType::Changed,
        hash: Some(ContentHash::of(new.as_bytes())),
        base_hash: Some(wrong),
        edits: Some(edits),
        ..FileChanged::deleted(path)
    };
    let outcome = mirror.apply_change(change, &server).await?;
    assert_eq!(outcome, ChangeOutcome::Fetched);
    assert_eq!(mirror_text("src/long.txt").await?, new);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_overflow_falls_back_to_a_rescan_that_loses_nothing() -> TestResult {
    // One pending path at most: any burst overflows into a full re-stat.
    let config = WatcherConfig {
        max_pending: 1,
        flush_full_scan_below: 0,
        ..WatcherConfig::default()
    };
    let mut h = Harness::start(config).await?;
    for i in 0..10 {
        write(
            std::path::Path::new(&h.root),
            &format!("burst/f{i}.txt"),
            format!("{i}\n").as_bytes(),
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = 0;
    let complete = |h: &Harness| (0..10).all(|i| h.mirror_has(&format!("burst/f{i}.txt")));
    while (seen < 10 || !complete(&h)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen += h
            .settle()
            .await?
            .iter()
            .filter(|(e, _)| e.path.contains("/burst/"))
            .count();
    }
    // At least one event per file; a file caught by a re-scan while it was still being
    // written is reported again once complete. What matters is the mirror's final state.
    assert!(seen >= 10, "{seen}");
    for i in 0..10 {
        assert_eq!(
            h.mirror_text(&format!("burst/f{i}.txt")).await?,
            format!("{i}\n")
        );
    }
    h.stop().await;
    Ok(())
}

impl Harness {
    fn client_path(&self, rel: &str) -> codeflow_file_stream::ClientPath {
        codeflow_file_stream::ClientPath::parse(&format!("{}/{rel}", self.root)).expect("path")
    }

    /// A write-back as the server makes it: on the client through the relay's file server,
    /// then recorded in the mirror without waiting for the echo.
    async fn write_back(&self, plan: codeflow_file_stream::WriteBack) -> TestResult {
        plan.apply_and_mirror(&self.files, &self.mirror).await?;
        Ok(())
    }

    fn mirror_has(&self, rel: &str) -> bool {
        self.mirror.root().join(rel).exists()
    }
}

fn configs() -> [WatcherConfig; 3] {
    [
        WatcherConfig::default(),
        // Large trees: flushes re-check recent files only.
        WatcherConfig {
            flush_full_scan_below: 0,
            ..WatcherConfig::default()
        },
        // The cross-platform `notify` crate's events (not Linux's own inotify). Its queue
        // cannot be drained by a flush, so only a flush that re-stats the tree is exact.
        WatcherConfig {
            portable_events: true,
            ..WatcherConfig::default()
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_created_by_write_back_then_moved_by_hand_moves_in_the_mirror() -> TestResult {
    for config in configs() {
        let full_scan = config.flush_full_scan_below;
        let mut h = Harness::start(config).await?;
        for round in 0..5 {
            let (new, moved) = (format!("src/new{round}.py"), format!("src/moved{round}.py"));
            h.write_back(codeflow_file_stream::WriteBack::new().write(
                h.client_path(&new),
                b"N = 1\n".to_vec(),
                codeflow_file_stream::Expect::Absent,
            ))
            .await?;
            assert!(h.mirror_has(&new));
            // Moved at once: the watcher has not looked at the new file yet.
            std::fs::rename(h.path(&new), h.path(&moved))?;
            h.settle().await?;
            assert!(!h.mirror_has(&new), "round {round}: the old path is gone");
            assert_eq!(
                h.mirror_text(&moved).await.ok().as_deref(),
                Some("N = 1\n"),
                "round {round}, full scan below {}",
                full_scan
            );
        }
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_created_by_write_back_then_deleted_by_hand_leaves_the_mirror() -> TestResult {
    for config in configs() {
        let mut h = Harness::start(config).await?;
        for round in 0..5 {
            let new = format!("src/gone{round}.py");
            h.write_back(codeflow_file_stream::WriteBack::new().write(
                h.client_path(&new),
                b"G = 1\n".to_vec(),
                codeflow_file_stream::Expect::Absent,
            ))
            .await?;
            std::fs::remove_file(h.path(&new))?;
            h.settle().await?;
            assert!(!h.mirror_has(&new), "round {round}");
        }
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_backs_undone_by_hand_are_undone_in_the_mirror() -> TestResult {
    for config in configs() {
        let mut h = Harness::start(config).await?;
        let original = std::fs::read(h.path("src/main.py"))?;
        // Overwritten by the server, then put back by hand with the very same bytes.
        h.write_back(codeflow_file_stream::WriteBack::new().write(
            h.client_path("src/main.py"),
            b"print('server')\n".to_vec(),
            codeflow_file_stream::Expect::Hash(ContentHash::of(&original)),
        ))
        .await?;
        std::fs::write(h.path("src/main.py"), &original)?;
        h.settle().await?;
        assert_eq!(h.mirror_text("src/main.py").await?.as_bytes(), original);

        // Deleted by the server, restored by hand.
        h.write_back(
            codeflow_file_stream::WriteBack::new()
                .delete(h.client_path("src/main.py"), ContentHash::of(&original)),
        )
        .await?;
        std::fs::write(h.path("src/main.py"), &original)?;
        h.settle().await?;
        assert_eq!(h.mirror_text("src/main.py").await?.as_bytes(), original);

        // Renamed by the server, renamed back by hand.
        h.write_back(codeflow_file_stream::WriteBack::new().rename(
            h.client_path("src/main.py"),
            h.client_path("src/app.py"),
            ContentHash::of(&original),
        ))
        .await?;
        std::fs::rename(h.path("src/app.py"), h.path("src/main.py"))?;
        h.settle().await?;
        assert_eq!(h.mirror_text("src/main.py").await?.as_bytes(), original);
        assert!(!h.mirror_has("src/app.py"));
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_back_then_edited_by_hand_arrives_as_a_delta_on_the_right_base() -> TestResult
{
    for config in configs() {
        let mut h = Harness::start(config).await?;
        let lines: String = (0..100).map(|i| format!("row {i}\n")).collect();
        h.write_back(codeflow_file_stream::WriteBack::new().write(
            h.client_path("src/rows.txt"),
            lines.clone().into_bytes(),
            codeflow_file_stream::Expect::Absent,
        ))
        .await?;
        h.settle().await?;
        // Written again by the server, then edited by hand before the watcher looked.
        let server_side = lines.replace("row 10\n", "row ten\n");
        h.write_back(codeflow_file_stream::WriteBack::new().write(
            h.client_path("src/rows.txt"),
            server_side.clone().into_bytes(),
            codeflow_file_stream::Expect::Hash(ContentHash::of(lines.as_bytes())),
        ))
        .await?;
        let by_hand = server_side.replace("row 90\n", "row ninety\n");
        // Replaced in one step (an editor's save), so no half-written state is seen.
        let outside = h
            .path("..")
            .join(format!("rows-{}.txt", std::process::id()));
        std::fs::write(&outside, &by_hand)?;
        std::fs::rename(&outside, h.path("src/rows.txt"))?;
        let events = h.settle().await?;
        assert_eq!(h.mirror_text("src/rows.txt").await?, by_hand);
        let outcomes: Vec<_> = events
            .iter()
            .filter(|(e, _)| e.path.ends_with("src/rows.txt"))
            .map(|(e, o)| (e.base_hash.clone(), o.as_ref().ok().copied()))
            .collect();
        assert!(
            outcomes.contains(&(
                Some(ContentHash::of(server_side.as_bytes())),
                Some(ChangeOutcome::Delta)
            )),
            "the hand edit went as a delta against what the server wrote: {outcomes:?}"
        );
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compilation_database_in_an_ignored_build_directory_reaches_the_mirror() -> TestResult {
    // The fixture's .gitignore ignores build/: only its compile_commands.json is streamed.
    let mut h = Harness::start(WatcherConfig::default()).await?;
    let db = br#"[{"directory": "/src", "file": "a.c", "command": "cc -Iinc -c a.c"}]"#;
    write(
        std::path::Path::new(&h.root),
        "build/compile_commands.json",
        db,
    );
    let events = h.settle().await?;
    let paths: Vec<&str> = events.iter().map(|(e, _)| e.path.as_str()).collect();
    assert!(
        paths
            .iter()
            .any(|p| p.ends_with("/build/compile_commands.json")),
        "{paths:?}"
    );
    assert_eq!(
        h.mirror_text("build/compile_commands.json")
            .await?
            .as_bytes(),
        db
    );
    // Nothing else of build/ is, new directories in it included.
    write(
        std::path::Path::new(&h.root),
        "build/CMakeFiles/x.json",
        b"{}",
    );
    write(std::path::Path::new(&h.root), "build/main.o", b"\x7fELF");
    assert!(h.settle().await?.is_empty());
    h.stop().await;
    Ok(())
}
