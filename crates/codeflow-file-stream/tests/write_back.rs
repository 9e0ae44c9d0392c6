//! Write-back: hash-guarded writes on the client, all-or-nothing multi-file plans.

mod common;

use codeflow_file_stream::{
    ClientPath, ContentHash, Expect, FileError, FileServer, Limits, Mirror, WriteBack,
};
use common::*;
use serde_json::json;

fn h(bytes: &[u8]) -> ContentHash {
    ContentHash::of(bytes)
}

#[tokio::test]
async fn a_write_over_a_changed_file_is_refused_and_the_file_kept() -> TestResult {
    let client = temp();
    fixture(client.path());
    let root = root_str(client.path());
    let fs = FileServer::new(&root, Limits::default())?;
    let path = format!("{root}/src/main.py");
    let original = std::fs::read(&path)?;
    // The user edits the file after the server read it.
    std::fs::write(&path, b"user's version\n")?;
    let err = fs
        .handle(
            "client/writeFile",
            json!({ "path": path, "content": "server's version\n", "encoding": "utf8", "expectedHash": h(&original) }),
        )
        .await;
    match err {
        Err(FileError::Conflict { actual, .. }) => assert_eq!(actual, Some(h(b"user's version\n"))),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path)?, b"user's version\n");
    // The wire form keeps the code and the actual hash.
    let wire = codeflow_file_stream::RemoteError::from(FileError::Conflict {
        path: path.clone(),
        actual: Some(h(b"x")),
    });
    assert_eq!(wire.code, -33002);
    assert_eq!(
        wire.data.as_ref().map(|d| d["actualHash"].clone()),
        Some(json!(h(b"x")))
    );
    assert!(
        wire.data
            .as_ref()
            .is_some_and(|d| d.get("suggestion").is_some())
    );

    // expectedHash null = must not exist.
    let err = fs
        .handle(
            "client/writeFile",
            json!({ "path": path, "content": "x", "expectedHash": null }),
        )
        .await;
    assert!(matches!(err, Err(FileError::Conflict { .. })));
    let ok = fs
        .handle("client/writeFile", json!({ "path": format!("{root}/src/brand/new.py"), "content": "y\n", "expectedHash": null }))
        .await?;
    assert_eq!(ok["hash"], json!(h(b"y\n")));

    // A matching hash writes atomically and keeps the permissions.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        fs.handle(
            "client/writeFile",
            json!({ "path": path, "content": "#!/bin/sh\n", "expectedHash": h(b"user's version\n") }),
        )
        .await?;
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(std::fs::read(&path)?, b"#!/bin/sh\n");
    }
    // No temporary files are left behind.
    let leftovers: Vec<String> = tree_hashes(client.path())
        .into_keys()
        .filter(|k| k.contains(".codeflow-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    Ok(())
}

#[tokio::test]
async fn write_delta_applies_only_on_the_right_base() -> TestResult {
    let client = temp();
    let root = root_str(client.path());
    let text: String = (0..100).map(|i| format!("{i}\n")).collect();
    write(client.path(), "f.txt", text.as_bytes());
    let fs = FileServer::new(&root, Limits::default())?;
    let new = text.replace("50\n", "fifty\n");
    let edits = codeflow_file_stream::delta::compute(&text, &new);
    let params = |base: ContentHash| json!({ "path": format!("{root}/f.txt"), "baseHash": base, "edits": edits, "resultHash": h(new.as_bytes()) });
    let wrong = fs.handle("client/writeDelta", params(h(b"other"))).await;
    assert!(matches!(wrong, Err(FileError::BaseMismatch { .. })));
    assert_eq!(std::fs::read_to_string(client.path().join("f.txt"))?, text);
    let ok = fs
        .handle("client/writeDelta", params(h(text.as_bytes())))
        .await?;
    assert_eq!(ok["usedDelta"], json!(true));
    assert_eq!(std::fs::read_to_string(client.path().join("f.txt"))?, new);
    Ok(())
}

#[tokio::test]
async fn a_three_file_write_back_whose_third_file_conflicts_changes_nothing() -> TestResult {
    let client = temp();
    fixture(client.path());
    let root = root_str(client.path());
    let fs = FileServer::new(&root, Limits::default())?;
    let before = tree_hashes(client.path());
    let p = |rel: &str| ClientPath::parse(&format!("{root}/{rel}"));
    let a = std::fs::read(client.path().join("src/main.py"))?;
    let b = std::fs::read(client.path().join("src/lib/util.ts"))?;
    let plan = WriteBack::new()
        .write(p("src/main.py")?, b"a2\n".to_vec(), Expect::Hash(h(&a)))
        .write(p("src/lib/util.ts")?, b"b2\n".to_vec(), Expect::Hash(h(&b)))
        .write(
            p("README.md")?,
            b"c2\n".to_vec(),
            Expect::Hash(h(b"stale base")),
        );
    let err = plan.apply(&fs).await;
    assert!(matches!(err, Err(FileError::Conflict { .. })), "{err:?}");
    assert_eq!(tree_hashes(client.path()), before, "all three as they were");
    Ok(())
}

#[tokio::test]
async fn a_write_back_failing_midway_is_rolled_back() -> TestResult {
    let client = temp();
    fixture(client.path());
    let root = root_str(client.path());
    let p = |rel: &str| ClientPath::parse(&format!("{root}/{rel}"));
    let a = std::fs::read(client.path().join("src/main.py"))?;
    let b = std::fs::read(client.path().join("src/lib/util.ts"))?;
    let c = std::fs::read(client.path().join("README.md"))?;
    let recording = Recording::new(FileServer::new(&root, Limits::default())?);
    // The third file changes on the client after the preflight, right before its write.
    let readme = client.path().join("README.md");
    let mut writes = 0;
    *recording.before.lock() = Some(Box::new(move |method, _| {
        if method.starts_with("client/write") {
            writes += 1;
            if writes == 3 {
                let _ = std::fs::write(&readme, b"edited by the user\n");
            }
        }
    }));
    let plan = WriteBack::new()
        .write(p("src/main.py")?, b"a2\n".to_vec(), Expect::Hash(h(&a)))
        .write(p("src/lib/util.ts")?, b"b2\n".to_vec(), Expect::Hash(h(&b)))
        .write(p("created.txt")?, b"new\n".to_vec(), Expect::Absent)
        .write(p("README.md")?, b"c2\n".to_vec(), Expect::Hash(h(&c)));
    let err = plan.apply(recording.as_ref()).await;
    assert!(matches!(err, Err(FileError::RolledBack { .. })), "{err:?}");
    assert_eq!(std::fs::read(client.path().join("src/main.py"))?, a);
    assert_eq!(std::fs::read(client.path().join("src/lib/util.ts"))?, b);
    assert!(!client.path().join("created.txt").exists());
    assert_eq!(
        std::fs::read(client.path().join("README.md"))?,
        b"edited by the user\n"
    );
    Ok(())
}

#[tokio::test]
async fn a_successful_write_back_updates_client_and_mirror() -> TestResult {
    let client = temp();
    let data = temp();
    fixture(client.path());
    let long: String = (0..200).map(|i| format!("row {i}\n")).collect();
    write(client.path(), "long.txt", long.as_bytes());
    let root = root_str(client.path());
    let fs = FileServer::new(&root, Limits::default())?;
    let filter = codeflow_file_stream::FileFilter::new(client.path(), Default::default())?;
    let manifest =
        codeflow_file_stream::Manifest::scan(client.path(), &filter, &Limits::default())?;
    let mirror = Mirror::open(
        data.path(),
        &codeflow_types::ProjectId::parse("wb").expect("project id"),
        &root,
    )
    .await?;
    mirror.sync(&manifest, &fs, &|_| {}).await?;
    let p = |rel: &str| ClientPath::parse(&format!("{root}/{rel}"));
    let long2 = long.replace("row 100\n", "row one hundred\n");
    let readme = std::fs::read(client.path().join("README.md"))?;
    let plan = WriteBack::new()
        .write(
            p("long.txt")?,
            long2.clone().into_bytes(),
            Expect::Hash(h(long.as_bytes())),
        )
        .rename(p("README.md")?, p("docs/README.md")?, h(&readme))
        .delete(p("sub/keep.txt")?, h(b"kept\n"));
    let report = plan.apply_and_mirror(&fs, &mirror).await?;
    assert_eq!(report.deltas_used, 1, "the one-line edit went as a delta");
    assert_eq!(
        std::fs::read_to_string(client.path().join("long.txt"))?,
        long2
    );
    assert!(
        client.path().join("docs/README.md").exists() && !client.path().join("README.md").exists()
    );
    assert!(!client.path().join("sub/keep.txt").exists());
    let scan = codeflow_file_stream::Manifest::scan(client.path(), &filter, &Limits::default())?;
    let expected: std::collections::BTreeMap<String, String> = scan
        .iter()
        .map(|(p, e)| (p.as_str().to_owned(), e.hash.as_str().to_owned()))
        .collect();
    assert_eq!(tree_hashes(mirror.root()), expected);
    Ok(())
}

/// Changes made by hand after a write-back request: (relative path, new content or deletion).
type ByHand = Box<dyn FnMut() -> Vec<(String, Option<Vec<u8>>)> + Send>;

/// A client whose watcher echo reaches the mirror before the write-back's reply does: after
/// each successful writing request, the session's file task (simulated here) applies the
/// `fileChanged` events the relay's watcher would send for what is now on disk, and then
/// `then` runs (a later change by hand, say), all before the write-back sees the reply.
struct EchoFirst {
    inner: FileServer,
    mirror: Mirror,
    root: String,
    then: parking_lot::Mutex<Option<ByHand>>,
}

impl EchoFirst {
    async fn echo(&self, rel: &str) {
        let path = format!("{}/{rel}", self.root);
        let change = match std::fs::read(&path) {
            Ok(bytes) => codeflow_file_stream::FileChanged {
                change_type: codeflow_file_stream::ChangeType::Created,
                hash: Some(h(&bytes)),
                size: Some(bytes.len() as u64),
                content: Some(String::from_utf8(bytes).expect("text")),
                encoding: Some(codeflow_file_stream::Encoding::Utf8),
                ..codeflow_file_stream::FileChanged::deleted(path)
            },
            Err(_) => codeflow_file_stream::FileChanged::deleted(path),
        };
        self.mirror
            .apply_change(change, &self.inner)
            .await
            .expect("echo applied");
    }
}

impl codeflow_file_stream::ClientFiles for EchoFirst {
    fn call<'a>(
        &'a self,
        method: &'a str,
        params: serde_json::Value,
    ) -> futures::future::BoxFuture<'a, Result<serde_json::Value, codeflow_file_stream::RemoteError>>
    {
        Box::pin(async move {
            let result = self.inner.call(method, params.clone()).await;
            if result.is_ok() && method != "client/readFile" && method != "client/getFileStats" {
                let rel = |key: &str| {
                    params[key]
                        .as_str()
                        .and_then(|p| p.strip_prefix(&format!("{}/", self.root)))
                        .map(str::to_owned)
                };
                let touched: Vec<String> = match method {
                    "client/renameFile" => [rel("from"), rel("to")].into_iter().flatten().collect(),
                    "client/writeFile" | "client/writeDelta" | "client/deleteFile" => {
                        rel("path").into_iter().collect()
                    }
                    _ => Vec::new(),
                };
                for p in &touched {
                    self.echo(p).await;
                }
                let later = self.then.lock().as_mut().map(|f| f()).unwrap_or_default();
                for (p, content) in later {
                    let abs = format!("{}/{p}", self.root);
                    match content {
                        Some(bytes) => std::fs::write(&abs, bytes).expect("write by hand"),
                        None => std::fs::remove_file(&abs).expect("delete by hand"),
                    }
                    self.echo(&p).await;
                }
            }
            result
        })
    }
}

async fn echo_first(
    then: Option<ByHand>,
) -> Result<(tempfile::TempDir, tempfile::TempDir, EchoFirst), Box<dyn std::error::Error>> {
    let client = temp();
    let data = temp();
    fixture(client.path());
    let root = root_str(client.path());
    let fs = FileServer::new(&root, Limits::default())?;
    let filter = codeflow_file_stream::FileFilter::new(client.path(), Default::default())?;
    let manifest =
        codeflow_file_stream::Manifest::scan(client.path(), &filter, &Limits::default())?;
    let mirror = Mirror::open(
        data.path(),
        &codeflow_types::ProjectId::parse("echo").expect("project id"),
        &root,
    )
    .await?;
    mirror.sync(&manifest, &fs, &|_| {}).await?;
    let client_files = EchoFirst {
        inner: fs,
        mirror,
        root,
        then: parking_lot::Mutex::new(then),
    };
    Ok((client, data, client_files))
}

#[tokio::test]
async fn a_rename_whose_echo_reached_the_mirror_first_still_succeeds() -> TestResult {
    let (client, _data, c) = echo_first(None).await?;
    let p = |rel: &str| ClientPath::parse(&format!("{}/{rel}", c.root));
    let readme = std::fs::read(client.path().join("README.md"))?;
    let main = std::fs::read(client.path().join("src/main.py"))?;
    let plan = WriteBack::new()
        .rename(p("README.md")?, p("docs/README.md")?, h(&readme))
        .write(
            p("src/main.py")?,
            b"print('new')\n".to_vec(),
            Expect::Hash(h(&main)),
        )
        .write(p("src/new.py")?, b"N = 1\n".to_vec(), Expect::Absent)
        .delete(p("sub/keep.txt")?, h(b"kept\n"));
    let report = plan.apply_and_mirror(&c, &c.mirror).await?;
    assert_eq!(report.renamed.len(), 1);
    let scan = codeflow_file_stream::Manifest::scan(
        client.path(),
        &codeflow_file_stream::FileFilter::new(client.path(), Default::default())?,
        &Limits::default(),
    )?;
    let expected: std::collections::BTreeMap<String, String> = scan
        .iter()
        .map(|(p, e)| (p.as_str().to_owned(), e.hash.as_str().to_owned()))
        .collect();
    assert_eq!(tree_hashes(c.mirror.root()), expected);
    assert_eq!(
        std::fs::read(c.mirror.root().join("docs/README.md"))?,
        readme
    );
    Ok(())
}

#[tokio::test]
async fn a_change_by_hand_that_reached_the_mirror_first_is_not_overwritten() -> TestResult {
    // After the write-back's writes and their echoes, the user edits the written file and
    // the moved file again, and that too reaches the mirror before the write-back's reply.
    let mut once = true;
    let then: ByHand = Box::new(move || {
        if std::mem::take(&mut once) {
            Vec::new()
        } else {
            vec![
                ("src/main.py".into(), Some(b"print('by hand')\n".to_vec())),
                ("docs/README.md".into(), Some(b"# by hand\n".to_vec())),
            ]
        }
    });
    let (client, _data, c) = echo_first(Some(then)).await?;
    let p = |rel: &str| ClientPath::parse(&format!("{}/{rel}", c.root));
    let readme = std::fs::read(client.path().join("README.md"))?;
    let main = std::fs::read(client.path().join("src/main.py"))?;
    let plan = WriteBack::new()
        .rename(p("README.md")?, p("docs/README.md")?, h(&readme))
        .write(
            p("src/main.py")?,
            b"print('new')\n".to_vec(),
            Expect::Hash(h(&main)),
        );
    plan.apply_and_mirror(&c, &c.mirror).await?;
    assert_eq!(
        std::fs::read_to_string(c.mirror.root().join("src/main.py"))?,
        "print('by hand')\n"
    );
    assert_eq!(
        std::fs::read_to_string(c.mirror.root().join("docs/README.md"))?,
        "# by hand\n"
    );
    assert!(!c.mirror.root().join("README.md").exists());
    Ok(())
}
