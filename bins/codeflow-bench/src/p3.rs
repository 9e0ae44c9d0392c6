//! P3: idle initialized sessions held by one server. Opens N WebSockets straight to the server,
//! each completing `initialize` (with `project`, spread over a few projects, and `projectRoot`),
//! keeps them all open and answering pings, and reads the server's RSS before and after.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::procs::{self, Guarded};
use crate::{Env, stats};

#[derive(Clone, Debug)]
pub struct P3Config {
    pub sessions: usize,
    pub projects: usize,
    pub concurrency: usize,
    pub settle: Duration,
}

#[derive(Debug, Serialize)]
pub struct P3Result {
    pub sessions_requested: usize,
    pub sessions_opened: usize,
    pub failures: usize,
    pub first_failure: Option<String>,
    pub projects: usize,
    pub concurrency: usize,
    pub handshake_secs: f64,
    pub handshakes_per_sec: f64,
    pub handshake_p50_ms: f64,
    pub handshake_p99_ms: f64,
    pub settle_secs: f64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub hwm_after_kib: u64,
    pub rss_per_session_kib: f64,
    /// Sessions the server's /healthz reported while all were held.
    pub server_sessions: Option<u64>,
    pub server_connections: Option<u64>,
    /// Sockets the server closed while they were being held.
    pub closed_while_held: usize,
    pub nofile_limit: u64,
    /// CPU seconds the server and the bench itself used during the handshakes.
    pub server_cpu_secs: Option<f64>,
    /// Bytes the server wrote to stderr/stdout during the run (logs); at most 1 MiB is kept in
    /// target/bench/logs.
    pub server_log_bytes: u64,
    pub bench_cpu_secs: Option<f64>,
    /// Handshakes/s over each successive slice of the sessions: shows whether a handshake
    /// costs more as the server holds more sessions.
    pub slices: Vec<Slice>,
}

#[derive(Debug, Serialize)]
pub struct Slice {
    pub sessions_from: usize,
    pub sessions_to: usize,
    pub handshakes_per_sec: f64,
}

async fn open_session(url: String, i: usize, projects: usize) -> Result<(HeldWs, Duration)> {
    let start = Instant::now();
    // Small buffers: the bench's own memory is not what is measured, but 10,000 of tungstenite's
    // default 128 KiB read buffers would be 1.3 GB on the bench side.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20);
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true)
            .await
            .context("connect")?;
    let project = i % projects;
    let request = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "codeflow-bench-p3", "version": env!("CARGO_PKG_VERSION")},
            "project": format!("bench-{project}"),
            "projectRoot": format!("/bench/project-{project}"),
        }
    });
    ws.send(Message::text(request.to_string()))
        .await
        .context("send initialize")?;
    let deadline = Duration::from_secs(30);
    loop {
        let frame = tokio::time::timeout(deadline, ws.next())
            .await
            .context("no initialize answer within 30 s")?;
        match frame {
            None => bail!("closed before the initialize answer"),
            Some(Err(e)) => return Err(e).context("reading the initialize answer"),
            Some(Ok(Message::Text(text))) => {
                let msg: Value = serde_json::from_str(text.as_str())?;
                if msg.get("method").is_some() {
                    continue; // a notification or request before the answer
                }
                if let Some(error) = msg.get("error") {
                    bail!("initialize failed: {error}");
                }
                if msg.pointer("/result/sessionId").is_none() {
                    bail!("initialize result without sessionId: {msg}");
                }
                return Ok((ws, start.elapsed()));
            }
            Some(Ok(Message::Close(frame))) => {
                bail!("closed before the initialize answer: {frame:?}")
            }
            Some(Ok(_)) => continue,
        }
    }
}

type HeldWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Keeps a session's socket open and reading (so pings are answered) until shutdown.
fn hold(mut ws: HeldWs, mut shutdown: watch::Receiver<bool>, closed: Arc<AtomicUsize>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                frame = ws.next() => match frame {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {
                        closed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Some(Ok(_)) => {}
                },
                _ = shutdown.changed() => return,
            }
        }
    });
}

pub async fn run(env: &Env, cfg: &P3Config) -> Result<P3Result> {
    let nofile = procs::ensure_nofile(u64::try_from(cfg.sessions)?.saturating_mul(2) + 1024);
    if nofile < u64::try_from(cfg.sessions)? + 256 {
        eprintln!(
            "P3: warning: the open-file limit is {nofile}, fewer than {} sessions need; raise it with `ulimit -n`",
            cfg.sessions
        );
    }
    let port = procs::free_port()?;
    let data_dir = env.scratch.join("p3-data");
    std::fs::create_dir_all(&data_dir)?;
    eprintln!("P3: starting codeflow-server (open-file limit {nofile})");
    let mut server = Guarded::spawn(
        "codeflow-server",
        &env.server_bin,
        &[
            "--port".into(),
            port.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--max-clients".into(),
            "20000".into(),
        ],
        &env.server_env,
        &env.logs.join("p3-codeflow-server.log"),
        false,
    )?;
    procs::wait_http_ok(&mut server, port, "/healthz", Duration::from_secs(20)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = procs::rss_kib(server.pid())?;

    let url = format!("ws://127.0.0.1:{port}/ws");
    let (stop, shutdown) = watch::channel(false);
    let closed = Arc::new(AtomicUsize::new(0));
    let mut latencies = Vec::with_capacity(cfg.sessions);
    let mut failures = 0usize;
    let mut first_failure = None;
    eprintln!(
        "P3: opening {} sessions over {} projects, {} handshakes in flight",
        cfg.sessions, cfg.projects, cfg.concurrency
    );
    let server_cpu_before = procs::cpu_secs(server.pid());
    let bench_cpu_before = procs::cpu_secs(std::process::id());
    let slice_len = (cfg.sessions / 5).max(1);
    let mut slices = Vec::new();
    let mut slice_start = Instant::now();
    let start = Instant::now();
    let mut handshakes = futures::stream::iter(0..cfg.sessions)
        .map(|i| open_session(url.clone(), i, cfg.projects))
        .buffer_unordered(cfg.concurrency);
    while let Some(outcome) = handshakes.next().await {
        match outcome {
            Ok((ws, latency)) => {
                latencies.push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
                hold(ws, shutdown.clone(), closed.clone());
            }
            Err(e) => {
                failures += 1;
                if first_failure.is_none() {
                    first_failure = Some(format!("{e:#}"));
                }
            }
        }
        let done = latencies.len() + failures;
        if done.is_multiple_of(slice_len) || done == cfg.sessions {
            let from = slices.last().map_or(0, |s: &Slice| s.sessions_to);
            #[allow(clippy::cast_precision_loss)]
            let rate = (done - from) as f64 / slice_start.elapsed().as_secs_f64();
            slice_start = Instant::now();
            slices.push(Slice {
                sessions_from: from,
                sessions_to: done,
                handshakes_per_sec: rate,
            });
            eprintln!("P3:   {done} handshakes done ({failures} failed), last slice {rate:.0}/s");
        }
        server.check_alive()?;
    }
    let handshake_secs = start.elapsed().as_secs_f64();
    let server_cpu_secs = procs::cpu_secs(server.pid())
        .zip(server_cpu_before)
        .map(|(a, b)| a - b);
    let bench_cpu_secs = procs::cpu_secs(std::process::id())
        .zip(bench_cpu_before)
        .map(|(a, b)| a - b);
    drop(handshakes);
    let opened = latencies.len();
    #[allow(clippy::cast_precision_loss)]
    let handshakes_per_sec = opened as f64 / handshake_secs;
    let summary = stats::Summary::of(&mut latencies);

    eprintln!(
        "P3: {opened} sessions open in {handshake_secs:.2} s; settling {:?}",
        cfg.settle
    );
    tokio::time::sleep(cfg.settle).await;
    let rss_after = procs::rss_kib(server.pid())?;
    let hwm_after = procs::hwm_kib(server.pid())?;
    let health: Option<Value> = procs::http_get(port, "/healthz")
        .await
        .ok()
        .and_then(|(_, body)| serde_json::from_str(&body).ok());
    let closed_while_held = closed.load(Ordering::Relaxed);

    let server_log_bytes = server.log_bytes();
    // Close everything the bench opened, then the server goes with its guard.
    let _ = stop.send(true);
    drop(server);

    #[allow(clippy::cast_precision_loss)]
    let per_session = if opened > 0 {
        (rss_after.saturating_sub(rss_before)) as f64 / opened as f64
    } else {
        0.0
    };
    Ok(P3Result {
        sessions_requested: cfg.sessions,
        sessions_opened: opened,
        failures,
        first_failure,
        projects: cfg.projects,
        concurrency: cfg.concurrency,
        handshake_secs,
        handshakes_per_sec,
        handshake_p50_ms: summary.p50_us / 1000.0,
        handshake_p99_ms: summary.p99_us / 1000.0,
        settle_secs: cfg.settle.as_secs_f64(),
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        hwm_after_kib: hwm_after,
        rss_per_session_kib: per_session,
        server_sessions: health.as_ref().and_then(|h| h["sessions"].as_u64()),
        server_connections: health.as_ref().and_then(|h| h["connections"].as_u64()),
        closed_while_held,
        nofile_limit: nofile,
        server_cpu_secs,
        server_log_bytes,
        bench_cpu_secs,
        slices,
    })
}
