//! Runs against the mock `claude` (tests/mock-claude/claude): streaming, one `complete` per
//! run, stopping whole process groups, watchdogs, bad output, argv fidelity, restart recovery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use codeflow_claude_executor::{
    Caller, ErrorKind, EventSink, ExecError, Executor, ExecutorConfig, Need,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

fn mock() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/mock-claude/claude");
    path.canonicalize().unwrap().display().to_string()
}

struct Sink(mpsc::UnboundedSender<(String, Value)>);

impl EventSink for Sink {
    fn publish(&self, project: &str, event: Value) {
        let _ = self.0.send((project.to_owned(), event));
    }
}

struct Anyone;

impl Caller for Anyone {
    fn session_id(&self) -> &str {
        "test-session"
    }
    fn check(&self, _: Need, _: &str) -> Result<(), ExecError> {
        Ok(())
    }
}

struct Harness {
    exec: Arc<Executor>,
    events: mpsc::UnboundedReceiver<(String, Value)>,
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn config(dir: &std::path::Path) -> ExecutorConfig {
    ExecutorConfig {
        projects_root: dir.join("root"),
        state_dir: dir.join("state"),
        claude_cmd: mock(),
        kill_grace: Duration::from_millis(300),
        exit_grace: Duration::from_millis(500),
        ..ExecutorConfig::default()
    }
}

async fn harness_with(f: impl FnOnce(&mut ExecutorConfig)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    f(&mut config);
    let (tx, events) = mpsc::unbounded_channel();
    let exec = Executor::open(config, Arc::new(Sink(tx))).await.unwrap();
    let root = dir.path().join("root").canonicalize().unwrap();
    Harness {
        exec,
        events,
        _dir: dir,
        root,
    }
}

impl Harness {
    async fn call(&self, method: &str, params: Value) -> Result<Value, ExecError> {
        self.exec.call(method, params, &Anyone).await
    }

    async fn create(&self, id: &str) {
        self.call("projects/create", json!({"id": id}))
            .await
            .unwrap();
    }

    async fn execute(&self, project: &str, prompt: &str) -> String {
        let r = self
            .call(
                "claude/execute",
                json!({"project": project, "prompt": prompt}),
            )
            .await
            .unwrap();
        r["runId"].as_str().unwrap().to_owned()
    }

    /// Events of `run` up to and including its `complete`.
    async fn until_complete(&mut self, run: &str) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let (_, e) = tokio::time::timeout(Duration::from_secs(30), self.events.recv())
                .await
                .expect("run did not complete in time")
                .expect("sink closed");
            if e["runId"] != run {
                continue;
            }
            let done = e["type"] == "complete";
            out.push(e);
            if done {
                // Exactly one complete: nothing else for this run follows.
                tokio::time::sleep(Duration::from_millis(200)).await;
                while let Ok((_, more)) = self.events.try_recv() {
                    assert_ne!(more["runId"], run, "event after complete: {more}");
                }
                return out;
            }
        }
    }

    async fn next_output(&mut self, run: &str) -> Value {
        loop {
            let (_, e) = tokio::time::timeout(Duration::from_secs(20), self.events.recv())
                .await
                .expect("no event")
                .expect("sink closed");
            if e["runId"] == run && e["type"] == "output" {
                return e;
            }
        }
    }
}

fn pid_alive(pid: i32) -> bool {
    // A zombie is dead for our purposes; /proc/<pid>/stat state `Z`.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_run_streams_every_line_and_completes_once() {
    let mut h = harness_with(|_| {}).await;
    h.create("p").await;
    let run = h.execute("p", "hello mock:lines=5").await;
    let events = h.until_complete(&run).await;
    assert_eq!(events[0]["type"], "started");
    let outputs: Vec<&Value> = events.iter().filter(|e| e["type"] == "output").collect();
    // init + 5 assistant + result
    assert_eq!(outputs.len(), 7, "{events:#?}");
    for (i, e) in outputs.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1, "in order");
    }
    assert_eq!(outputs[0]["message"]["subtype"], "init");
    assert_eq!(outputs[6]["message"]["type"], "result");
    let complete = events.last().unwrap();
    assert_eq!(complete["success"], true, "{complete}");
    assert_eq!(complete["aborted"], false);
    assert_eq!(complete["exitCode"], 0);
    assert_eq!(complete["reason"], "completed");
    assert_eq!(complete["costUsd"], 0.0123);
    assert!(complete["durationMs"].as_u64().is_some());
    let conversation = outputs[0]["message"]["session_id"].as_str().unwrap();
    assert_eq!(complete["conversationId"], conversation);
    let info = h
        .call("projects/get", json!({"project": "p"}))
        .await
        .unwrap();
    assert_eq!(info["status"], "idle");
    assert_eq!(info["conversationId"], conversation);

    // resume: true passes the conversation id back with --resume.
    let run = h
        .call(
            "claude/execute",
            json!({"project": "p", "prompt": "again", "resume": true}),
        )
        .await
        .unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    h.until_complete(&run).await;
    let call: Value =
        serde_json::from_slice(&std::fs::read(h.root.join("p/.mock-claude-call.json")).unwrap())
            .unwrap();
    let argv: Vec<&str> = call["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(argv[argv.len() - 2..], ["--resume", conversation]);
}

#[tokio::test]
async fn the_prompt_reaches_the_cli_byte_for_byte_with_stdin_closed_and_env_filtered() {
    let mut h = harness_with(|c| c.env_remove = vec!["HOME".into(), "LANG*".into()]).await;
    h.create("p").await;
    let prompt = "it's \"quoted\" $HOME `id` $(rm -rf /) ; | & > < * ? ~ \\ \n second line\t tab 'single' ünïcødé 🚀 --resume -p";
    let run = h.execute("p", prompt).await;
    let events = h.until_complete(&run).await;
    assert_eq!(events.last().unwrap()["success"], true);
    let call: Value =
        serde_json::from_slice(&std::fs::read(h.root.join("p/.mock-claude-call.json")).unwrap())
            .unwrap();
    assert_eq!(call["prompt"], prompt);
    assert_eq!(
        call["argv"],
        json!(["-p", prompt, "--output-format", "stream-json", "--verbose"])
    );
    assert_eq!(call["stdinEof"], true);
    let env: Vec<&str> = call["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        !env.iter().any(|k| *k == "HOME"
            || k.starts_with("LANG")
            || k.starts_with("CLAUDECODE")
            || (k.starts_with("CODEFLOW_") && *k != "CODEFLOW_RUN_ID")),
        "{env:?}"
    );
    assert!(env.contains(&"PATH"));
    // Its own process group.
    assert_eq!(call["pid"], call["pgid"]);
}

#[tokio::test]
async fn resource_limits_apply_to_the_cli() {
    let mut h = harness_with(|c| {
        c.limits.open_files = Some(77);
        c.limits.cpu_secs = Some(1234);
        c.limits.memory_mb = Some(4096);
    })
    .await;
    h.create("p").await;
    let run = h.execute("p", "limited").await;
    let events = h.until_complete(&run).await;
    assert_eq!(events.last().unwrap()["success"], true);
    let call: Value =
        serde_json::from_slice(&std::fs::read(h.root.join("p/.mock-claude-call.json")).unwrap())
            .unwrap();
    assert_eq!(call["rlimits"]["nofile"], json!([77, 77]));
    assert_eq!(call["rlimits"]["cpu"], json!([1234, 1234]));
    assert_eq!(call["rlimits"]["as"], json!([4096u64 << 20, 4096u64 << 20]));
    assert_eq!(call["pid"], call["pgid"], "prlimit execs the CLI in place");
    assert_eq!(call["argv"][0], "-p");
}

#[tokio::test]
async fn cancel_stops_the_whole_group_including_a_sigterm_ignoring_grandchild() {
    let mut h = harness_with(|_| {}).await;
    h.create("p").await;
    let run = h.execute("p", "mock:grandchild mock:ignore-term").await;
    let init = h.next_output(&run).await;
    assert_eq!(init["message"]["subtype"], "init");
    let gc: i32 = std::fs::read_to_string(h.root.join("p/.mock-grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let call: Value =
        serde_json::from_slice(&std::fs::read(h.root.join("p/.mock-claude-call.json")).unwrap())
            .unwrap();
    let leader = i32::try_from(call["pid"].as_i64().unwrap()).unwrap();
    assert!(pid_alive(gc) && pid_alive(leader));

    // A second run on the same project is refused, naming the running one.
    let busy = h
        .call("claude/execute", json!({"project": "p", "prompt": "x"}))
        .await
        .unwrap_err();
    assert_eq!(busy.kind, ErrorKind::Conflict);
    assert!(busy.message.contains(&run), "{busy:?}");
    assert_eq!(busy.data.unwrap()["runId"], run.as_str());

    h.call("claude/cancel", json!({"runId": run}))
        .await
        .unwrap();
    let events = h.until_complete(&run).await;
    let complete = events.last().unwrap();
    assert_eq!(complete["aborted"], true, "{complete}");
    assert_eq!(complete["success"], false);
    assert_eq!(complete["reason"], "cancelled");
    assert_eq!(
        complete["signal"], 9,
        "SIGINT and SIGTERM were ignored: SIGKILL"
    );
    assert!(!pid_alive(leader), "leader {leader} still alive");
    assert!(!pid_alive(gc), "grandchild {gc} still alive");
    let count = events.iter().filter(|e| e["type"] == "complete").count();
    assert_eq!(count, 1);
    // Cancelling again: the run is gone.
    let gone = h
        .call("claude/cancel", json!({"runId": run}))
        .await
        .unwrap_err();
    assert_eq!(gone.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn timeout_and_stall_stop_the_run_with_one_aborted_complete() {
    let mut h = harness_with(|c| c.stall_timeout = Duration::from_secs(1)).await;
    h.create("p").await;
    h.create("q").await;
    let timed = h
        .call(
            "claude/execute",
            json!({"project": "p", "prompt": "mock:grandchild mock:slow=300 mock:lines=100", "timeoutSecs": 1}),
        )
        .await
        .unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = h.until_complete(&timed).await;
    let complete = events.last().unwrap();
    assert_eq!(complete["aborted"], true, "{complete}");
    assert!(
        complete["reason"]
            .as_str()
            .unwrap()
            .starts_with("timed out"),
        "{complete}"
    );
    let gc: i32 = std::fs::read_to_string(h.root.join("p/.mock-grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!pid_alive(gc), "grandchild {gc} outlived the timeout");

    let stalled = h.execute("q", "mock:hang").await;
    let events = h.until_complete(&stalled).await;
    let complete = events.last().unwrap();
    assert_eq!(complete["aborted"], true);
    assert!(
        complete["reason"].as_str().unwrap().starts_with("stalled"),
        "{complete}"
    );
}

#[tokio::test]
async fn bad_output_becomes_error_events_and_crashes_and_hangs_end_cleanly() {
    let mut h = harness_with(|c| c.max_line_bytes = 1000).await;
    for p in ["a", "b", "c", "d", "e"] {
        h.create(p).await;
    }
    // Garbage and an over-long line: error events, the run goes on and succeeds.
    let run = h.execute("a", "mock:garbage mock:longline=5000").await;
    let events = h.until_complete(&run).await;
    let errors: Vec<&Value> = events.iter().filter(|e| e["type"] == "error").collect();
    assert_eq!(errors.len(), 2, "{events:#?}");
    assert!(errors[0]["excerpt"].as_str().unwrap().contains("not json"));
    assert!(
        errors[1]["error"]
            .as_str()
            .unwrap()
            .contains("longer than 1000")
    );
    assert_eq!(events.last().unwrap()["success"], true);

    // A crash: no result, killed by a signal.
    let run = h.execute("b", "mock:crash").await;
    let complete = h.until_complete(&run).await.pop().unwrap();
    assert_eq!(complete["success"], false);
    assert_eq!(complete["aborted"], false);
    assert!(
        complete["reason"]
            .as_str()
            .unwrap()
            .contains("without a result"),
        "{complete}"
    );

    // Does not exit after its result: stopped, but the work succeeded.
    let run = h.execute("c", "mock:hang-after-result").await;
    let complete = h.until_complete(&run).await.pop().unwrap();
    assert_eq!(complete["success"], true, "{complete}");
    assert_eq!(complete["aborted"], false);
    assert!(
        complete["reason"]
            .as_str()
            .unwrap()
            .contains("did not exit")
    );

    // An endless line: one error event, then the stall watchdog or the timeout ends it.
    let run = h
        .call(
            "claude/execute",
            json!({"project": "d", "prompt": "mock:endless", "timeoutSecs": 2}),
        )
        .await
        .unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = h.until_complete(&run).await;
    assert_eq!(events.iter().filter(|e| e["type"] == "error").count(), 1);
    assert_eq!(events.last().unwrap()["aborted"], true);

    // An error result with a non-zero exit.
    let run = h
        .execute("e", "mock:error mock:exit=3 mock:stderr=oops")
        .await;
    let complete = h.until_complete(&run).await.pop().unwrap();
    assert_eq!(complete["success"], false);
    assert_eq!(complete["exitCode"], 3);
    assert_eq!(complete["resultSubtype"], "error_during_execution");
    assert!(complete["stderr"].as_str().unwrap().contains("oops"));
}

#[tokio::test]
async fn a_flood_arrives_whole_and_in_order() {
    let mut h = harness_with(|_| {}).await;
    h.create("p").await;
    let run = h.execute("p", "mock:flood=20000 mock:lines=0").await;
    let events = h.until_complete(&run).await;
    let outputs: Vec<&Value> = events.iter().filter(|e| e["type"] == "output").collect();
    assert_eq!(outputs.len(), 20002);
    assert!(
        outputs
            .windows(2)
            .all(|w| w[0]["seq"].as_u64().unwrap() + 1 == w[1]["seq"].as_u64().unwrap())
    );
    assert_eq!(events.last().unwrap()["success"], true);
}

#[tokio::test]
async fn edits_land_in_the_project_directory() {
    let mut h = harness_with(|_| {}).await;
    h.call("projects/create", json!({"id": "p", "path": "team/app"}))
        .await
        .unwrap();
    let run = h.execute("p", "mock:edit=src/new.txt").await;
    h.until_complete(&run).await;
    assert_eq!(
        std::fs::read_to_string(h.root.join("team/app/src/new.txt")).unwrap(),
        "written by mock claude\n"
    );
}

#[tokio::test]
async fn project_paths_outside_the_root_are_refused() {
    let h = harness_with(|c| c.max_projects = 3).await;
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), h.root.join("link")).unwrap();
    for (id, path) in [
        ("a", "../escape"),
        ("b", "x/../../escape"),
        ("c", "/tmp/abs"),
        ("d", "link"),
        ("e", "link/inner"),
        ("f", ""),
    ] {
        let err = h
            .call("projects/create", json!({"id": id, "path": path}))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParams, "{path}: {err:?}");
    }
    assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
    assert!(!h.root.parent().unwrap().join("escape").exists());
    for bad in ["../x", "a/b", "", ".."] {
        assert!(h.call("projects/create", json!({"id": bad})).await.is_err());
    }
    h.create("one").await;
    assert_eq!(
        h.call("projects/create", json!({"id": "one"}))
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );
    assert_eq!(
        h.call("projects/create", json!({"id": "two", "path": "one/sub"}))
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Conflict,
        "nested in another project"
    );
    h.create("two").await;
    h.create("three").await;
    assert_eq!(
        h.call("projects/create", json!({"id": "four"}))
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Limit
    );
    let list = h.call("projects/list", json!({})).await.unwrap();
    assert_eq!(list["projects"].as_array().unwrap().len(), 3);
    h.call("projects/delete", json!({"project": "two"}))
        .await
        .unwrap();
    h.create("four").await;
}

#[tokio::test]
async fn projects_reload_and_a_live_run_is_closed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let exec = Executor::open(config(dir.path()), Arc::new(Sink(tx)))
        .await
        .unwrap();
    exec.call("projects/create", json!({"id": "p"}), &Anyone)
        .await
        .unwrap();
    let run = exec
        .call(
            "claude/execute",
            json!({"project": "p", "prompt": "mock:hang mock:grandchild"}),
            &Anyone,
        )
        .await
        .unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    let root = dir.path().join("root/p");
    // The mock writes its pid files before its first line; wait for both.
    for _ in 0..400 {
        if root.join(".mock-grandchild.pid").exists()
            && std::fs::read(root.join(".mock-claude-call.json"))
                .is_ok_and(|b| serde_json::from_slice::<Value>(&b).is_ok())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let call: Value =
        serde_json::from_slice(&std::fs::read(root.join(".mock-claude-call.json")).unwrap())
            .unwrap();
    let leader = i32::try_from(call["pid"].as_i64().unwrap()).unwrap();
    let gc: i32 = std::fs::read_to_string(root.join(".mock-grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // What a crashed server leaves behind: the metadata says `executing`, the process runs.
    let saved: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/p/project.json")).unwrap())
            .unwrap();
    assert_eq!(saved["status"], "executing");
    assert_eq!(saved["currentRun"]["runId"], run.as_str());

    // A second executor on the same state (the restarted server).
    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let again = Executor::open(config(dir.path()), Arc::new(Sink(tx2)))
        .await
        .unwrap();
    let (project, event) = rx2.try_recv().unwrap();
    assert_eq!(project, "p");
    assert_eq!(event["type"], "complete");
    assert_eq!(event["runId"], run.as_str());
    assert_eq!(event["reason"], "server restarted");
    assert_eq!(event["aborted"], true);
    let info = again
        .call("projects/get", json!({"project": "p"}), &Anyone)
        .await
        .unwrap();
    assert_eq!(info["status"], "idle");
    assert_eq!(info["currentRun"], Value::Null);
    // The left-behind process group was killed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pid_alive(gc), "grandchild survived the restart");
    let _ = leader; // the first executor's own task reaps the leader
    // The restart's `complete` is in the log.
    let history = again
        .call("projects/history", json!({"project": "p"}), &Anyone)
        .await
        .unwrap();
    let kinds: Vec<&str> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"run.started") && kinds.last() == Some(&"run.complete"),
        "{kinds:?}"
    );
    drop(exec);
}
