//! The path-traversal corpus, against the client-side FileServer and the server-side Mirror.
//! Nothing outside the roots may be read or written.

mod common;

use std::path::Path;

use codeflow_file_stream::error::codes;
use codeflow_file_stream::protocol::SyncManifestParams;
use codeflow_file_stream::{
    ChangeType, ClientPath, ContentHash, FileChanged, FileError, FileServer, Limits, Manifest,
    Mirror,
};
use common::*;
use serde_json::json;

const SECRET: &str = "TOP SECRET";

/// Lays out `<base>/root` (the project), `<base>/outside` (a secret), `<base>/rootsibling`,
/// and symlinks in the project that lead out.
fn arena(base: &Path, project: &str) -> (String, String) {
    let root = base.join(project);
    fixture(&root);
    write(base, "outside/secret.txt", SECRET.as_bytes());
    write(
        base,
        &format!("{project}sibling/secret.txt"),
        SECRET.as_bytes(),
    );
    symlinks(&root, base);
    (root_str(&root), root_str(&base.join("outside")))
}

#[cfg(unix)]
fn symlinks(root: &Path, base: &Path) {
    use std::os::unix::fs::symlink;
    let outside = base.join("outside");
    symlink(&outside, root.join("escape_dir")).expect("symlink");
    symlink(outside.join("secret.txt"), root.join("escape_file")).expect("symlink");
    symlink(outside.join("not-there.txt"), root.join("dangling")).expect("symlink");
    std::fs::create_dir_all(root.join("sub")).expect("dir");
    symlink("../../outside", root.join("sub/deep")).expect("symlink");
}

#[cfg(not(unix))]
fn symlinks(_: &Path, _: &Path) {}

/// The corpus: `{root}` and `{outside}` are substituted.
fn corpus(root: &str, outside: &str) -> Vec<String> {
    let long_name = "n".repeat(300);
    let long_path = "d/".repeat(2100);
    [
        "../outside/secret.txt",
        "../../etc/passwd",
        "{root}/../outside/secret.txt",
        "{root}/src/../../outside/secret.txt",
        "src/../../outside/secret.txt",
        "./../outside/secret.txt",
        "src/./../../outside",
        "..",
        "{root}/..",
        "..\\outside\\secret.txt",
        "src\\..\\..\\outside\\secret.txt",
        "{root}\\..\\outside\\secret.txt",
        "%2e%2e/outside/secret.txt",
        "%2E%2E%2Foutside%2Fsecret.txt",
        "..%2foutside/secret.txt",
        "{root}/%2e%2e/outside/secret.txt",
        "%252e%252e/outside/secret.txt",
        "..%5coutside%5csecret.txt",
        "%c0%ae%c0%ae/outside/secret.txt",
        "src/main.py%00.txt",
        "/etc/passwd",
        "{outside}/secret.txt",
        "{root}sibling/secret.txt",
        "/",
        "escape_dir/secret.txt",
        "{root}/escape_dir/secret.txt",
        "escape_dir/new.txt",
        "escape_file",
        "dangling",
        "sub/deep/secret.txt",
        "sub/deep/planted.txt",
        "src/main.py\0.txt",
        "\0",
        "{root}/src/\0/x",
        "src/\u{1b}[31m.txt",
        &format!("src/{long_name}"),
        &long_path,
    ]
    .iter()
    .map(|c| c.replace("{root}", root).replace("{outside}", outside))
    .collect()
}

fn assert_rejected(case: &str, what: &str, result: Result<serde_json::Value, FileError>) {
    match result {
        Err(e) => assert_eq!(
            e.code(),
            codes::PATH_REJECTED,
            "{what} {case:?}: expected a path rejection, got {e}"
        ),
        Ok(v) => panic!("{what} {case:?} was accepted: {v}"),
    }
}

#[tokio::test]
async fn the_file_server_rejects_the_whole_corpus() -> TestResult {
    let base = temp();
    let (root, outside) = arena(base.path(), "root");
    let before_outside = tree_hashes(base.path());
    let fs = FileServer::new(&root, Limits::default())?;
    let cases = corpus(&root, &outside);
    assert!(cases.len() >= 30);
    let good = format!("{root}/src/main.py");
    let any = ContentHash::of(b"whatever");
    for case in &cases {
        let requests = [
            ("client/readFile", json!({ "path": case })),
            (
                "client/writeFile",
                json!({ "path": case, "content": "pwned", "expectedHash": null }),
            ),
            (
                "client/writeFile",
                json!({ "path": case, "content": "pwned", "expectedHash": any }),
            ),
            (
                "client/writeDelta",
                json!({ "path": case, "baseHash": any, "edits": [], "resultHash": any }),
            ),
            ("client/deleteFile", json!({ "path": case })),
            (
                "client/renameFile",
                json!({ "from": case, "to": format!("{root}/stolen.txt") }),
            ),
            ("client/renameFile", json!({ "from": good, "to": case })),
            ("client/fileExists", json!({ "path": case })),
            ("client/getFileStats", json!({ "path": case })),
            ("client/listDirectory", json!({ "path": case })),
        ];
        for (method, params) in requests {
            assert_rejected(case, method, fs.handle(method, params).await);
        }
    }
    // Nothing outside the root changed, nothing was planted, nothing stolen.
    let after: std::collections::BTreeMap<String, String> = tree_hashes(base.path())
        .into_iter()
        .filter(|(k, _)| !k.starts_with("root/"))
        .collect();
    let before: std::collections::BTreeMap<String, String> = before_outside
        .into_iter()
        .filter(|(k, _)| !k.starts_with("root/"))
        .collect();
    assert_eq!(after, before);
    assert!(Path::new(&good).exists());
    assert!(!Path::new(&root).join("stolen.txt").exists());
    Ok(())
}

#[tokio::test]
async fn the_mirror_rejects_the_whole_corpus() -> TestResult {
    let base = temp();
    let (client_root, outside) = arena(base.path(), "root");
    let data = base.path().join("data");
    std::fs::create_dir_all(&data)?;
    let client = FileServer::new(&client_root, Limits::default())?;
    let mirror = Mirror::open(
        &data,
        &codeflow_types::ProjectId::parse("jailed").expect("project id"),
        &client_root,
    )
    .await?;
    let mirror_root = root_str(mirror.root());
    // The mirror itself gets escaping symlinks too (a language server or a Claude run in the
    // mirror could create them).
    symlinks(mirror.root(), base.path());
    let before = tree_hashes(base.path());

    let mut cases = corpus(&client_root, &outside);
    cases.extend(corpus(&mirror_root, &outside));
    for case in &cases {
        // A relay announcing a change at a bad path.
        for change_type in [
            ChangeType::Created,
            ChangeType::Changed,
            ChangeType::Deleted,
        ] {
            let change = FileChanged {
                path: case.clone(),
                change_type,
                content: Some("pwned".into()),
                ..FileChanged::deleted(String::new())
            };
            let r = mirror
                .apply_change(change, &client)
                .await
                .map(|o| json!(format!("{o:?}")));
            assert_rejected(case, "fileChanged", r);
        }
        // A manifest listing a bad path.
        let params = SyncManifestParams {
            files: vec![codeflow_file_stream::protocol::ManifestEntry {
                path: case.clone(),
                size: 5,
                mtime: 0,
                hash: ContentHash::of(b"pwned"),
            }],
            dry_run: false,
            transfers: false,
            upload_all: false,
        };
        // Refused lexically when the manifest is read, or (symlinks) by the mirror's jail when
        // synced — before the client is asked.
        let synced = match Manifest::from_params(params, &Limits::default()) {
            Ok(manifest) => {
                let report = mirror.sync(&manifest, &client, &|_| {}).await?;
                assert!(report.fetched.is_empty(), "{case:?} fetched");
                match report.skipped.into_iter().next() {
                    Some((_, e)) => Err(e),
                    None => Ok(json!("not skipped")),
                }
            }
            Err(e) => Err(e),
        };
        assert_rejected(case, "syncManifest", synced);
        // Translation and reads of bad paths, from both sides.
        let translated = ClientPath::parse(case).and_then(|cp| mirror.paths().to_mirror(&cp));
        let read = match translated {
            Ok(mp) => mirror
                .read(&mp)
                .await
                .map(|b| json!(String::from_utf8_lossy(&b))),
            Err(e) => Err(e),
        };
        assert_rejected(case, "client path read", read);
        let parsed = mirror.paths().parse_mirror(Path::new(case));
        let lexically_bad = parsed.is_err();
        let read = match parsed {
            Ok(mp) => mirror
                .read(&mp)
                .await
                .map(|b| json!(String::from_utf8_lossy(&b))),
            Err(e) => Err(e),
        };
        assert_rejected(case, "mirror path read", read);
        // URI translation is lexical (symlinks are the reads' business): it refuses what the
        // path parser refuses, including after percent-decoding.
        if lexically_bad {
            let uri = format!("file://{}", case.replace('%', "%25"));
            assert_rejected(
                case,
                "uri",
                mirror.paths().uri_to_client(&uri).map(|u| json!(u)),
            );
        }
    }
    let after = tree_hashes(base.path());
    let outside_only = |m: std::collections::BTreeMap<String, String>| {
        m.into_iter()
            .filter(|(k, _)| !k.starts_with("data/"))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(outside_only(after), outside_only(before));
    assert!(mirror.files().is_empty(), "nothing entered the mirror");
    Ok(())
}

/// The remembering resolver (a sync upload's many reads) refuses what `resolve` refuses, the
/// escaping symlinks included, and resolves the rest to the same paths.
#[test]
fn resolving_many_paths_refuses_what_one_at_a_time_refuses() {
    use codeflow_file_stream::{Jail, PlainDirs, RelPath};
    let dir = tempfile::tempdir().expect("temp dir");
    let (root, outside) = arena(dir.path(), "root");
    let jail = Jail::new(&root).expect("jail");
    let mut plain = PlainDirs::default();
    let mut checked = 0;
    // Twice: the second pass runs with every plain directory remembered.
    for _ in 0..2 {
        for case in corpus(&root, &outside) {
            let Ok(rel) = RelPath::parse(&case) else {
                continue;
            };
            let one = jail.resolve(&rel).map_err(|e| e.code());
            let many = jail
                .resolve_remembering(&rel, &mut plain)
                .map_err(|e| e.code());
            assert_eq!(one, many, "{case}");
            checked += 1;
        }
        for rel in ["src/main.py", "src", "a/b/c.txt"] {
            let rel = RelPath::parse(rel).expect("relative path");
            assert_eq!(
                jail.resolve(&rel).ok(),
                jail.resolve_remembering(&rel, &mut plain).ok()
            );
        }
    }
    assert!(checked > 0, "the corpus has relative paths that parse");
}
