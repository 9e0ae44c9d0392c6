//! A begun sync's manifest sent while its upload still runs (`"uploadRunning": true`, which
//! the server offers with `manifestWhileUploading` in its `server/syncBegin` answer): the
//! server parses it at once but plans the sync only when the relay says the upload is over
//! (`server/syncUploadOver`). Spoken here frame by frame against the real server, so the
//! order of events is the test's: a file that arrives over the upload after the manifest is
//! stored (not refused and read again), and a file the upload never brought is fetched with
//! `client/readFiles` after the upload is over.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use codeflow_e2e::{Server, TIMEOUT, Ws, tree};
use codeflow_file_stream::ContentHash;
use codeflow_file_stream::transfer::{FileHeader, chunk_frame, header_frame};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const FILES: [(&str, &[u8]); 2] = [("a.txt", b"alpha\n"), ("b/c.txt", b"gamma\n")];

/// A session that has begun a streamed sync: its socket, the operation id, and the upload's
/// socket (its `start` frame read).
async fn begun(server: &Server, project: &str) -> (Ws, String, Socket) {
    let mut ws = Ws::connect(&server.url()).await;
    ws.initialize_relay(project, &format!("/{project}")).await;
    let answer = ws
        .request(
            json!("r:begin:1"),
            "server/syncBegin",
            json!({"transfers": true, "files": 2, "bytes": 12}),
        )
        .await;
    let result = &answer["result"];
    assert_eq!(result["transfers"], true, "{answer}");
    assert_eq!(result["manifestWhileUploading"], true, "{answer}");
    let url = format!(
        "ws://127.0.0.1:{}{}",
        server.port,
        result["url"].as_str().unwrap()
    );
    let (mut upload, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let start = text(&mut upload).await;
    assert_eq!(start["type"], "start", "{start}");
    let operation = result["operationId"].as_str().unwrap().to_owned();
    (ws, operation, upload)
}

async fn text(socket: &mut Socket) -> Value {
    loop {
        match tokio::time::timeout(TIMEOUT, socket.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("upload socket: {other:?}"),
        }
    }
}

/// Sends file `index` of [`FILES`] and waits for its acknowledgement.
async fn send_file(upload: &mut Socket, index: usize) {
    let (path, bytes) = FILES[index];
    let header = FileHeader {
        index: index as u64,
        path: path.to_owned(),
        size: bytes.len() as u64,
        mode: 0o644,
        hash: ContentHash::of(bytes).as_str().to_owned(),
    };
    upload
        .send(Message::Binary(header_frame(&header)))
        .await
        .unwrap();
    upload
        .send(Message::Binary(chunk_frame(bytes)))
        .await
        .unwrap();
    let ack = text(upload).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["indices"], json!([index]), "{ack}");
}

/// The manifest of [`FILES`] for `operation`, sent while the upload runs.
fn manifest(operation: &str) -> Value {
    let files: Vec<Value> = FILES
        .iter()
        .map(|(path, bytes)| {
            json!({"path": path, "size": bytes.len(), "mtime": 1,
                "hash": ContentHash::of(bytes).as_str()})
        })
        .collect();
    json!({"jsonrpc": "2.0", "id": "r:sync:1", "method": "server/syncManifest",
        "params": {"files": files, "streamed": operation, "uploadRunning": true}})
}

fn over(operation: &str) -> Value {
    json!({"jsonrpc": "2.0", "method": "server/syncUploadOver",
        "params": {"operationId": operation}})
}

/// The manifest's answer says both files were fetched, `stored` of them over the upload, and
/// the mirror holds exactly [`FILES`].
fn synced(server: &Server, project: &str, answer: &Value, operation: &str, stored: u64) {
    let result = &answer["result"];
    assert_eq!(result["fetched"], 2, "{answer}");
    assert_eq!(result["transfer"]["streamed"], operation, "{answer}");
    assert_eq!(result["transfer"]["stored"], stored, "{answer}");
    let mirror = server.mirror_dir(project);
    let on_disk: Vec<(String, Vec<u8>)> = tree(&mirror)
        .into_keys()
        .map(|rel| {
            let bytes = std::fs::read(mirror.join(&rel)).unwrap();
            (rel, bytes)
        })
        .collect();
    let expected: Vec<(String, Vec<u8>)> = FILES
        .iter()
        .map(|(p, b)| ((*p).to_owned(), b.to_vec()))
        .collect();
    assert_eq!(on_disk, expected);
}

#[tokio::test]
async fn a_file_that_arrives_after_the_manifest_is_stored_not_read_again() {
    let server = Server::start().await;
    let (mut ws, operation, mut upload) = begun(&server, "early-store").await;
    send_file(&mut upload, 0).await;
    ws.send_json(manifest(&operation)).await;
    // The server has the manifest; the upload goes on. A server that ended the upload with the
    // manifest would refuse this file ("the sync stopped waiting") and read it again.
    send_file(&mut upload, 1).await;
    upload
        .send(Message::Text(
            json!({"type": "end", "notSent": []}).to_string().into(),
        ))
        .await
        .unwrap();
    let summary = text(&mut upload).await;
    assert_eq!(summary["type"], "summary", "{summary}");
    assert_eq!(summary["files"], 2, "{summary}");
    ws.send_json(over(&operation)).await;
    let answer = loop {
        let m = ws.json().await;
        assert_ne!(
            m["method"], "client/readFiles",
            "nothing is read again: {m}"
        );
        assert_ne!(m["method"], "client/readFile", "nothing is read again: {m}");
        if m["id"] == "r:sync:1" {
            break m;
        }
    };
    synced(&server, "early-store", &answer, &operation, 2);
}

#[tokio::test]
async fn what_the_upload_never_brought_is_read_once_it_is_over() {
    let server = Server::start().await;
    let (mut ws, operation, mut upload) = begun(&server, "early-cut").await;
    send_file(&mut upload, 0).await;
    ws.send_json(manifest(&operation)).await;
    // The relay gives the upload up after one file (its connection cut, no `end`).
    drop(upload);
    ws.send_json(over(&operation)).await;
    let answer = loop {
        let m = ws.json().await;
        if m["method"] == "client/readFiles" {
            let paths = m["params"]["paths"].as_array().unwrap().clone();
            assert_eq!(paths, [json!("/early-cut/b/c.txt")], "{m}");
            let bytes = FILES[1].1;
            let file = json!({"content": std::str::from_utf8(bytes).unwrap(),
                "encoding": "utf8", "mtime": 1, "size": bytes.len(),
                "hash": ContentHash::of(bytes).as_str()});
            ws.send_json(json!({"jsonrpc": "2.0", "id": m["id"],
                "result": {"files": [{"path": paths[0], "file": file}]}}))
                .await;
            continue;
        }
        if m["id"] == "r:sync:1" {
            break m;
        }
    };
    synced(&server, "early-cut", &answer, &operation, 1);
}
