//! Child processes the bench starts (server, relay, supergateway), and what it reads about
//! processes: resident memory, open-file limits, free loopback ports, readiness over HTTP.
//!
//! Every child runs in its own process group and is killed with its whole group when its guard
//! drops, so an error, a panic or Ctrl-C never leaves a server (or supergateway's own child)
//! behind.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Most bytes of a child's output kept in its log file; the rest is counted and dropped, so a
/// chatty child cannot fill the disk.
pub const LOG_CAP: u64 = 1 << 20;

/// A child process that dies, with its process group, when this guard drops.
pub struct Guarded {
    pub name: String,
    child: Child,
    pid: u32,
    log_bytes: Arc<AtomicU64>,
}

/// Copies a child's output into `log`, at most [`LOG_CAP`] bytes, counting all of it.
fn drain(
    mut from: impl AsyncRead + Unpin + Send + 'static,
    log: Arc<tokio::sync::Mutex<tokio::fs::File>>,
    count: Arc<AtomicU64>,
) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let before = count.fetch_add(n as u64, Ordering::Relaxed);
            if before < LOG_CAP {
                let keep = usize::try_from(LOG_CAP - before)
                    .unwrap_or(usize::MAX)
                    .min(n);
                let _ = log.lock().await.write_all(&buf[..keep]).await;
            }
        }
    });
}

impl Guarded {
    /// Starts `program args…` in a new process group. Its stderr (and stdout unless `piped`)
    /// goes to `log`, capped at [`LOG_CAP`] bytes. Must run inside the Tokio runtime.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log: &Path,
        piped: bool,
    ) -> Result<Self> {
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let log_file = Arc::new(tokio::sync::Mutex::new(tokio::fs::File::from_std(log_file)));
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(if piped { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        let pid = child.id().context("child has no pid")?;
        let log_bytes = Arc::new(AtomicU64::new(0));
        if let Some(stderr) = child.stderr.take() {
            drain(stderr, log_file.clone(), log_bytes.clone());
        }
        if !piped && let Some(stdout) = child.stdout.take() {
            drain(stdout, log_file, log_bytes.clone());
        }
        Ok(Self {
            name: name.to_owned(),
            child,
            pid,
            log_bytes,
        })
    }

    /// Bytes the child has written to its log streams so far (kept or not).
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes.load(Ordering::Relaxed)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn take_stdio(&mut self) -> Result<(ChildStdin, ChildStdout)> {
        let stdin = self.child.stdin.take().context("child stdin not piped")?;
        let stdout = self.child.stdout.take().context("child stdout not piped")?;
        Ok((stdin, stdout))
    }

    /// Fails if the child has already exited (e.g. it could not bind its port).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early with {status}", self.name);
        }
        Ok(())
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // The whole group: supergateway's shell and the stub MCP server go with it.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pid)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.start_kill();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `GET path` on 127.0.0.1:port; returns the status code and body.
pub async fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await??;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status line")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Waits until `GET path` answers 200, or fails after `limit`.
pub async fn wait_http_ok(
    child: &mut Guarded,
    port: u16,
    path: &str,
    limit: Duration,
) -> Result<()> {
    wait_http_ok_every(child, port, path, limit, Duration::from_millis(50)).await
}

/// [`wait_http_ok`], asking every `interval` (a start-up figure wants a fine one).
pub async fn wait_http_ok_every(
    child: &mut Guarded,
    port: u16,
    path: &str,
    limit: Duration,
    interval: Duration,
) -> Result<()> {
    let start = Instant::now();
    loop {
        child.check_alive()?;
        if let Ok((200, _)) = http_get(port, path).await {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!(
                "{} did not answer GET {path} on port {port} within {limit:?}",
                child.name
            );
        }
        tokio::time::sleep(interval).await;
    }
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    status_field_kib(pid, "VmRSS:")
}

/// VmHWM (peak RSS) of a process in KiB.
pub fn hwm_kib(pid: u32) -> Result<u64> {
    status_field_kib(pid, "VmHWM:")
}

fn status_field_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("bad {field} line: {line}"))
}

/// The soft limit on open files of this process.
pub fn nofile_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Makes sure this process (and so every child started after) may open `want` files: raises
/// the limit with `prlimit` (util-linux) when it is lower. Returns the limit in force.
pub fn ensure_nofile(want: u64) -> u64 {
    let current = nofile_limit().unwrap_or(0);
    if current >= want {
        return current;
    }
    let pid = std::process::id().to_string();
    let value = format!("--nofile={want}:{want}");
    let ok = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &value])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        // Perhaps only the soft limit can move: up to the hard limit.
        let soft = format!("--nofile={want}:");
        let _ = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &soft])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    nofile_limit().unwrap_or(current)
}

/// Which program `name` on PATH is, if any.
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// CPU time (user + system) a process has used, in seconds; clock ticks assumed 100 Hz, the
/// Linux default.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    #[allow(clippy::cast_precision_loss)]
    Some((utime + stime) as f64 / 100.0)
}

/// `pid` and all its descendants, with their command names.
pub fn process_tree(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        let name = std::fs::read_to_string(format!("/proc/{p}/comm"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        out.push((p, name));
        let children =
            std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        stack.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    out
}
