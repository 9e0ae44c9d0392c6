//! The results: what ran where, the figures against the targets, the printed table.

use serde::Serialize;

use crate::p1::{P1Result, WorkloadResult};
use crate::p3::P3Result;
use crate::p4::P4Result;

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
    pub mem_total_kib: Option<u64>,
    pub load_before: Option<String>,
}

impl Machine {
    pub fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let mem_total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        });
        Self {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu,
            kernel,
            mem_total_kib,
            load_before: loadavg(),
        }
    }
}

pub fn loadavg() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub command: String,
    pub machine: Machine,
    pub git_commit: Option<String>,
    pub started_unix: u64,
    pub p1: Option<P1Result>,
    pub p3: Option<P3Result>,
    pub p4: Option<P4Result>,
    pub p5: Option<crate::p5::P5Result>,
    pub p6: Option<crate::p6::P6Result>,
    pub p7: Option<crate::p7::P7Result>,
    pub load_after: Option<String>,
}

/// One checked figure.
#[derive(Debug, Serialize)]
pub struct Row {
    pub id: &'static str,
    pub metric: String,
    pub codeflow: String,
    pub peer: String,
    pub ratio: String,
    pub target: String,
    /// "met", "MISSED", or "n/a" (the peer did not run).
    pub verdict: &'static str,
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "n/a",
    }
}

fn us(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

#[allow(clippy::cast_precision_loss)]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn rps(v: f64) -> String {
    format!("{v:.0} req/s")
}

fn p1_rows(rows: &mut Vec<Row>, p1: &P1Result) {
    let peer_ok = p1.peer.ok;
    let pairs: [(&str, &WorkloadResult, &WorkloadResult); 2] = [
        ("ping", &p1.codeflow.ping, &p1.peer.ping),
        (
            "tools/call health_check",
            &p1.codeflow.health_check,
            &p1.peer.health_check,
        ),
    ];
    for (label, cf, peer) in pairs {
        // (metric, codeflow, peer, absolute target, ratio target, lower is better)
        let figures = [
            ("p50", cf.p50_us, peer.p50_us, 150.0, 0.7, true),
            ("p99", cf.p99_us, peer.p99_us, 1000.0, 0.6, true),
            (
                "pipelined (100 in flight)",
                cf.rps,
                peer.rps,
                35_000.0,
                2.0,
                false,
            ),
        ];
        for (name, c, p, abs, rel, lower) in figures {
            let fmt = |v: f64| if lower { us(v) } else { rps(v) };
            let ratio = (peer_ok && p > 0.0).then(|| c / p);
            let abs_met = if lower { c <= abs } else { c >= abs };
            let rel_met = ratio.map(|r| if lower { r <= rel } else { r >= rel });
            let target = if lower {
                format!("≤ {}; ≤ {rel}× peer", fmt(abs))
            } else {
                format!("≥ {}; ≥ {rel}× peer", fmt(abs))
            };
            let met = match rel_met {
                Some(r) => Some(abs_met && r),
                None => Some(abs_met),
            };
            rows.push(Row {
                id: "P1",
                metric: format!("{label} {name}"),
                codeflow: fmt(c),
                peer: if peer_ok { fmt(p) } else { "—".into() },
                ratio: ratio.map_or_else(|| "—".into(), |r| format!("{r:.2}×")),
                target,
                verdict: verdict(met),
            });
        }
    }
}

fn p3_rows(rows: &mut Vec<Row>, p3: &P3Result) {
    let none = || "—".to_string();
    rows.push(Row {
        id: "P3",
        metric: "idle initialized sessions held".into(),
        codeflow: format!(
            "{} of {} (server reports {})",
            p3.sessions_opened,
            p3.sessions_requested,
            p3.server_sessions
                .map_or_else(|| "?".into(), |s| s.to_string())
        ),
        peer: none(),
        ratio: none(),
        target: "10000".into(),
        verdict: verdict(Some(
            p3.sessions_opened >= 10_000 && p3.failures == 0 && p3.closed_while_held == 0,
        )),
    });
    rows.push(Row {
        id: "P3",
        metric: "server RSS growth per session".into(),
        codeflow: format!("{:.1} KiB", p3.rss_per_session_kib),
        peer: none(),
        ratio: none(),
        target: "≤ 40 KiB".into(),
        verdict: verdict(Some(p3.rss_per_session_kib <= 40.0)),
    });
    rows.push(Row {
        id: "P3",
        metric: format!("handshakes/s ({} in flight)", p3.concurrency),
        codeflow: format!("{:.0}/s", p3.handshakes_per_sec),
        peer: none(),
        ratio: none(),
        target: "≥ 2000/s".into(),
        verdict: verdict(Some(p3.handshakes_per_sec >= 2000.0)),
    });
}

pub fn rows(results: &Results) -> Vec<Row> {
    let mut rows = Vec::new();
    if let Some(p1) = &results.p1 {
        p1_rows(&mut rows, p1);
    }
    if let Some(p4) = &results.p4 {
        rows.push(Row {
            id: "P4",
            metric: format!("one event to {} subscribers, p99 delivery", p4.subscribers),
            codeflow: format!(
                "{:.1} ms (p50 {:.1} ms, {}/{} delivered)",
                p4.p99_ms, p4.p50_ms, p4.deliveries, p4.expected_deliveries
            ),
            peer: "—".into(),
            ratio: "—".into(),
            target: "10,000 served, p99 ≤ 100 ms".into(),
            verdict: verdict(Some(
                p4.subscribers >= 10_000
                    && p4.deliveries == p4.expected_deliveries
                    && p4.p99_ms <= 100.0,
            )),
        });
    }
    if let Some(p3) = &results.p3 {
        p3_rows(&mut rows, p3);
    }
    rows.extend(results.p5.iter().flat_map(crate::p5::rows));
    rows.extend(results.p6.iter().flat_map(crate::p6::rows));
    rows.extend(results.p7.iter().flat_map(crate::p7::rows));
    rows
}

pub fn table(rows: &[Row], results: &Results) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let m = &results.machine;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "machine: {} cores, {}, kernel {}, load before {} / after {}",
        m.cores,
        m.cpu,
        m.kernel,
        m.load_before.as_deref().unwrap_or("?"),
        results.load_after.as_deref().unwrap_or("?")
    );
    if let Some(p1) = &results.p1 {
        let _ = writeln!(out, "P1 codeflow: {}", p1.codeflow.description);
        if p1.peer.ok {
            let _ = writeln!(out, "P1 peer:     {}", p1.peer.description);
        } else {
            let _ = writeln!(
                out,
                "P1 peer:     NOT MEASURED — {}",
                p1.peer.error.as_deref().unwrap_or("unknown reason")
            );
        }
        if p1.direct.ok {
            let d = &p1.direct;
            let c = &p1.codeflow;
            let _ = writeln!(
                out,
                "P1 direct:   {} — ping p50 {:.0} µs, health_check p50 {:.0} µs, pipelined {:.0} / {:.0} req/s; the relay adds {:.0} µs (ping) and {:.0} µs (health_check) at p50",
                d.description,
                d.ping.p50_us,
                d.health_check.p50_us,
                d.ping.rps,
                d.health_check.rps,
                c.ping.p50_us - d.ping.p50_us,
                c.health_check.p50_us - d.health_check.p50_us,
            );
        }
        for side in [&p1.codeflow, &p1.direct, &p1.peer] {
            if !side.cpu_us_per_request.is_empty() {
                let parts: Vec<String> = side
                    .cpu_us_per_request
                    .iter()
                    .map(|p| format!("{} {:.1} µs", p.process, p.cpu_us_per_request))
                    .collect();
                let _ = writeln!(
                    out,
                    "P1 CPU per request, {}: {}",
                    side.name,
                    parts.join(", ")
                );
            }
        }
        let _ = writeln!(
            out,
            "P1 pattern:  {} warm-up, then {} rounds × ({} sequential + {} pipelined with {} in flight) per workload",
            p1.warmup, p1.rounds, p1.requests_per_round, p1.pipelined_per_round, p1.window
        );
    }
    if let Some(p3) = &results.p3 {
        let _ = writeln!(
            out,
            "P3:          {} sessions over {} projects; RSS {} KiB → {} KiB (peak {} KiB) after {:.1} s settle; handshake p50 {:.2} ms p99 {:.2} ms; {} failed{}; {} closed while held",
            p3.sessions_requested,
            p3.projects,
            p3.rss_before_kib,
            p3.rss_after_kib,
            p3.hwm_after_kib,
            p3.settle_secs,
            p3.handshake_p50_ms,
            p3.handshake_p99_ms,
            p3.failures,
            p3.first_failure
                .as_deref()
                .map_or_else(String::new, |f| format!(" (first: {f})")),
            p3.closed_while_held
        );
        let slices: Vec<String> = p3
            .slices
            .iter()
            .map(|s| {
                format!(
                    "{}–{}: {:.0}/s",
                    s.sessions_from, s.sessions_to, s.handshakes_per_sec
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "P3 handshakes/s by slice: {}; CPU during handshakes: server {:.2} s, bench {:.2} s; server log output {:.1} MiB",
            slices.join(", "),
            p3.server_cpu_secs.unwrap_or(f64::NAN),
            p3.bench_cpu_secs.unwrap_or(f64::NAN),
            mib(p3.server_log_bytes)
        );
    }
    for line in [
        results.p5.as_ref().map(crate::p5::summary),
        results.p6.as_ref().map(crate::p6::summary),
        results.p7.as_ref().map(crate::p7::summary),
    ]
    .into_iter()
    .flatten()
    {
        let _ = writeln!(out, "{line}");
    }
    let headers = [
        "id", "metric", "codeflow", "peer", "ratio", "target", "verdict",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.id.to_string(),
                r.metric.clone(),
                r.codeflow.clone(),
                r.peer.clone(),
                r.ratio.clone(),
                r.target.clone(),
                r.verdict.to_string(),
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut String, cols: &[String]| {
        let mut s = String::new();
        for (c, w) in cols.iter().zip(widths) {
            let pad = w - c.chars().count();
            let _ = write!(s, "| {c}{} ", " ".repeat(pad));
        }
        let _ = writeln!(out, "{s}|");
    };
    let _ = writeln!(out);
    line(&mut out, &headers.map(String::from));
    line(&mut out, &widths.map(|w| "-".repeat(w)));
    for row in &cells {
        line(&mut out, row);
    }
    let _ = writeln!(out);
    out
}
