//! The relay's initial sync over an upload transfer (`client/uploadFiles` →
//! `/ws/file-stream/{operation_id}`, binary frames) instead of `client/readFiles`: the real
//! relay and the real server, a tree with binary and empty files, deep paths and unicode
//! names; a connection cut in the middle; a tool call made while the sync runs; a path that
//! would escape the project; and small edits, which still go as `server/fileChanged` deltas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use codeflow_e2e::{Relay, Server, TcpProxy, Trip, Ws, eventually, metrics, tree};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// `files` text files of `size` bytes each, plus binary, empty, deep and unicode ones.
fn project(files: usize, size: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..files {
        let line = format!("value_{i} = {i}  # padding padding padding padding\n");
        let text = line.repeat(size / line.len() + 1);
        write(root, &format!("src/m{}/f{i}.py", i % 7), text.as_bytes());
    }
    let binary: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 256) as u8).collect();
    write(root, "assets/blob.bin", &binary);
    write(root, "assets/nul.bin", &[0, 0, 255, 0]);
    // Over three upload chunks (256 KiB each): stored from its chunks as they came.
    let large: Vec<u8> = (0..3 * 256 * 1024 + 5u32)
        .map(|i| (i * 13 % 251) as u8)
        .collect();
    write(root, "assets/large.bin", &large);
    write(root, "empty.txt", b"");
    write(root, "pkg/__init__.py", b"");
    let deep = (0..24)
        .map(|i| format!("d{i}"))
        .collect::<Vec<_>>()
        .join("/");
    write(root, &format!("{deep}/deep.py"), b"DEEP = 1\n");
    write(root, "ünï/日本語/файл.py", "NAME = 'ü'\n".as_bytes());
    dir
}

/// A scan slowed down (debug builds: `CODEFLOW_TEST_SCAN_PAUSE_MS`) so that it is still
/// running when the relay has connected, however loaded the machine: a streamed sync.
const SLOW_SCAN: &[(&str, &str)] = &[("CODEFLOW_TEST_SCAN_PAUSE_MS", "1")];

fn metric(samples: &std::collections::HashMap<String, f64>, name: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| *v)
        .sum()
}

#[tokio::test]
async fn the_initial_sync_goes_over_a_transfer_and_small_edits_stay_deltas() {
    let server = Server::start().await;
    let dir = project(60, 3000);
    let root = dir.path().canonicalize().unwrap();
    let relay = Relay::spawn(&server.url(), "sync-transfer", &root, &[]);
    relay.initialize().await;
    relay.settle().await;

    let mirror = server.mirror_dir("sync-transfer");
    assert_eq!(tree(&mirror), tree(&root), "mirror == tree, hash by hash");
    let m = metrics(server.port).await;
    let files = tree(&root).len() as f64;
    assert_eq!(
        metric(&m, "codeflow_sync_transferred_files_total"),
        files,
        "every file came over the transfer"
    );
    assert!(metric(&m, "codeflow_sync_transferred_bytes_total") > 180_000.0);
    assert_eq!(
        metric(&m, "codeflow_transfer_files_total"),
        files,
        "counted as upload transfers too"
    );
    let changes_before = metric(&m, "codeflow_file_changes_total");

    // A one-line edit is a `server/fileChanged` delta, not another transfer.
    let edited = root.join("src/m0/f0.py");
    let mut text = std::fs::read_to_string(&edited).unwrap();
    text.push_str("EDITED = True\n");
    std::fs::write(&edited, &text).unwrap();
    relay.settle().await;
    assert_eq!(
        std::fs::read_to_string(mirror.join("src/m0/f0.py")).unwrap(),
        text
    );
    let m = metrics(server.port).await;
    assert_eq!(
        metric(&m, "codeflow_sync_transferred_files_total"),
        files,
        "no transfer for an edit"
    );
    assert!(metric(&m, "codeflow_file_changes_total") > changes_before);

    // The sync's outcome is on record (status views, health_check).
    let health = relay.tool("health_check", json!({})).await;
    let sync = &health["structuredContent"]["mirror"]["sync"];
    assert_eq!(sync["last"]["ok"], true, "{health}");
    assert_eq!(
        sync["last"]["summary"]["transfer"]["stored"],
        json!(files as u64),
        "{sync}"
    );
    relay.close().await;
}

#[tokio::test]
async fn a_sync_cut_in_the_middle_ends_with_the_mirror_equal_to_the_tree() {
    let server = Server::start().await;
    let proxy = TcpProxy::start(server.port).await;
    // Large enough that the first acknowledgement (a batch of 128 files) comes long before
    // the last file; small enough for a debug build on a loaded machine.
    let dir = project(300, 10_000);
    let root = dir.path().canonicalize().unwrap();
    // The upload's first acknowledgement trips the proxy: from then on what the relay sends is
    // swallowed, until the test severs every connection (the session's and the upload's).
    proxy.trip_on("\"type\":\"ack\"", Trip::SwallowTheAnswer);
    let relay = Relay::spawn(&proxy.url(), "sync-cut", &root, &[]);
    relay.initialize().await;
    tokio::time::timeout(Duration::from_secs(60), proxy.tripped())
        .await
        .expect("the upload was acknowledged");
    proxy.sever();
    relay.settle().await;
    let mirror = server.mirror_dir("sync-cut");
    assert!(
        eventually(Duration::from_secs(60), || {
            let (a, b) = (tree(&mirror), tree(&root));
            async move { a == b }
        })
        .await,
        "the mirror ends equal to the tree"
    );
    let m = metrics(server.port).await;
    assert!(
        metric(&m, "codeflow_sync_transferred_files_total") > 0.0,
        "the transfer carried files"
    );
    relay.close().await;
}

#[tokio::test]
async fn a_tool_call_made_during_the_sync_answers_from_complete_files() {
    let server = Server::start().await;
    let dir = project(500, 10_000);
    let root = dir.path().canonicalize().unwrap();
    // The file the call reads is the last of the transfer (paths are sent in order).
    let last = "zz/last.py";
    let content = "LAST = 'complete'\n".repeat(20_000);
    write(&root, last, content.as_bytes());
    let relay = Relay::spawn(&server.url(), "sync-during", &root, &[]);
    relay.initialize().await;
    // Sent at once: the relay holds it behind the sync's manifest, the server behind the sync.
    let result = relay
        .call(
            "tools/call",
            json!({"name": "search_for_pattern", "arguments": {"pattern": "^LAST = 'complete'$",
                "paths_include_glob": "zz/*.py", "max_results": 100_000},
                "_meta": {"progressToken": "sync-1"}}),
        )
        .await;
    assert_eq!(
        result["result"]["structuredContent"]["total"],
        20_000,
        "every line of the whole file: {:.400}",
        result.to_string()
    );
    assert_eq!(
        std::fs::read_to_string(server.mirror_dir("sync-during").join(last)).unwrap(),
        content,
        "the file is whole in the mirror"
    );
    // While it waited, the call's progressToken got the sync's progress, rising.
    let mut relay = relay;
    let mut steps = Vec::new();
    let files = tree(&root).len();
    while let Ok(n) = relay.notifications.try_recv() {
        if n["method"] == "notifications/progress" && n["params"]["progressToken"] == "sync-1" {
            steps.push(n["params"]["progress"].as_u64().unwrap());
            assert_eq!(n["params"]["total"], files, "{n}");
        }
    }
    assert!(
        !steps.is_empty(),
        "no notifications/progress for the waiting call"
    );
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
    relay.close().await;
}

/// A relay with its hash cache in `cache` that has synced `root` into `project`; the files are
/// made older than the cache's local margin (50 ms) first, so their hashes are kept.
async fn synced_with_a_cache(server: &Server, project: &str, root: &Path, cache: &str) -> Relay {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let relay = Relay::spawn(&server.url(), project, root, &["--cache-dir", cache]);
    relay.initialize().await;
    relay.settle().await;
    relay
}

/// A relay restarted on a tree with its hash cache warm (the files were older than the cache's
/// local margin when the first relay read them, so their hashes were kept): what changed while
/// no relay ran — a same-size rewrite, a new file, a deleted one — still reaches the mirror,
/// and the re-sync deletes what is gone; the unchanged files are not sent again.
#[tokio::test]
async fn a_restarted_relay_with_a_warm_hash_cache_brings_edits_and_deletes() {
    let server = Server::start().await;
    let dir = project(40, 2000);
    let root = dir.path().canonicalize().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap().to_owned();
    let first = synced_with_a_cache(&server, "sync-warm", &root, &cache_arg).await;
    let mirror = server.mirror_dir("sync-warm");
    assert_eq!(tree(&mirror), tree(&root));
    first.close().await;

    // While no relay runs: a same-size rewrite (only the stamp tells), a new file, a deletion.
    let same_size = root.join("src/m1/f1.py");
    let old = std::fs::read(&same_size).unwrap();
    let rewritten: Vec<u8> = old.iter().map(|b| b.to_ascii_uppercase()).collect();
    assert_eq!(old.len(), rewritten.len());
    std::fs::write(&same_size, &rewritten).unwrap();
    write(&root, "src/added.py", b"ADDED = 1\n");
    std::fs::remove_file(root.join("src/m2/f2.py")).unwrap();
    let before = metrics(server.port).await;

    let second = Relay::spawn(
        &server.url(),
        "sync-warm",
        &root,
        &["--cache-dir", &cache_arg],
    );
    second.initialize().await;
    second.settle().await;
    assert_eq!(
        tree(&mirror),
        tree(&root),
        "the mirror equals the tree again"
    );
    assert_eq!(
        std::fs::read(mirror.join("src/m1/f1.py")).unwrap(),
        rewritten
    );
    assert!(
        !mirror.join("src/m2/f2.py").exists(),
        "deleted by the re-sync"
    );
    let after = metrics(server.port).await;
    assert_eq!(
        metric(&after, "codeflow_sync_fetched_files_total")
            - metric(&before, "codeflow_sync_fetched_files_total"),
        2.0,
        "only the rewritten and the added file were fetched"
    );
    second.close().await;
}

/// A streamed first sync of a tree the relay's hash cache knows, into a project whose mirror is
/// empty: the cached files come from the scan without their bytes and are read from disk by
/// the upload (in runs, on a blocking thread); the new ones go with the bytes the scan read.
#[tokio::test]
async fn a_streamed_sync_reads_the_files_its_scan_did_not_keep() {
    let server = Server::start().await;
    let dir = project(300, 3000);
    let root = dir.path().canonicalize().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap().to_owned();
    synced_with_a_cache(&server, "cached-a", &root, &cache_arg)
        .await
        .close()
        .await;

    // Enough new files for a streamed sync; everything else is vouched for by the cache.
    for i in 0..40 {
        write(
            &root,
            &format!("fresh/n{i}.py"),
            format!("N = {i}\n").as_bytes(),
        );
    }
    let second = Relay::spawn_with_env(
        &server.url(),
        "cached-b",
        &root,
        &["--cache-dir", &cache_arg],
        SLOW_SCAN,
    );
    second.initialize().await;
    second.settle().await;
    let mirror = server.mirror_dir("cached-b");
    assert_eq!(tree(&mirror), tree(&root), "mirror == tree, hash by hash");
    let health = second.tool("health_check", json!({})).await;
    let sync = &health["structuredContent"]["mirror"]["sync"];
    let transfer = &sync["last"]["summary"]["transfer"];
    assert!(transfer["streamed"].is_string(), "a streamed sync: {sync}");
    assert_eq!(
        transfer["stored"],
        json!(tree(&root).len() as u64),
        "every file over the streamed upload: {sync}"
    );
    second.close().await;
}

/// A relay of its own (a socket speaking the protocol) answers `client/uploadFiles` with a
/// file header whose path leaves the project: refused, nothing written outside the mirror.
#[tokio::test]
async fn a_path_escaping_the_project_in_a_sync_upload_is_refused() {
    let server = Server::start().await;
    let root = "/work/escape-demo";
    let mut ws = Ws::connect(&server.url()).await;
    ws.initialize_relay("escape-demo", root).await;
    let contents: Vec<String> = (0..20).map(|i| format!("F{i} = {i}\n")).collect();
    let files: Vec<Value> = contents
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"path": format!("f{i}.py"), "size": c.len(), "mtime": 0,
                "hash": blake3::hash(c.as_bytes()).to_hex().to_string()})
        })
        .collect();
    ws.send_json(
        json!({"jsonrpc": "2.0", "id": "sync", "method": "server/syncManifest",
        "params": {"files": files, "transfers": true}}),
    )
    .await;
    let request = loop {
        let m = ws.json().await;
        if m["method"] == "client/uploadFiles" {
            break m;
        }
    };
    let url = format!(
        "ws://127.0.0.1:{}{}",
        server.port,
        request["params"]["url"].as_str().unwrap()
    );
    let (mut upload, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let start = upload.next().await.unwrap().unwrap();
    assert!(start.to_text().unwrap().contains("\"start\""), "{start}");
    let header = |index: usize, path: &str, content: &str| {
        let mut frame = vec![1u8];
        frame.extend(
            serde_json::to_vec(&json!({"index": index, "path": path, "size": content.len(),
                "mode": 0o644, "hash": blake3::hash(content.as_bytes()).to_hex().to_string()}))
            .unwrap(),
        );
        frame
    };
    let chunk = |content: &str| {
        let mut frame = vec![2u8];
        frame.extend(content.as_bytes());
        frame
    };
    // File 0 under a path leading out of the project; file 1 as planned.
    let escape = "../../../../escaped.py";
    for (index, path) in [(0, escape), (1, "f1.py")] {
        upload
            .send(WsMessage::Binary(
                header(index, path, &contents[index]).into(),
            ))
            .await
            .unwrap();
        upload
            .send(WsMessage::Binary(chunk(&contents[index]).into()))
            .await
            .unwrap();
    }
    upload
        .send(WsMessage::Text(json!({"type": "end"}).to_string().into()))
        .await
        .unwrap();
    let mut rejected = Vec::new();
    let summary = loop {
        let Some(Ok(message)) = upload.next().await else {
            panic!("no summary")
        };
        let Ok(text) = message.to_text() else {
            continue;
        };
        let v: Value = serde_json::from_str(text).unwrap_or_default();
        if v["type"] == "ack" {
            rejected.extend(v["rejected"].as_array().cloned().unwrap_or_default());
        }
        if v["type"] == "summary" {
            break v;
        }
    };
    assert_eq!(summary["files"], 1, "{summary}");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["index"], 0);
    assert_eq!(rejected[0]["code"], -33004, "PathRejected: {rejected:?}");
    // The relay's answer; then the server reads the rest itself (answered as gone here).
    ws.send_json(json!({"jsonrpc": "2.0", "id": request["id"], "result": summary}))
        .await;
    let reply = loop {
        let m = ws.json().await;
        if m["id"] == "sync" {
            break m;
        }
        if m["method"]
            .as_str()
            .is_some_and(|x| x.starts_with("client/"))
        {
            ws.send_json(json!({"jsonrpc": "2.0", "id": m["id"],
                "error": {"code": -32601, "message": "not here"}}))
                .await;
        }
    };
    assert!(reply.get("result").is_some(), "{reply}");
    let mirror = server.mirror_dir("escape-demo");
    assert_eq!(
        std::fs::read_to_string(mirror.join("f1.py")).unwrap(),
        contents[1]
    );
    let mut dir = mirror.clone();
    for _ in 0..4 {
        dir.pop();
        assert!(
            !dir.join("escaped.py").exists(),
            "nothing written at {}",
            dir.display()
        );
    }
}

/// The relay's first sync streams the tree while its scan reads it (`server/syncBegin`, then
/// the manifest with `streamed`): binary, empty, deep and unicode files all end in the mirror,
/// byte for byte, every one of them over the streamed upload.
#[tokio::test]
async fn the_first_sync_streams_the_tree_while_the_relay_scans_it() {
    let server = Server::start().await;
    // The scan is still reading when the relay has connected (a scan already over sends its
    // manifest at once): 12 MB, read slowly.
    let dir = project(400, 30_000);
    let root = dir.path().canonicalize().unwrap();
    let relay = Relay::spawn_with_env(&server.url(), "sync-streamed", &root, &[], SLOW_SCAN);
    relay.initialize().await;
    relay.settle().await;
    let mirror = server.mirror_dir("sync-streamed");
    assert_eq!(tree(&mirror), tree(&root), "mirror == tree, hash by hash");
    for rel in [
        "assets/blob.bin",
        "assets/large.bin",
        "assets/nul.bin",
        "empty.txt",
        "ünï/日本語/файл.py",
    ] {
        assert_eq!(
            std::fs::read(mirror.join(rel)).unwrap(),
            std::fs::read(root.join(rel)).unwrap(),
            "{rel}"
        );
    }
    let health = relay.tool("health_check", json!({})).await;
    let sync = &health["structuredContent"]["mirror"]["sync"];
    assert_eq!(sync["last"]["ok"], true, "{health}");
    let transfer = &sync["last"]["summary"]["transfer"];
    assert!(transfer["streamed"].is_string(), "a streamed sync: {sync}");
    let files = tree(&root).len() as u64;
    assert_eq!(transfer["stored"], json!(files), "{sync}");
    let m = metrics(server.port).await;
    assert_eq!(
        metric(&m, "codeflow_sync_transferred_files_total"),
        files as f64
    );
    relay.close().await;
}

/// A file rewritten while the relay's scan runs ends in the mirror with its newest content:
/// the scan sends what it hashed, and the watcher's change follows the manifest.
#[tokio::test]
async fn a_file_changed_during_the_scan_ends_with_its_newest_content() {
    let server = Server::start().await;
    let dir = project(600, 20_000);
    let root = dir.path().canonicalize().unwrap();
    let target = root.join("src/m3/f3.py");
    let relay = Relay::spawn(&server.url(), "sync-racing", &root, &[]);
    // Rewrites while the relay starts and scans (12 MB: the scan takes a while in a debug
    // build); the last one is what the mirror must end with.
    let mut last = String::new();
    for round in 0..15 {
        last = format!("ROUND = {round}\n").repeat(100 + round);
        std::fs::write(&target, &last).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.initialize().await;
    relay.settle().await;
    let mirror = server.mirror_dir("sync-racing");
    assert!(
        eventually(Duration::from_secs(30), || {
            let (a, b) = (tree(&mirror), tree(&root));
            async move { a == b }
        })
        .await,
        "the mirror ends equal to the tree"
    );
    assert_eq!(
        std::fs::read_to_string(mirror.join("src/m3/f3.py")).unwrap(),
        last
    );
    relay.close().await;
}

/// A second relay (no hash cache: it reads every file again) on a tree changed while none
/// ran: its streamed sync skips what the mirror has (`have`), sends the changed and new files,
/// and deletes what is gone once its manifest arrives.
#[tokio::test]
async fn a_streamed_re_sync_sends_only_changes_and_deletes_what_is_gone() {
    let server = Server::start().await;
    let dir = project(300, 30_000);
    let root = dir.path().canonicalize().unwrap();
    let first = Relay::spawn(&server.url(), "sync-stream-again", &root, &["--no-cache"]);
    first.initialize().await;
    first.settle().await;
    let mirror = server.mirror_dir("sync-stream-again");
    assert_eq!(tree(&mirror), tree(&root));
    first.close().await;

    write(&root, "src/m1/f1.py", b"CHANGED = 1\n");
    write(&root, "new/added.py", b"ADDED = 1\n");
    std::fs::remove_file(root.join("src/m2/f2.py")).unwrap();
    std::fs::remove_file(root.join("assets/blob.bin")).unwrap();
    let before = metrics(server.port).await;

    let second = Relay::spawn_with_env(
        &server.url(),
        "sync-stream-again",
        &root,
        &["--no-cache"],
        SLOW_SCAN,
    );
    second.initialize().await;
    second.settle().await;
    assert!(
        eventually(Duration::from_secs(30), || {
            let (a, b) = (tree(&mirror), tree(&root));
            async move { a == b }
        })
        .await,
        "the mirror equals the tree again"
    );
    assert!(!mirror.join("src/m2/f2.py").exists(), "deleted");
    assert!(!mirror.join("assets/blob.bin").exists(), "deleted");
    let after = metrics(server.port).await;
    assert_eq!(
        metric(&after, "codeflow_sync_fetched_files_total")
            - metric(&before, "codeflow_sync_fetched_files_total"),
        2.0,
        "only the changed and the added file were sent"
    );
    let health = second.tool("health_check", json!({})).await;
    let transfer = &health["structuredContent"]["mirror"]["sync"]["last"]["summary"]["transfer"];
    assert!(
        transfer["streamed"].is_string(),
        "a streamed sync: {health}"
    );
    assert_eq!(transfer["stored"], 2, "{transfer}");
    second.close().await;
}

/// An older server answers `server/syncBegin` with -32601: the relay sends its manifest as
/// before (a fake server here, speaking just enough of the protocol).
#[tokio::test]
async fn against_a_server_without_sync_begin_the_relay_sends_its_manifest() {
    // 20 MB: the relay's scan is still reading when the fake server answers `initialize`
    // (a scan already over sends its manifest at once, without asking).
    let dir = project(400, 50_000);
    let root = dir.path().canonicalize().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let relay = Relay::spawn(&url, "old-server", &root, &[]);
    let agent = tokio::spawn(async move {
        relay.initialize().await;
        relay
    });
    let (stream, _) = listener.accept().await.unwrap();
    let ws = tokio_tungstenite::accept_async(stream).await.unwrap();
    let (mut to_relay, mut from_relay) = ws.split();
    let mut next = async || codeflow_e2e::next_json(&mut from_relay, Duration::from_secs(30)).await;
    let init = next().await;
    assert_eq!(init["method"], "initialize");
    let reply = json!({"jsonrpc": "2.0", "id": init["id"], "result": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "serverInfo": {"name": "old", "version": "0"}, "sessionId": "old-session"}});
    let mut seen = Vec::new();
    let mut replies = vec![reply];
    let manifest = loop {
        for r in replies.drain(..) {
            to_relay
                .send(WsMessage::Text(r.to_string().into()))
                .await
                .unwrap();
        }
        let m = next().await;
        seen.push(m["method"].as_str().unwrap_or_default().to_owned());
        match m["method"].as_str() {
            Some("server/syncBegin") => {
                assert_eq!(m["params"]["transfers"], true, "{m}");
                replies.push(json!({"jsonrpc": "2.0", "id": m["id"],
                    "error": {"code": -32601, "message": "method not found"}}));
            }
            Some("server/syncManifest") => break m,
            _ => {}
        }
    };
    assert!(
        seen.iter().any(|m| m == "server/syncBegin"),
        "the relay asked first: {seen:?}"
    );
    assert!(manifest["params"].get("streamed").is_none(), "{manifest}");
    let listed: std::collections::BTreeSet<String> = manifest["params"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    let on_disk: std::collections::BTreeSet<String> = tree(&root).into_keys().collect();
    assert_eq!(listed, on_disk, "the whole tree, hashed");
    drop(agent);
}
