//! Chaos soak (target R5): many relays over several projects, behind nginx in front of three
//! instances sharing a Redis broker, doing reads (a language-server query, `health_check`) and
//! writes (`test_counter`, which counts how often each key ran) while the harness cuts relay
//! connections at random, kills language servers, and (in the last phase) kills an instance.
//!
//! Checked: every call is answered exactly once (none lost: each answer comes within the call
//! timeout; none duplicated: no relay sees a second answer), and no write ran twice (every
//! key's count on the session that ran it is at most one). Memory (R5: back within 10 % of its
//! baseline): each instance's resident size (VmRSS of the `codeflow-server` process alone; its
//! language servers are processes of their own, killed and restarted by the soak, and only
//! reported) after the measured load, against the baseline taken after a warm-up under the
//! same load and faults; both once remembered answers have expired, before the instance kill
//! (which legitimately moves projects onto the survivors).
//!
//! Bounded in time and count, loopback only. The CI size is small; the long run is by hand:
//!
//! ```text
//! CODEFLOW_SOAK_RELAYS=200 CODEFLOW_SOAK_PROJECTS=5 CODEFLOW_SOAK_SECS=600 \
//!   cargo test --release -p codeflow-e2e --test chaos -- --nocapture
//! ```
//!
//! (`CODEFLOW_SOAK_SEED` replays a run's random choices.) Figures go in `docs/benchmarks.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use codeflow_e2e::channels::TEST_ENV;
use codeflow_e2e::cluster::{Nginx, RedisServer};
use codeflow_e2e::{Relay, Server, TcpProxy};
use futures::StreamExt;
use futures::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// The wait after a load before memory is read: the resume grace (3 s) plus the time answers
/// are remembered past it (30 s), and a little.
const SETTLE: Duration = Duration::from_secs(35);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of a process, in KiB: (VmRSS, RssAnon, RssFile) from `/proc/<pid>/status`.
/// RssAnon is the heap (and stacks); RssFile the binary's and libraries' pages read so far.
fn rss_kib(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"), field("RssFile:"))
}

/// The language servers the instance `pid` started (its direct children running pylsp).
fn language_servers_of(pid: u32) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …: the comm may hold spaces, so split after its ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
        if ppid == Some(pid) && String::from_utf8_lossy(&cmdline).contains("pylsp") {
            found.push(child);
        }
    }
    found
}

/// What one call got.
#[derive(Debug)]
enum Outcome {
    /// Answered with a result; for a write, the executions its answer reported.
    Answered(Option<u64>),
    /// Answered with an error (its code and message).
    Failed(i64, String),
}

#[derive(Debug, Default)]
struct Tally {
    reads: u64,
    writes: u64,
    errors: BTreeMap<String, u64>,
    /// Keys of the writes answered with a result.
    written: Vec<String>,
    /// Writes answered "outcome unknown".
    unknown: u64,
}

/// One relay's load until `deadline`.
async fn load(index: usize, relay: &Relay, deadline: Instant, seed: u64) -> Tally {
    let mut rng = StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9e37_79b9));
    let mut tally = Tally::default();
    let mut seq = 0u64;
    while Instant::now() < deadline {
        seq += 1;
        let roll: f64 = rng.random();
        let (write, params) = if roll < 0.45 {
            let key = format!("r{index}-{seq}");
            let delay = rng.random_range(0..40u64);
            (
                Some(key.clone()),
                json!({"name": "test_counter", "arguments": {"key": key, "delay_ms": delay}}),
            )
        } else if roll < 0.7 {
            (
                None,
                json!({"name": "get_document_symbols", "arguments": {"file_path": "main.py"}}),
            )
        } else {
            (None, json!({"name": "health_check", "arguments": {}}))
        };
        let reply = relay.call("tools/call", params).await;
        let outcome = match (reply.get("result"), reply.get("error")) {
            (Some(result), _) => {
                Outcome::Answered(result["structuredContent"]["executions"].as_u64())
            }
            (None, Some(error)) => Outcome::Failed(
                error["code"].as_i64().unwrap_or(0),
                error["message"].as_str().unwrap_or_default().to_owned(),
            ),
            _ => panic!("neither result nor error: {reply}"),
        };
        match (&write, outcome) {
            (Some(key), Outcome::Answered(executions)) => {
                tally.writes += 1;
                assert_eq!(
                    executions,
                    Some(1),
                    "write {key} ran more than once: {reply}"
                );
                tally.written.push(key.clone());
            }
            (Some(_), Outcome::Failed(code, message)) => {
                tally.writes += 1;
                if message.starts_with("outcome unknown") {
                    tally.unknown += 1;
                } else {
                    *tally.errors.entry(format!("{code} {message}")).or_default() += 1;
                }
            }
            (None, Outcome::Answered(_)) => tally.reads += 1,
            (None, Outcome::Failed(code, message)) => {
                tally.reads += 1;
                *tally.errors.entry(format!("{code} {message}")).or_default() += 1;
            }
        }
    }
    tally
}

/// The faults until `deadline`: connection cuts and language-server kills, and one instance
/// kill at `kill_at` when given. Returns (cuts, language-server kills, instance kills).
async fn faults(
    proxies: &[TcpProxy],
    servers: &mut [Option<Server>],
    deadline: Instant,
    kill_at: Option<Instant>,
    seed: u64,
) -> (u64, u64, u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut cuts, mut lsp_kills, mut instance_kills) = (0, 0, 0);
    let mut kill_at = kill_at;
    while Instant::now() < deadline {
        let pause = rng.random_range(100..600u64);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if kill_at.is_some_and(|at| Instant::now() >= at) {
            kill_at = None;
            let alive: Vec<usize> = (0..servers.len())
                .filter(|&i| servers[i].is_some())
                .collect();
            if alive.len() > 1 {
                let victim = alive[rng.random_range(0..alive.len())];
                let mut dead = servers[victim].take().unwrap();
                dead.child.start_kill().unwrap();
                let _ = dead.child.wait().await;
                instance_kills += 1;
            }
            continue;
        }
        let cut = match fault_kinds() {
            (true, true) => rng.random_bool(0.8),
            (cuts_on, _) => cuts_on,
        };
        if cut {
            proxies[rng.random_range(0..proxies.len())].sever();
            cuts += 1;
        } else if fault_kinds().1 {
            let pids: Vec<i32> = servers
                .iter()
                .flatten()
                .flat_map(|s| language_servers_of(s.pid()))
                .collect();
            if !pids.is_empty() {
                let pid = pids[rng.random_range(0..pids.len())];
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                lsp_kills += 1;
            }
        }
    }
    (cuts, lsp_kills, instance_kills)
}

/// Which faults run: (connection cuts, language-server kills); `CODEFLOW_SOAK_FAULTS` is a
/// comma-separated subset of `cuts,lsp` (default both), to tell their effects apart.
fn fault_kinds() -> (bool, bool) {
    match std::env::var("CODEFLOW_SOAK_FAULTS") {
        Ok(v) => (v.contains("cuts"), v.contains("lsp")),
        Err(_) => (true, true),
    }
}

/// Reads back (and forgets) the count of every key in `written` on the relay that wrote it:
/// each must be at most one (0 when it ran on a session an instance kill took away). Returns
/// how many were exactly one.
async fn check_writes(relays: &[Relay], written: &[String]) -> usize {
    // (At most 256 peeks in flight: a long run writes hundreds of thousands of keys.)
    let peeks: Vec<Option<u64>> = futures::stream::iter(written.iter().map(|key| {
        // Keys carry the relay's index plus the phase's offset.
        let index: usize = key[1..key.find('-').unwrap()].parse().unwrap();
        let relay = &relays[index % relays.len()];
        async move {
            let args = json!({"key": key, "peek": true, "forget": true});
            let reply = relay
                .call(
                    "tools/call",
                    json!({"name": "test_counter", "arguments": args}),
                )
                .await;
            reply["result"]["structuredContent"]["executions"].as_u64()
        }
    }))
    .buffered(256)
    .collect()
    .await;
    for (key, count) in written.iter().zip(&peeks) {
        assert!(
            count.is_some_and(|c| c <= 1),
            "write {key}: {count:?} executions"
        );
    }
    peeks.iter().filter(|c| **c == Some(1)).count()
}

fn merge(into: &mut Tally, t: Tally) {
    into.reads += t.reads;
    into.writes += t.writes;
    into.unknown += t.unknown;
    into.written.extend(t.written);
    for (k, v) in t.errors {
        *into.errors.entry(k).or_default() += v;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_loses_duplicates_and_reruns_nothing() {
    let relays_n = setting("CODEFLOW_SOAK_RELAYS", 12) as usize;
    let projects_n = setting("CODEFLOW_SOAK_PROJECTS", 3).max(1) as usize;
    let secs = setting("CODEFLOW_SOAK_SECS", 20).max(4);
    let seed = setting(
        "CODEFLOW_SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1),
    );
    eprintln!("soak: {relays_n} relays × {projects_n} projects × {secs} s, seed {seed}");

    let redis = RedisServer::start().await;
    let cluster_url = redis.url();
    let mut servers = Vec::new();
    // A short resume grace: answers kept for re-sends are released `grace + 30 s` after the
    // load (`codeflow-session/src/memory.rs`), when memory is compared.
    let env = [TEST_ENV[0], ("CODEFLOW_RESUME_GRACE_SECS", "3")];
    for _ in 0..3 {
        servers.push(Some(
            Server::start_with(&["--cluster-url", &cluster_url], &env).await,
        ));
    }
    let ports: Vec<u16> = servers.iter().flatten().map(|s| s.port).collect();
    let nginx = Nginx::start(&ports).await;
    let work = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for p in 0..projects_n {
        let dir = work.path().join(format!("soak{p}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("main.py"),
            format!("def soak{p}():\n    return {p}\n"),
        )
        .unwrap();
        dirs.push(dir);
    }

    // Every relay behind a proxy of its own, which the harness cuts.
    let mut proxies = Vec::new();
    let mut relays = Vec::new();
    for i in 0..relays_n {
        let proxy = TcpProxy::start(nginx.port).await;
        let project = i % projects_n;
        let relay = Relay::spawn(&proxy.url(), &format!("soak{project}"), &dirs[project], &[]);
        proxies.push(proxy);
        relays.push(relay);
    }
    join_all(relays.iter().map(|r| async move {
        r.initialize().await;
        let tools = r.call("tools/list", json!({})).await;
        assert!(tools["result"]["tools"].is_array(), "{tools}");
        // Warm up: each project's language server runs before the baseline.
        let warm = r
            .tool("get_document_symbols", json!({"file_path": "main.py"}))
            .await;
        assert_eq!(warm["isError"], false, "{warm}");
    }))
    .await;
    let pids: Vec<u32> = servers.iter().flatten().map(Server::pid).collect();
    let started = Instant::now();
    let mut total = Tally::default();
    let (mut cuts, mut lsp_kills, mut instance_kills) = (0, 0, 0);
    let mut recounted = 0;

    // Three phases: a warm-up under the same load and faults (the allocator and caches reach
    // their working size), the measured load, and the load with an instance killed a quarter
    // of the way in. Memory: the baseline after the warm-up, compared after the measured load.
    let mut baseline = Vec::new();
    let mut after = Vec::new();
    for (phase, share) in [(0u64, 4u32), (1, 2), (2, 4)] {
        let length = Duration::from_secs(secs) / share;
        let deadline = Instant::now() + length;
        let kill_at = (phase == 2).then(|| Instant::now() + length / 4);
        let offset = phase as usize * relays_n;
        let (tallies, (c, l, k)) = tokio::join!(
            join_all(
                relays
                    .iter()
                    .enumerate()
                    .map(|(i, r)| load(i + offset, r, deadline, seed))
            ),
            faults(&proxies, &mut servers, deadline, kill_at, seed ^ phase)
        );
        let mut tally = Tally::default();
        for t in tallies {
            merge(&mut tally, t);
        }
        // No write ran twice; the counter forgets the keys it was asked about, so the next
        // memory reading is the server's, not the test tool's.
        recounted += check_writes(&relays, &tally.written).await;
        merge(&mut total, tally);
        cuts += c;
        lsp_kills += l;
        instance_kills += k;
        if phase < 2 {
            // The load is over: what it allocated is released (sessions stay), remembered
            // answers once past their time.
            tokio::time::sleep(SETTLE).await;
            let rss: Vec<(u64, u64, u64)> = pids.iter().map(|&p| rss_kib(p)).collect();
            eprintln!(
                "soak: after phase {phase}, per instance (VmRSS, RssAnon, RssFile) KiB {rss:?}"
            );
            if phase == 0 {
                baseline = rss;
            } else {
                after = rss;
            }
        }
    }
    // None duplicated: no relay saw a second answer.
    for (i, relay) in relays.iter().enumerate() {
        let strays = relay.strays.lock().unwrap().clone();
        assert!(strays.is_empty(), "relay {i}: second answers {strays:?}");
    }
    // Memory: each instance's VmRSS after the measured load against its baseline (R5: within
    // 10 %).
    let growth: Vec<f64> = baseline
        .iter()
        .zip(&after)
        .map(|(b, a)| (a.0 as f64 / b.0.max(1) as f64 - 1.0) * 100.0)
        .collect();
    let summary: Value = json!({
        "relays": relays_n, "projects": projects_n, "secs": secs, "seed": seed,
        "reads": total.reads, "writes": total.writes,
        "writes_confirmed_once": recounted,
        "writes_outcome_unknown": total.unknown,
        "errors": total.errors,
        "cuts": cuts, "language_server_kills": lsp_kills, "instance_kills": instance_kills,
        "rss_kib_baseline": baseline, "rss_kib_after_load": after,
        "rss_growth_percent": growth,
        "elapsed_secs": started.elapsed().as_secs_f64(),
    });
    eprintln!("soak summary: {summary}");
    assert!(
        total.reads + total.writes > relays_n as u64,
        "the soak did nothing"
    );
    for (i, g) in growth.iter().enumerate() {
        assert!(
            *g <= 10.0,
            "instance {i}: resident memory {g:+.1} % after the load (baseline {:?}, after {:?} KiB), R5 allows 10 %",
            baseline[i],
            after[i]
        );
    }
    drop(nginx);
    drop(redis);
}
