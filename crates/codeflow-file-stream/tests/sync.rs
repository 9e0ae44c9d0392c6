//! Initial sync and re-sync: a client-side FileServer and a server-side Mirror connected
//! in-process through the ClientFiles trait, over real files.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use codeflow_file_stream::{
    ExcludeConfig, FileFilter, FileServer, Limits, Manifest, Mirror, MirrorConfig, RelPath,
};
use common::*;
use parking_lot::Mutex;

fn scan(root: &std::path::Path) -> Result<Manifest, codeflow_file_stream::FileError> {
    let filter = FileFilter::new(root, ExcludeConfig::default())?;
    Manifest::scan(root, &filter, &Limits::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_mirrors_the_tree_and_resync_fetches_only_differences() -> TestResult {
    let client = temp();
    let data = temp();
    fixture(client.path());
    let root = root_str(client.path());

    let manifest = scan(client.path())?;
    let listed: Vec<&str> = manifest.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        listed, FIXTURE_STREAMED,
        "excludes, .gitignore and node_modules rules"
    );

    let server = Recording::new(FileServer::new(&root, Limits::default())?);
    let config = MirrorConfig {
        fetch_concurrency: 4,
        ..MirrorConfig::default()
    };
    let mirror = Mirror::open_with(
        data.path(),
        &codeflow_types::ProjectId::parse("demo").expect("project id"),
        &root,
        config,
    )
    .await?;
    let progress = Mutex::new(Vec::new());
    let report = mirror
        .sync(&manifest, server.as_ref(), &|p| {
            progress.lock().push(p.clone())
        })
        .await?;
    assert_eq!(report.fetched.len(), FIXTURE_STREAMED.len());
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(
        (
            server.count("client/readFiles"),
            server.count("client/readFile")
        ),
        (1, 0),
        "the small files come in one batch"
    );
    assert!(server.peak.load(Ordering::SeqCst) <= 4, "and bounded");
    let progress = progress.lock().clone();
    // Once before the first file (nothing done yet), then once per file.
    assert_eq!(progress.len(), FIXTURE_STREAMED.len() + 1);
    assert_eq!(progress.first().map(|p| p.done_files), Some(0));
    assert_eq!(
        progress.last().map(|p| p.done_bytes),
        Some(manifest.total_bytes())
    );

    // The mirror equals the tree, hash by hash, on disk and in its index.
    let expected: BTreeMap<String, String> = manifest
        .iter()
        .map(|(p, e)| (p.as_str().to_owned(), e.hash.as_str().to_owned()))
        .collect();
    assert_eq!(tree_hashes(mirror.root()), expected);
    let index: BTreeMap<String, String> = mirror
        .files()
        .into_iter()
        .map(|(p, h)| (p.as_str().to_owned(), h.as_str().to_owned()))
        .collect();
    assert_eq!(index, expected);
    for absent in [
        "build/out.js",
        "app.log",
        ".git/HEAD",
        "target/debug/app",
        "node_modules/pkg/index.js",
        "sub/secret.txt",
    ] {
        assert!(
            !mirror.root().join(absent).exists(),
            "{absent} must not be mirrored"
        );
    }

    // Nothing changed: nothing fetched.
    server.clear();
    let again = mirror
        .sync(&scan(client.path())?, server.as_ref(), &|_| {})
        .await?;
    assert!(again.fetched.is_empty() && again.removed.is_empty());
    assert_eq!(server.reads(), Vec::<String>::new());

    // One file changed, one deleted: only that one fetched, the other removed.
    write(
        client.path(),
        "src/main.py",
        b"def main():\n    print('changed')\n",
    );
    std::fs::remove_file(client.path().join("README.md"))?;
    server.clear();
    let manifest = scan(client.path())?;
    let plan = mirror.plan(&manifest);
    assert_eq!(plan.to_result().needed, vec!["src/main.py".to_owned()]);
    let third = mirror.sync(&manifest, server.as_ref(), &|_| {}).await?;
    assert_eq!(server.reads(), vec![format!("{root}/src/main.py")]);
    assert_eq!(third.removed, vec![RelPath::parse("README.md")?]);
    assert!(!mirror.root().join("README.md").exists());
    assert_eq!(
        tree_hashes(mirror.root()),
        manifest
            .iter()
            .map(|(p, e)| (p.as_str().to_owned(), e.hash.as_str().to_owned()))
            .collect::<BTreeMap<_, _>>()
    );

    // A reopened mirror (server restart) indexes its disk and still fetches nothing.
    drop(mirror);
    let reopened = Mirror::open(
        data.path(),
        &codeflow_types::ProjectId::parse("demo").expect("project id"),
        &root,
    )
    .await?;
    server.clear();
    let after_restart = reopened.sync(&manifest, server.as_ref(), &|_| {}).await?;
    assert!(after_restart.fetched.is_empty());
    assert_eq!(after_restart.unchanged, manifest.len());
    Ok(())
}

#[tokio::test]
async fn limits_are_enforced_with_clear_errors() -> TestResult {
    let client = temp();
    let data = temp();
    fixture(client.path());
    write(client.path(), "big.txt", &vec![b'x'; 4096]);
    let root = root_str(client.path());
    let limits = Limits {
        max_file_size: 1024,
        ..Limits::default()
    };
    let filter = FileFilter::new(client.path(), ExcludeConfig::default())?;
    let manifest = Manifest::scan(client.path(), &filter, &limits)?;
    assert_eq!(manifest.skipped().len(), 1, "the big file is left out");

    let server = FileServer::new(&root, limits)?;
    let err = server
        .handle(
            "client/readFile",
            serde_json::json!({ "path": format!("{root}/big.txt") }),
        )
        .await;
    assert!(matches!(
        err,
        Err(codeflow_file_stream::FileError::FileTooLarge {
            size: 4096,
            limit: 1024,
            ..
        })
    ));

    let few = Limits {
        max_files: 3,
        ..Limits::default()
    };
    let err = Manifest::scan(client.path(), &filter, &few);
    assert!(matches!(
        err,
        Err(codeflow_file_stream::FileError::TooManyFiles { limit: 3, .. })
    ));

    let tight = MirrorConfig {
        limits: Limits {
            max_total_bytes: 100,
            ..Limits::default()
        },
        ..MirrorConfig::default()
    };
    let mirror = Mirror::open_with(
        data.path(),
        &codeflow_types::ProjectId::parse("p").expect("project id"),
        &root,
        tight,
    )
    .await?;
    let full = Manifest::scan(client.path(), &filter, &Limits::default())?;
    let err = mirror.sync(&full, &server, &|_| {}).await;
    assert!(matches!(
        err,
        Err(codeflow_file_stream::FileError::ProjectTooLarge { limit: 100, .. })
    ));
    Ok(())
}

#[tokio::test]
async fn shared_mode_translates_and_streams_nothing() -> TestResult {
    let server_side = temp();
    fixture(server_side.path());
    let mirror = Mirror::shared(
        &codeflow_types::ProjectId::parse("shared").expect("project id"),
        "/workspace",
        server_side.path(),
        MirrorConfig::default(),
    )?;
    let cp = codeflow_file_stream::ClientPath::parse("/workspace/src/main.py")?;
    let mp = mirror.paths().to_mirror(&cp)?;
    assert_eq!(
        mp.as_path(),
        std::fs::canonicalize(server_side.path())?.join("src/main.py")
    );
    assert_eq!(mirror.paths().to_client(&mp), cp);
    let bytes = mirror.read(&mp).await?;
    assert!(bytes.starts_with(b"def main"));
    // No client at all is needed: an empty manifest sync and a change are no-ops.
    let never = FileServer::new(server_side.path(), Limits::default())?;
    let report = mirror.sync(&Manifest::default(), &never, &|_| {}).await?;
    assert_eq!(report, Default::default());
    let outcome = mirror
        .apply_change(
            codeflow_file_stream::FileChanged::deleted("/workspace/src/main.py".into()),
            &never,
        )
        .await?;
    assert_eq!(outcome, codeflow_file_stream::ChangeOutcome::Shared);
    assert!(server_side.path().join("src/main.py").exists());
    Ok(())
}

/// Syncs the fixture through `server` and checks the mirror equals the tree.
async fn sync_fixture(
    client: &std::path::Path,
    server: &Recording,
    fetch_concurrency: usize,
) -> TestResult {
    let data = temp();
    let root = root_str(client);
    let manifest = scan(client)?;
    let config = MirrorConfig {
        fetch_concurrency,
        ..MirrorConfig::default()
    };
    let mirror = Mirror::open_with(
        data.path(),
        &codeflow_types::ProjectId::parse("demo").expect("project id"),
        &root,
        config,
    )
    .await?;
    let report = mirror.sync(&manifest, server, &|_| {}).await?;
    assert_eq!(report.fetched.len(), manifest.len());
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let expected: BTreeMap<String, String> = manifest
        .iter()
        .map(|(p, e)| (p.as_str().to_owned(), e.hash.as_str().to_owned()))
        .collect();
    assert_eq!(tree_hashes(mirror.root()), expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_batches_is_read_file_by_file() -> TestResult {
    let client = temp();
    fixture(client.path());
    let root = root_str(client.path());
    let server = Recording::new(FileServer::new(&root, Limits::default())?);
    server.no_batches.store(true, Ordering::SeqCst);
    sync_fixture(client.path(), &server, 4).await?;
    assert_eq!(
        server.count("client/readFiles"),
        1,
        "asked once, then not again"
    );
    assert_eq!(server.count("client/readFile"), FIXTURE_STREAMED.len());
    let peak = server.peak.load(Ordering::SeqCst);
    assert!((2..=4).contains(&peak), "concurrent and bounded: {peak}");
    Ok(())
}

#[tokio::test]
async fn files_a_batch_answer_left_out_are_asked_for_again() -> TestResult {
    let client = temp();
    fixture(client.path());
    let root = root_str(client.path());
    let server = Recording::new(FileServer::new(&root, Limits::default())?);
    server.batch_answer_cap.store(2, Ordering::SeqCst);
    sync_fixture(client.path(), &server, 32).await?;
    let batches = server.count("client/readFiles");
    assert_eq!(
        batches,
        FIXTURE_STREAMED.len().div_ceil(2),
        "two files per answer"
    );
    assert_eq!(server.count("client/readFile"), 0);
    Ok(())
}
