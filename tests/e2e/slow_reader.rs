//! A slow reader is cut off without slowing anyone else. In a test binary of its own so that
//! the latency it measures is not disturbed by other tests running in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use codeflow_e2e::channels::{TEST_ENV, publish, subscribe};
use codeflow_e2e::{Next, Server, Ws, eventually, health, metrics, percentile_ms};
use serde_json::json;

/// A client that stops reading is disconnected when its queue fills; 50 clients of another
/// project keep answering at their usual speed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_cut_off_while_50_others_keep_their_latency() {
    let server = Server::start_with(&[], TEST_ENV).await;
    let url = server.url();

    let mut slow = Ws::connect(&url).await;
    slow.initialize("flood", "/flood").await;
    subscribe(&mut slow, 1, json!({"channel": "search"})).await;
    // From here on `slow` reads nothing.

    let mut others = Vec::new();
    for i in 0..50 {
        let mut ws = Ws::connect(&url).await;
        ws.initialize("calm", &format!("/calm/{i}")).await;
        others.push(ws);
    }
    let mut publisher = Ws::connect(&url).await;
    publisher.initialize("flood", "/flood-pub").await;
    assert_eq!(health(server.port).await["connections"], 52);

    // Baseline: each of the 50 pings 10 times.
    let ping_round = |mut ws: Ws, rounds: usize| async move {
        let mut samples = Vec::new();
        for n in 0..rounds {
            let started = Instant::now();
            let reply = ws.request(json!(1000 + n), "ping", json!({})).await;
            assert_eq!(reply["result"], json!({}));
            samples.push(started.elapsed());
        }
        (ws, samples)
    };
    let mut baseline = Vec::new();
    let mut tasks = Vec::new();
    for ws in others.drain(..) {
        tasks.push(tokio::spawn(ping_round(ws, 10)));
    }
    for t in tasks {
        let (ws, s) = t.await.unwrap();
        baseline.extend(s);
        others.push(ws);
    }

    // Flood the slow reader's channel (3000 × 16 KiB) while the 50 keep pinging.
    let flood = tokio::spawn(async move {
        let r = publish(&mut publisher, 1, "search", 3000, 16 * 1024).await;
        (publisher, r)
    });
    let mut during = Vec::new();
    let mut tasks = Vec::new();
    for ws in others.drain(..) {
        tasks.push(tokio::spawn(ping_round(ws, 40)));
    }
    for t in tasks {
        let (ws, s) = t.await.unwrap();
        during.extend(s);
        others.push(ws);
    }
    let (_publisher, published) = flood.await.unwrap();
    assert_eq!(published["last"], 3000);

    // The slow reader was disconnected with a reason, and only it.
    assert!(
        eventually(Duration::from_secs(15), || async {
            health(server.port).await["connections"] == 51
        })
        .await,
        "the slow reader's connection is gone: {}",
        health(server.port).await
    );
    let m = metrics(server.port).await;
    assert!(
        m.get("codeflow_errors_total{kind=\"slow_reader\"}")
            .is_some_and(|v| *v >= 1.0),
        "slow reader counted"
    );
    // Its socket ends (the close frame may be lost behind the unread data).
    let mut got_events = 0;
    loop {
        match slow.next().await {
            Next::Json(_) => got_events += 1,
            Next::Closed(code) => {
                assert!(matches!(code, None | Some(4002)), "{code:?}");
                break;
            }
        }
    }
    assert!(
        got_events < 3000,
        "it was cut off before the end of the flood"
    );

    let (b50, b99) = (
        percentile_ms(&mut baseline, 50.0),
        percentile_ms(&mut baseline, 99.0),
    );
    let (d50, d99) = (
        percentile_ms(&mut during, 50.0),
        percentile_ms(&mut during, 99.0),
    );
    eprintln!(
        "ping latency of 50 clients: baseline p50 {b50:.2} ms p99 {b99:.2} ms; during the flood p50 {d50:.2} ms p99 {d99:.2} ms ({} samples)",
        during.len()
    );
    assert_eq!(during.len(), 50 * 40, "every ping answered");
    // Loose bound: the flood's serialisation shares the two cores with everyone; what must
    // not happen is the 50 waiting behind the slow reader (seconds, or never).
    assert!(d99 < 250.0, "p99 during the flood {d99:.1} ms");
    for mut ws in others {
        assert_eq!(
            ws.request(json!(1), "ping", json!({})).await["result"],
            json!({})
        );
    }
}
