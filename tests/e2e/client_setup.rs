//! `docs/clients.md` run as written, so the set-up lines cannot drift: the token command, the
//! Claude Code line (its options checked, the relay command after `--` run), both JSON blocks
//! started as an MCP client starts them and read by a real MCP client's config loader (the
//! Inspector's `--config`), both Inspector lines, and the Python SDK script — against one real
//! server with auth on and pylsp.
//!
//! Substituted, and why: `HOST` → `127.0.0.1` and port 3000 → the test server's port (a shared
//! machine may hold 3000); `/workspace/my-app` → a temporary project holding `app.py`;
//! `YOUR_TOKEN` and `${CODEFLOW_TOKEN}` → the token the page's own `codeflow-server token` line
//! printed. Programs run are the built binaries (`codeflow-client`, `codeflow-server`),
//! `mcp-inspector` and `python3`; only `claude` itself is not run (not installed here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use codeflow_e2e::doc_commands::{
    blocks, line_starting, path_with_binaries, python_project, shell_lines, spawn_entry, split,
    substitute,
};
use codeflow_e2e::{Relay, Server, TIMEOUT, binary};
use serde_json::{Value, json};

const DOC: &str = "docs/clients.md";
const SECRET: &str = "client-setup-secret-of-at-least-32-bytes";

/// The page's placeholders made concrete.
fn fix(text: &str, port: u16, root: &Path, token: &str) -> String {
    substitute(text, port, root).replace("YOUR_TOKEN", token)
}

/// A relay speaks for `my-app` at `root`, and pylsp's symbols of `app.py` come through it.
async fn assert_relay_works(relay: &Relay, root: &Path) {
    relay.initialize().await;
    let health = relay.tool("health_check", json!({})).await;
    assert_eq!(health["isError"], false, "{health}");
    let session = &health["structuredContent"]["session"];
    assert_eq!(session["project"], "my-app");
    assert_eq!(session["project_root"], root.to_string_lossy().as_ref());
    let reply = relay
        .call_within(
            json!("symbols"),
            "tools/call",
            json!({"name": "get_document_symbols", "arguments": {"file_path": "app.py"}}),
            Duration::from_secs(90),
        )
        .await;
    assert_eq!(reply["result"]["isError"], false, "{reply}");
    assert!(reply["result"].to_string().contains("greet"), "{reply}");
}

/// Runs a program with the built binaries on `PATH`, in `cwd`; returns its stdout.
async fn run(program: &str, args: &[String], env: &[(String, String)], cwd: &Path) -> String {
    let out = tokio::time::timeout(
        TIMEOUT * 4,
        tokio::process::Command::new(program)
            .args(args)
            .env_remove("CODEFLOW_TOKEN")
            .envs(env.iter().cloned())
            .env("PATH", path_with_binaries())
            .current_dir(cwd)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{program} finishes"))
    .unwrap_or_else(|e| panic!("cannot run {program}: {e} (scripts/test.sh installs it)"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?}\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The page's `codeflow-server token` line, run with the server's secret: the token it prints.
async fn mint_token(lines: &[String], cwd: &Path) -> String {
    let line = line_starting(lines, "codeflow-server token");
    let (env, program, args) = split(&line);
    assert!(env.is_empty());
    let mut env = env;
    env.push(("CODEFLOW_JWT_SECRET".into(), SECRET.into()));
    let out = run(binary(&program).to_str().unwrap(), &args, &env, cwd).await;
    let token = out.trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {out}");
    token
}

#[tokio::test]
async fn the_client_pages_commands_and_configurations_work_as_written() {
    let server = Server::start_with(&["--jwt-secret", SECRET], &[]).await;
    let port = server.port;
    let lines = shell_lines(DOC);
    let cwd = tempfile::tempdir().unwrap();
    let token = mint_token(&lines, cwd.path()).await;

    // Claude Code: `claude mcp add NAME [options] -- COMMAND ARGS`; the relay command runs.
    let (dir, root) = python_project("my-app");
    let claude = fix(
        &line_starting(&lines, "claude mcp add"),
        port,
        &root,
        &token,
    );
    let (_, program, args) = split(&claude);
    assert_eq!(program, "claude");
    assert_eq!(&args[..3], ["mcp", "add", "codeflow"], "{claude}");
    let dashdash = args
        .iter()
        .position(|a| a == "--")
        .expect("`--` before the command");
    let mut env = Vec::new();
    let mut options = args[3..dashdash].iter();
    while let Some(option) = options.next() {
        let value = options
            .next()
            .expect("every option of this line takes a value");
        match option.as_str() {
            "-e" | "--env" => {
                let (k, v) = value.split_once('=').expect("-e KEY=VALUE");
                env.push((k.to_owned(), v.to_owned()));
            }
            "-s" | "--scope" => assert!(["local", "project", "user"].contains(&value.as_str())),
            "-t" | "--transport" => assert_eq!(value, "stdio"),
            other => panic!("`claude mcp add` has no option {other}"),
        }
    }
    assert_eq!(args[dashdash + 1], "codeflow-client", "{claude}");
    let child = tokio::process::Command::new(binary("codeflow-client"))
        .args(&args[dashdash + 2..])
        .env_remove("CODEFLOW_TOKEN")
        .envs(env)
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert_relay_works(&Relay::from_child(child), &root).await;
    drop(dir);

    // The JSON blocks: `.mcp.json` (Claude Code, with `${CODEFLOW_TOKEN}`) and the Desktop form.
    let json_blocks = blocks(DOC, "json");
    assert_eq!(json_blocks.len(), 2, "{json_blocks:?}");
    for block in &json_blocks {
        let (_dir, root) = python_project("my-app");
        let config: Value = serde_json::from_str(block).expect("each JSON block parses");
        let entry = &config["mcpServers"]["codeflow"];
        let relay = spawn_entry(entry, &|s| fix(s, port, &root, &token), &|name| {
            assert_eq!(name, "CODEFLOW_TOKEN", "the test sets no other variable");
            token.clone()
        });
        assert_relay_works(&relay, &root).await;
    }

    // The Inspector: with the Desktop block saved as the file its first line names, and with
    // the relay's command line.
    let inspector: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("mcp-inspector"))
        .collect();
    assert_eq!(inspector.len(), 2, "{inspector:?}");
    for line in inspector {
        let (_dir, root) = python_project("my-app");
        std::fs::write(
            root.join("claude_desktop_config.json"),
            fix(&json_blocks[1], port, &root, &token),
        )
        .unwrap();
        let (env, program, args) = split(&fix(line, port, &root, &token));
        let out = run(&program, &args, &env, &root).await;
        let answer: Value = serde_json::from_str(&out).expect("the Inspector prints JSON");
        if line.contains("tools/list") {
            let tools = answer["tools"].as_array().expect("tools");
            assert!(
                tools.iter().any(|t| t["name"] == "get_document_symbols"),
                "{out}"
            );
        } else {
            assert_eq!(answer["isError"], false, "{out}");
            assert!(out.contains("greet"), "{out}");
        }
    }

    // The Python SDK script.
    let python = blocks(DOC, "python");
    assert_eq!(python.len(), 1, "{python:?}");
    let (_dir, root) = python_project("my-app");
    let script = root.join("client.py");
    std::fs::write(&script, fix(&python[0], port, &root, &token)).unwrap();
    let out = run(
        "python3",
        &[script.to_string_lossy().into_owned()],
        &[("CODEFLOW_TOKEN".into(), token.clone())],
        &root,
    )
    .await;
    assert!(out.contains("get_document_symbols"), "{out}");
    assert!(out.contains("function greet"), "{out}");
}
