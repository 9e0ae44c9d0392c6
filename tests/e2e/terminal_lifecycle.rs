//! A terminal's processes end with it: `terminals/close` and the grace after the last viewer
//! leaves kill the whole session of the shell, background jobs included; limits per project;
//! a streamed project is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use codeflow_e2e::procs::{alive, pty_master_holders};
use codeflow_e2e::terminal::{self, Term, create};
use codeflow_e2e::{Server, Ws, eventually};
use serde_json::{Value, json};

async fn server(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("CODEFLOW_TERMINAL__SHELL", "/bin/bash")];
    env.extend_from_slice(extra);
    Server::start_with(&[], &env).await
}

/// Opens a new terminal of `project` and starts a background `sleep` in it; returns the
/// viewer, the terminal's id, and the pids of the shell and of the sleep.
async fn with_background_job(
    server: &Server,
    ws: &mut Ws,
    project: &str,
) -> (Term, String, u32, u32) {
    let made = create(ws, 10, json!({"project": project, "cols": 80, "rows": 24})).await;
    let id = made["id"].as_str().unwrap().to_owned();
    let url = made["url"].as_str().unwrap();
    let mut term = terminal::open(&terminal::address(server, url), None)
        .await
        .unwrap();
    let text = term
        .run("sleep 4321 & echo job=$! shell=$$ en\"\"d", "end")
        .await;
    let number = |key: &str| -> u32 {
        let at = text.rfind(key).unwrap() + key.len();
        text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    let (job, shell) = (number("job="), number("shell="));
    assert!(alive(job) && alive(shell));
    (term, id, shell, job)
}

#[tokio::test]
async fn close_kills_the_shell_and_its_background_jobs() {
    let server = server(&[]).await;
    let mut ws = terminal::project_session(&server, "p").await;
    let (mut term, id, shell, job) = with_background_job(&server, &mut ws, "p").await;
    let closed = ws
        .request(json!(2), "terminals/close", json!({"id": id}))
        .await;
    assert_eq!(closed["result"]["closed"], true, "{closed}");
    let (code, close) = term.until_closed().await;
    assert!(code.is_some(), "the viewer is told the shell's end");
    assert_eq!(close, Some(1000));
    assert!(
        eventually(Duration::from_secs(5), || async {
            !alive(job) && !alive(shell)
        })
        .await
    );
    // Gone from the list; attaching or closing again is "not found".
    let list = ws.request(json!(3), "terminals/list", json!({})).await;
    assert_eq!(list["result"]["terminals"], json!([]));
    let again = ws
        .request(json!(4), "terminals/attach", json!({"id": id}))
        .await;
    assert_eq!(again["error"]["code"], -32602, "{again}");
    assert_eq!(again["error"]["data"]["reason"], "not_found");
}

/// A server killed outright (SIGKILL: none of its code runs) leaves no terminal behind, even
/// one started with hangups ignored, as `nohup` starts it: its shells used to inherit that and
/// outlive it, the terminal's hangup being their only tether.
#[tokio::test]
async fn a_killed_server_started_with_hangups_ignored_leaves_no_shell_behind() {
    let mut server = Server::start_under(
        &["env", "--ignore-signal=HUP"],
        tempfile::tempdir().unwrap(),
        &[],
        &[("CODEFLOW_TERMINAL__SHELL", "/bin/bash")],
    )
    .await;
    let mut ws = terminal::project_session(&server, "p").await;
    let (_term, _id, shell, job) = with_background_job(&server, &mut ws, "p").await;
    server.child.start_kill().unwrap();
    let _ = server.child.wait().await;
    let gone = eventually(Duration::from_secs(10), || async {
        !alive(job) && !alive(shell)
    })
    .await;
    assert!(
        gone,
        "the shell {shell} (alive: {}) or its job {job} (alive: {}) outlived the server; \
         PTY masters still open in: {:?}",
        alive(shell),
        alive(job),
        pty_master_holders()
    );
}

#[tokio::test]
async fn a_terminal_without_viewers_is_killed_when_its_grace_runs_out() {
    let server = server(&[("CODEFLOW_TERMINAL__GRACE_SECS", "2")]).await;
    let mut ws = terminal::project_session(&server, "p").await;
    let (term, id, shell, job) = with_background_job(&server, &mut ws, "p").await;
    // A reattach within the grace keeps it.
    term.close().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let again = ws
        .request(json!(2), "terminals/attach", json!({"id": id}))
        .await;
    let url = again["result"]["url"].as_str().unwrap().to_owned();
    let mut back = terminal::open(&terminal::address(&server, &url), None)
        .await
        .unwrap();
    back.until(0, "job=").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        alive(job) && alive(shell),
        "a viewer is attached: the grace is not running"
    );
    // The last viewer leaves: after the grace, everything is gone.
    back.close().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            !alive(job) && !alive(shell)
        })
        .await
    );
    let list = ws.request(json!(3), "terminals/list", json!({})).await;
    assert_eq!(list["result"]["terminals"], json!([]));
}

#[tokio::test]
async fn limits_per_project_and_streamed_projects_are_refused_clearly() {
    let server = server(&[
        ("CODEFLOW_TERMINAL__MAX_PER_PROJECT", "2"),
        ("CODEFLOW_TERMINAL__MAX_TOTAL", "3"),
    ])
    .await;
    let mut ws = terminal::project_session(&server, "a").await;
    let created = ws
        .request(json!(1), "projects/create", json!({"id": "b"}))
        .await;
    assert!(created.get("result").is_some());
    let params = |p: &str| json!({"project": p, "cols": 80, "rows": 24, "command": "sleep 600"});
    let first = create(&mut ws, 2, params("a")).await;
    create(&mut ws, 3, params("a")).await;
    let third = ws.request(json!(4), "terminals/create", params("a")).await;
    assert_eq!(third["error"]["code"], -32004, "{third}");
    assert_eq!(third["error"]["data"]["limit"], "terminals_per_project");
    create(&mut ws, 5, params("b")).await;
    let over = ws.request(json!(6), "terminals/create", params("b")).await;
    assert_eq!(over["error"]["data"]["limit"], "terminals", "{over}");
    // At most 16 viewers of one terminal; the 17th is refused before the upgrade.
    let mut viewers = Vec::new();
    for i in 0..17 {
        let t = ws
            .request(
                json!(100 + i),
                "terminals/attach",
                json!({"id": first["id"]}),
            )
            .await;
        let url = terminal::address(&server, t["result"]["url"].as_str().unwrap());
        match terminal::open(&url, None).await {
            Ok(v) => viewers.push(v),
            Err(status) => {
                assert_eq!((i, status), (16, 429));
            }
        }
    }
    assert_eq!(viewers.len(), 16);
    drop(viewers);
    // Closing one makes room.
    let id = first["id"].as_str().unwrap();
    ws.request(json!(7), "terminals/close", json!({"id": id}))
        .await;
    create(&mut ws, 8, params("a")).await;

    // A streamed project: refused, saying why and what to do.
    let streamed = ws
        .request(
            json!(9),
            "projects/create",
            json!({"id": "s", "streamed": true}),
        )
        .await;
    assert!(streamed.get("result").is_some(), "{streamed}");
    let refused = ws.request(json!(10), "terminals/create", params("s")).await;
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    assert_eq!(refused["error"]["data"]["reason"], "streamed");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("streamed")
    );
    // An unknown project, and bad sizes.
    let unknown = ws
        .request(json!(11), "terminals/create", params("nope"))
        .await;
    assert_eq!(unknown["error"]["data"]["reason"], "not_found", "{unknown}");
    let bad = ws
        .request(
            json!(12),
            "terminals/create",
            json!({"project": "a", "cols": 0, "rows": 24}),
        )
        .await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    let _: Value = bad;
}
