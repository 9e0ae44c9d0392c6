//! What P5–P7 share: a server with its data dir, relays driven as an MCP agent over stdio with
//! any request (tool calls included), the server's Prometheus metrics, a byte-counting loopback
//! TCP proxy, and a deterministic pseudo-random generator for project content.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{ChildStdin, ChildStdout};

use crate::Env;
use crate::procs::{self, Guarded};

/// A running `codeflow-server` on a loopback port.
pub struct Server {
    pub guard: Guarded,
    pub port: u16,
    pub data_dir: PathBuf,
}

impl Server {
    pub async fn start(env: &Env, tag: &str, extra_env: &[(String, String)]) -> Result<Self> {
        let port = procs::free_port()?;
        let data_dir = env.scratch.join(format!("{tag}-data"));
        std::fs::create_dir_all(&data_dir)?;
        let mut envs = env.server_env.clone();
        envs.extend_from_slice(extra_env);
        let mut guard = Guarded::spawn(
            "codeflow-server",
            &env.server_bin,
            &[
                "--port".into(),
                port.to_string(),
                "--data-dir".into(),
                data_dir.display().to_string(),
            ],
            &envs,
            &env.logs.join(format!("{tag}-codeflow-server.log")),
            false,
        )?;
        procs::wait_http_ok(&mut guard, port, "/healthz", Duration::from_secs(20)).await?;
        Ok(Self {
            guard,
            port,
            data_dir,
        })
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// Where the server mirrors `project`.
    pub fn mirror(&self, project: &str) -> PathBuf {
        self.data_dir.join("mirrors").join(project)
    }

    /// `/metrics`, each metric name summed over its label sets.
    pub async fn metrics(&self) -> Result<BTreeMap<String, f64>> {
        let (status, body) = procs::http_get(self.port, "/metrics").await?;
        if status != 200 {
            bail!("GET /metrics answered {status}");
        }
        let mut out = BTreeMap::new();
        for line in body.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let name = key.split('{').next().unwrap_or(key).trim().to_owned();
            if let Ok(v) = value.trim().parse::<f64>() {
                *out.entry(name).or_insert(0.0) += v;
            }
        }
        Ok(out)
    }
}

/// One metric, 0 when the server has not exported it (yet).
pub fn metric(metrics: &BTreeMap<String, f64>, name: &str) -> f64 {
    metrics.get(name).copied().unwrap_or(0.0)
}

/// A `codeflow-client` relay with the bench as its agent on stdin/stdout.
pub struct Relay {
    pub guard: Guarded,
    pub agent: Agent,
    pub log: PathBuf,
    pub spawned: Instant,
}

impl Relay {
    /// Starts a relay on `root` for `project`, connecting to `url`.
    pub fn spawn(
        env: &Env,
        tag: &str,
        url: &str,
        project: &str,
        root: &Path,
        extra_env: &[(String, String)],
    ) -> Result<Self> {
        let log = env.logs.join(format!("{tag}-codeflow-client.log"));
        let spawned = Instant::now();
        let mut guard = Guarded::spawn(
            "codeflow-client",
            &env.client_bin,
            &[
                "--server".into(),
                url.to_owned(),
                "--project".into(),
                project.to_owned(),
                "--root".into(),
                root.display().to_string(),
                "--log-level".into(),
                "info".into(),
            ],
            extra_env,
            &log,
            true,
        )?;
        let (stdin, stdout) = guard.take_stdio()?;
        Ok(Self {
            guard,
            agent: Agent::new(stdin, stdout),
            log,
            spawned,
        })
    }

    /// The `durationMs` of the relay's last "sync done" log line, waiting up to `wait` for it
    /// (the log reaches the file asynchronously).
    pub async fn sync_done_ms(&self, nth: usize, wait: Duration) -> Option<u64> {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let found: Vec<&str> = text
                .lines()
                .filter_map(|l| l.split_once("sync done: ").map(|(_, r)| r))
                .collect();
            if found.len() >= nth {
                let v: Value = serde_json::from_str(found[nth - 1].trim()).ok()?;
                return v.get("durationMs").and_then(Value::as_u64);
            }
            if start.elapsed() > wait {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The MCP agent side of a stdio MCP server (a relay, cclsp): newline-delimited JSON.
pub struct Agent {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    line: String,
    next_id: u64,
}

impl Agent {
    pub fn new(stdin: ChildStdin, stdout: ChildStdout) -> Self {
        Self {
            stdin,
            stdout: BufReader::with_capacity(1 << 16, stdout),
            line: String::new(),
            next_id: 1,
        }
    }

    async fn send(&mut self, message: &Value) -> Result<()> {
        let mut bytes = serde_json::to_vec(message)?;
        bytes.push(b'\n');
        self.stdin.write_all(&bytes).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// One request; its `result`, or an error if it answered with one or not within `limit`.
    pub async fn request(&mut self, method: &str, params: Value, limit: Duration) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await?;
        let answer = tokio::time::timeout(limit, async {
            loop {
                self.line.clear();
                if self.stdout.read_line(&mut self.line).await? == 0 {
                    bail!("the MCP server closed its stdout");
                }
                let Ok(msg) = serde_json::from_str::<Value>(self.line.trim()) else {
                    continue; // not JSON (a stray log line)
                };
                if let (Some(_), Some(rid)) = (msg.get("method"), msg.get("id")) {
                    // A request to the client (ping, roots/list): answer so it never waits.
                    let rid = rid.clone();
                    self.send(&json!({"jsonrpc": "2.0", "id": rid, "result": {}}))
                        .await?;
                    continue;
                }
                if msg.get("method").is_none() && msg.get("id").and_then(Value::as_u64) == Some(id)
                {
                    return Ok(msg);
                }
            }
        })
        .await
        .with_context(|| format!("{method}: no answer within {limit:?}"))??;
        if let Some(error) = answer.get("error") {
            bail!("{method} answered with an error: {error}");
        }
        answer
            .get("result")
            .cloned()
            .with_context(|| format!("{method} answered without a result: {answer}"))
    }

    pub async fn initialize(&mut self) -> Result<Value> {
        let params = json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "codeflow-bench", "version": env!("CARGO_PKG_VERSION")}
        });
        let result = self
            .request("initialize", params, Duration::from_secs(60))
            .await?;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(result)
    }

    /// `tools/call`; the `structuredContent`, or an error when the tool reports one.
    pub async fn tool(&mut self, name: &str, args: Value, limit: Duration) -> Result<Value> {
        let result = self
            .request(
                "tools/call",
                json!({"name": name, "arguments": args}),
                limit,
            )
            .await?;
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            bail!("tool {name} failed: {}", result["content"]);
        }
        Ok(result.get("structuredContent").cloned().unwrap_or(result))
    }
}

/// A loopback TCP proxy that counts the bytes each way (client→upstream is `up`).
pub struct CountingProxy {
    pub port: u16,
    pub up: Arc<AtomicU64>,
    pub down: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        count.fetch_add(n as u64, Ordering::Relaxed);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl CountingProxy {
    pub async fn start(upstream_port: u16) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let up = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicU64::new(0));
        let (u, d) = (up.clone(), down.clone());
        let task = tokio::spawn(async move {
            let mut pumps = Vec::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                pumps.push(tokio::spawn(pump(cr, sw, u.clone())));
                pumps.push(tokio::spawn(pump(sr, cw, d.clone())));
            }
            for p in pumps {
                p.abort();
            }
        });
        Ok(Self {
            port,
            up,
            down,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    pub fn counts(&self) -> (u64, u64) {
        (
            self.up.load(Ordering::Relaxed),
            self.down.load(Ordering::Relaxed),
        )
    }
}

/// SplitMix64: small, fast and the same on every machine, so generated projects are identical
/// from run to run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in [0, 1).
    #[allow(clippy::cast_precision_loss)]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const WORDS: [&str; 24] = [
    "let", "fn", "value", "return", "match", "self", "struct", "impl", "config", "server",
    "client", "mirror", "path", "hash", "async", "await", "result", "error", "index", "token",
    "session", "buffer", "stream", "line",
];

/// `len` bytes of source-like ASCII text, lines of up to ~80 characters.
pub fn text_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 96);
    let mut line = 0usize;
    while out.len() < len {
        let word = WORDS[usize::try_from(rng.below(WORDS.len() as u64)).unwrap_or(0)];
        out.extend_from_slice(word.as_bytes());
        line += word.len() + 1;
        if line > 72 {
            out.push(b'\n');
            line = 0;
        } else {
            out.push(b' ');
        }
    }
    out.truncate(len);
    if let Some(last) = out.last_mut() {
        *last = b'\n';
    }
    out
}

/// `len` pseudo-random bytes (not UTF-8: they travel base64-encoded).
pub fn binary_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Nanoseconds of a duration, saturating.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Knobs of P5–P7 (flattened into the bench's command line).
#[derive(Clone, Debug, clap::Args)]
pub struct SyncArgs {
    /// P5: files in the generated project (`.gitignore` included; ignored trees come on top).
    #[arg(long, default_value_t = 10_000)]
    pub p5_files: usize,
    /// P5: bytes of the generated project, in MB (10^6).
    #[arg(long, default_value_t = 100)]
    pub p5_mb: u64,
    /// P5: unchanged re-syncs (one new relay each).
    #[arg(long, default_value_t = 3)]
    pub p5_resyncs: usize,
    /// P6: size of the edited text file in bytes (just under the relay's default 10 MiB
    /// FILE_SIZE_LIMIT).
    #[arg(long, default_value_t = 10 * 1024 * 1024 - 64 * 1024)]
    pub p6_bytes: u64,
    /// P6: edits per path (watcher, write → tools/call, pylsp). The first two or so pay for
    /// cold caches; 11 keeps the median on the steady state.
    #[arg(long, default_value_t = 11)]
    pub p6_edits: usize,
    /// P7: interleaved rounds of warm calls per session.
    #[arg(long, default_value_t = 5)]
    pub p7_rounds: usize,
    /// P7: warm calls per session per round.
    #[arg(long, default_value_t = 40)]
    pub p7_calls: usize,
}

/// Every descendant of `pid` (itself excluded) with its command name. Unlike
/// [`procs::process_tree`] it reads the children of every thread, since a Tokio worker thread,
/// not the main thread, is usually what spawns a language server.
pub fn descendants(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        if p != pid {
            let name = std::fs::read_to_string(format!("/proc/{p}/comm"))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default();
            out.push((p, name));
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            stack.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    out
}
