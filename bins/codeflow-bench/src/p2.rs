//! P2: `find_definition` by symbol name, end to end (relay → server → pylsp on the mirror), on
//! a copy of `tests/fixtures/python` (`app.py` imports `scale` from `pkg/shapes.py`; the query is
//! `scale` in `app.py`, whose definition is in the other file).
//!
//! Side by side in the same run, on the same files and the same `pylsp`:
//! - a direct stdio LSP client written here (initialize, didOpen, then per call
//!   `textDocument/documentSymbol` + `textDocument/definition`, the two requests the tool makes);
//! - cclsp (the ancestor, a stdio MCP server) with the same `find_definition` tool calls, when
//!   it is installed (`npm i -g cclsp`); otherwise the row says why it is missing.
//!
//! Measured: the first answer (CodeFlow: from spawning the server, and from `initialize`; the
//! peers: from spawning them, and from their `initialize`), then warm latencies, the three
//! clients interleaved in rounds so load from the shared machine falls on all of them. Also
//! MCP `ping` through the same relay (the transport floor). Every answer is checked: it must
//! name `pkg/shapes.py`. Prints a table and writes `<out>/p2.json`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::flows::{self, Agent, ms, nanos};
use tokio::process::{ChildStdin, ChildStdout};

use crate::procs::{self, Guarded};
use crate::{Env, stats};

/// The fixture project, embedded so the bench does not depend on its working directory.
const FILES: [(&str, &str); 4] = [
    (
        "app.py",
        include_str!("../../../tests/fixtures/python/app.py"),
    ),
    (
        "report.py",
        include_str!("../../../tests/fixtures/python/report.py"),
    ),
    (
        "pkg/__init__.py",
        include_str!("../../../tests/fixtures/python/pkg/__init__.py"),
    ),
    (
        "pkg/shapes.py",
        include_str!("../../../tests/fixtures/python/pkg/shapes.py"),
    ),
];
const QUERY_FILE: &str = "app.py";
const SYMBOL: &str = "scale";
/// Every answer must point here.
const EXPECT: &str = "shapes.py";
/// First answers may include starting pylsp; warm calls get the same generous limit, and a
/// timeout fails the run rather than skewing it.
const LIMIT: Duration = Duration::from_secs(30);
const WARMUP: usize = 20;

#[derive(Clone, Debug)]
pub struct P2Config {
    /// Warm calls per client (split over `rounds`).
    pub calls: usize,
    pub rounds: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct First {
    /// From spawning the first process (server, pylsp, cclsp) to the first answer.
    pub from_spawn_ms: f64,
    /// From sending `initialize` to the first answer.
    pub from_initialize_ms: f64,
    /// The first `find_definition` call alone (or documentSymbol + definition).
    pub call_ms: f64,
    /// CodeFlow only: spawn → `/healthz` answers.
    pub server_ready_ms: Option<f64>,
}

impl First {
    /// The figures now, from the spawn at `spawned`, `initialize` at `initialized` and the
    /// call at `called`.
    fn measured(
        spawned: Instant,
        initialized: Instant,
        called: Instant,
        server_ready: Option<Duration>,
    ) -> Self {
        Self {
            from_spawn_ms: ms(spawned.elapsed()),
            from_initialize_ms: ms(initialized.elapsed()),
            call_ms: ms(called.elapsed()),
            server_ready_ms: server_ready.map(ms),
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Warm {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
    pub samples: usize,
}

impl Warm {
    fn of(samples: &mut [u64]) -> Self {
        let s = stats::Summary::of(samples);
        Self {
            p50_ms: s.p50_us / 1000.0,
            p99_ms: s.p99_us / 1000.0,
            mean_ms: s.mean_us / 1000.0,
            max_ms: s.max_us / 1000.0,
            samples: s.count,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Side {
    pub first: First,
    pub warm: Warm,
    /// CPU seconds per warm call of the serving processes (relay + server + its pylsp; the
    /// peer and its pylsp), from `/proc/<pid>/stat` (10 ms ticks, so coarse).
    pub cpu_ms_per_call: Option<f64>,
    /// The part of it spent in pylsp.
    pub pylsp_cpu_ms_per_call: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct P2Result {
    pub query: String,
    pub pylsp: String,
    pub codeflow: Side,
    /// `ping` through the same relay, interleaved with the warm rounds.
    pub relay_ping: Warm,
    pub direct: Side,
    pub cclsp: Option<Side>,
    pub cclsp_version: Option<String>,
    pub cclsp_missing: Option<String>,
    pub load_before: Option<String>,
    pub load_after: Option<String>,
}

/// CPU seconds of a process tree: (all of it, the pylsp processes in it).
fn tree_cpu(pid: u32) -> (f64, f64) {
    let mut all = 0.0;
    let mut lsp = 0.0;
    let tree = std::iter::once(pid).chain(flows::descendants(pid).into_iter().map(|(p, _)| p));
    for p in tree {
        let cpu = procs::cpu_secs(p).unwrap_or(0.0);
        all += cpu;
        let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("pylsp") {
            lsp += cpu;
        }
    }
    (all, lsp)
}

fn sum_cpu(pids: &[u32]) -> (f64, f64) {
    pids.iter()
        .map(|p| tree_cpu(*p))
        .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// `tools/call find_definition` through an MCP server (the relay, cclsp); fails unless the
/// answer names the defining file.
async fn find_definition(mcp: &mut Agent, file_path: &str) -> Result<()> {
    let result = mcp
        .request(
            "tools/call",
            json!({"name": "find_definition",
                   "arguments": {"file_path": file_path, "symbol_name": SYMBOL}}),
            LIMIT,
        )
        .await?;
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        bail!("find_definition answered isError: {result}");
    }
    if !result.to_string().contains(EXPECT) {
        bail!("find_definition did not find {SYMBOL} in {EXPECT}: {result}");
    }
    Ok(())
}

/// A minimal LSP client over stdio (Content-Length framing).
struct Lsp {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    header: String,
    body: Vec<u8>,
    next_id: u64,
}

impl Lsp {
    fn new(stdin: ChildStdin, stdout: ChildStdout) -> Self {
        Self {
            stdin,
            stdout: BufReader::with_capacity(1 << 16, stdout),
            header: String::new(),
            body: Vec::new(),
            next_id: 1,
        }
    }

    async fn send(&mut self, message: &Value) -> Result<()> {
        let body = serde_json::to_vec(message)?;
        let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        frame.extend_from_slice(&body);
        self.stdin.write_all(&frame).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn read(&mut self) -> Result<Value> {
        let mut length = None;
        loop {
            self.header.clear();
            if self.stdout.read_line(&mut self.header).await? == 0 {
                bail!("pylsp closed its stdout");
            }
            let line = self.header.trim();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = Some(value.trim().parse::<usize>()?);
            }
        }
        let length = length.context("LSP frame without Content-Length")?;
        self.body.resize(length, 0);
        self.stdout.read_exact(&mut self.body).await?;
        Ok(serde_json::from_slice(&self.body)?)
    }

    async fn notify(&mut self, method: &str, params: Value) -> Result<()> {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await
    }

    async fn request(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await?;
        let msg = tokio::time::timeout(LIMIT, async {
            loop {
                let msg = self.read().await?;
                if msg.get("method").is_some() {
                    if let Some(rid) = msg.get("id") {
                        // workspace/configuration, window/workDoneProgress/create, …
                        let rid = rid.clone();
                        self.send(&json!({"jsonrpc": "2.0", "id": rid, "result": null}))
                            .await?;
                    }
                    continue; // notifications (diagnostics, logs)
                }
                if msg.get("id").and_then(Value::as_u64) == Some(id) {
                    return Ok::<_, anyhow::Error>(msg);
                }
            }
        })
        .await
        .with_context(|| format!("{method}: no answer within {LIMIT:?}"))??;
        if let Some(error) = msg.get("error") {
            bail!("{method} answered with an error: {error}");
        }
        Ok(msg.get("result").cloned().unwrap_or(Value::Null))
    }
}

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// UTF-16 position of the first whole-word `name` at or after `(line, character)` — where a
/// flat `SymbolInformation` (pylsp's range starts at `def`/`from`) has its name.
fn name_position(text: &str, line: u64, character: u64, name: &str) -> Option<(u64, u64)> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    for (n, l) in text
        .lines()
        .enumerate()
        .skip(usize::try_from(line).ok()?)
        .take(50)
    {
        let n = n as u64;
        let from = if n == line { character } else { 0 };
        let mut units = 0u64;
        for (byte, c) in l.char_indices() {
            if units >= from
                && l[byte..].starts_with(name)
                && !l[..byte].chars().next_back().is_some_and(is_word)
                && !l[byte + name.len()..].chars().next().is_some_and(is_word)
            {
                return Some((n, units));
            }
            units += c.len_utf16() as u64;
        }
    }
    None
}

/// The direct client's `find_definition`: documentSymbol, then definition at each symbol named
/// [`SYMBOL`]; fails unless a definition lands in [`EXPECT`].
async fn direct_call(lsp: &mut Lsp, uri: &str, text: &str) -> Result<()> {
    let symbols = lsp
        .request(
            "textDocument/documentSymbol",
            json!({"textDocument": {"uri": uri}}),
        )
        .await?;
    let mut found = false;
    for s in symbols.as_array().map(Vec::as_slice).unwrap_or_default() {
        if s["name"].as_str() != Some(SYMBOL) {
            continue;
        }
        let (line, character) = if let Some(sel) = s.get("selectionRange") {
            (
                sel["start"]["line"].as_u64().unwrap_or(0),
                sel["start"]["character"].as_u64().unwrap_or(0),
            )
        } else {
            let start = &s["location"]["range"]["start"];
            let (l, c) = (
                start["line"].as_u64().unwrap_or(0),
                start["character"].as_u64().unwrap_or(0),
            );
            name_position(text, l, c, SYMBOL).unwrap_or((l, c))
        };
        let defs = lsp
            .request(
                "textDocument/definition",
                json!({"textDocument": {"uri": uri},
                       "position": {"line": line, "character": character}}),
            )
            .await?;
        found |= defs.to_string().contains(EXPECT);
    }
    if !found {
        bail!("direct client: no definition of {SYMBOL} in {EXPECT} (symbols: {symbols})");
    }
    Ok(())
}

struct Direct {
    _guard: Guarded,
    pid: u32,
    lsp: Lsp,
    uri: String,
    text: String,
}

async fn start_direct(env: &Env, pylsp: &Path, root: &Path) -> Result<(Direct, First)> {
    let t0 = Instant::now();
    let mut guard = Guarded::spawn(
        "pylsp",
        pylsp,
        &[],
        &[],
        &env.logs.join("p2-direct-pylsp.log"),
        true,
    )?;
    let (stdin, stdout) = guard.take_stdio()?;
    let mut lsp = Lsp::new(stdin, stdout);
    let root_uri = file_uri(root);
    let t_init = Instant::now();
    lsp.request(
        "initialize",
        json!({
            "processId": std::process::id(),
            "rootUri": root_uri,
            "workspaceFolders": [{"uri": root_uri, "name": "p2"}],
            "capabilities": {"textDocument": {
                "documentSymbol": {"hierarchicalDocumentSymbolSupport": true},
                "definition": {"linkSupport": false}
            }}
        }),
    )
    .await
    .context("direct pylsp initialize")?;
    lsp.notify("initialized", json!({})).await?;
    let path = root.join(QUERY_FILE);
    let text = std::fs::read_to_string(&path)?;
    let uri = file_uri(&path);
    lsp.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}),
    )
    .await?;
    let t_call = Instant::now();
    direct_call(&mut lsp, &uri, &text).await?;
    let first = First::measured(t0, t_init, t_call, None);
    let pid = guard.pid();
    Ok((
        Direct {
            _guard: guard,
            pid,
            lsp,
            uri,
            text,
        },
        first,
    ))
}

struct CodeFlow {
    _server: Guarded,
    _relay: Guarded,
    pids: [u32; 2],
    mcp: Agent,
}

async fn start_codeflow(env: &Env, root: &Path) -> Result<(CodeFlow, First)> {
    let port = procs::free_port()?;
    let data_dir = env.scratch.join("p2-data");
    std::fs::create_dir_all(&data_dir)?;
    let t0 = Instant::now();
    let mut server = Guarded::spawn(
        "codeflow-server",
        &env.server_bin,
        &[
            "--port".into(),
            port.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ],
        &env.server_env,
        &env.logs.join("p2-codeflow-server.log"),
        false,
    )?;
    // Poll /healthz every 2 ms: the start-up figure should not carry a coarse poll interval.
    procs::wait_http_ok_every(
        &mut server,
        port,
        "/healthz",
        LIMIT,
        Duration::from_millis(2),
    )
    .await?;
    let server_ready = t0.elapsed();
    let mut relay = Guarded::spawn(
        "codeflow-client",
        &env.client_bin,
        &[
            "--server".into(),
            format!("ws://127.0.0.1:{port}/ws"),
            "--project".into(),
            "p2".into(),
            "--root".into(),
            root.display().to_string(),
        ],
        &[],
        &env.logs.join("p2-codeflow-client.log"),
        true,
    )?;
    let (stdin, stdout) = relay.take_stdio()?;
    let mut mcp = Agent::new(stdin, stdout);
    let t_init = Instant::now();
    mcp.initialize()
        .await
        .context("initialize through the relay")?;
    let t_call = Instant::now();
    find_definition(&mut mcp, QUERY_FILE)
        .await
        .context("first find_definition through CodeFlow")?;
    let first = First::measured(t0, t_init, t_call, Some(server_ready));
    let pids = [server.pid(), relay.pid()];
    Ok((
        CodeFlow {
            _server: server,
            _relay: relay,
            pids,
            mcp,
        },
        first,
    ))
}

struct Cclsp {
    _guard: Guarded,
    pid: u32,
    mcp: Agent,
    file: String,
}

fn cclsp_version(bin: &Path) -> Option<String> {
    // bin is <prefix>/bin/cclsp → <prefix>/lib/node_modules/cclsp/package.json
    let real = std::fs::canonicalize(bin).ok()?;
    let pkg = real.parent()?.parent()?.join("package.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(pkg).ok()?).ok()?;
    v["version"].as_str().map(str::to_owned)
}

async fn start_cclsp(env: &Env, bin: &Path, pylsp: &Path, root: &Path) -> Result<(Cclsp, First)> {
    // cclsp's manual configuration (its README): one server for .py, the same pylsp, no
    // initializationOptions (CodeFlow sends none either).
    let config = env.scratch.join("p2-cclsp.json");
    std::fs::write(
        &config,
        serde_json::to_vec_pretty(&json!({"servers": [{
            "extensions": ["py", "pyi"],
            "command": [pylsp.display().to_string()],
            "rootDir": root.display().to_string()
        }]}))?,
    )?;
    let t0 = Instant::now();
    let mut guard = Guarded::spawn(
        "cclsp",
        bin,
        &[],
        &[("CCLSP_CONFIG_PATH".to_owned(), config.display().to_string())],
        &env.logs.join("p2-cclsp.log"),
        true,
    )?;
    let (stdin, stdout) = guard.take_stdio()?;
    let mut mcp = Agent::new(stdin, stdout);
    let t_init = Instant::now();
    mcp.initialize().await.context("cclsp initialize")?;
    // cclsp resolves relative paths against its own cwd: give it the absolute path.
    let file = root.join(QUERY_FILE).display().to_string();
    let t_call = Instant::now();
    find_definition(&mut mcp, &file)
        .await
        .context("first find_definition through cclsp")?;
    let first = First::measured(t0, t_init, t_call, None);
    let pid = guard.pid();
    Ok((
        Cclsp {
            _guard: guard,
            pid,
            mcp,
            file,
        },
        first,
    ))
}

pub async fn run(env: &Env, cfg: &P2Config) -> Result<P2Result> {
    let root = env.scratch.join("p2-root");
    for (rel, text) in FILES {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().context("file without a directory")?)?;
        std::fs::write(&path, text)?;
    }
    let pylsp =
        procs::which("pylsp").context("pylsp is not on PATH: pip install python-lsp-server")?;
    let version = tokio::process::Command::new(&pylsp)
        .arg("--version")
        .output()
        .await
        .context("pylsp --version")?;
    // That also brought pylsp's files into the page cache, so no side pays for a cold disk.
    let mut result = P2Result {
        query: format!("find_definition {SYMBOL} in {QUERY_FILE} → pkg/{EXPECT}"),
        pylsp: String::from_utf8_lossy(&version.stdout).trim().to_owned(),
        load_before: crate::report::loadavg(),
        ..P2Result::default()
    };

    eprintln!("P2: CodeFlow first answer (server start → relay → initialize → find_definition)");
    let (mut cf, first) = start_codeflow(env, &root).await?;
    result.codeflow.first = first;
    eprintln!("P2: direct pylsp client first answer");
    let (mut direct, first) = start_direct(env, &pylsp, &root).await?;
    result.direct.first = first;
    let mut cclsp = match procs::which("cclsp") {
        None => {
            result.cclsp_missing = Some("cclsp is not on PATH (npm i -g cclsp)".into());
            None
        }
        Some(bin) => {
            result.cclsp_version = cclsp_version(&bin);
            eprintln!("P2: cclsp first answer");
            match start_cclsp(env, &bin, &pylsp, &root).await {
                Ok((c, first)) => {
                    result.cclsp = Some(Side {
                        first,
                        ..Side::default()
                    });
                    Some(c)
                }
                Err(e) => {
                    eprintln!("P2: cclsp failed: {e:#}");
                    result.cclsp_missing = Some(format!("cclsp failed: {e:#}"));
                    None
                }
            }
        }
    };

    eprintln!("P2: warm-up, {WARMUP} calls each");
    for _ in 0..WARMUP {
        find_definition(&mut cf.mcp, QUERY_FILE).await?;
        cf.mcp.request("ping", json!({}), LIMIT).await?;
        direct_call(&mut direct.lsp, &direct.uri, &direct.text).await?;
        if let Some(c) = cclsp.as_mut() {
            find_definition(&mut c.mcp, &c.file).await?;
        }
    }
    let rounds = cfg.rounds.max(1);
    let per_round = cfg.calls.div_ceil(rounds).max(1);
    eprintln!("P2: warm, {rounds} rounds × {per_round} calls per client, interleaved");
    let (mut s_cf, mut s_ping, mut s_direct, mut s_cclsp) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // (all processes, pylsp) CPU seconds of each side over its warm calls.
    let (mut cpu_cf, mut cpu_direct, mut cpu_cclsp) = ((0.0, 0.0), (0.0, 0.0), (0.0, 0.0));
    let add = |acc: &mut (f64, f64), before: (f64, f64), after: (f64, f64)| {
        acc.0 += after.0 - before.0;
        acc.1 += after.1 - before.1;
    };
    for round in 0..rounds {
        // Rotate who goes first, so drift falls on all of them.
        for k in 0..3 {
            match (round + k) % 3 {
                0 => {
                    let before = sum_cpu(&cf.pids);
                    for _ in 0..per_round {
                        let t = Instant::now();
                        find_definition(&mut cf.mcp, QUERY_FILE).await?;
                        s_cf.push(nanos(t.elapsed()));
                    }
                    add(&mut cpu_cf, before, sum_cpu(&cf.pids));
                    for _ in 0..per_round / 2 {
                        let t = Instant::now();
                        cf.mcp.request("ping", json!({}), LIMIT).await?;
                        s_ping.push(nanos(t.elapsed()));
                    }
                }
                1 => {
                    let before = sum_cpu(&[direct.pid]);
                    for _ in 0..per_round {
                        let t = Instant::now();
                        direct_call(&mut direct.lsp, &direct.uri, &direct.text).await?;
                        s_direct.push(nanos(t.elapsed()));
                    }
                    add(&mut cpu_direct, before, sum_cpu(&[direct.pid]));
                }
                _ => {
                    if let Some(c) = cclsp.as_mut() {
                        let before = sum_cpu(&[c.pid]);
                        for _ in 0..per_round {
                            let t = Instant::now();
                            find_definition(&mut c.mcp, &c.file).await?;
                            s_cclsp.push(nanos(t.elapsed()));
                        }
                        add(&mut cpu_cclsp, before, sum_cpu(&[c.pid]));
                    }
                }
            }
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let per_call = |cpu: f64, n: usize| (n > 0).then(|| cpu * 1000.0 / n as f64);
    result.codeflow.cpu_ms_per_call = per_call(cpu_cf.0, s_cf.len());
    result.codeflow.pylsp_cpu_ms_per_call = per_call(cpu_cf.1, s_cf.len());
    result.codeflow.warm = Warm::of(&mut s_cf);
    result.relay_ping = Warm::of(&mut s_ping);
    result.direct.cpu_ms_per_call = per_call(cpu_direct.0, s_direct.len());
    result.direct.pylsp_cpu_ms_per_call = per_call(cpu_direct.1, s_direct.len());
    result.direct.warm = Warm::of(&mut s_direct);
    if let Some(side) = result.cclsp.as_mut() {
        side.cpu_ms_per_call = per_call(cpu_cclsp.0, s_cclsp.len());
        side.pylsp_cpu_ms_per_call = per_call(cpu_cclsp.1, s_cclsp.len());
        side.warm = Warm::of(&mut s_cclsp);
    }
    result.load_after = crate::report::loadavg();
    // Children die with their guards, here, before the report.
    drop(cclsp);
    drop(direct);
    drop(cf);

    print!("{}", table(&result));
    let out = env
        .logs
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let path = out.join("p2.json");
    std::fs::write(&path, serde_json::to_string_pretty(&result)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("P2 results written to {}", path.display());
    Ok(result)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "—".into()
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// The P2 table: one line per figure, with peers, ratios (CodeFlow / peer) and targets.
pub fn table(r: &P2Result) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let cf = &r.codeflow;
    let d = &r.direct;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "P2 — {} ({}; load {} → {})",
        r.query,
        r.pylsp,
        r.load_before.as_deref().unwrap_or("?"),
        r.load_after.as_deref().unwrap_or("?")
    );
    let cc = r.cclsp.as_ref();
    let cc_name = match (&r.cclsp_version, cc) {
        (Some(v), Some(_)) => format!("cclsp {v}"),
        _ => "cclsp".into(),
    };
    if let Some(why) = &r.cclsp_missing {
        let _ = writeln!(out, "  cclsp not measured: {why}");
    }
    let peer =
        |f: &dyn Fn(&Side) -> f64| cc.map_or("—".to_owned(), |s| format!("{:.2} ms", f(s)));
    let peer_ratio = |f: &dyn Fn(&Side) -> f64| cc.map_or("—".to_owned(), |s| ratio(f(cf), f(s)));
    let _ = writeln!(
        out,
        "| metric | CodeFlow | direct pylsp | CodeFlow/direct | {cc_name} | CodeFlow/cclsp | target | verdict |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let first_target = cf.first.from_spawn_ms <= 500.0;
    let _ = writeln!(
        out,
        "| first answer from process start | {:.0} ms (server ready {:.0} ms) | {:.0} ms | {} | {} | {} | ≤ 500 ms | {} |",
        cf.first.from_spawn_ms,
        cf.first.server_ready_ms.unwrap_or(0.0),
        d.first.from_spawn_ms,
        ratio(cf.first.from_spawn_ms, d.first.from_spawn_ms),
        peer(&|s| s.first.from_spawn_ms),
        peer_ratio(&|s| s.first.from_spawn_ms),
        verdict(first_target)
    );
    let _ = writeln!(
        out,
        "| first answer from initialize | {:.0} ms (call alone {:.0} ms) | {:.0} ms | {} | {} | {} | — | — |",
        cf.first.from_initialize_ms,
        cf.first.call_ms,
        d.first.from_initialize_ms,
        ratio(cf.first.from_initialize_ms, d.first.from_initialize_ms),
        peer(&|s| s.first.from_initialize_ms),
        peer_ratio(&|s| s.first.from_initialize_ms),
    );
    let cc_ok = |f: &dyn Fn(&Side) -> f64, k: f64| cc.is_none_or(|s| f(cf) * k <= f(s));
    let p50_met =
        cf.warm.p50_ms <= 2.0 && cf.warm.p50_ms <= d.warm.p50_ms && cc_ok(&|s| s.warm.p50_ms, 2.0);
    let _ = writeln!(
        out,
        "| warm p50 ({} calls) | {:.2} ms | {:.2} ms | {} | {} | {} | ≤ 2.0 ms; ≤ direct; ≤ 0.5× cclsp | {} |",
        cf.warm.samples,
        cf.warm.p50_ms,
        d.warm.p50_ms,
        ratio(cf.warm.p50_ms, d.warm.p50_ms),
        peer(&|s| s.warm.p50_ms),
        peer_ratio(&|s| s.warm.p50_ms),
        verdict(p50_met)
    );
    let p99_met = cf.warm.p99_ms <= 4.0 && cc_ok(&|s| s.warm.p99_ms, 2.0);
    let _ = writeln!(
        out,
        "| warm p99 | {:.2} ms | {:.2} ms | {} | {} | {} | ≤ 4 ms; ≤ 0.5× cclsp | {} |",
        cf.warm.p99_ms,
        d.warm.p99_ms,
        ratio(cf.warm.p99_ms, d.warm.p99_ms),
        peer(&|s| s.warm.p99_ms),
        peer_ratio(&|s| s.warm.p99_ms),
        verdict(p99_met)
    );
    let _ = writeln!(
        out,
        "| warm mean / max | {:.2} / {:.2} ms | {:.2} / {:.2} ms | — | {} | — | — | — |",
        cf.warm.mean_ms,
        cf.warm.max_ms,
        d.warm.mean_ms,
        d.warm.max_ms,
        cc.map_or("—".to_owned(), |s| format!(
            "{:.2} / {:.2} ms",
            s.warm.mean_ms, s.warm.max_ms
        )),
    );
    let cpu = |s: &Side| match (s.cpu_ms_per_call, s.pylsp_cpu_ms_per_call) {
        (Some(all), Some(lsp)) => format!("{all:.2} ms (pylsp {lsp:.2})"),
        _ => "—".to_owned(),
    };
    let _ = writeln!(
        out,
        "| CPU per warm call (all processes of the side) | {} | {} | — | {} | — | — | — |",
        cpu(cf),
        cpu(d),
        cc.map_or("—".to_owned(), cpu),
    );
    let _ = writeln!(
        out,
        "| MCP ping through the same relay (transport floor) | p50 {:.3} ms, p99 {:.3} ms | — | — | — | — | — | — |",
        r.relay_ping.p50_ms, r.relay_ping.p99_ms
    );
    out
}
