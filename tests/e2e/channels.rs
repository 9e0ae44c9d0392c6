//! Channels end to end: subscribe, recovery with `since`, per-project isolation, events missed
//! while detached delivered on resume, slow readers cut off without slowing others, heartbeats.
//!
//! Events are published with `channels/publish`, which the server accepts from clients only
//! when it runs with `CODEFLOW_TEST_TOOLS=true` (tests and benchmarks; never in production).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use codeflow_e2e::channels::{TEST_ENV, events, publish, subscribe};
use codeflow_e2e::{Server, Ws, eventually, health};
use serde_json::json;

#[tokio::test]
async fn resubscribe_since_recovers_100_missed_events_in_order_or_says_not_recovered() {
    let server = Server::start_with(&[], TEST_ENV).await;
    let mut publisher = Ws::connect(&server.url()).await;
    publisher.initialize("alpha", "/alpha").await;
    publish(&mut publisher, 1, "files", 5, 0).await;

    // A subscriber notes its position, then goes away.
    let mut sub = Ws::connect(&server.url()).await;
    sub.initialize("alpha", "/alpha-2").await;
    let first = subscribe(&mut sub, 1, json!({"channel": "files"})).await;
    assert_eq!(first["offset"], 5);
    assert_eq!(first["recovered"], false);
    assert_eq!(first["publications"], json!([]));
    let epoch = first["epoch"].as_str().unwrap().to_owned();
    sub.close().await;

    // 100 events while it is away.
    let published = publish(&mut publisher, 2, "files", 100, 0).await;
    assert_eq!(published["first"], 6);
    assert_eq!(published["last"], 105);

    // A new session of the same project asks for what it missed: all 100, in order.
    let mut back = Ws::connect(&server.url()).await;
    back.initialize("alpha", "/alpha-2").await;
    let recovered = subscribe(
        &mut back,
        1,
        json!({"channel": "files", "since": {"epoch": epoch, "offset": 5}}),
    )
    .await;
    assert_eq!(recovered["recovered"], true, "{recovered}");
    assert_eq!(recovered["offset"], 105);
    assert_eq!(recovered["epoch"], epoch.as_str());
    let pubs = recovered["publications"].as_array().unwrap();
    assert_eq!(pubs.len(), 100);
    for (i, p) in pubs.iter().enumerate() {
        assert_eq!(p["offset"], 6 + i as u64);
        assert_eq!(p["data"]["seq"], i as u64, "in publication order");
        assert!(p["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    }
    // Live events follow the recovered ones without a gap.
    publish(&mut publisher, 3, "files", 1, 0).await;
    let live = events(&mut back, 1).await;
    assert_eq!(live[0]["offset"], 106);
    assert_eq!(live[0]["channel"], "files");
    assert_eq!(live[0]["epoch"], epoch.as_str());

    // A gap longer than the history (1024 by default): not recovered, and told where to resume.
    publish(&mut publisher, 4, "files", 2000, 0).await;
    let mut late = Ws::connect(&server.url()).await;
    late.initialize("alpha", "/alpha-3").await;
    let gap = subscribe(
        &mut late,
        1,
        json!({"channel": "files", "since": {"epoch": epoch, "offset": 106}}),
    )
    .await;
    assert_eq!(gap["recovered"], false, "{gap}");
    assert_eq!(gap["publications"], json!([]));
    assert_eq!(gap["offset"], 2106);
    // Another epoch (a restarted server) cannot be recovered either.
    let other = subscribe(
        &mut late,
        2,
        json!({"channel": "files", "since": {"epoch": "not-this-server", "offset": 2100}}),
    )
    .await;
    assert_eq!(other["recovered"], false);
    // Up to date is "recovered" with nothing missing.
    let current = subscribe(
        &mut late,
        3,
        json!({"channel": "files", "since": {"epoch": epoch, "offset": 2106}}),
    )
    .await;
    assert_eq!(current["recovered"], true);
    assert_eq!(current["publications"], json!([]));
}

#[tokio::test]
async fn a_session_sees_only_its_own_projects_channels() {
    let server = Server::start_with(&[], TEST_ENV).await;
    let mut a = Ws::connect(&server.url()).await;
    a.initialize("proj-a", "/a").await;
    let mut b = Ws::connect(&server.url()).await;
    b.initialize("proj-b", "/b").await;
    let sub_b = subscribe(&mut b, 1, json!({"channel": "diagnostics"})).await;
    assert_eq!(sub_b["offset"], 0);

    // B cannot name A's project.
    let refused = b
        .request(
            json!(2),
            "channels/subscribe",
            json!({"channel": "diagnostics", "project": "proj-a"}),
        )
        .await;
    assert_eq!(refused["error"]["code"], -32003, "{refused}");

    // A publishes; B's channel of the same name does not move and B gets nothing.
    publish(&mut a, 1, "diagnostics", 3, 0).await;
    let again = subscribe(&mut b, 3, json!({"channel": "diagnostics"})).await;
    assert_eq!(again["offset"], 0, "B's diagnostics channel is its own");
    let ping = b.request(json!(4), "ping", json!({})).await;
    assert_eq!(
        ping["result"],
        json!({}),
        "no event arrived before the ping answer"
    );

    // Bad input gets clear errors.
    let unknown = b
        .request(
            json!(5),
            "channels/subscribe",
            json!({"channel": "secrets"}),
        )
        .await;
    assert_eq!(unknown["error"]["code"], -32602);
    assert!(
        unknown["error"]["data"]["suggestion"]
            .as_str()
            .unwrap()
            .contains("diagnostics")
    );
    let bad_since = b
        .request(
            json!(6),
            "channels/subscribe",
            json!({"channel": "git", "since": {"offset": "x"}}),
        )
        .await;
    assert_eq!(bad_since["error"]["code"], -32602);
    let un = b
        .request(
            json!(7),
            "channels/unsubscribe",
            json!({"channel": "diagnostics"}),
        )
        .await;
    assert_eq!(un["result"]["unsubscribed"], true);
}

#[tokio::test]
async fn publishing_is_refused_without_the_test_switch() {
    let server = Server::start().await;
    let mut ws = Ws::connect(&server.url()).await;
    ws.initialize("p", "/p").await;
    let refused = ws
        .request(json!(1), "channels/publish", json!({"channel": "files"}))
        .await;
    assert_eq!(refused["error"]["code"], -32601, "{refused}");
}

#[tokio::test]
async fn events_missed_while_detached_arrive_on_resume_then_the_answer() {
    let server = Server::start_with(&[], TEST_ENV).await;
    let mut publisher = Ws::connect(&server.url()).await;
    publisher.initialize("beta", "/beta").await;

    let mut sub = Ws::connect(&server.url()).await;
    let init = sub.initialize("beta", "/beta-sub").await;
    let sid = init["sessionId"].as_str().unwrap().to_owned();
    subscribe(&mut sub, 1, json!({"channel": "git"})).await;
    publish(&mut publisher, 1, "git", 2, 0).await;
    let live = events(&mut sub, 2).await;
    assert_eq!(live[1]["offset"], 2);
    sub.close().await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            health(server.port).await["connections"] == 1
        })
        .await
    );

    publish(&mut publisher, 2, "git", 10, 0).await;

    // Resume with the ancestor's `reconnect`: the 10 missed events, in order, then the answer.
    let mut back = Ws::connect(&server.url()).await;
    back.send_json(
        json!({"jsonrpc": "2.0", "id": 9, "method": "reconnect", "params": {"sessionId": sid}}),
    )
    .await;
    let mut offsets = Vec::new();
    loop {
        let m = back.json().await;
        if m["method"] == "channels/event" {
            offsets.push(m["params"]["offset"].as_u64().unwrap());
            continue;
        }
        assert_eq!(m["id"], 9);
        assert_eq!(m["result"]["resumed"], true);
        assert_eq!(m["result"]["sessionId"], sid.as_str());
        break;
    }
    assert_eq!(offsets, (3..=12).collect::<Vec<u64>>());
    // The subscription survived the resume: live events keep coming.
    publish(&mut publisher, 3, "git", 1, 0).await;
    assert_eq!(events(&mut back, 1).await[0]["offset"], 13);
}

#[tokio::test]
async fn a_silent_peer_is_dropped_by_the_heartbeat() {
    let server = Server::start_with(
        &[],
        &[
            ("CODEFLOW_PING_INTERVAL_SECS", "1"),
            ("CODEFLOW_PONG_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    let mut silent = Ws::connect(&server.url()).await;
    silent.initialize("hb", "/hb").await;
    let mut alive = Ws::connect(&server.url()).await;
    alive.initialize("hb", "/hb2").await;
    // `alive` keeps reading (its library answers pings); `silent` reads nothing.
    let reader = tokio::spawn(async move {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            let reply = alive.request(json!(1), "ping", json!({})).await;
            assert_eq!(reply["result"], json!({}));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        alive
    });
    let started = Instant::now();
    assert!(
        eventually(Duration::from_secs(8), || async {
            health(server.port).await["connections"] == 1
        })
        .await,
        "the silent peer is dropped"
    );
    let dropped_after = started.elapsed();
    assert!(
        dropped_after >= Duration::from_millis(1500),
        "{dropped_after:?}"
    );
    // (Read raw: a WebSocket library would answer the queued pings and get reset.)
    assert_eq!(silent.raw_close_code().await, Some(4001));
    let mut alive = reader.await.unwrap();
    assert_eq!(
        alive.request(json!(2), "ping", json!({})).await["result"],
        json!({})
    );
}
