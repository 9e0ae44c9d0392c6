//! A server that dies between starting the CLI and saving its process group leaves a run whose
//! pid nobody knows: the next start finds its processes by the run's marker
//! (`CODEFLOW_RUN_ID`) and kills them, grandchildren included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use codeflow_claude_executor::process::RUN_MARKER;
use codeflow_claude_executor::{Caller, EventSink, ExecError, Executor, ExecutorConfig, Need};
use serde_json::{Value, json};
use tokio::sync::mpsc;

fn mock() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/mock-claude/claude");
    path.canonicalize().unwrap().display().to_string()
}

struct Sink(mpsc::UnboundedSender<Value>);

impl EventSink for Sink {
    fn publish(&self, _: &str, event: Value) {
        let _ = self.0.send(event);
    }
}

struct Anyone;

impl Caller for Anyone {
    fn session_id(&self) -> &str {
        "s"
    }
    fn check(&self, _: Need, _: &str) -> Result<(), ExecError> {
        Ok(())
    }
}

fn config(dir: &std::path::Path) -> ExecutorConfig {
    ExecutorConfig {
        projects_root: dir.join("root"),
        state_dir: dir.join("state"),
        claude_cmd: mock(),
        ..ExecutorConfig::default()
    }
}

fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next())
            != Some("Z")
    })
}

/// Kills the stray group if the test fails before the executor does. (A system call, not
/// `kill -9 -PGID`: procps-ng 4.0.2's `kill` turns that into `kill(-1)`, every process.)
struct Reap(i32);

impl Drop for Reap {
    fn drop(&mut self) {
        if self.0 > 1 {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(self.0),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[tokio::test]
async fn a_run_whose_pid_was_never_saved_is_killed_on_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (tx, _rx) = mpsc::unbounded_channel();
        let exec = Executor::open(config(dir.path()), Arc::new(Sink(tx)))
            .await
            .unwrap();
        exec.call("projects/create", json!({"id": "p"}), &Anyone)
            .await
            .unwrap();
        exec.shutdown().await;
    }
    // What a server killed right after starting the CLI leaves: the run claimed on disk with
    // no process group, and the CLI (with a grandchild) running in its own group.
    let run_id = "0b7e4f7c-52a8-4c38-9d11-8f3c0d1f2a6e";
    let meta_path = dir.path().join("state/p/project.json");
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["status"] = json!("executing");
    meta["currentRun"] = json!({"runId": run_id, "pgid": 0, "startTicks": null, "startedAt": 1});
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let cwd = dir.path().join("root/p");
    let mut child = std::process::Command::new(mock())
        .args([
            "-p",
            "mock:hang mock:grandchild",
            "--output-format",
            "stream-json",
            "--verbose",
        ])
        .env(RUN_MARKER, run_id)
        .current_dir(&cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let leader = i64::from(child.id());
    let _reap = Reap(i32::try_from(leader).unwrap());
    let mut grandchild = None;
    for _ in 0..400 {
        if let Ok(text) = std::fs::read_to_string(cwd.join(".mock-grandchild.pid"))
            && let Ok(pid) = text.trim().parse::<i64>()
        {
            grandchild = Some(pid);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let grandchild = grandchild.expect("the mock started its grandchild");
    assert!(alive(leader) && alive(grandchild));

    let (tx, mut rx) = mpsc::unbounded_channel();
    let exec = Executor::open(config(dir.path()), Arc::new(Sink(tx)))
        .await
        .unwrap();
    let event = rx.try_recv().unwrap();
    assert_eq!(event["type"], "complete");
    assert_eq!(event["runId"], run_id);
    assert_eq!(event["reason"], "server restarted");
    for _ in 0..100 {
        if !alive(grandchild) && !alive(leader) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(grandchild), "the grandchild outlived the restart");
    assert!(!alive(leader), "the CLI outlived the restart");
    let _ = child.wait();
    let info = exec
        .call("projects/get", json!({"project": "p"}), &Anyone)
        .await
        .unwrap();
    assert_eq!(info["status"], "idle");
    exec.shutdown().await;
}
