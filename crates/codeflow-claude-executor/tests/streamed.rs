//! Runs on a streamed project, with an in-process stand-in for the server's mirror and relay
//! (the real ones are tested end to end in tests/e2e/streamed_runs.rs): what is written back
//! and when, what is kept, and who may run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use codeflow_claude_executor::streamed::BoxFuture;
use codeflow_claude_executor::{
    Caller, ErrorKind, EventSink, ExecError, Executor, ExecutorConfig, FileChange, Need,
    StreamedFiles, WriteBackOutcome,
};
use parking_lot::Mutex;
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

struct Who {
    may_write: bool,
}

impl Caller for Who {
    fn session_id(&self) -> &str {
        "starter"
    }
    fn check(&self, need: Need, _: &str) -> Result<(), ExecError> {
        if need == Need::WriteFiles && !self.may_write {
            return Err(ExecError::new(ErrorKind::Forbidden, "no file:write"));
        }
        Ok(())
    }
}

/// The client's files in a directory; a write-back that writes them (or finds no session).
struct ClientDir {
    root: PathBuf,
    session_live: Mutex<bool>,
    written_by: Mutex<Vec<String>>,
}

impl StreamedFiles for ClientDir {
    fn available(&self, _: &str) -> bool {
        true
    }

    fn copy_out<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        dest: &'a Path,
    ) -> BoxFuture<'a, Result<usize, String>> {
        Box::pin(async move {
            codeflow_claude_executor::working_copy::copy_tree(&self.root, dest)
                .map_err(|e| e.to_string())
        })
    }

    fn write_back<'a>(
        &'a self,
        _: &'a str,
        preferred: &'a str,
        changes: &'a [FileChange],
    ) -> BoxFuture<'a, WriteBackOutcome> {
        Box::pin(async move {
            if !*self.session_live.lock() {
                return WriteBackOutcome::NoSession;
            }
            for c in changes {
                let path = self.root.join(&c.path);
                match &c.after {
                    Some(bytes) => std::fs::write(path, bytes).unwrap(),
                    None => std::fs::remove_file(path).unwrap(),
                }
            }
            self.written_by.lock().push(preferred.to_owned());
            WriteBackOutcome::Applied {
                session: preferred.to_owned(),
            }
        })
    }
}

struct Setup {
    exec: Arc<Executor>,
    events: mpsc::UnboundedReceiver<Value>,
    client: Arc<ClientDir>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let client_root = dir.path().join("client");
    std::fs::create_dir_all(&client_root).unwrap();
    std::fs::write(client_root.join("a.txt"), "a\n").unwrap();
    let config = ExecutorConfig {
        projects_root: dir.path().join("root"),
        state_dir: dir.path().join("state"),
        claude_cmd: mock(),
        kill_grace: Duration::from_millis(300),
        exit_grace: Duration::from_millis(500),
        ..ExecutorConfig::default()
    };
    let (tx, events) = mpsc::unbounded_channel();
    let exec = Executor::open(config, Arc::new(Sink(tx))).await.unwrap();
    let client = Arc::new(ClientDir {
        root: client_root,
        session_live: Mutex::new(true),
        written_by: Mutex::new(Vec::new()),
    });
    exec.set_streamed_files(client.clone());
    exec.call(
        "projects/create",
        json!({"id": "p", "streamed": true}),
        &Who { may_write: true },
    )
    .await
    .unwrap();
    Setup {
        exec,
        events,
        client,
        _dir: dir,
    }
}

impl Setup {
    async fn run(&mut self, prompt: &str) -> (String, Value) {
        let run = self
            .exec
            .call(
                "claude/execute",
                json!({"project": "p", "prompt": prompt}),
                &Who { may_write: true },
            )
            .await
            .unwrap()["runId"]
            .as_str()
            .unwrap()
            .to_owned();
        loop {
            let event = tokio::time::timeout(Duration::from_secs(20), self.events.recv())
                .await
                .unwrap()
                .unwrap();
            if event["type"] == "complete" && event["runId"] == run.as_str() {
                return (run, event);
            }
        }
    }

    async fn changes(&self, run: &str) -> Value {
        self.exec
            .call(
                "claude/changes",
                json!({"runId": run}),
                &Who { may_write: true },
            )
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_successful_run_is_written_back_through_the_session_that_started_it() {
    let mut s = setup().await;
    let (run, complete) = s.run("mock:no-record mock:edit=a.txt,b.txt").await;
    assert_eq!(complete["applied"], true, "{complete}");
    assert_eq!(*s.client.written_by.lock(), ["starter"]);
    assert_eq!(
        std::fs::read_to_string(s.client.root.join("b.txt")).unwrap(),
        "written by mock claude\n"
    );
    // Nothing of the run stays in its working copy; the record does.
    let changes = s.changes(&run).await;
    assert_eq!(
        changes["files"],
        json!([{"path": "a.txt", "action": "modified"}, {"path": "b.txt", "action": "created"}])
    );
    let info = s
        .exec
        .call(
            "projects/get",
            json!({"project": "p"}),
            &Who { may_write: true },
        )
        .await
        .unwrap();
    assert_eq!(info["streamed"], true);
    assert_eq!(info["path"], "");
}

#[tokio::test]
async fn a_failed_run_or_a_missing_session_keeps_the_changes_without_writing() {
    let mut s = setup().await;
    let (run, complete) = s.run("mock:no-record mock:edit=a.txt mock:error").await;
    assert_eq!(complete["success"], false);
    assert_eq!(complete["applied"], false, "{complete}");
    assert!(
        complete["writeBack"]
            .as_str()
            .unwrap()
            .contains("did not succeed"),
        "{complete}"
    );
    assert_eq!(
        std::fs::read_to_string(s.client.root.join("a.txt")).unwrap(),
        "a\n"
    );
    let diff = s.changes(&run).await["diff"].as_str().unwrap().to_owned();
    assert!(diff.contains("-a\n+written by mock claude\n"), "{diff}");

    *s.client.session_live.lock() = false;
    let (run, complete) = s.run("mock:no-record mock:edit=c.txt").await;
    assert_eq!(complete["success"], true);
    assert_eq!(complete["applied"], false);
    assert!(
        complete["writeBack"]
            .as_str()
            .unwrap()
            .contains("no live session"),
        "{complete}"
    );
    assert!(!s.client.root.join("c.txt").exists());
    assert_eq!(
        s.changes(&run).await["files"],
        json!([{"path": "c.txt", "action": "created"}])
    );
    assert!(s.client.written_by.lock().is_empty());
}

#[tokio::test]
async fn running_on_a_streamed_project_needs_the_right_to_write_its_files() {
    let s = setup().await;
    let e = s
        .exec
        .call(
            "claude/execute",
            json!({"project": "p", "prompt": "x"}),
            &Who { may_write: false },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Forbidden);
    // Unknown and malformed run ids.
    let e = s.changes_err("00000000-0000-0000-0000-000000000000").await;
    assert_eq!(e.kind, ErrorKind::NotFound);
    let e = s.changes_err("../../etc").await;
    assert_eq!(e.kind, ErrorKind::InvalidParams);
}

impl Setup {
    async fn changes_err(&self, run: &str) -> ExecError {
        self.exec
            .call(
                "claude/changes",
                json!({"runId": run}),
                &Who { may_write: true },
            )
            .await
            .unwrap_err()
    }
}

/// A server that dies during a streamed run: on the next start the run is closed, nothing is
/// written to the client, and what the run had changed is kept for `claude/changes`.
#[test]
fn a_streamed_run_cut_by_a_restart_keeps_its_changes_unwritten() {
    let dir = tempfile::tempdir().unwrap();
    let client_root = dir.path().join("client");
    std::fs::create_dir_all(&client_root).unwrap();
    std::fs::write(client_root.join("a.txt"), "a\n").unwrap();
    let config = ExecutorConfig {
        projects_root: dir.path().join("root"),
        state_dir: dir.path().join("state"),
        claude_cmd: mock(),
        ..ExecutorConfig::default()
    };
    let client = Arc::new(ClientDir {
        root: client_root.clone(),
        session_live: Mutex::new(true),
        written_by: Mutex::new(Vec::new()),
    });
    let who = Who { may_write: true };
    // The first server: its runtime is dropped mid-run, as a crash would end it.
    let first = tokio::runtime::Runtime::new().unwrap();
    let run = first.block_on(async {
        let (tx, mut events) = mpsc::unbounded_channel();
        let exec = Executor::open(config.clone(), Arc::new(Sink(tx)))
            .await
            .unwrap();
        exec.set_streamed_files(client.clone());
        exec.call("projects/create", json!({"id": "p", "streamed": true}), &who)
            .await
            .unwrap();
        let run = exec
            .call(
                "claude/execute",
                json!({"project": "p", "prompt": "mock:no-record mock:edit=a.txt mock:hang-after-result"}),
                &who,
            )
            .await
            .unwrap()["runId"]
            .as_str()
            .unwrap()
            .to_owned();
        loop {
            let event = tokio::time::timeout(Duration::from_secs(20), events.recv())
                .await
                .unwrap()
                .unwrap();
            if event["message"]["type"] == "result" {
                break;
            }
        }
        run
    });
    first.shutdown_background();

    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        let (tx, mut events) = mpsc::unbounded_channel();
        let exec = Executor::open(config, Arc::new(Sink(tx))).await.unwrap();
        exec.set_streamed_files(client.clone());
        let complete = events.try_recv().unwrap();
        assert_eq!(complete["runId"], run.as_str());
        assert_eq!(complete["reason"], "server restarted");
        assert_eq!(complete["applied"], false, "{complete}");
        assert_eq!(
            complete["changes"],
            json!([{"path": "a.txt", "action": "modified"}]),
            "{complete}"
        );
        assert_eq!(
            std::fs::read_to_string(client_root.join("a.txt")).unwrap(),
            "a\n"
        );
        assert!(client.written_by.lock().is_empty());
        let changes = exec
            .call("claude/changes", json!({"runId": run}), &who)
            .await
            .unwrap();
        assert!(
            changes["diff"]
                .as_str()
                .unwrap()
                .contains("-a\n+written by mock claude\n"),
            "{changes}"
        );
        exec.shutdown().await;
    });
}
