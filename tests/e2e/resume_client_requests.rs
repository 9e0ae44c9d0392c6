//! Server → client requests across a cut connection: a write tool whose `client/writeFile` was
//! in flight when the relay's connection died completes once, in about the time of the
//! reconnect — whether the request itself or the relay's answer to it was lost — while 20 other
//! calls beside it are each answered once.
//!
//! The real server and relay, through a loopback TCP proxy that trips on the `client/writeFile`
//! frame: it swallows either that frame (the relay never sees it) or everything the relay sends
//! after it (the relay writes the file and its answer is lost), then the test cuts the
//! connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use codeflow_e2e::channels::TEST_ENV;
use codeflow_e2e::{Relay, Server, TcpProxy, Trip, metrics};
use serde_json::{Value, json};

/// The file the write tool creates, and its content.
const NEW_FILE: &str = "pkg/created.py";
const CONTENT: &str = "CREATED = 1\n";

/// Calls in flight beside the write.
const BESIDE: u64 = 20;

async fn session_id(relay: &Relay) -> String {
    let health = relay.tool("health_check", json!({})).await;
    health["structuredContent"]["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// One of the calls beside the write: even ones count executions (answered once, run once),
/// odd ones read `main.py`'s outline through the language server.
async fn beside(relay: &Relay, i: u64) -> Value {
    if i.is_multiple_of(2) {
        relay
            .call(
                "tools/call",
                json!({"name": "test_counter", "arguments": {"key": format!("k{i}"), "delay_ms": 100 * i}}),
            )
            .await
    } else {
        relay
            .call(
                "tools/call",
                json!({"name": "get_document_symbols", "arguments": {"file_path": "main.py"}}),
            )
            .await
    }
}

async fn write_across_a_cut(trip: Trip, project: &str) {
    let server = Server::start_with(&[], TEST_ENV).await;
    let proxy = TcpProxy::start(server.port).await;
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    std::fs::write(root.join("main.py"), "def main():\n    print('hello')\n").unwrap();
    let relay = Relay::spawn(&proxy.url(), project, &root, &[]);
    relay.initialize().await;
    let before = session_id(&relay).await;
    // A first write starts the language server `create_file` tells about new files, so the
    // write across the cut below takes only what the cut costs.
    let warm = relay
        .tool(
            "create_file",
            json!({"file_path": "pkg/warm.py", "content": "WARM = 1\n"}),
        )
        .await;
    assert_eq!(warm["isError"], false, "{warm}");

    proxy.trip_on("client/writeFile", trip);
    let write = async {
        let reply = relay
            .call(
                "tools/call",
                json!({"name": "create_file", "arguments": {"file_path": NEW_FILE, "content": CONTENT}}),
            )
            .await;
        (reply, Instant::now())
    };
    let others = futures::future::join_all((0..BESIDE).map(|i| beside(&relay, i)));
    let breaker = async {
        tokio::time::timeout(Duration::from_secs(20), proxy.tripped())
            .await
            .expect("the server sent client/writeFile through the proxy");
        let at = Instant::now();
        // Let the relay write (or not) and answer into the swallowing connection.
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.sever();
        at
    };
    let ((reply, answered_at), others, tripped_at) = tokio::join!(write, others, breaker);

    // The write completed once: a second `client/writeFile` for a file that must not exist
    // would have failed as a conflict.
    assert!(reply.get("error").is_none(), "create_file failed: {reply}");
    assert_eq!(reply["result"]["isError"], false, "{reply}");
    assert_eq!(
        std::fs::read_to_string(root.join(NEW_FILE)).unwrap(),
        CONTENT
    );
    let took = answered_at - tripped_at;
    eprintln!("create_file answered {took:?} after its client/writeFile was cut off");
    assert!(
        took < Duration::from_secs(5),
        "answered in about the time of the reconnect, not after a timeout: {took:?}"
    );

    for (i, reply) in (0..BESIDE).zip(&others) {
        assert!(reply.get("error").is_none(), "call {i} failed: {reply}");
        assert_eq!(reply["result"]["isError"], false, "call {i}: {reply}");
        if i.is_multiple_of(2) {
            assert_eq!(
                reply["result"]["structuredContent"]["executions"], 1,
                "call {i} ran once: {reply}"
            );
        } else {
            assert_eq!(
                reply["result"]["structuredContent"]["symbols"][0]["name"], "main",
                "call {i}: {reply}"
            );
        }
    }
    // No call got a second answer, even a while later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        relay.strays.lock().unwrap().is_empty(),
        "repeated answers reached the agent: {:?}",
        relay.strays.lock().unwrap()
    );
    // Every counted call ran exactly once, by the server's own count.
    for i in (0..BESIDE).filter(|i| i.is_multiple_of(2)) {
        let peek = relay
            .call(
                "tools/call",
                json!({"name": "test_counter", "arguments": {"key": format!("k{i}"), "peek": true}}),
            )
            .await;
        assert_eq!(
            peek["result"]["structuredContent"]["executions"], 1,
            "k{i}: {peek}"
        );
    }
    // The same session, resumed once; the server's mirror has the new file.
    assert_eq!(session_id(&relay).await, before);
    assert_eq!(proxy.accepted(), 2, "one reconnect");
    let mirrored = server
        .data_dir
        .path()
        .join("mirrors")
        .join(project)
        .join(NEW_FILE);
    assert_eq!(std::fs::read_to_string(mirrored).unwrap(), CONTENT);
    // It completed because the server sent the lost request again on the resumed connection.
    let resent = metrics(server.port)
        .await
        .get("codeflow_resent_client_requests_total")
        .copied()
        .unwrap_or_default();
    assert!(resent >= 1.0, "client/writeFile was sent again ({resent})");
}

/// The relay never saw the `client/writeFile`: the server sends it again on the resumed
/// connection, and the relay writes the file then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_request_lost_in_a_cut_is_sent_again_on_resume_and_completes_once() {
    write_across_a_cut(Trip::SwallowIt, "lost-request").await;
}

/// The relay wrote the file but its answer was lost: the server sends the request again on
/// the resumed connection, and the relay answers from its memory instead of writing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_answer_lost_in_a_cut_is_answered_again_from_the_relays_memory() {
    write_across_a_cut(Trip::SwallowTheAnswer, "lost-answer").await;
}
