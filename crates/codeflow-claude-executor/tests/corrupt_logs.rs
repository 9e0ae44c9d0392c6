//! An unreadable message log never stops start-up: the bad segment (or the whole log
//! directory) is set aside, logged, and the project keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use codeflow_claude_executor::log::segments_for_tests as segments;
use codeflow_claude_executor::{
    Caller, EventSink, ExecError, Executor, ExecutorConfig, LogConfig, MessageLog, Need, NewEntry,
};
use serde_json::{Value, json};

struct Quiet;

impl EventSink for Quiet {
    fn publish(&self, _: &str, _: Value) {}
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
        ..ExecutorConfig::default()
    }
}

fn entry(i: u64) -> NewEntry {
    NewEntry {
        session: "s".into(),
        kind: "message".into(),
        payload: json!({"i": i}),
    }
}

async fn post(exec: &Arc<Executor>, project: &str, i: u64) -> u64 {
    exec.call(
        "projects/post",
        json!({"project": project, "payload": {"i": i}}),
        &Anyone,
    )
    .await
    .unwrap()["ts"]
        .as_u64()
        .unwrap()
}

async fn history(exec: &Arc<Executor>, project: &str) -> Vec<Value> {
    exec.call("projects/history", json!({"project": project}), &Anyone)
        .await
        .unwrap()["entries"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn an_unreadable_segment_is_set_aside_and_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("log");
    let mut first = 0;
    {
        let log = MessageLog::open(logs.clone(), LogConfig::default()).unwrap();
        for i in 0..10 {
            let ts = log.append(entry(i)).await.unwrap();
            first = if first == 0 { ts } else { first };
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The newest segment becomes something no read can handle (a directory of that name:
    // unreadable even for root, unlike a permission change).
    let seg = segments(&logs).pop().unwrap();
    std::fs::remove_file(&seg).unwrap();
    std::fs::create_dir(&seg).unwrap();
    let log = MessageLog::open(logs.clone(), LogConfig::default()).unwrap();
    let mut aside = seg.clone().into_os_string();
    aside.push(".corrupt");
    assert!(std::path::Path::new(&aside).is_dir(), "set aside");
    let ts = log.append(entry(10)).await.unwrap();
    assert!(ts > first, "stamps keep growing past the set-aside segment");
    assert_eq!(segments(&logs).len(), 1);
}

#[tokio::test]
async fn a_project_whose_log_cannot_be_opened_still_loads_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    {
        let exec = Executor::open(config(dir.path()), Arc::new(Quiet))
            .await
            .unwrap();
        for id in ["good", "bad"] {
            exec.call("projects/create", json!({"id": id}), &Anyone)
                .await
                .unwrap();
            post(&exec, id, 1).await;
        }
        exec.shutdown().await;
    }
    // The bad project's log directory becomes a file: nothing under it can be opened.
    let messages = dir.path().join("state/bad/messages");
    std::fs::remove_dir_all(&messages).unwrap();
    std::fs::write(&messages, b"not a directory").unwrap();
    // The good project's newest segment becomes unreadable.
    let good = dir.path().join("state/good/messages");
    let seg = segments(&good).pop().unwrap();
    std::fs::remove_file(&seg).unwrap();
    std::fs::create_dir(&seg).unwrap();

    let exec = Executor::open(config(dir.path()), Arc::new(Quiet))
        .await
        .expect("start-up never fails on a bad log");
    let list = exec
        .call("projects/list", json!({}), &Anyone)
        .await
        .unwrap();
    assert_eq!(list["projects"].as_array().unwrap().len(), 2, "{list}");
    for id in ["good", "bad"] {
        post(&exec, id, 2).await;
        let entries = history(&exec, id).await;
        assert_eq!(entries.last().unwrap()["payload"], json!({"i": 2}), "{id}");
    }
    let aside: Vec<String> = std::fs::read_dir(dir.path().join("state/bad"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("messages.corrupt-"))
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the unusable log is kept aside for inspection"
    );
    exec.shutdown().await;
}
