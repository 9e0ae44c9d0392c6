//! Terminals end to end: a real bash on a PTY of the real server, through `/ws/terminal/{id}`:
//! type a command and read its output, resize, a full-screen program, a signal, reattach with
//! the scrollback, exit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use codeflow_e2e::Server;
use codeflow_e2e::terminal::{self, create};
use serde_json::json;

async fn server() -> Server {
    Server::start_with(&[], &[("CODEFLOW_TERMINAL__SHELL", "/bin/bash")]).await
}

#[tokio::test]
async fn a_shell_runs_commands_resizes_signals_and_reattaches_with_its_scrollback() {
    let server = server().await;
    let mut ws = terminal::project_session(&server, "web").await;
    let made = create(
        &mut ws,
        1,
        json!({"project": "web", "cols": 80, "rows": 24}),
    )
    .await;
    let id = made["id"].as_str().unwrap().to_owned();
    let url = made["url"].as_str().unwrap();
    assert_eq!(
        url,
        format!(
            "/ws/terminal/{id}?ticket={}",
            made["ticket"].as_str().unwrap()
        )
    );
    assert!(made["expiresAt"].as_u64().unwrap() > 0);
    let mut term = terminal::open(&terminal::address(&server, url), None)
        .await
        .unwrap();

    // A command and its output; the shell runs in the project's directory.
    term.run("echo hel\"\"lo-$((6*7))", "hello-42").await;
    let pwd = term.run("pwd; echo pw\"\"d-done", "pwd-done").await;
    assert!(pwd.contains("/web"), "{pwd}");

    // Resize: `stty size` says rows and columns.
    term.control(json!({"type": "resize", "cols": 101, "rows": 33}))
        .await;
    term.run("stty size", "33 101").await;

    // A full-screen program: vi switches to the alternate screen and back.
    let from = term.output.len();
    term.send(b"vi -u NONE /tmp/codeflow-terminal-e2e.txt\r")
        .await;
    // The alternate screen, and the file's name on the status line.
    term.until(from, "\x1b[?1049h").await;
    term.until(from, "[New File]").await;
    let typed = term.output.len();
    term.send(b"ihello from vi\x1b").await;
    term.until(typed, "hello from vi").await;
    term.send(b":q!\r").await;
    term.until(typed, "\x1b[?1049l").await;
    term.run("echo vi-\"\"gone", "vi-gone").await;

    // A signal reaches the foreground process group (as ^C would).
    let from = term.output.len();
    term.send(b"bash -c 'trap \"echo got-SIG\"\"INT; exit 0\" INT; sleep 30 & wait'\r")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    term.control(json!({"type": "signal", "name": "SIGINT"}))
        .await;
    term.until(from, "got-SIGINT").await;
    assert!(started.elapsed() < Duration::from_secs(10));
    // An unknown signal is refused on the socket, which stays open.
    term.control(json!({"type": "signal", "name": "SIGNOPE"}))
        .await;
    term.run("echo still-\"\"here", "still-here").await;
    assert!(
        term.controls
            .iter()
            .any(|c| c["type"] == "error" && c["message"].as_str().unwrap().contains("SIGNOPE")),
        "{:?}",
        term.controls
    );

    // Another viewer (reattach after a reload): the scrollback comes first.
    term.close().await;
    let list = ws
        .request(json!(2), "terminals/list", json!({"project": "web"}))
        .await;
    let listed = &list["result"]["terminals"][0];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(
        (listed["cols"].as_u64(), listed["rows"].as_u64()),
        (Some(101), Some(33))
    );
    assert_eq!(listed["exited"], false);
    let again = ws
        .request(json!(3), "terminals/attach", json!({"id": id}))
        .await;
    let url = again["result"]["url"].as_str().unwrap().to_owned();
    let mut back = terminal::open(&terminal::address(&server, &url), None)
        .await
        .unwrap();
    back.until(0, "hello-42").await;
    back.until(0, "still-here").await;
    // Two viewers see the same output.
    let other = ws
        .request(json!(4), "terminals/attach", json!({"id": id}))
        .await;
    let url = other["result"]["url"].as_str().unwrap().to_owned();
    let mut second = terminal::open(&terminal::address(&server, &url), None)
        .await
        .unwrap();
    second.until(0, "still-here").await;
    let seen = second.output.len();
    back.run("echo both-\"\"see", "both-see").await;
    second.until(seen, "both-see").await;

    // The shell exits: every viewer gets its code, then a normal close.
    back.send(b"exit 3\r").await;
    assert_eq!(back.until_closed().await, (Some(3), Some(1000)));
    assert_eq!(second.until_closed().await, (Some(3), Some(1000)));
}

#[tokio::test]
async fn a_command_terminal_runs_its_command_and_reports_its_exit() {
    let server = server().await;
    let mut ws = terminal::project_session(&server, "cmd").await;
    let made = create(
        &mut ws,
        1,
        json!({"project": "cmd", "cols": 40, "rows": 10, "command": "echo from-\"\"command; stty size; exit 7"}),
    )
    .await;
    let url = made["url"].as_str().unwrap();
    let mut term = terminal::open(&terminal::address(&server, url), None)
        .await
        .unwrap();
    let (code, close) = term.until_closed().await;
    let text = String::from_utf8_lossy(&term.output).into_owned();
    assert!(text.contains("from-command"), "{text:?}");
    assert!(text.contains("10 40"), "{text:?}");
    assert_eq!((code, close), (Some(7), Some(1000)));
    // An exited terminal is listed as such until its grace runs out.
    let list = ws
        .request(json!(2), "terminals/list", json!({"project": "cmd"}))
        .await;
    assert_eq!(list["result"]["terminals"][0]["exited"], true);
}

/// With `terminal.run_as_uid`, the shell runs as that user (and its primary group, its home),
/// not as the server's. Run as root, as the CI does; a server that is not root cannot switch
/// users and refuses to start with the reason.
#[tokio::test]
async fn a_terminal_runs_as_the_configured_user() {
    if !nix_is_root() {
        let out = std::process::Command::new(codeflow_e2e::binary("codeflow-server"))
            .args(["--port", "0"])
            .env("CODEFLOW_TERMINAL__RUN_AS_UID", "65534")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("needs the server to run as root"),
            "{stderr}"
        );
        return;
    }
    let server = Server::start_with(
        &[],
        &[
            ("CODEFLOW_TERMINAL__SHELL", "/bin/bash"),
            ("CODEFLOW_TERMINAL__RUN_AS_UID", "65534"),
        ],
    )
    .await;
    let mut ws = terminal::project_session(&server, "asuser").await;
    // The user must be able to enter the project's directory.
    let mut dir = server.data_dir.path().to_path_buf();
    for part in ["", "projects", "asuser"] {
        if !part.is_empty() {
            dir.push(part);
        }
        if dir.exists() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let reply = ws
        .request(
            json!(1),
            "terminals/create",
            json!({"project": "asuser", "cols": 80, "rows": 10,
                   "command": "echo \"who=$(id -u):$(id -g) home=$HOME\""}),
        )
        .await;
    let url = reply["result"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("terminals/create: {reply}"));
    let mut term = terminal::open(&terminal::address(&server, url), None)
        .await
        .unwrap();
    let (code, _) = term.until_closed().await;
    let text = String::from_utf8_lossy(&term.output).into_owned();
    assert!(
        text.contains("who=65534:65534 home=/nonexistent"),
        "{text:?}"
    );
    assert_eq!(code, Some(0));
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}
