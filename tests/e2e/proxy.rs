//! Several servers behind nginx, routed by project: the shipped `deploy/nginx/codeflow.conf`
//! (its upstream servers and listen address replaced) in front of three real servers, and
//! real relays on several projects. Every session of a project lands on one instance, which
//! `health_check` shows from inside (it counts the sessions of the caller's project on the
//! instance that serves it). nginx comes from the Debian packages (`scripts/test.sh` installs
//! it when missing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use codeflow_e2e::cluster::Nginx;
use codeflow_e2e::{Relay, Server};
use serde_json::json;

/// `health_check` through `relay`: (sessions of its project on the instance serving it, the
/// session id).
async fn instance_view(relay: &Relay) -> (u64, String) {
    let result = relay.tool("health_check", json!({})).await;
    let s = &result["structuredContent"];
    (
        s["sessions"].as_u64().unwrap_or_else(|| panic!("{result}")),
        s["session"]["id"].as_str().unwrap_or_default().to_owned(),
    )
}

fn project_dir(root: &Path, name: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.py"),
        format!("def {name}():\n    return 1\n"),
    )
    .unwrap();
    dir
}

#[tokio::test]
async fn every_session_of_a_project_lands_on_one_instance() {
    let servers = [
        Server::start().await,
        Server::start().await,
        Server::start().await,
    ];
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let nginx = Nginx::start(&ports).await;
    let url = format!("ws://127.0.0.1:{}", nginx.port);
    let work = tempfile::tempdir().unwrap();

    // Two containers per project for eight projects, all through the one proxy address.
    let projects = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
    ];
    let mut relays = Vec::new();
    for project in projects {
        let dir = project_dir(work.path(), project);
        for _ in 0..2 {
            let relay = Relay::spawn(&url, project, &dir, &[]);
            relay.initialize().await;
            relays.push((project, relay));
        }
    }
    // Each relay's instance counts both sessions of its project: they share an instance.
    for (project, relay) in &relays {
        let (sessions, id) = instance_view(relay).await;
        assert_eq!(
            sessions, 2,
            "project {project}: session {id} sees {sessions} session(s) of its project on its instance, not 2"
        );
    }
    // And the tools answer through the proxy, on the project's own files.
    let (_, alpha) = &relays[0];
    let symbols = alpha
        .tool("get_document_symbols", json!({"file_path": "main.py"}))
        .await;
    assert_eq!(symbols["isError"], false, "{symbols}");
    assert!(
        symbols["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("alpha"),
        "{symbols}"
    );
    // The hash spread the projects: more than one instance serves sessions.
    let mut busy = 0;
    for server in &servers {
        let (status, body) = codeflow_e2e::http_get(server.port, "/metrics")
            .await
            .unwrap();
        assert_eq!(status, 200);
        let sessions: f64 = body
            .lines()
            .find(|l| l.starts_with("codeflow_sessions "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(
            sessions % 2.0 == 0.0,
            "an instance holds part of a project: {sessions} sessions"
        );
        if sessions > 0.0 {
            busy += 1;
        }
    }
    // (Eight projects on one of three instances: a chance of 3 in 3^8.)
    assert!(busy >= 2, "eight projects all hashed to one instance");
}
