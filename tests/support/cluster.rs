//! Several instances: nginx running the shipped `deploy/nginx/codeflow.conf` in front of
//! servers, and a Redis broker of their own (`cluster_url`), both from the Debian packages
//! (`scripts/test.sh` installs them when missing), on free loopback ports.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::{becomes_healthy, free_port};

/// nginx running the shipped config in front of `backends`, listening on its own port.
pub struct Nginx {
    pub port: u16,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub async fn start(backends: &[u16]) -> Self {
        let nginx = which("nginx").expect(
            "nginx is not installed: scripts/test.sh installs it (apt-get install nginx-light)",
        );
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/codeflow.conf"),
        )
        .unwrap();
        let port = free_port();
        let servers: String = backends
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n"))
            .collect();
        // The shipped file with only the addresses changed: its upstream servers and listen.
        let mut site = String::new();
        let mut servers_written = false;
        for line in shipped.lines() {
            let t = line.trim_start();
            if t.starts_with("server codeflow-") {
                if !servers_written {
                    site.push_str(&servers);
                    servers_written = true;
                }
            } else if t.starts_with("listen ") {
                site.push_str(&format!("    listen 127.0.0.1:{port};\n"));
            } else {
                site.push_str(line);
                site.push('\n');
            }
        }
        assert!(
            servers_written,
            "the shipped config names no upstream servers"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("codeflow.conf"), site).unwrap();
        // One process (no master): killing it on drop leaves no orphaned worker behind,
        // still listening and holding the test's stderr.
        let main = format!(
            "master_process off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log stderr warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  \
             proxy_temp_path {dir}/proxy;\n  include {dir}/codeflow.conf;\n}}\n",
            dir = dir.path().display()
        );
        std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        assert!(
            becomes_healthy(port, Duration::from_secs(10)).await,
            "nginx did not start forwarding /healthz"
        );
        Self {
            port,
            _child: child,
            _dir: dir,
        }
    }
}

pub fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A `redis-server` of the test's own: a free loopback port, a temporary directory, no
/// persistence; killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub async fn start() -> Self {
        let redis = which("redis-server").expect(
            "redis-server is not installed: scripts/test.sh installs it (apt-get install redis-server)",
        );
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&redis)
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .arg("--dir")
                .arg(dir.path())
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile: another one
                }
                if ping(port).await {
                    return Self {
                        port,
                        child,
                        _dir: dir,
                    };
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill().await;
        }
        panic!("redis-server did not start");
    }

    /// The `cluster_url` of this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// Whether a Redis server answers `PING` on `port` (inline command, no client library).
async fn ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut reply)).await,
        Ok(Ok(_))
    ) && &reply == b"+PONG\r\n"
}

/// The path of `project`'s upgrade through a proxy that routes by project.
pub fn ws_url(proxy_port: u16, project: &str) -> String {
    format!("ws://127.0.0.1:{proxy_port}/ws?project={project}")
}
