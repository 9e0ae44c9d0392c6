//! P9: terminal keystroke echo latency. A server-side project, one terminal (bash on a PTY of
//! the server), its socket `/ws/terminal/{id}`: type one key at a time at the shell's prompt
//! and time each until its echo arrives. Measured quiet, then while another client floods
//! `/ws` with pipelined `tools/list` requests (the terminal must not queue behind `/ws`).
//! Target: p99 ≤ 10 ms on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::procs::{self, Guarded};
use crate::ws::{Ws, request};
use crate::{Env, stats};

#[derive(Clone, Debug)]
pub struct P9Config {
    /// Keystrokes measured per phase.
    pub keys: usize,
}

#[derive(Debug, Serialize)]
pub struct P9Phase {
    pub keys: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// `/ws` answers the flooding client received during the phase (0 when quiet).
    pub ws_answers: u64,
}

#[derive(Debug, Serialize)]
pub struct P9Result {
    pub quiet: P9Phase,
    pub flooded: P9Phase,
}

async fn open_ws(url: &str, project: &str) -> Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    request(
        &mut ws,
        1,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "codeflow-bench-p9", "version": "1"},
            "project": project, "projectRoot": format!("/bench/{project}")}),
    )
    .await?;
    ws.send(Message::text(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
    ))
    .await?;
    Ok(ws)
}

/// Reads the terminal until its output since the last call contains `needle`.
async fn until(term: &mut Ws, seen: &mut Vec<u8>, needle: &[u8]) -> Result<()> {
    loop {
        if seen.windows(needle.len()).any(|w| w == needle) {
            seen.clear();
            return Ok(());
        }
        let frame = tokio::time::timeout(Duration::from_secs(20), term.next())
            .await
            .context("the terminal went silent")?;
        match frame {
            Some(Ok(Message::Binary(b))) => seen.extend_from_slice(&b),
            Some(Ok(Message::Close(f))) => bail!("terminal closed: {f:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("terminal closed"),
        }
    }
}

/// Types at least `keys` keystrokes, for at least `min`, one after the echo of the other.
async fn echo_phase(term: &mut Ws, keys: usize, min: Duration) -> Result<Vec<u64>> {
    let mut seen = Vec::new();
    let mut samples = Vec::with_capacity(keys);
    let begun = Instant::now();
    for i in 0.. {
        if i >= keys && begun.elapsed() >= min {
            break;
        }
        let key = b'a' + u8::try_from(i % 26).unwrap_or(0);
        let started = Instant::now();
        term.send(Message::binary(vec![key])).await?;
        until(term, &mut seen, &[key]).await?;
        samples.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        if i >= keys {
            tokio::time::sleep(Duration::from_millis(5)).await; // typing on, at a typist's pace
        }
        if i % 50 == 49 {
            term.send(Message::binary(vec![0x15])).await?; // ^U clears the line
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    term.send(Message::binary(vec![0x15])).await?;
    Ok(samples)
}

/// Keeps 256 `tools/list` in flight on `/ws` until `stop`.
async fn flood(url: String, stop: Arc<AtomicBool>, answered: Arc<AtomicU64>) -> Result<()> {
    let mut ws = open_ws(&url, "bench-p9-flood").await?;
    let mut id = 10u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..256 {
            id += 1;
            let m = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
            ws.feed(Message::text(m.to_string())).await?;
        }
        ws.flush().await?;
        let mut got = 0;
        while got < 256 {
            match ws.next().await {
                Some(Ok(Message::Text(_))) => {
                    got += 1;
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                Some(Ok(_)) => {}
                _ => bail!("the flooding client's socket closed"),
            }
        }
    }
    Ok(())
}

fn phase(mut samples: Vec<u64>, ws_answers: u64) -> P9Phase {
    let s = stats::Summary::of(&mut samples);
    P9Phase {
        keys: s.count,
        p50_us: s.p50_us,
        p99_us: s.p99_us,
        max_us: s.max_us,
        ws_answers,
    }
}

pub async fn run(env: &Env, cfg: &P9Config) -> Result<P9Result> {
    let shell = procs::which("bash").context("P9 needs bash")?;
    let port = procs::free_port()?;
    let data_dir = env.scratch.join("p9-data");
    std::fs::create_dir_all(&data_dir)?;
    let mut server_env = env.server_env.clone();
    server_env.push((
        "CODEFLOW_TERMINAL__SHELL".into(),
        shell.display().to_string(),
    ));
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
        &env.logs.join("p9-codeflow-server.log"),
        false,
    )?;
    procs::wait_http_ok(&mut server, port, "/healthz", Duration::from_secs(20)).await?;
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut control = open_ws(&url, "bench-p9").await?;
    request(
        &mut control,
        2,
        "projects/create",
        json!({"id": "bench-p9"}),
    )
    .await?;
    let made = request(
        &mut control,
        3,
        "terminals/create",
        json!({"project": "bench-p9", "cols": 120, "rows": 40}),
    )
    .await?;
    let path = made["url"]
        .as_str()
        .context("terminals/create without url")?;
    let (mut term, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}{path}"))
        .await
        .context("opening the terminal socket")?;
    term.send(Message::binary(b"echo re\"\"ady\r".to_vec()))
        .await?;
    until(&mut term, &mut Vec::new(), b"ready").await?;

    eprintln!("P9: {} keystrokes, quiet", cfg.keys);
    let _ = echo_phase(&mut term, cfg.keys.min(200), Duration::ZERO).await?; // warm-up
    let quiet = phase(echo_phase(&mut term, cfg.keys, Duration::ZERO).await?, 0);

    eprintln!(
        "P9: at least {} keystrokes and 10 s while /ws is flooded",
        cfg.keys
    );
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    // The flooding client runs on a thread and runtime of its own, so that this side never
    // waits behind it.
    let flooder = {
        let (url, stop, answered) = (url.clone(), stop.clone(), answered.clone());
        std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(flood(url, stop, answered))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::Relaxed) < 512 {
        if Instant::now() > deadline {
            bail!("the /ws flood did not start");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = answered.load(Ordering::Relaxed);
    // At least 10 s, so that the flood's answers keep coming during the phase.
    let flooded_samples = echo_phase(&mut term, cfg.keys, Duration::from_secs(10)).await?;
    let during = answered.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || flooder.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the flooding thread panicked"))??;
    server.check_alive()?;
    Ok(P9Result {
        quiet,
        flooded: phase(flooded_samples, during),
    })
}

pub fn print(r: &P9Result) {
    println!("P9 terminal keystroke echo (target: p99 ≤ 10 ms)");
    println!("| phase | keys | p50 | p99 | max | /ws answers meanwhile |");
    println!("|---|---|---|---|---|---|");
    for (name, p) in [("quiet", &r.quiet), ("/ws flooded", &r.flooded)] {
        println!(
            "| {name} | {} | {:.0} µs | {:.0} µs | {:.1} ms | {} |",
            p.keys,
            p.p50_us,
            p.p99_us,
            p.max_us / 1000.0,
            p.ws_answers
        );
    }
}
