//! P1: MCP round trips through one `codeflow-client` relay and the server, side by side with
//! supergateway bridging a minimal stdio MCP server to WebSocket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::mcp::{McpClient, Workload};
use crate::procs::{self, Guarded};
use crate::{Env, stats};

#[derive(Clone, Debug)]
pub struct P1Config {
    pub warmup: usize,
    pub requests: usize,
    pub pipelined: usize,
    pub window: usize,
    pub rounds: usize,
    pub peer: bool,
    /// Files in the relay's tree (see `--p1-files`).
    pub files: usize,
    /// Their extension (see `--p1-files-ext`).
    pub files_ext: String,
}

/// Writes `files` small Python-like files named `*.{ext}` into `root`, in 50 directories.
fn populate(root: &std::path::Path, files: usize, ext: &str) -> Result<()> {
    for i in 0..files {
        let dir = root.join(format!("pkg{}", i % 50));
        std::fs::create_dir_all(&dir)?;
        let text = format!(
            "\"\"\"Module {i}.\"\"\"\n\n\ndef function_{i}(value: int) -> int:\n    return value + {i}\n\n\nclass Thing{i}:\n    size = {i}\n"
        );
        std::fs::write(dir.join(format!("mod{i}.{ext}")), text)?;
    }
    Ok(())
}

#[derive(Debug, Default, Serialize)]
pub struct WorkloadResult {
    pub samples: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub max_us: f64,
    /// Pipelined requests per second, one figure per round.
    pub rps_rounds: Vec<f64>,
    /// Median of the rounds.
    pub rps: f64,
}

#[derive(Debug, Serialize)]
pub struct SideResult {
    pub name: String,
    pub description: String,
    pub ok: bool,
    pub error: Option<String>,
    pub ping: WorkloadResult,
    pub health_check: WorkloadResult,
    /// CPU time each process of this side used per measured request (sequential and
    /// pipelined together), in microseconds: where the time goes.
    pub cpu_us_per_request: Vec<ProcessCpu>,
}

#[derive(Debug, Serialize)]
pub struct ProcessCpu {
    pub process: String,
    pub pid: u32,
    pub cpu_us_per_request: f64,
}

#[derive(Debug, Serialize)]
pub struct P1Result {
    pub warmup: usize,
    pub requests_per_round: usize,
    pub pipelined_per_round: usize,
    pub window: usize,
    pub rounds: usize,
    /// Files in the relay's tree, and their extension.
    pub tree_files: usize,
    pub tree_files_ext: String,
    pub codeflow: SideResult,
    /// The same server without the relay: the bench speaks WebSocket to `/ws` itself. The
    /// difference to `codeflow` is the relay's share (stdio, its loop, the watcher flush).
    pub direct: SideResult,
    pub peer: SideResult,
}

struct Side {
    name: String,
    description: String,
    client: Option<McpClient>,
    error: Option<String>,
    // Dropped (killed) with the side.
    _children: Vec<Guarded>,
    samples: [Vec<u64>; 2],
    rps: [Vec<f64>; 2],
    /// Processes serving this side, with the CPU seconds they used while measured.
    processes: Vec<(u32, String, f64)>,
    measured_requests: usize,
}

fn cpu_now(processes: &[(u32, String, f64)]) -> Vec<f64> {
    processes
        .iter()
        .map(|(pid, _, _)| procs::cpu_secs(*pid).unwrap_or(0.0))
        .collect()
}

const WORKLOADS: [Workload; 2] = [Workload::Ping, Workload::HealthCheck];

impl Side {
    fn failed(name: &str, description: String, error: anyhow::Error) -> Self {
        Self {
            name: name.to_owned(),
            description,
            client: None,
            error: Some(format!("{error:#}")),
            _children: Vec::new(),
            samples: Default::default(),
            rps: Default::default(),
            processes: Vec::new(),
            measured_requests: 0,
        }
    }

    fn with_processes(mut self, leaders: &[u32]) -> Self {
        for &leader in leaders {
            for (pid, name) in procs::process_tree(leader) {
                self.processes.push((pid, name, 0.0));
            }
        }
        self
    }

    async fn measure_round(&mut self, cfg: &P1Config, first: bool) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        let outcome: Result<()> = async {
            for (i, workload) in WORKLOADS.into_iter().enumerate() {
                if first {
                    client.sequential(workload, cfg.warmup).await?;
                    client
                        .pipelined(workload, cfg.window * 10, cfg.window)
                        .await?;
                }
                let before = cpu_now(&self.processes);
                let samples = client.sequential(workload, cfg.requests).await?;
                self.samples[i].extend(samples);
                let rps = client
                    .pipelined(workload, cfg.pipelined, cfg.window)
                    .await?;
                self.rps[i].push(rps);
                let after = cpu_now(&self.processes);
                for ((process, b), a) in self.processes.iter_mut().zip(before).zip(after) {
                    process.2 += a - b;
                }
                self.measured_requests += cfg.requests + cfg.pipelined;
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            eprintln!("  {}: measurement failed: {e:#}", self.name);
            self.error = Some(format!("{e:#}"));
            self.client = None;
        }
    }

    fn result(&mut self) -> SideResult {
        let mut out = [WorkloadResult::default(), WorkloadResult::default()];
        for (i, slot) in out.iter_mut().enumerate() {
            let s = stats::Summary::of(&mut self.samples[i]);
            *slot = WorkloadResult {
                samples: s.count,
                p50_us: s.p50_us,
                p99_us: s.p99_us,
                mean_us: s.mean_us,
                max_us: s.max_us,
                rps_rounds: self.rps[i].clone(),
                rps: stats::median(&self.rps[i]),
            };
        }
        let [ping, health_check] = out;
        SideResult {
            name: self.name.clone(),
            description: self.description.clone(),
            ok: self.error.is_none() && !self.samples[0].is_empty(),
            error: self.error.clone(),
            ping,
            health_check,
            cpu_us_per_request: self
                .processes
                .iter()
                .map(|(pid, name, secs)| ProcessCpu {
                    process: name.clone(),
                    pid: *pid,
                    #[allow(clippy::cast_precision_loss)]
                    cpu_us_per_request: if self.measured_requests > 0 {
                        secs * 1e6 / self.measured_requests as f64
                    } else {
                        0.0
                    },
                })
                .collect(),
        }
    }
}

/// The relay side and the direct side, on one server.
async fn start_codeflow(env: &Env, files: usize, ext: &str) -> Result<(Side, Side)> {
    let port = procs::free_port()?;
    let data_dir = env.scratch.join("p1-data");
    let root = env.scratch.join("p1-root");
    std::fs::create_dir_all(&data_dir)?;
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    populate(&root, files, ext)?;
    let mut server = Guarded::spawn(
        "codeflow-server",
        &env.server_bin,
        &[
            "--port".into(),
            port.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--max-clients".into(),
            "100".into(),
        ],
        &env.server_env,
        &env.logs.join("p1-codeflow-server.log"),
        false,
    )?;
    procs::wait_http_ok(&mut server, port, "/healthz", Duration::from_secs(20)).await?;
    let mut relay = Guarded::spawn(
        "codeflow-client",
        &env.client_bin,
        &[
            "--server".into(),
            format!("ws://127.0.0.1:{port}/ws"),
            "--project".into(),
            "bench".into(),
            "--root".into(),
            root.display().to_string(),
        ],
        &[],
        &env.logs.join("p1-codeflow-client.log"),
        true,
    )?;
    let (stdin, stdout) = relay.take_stdio()?;
    let mut client = McpClient::stdio(stdin, stdout);
    let init = client
        .initialize()
        .await
        .context("initialize through the relay")?;
    if init.get("sessionId").is_none() {
        eprintln!("  note: the relay's initialize result has no sessionId (it may strip it)");
    }
    let pids = [relay.pid(), server.pid()];
    // The direct side talks to the same server as another session of its own project, and
    // like the relay's session it streams files (an empty tree: its manifest lists nothing, so
    // the server asks it for nothing), so the two differ by the relay only.
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut direct = McpClient::websocket(&url).await?;
    direct
        .initialize_with(serde_json::json!({
            "project": "bench-direct",
            "projectRoot": "/bench-direct",
            "capabilities": {"experimental": {"codeflow": {"fileStream": true}}},
        }))
        .await
        .context("initialize straight to the server")?;
    direct
        .call("server/syncManifest", serde_json::json!({"files": []}))
        .await
        .context("the direct side's (empty) manifest")?;
    let direct = Side {
        name: "codeflow-direct".into(),
        description: format!(
            "bench → {url} → codeflow-server (no relay; a file-stream session of an empty tree)"
        ),
        client: Some(direct),
        error: None,
        processes: Vec::new(),
        measured_requests: 0,
        samples: Default::default(),
        rps: Default::default(),
        _children: Vec::new(),
    }
    .with_processes(&[server.pid()]);
    let side = Side {
        name: "codeflow".into(),
        description: format!(
            "bench → stdio → codeflow-client → ws://127.0.0.1:{port}/ws → codeflow-server"
        ),
        client: Some(client),
        error: None,
        processes: Vec::new(),
        measured_requests: 0,
        samples: Default::default(),
        rps: Default::default(),
        _children: vec![server, relay],
    }
    .with_processes(&pids);
    Ok((side, direct))
}

async fn start_peer(env: &Env, stub: &Path) -> Result<Side> {
    let supergateway: PathBuf = procs::which("supergateway").context(
        "supergateway is not installed (npm i -g supergateway, or run bench/run.sh which installs it)",
    )?;
    let node = procs::which("node").context("node is not installed")?;
    anyhow::ensure!(
        stub.is_file(),
        "the stub MCP server {} is missing",
        stub.display()
    );
    let port = procs::free_port()?;
    let stdio_cmd = format!("{} {}", node.display(), stub.display());
    let mut gateway = Guarded::spawn(
        "supergateway",
        &supergateway,
        &[
            "--stdio".into(),
            stdio_cmd.clone(),
            "--outputTransport".into(),
            "ws".into(),
            "--port".into(),
            port.to_string(),
            "--logLevel".into(),
            "none".into(),
            "--healthEndpoint".into(),
            "/healthz".into(),
        ],
        &[],
        &env.logs.join("p1-supergateway.log"),
        false,
    )?;
    procs::wait_http_ok(&mut gateway, port, "/healthz", Duration::from_secs(30)).await?;
    let url = format!("ws://127.0.0.1:{port}/message");
    let mut client = McpClient::websocket(&url).await?;
    client
        .initialize()
        .await
        .context("initialize through supergateway")?;
    let version = std::process::Command::new(&supergateway)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let pids = [gateway.pid()];
    Ok(Side {
        name: "supergateway".into(),
        description: format!(
            "bench → {url} → supergateway {version} (--logLevel none) → stdio → `{stdio_cmd}`"
        ),
        client: Some(client),
        error: None,
        processes: Vec::new(),
        measured_requests: 0,
        samples: Default::default(),
        rps: Default::default(),
        _children: vec![gateway],
    }
    .with_processes(&pids))
}

pub async fn run(env: &Env, cfg: &P1Config) -> Result<P1Result> {
    eprintln!("P1: starting codeflow-server and the codeflow-client relay");
    let (mut codeflow, mut direct) = start_codeflow(env, cfg.files, &cfg.files_ext).await?;
    let mut peer = if cfg.peer {
        eprintln!("P1: starting supergateway with the stub MCP server");
        match start_peer(env, &env.stub).await {
            Ok(side) => side,
            Err(e) => {
                eprintln!("P1: PEER UNAVAILABLE — {e:#}; reporting CodeFlow's figures only");
                Side::failed("supergateway", "not run".into(), e)
            }
        }
    } else {
        Side::failed(
            "supergateway",
            "not run".into(),
            anyhow::anyhow!("disabled with --no-peer"),
        )
    };
    for round in 0..cfg.rounds {
        eprintln!("P1: round {}/{}", round + 1, cfg.rounds);
        // Interleaved, so that noise from the shared machine falls on both sides alike.
        codeflow.measure_round(cfg, round == 0).await;
        direct.measure_round(cfg, round == 0).await;
        peer.measure_round(cfg, round == 0).await;
    }
    let codeflow_result = codeflow.result();
    if let Some(e) = &codeflow_result.error {
        anyhow::bail!("P1 CodeFlow measurement failed: {e}");
    }
    Ok(P1Result {
        warmup: cfg.warmup,
        requests_per_round: cfg.requests,
        pipelined_per_round: cfg.pipelined,
        window: cfg.window,
        rounds: cfg.rounds,
        tree_files: cfg.files,
        tree_files_ext: cfg.files_ext.clone(),
        codeflow: codeflow_result,
        direct: direct.result(),
        peer: peer.result(),
    })
}
