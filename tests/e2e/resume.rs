//! Sessions that survive: cut connections, exactly-once calls, server restarts, expiry, and the
//! relay's behaviour while the server is unreachable — with the real binaries and a loopback
//! TCP proxy the tests can break.
//!
//! "A write tool never runs twice" is observed with `test_counter`, a tool that counts its
//! executions per session and key; the server offers it only with `CODEFLOW_TEST_TOOLS=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use codeflow_e2e::channels::TEST_ENV;
use codeflow_e2e::{Relay, Server, TcpProxy, Ws, eventually, metrics, token};
use serde_json::{Value, json};

fn executions(reply: &Value) -> u64 {
    reply["result"]["structuredContent"]["executions"]
        .as_u64()
        .unwrap_or_else(|| panic!("not a test_counter answer: {reply}"))
}

async fn session_id(relay: &Relay) -> String {
    let health = relay.tool("health_check", json!({})).await;
    health["structuredContent"]["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// R2: the relay's connection is cut with 20 tool calls in flight. Some answers were already
/// delivered, some were written into a connection that swallowed them, some calls are still
/// running. Every call gets exactly one answer and none runs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_cut_with_20_calls_in_flight_each_answered_once_and_none_run_twice() {
    let server = Server::start_with(&[], TEST_ENV).await;
    let proxy = TcpProxy::start(server.port).await;
    let root = tempfile::tempdir().unwrap();
    let relay = Relay::spawn(&proxy.url(), "r2", root.path(), &[]);
    relay.initialize().await;
    let before = session_id(&relay).await;

    let started = Instant::now();
    let calls = (0..20u64).map(|i| {
        let relay = &relay;
        async move {
            let reply = relay
                .call(
                    "tools/call",
                    json!({"name": "test_counter", "arguments": {"key": format!("k{i}"), "delay_ms": 300 + 150 * i}}),
                )
                .await;
            (i, reply)
        }
    });
    let breaker = async {
        // Calls 0–3 are answered normally.
        tokio::time::sleep(Duration::from_millis(900)).await;
        // Answers of calls 4–10 go into a connection that swallows them: the server believes
        // it delivered them.
        proxy.blackhole(true);
        tokio::time::sleep(Duration::from_millis(900)).await;
        // Cut: calls 11–19 are still running on the server.
        proxy.sever();
        proxy.blackhole(false);
    };
    let (replies, ()) = tokio::join!(futures::future::join_all(calls), breaker);
    let took = started.elapsed();

    for (i, reply) in &replies {
        assert!(reply.get("error").is_none(), "call {i} failed: {reply}");
        assert_eq!(reply["result"]["isError"], false, "call {i}: {reply}");
        assert_eq!(
            reply["result"]["structuredContent"]["key"],
            format!("k{i}").as_str()
        );
        assert_eq!(executions(reply), 1, "call {i} ran once: {reply}");
    }
    // No call got a second answer, even a while later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        relay.strays.lock().unwrap().is_empty(),
        "repeated answers reached the agent: {:?}",
        relay.strays.lock().unwrap()
    );
    // Every key ran exactly once, by the server's own count.
    for i in 0..20 {
        let peek = relay
            .call(
                "tools/call",
                json!({"name": "test_counter", "arguments": {"key": format!("k{i}"), "peek": true}}),
            )
            .await;
        assert_eq!(executions(&peek), 1, "k{i}");
    }
    // The same session, resumed on a second connection.
    assert_eq!(session_id(&relay).await, before);
    assert_eq!(proxy.accepted(), 2, "one reconnect");
    let m = metrics(server.port).await;
    let resent: f64 = ["running", "answered"]
        .iter()
        .filter_map(|k| m.get(&format!("codeflow_resent_requests_total{{kind=\"{k}\"}}")))
        .sum();
    assert!(
        resent >= 7.0,
        "the swallowed answers were re-sent from memory ({resent})"
    );
    eprintln!("20 calls across the cut answered in {took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// The session layer on its own: a re-sent request is not run again, whether it is still
/// running or already answered; reusing an id on the same connection is a new request.
#[tokio::test]
async fn resent_requests_are_answered_from_memory() {
    let server = Server::start_with(&[], TEST_ENV).await;
    let mut ws = Ws::connect(&server.url()).await;
    let sid = ws.initialize("mem", "/mem").await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "test_counter", "arguments": {"key": "w", "delay_ms": 1500}}});
    ws.send_json(call.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    ws.close().await;

    // Back while it still runs: the re-send waits for the original's one answer.
    let mut ws = Ws::connect(&server.url()).await;
    let resumed = ws
        .request(json!("r"), "reconnect", json!({"sessionId": sid}))
        .await;
    assert_eq!(resumed["result"]["resumed"], true, "{resumed}");
    ws.send_json(call.clone()).await;
    let answer = ws.json().await;
    assert_eq!(answer["id"], 5);
    assert_eq!(executions(&answer), 1);
    let ping = ws.request(json!("p"), "ping", json!({})).await;
    assert_eq!(
        ping["result"],
        json!({}),
        "no second answer before the ping's"
    );
    ws.close().await;

    // Back again after it was answered: the memory answers, nothing runs.
    let mut ws = Ws::connect(&server.url()).await;
    let init = ws
        .request(
            json!(0),
            "initialize",
            json!({"project": "mem", "projectRoot": "/mem", "sessionId": sid}),
        )
        .await;
    assert_eq!(init["result"]["sessionId"], sid.as_str());
    assert_eq!(init["result"]["resumed"], true);
    ws.send_json(call.clone()).await;
    let again = ws.json().await;
    assert_eq!(again, answer, "the remembered answer, byte for byte");
    let peek = ws
        .request(
            json!(6),
            "tools/call",
            json!({"name": "test_counter", "arguments": {"key": "w", "peek": true}}),
        )
        .await;
    assert_eq!(executions(&peek), 1);

    // An id reused on the connection that already got its answer is a new request.
    let reused = ws
        .request(
            json!(6),
            "tools/call",
            json!({"name": "test_counter", "arguments": {"key": "w"}}),
        )
        .await;
    assert_eq!(executions(&reused), 2);
}

/// The server restarts while a relay runs: the relay finds its session gone, starts a fresh one
/// with the agent's cached `initialize`, and the agent's next call just works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_gives_the_relay_a_fresh_session_without_bothering_the_agent() {
    let mut first = Server::start().await;
    let proxy = TcpProxy::start(first.port).await;
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.txt"), "hello\n").unwrap();
    let mut relay = Relay::spawn(&proxy.url(), "restart", root.path(), &[]);
    relay.initialize().await;
    let tools = relay.call("tools/list", json!({})).await;
    assert!(tools["result"]["tools"].is_array());
    let old = session_id(&relay).await;

    first.child.kill().await.unwrap();
    // Edited while no server was there: the new session's manifest must carry it.
    std::fs::write(root.path().join("a.txt"), "changed while away\n").unwrap();
    std::fs::write(root.path().join("b.txt"), "new while away\n").unwrap();
    let second = Server::start().await;
    proxy.retarget(second.port);

    // The agent does nothing special: its next call is answered by the new server.
    let health = relay.tool("health_check", json!({})).await;
    assert_eq!(health["isError"], false);
    let new = health["structuredContent"]["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old, "a fresh session");
    assert_eq!(health["structuredContent"]["session"]["project"], "restart");
    assert_eq!(health["structuredContent"]["session"]["file_stream"], true);
    let again = relay.call("tools/list", json!({})).await;
    assert_eq!(again["result"], tools["result"]);
    // Nothing unasked reached the agent: no error, no second initialize answer.
    assert!(relay.strays.lock().unwrap().is_empty());
    while let Ok(n) = relay.notifications.try_recv() {
        assert!(
            n.get("id").is_none(),
            "the agent got something it did not ask for: {n}"
        );
    }
    // The fresh session was set up fully: the new server knows it, and its mirror has the
    // tree as it is now (the call above ran after the sync).
    let health = codeflow_e2e::health(second.port).await;
    assert_eq!(health["sessions"], 1);
    let mirror = second.data_dir.path().join("mirrors").join("restart");
    assert_eq!(
        std::fs::read_to_string(mirror.join("a.txt")).unwrap(),
        "changed while away\n"
    );
    assert_eq!(
        std::fs::read_to_string(mirror.join("b.txt")).unwrap(),
        "new while away\n"
    );
}

/// Expired or unknown sessions: `reconnect` gets a clear error, `initialize {sessionId}` a
/// fresh session that says why it is not the old one; resuming needs the same credentials.
#[tokio::test]
async fn expired_sessions_get_a_clear_error_and_a_fresh_one() {
    let secret = "resume-secret-at-least-32-bytes-long";
    let server = Server::start_with(
        &["--jwt-secret", secret],
        &[
            ("CODEFLOW_RESUME_GRACE_SECS", "1"),
            // Clients without a token are allowed explicitly (docs/security.md).
            ("CODEFLOW_ANONYMOUS_RIGHTS", "file:read lsp:query"),
        ],
    )
    .await;
    let mut ws = Ws::connect(&server.url()).await;
    let sid = ws.initialize("exp", "/exp").await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    ws.close().await;
    assert!(
        eventually(Duration::from_secs(6), || async {
            codeflow_e2e::health(server.port).await["sessions"] == 0
        })
        .await,
        "the session expires after the grace"
    );

    let mut ws = Ws::connect(&server.url()).await;
    let gone = ws
        .request(json!(1), "reconnect", json!({"sessionId": sid}))
        .await;
    assert_eq!(gone["error"]["code"], -32005, "{gone}");
    assert!(
        gone["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert!(
        gone["error"]["data"]["suggestion"]
            .as_str()
            .unwrap()
            .contains("initialize")
    );
    let fresh = ws
        .request(
            json!(2),
            "initialize",
            json!({"project": "exp", "projectRoot": "/exp", "sessionId": sid}),
        )
        .await;
    let result = &fresh["result"];
    assert!(result["sessionId"].is_string(), "{fresh}");
    assert_ne!(result["sessionId"], sid.as_str());
    assert_eq!(result["resumed"], false);
    assert_eq!(result["resumeError"]["code"], -32005);
    assert!(
        result["resumeError"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be resumed")
    );
    ws.close().await;

    // Other credentials cannot take over a live session.
    let owner = token(secret, json!(["cred"]), 600);
    let mut a = Ws::connect_with_token(&server.url(), Some(&owner))
        .await
        .unwrap();
    let sid = a.initialize("cred", "/cred").await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = token(secret, json!(["cred", "more"]), 600);
    let mut b = Ws::connect(&server.url()).await;
    let refused = b
        .request(
            json!(1),
            "reconnect",
            json!({"sessionId": sid, "token": other}),
        )
        .await;
    assert_eq!(refused["error"]["code"], -32001, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("same credentials")
    );
    // The owner's session was not disturbed.
    assert_eq!(
        a.request(json!(9), "ping", json!({})).await["result"],
        json!({})
    );
}

/// While the server is unreachable the relay answers `tools/list` from its cache, fails calls
/// after a bounded wait with a clear error, and resumes by itself when the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_relay_serves_tools_list_from_cache_and_fails_calls_after_a_bounded_wait() {
    let server = Server::start().await;
    let proxy = TcpProxy::start(server.port).await;
    let root = tempfile::tempdir().unwrap();
    let relay = Relay::spawn_with_env(
        &proxy.url(),
        "offline",
        root.path(),
        &[],
        &[("CODEFLOW_OFFLINE_WAIT_SECS", "2")],
    );
    relay.initialize().await;
    let tools = relay.call("tools/list", json!({})).await;
    let before = session_id(&relay).await;

    proxy.refuse(true);
    proxy.sever();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let cached = relay.call("tools/list", json!({})).await;
    assert_eq!(cached["result"], tools["result"], "from the relay's cache");

    let started = Instant::now();
    let failed = relay
        .call(
            "tools/call",
            json!({"name": "health_check", "arguments": {}}),
        )
        .await;
    let waited = started.elapsed();
    assert_eq!(failed["error"]["code"], -32007, "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("server unreachable, retrying")
    );
    assert!(failed["error"]["data"]["suggestion"].is_string());
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(5),
        "bounded wait: {waited:?}"
    );

    // The server comes back: the relay resumes the same session on its own.
    proxy.refuse(false);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = relay
            .call(
                "tools/call",
                json!({"name": "health_check", "arguments": {}}),
            )
            .await;
        if reply.get("result").is_some() {
            assert_eq!(
                reply["result"]["structuredContent"]["session"]["id"],
                before.as_str(),
                "resumed, not replaced"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never came back: {reply}");
    }
}

/// After a long outage the relay's backoff has grown (up to 20 s between attempts); a call made
/// once the server is back does not wait it out: the waiting call makes the relay try at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_after_a_long_outage_dials_at_once_instead_of_waiting_out_the_backoff() {
    let server = Server::start().await;
    let proxy = TcpProxy::start(server.port).await;
    let root = tempfile::tempdir().unwrap();
    let relay = Relay::spawn(&proxy.url(), "outage", root.path(), &[]);
    relay.initialize().await;
    let before = session_id(&relay).await;

    proxy.refuse(true);
    proxy.sever();
    // Long enough for several failed attempts: the backoff is now seconds long.
    tokio::time::sleep(Duration::from_secs(12)).await;
    proxy.refuse(false);

    let started = Instant::now();
    let reply = relay
        .call(
            "tools/call",
            json!({"name": "health_check", "arguments": {}}),
        )
        .await;
    let waited = started.elapsed();
    assert_eq!(
        reply["result"]["structuredContent"]["session"]["id"],
        before.as_str(),
        "resumed: {reply}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "the call waited {waited:?} for the relay to dial again"
    );
}

/// A file change the relay sent into a connection that swallowed it is not lost: after the
/// resume the relay sends a manifest of the tree as it is, and the server fetches what its
/// mirror lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_change_swallowed_by_a_dying_connection_reaches_the_mirror_after_resume() {
    let server = Server::start().await;
    let proxy = TcpProxy::start(server.port).await;
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.txt"), "before\n").unwrap();
    let relay = Relay::spawn(&proxy.url(), "swallow", root.path(), &[]);
    relay.initialize().await;
    let before = session_id(&relay).await;
    let mirrored = server
        .data_dir
        .path()
        .join("mirrors")
        .join("swallow")
        .join("a.txt");
    assert_eq!(std::fs::read_to_string(&mirrored).unwrap(), "before\n");

    proxy.blackhole(true);
    std::fs::write(root.path().join("a.txt"), "after\n").unwrap();
    // The watcher reports the change at once; it goes into the black hole.
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.sever();
    proxy.blackhole(false);

    let after = session_id(&relay).await;
    assert_eq!(after, before, "the same session, resumed");
    assert!(
        eventually(Duration::from_secs(5), || async {
            std::fs::read_to_string(&mirrored).unwrap() == "after\n"
        })
        .await,
        "the mirror got the swallowed change"
    );
}
