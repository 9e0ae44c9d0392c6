//! P4: fan-out of one channel event. Opens N sessions of one project straight to the server,
//! each subscribed to the project's `files` channel, then publishes single events and measures,
//! per subscriber, the time from sending the publish request to receiving the `channels/event`.
//!
//! Events are published with `channels/publish`, which the server accepts from clients only with
//! `CODEFLOW_TEST_TOOLS=true` (set for this run). Server components publish through the same
//! `Channels::publish`, so the fan-out measured is the production path.
//!
//! The subscribers' sockets are read by one thread through epoll (`p4_reader`), not by a task
//! each: the bench shares the cores with the server, and its reading must not be what is
//! measured.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::p4_reader;
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
    /// From sending the publish request to the subscriber having read the event.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// From sending the publish request to the event's last bytes entering the subscriber's
    /// socket (kernel receive timestamp): the same deliveries without the bench's own reading.
    pub in_socket_p50_ms: f64,
    pub in_socket_p99_ms: f64,
    pub in_socket_max_ms: f64,
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
/// A substring scan, not a JSON parse: the bench's own CPU shares the two cores with the
/// server, so measuring must cost as little as possible.
pub(crate) fn event_offset_bytes(text: &[u8]) -> Option<u64> {
    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }
    find(text, b"\"channels/event\"")?;
    let rest = &text[find(text, b"\"offset\":")? + 9..];
    let end = rest
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
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
    let mut sockets = Vec::with_capacity(cfg.subscribers);
    let mut opening = futures::stream::iter(0..cfg.subscribers)
        .map(|_| open(url.clone(), true))
        .buffer_unordered(cfg.concurrency.max(1));
    while let Some(outcome) = opening.next().await {
        let ws = outcome.context("opening a subscriber")?;
        sockets.push(p4_reader::into_socket(ws)?);
        server.check_alive()?;
    }
    drop(opening);
    let opened = sockets.len();
    let (reader, mut arrivals) = p4_reader::Reader::start(sockets)?;
    let setup_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "P4: {opened} subscribers in {setup_secs:.1} s; publishing {} events",
        cfg.events
    );

    let mut publisher = open(publish_url, false).await?;
    let mut latencies = Vec::with_capacity(opened * cfg.events);
    let mut in_socket = Vec::with_capacity(opened * cfg.events);
    let mut deliveries = 0usize;
    for n in 0..cfg.events {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sent_wall = p4_reader::wall_now();
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
                batch = arrivals.recv() => match batch {
                    Some(batch) => {
                        for a in batch.into_iter().filter(|a| a.offset == offset) {
                            got += 1;
                            latencies.push(nanos(a.read_at.duration_since(sent)));
                            if let Some(at) = a.in_socket {
                                in_socket.push(nanos(at.saturating_sub(sent_wall)));
                            }
                        }
                    }
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        deliveries += got;
        eprintln!("P4:   event {} delivered to {got}/{opened}", n + 1);
    }
    drop(reader);
    drop(publishing_server);
    drop(server);
    let summary = stats::Summary::of(&mut latencies);
    if in_socket.len() != latencies.len() {
        eprintln!(
            "P4: the kernel timestamped {} of {} arrivals",
            in_socket.len(),
            latencies.len()
        );
    }
    let kernel = stats::Summary::of(&mut in_socket);
    Ok(P4Result {
        subscribers_requested: cfg.subscribers,
        subscribers: opened,
        events: cfg.events,
        deliveries,
        expected_deliveries: opened * cfg.events,
        p50_ms: summary.p50_us / 1000.0,
        p99_ms: summary.p99_us / 1000.0,
        max_ms: summary.max_us / 1000.0,
        in_socket_p50_ms: kernel.p50_us / 1000.0,
        in_socket_p99_ms: kernel.p99_us / 1000.0,
        in_socket_max_ms: kernel.max_us / 1000.0,
        setup_secs,
    })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::event_offset_bytes;

    #[test]
    fn finds_the_offset_of_events_only() {
        let event = br#"{"jsonrpc":"2.0","method":"channels/event","params":{"channel":"files","epoch":"e","offset":42,"data":{}}}"#;
        assert_eq!(event_offset_bytes(event), Some(42));
        assert_eq!(
            event_offset_bytes(br#"{"id":1,"result":{"offset":3}}"#),
            None
        );
    }
}
