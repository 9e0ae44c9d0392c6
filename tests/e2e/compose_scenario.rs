//! `docker-compose.yml`'s scenario without containers: the server started with the
//! `codeflow-service` image's environment (auth on, the secret from its env file), and one relay
//! per dev container started as compose starts it — environment only, in its project directory
//! (a copy of the directory compose mounts). Tools answer in both projects (TypeScript through
//! typescript-language-server, Python through pylsp), and neither sees the other's files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use codeflow_e2e::deploy::{
    Dockerfile, compose, env_file_example, read_env_file, repo_root, service_env_files,
    service_environment, service_volumes,
};
use codeflow_e2e::tools::places;
use codeflow_e2e::{Relay, TIMEOUT, binary, eventually, free_port, http_get, token};
use serde_json::{Value, json};

/// A dev container of the compose file, as a relay on this machine.
struct DevContainer {
    relay: Relay,
    project: String,
    root: PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The environment of a compose service: its `environment` and its env files' examples.
fn compose_env(service: &Value) -> BTreeMap<String, String> {
    let mut env = service_environment(service);
    for file in service_env_files(service) {
        env.extend(read_env_file(&env_file_example(&file)));
    }
    env
}

/// The process environment every child needs on this machine, whatever compose sets.
fn host_env() -> Vec<(String, String)> {
    ["PATH", "HOME", "PYENV_ROOT"]
        .into_iter()
        .filter_map(|k| Some((k.to_owned(), std::env::var(k).ok()?)))
        .collect()
}

/// The environment of a dev container on this machine: its compose environment with the
/// service's host and port replaced by this machine's, and a token minted for its project.
fn dev_env(
    service: &Value,
    service_port: u16,
    port: u16,
    secret: &str,
) -> BTreeMap<String, String> {
    let mut env = compose_env(service);
    let project = env["PROJECT_ID"].clone();
    env.insert(
        "CODEFLOW_TOKEN".into(),
        token(secret, json!([project]), 3600),
    );
    for key in ["CODEFLOW_SERVER", "MCP_SERVER"] {
        if let Some(url) = env.get_mut(key) {
            *url = url.replace(
                &format!("codeflow-service:{service_port}"),
                &format!("127.0.0.1:{port}"),
            );
        }
    }
    env
}

/// A copy of the project directory compose mounts at the service's working directory.
fn project_copy(service: &Value) -> (tempfile::TempDir, PathBuf) {
    let workdir = service["working_dir"].as_str().unwrap();
    let (source, _) = service_volumes(service)
        .into_iter()
        .find(|(_, target)| target == workdir)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join(source), dir.path());
    let root = dir.path().canonicalize().unwrap();
    (dir, root)
}

/// A dev container's own process: its `entrypoint` + `command` (`sh -c …`) with its
/// environment, in its project directory, the relay found on `PATH` as in the image.
struct Container {
    child: tokio::process::Child,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Drop for Container {
    /// The shell, the relay and `sleep` share a process group of their own: end them all.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

fn start_container(service: &Value, service_port: u16, port: u16, secret: &str) -> Container {
    let env = dev_env(service, service_port, port, secret);
    let (dir, root) = project_copy(service);
    let home = tempfile::tempdir().unwrap();
    let mut argv: Vec<String> = service["entrypoint"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    argv.extend(
        service["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned()),
    );
    let bin_dir = binary("codeflow-client").parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .envs(host_env())
        .env("PATH", path)
        .env("HOME", home.path())
        .envs(&env)
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("the container's command runs");
    Container {
        child,
        _dirs: (dir, home),
    }
}

/// Starts a dev container's relay: the compose service's environment with the service's host
/// and port replaced by this machine's, a token minted for its project, in a copy of its
/// mounted project directory.
fn start_dev(service: &Value, service_port: u16, port: u16, secret: &str) -> DevContainer {
    let env = dev_env(service, service_port, port, secret);
    let project = env["PROJECT_ID"].clone();
    let (dir, root) = project_copy(service);
    let home = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(binary("codeflow-client"));
    command
        .env_clear()
        .envs(host_env())
        .env("HOME", home.path())
        .env("CODEFLOW_LOG", "info")
        .envs(&env)
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let relay = Relay::from_child(command.spawn().expect("spawn codeflow-client"));
    DevContainer {
        relay,
        project,
        root,
        _dirs: (dir, home),
    }
}

/// A language server's first answer, on a machine that may be busy.
const FIRST_ANSWER: Duration = Duration::from_secs(90);

impl DevContainer {
    async fn ok(&self, tool: &str, args: Value) -> Value {
        let reply = self
            .relay
            .call_within(
                json!(format!("{tool}-{}", args)),
                "tools/call",
                json!({"name": tool, "arguments": args}),
                FIRST_ANSWER,
            )
            .await;
        let result = reply["result"].clone();
        assert_eq!(result["isError"], false, "{tool} {args} failed: {result}");
        result
    }

    fn path(&self, rel: &str) -> String {
        self.root.join(rel).to_string_lossy().into_owned()
    }
}

/// Every file under `dir`, relative.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn one_server_two_dev_containers_two_projects_neither_sees_the_other() {
    let dockerfile = Dockerfile::load();
    let compose = compose();
    let services = &compose["services"];

    // The service: the image's environment, then the compose service's; only the secret (a
    // fresh one instead of the example's), the port and the data dir differ.
    let secret = format!("compose-scenario-secret-of-32-bytes-{}", std::process::id());
    let mut server_env = dockerfile.env("server");
    server_env.remove("PATH");
    server_env.extend(compose_env(&services["codeflow-service"]));
    let service_port: u16 = server_env["CODEFLOW_PORT"].parse().unwrap();
    let port = free_port();
    let data = tempfile::tempdir().unwrap();
    server_env.insert("CODEFLOW_JWT_SECRET".into(), secret.clone());
    server_env.insert("CODEFLOW_PORT".into(), port.to_string());
    server_env.insert(
        "CODEFLOW_DATA_DIR".into(),
        data.path().to_string_lossy().into_owned(),
    );
    assert_eq!(server_env["CODEFLOW_REQUIRE_AUTH"], "true");
    let _server = tokio::process::Command::new(binary("codeflow-server"))
        .env_clear()
        .envs(host_env())
        .envs(&server_env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(
        codeflow_e2e::becomes_healthy(port, TIMEOUT).await,
        "the service starts"
    );

    // Each dev container's own process: its compose command, as its shell runs it.
    let mut containers = Vec::new();
    for name in ["frontend-dev", "backend-dev"] {
        containers.push(start_container(
            &services[name],
            service_port,
            port,
            &secret,
        ));
    }
    assert!(
        eventually(TIMEOUT, || async {
            let (_, body) = http_get(port, "/healthz").await.unwrap();
            let health: Value = serde_json::from_str(&body).unwrap();
            health["projects"] == 2 && health["connections"] == 2
        })
        .await,
        "each container's relay holds a session: {}",
        http_get(port, "/healthz").await.unwrap().1
    );

    // The agents' relays, started in the containers' environment.
    let frontend = start_dev(&services["frontend-dev"], service_port, port, &secret);
    let backend = start_dev(&services["backend-dev"], service_port, port, &secret);
    assert_eq!(frontend.project, "frontend-app");
    assert_eq!(backend.project, "backend-api");
    frontend.relay.initialize().await;
    backend.relay.initialize().await;

    // Tools answer in both projects.
    let result = frontend
        .ok(
            "find_references",
            json!({"file_path": "src/greet.ts", "symbol_name": "greet"}),
        )
        .await;
    assert_eq!(
        places(&result["structuredContent"]["references"]),
        vec![
            (frontend.path("src/greet.ts"), 5, 17),
            (frontend.path("src/main.ts"), 1, 10),
            (frontend.path("src/main.ts"), 3, 13),
        ],
        "{result}"
    );
    let result = backend
        .ok(
            "find_definition",
            json!({"file_path": "app/main.py", "symbol_name": "total_quantity"}),
        )
        .await;
    assert!(
        places(&result["structuredContent"]["matches"][0]["definitions"]).contains(&(
            backend.path("app/orders.py"),
            10,
            5
        )),
        "{result}"
    );

    // Each session is its own project.
    for dev in [&frontend, &backend] {
        let health = dev.ok("health_check", json!({})).await;
        assert_eq!(
            health["structuredContent"]["session"]["project"],
            dev.project.as_str()
        );
    }

    // Neither sees the other's files: not by the other's path, not by search, not in its
    // mirror.
    let outside = frontend
        .relay
        .tool(
            "get_document_symbols",
            json!({"file_path": backend.path("app/orders.py")}),
        )
        .await;
    assert_eq!(outside["isError"], true, "{outside}");
    assert!(
        outside["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("outside the project"),
        "{outside}"
    );
    let outside = backend
        .relay
        .tool(
            "get_document_symbols",
            json!({"file_path": frontend.path("src/greet.ts")}),
        )
        .await;
    assert_eq!(outside["isError"], true, "{outside}");
    assert!(
        outside["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("outside the project"),
        "{outside}"
    );
    let search = frontend
        .ok(
            "search_workspace_symbols",
            json!({"query": "total_quantity"}),
        )
        .await;
    assert!(
        !search.to_string().contains("orders.py"),
        "the frontend finds the backend's symbol: {search}"
    );
    let mirrors = data.path().join("mirrors");
    let front_files = files_under(&mirrors.join("frontend-app"));
    let back_files = files_under(&mirrors.join("backend-api"));
    assert!(
        front_files.contains(&"src/greet.ts".to_owned()),
        "{front_files:?}"
    );
    assert!(
        back_files.contains(&"app/orders.py".to_owned()),
        "{back_files:?}"
    );
    assert!(
        front_files.iter().all(|f| !f.ends_with(".py")),
        "{front_files:?}"
    );
    assert!(
        back_files.iter().all(|f| !f.ends_with(".ts")),
        "{back_files:?}"
    );

    // A dev container's token opens its own project only.
    let mut env = compose_env(&services["frontend-dev"]);
    env.insert(
        "CODEFLOW_TOKEN".into(),
        token(&secret, json!(["frontend-app"]), 3600),
    );
    env.insert("PROJECT_ID".into(), "backend-api".into());
    env.insert(
        "CODEFLOW_SERVER".into(),
        format!("ws://127.0.0.1:{port}/ws"),
    );
    let out = tokio::process::Command::new(binary("codeflow-client"))
        .arg("check")
        .env_clear()
        .envs(host_env())
        .envs(&env)
        .current_dir(&frontend.root)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("backend-api"), "{said}");
}
