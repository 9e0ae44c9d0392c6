//! The README's own commands, read from the README and run as written, so they cannot drift:
//! the server command, the relay command of the Claude Code line (twice: two containers of one
//! project), the `check` line, and the MCP Inspector lines; and `examples/mcp.json` (Claude
//! Code's project MCP configuration) as Claude Code would start it.
//!
//! What is substituted, and why: `HOST` → `127.0.0.1` (a placeholder); port 3000 → a free port,
//! set for the server through `CODEFLOW_PORT` (another program on a shared machine may hold
//! 3000); `/workspace/my-app` → a temporary project; `cargo run --release -p NAME` → the
//! already built binary NAME (the test does not rebuild in release). Everything else —
//! subcommands, flags, values, environment variables — is the README's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;

use codeflow_e2e::deploy::repo_root;
use codeflow_e2e::doc_commands::{
    line_starting, path_with_binaries, python_project, spawn_entry, split, substitute,
};
use codeflow_e2e::{Relay, TIMEOUT, binary, free_port};
use serde_json::{Value, json};

/// `cargo run [--release] -p NAME [-- ARGS]` → (the built NAME, ARGS).
fn cargo_run(line: &str) -> (PathBuf, Vec<String>) {
    let (env, program, args) = split(line);
    assert!(env.is_empty());
    assert_eq!(program, "cargo");
    assert_eq!(args[0], "run", "{line}");
    let package = args
        .iter()
        .position(|a| a == "-p")
        .map(|i| args[i + 1].clone())
        .expect("-p NAME");
    let rest = args
        .iter()
        .position(|a| a == "--")
        .map(|i| args[i + 1..].to_vec())
        .unwrap_or_default();
    (binary(&package), rest)
}

fn project(name: &str) -> (tempfile::TempDir, PathBuf) {
    python_project(name)
}

#[tokio::test]
async fn the_readmes_commands_work_as_written() {
    let lines = codeflow_e2e::doc_commands::shell_lines("README.md");

    // The server, in a fresh working directory: its data goes to ./.codeflow there.
    let (server_bin, server_args) = cargo_run(&line_starting(&lines, "cargo run"));
    assert!(server_bin.ends_with("codeflow-server"));
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = tokio::process::Command::new(&server_bin)
        .args(&server_args)
        .current_dir(cwd.path())
        .env("CODEFLOW_PORT", port.to_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(
        codeflow_e2e::becomes_healthy(port, TIMEOUT).await,
        "the README's server command starts a server"
    );
    assert!(
        cwd.path().join(".codeflow").is_dir(),
        "data in ./.codeflow, as the README says"
    );

    // The relay of the Claude Code line: everything after `--`, in two containers.
    let claude = line_starting(&lines, "claude mcp add");
    let (_, program, args) = split(&claude);
    assert_eq!(program, "claude");
    assert_eq!(&args[..3], ["mcp", "add", "codeflow"], "{claude}");
    assert_eq!(args[3], "--", "claude mcp add NAME -- COMMAND: {claude}");
    let relay_line = args[4..].join(" ");
    let mut relays = Vec::new();
    for _ in 0..2 {
        let (dir, root) = project("my-app");
        let (env, program, args) = split(&substitute(&relay_line, port, &root));
        assert_eq!(program, "codeflow-client");
        let child = tokio::process::Command::new(binary(&program))
            .args(&args)
            .envs(env)
            .env_remove("CODEFLOW_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let relay = Relay::from_child(child);
        relay.initialize().await;
        relays.push((relay, root, dir));
    }
    for (relay, root, _) in &relays {
        let health = relay.tool("health_check", json!({})).await;
        assert_eq!(health["isError"], false, "{health}");
        let session = &health["structuredContent"]["session"];
        assert_eq!(session["project"], "my-app");
        assert_eq!(session["project_root"], root.to_string_lossy().as_ref());
        // A language server's first answer may take long on a busy machine.
        let reply = relay
            .call_within(
                json!("symbols"),
                "tools/call",
                json!({"name": "get_document_symbols", "arguments": {"file_path": "app.py"}}),
                std::time::Duration::from_secs(90),
            )
            .await;
        let symbols = &reply["result"];
        assert_eq!(symbols["isError"], false, "{reply}");
        assert!(symbols.to_string().contains("greet"), "{symbols}");
    }

    // The check line.
    let (_dir, root) = project("my-app");
    let check = substitute(&line_starting(&lines, "codeflow-client check"), port, &root);
    let (env, program, args) = split(&check);
    let out = tokio::process::Command::new(binary(&program))
        .args(&args)
        .envs(env)
        .env_remove("CODEFLOW_TOKEN")
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{check}: {said}");
    assert!(said.contains("handshake accepted"), "{said}");

    // The MCP Inspector lines (its own CLI, run with the relay on PATH).
    let inspector: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("mcp-inspector"))
        .collect();
    assert_eq!(inspector.len(), 2, "{inspector:?}");
    for line in inspector {
        let (_dir, root) = project("demo");
        let (env, program, args) = split(&substitute(line, port, &root));
        assert_eq!(program, "mcp-inspector");
        let out = tokio::time::timeout(
            TIMEOUT * 3,
            tokio::process::Command::new(&program)
                .args(&args)
                .envs(env)
                .env("PATH", path_with_binaries())
                .env_remove("CODEFLOW_TOKEN")
                .current_dir(&root)
                .output(),
        )
        .await
        .expect("the Inspector finishes")
        .unwrap_or_else(|e| {
            panic!(
                "cannot run mcp-inspector ({e}): `npm install -g @modelcontextprotocol/inspector@0.15.0` (scripts/test.sh does)"
            )
        });
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{line}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: Value = serde_json::from_str(&stdout).expect("the Inspector prints JSON");
        if line.contains("tools/list") {
            let tools = answer["tools"].as_array().expect("tools");
            assert!(
                tools.iter().any(|t| t["name"] == "health_check"),
                "{stdout}"
            );
        } else {
            assert_eq!(answer["isError"], false, "{stdout}");
            assert_eq!(answer["structuredContent"]["session"]["project"], "demo");
        }
    }
}

/// `examples/mcp.json`, the `.mcp.json` Claude Code reads: its command, arguments and
/// environment (with `${VAR}` expanded from the environment, as Claude Code does) start a relay
/// that works against a server with auth on. Substituted: the example host and port, and the
/// project directory.
#[tokio::test]
async fn the_example_mcp_json_starts_a_working_relay() {
    let text = std::fs::read_to_string(repo_root().join("examples/mcp.json")).unwrap();
    let config: Value = serde_json::from_str(&text).expect("mcp.json is JSON");
    let server_config = &config["mcpServers"]["codeflow"];
    let secret = "mcp-json-secret-that-is-at-least-32-bytes";
    let server =
        codeflow_e2e::Server::start_with(&["--jwt-secret", secret, "--require-auth"], &[]).await;
    let (_dir, root) = project("my-app");
    let token = codeflow_e2e::token(secret, json!(["my-app"]), 3600);

    let server_host = format!("127.0.0.1:{}", server.port);
    let relay = spawn_entry(
        server_config,
        &|a| {
            substitute(
                &a.replace("codeflow.internal:3000", &server_host),
                server.port,
                &root,
            )
        },
        &|name| match name {
            "CODEFLOW_TOKEN" => token.clone(),
            other => panic!("mcp.json expands ${{{other}}}, which this test does not provide"),
        },
    );
    relay.initialize().await;
    let health = relay.tool("health_check", json!({})).await;
    assert_eq!(health["isError"], false, "{health}");
    assert_eq!(health["structuredContent"]["session"]["project"], "my-app");
    assert_eq!(
        health["structuredContent"]["session"]["project_root"],
        root.to_string_lossy().as_ref()
    );
}
