//! `codeflow-bench`: measures CodeFlow against its performance targets (see
//! `docs/benchmarks.md`).
//!
//! - `p1`: MCP round trips (`ping`, `tools/call health_check`) through one `codeflow-client`
//!   relay and the server: sequential p50/p99 and pipelined throughput with 100 in flight, side
//!   by side with supergateway bridging a minimal stdio MCP server to WebSocket.
//! - `p3`: 10,000 idle initialized sessions on one server: handshakes/s and RSS per session.
//!
//! It starts the release `codeflow-server` and `codeflow-client` found next to its own binary
//! (build them first, or use `bench/run.sh`), talks only to loopback, and kills every process it
//! started when it ends, also on error or Ctrl-C. It prints a table and writes
//! `target/bench/results.json`.

mod flows;
mod mcp;
mod p1;
mod p10;
mod p2;
mod p3;
mod p4;
mod p4_reader;
mod p5;
mod p6;
mod p7;
mod p8;
mod p9;
mod procs;
mod report;
mod stats;
mod ws;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Which {
    P1,
    P2,
    P3,
    P4,
    P5,
    P6,
    P7,
    P8,
    P9,
    /// Not part of `all` (minutes, and 20 language servers on the per-session side).
    P10,
    All,
}

#[derive(Debug, Parser)]
#[command(
    name = "codeflow-bench",
    about = "CodeFlow benchmarks P1 (MCP round trip) and P3 (idle sessions)"
)]
struct Cli {
    /// Which benchmark to run.
    #[arg(value_enum, default_value = "all")]
    which: Which,
    #[command(flatten)]
    sync: flows::SyncArgs,
    /// P4: subscribers of the one channel.
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    /// P4: events published (one at a time); latencies are pooled.
    #[arg(long, default_value_t = 5)]
    events: usize,
    /// P4 across instances: a Redis (`redis://127.0.0.1:6390`) both of two servers use as
    /// `cluster_url`; the subscribers connect to one, the publisher to the other.
    #[arg(long)]
    p4_cluster_url: Option<String>,

    /// Directory holding the release codeflow-server and codeflow-client (default: next to
    /// this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where results.json and logs go (default: `<target>/bench`).
    #[arg(long)]
    out_dir: Option<PathBuf>,

    /// P1: sequential warm-up requests per workload before measuring.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    /// P1: sequential measured requests per workload per round.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// P1: pipelined requests per workload per round.
    #[arg(long, default_value_t = 20_000)]
    pipelined: usize,
    /// P1: requests in flight in the pipelined phase.
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// P1: files in the relay's tree (0: an empty tree). Small source files in 50 directories,
    /// streamed before measuring: the relay's watcher then watches a project-sized tree.
    #[arg(long, default_value_t = 0)]
    p1_files: usize,
    /// P1: extension of those files (`py` starts pylsp for the project on the server; `txt`
    /// starts no language server).
    #[arg(long, default_value = "py")]
    p1_files_ext: String,
    /// P1: rounds, CodeFlow and the peer interleaved; latencies are pooled over the rounds and
    /// throughput is the median round.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// P2: warm find_definition calls per client (CodeFlow, direct pylsp, cclsp), in 5 rounds.
    #[arg(long, default_value_t = 500)]
    p2_calls: usize,
    /// P1: skip the supergateway peer.
    #[arg(long)]
    no_peer: bool,
    /// P1: the stub stdio MCP server the peer bridges (default: bench/mcp-stub.mjs).
    #[arg(long)]
    peer_stub: Option<PathBuf>,

    /// Log filter for the server children (sets RUST_LOG); default: the server's own default.
    /// For diagnosis only: the reported figures use the default.
    #[arg(long)]
    server_log: Option<String>,

    /// P8: subscribers joined to the project.
    #[arg(long, default_value_t = 10)]
    p8_subscribers: usize,
    /// P8: stamped lines in the paced run.
    #[arg(long, default_value_t = 2000)]
    p8_lines: usize,
    /// P8: milliseconds between stamped lines.
    #[arg(long, default_value_t = 2)]
    p8_pace_ms: u64,
    /// P8: lines of the flood run.
    #[arg(long, default_value_t = 50_000)]
    p8_flood: usize,
    /// P8: `projects/post` requests (the in-process log gets five times as many).
    #[arg(long, default_value_t = 50_000)]
    p8_appends: usize,
    /// P8: posts in flight on the socket, and concurrent appenders in process.
    #[arg(long, default_value_t = 1024)]
    p8_window: usize,

    /// P9: keystrokes measured per phase (quiet, then with /ws flooded).
    #[arg(long, default_value_t = 2000)]
    p9_keys: usize,
    /// P10: session counts at which to record, comma-separated (the largest is how many each
    /// side opens).
    #[arg(long, value_delimiter = ',', default_value = "1,5,20")]
    p10_sessions: Vec<usize>,
    /// P10: stop opening sessions on a side when the machine's MemAvailable falls below this
    /// many MiB.
    #[arg(long, default_value_t = 6144)]
    p10_min_free_mib: u64,
    /// P10: languages, comma-separated (python: pylsp; rust: rust-analyzer).
    #[arg(long, value_delimiter = ',', default_value = "python,rust")]
    p10_languages: Vec<String>,

    /// P3: sessions to open.
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// P3: projects the sessions are spread over.
    #[arg(long, default_value_t = 10)]
    projects: usize,
    /// P3: handshakes in flight at once. Keep it under the server's listen backlog (128 at
    /// the time of writing): above it the kernel drops SYNs and each retry costs 1 s.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// P3: seconds to wait after the last handshake before reading the server's RSS.
    #[arg(long, default_value_t = 2.0)]
    settle_secs: f64,
}

/// Where things are, shared by the benchmarks.
pub struct Env {
    pub server_bin: PathBuf,
    pub client_bin: PathBuf,
    pub stub: PathBuf,
    pub scratch: PathBuf,
    pub logs: PathBuf,
    /// Environment for the server children (RUST_LOG when --server-log is given).
    pub server_env: Vec<(String, String)>,
}

/// Removes the scratch directory however the run ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.window == 0 || cli.rounds == 0 || cli.projects == 0 || cli.concurrency == 0 {
        bail!("--window, --rounds, --projects and --concurrency must be at least 1");
    }
    let exe = std::env::current_exe()?;
    let exe_dir = exe
        .parent()
        .context("binary has no directory")?
        .to_path_buf();
    let bin_dir = cli.bin_dir.clone().unwrap_or_else(|| exe_dir.clone());
    let target_dir = exe_dir
        .parent()
        .map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let out_dir = cli
        .out_dir
        .clone()
        .unwrap_or_else(|| target_dir.join("bench"));
    let server_bin = bin_dir.join("codeflow-server");
    let client_bin = bin_dir.join("codeflow-client");
    for bin in [&server_bin, &client_bin] {
        if !bin.is_file() {
            bail!(
                "{} is missing: build it first with `cargo build --release -p codeflow-server -p codeflow-client` (or run bench/run.sh)",
                bin.display()
            );
        }
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let stub = cli
        .peer_stub
        .clone()
        .unwrap_or_else(|| workspace.join("bench/mcp-stub.mjs"));
    let logs = out_dir.join("logs");
    let scratch = out_dir.join(format!("scratch-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    std::fs::create_dir_all(&scratch)?;
    let _scratch_guard = Scratch(scratch.clone());
    let env = Env {
        server_bin,
        client_bin,
        stub,
        scratch,
        logs,
        server_env: cli
            .server_log
            .iter()
            .map(|level| ("RUST_LOG".to_owned(), level.clone()))
            .collect(),
    };
    // Enough files for P3 before any runtime thread or child exists.
    if matches!(cli.which, Which::P4) {
        procs::ensure_nofile(u64::try_from(cli.subscribers)?.saturating_mul(2) + 1024);
    }
    if matches!(cli.which, Which::P3 | Which::All) {
        procs::ensure_nofile(u64::try_from(cli.sessions)?.saturating_mul(2) + 1024);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run(&cli, &env) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    // Held sockets and tasks end here; children were killed when their guards dropped.
    runtime.shutdown_timeout(Duration::from_millis(500));
    let results = outcome?;
    let rows = report::rows(&results);
    print!("{}", report::table(&rows, &results));
    let path = out_dir.join("results.json");
    let mut json = serde_json::to_value(&results)?;
    json["checks"] = serde_json::to_value(&rows)?;
    std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("results written to {}", path.display());
    Ok(())
}

async fn run(cli: &Cli, env: &Env) -> Result<report::Results> {
    let mut results = report::Results {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: report::Machine::probe(),
        git_commit: report::git_commit(),
        started_unix: report::unix_now(),
        p1: None,
        p3: None,
        p4: None,
        p5: None,
        p6: None,
        p7: None,
        load_after: None,
    };
    if matches!(cli.which, Which::P1 | Which::All) {
        let cfg = p1::P1Config {
            warmup: cli.warmup,
            requests: cli.requests,
            pipelined: cli.pipelined,
            window: cli.window,
            rounds: cli.rounds,
            peer: !cli.no_peer,
            files: cli.p1_files,
            files_ext: cli.p1_files_ext.clone(),
        };
        results.p1 = Some(p1::run(env, &cfg).await?);
    }
    if matches!(cli.which, Which::P2 | Which::All) {
        let cfg = p2::P2Config {
            calls: cli.p2_calls,
            rounds: 5,
        };
        p2::run(env, &cfg).await?; // prints its own table, writes p2.json
    }
    if matches!(cli.which, Which::P3 | Which::All) {
        let cfg = p3::P3Config {
            sessions: cli.sessions,
            projects: cli.projects,
            concurrency: cli.concurrency,
            settle: Duration::from_secs_f64(cli.settle_secs.max(0.0)),
        };
        results.p3 = Some(p3::run(env, &cfg).await?);
    }
    if matches!(cli.which, Which::P4 | Which::All) {
        let cfg = p4::P4Config {
            subscribers: cli.subscribers,
            events: cli.events.max(1),
            concurrency: cli.concurrency,
            cluster_url: cli.p4_cluster_url.clone(),
        };
        results.p4 = Some(p4::run(env, &cfg).await?);
    }
    if matches!(cli.which, Which::P5 | Which::All) {
        let cfg = p5::P5Config {
            files: cli.sync.p5_files.max(2),
            bytes: cli.sync.p5_mb.max(1) * 1_000_000,
            resyncs: cli.sync.p5_resyncs.max(1),
        };
        results.p5 = Some(p5::run(env, &cfg).await?);
    }
    if matches!(cli.which, Which::P6 | Which::All) {
        let cfg = p6::P6Config {
            file_bytes: cli.sync.p6_bytes.max(4096),
            edits: cli.sync.p6_edits.max(1),
        };
        results.p6 = Some(p6::run(env, &cfg).await?);
    }
    if matches!(cli.which, Which::P7 | Which::All) {
        let cfg = p7::P7Config {
            rounds: cli.sync.p7_rounds.max(1),
            calls_per_round: cli.sync.p7_calls.max(1),
        };
        results.p7 = Some(p7::run(env, &cfg).await?);
    }
    if matches!(cli.which, Which::P8 | Which::All) {
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cfg = p8::P8Config {
            subscribers: cli.p8_subscribers.max(1),
            lines: cli.p8_lines.max(1),
            pace_ms: cli.p8_pace_ms,
            flood: cli.p8_flood.max(1),
            appends: cli.p8_appends.max(256),
            window: cli.p8_window.max(1),
            mock: workspace.join("tests/mock-claude/claude"),
        };
        let r = p8::run(env, &cfg).await?;
        p8::print(&r); // its own table; also written to p8.json
        let path = env.logs.join("../p8.json");
        std::fs::write(&path, serde_json::to_string_pretty(&r)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if matches!(cli.which, Which::P9 | Which::All) {
        let r = p9::run(
            env,
            &p9::P9Config {
                keys: cli.p9_keys.max(10),
            },
        )
        .await?;
        p9::print(&r); // its own table; also written to p9.json
        let path = env.logs.join("../p9.json");
        std::fs::write(&path, serde_json::to_string_pretty(&r)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if matches!(cli.which, Which::P10) {
        let cfg = p10::P10Config {
            checkpoints: cli
                .p10_sessions
                .iter()
                .copied()
                .filter(|n| *n > 0)
                .collect(),
            min_free_mib: cli.p10_min_free_mib,
            languages: cli.p10_languages.clone(),
        };
        if cfg.checkpoints.is_empty() {
            bail!("--p10-sessions needs at least one count above 0");
        }
        let r = p10::run(env, &cfg).await?;
        p10::print(&r); // its own table; also written to p10.json
        let path = env.logs.join("../p10.json");
        std::fs::write(&path, serde_json::to_string_pretty(&r)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    results.load_after = report::loadavg();
    Ok(results)
}
