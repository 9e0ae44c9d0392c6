//! Bulk transfers on `/ws/file-stream/{operation_id}`, both ways: a tree with binary files,
//! empty files, deep paths and unicode names arrives whole and verified; a connection cut
//! mid-transfer resumes (download: after the acknowledged files; upload: the server says what
//! it stored, a file cut in its middle is never written); a path escaping the project, a file
//! whose hash does not match, a spent operation id and another project's token are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use codeflow_e2e::{Server, TIMEOUT, Ws};
use codeflow_file_stream::transfer::{Frame, parse};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The test tree: binary, empty, deep, unicode, and one large enough for several chunks.
fn tree() -> BTreeMap<String, Vec<u8>> {
    let mut t = BTreeMap::new();
    t.insert(
        "bin/all-bytes.bin".into(),
        (0..=255u8).cycle().take(4096).collect(),
    );
    t.insert("empty.txt".into(), Vec::new());
    t.insert("a/b/c/d/e/f/g/deep.txt".into(), b"deep\n".to_vec());
    t.insert(
        "é/日本語 名前.txt".into(),
        "unicode ✓\n".as_bytes().to_vec(),
    );
    t.insert(
        "big.dat".into(),
        (0..700_000u32).map(|i| (i % 251) as u8).collect(),
    );
    for i in 0..20 {
        t.insert(format!("src/f{i:02}.py"), format!("x = {i}\n").into_bytes());
    }
    t
}

fn write_tree(root: &Path, t: &BTreeMap<String, Vec<u8>>) {
    for (rel, bytes) in t {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

async fn session(server: &Server, project: &str) -> Ws {
    let mut ws = Ws::connect(&server.url()).await;
    ws.initialize(project, &format!("/{project}")).await;
    ws
}

async fn begin(ws: &mut Ws, params: Value) -> Value {
    let r = ws.request(json!(7), "files/beginTransfer", params).await;
    r.get("result")
        .cloned()
        .unwrap_or_else(|| panic!("beginTransfer: {r}"))
}

async fn open(server: &Server, url: &str, token: Option<&str>) -> Result<Socket, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://127.0.0.1:{}{url}", server.port)
        .into_client_request()
        .unwrap();
    if let Some(t) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((s, _)) => Ok(s),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// What a client received: files (verified against their headers), control messages.
#[derive(Default)]
struct Received {
    files: BTreeMap<String, Vec<u8>>,
    controls: Vec<Value>,
    indices: Vec<u64>,
}

/// Reads a transfer, acknowledging each complete file; stops after `stop_after` files (cut
/// mid-transfer: the socket is dropped without a close) or at the summary.
async fn receive(mut socket: Socket, got: &mut Received, stop_after: Option<usize>) -> bool {
    let mut current: Option<(codeflow_file_stream::transfer::FileHeader, Vec<u8>)> = None;
    let mut files_now = 0;
    loop {
        let frame = tokio::time::timeout(TIMEOUT, socket.next())
            .await
            .expect("transfer went silent");
        match frame {
            Some(Ok(Message::Binary(b))) => match parse(&b).unwrap() {
                Frame::Header(h) => {
                    assert!(current.is_none(), "a header before the last file ended");
                    current = Some((h, Vec::new()));
                }
                Frame::Chunk(c) => current.as_mut().unwrap().1.extend_from_slice(&c),
                Frame::Whole(files) => panic!("a download sends no whole-file frame: {files:?}"),
            },
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                let summary = v["type"] == "summary";
                got.controls.push(v);
                if summary {
                    let _ = socket.close(None).await;
                    return true;
                }
                continue;
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return false,
            Some(Ok(_)) => continue,
        }
        if let Some((h, bytes)) = &current
            && bytes.len() as u64 == h.size
        {
            assert_eq!(
                blake3::hash(bytes).to_hex().to_string(),
                h.hash,
                "{}",
                h.path
            );
            got.files.insert(h.path.clone(), bytes.clone());
            got.indices.push(h.index);
            let ack = json!({"type": "ack", "index": h.index});
            socket
                .send(Message::Text(ack.to_string().into()))
                .await
                .unwrap();
            current = None;
            files_now += 1;
            if stop_after == Some(files_now) {
                // Let the acknowledgements reach the server, then cut the connection.
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                drop(socket);
                return false;
            }
        }
    }
}

#[tokio::test]
async fn a_tree_downloads_whole_and_resumes_after_a_cut() {
    let server = Server::start().await;
    let mut ws = session(&server, "dl").await;
    let made = ws
        .request(json!(1), "projects/create", json!({"id": "dl"}))
        .await;
    assert!(made.get("result").is_some(), "{made}");
    let expected = tree();
    write_tree(&server.data_dir.path().join("workspaces/dl"), &expected);

    let op = begin(&mut ws, json!({"direction": "download", "all": true})).await;
    assert_eq!(op["totalFiles"], expected.len());
    let url = op["url"].as_str().unwrap().to_owned();
    assert_eq!(
        url,
        format!("/ws/file-stream/{}", op["operationId"].as_str().unwrap())
    );

    // The first connection is cut after 3 files.
    let mut got = Received::default();
    let socket = open(&server, &url, None).await.unwrap();
    assert!(!receive(socket, &mut got, Some(3)).await);
    assert_eq!(got.files.len(), 3);
    // The resumed connection starts after them.
    let socket = open(&server, &url, None).await.unwrap();
    assert!(receive(socket, &mut got, None).await);
    let starts: Vec<&Value> = got
        .controls
        .iter()
        .filter(|c| c["type"] == "start")
        .collect();
    assert_eq!(starts[0]["from"], 0);
    assert_eq!(starts[1]["from"], 3, "{:?}", got.controls);
    assert_eq!(got.files, expected);
    let summary = got
        .controls
        .iter()
        .find(|c| c["type"] == "summary")
        .unwrap();
    assert_eq!(summary["skipped"], json!([]));
    assert_eq!(summary["files"], expected.len() - 3);
    let progress = got
        .controls
        .iter()
        .rev()
        .find(|c| c["type"] == "progress")
        .unwrap();
    assert_eq!(progress["files"], progress["totalFiles"]);
    assert_eq!(progress["bytes"], progress["totalBytes"]);

    // A spent operation id (every file acknowledged) is refused before the upgrade, once the
    // server has read the last acknowledgements.
    assert!(
        codeflow_e2e::eventually(std::time::Duration::from_secs(5), || async {
            open(&server, &url, None).await.err() == Some(410)
        })
        .await
    );
    assert_eq!(
        open(&server, "/ws/file-stream/nope", None).await.err(),
        Some(404)
    );
}

#[tokio::test]
async fn chosen_paths_pass_the_jail_and_operations_stay_with_their_project() {
    const SECRET: &str = "transfer-tests-secret-of-at-least-32-bytes";
    let server = Server::start_with(&["--jwt-secret", SECRET], &[]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mint = |projects: Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({"sub": "t", "iss": "codeflow", "aud": "codeflow-clients", "exp": now + 600,
                    "projects": projects, "scope": "file:read projects:manage"}),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let a_token = mint(json!(["a"]));
    let mut ws = Ws::connect_with_token(&server.url(), Some(&a_token))
        .await
        .unwrap();
    ws.initialize("a", "/a").await;
    ws.request(json!(1), "projects/create", json!({"id": "a"}))
        .await;
    let root = server.data_dir.path().join("workspaces/a");
    write_tree(&root, &tree());
    std::os::unix::fs::symlink("/etc", root.join("escape")).unwrap();

    for bad in ["../secret", "/etc/passwd", "escape/passwd", "a/../../x"] {
        let r = ws
            .request(
                json!(2),
                "files/beginTransfer",
                json!({"direction": "download", "paths": [bad]}),
            )
            .await;
        assert!(r.get("error").is_some(), "{bad}: {r}");
    }
    let op = begin(
        &mut ws,
        json!({"direction": "download", "paths": ["empty.txt", "é/日本語 名前.txt"]}),
    )
    .await;
    let url = op["url"].as_str().unwrap().to_owned();
    // Another project's token is refused; the operation is not spent by that.
    let b_token = mint(json!(["b"]));
    assert_eq!(open(&server, &url, Some(&b_token)).await.err(), Some(403));
    let mut got = Received::default();
    let socket = open(&server, &url, Some(&a_token)).await.unwrap();
    assert!(receive(socket, &mut got, None).await);
    assert_eq!(got.files.len(), 2);
    assert_eq!(got.files["é/日本語 名前.txt"], "unicode ✓\n".as_bytes());
    // Used once.
    assert!(
        codeflow_e2e::eventually(std::time::Duration::from_secs(5), || async {
            open(&server, &url, None).await.err() == Some(410)
        })
        .await
    );
    // Uploads go to a streamed project's mirror, not into a server-side project.
    let up = ws
        .request(
            json!(3),
            "files/beginTransfer",
            json!({"direction": "upload"}),
        )
        .await;
    assert_eq!(up["error"]["code"], -32602, "{up}");
    assert!(
        up["error"]["message"]
            .as_str()
            .unwrap()
            .contains("streamed")
    );
}

/// Sends files `(index, path, content, hash)` on an upload socket, each after the
/// acknowledgement of the one before; returns the replies (ack or rejected) in order. A
/// small file with an even index goes in one frame (`0x03`, as `beginTransfer` offered), the
/// others as a header and chunks: the server takes both.
async fn send_files(socket: &mut Socket, files: &[(u64, String, Vec<u8>, String)]) -> Vec<Value> {
    use codeflow_file_stream::transfer::{FileHeader, chunk_frame, header_frame, whole_frame};
    let mut replies = Vec::new();
    for (index, path, bytes, hash) in files {
        let header = FileHeader {
            index: *index,
            path: path.clone(),
            size: bytes.len() as u64,
            mode: 0o644,
            hash: hash.clone(),
        };
        if index % 2 == 0 && bytes.len() <= 100_000 {
            socket
                .send(Message::Binary(whole_frame(&header, bytes)))
                .await
                .unwrap();
        } else {
            socket
                .send(Message::Binary(header_frame(&header)))
                .await
                .unwrap();
            for chunk in bytes.chunks(100_000) {
                socket
                    .send(Message::Binary(chunk_frame(chunk)))
                    .await
                    .unwrap();
            }
        }
        loop {
            let frame = tokio::time::timeout(TIMEOUT, socket.next()).await.unwrap();
            if let Some(Ok(Message::Text(t))) = frame {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "ack" || v["type"] == "rejected" {
                    assert_eq!(v["index"], *index, "{v}");
                    replies.push(v);
                    break;
                }
            } else {
                panic!("upload socket: {frame:?}");
            }
        }
    }
    replies
}

async fn start_frame(socket: &mut Socket) -> Value {
    loop {
        if let Some(Ok(Message::Text(t))) = socket.next().await {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "start" {
                return v;
            }
        } else {
            panic!("no start frame");
        }
    }
}

#[tokio::test]
async fn a_tree_uploads_into_the_mirror_resumes_and_refuses_bad_files() {
    let server = Server::start_with(&[], &[("FILE_SIZE_LIMIT", "1000000")]).await;
    let mut ws = session(&server, "up").await;
    let expected = tree();
    // The large file fourth: the connection is cut in its middle.
    let mut order: Vec<(&String, &Vec<u8>)> =
        expected.iter().filter(|(p, _)| *p != "big.dat").collect();
    order.insert(3, expected.get_key_value("big.dat").unwrap());
    let files: Vec<(u64, String, Vec<u8>, String)> = order
        .into_iter()
        .enumerate()
        .map(|(i, (p, b))| {
            (
                i as u64,
                p.clone(),
                b.clone(),
                blake3::hash(b).to_hex().to_string(),
            )
        })
        .collect();
    let sub = ws
        .request(json!(2), "channels/subscribe", json!({"channel": "files"}))
        .await;
    assert!(sub.get("result").is_some(), "{sub}");
    let op = begin(&mut ws, json!({"direction": "upload"})).await;
    assert_eq!(
        op["wholeFrames"], true,
        "files in one frame are offered: {op}"
    );
    let url = op["url"].as_str().unwrap().to_owned();

    // Three files, then the connection is cut in the middle of the fourth.
    let mut socket = open(&server, &url, None).await.unwrap();
    assert_eq!(start_frame(&mut socket).await["received"], json!([]));
    let replies = send_files(&mut socket, &files[..3]).await;
    assert!(replies.iter().all(|r| r["type"] == "ack"), "{replies:?}");
    let (index, path, bytes, hash) = &files[3];
    let header = codeflow_file_stream::transfer::FileHeader {
        index: *index,
        path: path.clone(),
        size: bytes.len() as u64,
        mode: 0o644,
        hash: hash.clone(),
    };
    socket
        .send(Message::Binary(
            codeflow_file_stream::transfer::header_frame(&header),
        ))
        .await
        .unwrap();
    if bytes.len() > 1 {
        let half = &bytes[..bytes.len() / 2];
        socket
            .send(Message::Binary(
                codeflow_file_stream::transfer::chunk_frame(half),
            ))
            .await
            .unwrap();
    }
    drop(socket);

    // Resumed: the server says what it has; the rest follows, with two bad files.
    let mut socket = open(&server, &url, None).await.unwrap();
    assert_eq!(start_frame(&mut socket).await["received"], json!([0, 1, 2]));
    let mut rest = files[3..].to_vec();
    rest.push((100, "bad-hash.txt".into(), b"abc".to_vec(), "00".repeat(32)));
    let huge = vec![7u8; 1_200_000];
    let huge_hash = blake3::hash(&huge).to_hex().to_string();
    rest.push((102, "huge.bin".into(), huge, huge_hash));
    rest.push((
        101,
        "../escape.txt".into(),
        b"x".to_vec(),
        blake3::hash(b"x").to_hex().to_string(),
    ));
    let replies = send_files(&mut socket, &rest).await;
    let rejected: Vec<&Value> = replies.iter().filter(|r| r["type"] == "rejected").collect();
    assert_eq!(rejected.len(), 3, "{replies:?}");
    assert_eq!(rejected[0]["code"], -33011);
    assert_eq!(rejected[1]["code"], -33005, "the size limit: {replies:?}");
    assert_eq!(rejected[2]["code"], -33004);
    socket
        .send(Message::Text(json!({"type": "end"}).to_string().into()))
        .await
        .unwrap();
    let summary = loop {
        if let Some(Ok(Message::Text(t))) = socket.next().await {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "summary" {
                break v;
            }
        } else {
            panic!("no summary");
        }
    };
    assert_eq!(summary["files"], expected.len(), "{summary}");
    assert_eq!(summary["rejected"].as_array().unwrap().len(), 3);

    // The mirror holds exactly the tree: no half file, nothing refused, nothing outside.
    let mirror = server.mirror_dir("up");
    let mut on_disk = BTreeMap::new();
    let mut dirs = vec![mirror.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                dirs.push(p);
            } else {
                let rel = p
                    .strip_prefix(&mirror)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                if !rel.starts_with(".codeflow") {
                    on_disk.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
    }
    assert_eq!(on_disk, expected);
    assert!(!mirror.parent().unwrap().join("escape.txt").exists());
    // Spent.
    assert_eq!(open(&server, &url, None).await.err(), Some(410));
    // The `files` channel heard of both connections' files.
    let mut heard = std::collections::BTreeSet::new();
    while heard.len() < expected.len() {
        let m = ws.json().await;
        if m["method"] == "channels/event" && m["params"]["data"]["event"] == "transferred" {
            for p in m["params"]["data"]["paths"].as_array().unwrap() {
                heard.insert(p.as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(heard, expected.keys().cloned().collect());
}

/// Several files in one `0x03` frame on an upload socket: each is checked and answered on its
/// own, in the frame's order — one stored, one refused for its hash, one stored empty.
#[tokio::test]
async fn several_files_in_one_frame_are_answered_one_by_one() {
    use codeflow_file_stream::transfer::{FileHeader, WholeFrames};
    let server = Server::start().await;
    let mut ws = session(&server, "packed").await;
    let op = begin(&mut ws, json!({"direction": "upload"})).await;
    let mut socket = open(&server, op["url"].as_str().unwrap(), None)
        .await
        .unwrap();
    start_frame(&mut socket).await;
    let header = |index: u64, path: &str, content: &[u8], hash: String| FileHeader {
        index,
        path: path.into(),
        size: content.len() as u64,
        mode: 0o644,
        hash,
    };
    let hash = |b: &[u8]| blake3::hash(b).to_hex().to_string();
    let mut packer = WholeFrames::default();
    for (index, path, content, digest) in [
        (0, "a/one.txt", &b"one"[..], hash(b"one")),
        (1, "a/bad.txt", &b"bad"[..], "00".repeat(32)),
        (2, "b/empty", &b""[..], hash(b"")),
    ] {
        assert!(
            packer
                .push(&header(index, path, content, digest), content)
                .is_none()
        );
    }
    socket
        .send(Message::Binary(packer.take().unwrap()))
        .await
        .unwrap();
    let mut replies = Vec::new();
    while replies.len() < 3 {
        let frame = tokio::time::timeout(TIMEOUT, socket.next()).await.unwrap();
        let Some(Ok(Message::Text(t))) = frame else {
            panic!("upload socket: {frame:?}");
        };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        if v["type"] == "ack" || v["type"] == "rejected" {
            replies.push((
                v["index"].as_u64().unwrap(),
                v["type"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert_eq!(
        replies,
        [(0, "ack".into()), (1, "rejected".into()), (2, "ack".into())]
    );
    let mirror = server.mirror_dir("packed");
    assert_eq!(std::fs::read(mirror.join("a/one.txt")).unwrap(), b"one");
    assert_eq!(std::fs::read(mirror.join("b/empty")).unwrap(), b"");
    assert!(!mirror.join("a/bad.txt").exists(), "refused, never written");
}
