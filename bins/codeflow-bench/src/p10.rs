//! P10, the shared-server headline: N agent sessions on one project, through CodeFlow (N relays
//! → one server → one language server per language) against the per-session model (cclsp
//! started once per session, each starting its own language server), for pylsp and for
//! rust-analyzer.
//!
//! Sessions arrive one after another, each staying open (as agents in N containers would);
//! each asks `find_definition` once and the bench waits for its first correct answer before
//! the next arrives. After session 1, 5 and 20 (`--p10-sessions`) it records, per side: the sum
//! of resident memory (VmRSS, and PSS, which splits shared pages fairly) of every process
//! involved (server, relays and language servers; or every cclsp and its language server),
//! the number of language-server processes, and the Nth session's first answer (from starting
//! its relay or cclsp to the answer). A side stops early when the machine's available memory
//! falls under `--p10-min-free-mib`, and says so, rather than taking the machine down.
//!
//! The heavy project is the source of the `semver` crate (≈ 2,100 lines, from cargo's
//! registry cache) as a standalone crate: rust-analyzer's cost there is mostly the standard
//! library it loads for any project. cclsp is the ancestor's per-session LSP-MCP server
//! (`npm i -g cclsp`); without it the per-session side is reported missing, by name.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Env;
use crate::flows::{self, Agent, Relay, Server};
use crate::procs::{self, Guarded};

#[derive(Clone, Debug)]
pub struct P10Config {
    /// Session counts at which to record (the last is how many sessions each side opens).
    pub checkpoints: Vec<usize>,
    /// Stop opening sessions on a side when MemAvailable is below this.
    pub min_free_mib: u64,
    /// Which languages: "python", "rust".
    pub languages: Vec<String>,
}

/// One language's project and query.
struct Case {
    language: &'static str,
    /// The language server's program (on PATH).
    server: &'static str,
    extensions: &'static [&'static str],
    root: PathBuf,
    file: &'static str,
    symbol: &'static str,
    /// A correct answer names this file.
    expect: &'static str,
    project: String,
}

/// Figures after `sessions` sessions on one side.
#[derive(Debug, Serialize, Clone)]
pub struct Snapshot {
    pub sessions: usize,
    /// The last session's first correct answer, from starting its process.
    pub nth_first_ms: f64,
    /// Of that, the tool calls (retries while the server indexed included).
    pub nth_call_ms: f64,
    pub rss_mib: f64,
    pub pss_mib: f64,
    pub processes: usize,
    pub language_servers: usize,
    /// Their pids and command lines.
    pub language_server_commands: Vec<String>,
}

#[derive(Debug, Serialize, Default)]
pub struct Side {
    pub snapshots: Vec<Snapshot>,
    /// Why the side stopped before the last checkpoint, if it did.
    pub stopped: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LanguageResult {
    pub language: String,
    pub server: String,
    pub server_version: String,
    pub project: String,
    pub query: String,
    pub codeflow: Side,
    pub cclsp: Option<Side>,
    pub cclsp_missing: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct P10Result {
    pub command: String,
    pub machine: crate::report::Machine,
    pub git_commit: Option<String>,
    pub cclsp_version: Option<String>,
    pub min_free_mib: u64,
    pub languages: Vec<LanguageResult>,
    pub load_after: Option<String>,
}

/// The Python fixture (the same files P2 uses).
const PY_FILES: [(&str, &str); 4] = [
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

/// The longest wait for one session's first correct answer (rust-analyzer indexing on a busy
/// machine included).
const FIRST_LIMIT: Duration = Duration::from_secs(300);

fn python_case(env: &Env) -> Result<Case> {
    let root = env.scratch.join("p10-python");
    for (rel, text) in PY_FILES {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().context("file without a directory")?)?;
        std::fs::write(&path, text)?;
    }
    Ok(Case {
        language: "python",
        server: "pylsp",
        extensions: &["py", "pyi"],
        root,
        file: "app.py",
        symbol: "scale",
        expect: "pkg/shapes.py",
        project: "the Python tool fixture (tests/fixtures/python, 4 files)".into(),
    })
}

/// `semver`'s source from cargo's registry cache, as a standalone crate without dev-deps.
fn rust_case(env: &Env) -> Result<Case> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let mut found: Vec<PathBuf> = Vec::new();
    for index in std::fs::read_dir(home.join("registry/src"))
        .context("no cargo registry cache (~/.cargo/registry/src)")?
        .flatten()
    {
        for krate in std::fs::read_dir(index.path())?.flatten() {
            let name = krate.file_name().to_string_lossy().into_owned();
            if name.starts_with("semver-1.") && krate.path().join("src/lib.rs").is_file() {
                found.push(krate.path());
            }
        }
    }
    found.sort();
    let source = found
        .pop()
        .context("no semver 1.x source in cargo's registry cache (cargo fetch brings it)")?;
    let root = env.scratch.join("p10-rust");
    std::fs::create_dir_all(root.join("src"))?;
    for entry in std::fs::read_dir(source.join("src"))?.flatten() {
        if entry.path().extension().is_some_and(|e| e == "rs") {
            std::fs::copy(entry.path(), root.join("src").join(entry.file_name()))?;
        }
    }
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"semver\"\nversion = \"1.0.0\"\nedition = \"2021\"\n\n[features]\ndefault = [\"std\"]\nstd = []\n\n[workspace]\n",
    )?;
    let version = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Case {
        language: "rust",
        server: "rust-analyzer",
        extensions: &["rs"],
        root,
        file: "src/eval.rs",
        symbol: "matches_req",
        expect: "src/eval.rs:",
        project: format!("{version}'s source as a standalone crate (no dependencies)"),
    })
}

/// Sum of `Pss:` in `/proc/PID/smaps_rollup`, KiB.
fn pss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mem_available_mib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(u64::MAX, |kib| kib / 1024)
}

/// Memory and process counts of `roots` and all their descendants; language servers are the
/// direct children of `lsp_parents`.
fn measure(roots: &[u32], lsp_parents: &[u32]) -> Measured {
    let mut pids: Vec<u32> = Vec::new();
    for root in roots {
        pids.push(*root);
        pids.extend(flows::descendants(*root).into_iter().map(|(p, _)| p));
    }
    pids.sort_unstable();
    pids.dedup();
    let rss: u64 = pids.iter().filter_map(|p| procs::rss_kib(*p).ok()).sum();
    let pss: u64 = pids.iter().map(|p| pss_kib(*p)).sum();
    let lsp: Vec<String> = lsp_parents
        .iter()
        .flat_map(|p| direct_children(*p))
        .collect();
    #[allow(clippy::cast_precision_loss)]
    (rss as f64 / 1024.0, pss as f64 / 1024.0, pids.len(), lsp)
}

/// (RSS MiB, PSS MiB, processes, language-server command lines).
type Measured = (f64, f64, usize, Vec<String>);

/// Children of `pid` (of any of its threads): their command lines.
fn direct_children(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children.split_whitespace() {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            let words: Vec<String> = cmdline
                .split(|b| *b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            out.push(format!("{child} {}", words.join(" ")));
        }
    }
    out
}

/// Asks `find_definition` until the answer is correct (`correct`), for at most `FIRST_LIMIT`:
/// returns the time the calls took.
async fn first_answer(
    agent: &mut Agent,
    case: &Case,
    correct: impl Fn(&Value) -> bool,
) -> Result<Duration> {
    let file = case.root.join(case.file).display().to_string();
    let args = json!({"file_path": file, "symbol_name": case.symbol});
    let t = Instant::now();
    let mut last = String::new();
    while t.elapsed() < FIRST_LIMIT {
        let left = FIRST_LIMIT.saturating_sub(t.elapsed());
        match agent
            .request(
                "tools/call",
                json!({"name": "find_definition", "arguments": args}),
                left,
            )
            .await
        {
            Ok(answer) if correct(&answer) => return Ok(t.elapsed()),
            Ok(answer) => last = answer.to_string(),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!(
        "no correct find_definition answer within {FIRST_LIMIT:?}; last: {}",
        last.chars().take(400).collect::<String>()
    )
}

/// CodeFlow's answer names a definition in `expect`.
fn codeflow_correct(answer: &Value, expect: &str) -> bool {
    answer.get("isError").and_then(Value::as_bool) != Some(true)
        && answer["structuredContent"]["matches"]
            .as_array()
            .is_some_and(|matches| {
                matches.iter().any(|m| {
                    m["definitions"].as_array().is_some_and(|d| {
                        d.iter().any(|p| {
                            let path = p["path"].as_str().unwrap_or_default();
                            let place = format!("{path}:");
                            place.contains(expect)
                        })
                    })
                })
            })
}

/// cclsp's answer lists definitions ("Results for …") in `expect`.
fn cclsp_correct(answer: &Value, expect: &str) -> bool {
    let text = answer["content"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    text.contains("Results for")
        && text
            .lines()
            .skip_while(|l| !l.starts_with("Results for"))
            .skip(1)
            .any(|l| l.contains(expect))
}

fn snapshot(sessions: usize, first: Duration, call: Duration, m: Measured) -> Snapshot {
    Snapshot {
        sessions,
        nth_first_ms: flows::ms(first),
        nth_call_ms: flows::ms(call),
        rss_mib: m.0,
        pss_mib: m.1,
        processes: m.2,
        language_servers: m.3.len(),
        language_server_commands: m.3,
    }
}

/// Room for one more session?
fn memory_left(cfg: &P10Config, side: &mut Side, opened: usize) -> bool {
    let free = mem_available_mib();
    if free < cfg.min_free_mib {
        side.stopped = Some(format!(
            "stopped after {opened} sessions: MemAvailable {free} MiB < {} MiB",
            cfg.min_free_mib
        ));
        eprintln!("P10: {}", side.stopped.as_deref().unwrap_or_default());
        return false;
    }
    true
}

async fn run_codeflow(env: &Env, cfg: &P10Config, case: &Case) -> Result<Side> {
    let last = cfg.checkpoints.iter().copied().max().unwrap_or(1);
    let tag = format!("p10-{}", case.language);
    let server = Server::start(env, &tag, &[]).await?;
    let project = format!("p10{}", case.language);
    let mut relays: Vec<Relay> = Vec::new();
    let mut side = Side::default();
    let mut latest = (Duration::ZERO, Duration::ZERO);
    for n in 1..=last {
        if !memory_left(cfg, &mut side, n - 1) {
            if n > 1 && !cfg.checkpoints.contains(&(n - 1)) {
                let mut roots = vec![server.guard.pid()];
                roots.extend(relays.iter().map(|r| r.guard.pid()));
                let m = measure(&roots, &[server.guard.pid()]);
                side.snapshots.push(snapshot(n - 1, latest.0, latest.1, m));
            }
            break;
        }
        let t0 = Instant::now();
        let mut relay = Relay::spawn(
            env,
            &format!("{tag}-{n}"),
            &server.url(),
            &project,
            &case.root,
            &[],
        )?;
        relay.agent.initialize().await?;
        let expect = case.expect;
        let call = first_answer(&mut relay.agent, case, |a| codeflow_correct(a, expect))
            .await
            .with_context(|| format!("CodeFlow session {n} ({})", case.language))?;
        let first = t0.elapsed();
        latest = (first, call);
        relays.push(relay);
        if cfg.checkpoints.contains(&n) {
            let mut roots = vec![server.guard.pid()];
            roots.extend(relays.iter().map(|r| r.guard.pid()));
            let m = measure(&roots, &[server.guard.pid()]);
            eprintln!(
                "P10: {} CodeFlow {n} sessions: first {:.0} ms, RSS {:.0} MiB, PSS {:.0} MiB, {} processes, {} language servers",
                case.language,
                flows::ms(first),
                m.0,
                m.1,
                m.2,
                m.3.len()
            );
            side.snapshots.push(snapshot(n, first, call, m));
        }
    }
    drop(relays);
    drop(server);
    Ok(side)
}

async fn run_cclsp(env: &Env, cfg: &P10Config, case: &Case, bin: &Path) -> Result<Side> {
    let last = cfg.checkpoints.iter().copied().max().unwrap_or(1);
    let program =
        procs::which(case.server).with_context(|| format!("{} is not on PATH", case.server))?;
    let config = env
        .scratch
        .join(format!("p10-cclsp-{}.json", case.language));
    std::fs::write(
        &config,
        serde_json::to_vec_pretty(&json!({"servers": [{
            "extensions": case.extensions,
            "command": [program.display().to_string()],
            "rootDir": case.root.display().to_string()
        }]}))?,
    )?;
    let mut sessions: Vec<(Guarded, Agent)> = Vec::new();
    let mut side = Side::default();
    let mut latest = (Duration::ZERO, Duration::ZERO);
    for n in 1..=last {
        if !memory_left(cfg, &mut side, n - 1) {
            // What was reached, measured, so the stop still has figures.
            if n > 1 && !cfg.checkpoints.contains(&(n - 1)) {
                let roots: Vec<u32> = sessions.iter().map(|(g, _)| g.pid()).collect();
                let m = measure(&roots, &roots);
                side.snapshots.push(snapshot(n - 1, latest.0, latest.1, m));
            }
            break;
        }
        let t0 = Instant::now();
        let mut guard = Guarded::spawn(
            "cclsp",
            bin,
            &[],
            &[("CCLSP_CONFIG_PATH".to_owned(), config.display().to_string())],
            &env.logs
                .join(format!("p10-cclsp-{}-{n}.log", case.language)),
            true,
        )?;
        let (stdin, stdout) = guard.take_stdio()?;
        let mut agent = Agent::new(stdin, stdout);
        agent.initialize().await.context("cclsp initialize")?;
        let expect = case.expect;
        let call = first_answer(&mut agent, case, |a| cclsp_correct(a, expect))
            .await
            .with_context(|| format!("cclsp session {n} ({})", case.language))?;
        let first = t0.elapsed();
        latest = (first, call);
        sessions.push((guard, agent));
        if cfg.checkpoints.contains(&n) {
            let roots: Vec<u32> = sessions.iter().map(|(g, _)| g.pid()).collect();
            let m = measure(&roots, &roots);
            eprintln!(
                "P10: {} cclsp {n} sessions: first {:.0} ms, RSS {:.0} MiB, PSS {:.0} MiB, {} processes, {} language servers",
                case.language,
                flows::ms(first),
                m.0,
                m.1,
                m.2,
                m.3.len()
            );
            side.snapshots.push(snapshot(n, first, call, m));
        }
    }
    drop(sessions);
    Ok(side)
}

fn cclsp_version(bin: &Path) -> Option<String> {
    // <prefix>/bin/cclsp → <prefix>/lib/node_modules/cclsp/dist/index.js; package.json above.
    let real = std::fs::canonicalize(bin).ok()?;
    real.ancestors()
        .map(|d| d.join("package.json"))
        .find(|p| p.is_file())
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
}

async fn version_of(program: &str) -> String {
    match tokio::process::Command::new(program)
        .arg("--version")
        .output()
        .await
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Err(e) => format!("unknown ({e})"),
    }
}

pub async fn run(env: &Env, cfg: &P10Config) -> Result<P10Result> {
    let machine = crate::report::Machine::probe();
    let cclsp = procs::which("cclsp");
    if cclsp.is_none() {
        eprintln!(
            "P10: cclsp is NOT on PATH (npm i -g cclsp): the per-session side is missing from this run"
        );
    }
    let mut languages = Vec::new();
    for language in &cfg.languages {
        let case = match language.as_str() {
            "python" => python_case(env)?,
            "rust" => rust_case(env)?,
            other => bail!("P10 knows the languages python and rust, not {other:?}"),
        };
        if procs::which(case.server).is_none() {
            bail!(
                "{} is not on PATH (scripts/install-language-servers.sh)",
                case.server
            );
        }
        let server_version = version_of(case.server).await;
        eprintln!("P10: {language}: CodeFlow, sessions {:?}", cfg.checkpoints);
        let codeflow = run_codeflow(env, cfg, &case).await?;
        // Let the killed processes' memory return before the other side starts.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (cclsp_side, cclsp_missing) = match &cclsp {
            Some(bin) => {
                eprintln!("P10: {language}: cclsp, one per session");
                (Some(run_cclsp(env, cfg, &case, bin).await?), None)
            }
            None => (
                None,
                Some("cclsp is not on PATH (npm i -g cclsp)".to_owned()),
            ),
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        languages.push(LanguageResult {
            language: case.language.into(),
            server: case.server.into(),
            server_version,
            project: case.project.clone(),
            query: format!(
                "find_definition {} in {} → {}",
                case.symbol, case.file, case.expect
            ),
            codeflow,
            cclsp: cclsp_side,
            cclsp_missing,
        });
    }
    Ok(P10Result {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        git_commit: crate::report::git_commit(),
        cclsp_version: cclsp.as_deref().and_then(cclsp_version),
        min_free_mib: cfg.min_free_mib,
        languages,
        load_after: crate::report::loadavg(),
    })
}

/// The side-by-side table (Markdown, as docs/benchmarks.md records it).
pub fn print(r: &P10Result) {
    println!();
    println!(
        "P10: N sessions on one project — CodeFlow (N relays → one server) vs per-session cclsp"
    );
    println!(
        "| language server | sessions | side | total RSS (PSS) | language-server processes | all processes | Nth session's first answer |"
    );
    println!("|---|---|---|---|---|---|---|");
    for l in &r.languages {
        let sides: Vec<(&str, Option<&Side>)> = vec![
            ("CodeFlow", Some(&l.codeflow)),
            ("cclsp per session", l.cclsp.as_ref()),
        ];
        let mut counts: Vec<usize> = l
            .codeflow
            .snapshots
            .iter()
            .map(|s| s.sessions)
            .chain(
                l.cclsp
                    .iter()
                    .flat_map(|c| c.snapshots.iter().map(|s| s.sessions)),
            )
            .collect();
        counts.sort_unstable();
        counts.dedup();
        for n in counts {
            for (label, side) in &sides {
                let cell = side.and_then(|s| s.snapshots.iter().find(|x| x.sessions == n));
                match cell {
                    Some(s) => println!(
                        "| {} | {n} | {label} | {:.0} MiB ({:.0} MiB) | {} | {} | {:.0} ms |",
                        l.server,
                        s.rss_mib,
                        s.pss_mib,
                        s.language_servers,
                        s.processes,
                        s.nth_first_ms
                    ),
                    None => println!(
                        "| {} | {n} | {label} | — | — | — | {} |",
                        l.server,
                        side.and_then(|s| s.stopped.clone())
                            .or_else(|| l.cclsp_missing.clone())
                            .unwrap_or_else(|| "not measured at this count".into())
                    ),
                }
            }
        }
    }
    for l in &r.languages {
        for (label, side) in [("CodeFlow", Some(&l.codeflow)), ("cclsp", l.cclsp.as_ref())] {
            if let Some(reason) = side.and_then(|s| s.stopped.as_deref()) {
                println!("{} {label}: {reason}", l.language);
            }
        }
        if let Some(missing) = &l.cclsp_missing {
            println!("{}: per-session side MISSING: {missing}", l.language);
        }
    }
}
