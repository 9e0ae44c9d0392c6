//! A terminal does not share `/ws`'s path: while other clients flood `/ws` with requests,
//! keystrokes still echo promptly. A flood of `tools/list` in a debug build holds both of the
//! main runtime's workers for a second or more at a time; the terminal's PTY and its socket
//! run on the terminals' own runtime, so they are not queued behind it. (Bounds allow for a
//! shared 2-core machine; the figures are printed.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use codeflow_e2e::Server;
use codeflow_e2e::terminal::{self, create, quantile};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// A client that keeps 256 `tools/list` requests in flight on `/ws` until `stop`. A
/// connection the server ends (a flood client starved of CPU on a loaded machine can fall behind
/// its answers) is counted in `ended` and made again, so the flood never stops silently.
async fn flood(
    url: String,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    ended: Arc<AtomicU64>,
) {
    while !stop.load(Ordering::Relaxed) {
        flood_once(&url, &stop, &answered).await;
        if !stop.load(Ordering::Relaxed) {
            ended.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One connection of [`flood`]: returns when `stop` is set or the connection ends.
async fn flood_once(url: &str, stop: &AtomicBool, answered: &AtomicU64) {
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url).await else {
        tokio::time::sleep(Duration::from_millis(50)).await;
        return;
    };
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "flood", "version": "1"}, "project": "flood", "projectRoot": "/flood"}});
    if socket
        .send(Message::Text(init.to_string().into()))
        .await
        .is_err()
        || !matches!(socket.next().await, Some(Ok(_)))
    {
        return;
    }
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    if socket
        .send(Message::Text(initialized.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut id = 1u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..256 {
            id += 1;
            let m = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
            if socket
                .feed(Message::Text(m.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
        if socket.flush().await.is_err() {
            return;
        }
        let mut got = 0;
        while got < 256 {
            match socket.next().await {
                Some(Ok(Message::Text(_))) => {
                    got += 1;
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    }
    let _ = socket.close(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystrokes_echo_while_ws_is_flooded() {
    let server = Server::start_with(&[], &[("CODEFLOW_TERMINAL__SHELL", "/bin/bash")]).await;
    let mut ws = terminal::project_session(&server, "iso").await;
    let made = create(
        &mut ws,
        1,
        json!({"project": "iso", "cols": 200, "rows": 50}),
    )
    .await;
    let url = terminal::address(&server, made["url"].as_str().unwrap());
    let mut term = terminal::open(&url, None).await.unwrap();
    term.run("echo rea\"\"dy", "ready").await;

    let mut quiet = term.echo_latencies(100, Duration::ZERO).await;
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let ended = Arc::new(AtomicU64::new(0));
    // The flooders run on a thread and runtime of their own, so that the measuring side is
    // never queued behind them in this process.
    let flooders = {
        let (url, stop, answered, ended) =
            (server.url(), stop.clone(), answered.clone(), ended.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let a = flood(url.clone(), stop.clone(), answered.clone(), ended.clone());
                let b = flood(url, stop, answered, ended);
                futures::join!(a, b);
            });
        })
    };
    // The flood is on before measuring.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while answered.load(Ordering::Relaxed) < 500 {
        assert!(
            std::time::Instant::now() < deadline,
            "the flood did not start: {} answers",
            answered.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = answered.load(Ordering::Relaxed);
    let mut busy = term.echo_latencies(100, Duration::from_secs(4)).await;
    let during = answered.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || flooders.join())
        .await
        .unwrap()
        .unwrap();
    let (q50, q99) = (quantile(&mut quiet, 0.5), quantile(&mut quiet, 0.99));
    let (b50, b99) = (quantile(&mut busy, 0.5), quantile(&mut busy, 0.99));
    let ended = ended.load(Ordering::Relaxed);
    eprintln!(
        "echo quiet p50 {q50:?} p99 {q99:?}; /ws flooded ({during} answers meanwhile, {ended} flood connections ended and made again) p50 {b50:?} p99 {b99:?}"
    );
    assert!(
        during > 200,
        "the flood ran while the terminal was measured ({ended} flood connections ended)"
    );
    assert!(
        b50 < Duration::from_millis(250),
        "echo p50 under flood: {b50:?}"
    );
    assert!(
        b99 < Duration::from_secs(10),
        "echo p99 under flood: {b99:?}"
    );
    // And the terminal still works normally after.
    term.run("echo af\"\"ter", "after").await;
}
