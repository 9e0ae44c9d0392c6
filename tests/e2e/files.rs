//! File streaming end to end: the real relay syncs a real tree into the real server's mirror,
//! keeps it fresh, and both sides refuse paths that escape the project.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use codeflow_e2e::fs::git;
use codeflow_e2e::{Relay, Server, Ws, tree};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A small Python project with things that must not be mirrored.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "pkg/__init__.py", "");
    write(root, "pkg/util.py", "def helper(x):\n    return x * 2\n");
    write(
        root,
        "main.py",
        "from pkg.util import helper\n\nprint(helper(3))\n",
    );
    write(root, "docs/notes.txt", "notes\n");
    std::fs::write(root.join("logo.bin"), [0u8, 159, 146, 150, 255, 0, 1]).unwrap();
    write(root, ".gitignore", "secret.txt\nbuild/\n");
    write(root, "secret.txt", "do not mirror\n");
    write(root, "build/out.txt", "ignored dir\n");
    write(root, ".git/HEAD", "ref: refs/heads/main\n");
    write(root, "target/debug/x", "cargo output\n");
    write(
        root,
        "node_modules/lib/package.json",
        "{\"name\":\"lib\"}\n",
    );
    write(
        root,
        "node_modules/lib/index.d.ts",
        "export declare const x: number;\n",
    );
    write(root, "node_modules/lib/index.js", "exports.x = 1;\n");
    dir
}

#[tokio::test]
async fn the_mirror_equals_the_tree_and_follows_edits() {
    let server = Server::start().await;
    let project = fixture();
    let root = project.path().canonicalize().unwrap();
    let relay = Relay::spawn(&server.url(), "mirror-demo", &root, &[]);
    relay.initialize().await;
    relay.settle().await;

    let mirror = server.mirror_dir("mirror-demo");
    let mirrored = tree(&mirror);
    let mut expected = tree(&root);
    for excluded in [
        ".git/HEAD",
        "target/debug/x",
        "secret.txt",
        "build/out.txt",
        "node_modules/lib/index.js",
    ] {
        assert!(
            expected.remove(excluded).is_some(),
            "fixture has {excluded}"
        );
    }
    assert_eq!(
        mirrored, expected,
        "hash by hash, with excluded paths absent"
    );
    assert!(
        mirrored.contains_key("node_modules/lib/index.d.ts"),
        "what language servers need from node_modules reaches them"
    );

    let health = relay.tool("health_check", json!({})).await;
    assert_eq!(
        health["structuredContent"]["mirror"]["files"],
        expected.len()
    );

    // Read-your-writes: an edit, a new file, a delete and a rename, each followed at once by a
    // tool call, are all in the mirror when the call runs.
    for round in 0..5 {
        write(
            &root,
            "pkg/util.py",
            &format!("def helper(x):\n    return x * {round}\n"),
        );
        relay.settle().await;
        assert_eq!(
            std::fs::read_to_string(mirror.join("pkg/util.py")).unwrap(),
            format!("def helper(x):\n    return x * {round}\n")
        );
    }
    write(&root, "pkg/extra.py", "VALUE = 1\n");
    relay.settle().await;
    assert_eq!(
        std::fs::read_to_string(mirror.join("pkg/extra.py")).unwrap(),
        "VALUE = 1\n"
    );

    std::fs::remove_file(root.join("docs/notes.txt")).unwrap();
    relay.settle().await;
    assert!(
        !mirror.join("docs/notes.txt").exists(),
        "delete is mirrored"
    );

    std::fs::rename(root.join("pkg/extra.py"), root.join("pkg/renamed.py")).unwrap();
    relay.settle().await;
    assert!(!mirror.join("pkg/extra.py").exists());
    assert_eq!(
        std::fs::read_to_string(mirror.join("pkg/renamed.py")).unwrap(),
        "VALUE = 1\n"
    );

    // An ignored file never travels.
    write(&root, "secret.txt", "still secret\n");
    relay.settle().await;
    assert!(!mirror.join("secret.txt").exists());

    let mut expected = tree(&root);
    for excluded in [
        ".git/HEAD",
        "target/debug/x",
        "secret.txt",
        "build/out.txt",
        "node_modules/lib/index.js",
    ] {
        expected.remove(excluded);
    }
    assert_eq!(tree(&mirror), expected);
}

#[tokio::test]
async fn a_new_relay_resyncs_only_differences() {
    let server = Server::start().await;
    let project = fixture();
    let root = project.path().canonicalize().unwrap();
    let first = Relay::spawn(&server.url(), "resync", &root, &[]);
    first.initialize().await;
    first.settle().await;
    assert_eq!(first.close().await, Some(0));

    // While no relay runs, one file changes and one disappears.
    write(&root, "main.py", "print('changed while away')\n");
    std::fs::remove_file(root.join("docs/notes.txt")).unwrap();

    let second = Relay::spawn(&server.url(), "resync", &root, &[]);
    second.initialize().await;
    second.settle().await;
    let mirror = server.mirror_dir("resync");
    assert_eq!(
        std::fs::read_to_string(mirror.join("main.py")).unwrap(),
        "print('changed while away')\n"
    );
    assert!(!mirror.join("docs/notes.txt").exists());
    let metrics = codeflow_e2e::http_get(server.port, "/metrics")
        .await
        .unwrap()
        .1;
    let fetched: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("codeflow_sync_fetched_files_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1.0);
    // First sync: 8 files; second: only main.py.
    assert_eq!(
        fetched, 9.0,
        "the second sync fetched only the changed file"
    );
}

/// Paths that must never leave a project root, in the forms attackers try.
fn traversal_corpus(root: &str) -> Vec<String> {
    let mut c: Vec<String> = [
        "../outside.txt",
        "../../etc/passwd",
        "/etc/passwd",
        "/etc/shadow",
        "/root/.ssh/id_rsa",
        "/proc/self/environ",
        "/tmp/codeflow-outside.txt",
        "..\\outside.txt",
        "..%2foutside.txt",
        "%2e%2e/outside.txt",
        "%2e%2e%2foutside.txt",
        "..%252foutside.txt",
        "....//../../outside.txt",
        "..;/../../outside.txt",
        "a/../../outside.txt",
        "a/b/../../../outside.txt",
        "./../outside.txt",
        "pkg/../../outside.txt",
        "pkg/%2e%2e/%2e%2e/outside.txt",
        "/etc/../etc/passwd",
        "\0",
        "pkg/util.py\0.txt",
        "/etc/passwd\0",
        "~/../../.bashrc",
        "//etc/passwd",
        "link-out/secret.txt",
        "link-out",
        "dangling-link",
        "link-up/outside.txt",
        &"a/".repeat(3000),
        &format!("{}.txt", "x".repeat(300)),
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    for rel in [
        "../outside.txt",
        "link-out/secret.txt",
        "pkg/../../outside.txt",
        "link-up/outside.txt",
    ] {
        c.push(format!("{root}/{rel}"));
    }
    c.push(format!("{root}/../outside.txt"));
    c.push(format!("{root}x/evil.txt"));
    c
}

/// Sets up a root with symlinks that lead out of it, and a secret file beside it.
fn jail_fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("project");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("pkg/util.py"), "x = 1\n").unwrap();
    std::fs::write(base.join("outside.txt"), "outside\n").unwrap();
    std::fs::write(outside.join("secret.txt"), "secret\n").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link-out")).unwrap();
    std::os::unix::fs::symlink(base.join("nowhere"), root.join("dangling-link")).unwrap();
    std::os::unix::fs::symlink("..", root.join("link-up")).unwrap();
    (dir, root, base)
}

/// The real relay, driven by a fake server that asks for paths outside the project.
#[tokio::test]
async fn the_relay_refuses_paths_outside_its_root() {
    let (_dir, root, base) = jail_fixture();
    let before = tree(&base);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let relay = Relay::spawn(&url, "jail", &root, &[]);
    let agent = tokio::spawn(async move {
        let init = relay.initialize().await;
        (relay, init)
    });

    let (stream, _) = listener.accept().await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
    let mut next = async || codeflow_e2e::next_json(&mut ws, Duration::from_secs(20)).await;
    let init = next().await;
    assert_eq!(init["method"], "initialize");
    assert_eq!(
        init["params"]["capabilities"]["experimental"]["codeflow"]["fileStream"],
        true
    );
    assert_eq!(init["params"]["project"], "jail");
    let reply = json!({"jsonrpc": "2.0", "id": init["id"], "result": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "fake", "version": "0"},
        "sessionId": "fake-session"}});
    ws.send(WsMessage::Text(reply.to_string().into()))
        .await
        .unwrap();
    let (_relay, _) = agent.await.unwrap();

    let root_str = root.to_string_lossy().to_string();
    let corpus = traversal_corpus(&root_str);
    assert!(corpus.len() >= 30);
    let mut n = 0;
    let mut requests = Vec::new();
    for path in &corpus {
        let abs = if path.starts_with('/') {
            path.clone()
        } else {
            format!("{root_str}/{path}")
        };
        for (method, params) in [
            ("client/readFile", json!({"path": abs})),
            (
                "client/writeFile",
                json!({"path": abs, "content": "pwned", "encoding": "utf8", "expectedHash": null}),
            ),
            (
                "client/deleteFile",
                json!({"path": abs, "expectedHash": null}),
            ),
            ("client/listDirectory", json!({"path": abs})),
            (
                "client/renameFile",
                json!({"from": format!("{root_str}/pkg/util.py"), "to": abs, "expectedHash": null}),
            ),
        ] {
            n += 1;
            let id = format!("t:{n}");
            requests.push((id.clone(), method, abs.clone()));
            let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
            ws.send(WsMessage::Text(msg.to_string().into()))
                .await
                .unwrap();
        }
    }
    let mut answers = BTreeMap::new();
    while answers.len() < requests.len() {
        match tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(WsMessage::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if let Some(id) = v["id"].as_str().filter(|id| id.starts_with("t:")) {
                    answers.insert(id.to_owned(), v);
                }
            }
            Some(Ok(_)) => {}
            other => panic!("relay connection ended: {other:?}"),
        }
    }
    for (id, method, path) in &requests {
        let a = &answers[id];
        assert!(
            a.get("error").is_some(),
            "{method} {path:?} must be refused, got {a}"
        );
    }
    assert_eq!(
        tree(&base),
        before,
        "nothing outside (or inside) the root was read into existence, written or removed"
    );
}

/// A client posing as a relay sends file events with escaping paths: the server refuses them
/// and writes nothing outside its mirror.
#[tokio::test]
async fn the_server_refuses_paths_outside_the_project() {
    let server = Server::start().await;
    let outside = tempfile::tempdir().unwrap();
    let outside_root = outside.path().canonicalize().unwrap();
    std::fs::write(outside_root.join("keep.txt"), "keep\n").unwrap();
    let before = tree(server.data_dir.path());
    let mut ws = Ws::connect(&server.url()).await;
    let init = ws
        .request(
            json!(1),
            "initialize",
            json!({
            "protocolVersion": "2025-11-25", "clientInfo": {"name": "evil", "version": "1"},
            "capabilities": {"experimental": {"codeflow": {"fileStream": true}}},
            "project": "victim", "projectRoot": "/app"}),
        )
        .await;
    assert!(init["result"]["sessionId"].is_string());

    let corpus = traversal_corpus("/app");
    // syncManifest with escaping relative paths. This "relay" is malicious: it answers every
    // client/readFile and client/readFiles with content, so whatever the server accepts
    // really gets written.
    let pwned = blake3::hash(b"pwned").to_hex().to_string();
    for (i, path) in corpus.iter().enumerate() {
        let id = json!(100 + i);
        ws.send_json(json!({"jsonrpc": "2.0", "id": id, "method": "server/syncManifest", "params": {"files": [{
            "path": path, "size": 5, "mtime": 0, "hash": pwned}]}}))
            .await;
        let reply = loop {
            let m = ws.json().await;
            if m["method"] == "client/readFile" {
                ws.send_json(json!({"jsonrpc": "2.0", "id": m["id"], "result": {
                    "content": "pwned", "encoding": "utf8", "mtime": 0, "size": 5, "hash": pwned}}))
                    .await;
                continue;
            }
            if m["method"] == "client/readFiles" {
                let files: Vec<Value> = m["params"]["paths"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| json!({"path": p, "file": {
                        "content": "pwned", "encoding": "utf8", "mtime": 0, "size": 5, "hash": pwned}}))
                    .collect();
                ws.send_json(json!({"jsonrpc": "2.0", "id": m["id"], "result": {"files": files}}))
                    .await;
                continue;
            }
            if m["id"] == id {
                break m;
            }
        };
        let escapes = path.starts_with('/')
            || path.contains("../")
            || path.contains('\0')
            || path.starts_with("..");
        if escapes {
            assert!(
                reply.get("error").is_some(),
                "manifest path {path:?} must be refused: {reply}"
            );
        }
    }
    // fileChanged with escaping paths and content: ignored (logged), nothing written.
    for path in &corpus {
        let abs = if path.starts_with('/') {
            path.clone()
        } else {
            format!("/app/{path}")
        };
        ws.send_json(
            json!({"jsonrpc": "2.0", "method": "server/fileChanged", "params": {
            "path": abs, "changeType": "created", "content": "pwned", "encoding": "utf8",
            "hash": blake3::hash(b"pwned").to_hex().to_string()}}),
        )
        .await;
    }
    // Any tool call after them runs once they are processed.
    let r = ws
        .request(
            json!(9999),
            "tools/call",
            json!({"name": "health_check", "arguments": {}}),
        )
        .await;
    assert_eq!(r["result"]["structuredContent"]["status"], "ok", "{r}");
    // Whatever was accepted landed inside the project's mirror, nowhere else.
    let mirror_prefix = "mirrors/victim/";
    let after: BTreeMap<String, String> = tree(server.data_dir.path())
        .into_iter()
        .filter(|(p, _)| !p.starts_with(mirror_prefix))
        .collect();
    assert_eq!(
        before, after,
        "nothing was written under the data dir outside the mirror"
    );
    let mirror = tree(&server.data_dir.path().join("mirrors/victim"));
    for path in mirror.keys() {
        assert!(!path.contains(".."), "{path}");
    }
    assert_eq!(tree(&outside_root).len(), 1);
    assert!(!Path::new("/tmp/codeflow-outside.txt").exists());
}

/// A relay that leaves in the middle of its sync: the pending-files gauge goes back to 0 when
/// the abandoned sync ends, so `CodeFlowSyncStuck` only fires for a sync that hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_abandoned_by_its_relay_leaves_no_pending_files() {
    let server = Server::start_with(&[], &[("CODEFLOW_RESUME_GRACE_SECS", "1")]).await;
    let project = tempfile::tempdir().unwrap();
    // Fewer than a sync's transfer threshold (16 files): fetched with `client/readFiles`.
    for i in 0..10 {
        write(project.path(), &format!("m{i}.py"), &format!("X = {i}\n"));
    }
    let root = project.path().canonicalize().unwrap();
    let proxy = codeflow_e2e::TcpProxy::start(server.port).await;
    // The server's first file request reaches the relay; its answer never comes back.
    proxy.trip_on("client/readFile", codeflow_e2e::Trip::SwallowTheAnswer);
    let relay = Relay::spawn(&proxy.url(), "abandoned", &root, &[]);
    relay.initialize().await;
    proxy.tripped().await;
    let series = "codeflow_sync_pending_files{project=\"abandoned\"}";
    let pending = |want_zero: bool| {
        let port = server.port;
        async move {
            let value = codeflow_e2e::metrics(port).await.get(series).copied();
            if want_zero {
                value == Some(0.0)
            } else {
                value.is_some_and(|v| v > 0.0)
            }
        }
    };
    assert!(
        codeflow_e2e::eventually(Duration::from_secs(10), || pending(false)).await,
        "the sync waits for its files: {:?}",
        codeflow_e2e::metrics(server.port)
            .await
            .into_iter()
            .filter(|(k, _)| k.contains("sync"))
            .collect::<Vec<_>>()
    );
    drop(relay);
    proxy.sever();
    assert!(
        codeflow_e2e::eventually(Duration::from_secs(20), || pending(true)).await,
        "the abandoned sync's files are no longer counted as pending: {:?}",
        codeflow_e2e::metrics(server.port).await.get(series)
    );
}

/// ujson's layout: `.gitignore` names `lib/`, yet git tracks the C sources in it. Git ignores
/// `.gitignore` for tracked files, and so does the relay: the mirror holds what git tracks.
#[tokio::test]
async fn files_git_tracks_reach_the_mirror_though_gitignore_names_their_directory() {
    let server = Server::start().await;
    let project = tempfile::tempdir().unwrap();
    let root = project.path().canonicalize().unwrap();
    write(&root, ".gitignore", "lib/\n");
    write(&root, "setup.py", "from setuptools import setup\n");
    write(&root, "lib/a.c", "int a(void) { return 1; }\n");
    write(&root, "lib/a.h", "int a(void);\n");
    write(&root, "lib/b.o", "object code\n");
    git(&root, &["init", "-q"]);
    git(&root, &["add", ".gitignore", "setup.py"]);
    git(&root, &["add", "-f", "lib/a.c", "lib/a.h"]);
    git(&root, &["commit", "-q", "-m", "init"]);

    let relay = Relay::spawn(&server.url(), "tracked", &root, &[]);
    relay.initialize().await;
    relay.settle().await;
    let mirror = server.mirror_dir("tracked");
    let mirrored = tree(&mirror);
    let names: Vec<&str> = mirrored.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [".gitignore", "lib/a.c", "lib/a.h", "setup.py"],
        "tracked files in, the untracked ignored lib/b.o and .git/ out"
    );
    // The tools answer about it (they said the relay does not stream it).
    let symbols = relay
        .tool("get_document_symbols", json!({"file_path": "lib/a.c"}))
        .await;
    assert_eq!(symbols["isError"], false, "{symbols}");
    assert_eq!(
        symbols["structuredContent"]["symbols"][0]["name"], "a",
        "{symbols}"
    );

    // An edit of a tracked file in the ignored directory is followed.
    write(&root, "lib/a.c", "int a(void) { return 2; }\n");
    relay.settle().await;
    assert_eq!(
        std::fs::read_to_string(mirror.join("lib/a.c")).unwrap(),
        "int a(void) { return 2; }\n"
    );

    // A file git starts tracking is streamed; one it stops tracking leaves the mirror.
    write(&root, "lib/c.c", "int c;\n");
    git(&root, &["add", "-f", "lib/c.c"]);
    git(&root, &["rm", "-q", "--cached", "lib/a.h"]);
    let followed = codeflow_e2e::eventually(Duration::from_secs(10), || async {
        relay.settle().await;
        mirror.join("lib/c.c").exists() && !mirror.join("lib/a.h").exists()
    })
    .await;
    assert!(
        followed,
        "mirror: {:?}",
        tree(&mirror).keys().collect::<Vec<_>>()
    );
    assert!(!mirror.join("lib/b.o").exists());
}
