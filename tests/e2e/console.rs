//! The web console (`GET /ui`) end to end: the real server with auth on, a real relay streaming
//! a Python project (so pylsp runs for it), the mock `claude` CLI, and Debian's Chromium driven
//! by `tests/browser/console.mjs` (playwright-core over CDP). The script signs in with a token,
//! sees the project and its language server, runs the mock CLI and checks its lines in order and
//! its `complete`, cancels a run, reloads mid-run and sees nothing lost, opens a terminal, checks
//! that the token for one project shows nothing of another, and screenshots each page into
//! `target/ui-screenshots/` (`docs/ui/` with `CODEFLOW_UPDATE_SCREENSHOTS=1`).
//!
//! `the_console_in_firefox` runs a shorter walk in Firefox (`tests/browser/firefox.mjs`).
//! Without the browsers or the scripts' `node_modules` (scripts/test.sh installs them) these
//! tests fail and say what to install; `status/projects` is also checked over a plain socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use codeflow_e2e::{Relay, Server, TcpProxy, Ws, http_get};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const SECRET: &str = "console-test-secret-0123456789abcdef";
const EVERY_RIGHT: &str =
    "file:read file:write lsp:query claude:execute projects:manage terminal:open";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn token(projects: Value, scope: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "sub": "console-e2e", "iss": "codeflow", "aud": "codeflow-clients",
        "exp": now + 3600, "projects": projects, "scope": scope,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn start_server() -> Server {
    let mock = repo().join("tests/mock-claude/claude");
    Server::start_with(
        &[],
        &[
            ("CODEFLOW_JWT_SECRET", SECRET),
            ("CODEFLOW_CLAUDE_CMD", mock.to_str().unwrap()),
            ("CODEFLOW_EXEC_KILL_GRACE_MS", "300"),
            ("CODEFLOW_EXEC_EXIT_GRACE_SECS", "1"),
        ],
    )
    .await
}

async fn client(server: &Server, project: &str, token: &str) -> Ws {
    let mut ws = Ws::connect(&server.url()).await;
    let reply = ws
        .request(
            json!("init"),
            "initialize",
            json!({
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "console-e2e", "version": "1"},
                "project": project, "projectRoot": "/console-e2e", "token": token,
            }),
        )
        .await;
    assert!(reply.get("result").is_some(), "initialize: {reply}");
    ws
}

async fn call(ws: &mut Ws, id: i64, method: &str, params: Value) -> Value {
    let reply = ws.request(json!(id), method, params).await;
    reply
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("{method} failed: {reply}"))
}

/// A Python project streamed by a relay, with pylsp started by one diagnostics call.
async fn streamed_python_project(server: &Server, project: &str, root: &Path) -> Relay {
    std::fs::write(
        root.join("app.py"),
        "import os\n\n\ndef greet(name):\n    return 'hello ' + nam\n",
    )
    .unwrap();
    let relay_token = token(json!([project]), "file:read file:write lsp:query");
    let relay = Relay::spawn(&server.url(), project, root, &["--token", &relay_token]);
    relay.initialize().await;
    relay.settle().await;
    let path = root.join("app.py");
    let reply = relay
        .call_within(
            json!("diag"),
            "tools/call",
            json!({"name": "get_diagnostics", "arguments": {"file_path": path.to_str().unwrap()}}),
            Duration::from_secs(90),
        )
        .await;
    assert!(reply.get("result").is_some(), "get_diagnostics: {reply}");
    relay
}

#[tokio::test]
async fn status_projects_shows_only_the_tokens_projects() {
    let server = start_server().await;
    let dir = tempfile::tempdir().unwrap();
    let _relay = streamed_python_project(&server, "alpha", dir.path()).await;
    let both = token(json!(["alpha", "beta"]), EVERY_RIGHT);
    let mut admin = client(&server, "beta", &both).await;
    call(&mut admin, 1, "projects/create", json!({"id": "beta"})).await;

    // Any right will do (none is needed beyond the project grant): a read-only token.
    let mut reader = client(&server, "alpha", &token(json!(["alpha"]), "file:read")).await;
    let status = call(&mut reader, 2, "status/projects", json!({})).await;
    let projects = status["projects"].as_array().unwrap();
    assert_eq!(projects.len(), 1, "{status}");
    let alpha = &projects[0];
    assert_eq!(alpha["id"], "alpha");
    assert_eq!(alpha["status"], "connected");
    let sessions = alpha["sessions"].as_array().unwrap();
    assert!(
        sessions
            .iter()
            .any(|s| s["fileStream"] == true && s["attached"] == true),
        "the relay's session: {status}"
    );
    assert!(sessions.iter().any(|s| s["you"] == true), "{status}");
    assert!(
        sessions
            .iter()
            .all(|s| s["id"].as_str().unwrap().len() == 8),
        "session ids are shown as prefixes only: {status}"
    );
    let servers = alpha["languageServers"].as_array().unwrap();
    let pylsp = servers
        .iter()
        .find(|s| s["server"] == "pylsp")
        .expect("pylsp");
    assert_eq!(pylsp["state"], "running", "{status}");
    assert!(pylsp["pid"].as_u64().is_some(), "{status}");
    assert!(
        pylsp["memoryBytes"].as_u64().unwrap() > 1_000_000,
        "{status}"
    );
    assert_eq!(pylsp["restarts"], 0);
    let sync = &alpha["mirror"]["sync"];
    assert_eq!(alpha["mirror"]["files"], 1, "{status}");
    assert_eq!(sync["syncing"], false, "{status}");
    assert_eq!(sync["last"]["ok"], true, "{status}");
    assert_eq!(sync["last"]["summary"]["fetched"], 1, "{status}");
    assert!(!status.to_string().contains("beta"), "{status}");

    // The token for both sees both; beta is a managed (server-side) project.
    let status = call(&mut admin, 3, "status/projects", json!({})).await;
    let ids: Vec<&str> = status["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alpha", "beta"], "{status}");
    assert_eq!(
        status["projects"][1]["managed"]["status"], "idle",
        "{status}"
    );
    assert_eq!(status["projects"][1]["mirror"], Value::Null, "{status}");
}

#[tokio::test]
async fn the_console_is_served_from_the_binary() {
    let server = start_server().await;
    let (status, page) = http_get(server.port, "/ui").await.unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("<title>CodeFlow console</title>"), "{page}");
    let (status, script) = http_get(server.port, "/ui/js/rpc.js").await.unwrap();
    assert_eq!(status, 200);
    assert!(script.contains("backoffDelay"));
    assert_eq!(http_get(server.port, "/ui/nope.js").await.unwrap().0, 404);
    assert_eq!(
        http_get(server.port, "/ui/../Cargo.toml").await.unwrap().0,
        404
    );
    // /ws takes the console's own origin (host and port of the request), and no other.
    let upgrade = |origin: String| {
        let url = server.url();
        async move {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            let mut request = url.into_client_request().unwrap();
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
            tokio_tungstenite::connect_async(request).await.map(|_| ())
        }
    };
    assert!(
        upgrade(format!("http://127.0.0.1:{}", server.port))
            .await
            .is_ok()
    );
    for other in [
        format!("http://127.0.0.1:{}", server.port + 1),
        format!("http://evil.example:{}", server.port),
    ] {
        match upgrade(other.clone()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{other}")
            }
            result => panic!("{other}: expected 403, got {result:?}"),
        }
    }
}

#[tokio::test]
async fn the_console_in_a_real_browser() {
    let browser_dir = repo().join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no Chromium at {chromium}: install Debian's chromium (scripts/test.sh does) or set CHROMIUM"
    );
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "tests/browser has no node_modules: run `npm ci` there (scripts/test.sh does)"
    );
    let server = start_server().await;
    let dir = tempfile::tempdir().unwrap();
    let _relay = streamed_python_project(&server, "alpha", dir.path()).await;
    let mut admin = client(
        &server,
        "alpha",
        &token(json!(["alpha", "beta", "gamma"]), EVERY_RIGHT),
    )
    .await;
    call(
        &mut admin,
        1,
        "projects/create",
        json!({"id": "alpha", "streamed": true}),
    )
    .await;
    call(&mut admin, 2, "projects/create", json!({"id": "beta"})).await;
    // Terminals open in a server-side project's directory.
    call(&mut admin, 5, "projects/create", json!({"id": "gamma"})).await;
    // Something of beta's that must not show up for alpha's token.
    call(
        &mut admin,
        3,
        "claude/execute",
        json!({"project": "beta", "prompt": "beta secret mock:no-record"}),
    )
    .await;

    // The browser reaches the server through a proxy the test can cut (a network blip).
    let proxy = TcpProxy::start(server.port).await;
    // Screenshots go to target/ui-screenshots (kept as CI artifacts); with
    // CODEFLOW_UPDATE_SCREENSHOTS=1 they replace the ones in docs/ui/.
    let shots = if std::env::var_os("CODEFLOW_UPDATE_SCREENSHOTS").is_some() {
        repo().join("docs/ui")
    } else {
        repo().join("target/ui-screenshots")
    };
    std::fs::create_dir_all(&shots).unwrap();
    let mut node = tokio::process::Command::new("node")
        .arg("console.mjs")
        .current_dir(&browser_dir)
        .env("CONSOLE_URL", format!("http://127.0.0.1:{}/ui", proxy.port))
        .env(
            "TOKEN_A",
            token(json!(["alpha", "gamma", "epsilon"]), EVERY_RIGHT),
        )
        .env("PROJECT_A", "alpha")
        .env("PROJECT_B", "beta")
        .env("PROJECT_T", "gamma")
        .env("PROJECT_NEW", "epsilon")
        .env("TOKEN_READ", token(json!(["alpha"]), "file:read"))
        .env("SHOTS_DIR", &shots)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node (scripts/test.sh installs Node.js's packages for tests/browser)");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut stdout = String::new();
    let script = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            eprintln!("[browser] {line}");
            if line.starts_with("blip:") {
                proxy.sever();
            }
            stdout.push_str(&line);
            stdout.push('\n');
        }
        node.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(240), script)
        .await
        .expect("the browser test did not finish within 240 s");
    assert!(
        status.success(),
        "the browser test failed (its stderr is above):\n{stdout}"
    );
    assert!(stdout.contains("ok: every step passed"), "{stdout}");
    for page in ["projects", "project", "service"] {
        assert!(shots.join(format!("{page}.png")).exists(), "{page}.png");
    }

    assert!(
        proxy.accepted() > 2,
        "the console reconnected through the proxy after the blip"
    );

    // What the browser did, seen from the server: its four runs, one cancelled.
    let history = call(
        &mut admin,
        4,
        "projects/history",
        json!({"project": "alpha", "limit": 1000}),
    )
    .await;
    let completes: Vec<&Value> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "run.complete")
        .map(|e| &e["payload"])
        .collect();
    assert_eq!(completes.len(), 4, "{history}");
    assert_eq!(completes[0]["success"], true);
    assert_eq!(completes[0]["applied"], true, "the edits reached the relay");
    assert_eq!(completes[1]["reason"], "cancelled");
    assert_eq!(completes[2]["success"], true);
    assert_eq!(completes[3]["success"], true);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "written by mock claude\n"
    );
}

/// The same page in Firefox (Debian's firefox-esr, driven by puppeteer-core over WebDriver
/// BiDi, `tests/browser/firefox.mjs`): sign in, the projects page, a run with a reload in the
/// middle, another project refused, the service page.
#[tokio::test]
async fn the_console_in_firefox() {
    let browser_dir = repo().join("tests/browser");
    let firefox = std::env::var("FIREFOX").unwrap_or_else(|_| "/usr/bin/firefox".into());
    assert!(
        Path::new(&firefox).exists(),
        "no Firefox at {firefox}: install Debian's firefox-esr (scripts/test.sh does) or set FIREFOX"
    );
    assert!(
        browser_dir.join("node_modules/puppeteer-core").exists(),
        "tests/browser has no node_modules: run `npm ci` there (scripts/test.sh does)"
    );
    let server = start_server().await;
    let mut admin = client(&server, "ff", &token(json!(["ff", "beta"]), EVERY_RIGHT)).await;
    call(&mut admin, 1, "projects/create", json!({"id": "ff"})).await;
    call(&mut admin, 2, "projects/create", json!({"id": "beta"})).await;
    let output = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("node")
            .arg("firefox.mjs")
            .current_dir(&browser_dir)
            .env(
                "CONSOLE_URL",
                format!("http://127.0.0.1:{}/ui", server.port),
            )
            .env("TOKEN_A", token(json!(["ff"]), EVERY_RIGHT))
            .env("PROJECT_A", "ff")
            .env("PROJECT_B", "beta")
            .env("FIREFOX", &firefox)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the Firefox test did not finish within 180 s")
    .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "the Firefox test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok: every step passed"), "{stdout}");
}
