//! P7: a second session on a warm project. Relay A initializes on a small Python project and
//! calls `get_document_symbols` (pylsp starts); relay B, a separate process on the same project
//! and root, makes the same call. The bench checks that no new language-server process starts
//! (`codeflow_lsp_starts_total` and the server's child processes), and compares B's first
//! answer with A's, and warm latencies of both sessions, interleaved.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::json;

use crate::flows::{self, Relay, Server, metric};
use crate::{Env, stats};

#[derive(Clone, Debug)]
pub struct P7Config {
    pub rounds: usize,
    pub calls_per_round: usize,
}

#[derive(Debug, Serialize)]
pub struct P7Result {
    pub tool: String,
    pub a_first_ms: f64,
    pub b_first_ms: f64,
    /// A's first answer minus B's: what the warm pool saved B.
    pub saved_ms: f64,
    pub lsp_starts_before_a: f64,
    pub lsp_starts_after_a: f64,
    pub lsp_starts_after_b: f64,
    pub lsp_servers_running_after_b: f64,
    pub server_children_after_a: Vec<(u32, String)>,
    pub server_children_after_b: Vec<(u32, String)>,
    pub new_lsp_process: bool,
    pub a_warm_p50_ms: f64,
    pub b_warm_p50_ms: f64,
    pub a_warm_p99_ms: f64,
    pub b_warm_p99_ms: f64,
    pub a_warm_mean_ms: f64,
    pub b_warm_mean_ms: f64,
    /// B's warm p50 minus A's (the second session's pool overhead).
    pub pool_overhead_ms: f64,
    pub samples_per_session: usize,
}

fn children(server: &Server) -> Vec<(u32, String)> {
    flows::descendants(server.guard.pid())
}

pub async fn run(env: &Env, cfg: &P7Config) -> Result<P7Result> {
    let root = env.scratch.join("p7-root");
    std::fs::create_dir_all(root.join("app"))?;
    std::fs::write(root.join("app/__init__.py"), "")?;
    std::fs::write(
        root.join("app/models.py"),
        "class User:\n    def __init__(self, name):\n        self.name = name\n\n    def greet(self):\n        return f\"hello {self.name}\"\n\n\ndef make_user(name):\n    return User(name)\n",
    )?;
    std::fs::write(
        root.join("main.py"),
        "from app.models import make_user, User\n\n\ndef run(name):\n    user = make_user(name)\n    return user.greet()\n\n\nclass Runner:\n    def start(self):\n        return run(\"x\")\n\n\nif __name__ == \"__main__\":\n    print(run(\"world\"))\n",
    )?;
    let file = root.join("main.py").display().to_string();
    let tool = "get_document_symbols";
    let args = json!({"file_path": file});
    let call_limit = Duration::from_secs(60);

    eprintln!("P7: server, relay A, first {tool} (pylsp starts)");
    let server = Server::start(env, "p7", &[]).await?;
    let mut a = Relay::spawn(env, "p7-a", &server.url(), "p7", &root, &[])?;
    a.agent.initialize().await?;
    a.agent.tool("health_check", json!({}), call_limit).await?;
    let lsp_starts_before_a = metric(&server.metrics().await?, "codeflow_lsp_starts_total");
    let t = Instant::now();
    let first_a = a.agent.tool(tool, args.clone(), call_limit).await?;
    let a_first_ms = flows::ms(t.elapsed());
    if first_a["symbols"].as_array().is_none_or(Vec::is_empty) {
        bail!("{tool} on main.py returned no symbols: {first_a}");
    }
    let lsp_starts_after_a = metric(&server.metrics().await?, "codeflow_lsp_starts_total");
    let server_children_after_a = children(&server);
    // A few warm calls on A before B arrives, as an agent would have made.
    for _ in 0..10 {
        a.agent.tool(tool, args.clone(), call_limit).await?;
    }

    eprintln!("P7: relay B on the same project, same call");
    let mut b = Relay::spawn(env, "p7-b", &server.url(), "p7", &root, &[])?;
    b.agent.initialize().await?;
    b.agent.tool("health_check", json!({}), call_limit).await?;
    let t = Instant::now();
    let first_b = b.agent.tool(tool, args.clone(), call_limit).await?;
    let b_first_ms = flows::ms(t.elapsed());
    if first_b["symbols"] != first_a["symbols"] {
        bail!("B's answer differs from A's: {first_b} vs {first_a}");
    }
    let after_b = server.metrics().await?;
    let lsp_starts_after_b = metric(&after_b, "codeflow_lsp_starts_total");
    let lsp_servers_running_after_b = metric(&after_b, "codeflow_lsp_servers_running");
    let server_children_after_b = children(&server);
    let pids_a: Vec<u32> = server_children_after_a.iter().map(|(p, _)| *p).collect();
    let new_lsp_process = lsp_starts_after_b > lsp_starts_after_a
        || server_children_after_b
            .iter()
            .any(|(p, _)| !pids_a.contains(p));

    eprintln!(
        "P7: warm calls, {} rounds × {} per session, interleaved",
        cfg.rounds, cfg.calls_per_round
    );
    for _ in 0..10 {
        b.agent.tool(tool, args.clone(), call_limit).await?;
    }
    let mut sa = Vec::new();
    let mut sb = Vec::new();
    for round in 0..cfg.rounds {
        // Alternate which session goes first, so drift falls on both.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let (relay, out) = if side == 0 {
                (&mut a, &mut sa)
            } else {
                (&mut b, &mut sb)
            };
            for _ in 0..cfg.calls_per_round {
                let t = Instant::now();
                relay.agent.tool(tool, args.clone(), call_limit).await?;
                out.push(flows::nanos(t.elapsed()));
            }
        }
    }
    let a_sum = stats::Summary::of(&mut sa);
    let b_sum = stats::Summary::of(&mut sb);
    drop(b);
    drop(a);
    Ok(P7Result {
        tool: tool.into(),
        a_first_ms,
        b_first_ms,
        saved_ms: a_first_ms - b_first_ms,
        lsp_starts_before_a,
        lsp_starts_after_a,
        lsp_starts_after_b,
        lsp_servers_running_after_b,
        server_children_after_a,
        server_children_after_b,
        new_lsp_process,
        a_warm_p50_ms: a_sum.p50_us / 1000.0,
        b_warm_p50_ms: b_sum.p50_us / 1000.0,
        a_warm_p99_ms: a_sum.p99_us / 1000.0,
        b_warm_p99_ms: b_sum.p99_us / 1000.0,
        a_warm_mean_ms: a_sum.mean_us / 1000.0,
        b_warm_mean_ms: b_sum.mean_us / 1000.0,
        pool_overhead_ms: (b_sum.p50_us - a_sum.p50_us) / 1000.0,
        samples_per_session: a_sum.count,
    })
}

pub fn rows(p7: &P7Result) -> Vec<crate::report::Row> {
    use crate::report::Row;
    let none = || "—".to_string();
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    vec![
        Row {
            id: "P7",
            metric: format!("second session's first {} answer", p7.tool),
            codeflow: format!(
                "B {:.1} ms vs A {:.0} ms (saved {:.0} ms); LSP starts {} → {}",
                p7.b_first_ms,
                p7.a_first_ms,
                p7.saved_ms,
                p7.lsp_starts_after_a,
                p7.lsp_starts_after_b
            ),
            peer: "claim: 200–1000 ms saved".into(),
            ratio: none(),
            target: "no new language-server process".into(),
            verdict: verdict(!p7.new_lsp_process && p7.lsp_starts_after_a > p7.lsp_starts_before_a),
        },
        Row {
            id: "P7",
            metric: "pool overhead: B warm p50 − A warm p50".into(),
            codeflow: format!(
                "{:+.3} ms (B {:.2} ms, A {:.2} ms)",
                p7.pool_overhead_ms, p7.b_warm_p50_ms, p7.a_warm_p50_ms
            ),
            peer: none(),
            ratio: none(),
            target: "≤ 1 ms".into(),
            verdict: verdict(p7.pool_overhead_ms <= 1.0),
        },
    ]
}

pub fn summary(p7: &P7Result) -> String {
    format!(
        "P7:          {} on main.py; A first {:.1} ms, B first {:.1} ms; warm p50/p99/mean A {:.2}/{:.2}/{:.2} ms, B {:.2}/{:.2}/{:.2} ms over {} calls each; lsp starts {}→{}→{} (running {}); server children after A {:?}, after B {:?}",
        p7.tool,
        p7.a_first_ms,
        p7.b_first_ms,
        p7.a_warm_p50_ms,
        p7.a_warm_p99_ms,
        p7.a_warm_mean_ms,
        p7.b_warm_p50_ms,
        p7.b_warm_p99_ms,
        p7.b_warm_mean_ms,
        p7.samples_per_session,
        p7.lsp_starts_before_a,
        p7.lsp_starts_after_a,
        p7.lsp_starts_after_b,
        p7.lsp_servers_running_after_b,
        p7.server_children_after_a,
        p7.server_children_after_b,
    )
}
