//! P4: fan-out of one channel event. Opens N sessions of one project straight to the server,
//! each subscribed to the project's `files` channel, then publishes single events and measures,
//! per subscriber, the time from sending the publish request to receiving the `channels/event`.
//!
//! Events are published with `channels/publish`, which the server accepts from clients only with
//! `CODEFLOW_TEST_TOOLS=true` (set for this run). Server components publish through the same
//! `Channels::publish`, so the fan-out measured is the production path.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::procs::{self, Guarded};
use crate::ws::{Ws, request};
use crate::{Env, stats};

#[derive(Clone, Debug)]
pub struct P4Config {
    pub subscribers: usize,
    pub events: usize,
    pub concurrency: usize,
    /// Through a broker: a second server on the same `cluster_url` publishes.
    pub cluster_url: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct P4Result {
    pub subscribers_requested: usize,
    pub subscribers: usize,
    pub events: usize,
    /// Deliveries seen over all events (subscribers × events when nothing is lost).
    pub deliveries: usize,
    pub expected_deliveries: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub setup_secs: f64,
}

async fn open(url: String, subscribe: bool) -> Result<Ws> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20);
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true).await?;
    request(
        &mut ws,
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "codeflow-bench-p4", "version": "1"},
            "project": "bench-p4", "projectRoot": "/bench/p4"}),
    )
    .await?;
    if subscribe {
        request(
            &mut ws,
            2,
            "channels/subscribe",
            json!({"channel": "files"}),
        )
        .await?;
    }
    Ok(ws)
}

/// The offset of a `channels/event` notification (the server writes `"offset":N` unspaced).
fn event_offset(text: &str) -> Option<u64> {
    if !text.contains("\"channels/event\"") {
        return None;
    }
    let rest = &text[text.find("\"offset\":")? + 9..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Reports (offset, arrival) of every event until shutdown.
fn listen(mut ws: Ws, arrivals: mpsc::Sender<(u64, Instant)>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(t))) => {
                        let at = Instant::now();
                        // A substring scan, not a JSON parse: the bench's own CPU shares the two
                        // cores with the server, so measuring must cost as little as possible.
                        if let Some(offset) = event_offset(t.as_str())
                            && arrivals.send((offset, at)).await.is_err()
                        {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                },
                _ = stop.changed() => return,
            }
        }
    });
}

pub async fn run(env: &Env, cfg: &P4Config) -> Result<P4Result> {
    procs::ensure_nofile(u64::try_from(cfg.subscribers)?.saturating_mul(2) + 1024);
    let port = procs::free_port()?;
    let data_dir = env.scratch.join("p4-data");
    std::fs::create_dir_all(&data_dir)?;
    let mut server_env = env.server_env.clone();
    server_env.push(("CODEFLOW_TEST_TOOLS".into(), "true".into()));
    let mut args = vec![
        "--port".into(),
        port.to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--max-clients".into(),
        (cfg.subscribers + 100).to_string(),
    ];
    if let Some(url) = &cfg.cluster_url {
        args.extend(["--cluster-url".into(), url.clone()]);
    }
    let mut server = Guarded::spawn(
        "codeflow-server",
        &env.server_bin,
        &args,
        &server_env,
        &env.logs.join("p4-codeflow-server.log"),
        false,
    )?;
    procs::wait_http_ok(&mut server, port, "/healthz", Duration::from_secs(20)).await?;
    let url = format!("ws://127.0.0.1:{port}/ws");
    // Across instances: the publisher's server is another one on the same broker.
    let mut publishing_server = None;
    let mut publish_url = url.clone();
    if let Some(cluster) = &cfg.cluster_url {
        let port = procs::free_port()?;
        let data_dir = env.scratch.join("p4-data-2");
        std::fs::create_dir_all(&data_dir)?;
        let mut second = Guarded::spawn(
            "codeflow-server",
            &env.server_bin,
            &[
                "--port".into(),
                port.to_string(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--cluster-url".into(),
                cluster.clone(),
            ],
            &server_env,
            &env.logs.join("p4-codeflow-server-2.log"),
            false,
        )?;
        procs::wait_http_ok(&mut second, port, "/healthz", Duration::from_secs(20)).await?;
        publish_url = format!("ws://127.0.0.1:{port}/ws");
        publishing_server = Some(second);
    }

    eprintln!("P4: opening {} subscribers", cfg.subscribers);
    let started = Instant::now();
    // Bounded: each subscriber reports at most one arrival per event; the collector drains it.
    let (arrivals_tx, mut arrivals) = mpsc::channel(cfg.subscribers.max(1));
    let (stop, stopped) = watch::channel(false);
    let mut opened = 0usize;
    let mut opening = futures::stream::iter(0..cfg.subscribers)
        .map(|_| open(url.clone(), true))
        .buffer_unordered(cfg.concurrency.max(1));
    while let Some(outcome) = opening.next().await {
        let ws = outcome.context("opening a subscriber")?;
        listen(ws, arrivals_tx.clone(), stopped.clone());
        opened += 1;
        server.check_alive()?;
    }
    drop(opening);
    drop(arrivals_tx);
    let setup_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "P4: {opened} subscribers in {setup_secs:.1} s; publishing {} events",
        cfg.events
    );

    let mut publisher = open(publish_url, false).await?;
    let mut latencies = Vec::with_capacity(opened * cfg.events);
    let mut deliveries = 0usize;
    for n in 0..cfg.events {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sent = Instant::now();
        let result = request(
            &mut publisher,
            100 + n as u64,
            "channels/publish",
            json!({"channel": "files", "data": {"path": "/bench/p4/a.py", "changeType": "changed"}}),
        )
        .await?;
        let offset = result["last"]
            .as_u64()
            .context("publish result without offset")?;
        let mut got = 0usize;
        let deadline = tokio::time::sleep(Duration::from_secs(30));
        tokio::pin!(deadline);
        while got < opened {
            tokio::select! {
                a = arrivals.recv() => match a {
                    Some((o, at)) if o == offset => {
                        got += 1;
                        latencies.push(u64::try_from(at.duration_since(sent).as_nanos()).unwrap_or(u64::MAX));
                    }
                    Some(_) => {}
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        deliveries += got;
        eprintln!("P4:   event {} delivered to {got}/{opened}", n + 1);
    }
    let _ = stop.send(true);
    drop(publishing_server);
    drop(server);
    let summary = stats::Summary::of(&mut latencies);
    Ok(P4Result {
        subscribers_requested: cfg.subscribers,
        subscribers: opened,
        events: cfg.events,
        deliveries,
        expected_deliveries: opened * cfg.events,
        p50_ms: summary.p50_us / 1000.0,
        p99_ms: summary.p99_us / 1000.0,
        max_ms: summary.max_us / 1000.0,
        setup_secs,
    })
}
