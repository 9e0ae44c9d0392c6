//! The operations files: the Grafana dashboard and the Prometheus alert rules name only series
//! a real server exports. The test drives a server through what makes each series appear
//! (tool calls, a sync, a file change, a tool error, a resume, a refused token, a rate-limited
//! flood, a slow reader cut off), then reads its `/metrics` and checks every series the two
//! files name — and every label value they match on — is there. `promtool` (from Debian's
//! `prometheus` package) checks the rules' syntax and runs their unit tests
//! (`deploy/prometheus/codeflow-alerts.test.yml`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use codeflow_e2e::channels::{publish, subscribe};
use codeflow_e2e::deploy::repo_root;
use codeflow_e2e::{Next, Relay, Server, TcpProxy, Ws, eventually, http_get};
use serde_json::{Value, json};

/// Series Prometheus records itself for every target; not the server's.
const PROMETHEUS_OWN: &[&str] = &["up"];

/// PromQL words that are not series names.
const PROMQL_WORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "predict_linear",
    "histogram_quantile",
    "absent",
    "absent_over_time",
    "abs",
    "ceil",
    "floor",
    "round",
    "clamp_min",
    "clamp_max",
    "label_replace",
    "label_join",
    "sum_over_time",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "changes",
    "resets",
    "time",
    "vector",
    "scalar",
    "sort",
    "sort_desc",
    "humanize",
    "inf",
    "nan",
];

/// One series reference in an expression: its name and its `label="value"` matchers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesRef {
    name: String,
    matchers: Vec<(String, String)>,
}

/// The series an expression names, with their equality matchers. A small reader of PromQL's
/// lexical shape: identifiers that are not functions, keywords, label lists (`by (…)`), range
/// selectors (`[5m]`) or inside a matcher block.
fn series_in(expr: &str) -> Vec<SeriesRef> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut after_grouping = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            let end = chars[i + 1..].iter().position(|&d| d == c).unwrap() + i + 1;
            i = end + 1;
            continue;
        }
        if c == '[' {
            i += chars[i..].iter().position(|&d| d == ']').unwrap() + 1;
            continue;
        }
        if c == '(' && after_grouping {
            // `by (a, b)`: label names, not series.
            i += chars[i..].iter().position(|&d| d == ')').unwrap() + 1;
            after_grouping = false;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let next = chars.get(j).copied();
            let lower = word.to_ascii_lowercase();
            if [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&lower.as_str())
            {
                after_grouping = true;
                continue;
            }
            if next == Some('(') || PROMQL_WORDS.contains(&lower.as_str()) {
                continue;
            }
            // A number's exponent or unit (`1e3`, `5m`) never starts a word here: digits
            // are skipped below.
            let mut matchers = Vec::new();
            if next == Some('{') {
                let end = chars[j..].iter().position(|&d| d == '}').unwrap() + j;
                let block: String = chars[j + 1..end].iter().collect();
                for m in block.split(',') {
                    if let Some((k, v)) = m.split_once('=')
                        && !k.ends_with('!')
                        && !v.starts_with('~')
                    {
                        matchers.push((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()));
                    }
                }
                i = end + 1;
            }
            out.push(SeriesRef {
                name: word,
                matchers,
            });
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        i += 1;
    }
    out
}

/// Every `expr` in a JSON document (the dashboard's panels and targets, at any depth).
fn exprs_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "expr" {
                    out.push(v.as_str().expect("expr is a string").to_owned());
                } else {
                    exprs_in(v, out);
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| exprs_in(v, out)),
        _ => {}
    }
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo_root().join("deploy/grafana/codeflow-dashboard.json"))
        .unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

fn alert_rules() -> Value {
    let text =
        std::fs::read_to_string(repo_root().join("deploy/prometheus/codeflow-alerts.yml")).unwrap();
    serde_norway::from_str(&text).expect("the rules are YAML")
}

/// The series an exposition exports: name → the label sets of its samples.
fn exported(text: &str) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let mut out: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (series, _) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect();
        out.entry(name.to_owned()).or_default().push(labels);
    }
    out
}

#[test]
fn the_expression_reader_finds_series_and_matchers() {
    let found = series_in(
        r#"sum by (instance, language) (increase(codeflow_lsp_crashes_total[10m])) >= 3 or max by (project) (codeflow_x{kind="slow_reader", a!="b"}) / codeflow_y > 0.5e3"#,
    );
    let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["codeflow_lsp_crashes_total", "codeflow_x", "codeflow_y"]
    );
    assert_eq!(
        found[1].matchers,
        [("kind".to_owned(), "slow_reader".to_owned())]
    );
}

#[test]
fn the_dashboard_and_rules_are_well_formed() {
    let dashboard = dashboard();
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "ids are unique"
        );
        for k in ["h", "w", "x", "y"] {
            assert!(panel["gridPos"][k].is_u64(), "gridPos.{k}: {panel}");
        }
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
            assert!(!panel["targets"].as_array().unwrap().is_empty());
        }
    }
    // The issue's list: sessions, projects, language servers by state and restarts, call
    // latency by tool, sync bytes, queue cuts, rate-limit refusals.
    let mut exprs = Vec::new();
    exprs_in(&dashboard, &mut exprs);
    let all = exprs.join("\n");
    for needed in [
        "codeflow_sessions",
        "codeflow_projects",
        "sum by (state) (codeflow_lsp_servers)",
        "codeflow_lsp_restarts_total",
        "codeflow_tool_duration_seconds",
        "codeflow_sync_fetched_bytes_total",
        r#"codeflow_errors_total{kind="slow_reader"}"#,
        r#"codeflow_errors_total{kind="rate_limited"}"#,
    ] {
        assert!(all.contains(needed), "the dashboard shows {needed}");
    }

    let rules = alert_rules();
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("alert name");
            assert!(alerts.insert(name.to_owned()), "{name} once");
            assert!(rule["expr"].as_str().is_some());
            assert!(
                ["warning", "critical"].contains(&rule["labels"]["severity"].as_str().unwrap()),
                "{name} has a severity"
            );
            for k in ["summary", "description"] {
                assert!(rule["annotations"][k].as_str().is_some(), "{name}.{k}");
            }
        }
    }
    // The failures an operator must act on.
    for needed in [
        "CodeFlowLanguageServerCrashLooping",
        "CodeFlowSlowReadersCut",
        "CodeFlowSyncStuck",
        "CodeFlowDataDirFilling",
    ] {
        assert!(alerts.contains(needed), "alert {needed}");
    }

    // The rules' syntax, then their unit tests: each alert fires on its condition, and not
    // without it.
    for args in [
        ["check", "rules", "codeflow-alerts.yml"],
        ["test", "rules", "codeflow-alerts.test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(repo_root().join("deploy/prometheus"))
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run promtool ({e}): `apt-get install prometheus` (scripts/test.sh does)"
                )
            });
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_the_dashboard_and_alerts_name_is_exported() {
    let secret = "operations-test-secret-at-least-32-bytes";
    let server = Server::start_with(
        &["--jwt-secret", secret],
        &[
            // A secret means tokens are required; the relay below is anonymous on purpose.
            (
                "CODEFLOW_ANONYMOUS_RIGHTS",
                "file:read file:write lsp:query claude:execute projects:manage",
            ),
            ("CODEFLOW_TEST_TOOLS", "true"),
            ("CODEFLOW_OUTBOUND_QUEUE", "64"),
            ("CODEFLOW_RATE_LIMIT_PER_SECOND", "200"),
            ("CODEFLOW_RATE_LIMIT_BURST", "200"),
        ],
    )
    .await;
    let port = server.port;

    // A relay (through a proxy a resume can be forced with) on a small Python project.
    let proxy = TcpProxy::start(port).await;
    let root = tempfile::tempdir().unwrap();
    std::fs::write(
        root.path().join("app.py"),
        "def greet(name):\n    return name\n",
    )
    .unwrap();
    let relay = Relay::spawn(&proxy.url(), "ops", root.path(), &[]);
    relay.initialize().await;
    // A language server's first answer may take long on a busy machine.
    let reply = relay
        .call_within(
            json!("symbols"),
            "tools/call",
            json!({"name": "get_document_symbols", "arguments": {"file_path": "app.py"}}),
            Duration::from_secs(90),
        )
        .await;
    assert_eq!(reply["result"]["isError"], false, "{reply}");
    std::fs::write(root.path().join("more.py"), "X = 1\n").unwrap();
    let failed = relay
        .tool("get_document_symbols", json!({"file_path": "missing.py"}))
        .await;
    assert_eq!(failed["isError"], true, "{failed}");
    proxy.sever();
    let health = relay.tool("health_check", json!({})).await;
    assert_eq!(health["isError"], false, "{health}");

    // A refused token.
    let refused = Ws::connect_with_token(&server.url(), Some("not-a-token")).await;
    assert!(refused.is_err(), "a bad bearer token is refused");

    // A rate-limited flood from one session: requests past the per-session rate are refused
    // with -32004 (and `retryAfterMs`), each refusal counted.
    let mut flood = Ws::connect(&server.url()).await;
    flood.initialize("ops-flood", "/flood").await;
    // In batches under the outbound queue (64 here), so the session is never a slow reader.
    let sent = 600;
    let mut refused = 0;
    for batch in 0..sent / 30 {
        for n in 0..30 {
            flood
                .send_json(
                    json!({"jsonrpc": "2.0", "id": 10_000 + batch * 30 + n, "method": "ping", "params": {}}),
                )
                .await;
        }
        for _ in 0..30 {
            match flood.next().await {
                Next::Json(v) if v["error"]["code"] == -32004 => {
                    assert!(v["error"]["data"]["retryAfterMs"].is_u64(), "{v}");
                    refused += 1;
                }
                Next::Json(_) => {}
                Next::Closed(code) => panic!("the flooding session was closed ({code:?})"),
            }
        }
    }
    assert!(refused > 0, "none of {sent} pings was rate-limited");

    // A slow reader cut off.
    let mut slow = Ws::connect(&server.url()).await;
    slow.initialize("ops-slow", "/slow").await;
    subscribe(&mut slow, 1, json!({"channel": "search"})).await;
    let mut publisher = Ws::connect(&server.url()).await;
    publisher.initialize("ops-slow", "/slow-pub").await;
    publish(&mut publisher, 1, "search", 2000, 16 * 1024).await;

    // The sampled gauges refresh every 5 s.
    let metrics_text = || async { http_get(port, "/metrics").await.unwrap().1 };
    let expected = [
        "kind=\"slow_reader\"",
        "kind=\"rate_limited\"",
        "kind=\"auth\"",
        "codeflow_projects",
        "codeflow_resumes_total",
        "codeflow_file_changes_total",
        "codeflow_tool_errors_total",
    ];
    eventually(Duration::from_secs(20), || async {
        let text = metrics_text().await;
        expected.iter().all(|e| text.contains(e))
    })
    .await;
    let text = metrics_text().await;
    let missing: Vec<&&str> = expected.iter().filter(|e| !text.contains(**e)).collect();
    assert!(
        missing.is_empty(),
        "not in /metrics after the events: {missing:?}"
    );
    let exported = exported(&text);

    let mut named = Vec::new();
    let mut exprs = Vec::new();
    exprs_in(&dashboard(), &mut exprs);
    for group in alert_rules()["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            exprs.push(rule["expr"].as_str().unwrap().to_owned());
        }
    }
    for expr in &exprs {
        named.extend(series_in(expr));
    }
    assert!(named.len() > 20, "{named:?}");
    named.sort();
    named.dedup();
    for series in named {
        if PROMETHEUS_OWN.contains(&series.name.as_str()) {
            continue;
        }
        let samples = exported.get(&series.name).unwrap_or_else(|| {
            panic!(
                "{} is named by the dashboard or the alerts but not exported by the server; it exports {:?}",
                series.name,
                exported.keys().collect::<Vec<_>>()
            )
        });
        for (label, value) in &series.matchers {
            if label == "job" || label == "instance" {
                continue; // added by Prometheus at scrape time
            }
            assert!(
                samples.iter().any(|s| s.get(label) == Some(value)),
                "{}{{{label}=\"{value}\"}} is not exported: {samples:?}",
                series.name
            );
        }
    }
}

/// The token recipe of `docs/operations.md` ("Tokens"), run as written (with a real secret for
/// `...`, and the built binaries first on `PATH`), mints a token the server accepts for its
/// project and refuses for another.
#[tokio::test]
async fn the_token_recipe_of_the_operations_page_works() {
    let page = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    let section = page.split("## Tokens").nth(1).expect("a Tokens section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a sh block in Tokens");
    let secret = "recipe-secret-that-is-at-least-32-bytes";
    let command = block
        .strip_prefix("CODEFLOW_JWT_SECRET=... ")
        .unwrap_or_else(|| {
            panic!("the recipe is `CODEFLOW_JWT_SECRET=... codeflow-server token …`: {block}")
        });
    let bin_dir = codeflow_e2e::binary("codeflow-server")
        .parent()
        .expect("target dir")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", command])
        .env("CODEFLOW_JWT_SECRET", secret)
        .env("PATH", path)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "the recipe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let server = Server::start_with(&["--jwt-secret", secret, "--require-auth"], &[]).await;
    let check = |project: &'static str| {
        let token = token.clone();
        let url = server.url();
        async move {
            let root = tempfile::tempdir().unwrap();
            tokio::process::Command::new(codeflow_e2e::binary("codeflow-client"))
                .args(["check", "--server", &url, "--project", project, "--root"])
                .arg(root.path())
                .env("CODEFLOW_TOKEN", token)
                .output()
                .await
                .unwrap()
        }
    };
    let ok = check("frontend-app").await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let other = check("backend-api").await;
    assert!(!other.status.success());
    assert!(
        String::from_utf8_lossy(&other.stdout).contains("does not grant project"),
        "{}",
        String::from_utf8_lossy(&other.stdout)
    );
}
