//! P8: Claude run streaming and the message log.
//!
//! - **line → frame**: the mock `claude` (tests/mock-claude/claude, `mock:stamp`) writes each
//!   assistant line with its wall-clock time (`emitted_ns`) just before writing it; every joined
//!   subscriber measures wall-clock arrival minus that. It is the whole path: the CLI's pipe,
//!   the executor's line reader and parser, the publication on `ai-response` (and the log
//!   append queued beside it), the socket.
//! - **flood**: a run printing 50,000 lines at once, lines per second until `complete` arrives.
//! - **log appends**: `projects/post` over one WebSocket with `window` in flight (each answer only
//!   after its group commit's `fdatasync`), and the message log in process with `window`
//!   concurrent appenders (the log alone, same durability). Throughput at this durability is
//!   (appends in flight) / (one write + fdatasync), so it is set by the concurrency and the
//!   disk's sync latency, not by CPU.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::procs::{self, Guarded};
use crate::ws::{Ws, request};
use crate::{Env, stats};

#[derive(Clone, Debug)]
pub struct P8Config {
    pub subscribers: usize,
    pub lines: usize,
    pub pace_ms: u64,
    pub flood: usize,
    pub appends: usize,
    pub window: usize,
    pub mock: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct P8Result {
    pub subscribers: usize,
    pub lines: usize,
    pub pace_ms: u64,
    pub frames: usize,
    pub expected_frames: usize,
    pub line_p50_ms: f64,
    pub line_p99_ms: f64,
    pub line_max_ms: f64,
    pub flood_lines: usize,
    pub flood_lines_per_sec: f64,
    pub ws_appends: usize,
    pub ws_appends_per_sec: f64,
    pub log_appends: usize,
    pub log_appends_per_sec: f64,
    pub window: usize,
}

async fn open(url: &str) -> Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    request(
        &mut ws,
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "codeflow-bench-p8", "version": "1"},
            "project": "bench-p8", "projectRoot": "/bench/p8"}),
    )
    .await?;
    Ok(ws)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Reads a subscriber's frames until the `complete` of `run`; returns the latencies (ns) of the
/// stamped lines and the arrival of the `complete`.
async fn collect(
    mut ws: Ws,
    run: Arc<tokio::sync::OnceCell<String>>,
) -> Result<(Vec<u64>, Instant)> {
    let mut latencies = Vec::new();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(120), ws.next())
            .await
            .context("subscriber got nothing for 120 s")?;
        let text = match frame {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
            other => bail!("subscriber socket ended: {other:?}"),
        };
        let at = now_ns();
        if !text.as_str().contains("\"channels/event\"") {
            continue;
        }
        let v: Value = serde_json::from_str(text.as_str())?;
        let data = &v["params"]["data"];
        if let Some(emitted) = data["message"]["emitted_ns"].as_u64() {
            latencies.push(at.saturating_sub(emitted));
        }
        if data["type"] == "complete" && run.get().is_some_and(|r| data["runId"] == r.as_str()) {
            return Ok((latencies, Instant::now()));
        }
    }
}

async fn joined(url: &str, n: usize) -> Result<Vec<Ws>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let mut ws = open(url).await?;
        request(&mut ws, 2, "projects/join", json!({})).await?;
        out.push(ws);
    }
    Ok(out)
}

async fn execute(ws: &mut Ws, id: u64, prompt: &str) -> Result<String> {
    let r = request(
        ws,
        id,
        "claude/execute",
        json!({"project": "bench-p8", "prompt": prompt, "timeoutSecs": 600}),
    )
    .await?;
    r["runId"]
        .as_str()
        .map(str::to_owned)
        .context("execute without runId")
}

pub async fn run(env: &Env, cfg: &P8Config) -> Result<P8Result> {
    if !cfg.mock.is_file() {
        bail!("the mock claude {} is missing", cfg.mock.display());
    }
    let port = procs::free_port()?;
    let data_dir = env.scratch.join("p8-data");
    std::fs::create_dir_all(&data_dir)?;
    let mut server_env = env.server_env.clone();
    server_env.push(("CODEFLOW_CLAUDE_CMD".into(), cfg.mock.display().to_string()));
    let mut server = Guarded::spawn(
        "codeflow-server",
        &env.server_bin,
        &[
            "--port".into(),
            port.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ],
        &server_env,
        &env.logs.join("p8-codeflow-server.log"),
        false,
    )?;
    procs::wait_http_ok(&mut server, port, "/healthz", Duration::from_secs(20)).await?;
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut control = open(&url).await?;
    request(
        &mut control,
        2,
        "projects/create",
        json!({"id": "bench-p8"}),
    )
    .await?;

    // 1. Paced stamped lines: latency per line per subscriber.
    eprintln!(
        "P8: {} subscribers, {} lines every {} ms",
        cfg.subscribers, cfg.lines, cfg.pace_ms
    );
    let subs = joined(&url, cfg.subscribers).await?;
    let run_id = Arc::new(tokio::sync::OnceCell::new());
    let readers: Vec<_> = subs
        .into_iter()
        .map(|ws| tokio::spawn(collect(ws, run_id.clone())))
        .collect();
    let prompt = format!(
        "mock:stamp mock:lines={} mock:slow={}",
        cfg.lines, cfg.pace_ms
    );
    let id = execute(&mut control, 3, &prompt).await?;
    let _ = run_id.set(id);
    let mut latencies = Vec::new();
    for r in readers {
        let (l, _) = r.await??;
        latencies.extend(l);
    }
    let frames = latencies.len();
    let summary = stats::Summary::of(&mut latencies);
    server.check_alive()?;

    // 2. Flood.
    eprintln!("P8: flood of {} lines", cfg.flood);
    let subs = joined(&url, 1).await?;
    let run_id = Arc::new(tokio::sync::OnceCell::new());
    let reader = subs
        .into_iter()
        .map(|ws| tokio::spawn(collect(ws, run_id.clone())))
        .next()
        .context("no subscriber")?;
    let started = Instant::now();
    let id = execute(
        &mut control,
        4,
        &format!("mock:flood={} mock:lines=0", cfg.flood),
    )
    .await?;
    let _ = run_id.set(id);
    let (_, done) = reader.await??;
    let flood_secs = done.duration_since(started).as_secs_f64();
    server.check_alive()?;

    // 3. Appends over the socket, `window` in flight.
    eprintln!(
        "P8: {} projects/post, {} in flight",
        cfg.appends, cfg.window
    );
    let mut poster = open(&url).await?;
    let started = Instant::now();
    let mut sent = 0usize;
    let mut acked = 0usize;
    while acked < cfg.appends {
        while sent < cfg.appends && sent - acked < cfg.window {
            let msg = json!({"jsonrpc": "2.0", "id": 1000 + sent, "method": "projects/post",
                "params": {"project": "bench-p8", "payload": {"n": sent, "text": "a chat message of ordinary length, about eighty bytes long"}}});
            poster.send(Message::text(msg.to_string())).await?;
            sent += 1;
        }
        let frame = tokio::time::timeout(Duration::from_secs(60), poster.next())
            .await
            .context("no post answer within 60 s")?;
        if let Some(Ok(Message::Text(t))) = frame {
            let v: Value = serde_json::from_str(t.as_str())?;
            if v.get("error").is_some() {
                bail!("post failed: {v}");
            }
            if v.get("result").is_some() {
                acked += 1;
            }
        }
    }
    let ws_secs = started.elapsed().as_secs_f64();
    drop(server);

    // 4. The log alone, in process, same durability.
    let log_appends = cfg.appends * 5;
    let appenders = cfg.window.max(1);
    eprintln!("P8: {log_appends} in-process appends, {appenders} appenders");
    let dir = env.scratch.join("p8-log");
    let log = codeflow_claude_executor::MessageLog::open(dir, Default::default())?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..appenders {
        let log = log.clone();
        let each = log_appends / appenders;
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                log.append(codeflow_claude_executor::NewEntry {
                    session: "bench".into(),
                    kind: "message".into(),
                    payload: json!({"t": t, "i": i, "text": "a chat message of ordinary length, about eighty bytes long"}),
                })
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let log_secs = started.elapsed().as_secs_f64();
    let log_done = (log_appends / appenders) * appenders;

    Ok(P8Result {
        subscribers: cfg.subscribers,
        lines: cfg.lines,
        pace_ms: cfg.pace_ms,
        frames,
        expected_frames: cfg.lines * cfg.subscribers,
        line_p50_ms: summary.p50_us / 1000.0,
        line_p99_ms: summary.p99_us / 1000.0,
        line_max_ms: summary.max_us / 1000.0,
        flood_lines: cfg.flood,
        flood_lines_per_sec: cfg.flood as f64 / flood_secs,
        ws_appends: cfg.appends,
        ws_appends_per_sec: cfg.appends as f64 / ws_secs,
        log_appends: log_done,
        log_appends_per_sec: log_done as f64 / log_secs,
        window: cfg.window,
    })
}

/// Prints the P8 table.
pub fn print(r: &P8Result) {
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    println!("| id | metric | CodeFlow | target | verdict |");
    println!("|---|---|---|---|---|");
    println!(
        "| P8 | stream-json line → subscriber frame, {} subscribers, {} lines every {} ms ({} / {} frames) | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms | p99 ≤ 5 ms | {} |",
        r.subscribers,
        r.lines,
        r.pace_ms,
        r.frames,
        r.expected_frames,
        r.line_p50_ms,
        r.line_p99_ms,
        r.line_max_ms,
        verdict(r.line_p99_ms <= 5.0 && r.frames == r.expected_frames)
    );
    println!(
        "| P8 | flood: {} lines printed at once → all delivered | {:.0} lines/s | — | — |",
        r.flood_lines, r.flood_lines_per_sec
    );
    println!(
        "| P8 | `projects/post` over one socket, {} in flight, acknowledged after fdatasync | {:.0} appends/s | ≥ 50k/s | {} |",
        r.window,
        r.ws_appends_per_sec,
        verdict(r.ws_appends_per_sec >= 50_000.0)
    );
    println!(
        "| P8 | message log in process, {} appenders, acknowledged after fdatasync (group commit) | {:.0} appends/s | ≥ 50k/s | {} |",
        r.window,
        r.log_appends_per_sec,
        verdict(r.log_appends_per_sec >= 50_000.0)
    );
}
