//! Test support: start the real `codeflow-server` and `codeflow-client` binaries and talk to
//! them the way users do — MCP over the relay's stdio, or raw WebSocket.
//!
//! The binaries come from the same target directory as the test executable; `.ci/run` builds
//! them before the tests run (`cargo build --workspace --bins`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

pub mod channels;
pub mod cluster;
pub mod code_map;
pub mod deploy;
pub mod doc_commands;
pub mod fs;
pub mod node_clients;
pub mod procs;
pub mod registry;
pub mod results;
pub mod terminal;
pub mod tools;

pub use fs::tree;

/// The embedding guide, `docs/embedding.md`: here so that `cargo test` compiles (and, where
/// they need no language server or peer, runs) its sketches.
#[doc = include_str!("../../docs/embedding.md")]
pub mod embedding_guide {}

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// How long a test waits for a tool call: above the server's own bounds for a language
/// server's first answer (start, `initialize`, indexing, the request), which a cold
/// rust-analyzer on a busy 2-core machine can approach.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(90);

/// Path of a workspace binary next to the running test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the end-to-end tests",
        path.display()
    );
    path
}

/// A free loopback port (bound then released; the server binds it right after).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The next JSON text message a relay sent to a test's own WebSocket server (`stream`: the
/// accepted socket or its reading half; other frames are skipped), within `limit`. Panics when
/// the connection ends.
pub async fn next_json<S>(stream: &mut S, limit: Duration) -> Value
where
    S: futures::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(limit, stream.next())
            .await
            .expect("the relay sent nothing in time")
        {
            Some(Ok(WsMessage::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("relay connection ended: {other:?}"),
        }
    }
}

/// A running `codeflow-server`, killed on drop.
pub struct Server {
    pub port: u16,
    pub child: Child,
    pub data_dir: tempfile::TempDir,
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with(&[], &[]).await
    }

    /// Starts the server with extra flags and environment, and waits until `/healthz` answers.
    pub async fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), args, env).await
    }

    /// Starts the server on an existing data directory (a restart after a kill).
    pub async fn start_in(
        data_dir: tempfile::TempDir,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_under(&[], data_dir, args, env).await
    }

    /// Starts the server through `wrapper` (a command and its arguments, e.g. `env
    /// --ignore-signal=HUP` to start it as `nohup` would), on `data_dir`.
    pub async fn start_under(
        wrapper: &[&str],
        data_dir: tempfile::TempDir,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = match wrapper.split_first() {
                Some((program, rest)) => {
                    let mut cmd = Command::new(program);
                    cmd.args(rest).arg(binary("codeflow-server"));
                    cmd
                }
                None => Command::new(binary("codeflow-server")),
            };
            cmd.arg("--port")
                .arg(port.to_string())
                .arg("--data-dir")
                .arg(data_dir.path())
                .args(args)
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut child = cmd.spawn().expect("spawn codeflow-server");
            drain(child.stderr.take(), "server");
            let deadline = Instant::now() + TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port race or bad flags: try again
                }
                if is_healthy(port).await {
                    return Self {
                        port,
                        child,
                        data_dir,
                    };
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("codeflow-server did not become healthy");
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("server pid")
    }

    /// The server's mirror of a streamed `project`.
    pub fn mirror_dir(&self, project: &str) -> PathBuf {
        self.data_dir.path().join("mirrors").join(project)
    }
}

/// Forwards a child's stderr to ours, prefixed, so failures show the logs.
fn drain(stream: Option<tokio::process::ChildStderr>, who: &'static str) {
    if let Some(stream) = stream {
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[{who}] {line}");
            }
        });
    }
}

/// Whether a server on `port` answers `/healthz` with 200.
pub async fn is_healthy(port: u16) -> bool {
    http_get(port, "/healthz")
        .await
        .is_ok_and(|(s, _)| s == 200)
}

/// Waits up to `limit` for a server on `port` to answer `/healthz` with 200.
pub async fn becomes_healthy(port: u16, limit: Duration) -> bool {
    eventually(limit, || is_healthy(port)).await
}

/// A self-signed certificate for `common_name`, made with the openssl CLI in `dir`: the
/// certificate and key PEM files.
pub fn self_signed_certificate(dir: &Path, common_name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .arg("-subj")
        .arg(format!("/CN={common_name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl makes a test certificate");
    assert!(made.success(), "openssl could not make a certificate");
    (cert, key)
}

/// A CA and a leaf certificate signed by it, made with the openssl CLI in `dir`: (ca.pem,
/// leaf.pem, leaf.key), named with `tag`. The leaf's subject is `CN=<common_name>`, its SAN
/// `IP:127.0.0.1`, its extended key usage `usage` (`serverAuth` or `clientAuth`).
pub fn ca_signed_certificate(
    dir: &Path,
    tag: &str,
    common_name: &str,
    usage: &str,
) -> (PathBuf, PathBuf, PathBuf) {
    let script = format!(
        r#"set -e
cd "{dir}"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca-{tag}.key -out ca-{tag}.pem -days 2 -subj "/CN=CodeFlow test CA {tag}" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf-{tag}.key -out leaf-{tag}.csr -subj "/CN={common_name}" 2>/dev/null
printf "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n" > ext-{tag}.cnf
openssl x509 -req -in leaf-{tag}.csr -CA ca-{tag}.pem -CAkey ca-{tag}.key -CAcreateserial -out leaf-{tag}.pem -days 1 -extfile ext-{tag}.cnf 2>/dev/null
"#,
        dir = dir.display()
    );
    run_openssl(&script);
    (
        dir.join(format!("ca-{tag}.pem")),
        dir.join(format!("leaf-{tag}.pem")),
        dir.join(format!("leaf-{tag}.key")),
    )
}

/// Runs a script of openssl commands (certificates for the tests); panics when one fails.
fn run_openssl(script: &str) {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
        .unwrap();
    assert!(status.success(), "openssl failed");
}

/// Signs a leaf certificate for a client with an existing CA (`ca-<ca_tag>.pem` and `.key` in
/// `dir`, from [`ca_signed_certificate`]): (leaf.pem, leaf.key) named with `tag`.
pub fn client_certificate(
    dir: &Path,
    ca_tag: &str,
    tag: &str,
    common_name: &str,
) -> (PathBuf, PathBuf) {
    let script = format!(
        r#"set -e
cd "{dir}"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf-{tag}.key -out leaf-{tag}.csr -subj "/CN={common_name}" 2>/dev/null
printf "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n" > ext-{tag}.cnf
openssl x509 -req -in leaf-{tag}.csr -CA ca-{ca_tag}.pem -CAkey ca-{ca_tag}.key -CAcreateserial -out leaf-{tag}.pem -days 1 -extfile ext-{tag}.cnf 2>/dev/null
"#,
        dir = dir.display()
    );
    run_openssl(&script);
    (
        dir.join(format!("leaf-{tag}.pem")),
        dir.join(format!("leaf-{tag}.key")),
    )
}

/// Starts a server on wss:// with this certificate and extra flags, without waiting for it
/// (its `/healthz` is behind TLS): (child, wss URL, data dir).
pub fn spawn_tls_server(
    cert: &Path,
    key: &Path,
    extra: &[&str],
) -> (Child, String, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(binary("codeflow-server"))
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(data.path())
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (child, format!("wss://127.0.0.1:{port}/ws"), data)
}

/// A plain HTTP/1.1 GET on loopback: (status, body).
pub async fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    http_exchange(port, &request).await
}

/// A plain HTTP/1.1 POST of a JSON body on loopback, with extra headers: (status, body).
pub async fn http_post(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    http_exchange(port, &request).await
}

/// Sends one whole HTTP/1.1 request on a new loopback connection and reads the answer to the
/// end: (status, body, de-chunked).
async fn http_exchange(port: u16, request: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    Ok((status, body))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// An MCP client driving a `codeflow-client` relay over its stdin/stdout, as an agent does.
pub struct Relay {
    pub child: Child,
    stdin: Arc<Mutex<ChildStdin>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
    pub notifications: mpsc::UnboundedReceiver<Value>,
    /// Responses whose id no call was waiting for (a second answer to the same call lands
    /// here).
    pub strays: Arc<std::sync::Mutex<Vec<Value>>>,
    next_id: AtomicU64,
}

impl Relay {
    /// Starts a relay for `project` rooted at `root`.
    pub fn spawn(server_url: &str, project: &str, root: &Path, extra: &[&str]) -> Self {
        Self::spawn_with_env(server_url, project, root, extra, &[])
    }

    /// Starts a relay with extra environment variables.
    pub fn spawn_with_env(
        server_url: &str,
        project: &str,
        root: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(binary("codeflow-client"));
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .arg("--server")
            .arg(server_url)
            .arg("--project")
            .arg(project)
            .arg("--root")
            .arg(root)
            .args(extra)
            .env_remove("CODEFLOW_TOKEN")
            .env("CODEFLOW_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn codeflow-client");
        Self::from_child(child)
    }

    /// Drives a relay started by the caller with piped stdin, stdout and stderr.
    pub fn from_child(mut child: Child) -> Self {
        drain(child.stderr.take(), "relay");
        let stdout = child.stdout.take().unwrap();
        let stdin = Arc::new(Mutex::new(child.stdin.take().unwrap()));
        let waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>> = Arc::default();
        let (notify_tx, notifications) = mpsc::unbounded_channel();
        let routes = waiting.clone();
        let strays: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
        let strays_in = strays.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("relay wrote a non-JSON line to stdout: {line:?}: {e}")
                });
                let key = value.get("id").map(Value::to_string);
                let is_response = value.get("result").is_some() || value.get("error").is_some();
                match key {
                    Some(k) if is_response => {
                        if let Some(tx) = routes.lock().await.remove(&k) {
                            let _ = tx.send(value);
                        } else {
                            strays_in.lock().unwrap().push(value);
                        }
                    }
                    _ => {
                        let _ = notify_tx.send(value);
                    }
                }
            }
        });
        Self {
            child,
            stdin,
            waiting,
            notifications,
            strays,
            next_id: AtomicU64::new(1),
        }
    }

    /// Writes one raw line to the relay's stdin.
    pub async fn send_line(&self, line: &str) {
        let mut stdin = self.stdin.lock().await;
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Sends a request and returns the whole response message (with `result` or `error`).
    pub async fn call(&self, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.call_with_id(json!(id), method, params).await
    }

    pub async fn call_with_id(&self, id: Value, method: &str, params: Value) -> Value {
        self.call_within(id, method, params, TIMEOUT).await
    }

    /// [`Relay::call_with_id`] with its own time limit (a language server's first answer on a
    /// busy machine).
    pub async fn call_within(
        &self,
        id: Value,
        method: &str,
        params: Value,
        limit: Duration,
    ) -> Value {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().await.insert(id.to_string(), tx);
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_line(&message.to_string()).await;
        tokio::time::timeout(limit, rx)
            .await
            .unwrap_or_else(|_| panic!("no answer to {method} within {limit:?}"))
            .expect("relay stdout closed")
    }

    pub async fn notify(&self, method: &str, params: Value) {
        let message = json!({"jsonrpc": "2.0", "method": method, "params": params});
        self.send_line(&message.to_string()).await;
    }

    /// The MCP handshake an agent performs; returns the initialize result.
    pub async fn initialize(&self) -> Value {
        let reply = self
            .call(
                "initialize",
                json!({
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "e2e", "version": "1"}
                }),
            )
            .await;
        let result = reply
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("initialize failed: {reply}"));
        self.notify("notifications/initialized", json!({})).await;
        result
    }

    /// Calls a tool and returns its result (panics on a protocol error). Waits up to
    /// [`TOOL_TIMEOUT`]: a language server's first answer may legitimately take that long.
    pub async fn tool(&self, name: &str, arguments: Value) -> Value {
        let id = json!(self.next_id.fetch_add(1, Ordering::Relaxed));
        let reply = self
            .call_within(
                id,
                "tools/call",
                json!({"name": name, "arguments": arguments}),
                TOOL_TIMEOUT,
            )
            .await;
        reply
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("tools/call {name} failed: {reply}"))
    }

    /// One tool call, which waits for every file event before it: afterwards the mirror is as
    /// current as the relay's view of the client's disk.
    pub async fn settle(&self) {
        let result = self.tool("health_check", json!({})).await;
        assert_eq!(result["isError"], false, "health_check failed: {result}");
        let text = result["content"][0]["text"].as_str().unwrap_or_default();
        assert!(!text.is_empty(), "no text content: {result}");
    }

    /// Closes stdin and waits for the relay to exit; returns its exit code.
    pub async fn close(mut self) -> Option<i32> {
        drop(self.stdin);
        let status = tokio::time::timeout(TIMEOUT, self.child.wait())
            .await
            .ok()?
            .ok()?;
        status.code()
    }
}

/// A raw WebSocket client for protocol-level tests.
pub struct Ws {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
}

/// What the server sent next.
#[derive(Debug, PartialEq)]
pub enum Next {
    Json(Value),
    Closed(Option<u16>),
}

impl Ws {
    /// Wraps a socket dialed some other way (wss with a test CA, say).
    pub fn from_socket(
        socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    ) -> Self {
        Self { socket }
    }

    pub async fn connect(url: &str) -> Self {
        Self::connect_with_token(url, None)
            .await
            .expect("websocket connect")
    }

    pub async fn connect_with_token(
        url: &str,
        token: Option<&str>,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request()?;
        if let Some(t) = token {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self { socket })
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(WsMessage::Text(text.into()))
            .await
            .unwrap();
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.socket
            .send(WsMessage::Binary(bytes.into()))
            .await
            .unwrap();
    }

    /// The next JSON message or the close, skipping pings.
    pub async fn next(&mut self) -> Next {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, self.socket.next()).await {
                Err(_) => panic!("nothing from the server within {TIMEOUT:?}"),
                Ok(None) => return Next::Closed(None),
                Ok(Some(Err(_))) => return Next::Closed(None),
                Ok(Some(Ok(WsMessage::Text(t)))) => {
                    return Next::Json(
                        serde_json::from_str(t.as_str()).expect("server sent non-JSON"),
                    );
                }
                Ok(Some(Ok(WsMessage::Close(frame)))) => {
                    return Next::Closed(frame.map(|f| u16::from(f.code)));
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next JSON message; panics on a close.
    pub async fn json(&mut self) -> Value {
        match self.next().await {
            Next::Json(v) => v,
            Next::Closed(code) => {
                panic!("connection closed ({code:?}) while a message was expected")
            }
        }
    }

    /// Sends a request and waits for the response with the same id.
    pub async fn request(&mut self, id: Value, method: &str, params: Value) -> Value {
        self.send_json(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let m = self.json().await;
            if m.get("id") == Some(&id) && (m.get("result").is_some() || m.get("error").is_some()) {
                return m;
            }
        }
    }

    /// A full MCP handshake for `project`; returns the initialize result.
    pub async fn initialize(&mut self, project: &str, root: &str) -> Value {
        let reply = self
            .request(
                json!(0),
                "initialize",
                json!({
                    "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "e2e-ws", "version": "1"},
                    "project": project, "projectRoot": root
                }),
            )
            .await;
        let result = reply
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("initialize failed: {reply}"));
        self.send_json(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        result
    }

    /// The handshake of a relay (a client that serves the server's file requests,
    /// `capabilities.experimental.codeflow.fileStream`) for `project` at `root`.
    pub async fn initialize_relay(&mut self, project: &str, root: &str) {
        let init = self
            .request(
                json!(0),
                "initialize",
                json!({"protocolVersion": "2025-11-25",
                    "capabilities": {"experimental": {"codeflow": {"fileStream": true}}},
                    "clientInfo": {"name": "fake-relay", "version": "1"},
                    "project": project, "projectRoot": root}),
            )
            .await;
        assert!(init["result"]["sessionId"].is_string(), "{init}");
        self.send_json(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
    }

    /// Reads the raw bytes left on the socket until the server closes it, without answering
    /// anything (no pongs), and returns the close code of the last close frame among them, if
    /// any. For peers that were cut off while not reading.
    pub async fn raw_close_code(mut self) -> Option<u16> {
        let stream = match self.socket.get_mut() {
            tokio_tungstenite::MaybeTlsStream::Plain(s) => s,
            _ => return None,
        };
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw)).await;
        // Server frames are unmasked: 0x88, a 7-bit length, then the 2-byte code.
        raw.windows(4)
            .rev()
            .find(|w| w[0] == 0x88 && w[1] >= 2 && w[1] < 126)
            .map(|w| u16::from_be_bytes([w[2], w[3]]))
    }

    /// Waits for the close and returns its code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Next::Closed(code) = self.next().await {
                return code;
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .socket
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}

/// Mints an HS256 token with CodeFlow's default issuer and audience.
pub fn token(secret: &str, projects: Value, exp_offset_secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({
        "sub": "e2e", "iss": "codeflow", "aud": "codeflow-clients",
        "exp": now + exp_offset_secs, "projects": projects,
        "scope": "file:read file:write lsp:query"
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A loopback TCP proxy a test can break: sever every connection, swallow traffic
/// (`blackhole`, or from a chosen message on with [`TcpProxy::trip_on`]), refuse new
/// connections, or point at another port (a restarted server). It stops when dropped.
pub struct TcpProxy {
    pub port: u16,
    control: Arc<ProxyControl>,
    accept: tokio::task::JoinHandle<()>,
}

struct ProxyControl {
    target: std::sync::atomic::AtomicU16,
    blackhole: std::sync::atomic::AtomicBool,
    refuse: std::sync::atomic::AtomicBool,
    sever: tokio::sync::watch::Sender<u64>,
    accepted: AtomicU64,
    /// An armed trip: the bytes to look for in the server's traffic, and what to do then.
    trip: std::sync::Mutex<Option<(Vec<u8>, Trip)>>,
    tripped: tokio::sync::watch::Sender<bool>,
}

/// What a [`TcpProxy`] does to the connection whose server traffic first contains the trip
/// word. Either way each side believes it sent what is swallowed; the connection stays open
/// (swallowing) until the test severs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trip {
    /// Swallow the chunk that contains the word and everything after it, server → client:
    /// the client never sees that message.
    SwallowIt,
    /// Deliver the chunk, then swallow everything client → server: the client sees the
    /// message, and its answer is lost.
    SwallowTheAnswer,
}

/// Which way a pump carries bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

/// Per connection: what a trip has made it swallow.
#[derive(Default)]
struct Swallowing {
    to_server: std::sync::atomic::AtomicBool,
    to_client: std::sync::atomic::AtomicBool,
}

impl TcpProxy {
    /// Starts a proxy on a free loopback port that forwards to `127.0.0.1:target`.
    pub async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sever, _) = tokio::sync::watch::channel(0u64);
        let (tripped, _) = tokio::sync::watch::channel(false);
        let control = Arc::new(ProxyControl {
            target: target.into(),
            blackhole: false.into(),
            refuse: false.into(),
            sever,
            accepted: AtomicU64::new(0),
            trip: std::sync::Mutex::new(None),
            tripped,
        });
        let c = control.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if c.refuse.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                c.accepted.fetch_add(1, Ordering::SeqCst);
                let c = c.clone();
                tokio::spawn(async move {
                    let target = c.target.load(Ordering::SeqCst);
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let mut severed = c.sever.subscribe();
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let swallowing = Arc::new(Swallowing::default());
                    tokio::select! {
                        _ = pump(cr, sw, c.clone(), Direction::ToServer, swallowing.clone()) => {}
                        _ = pump(sr, cw, c.clone(), Direction::ToClient, swallowing) => {}
                        _ = severed.changed() => {}
                    }
                    // Dropping both halves closes both sockets.
                });
            }
        });
        Self {
            port,
            control,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// Closes every connection through the proxy at once.
    pub fn sever(&self) {
        self.control.sever.send_modify(|n| *n += 1);
    }

    /// While on, bytes in both directions are read and thrown away: each side believes it
    /// sent them.
    pub fn blackhole(&self, on: bool) {
        self.control.blackhole.store(on, Ordering::SeqCst);
    }

    /// While on, new connections are closed as soon as they are accepted.
    pub fn refuse(&self, on: bool) {
        self.control.refuse.store(on, Ordering::SeqCst);
    }

    /// Sends new connections to another port.
    pub fn retarget(&self, port: u16) {
        self.control.target.store(port, Ordering::SeqCst);
    }

    /// Connections accepted and forwarded so far.
    pub fn accepted(&self) -> u64 {
        self.control.accepted.load(Ordering::SeqCst)
    }

    /// Arms a trip: the first chunk of server → client bytes containing `word` (e.g. a method
    /// name; server frames are not masked, so JSON text shows as is) makes that connection
    /// swallow traffic as `trip` says. It fires once.
    pub fn trip_on(&self, word: &str, trip: Trip) {
        self.control.tripped.send_replace(false);
        *self.control.trip.lock().unwrap() = Some((word.as_bytes().to_vec(), trip));
    }

    /// Waits until an armed trip has fired.
    pub async fn tripped(&self) {
        let mut tripped = self.control.tripped.subscribe();
        let _ = tripped.wait_for(|t| *t).await;
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.sever();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: Arc<ProxyControl>,
    direction: Direction,
    swallowing: Arc<Swallowing>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    // The end of the previous chunk, so a trip word split across two reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if direction == Direction::ToClient {
            let fired = {
                let mut trip = control.trip.lock().unwrap();
                let hit = trip.as_ref().is_some_and(|(word, _)| {
                    tail.extend_from_slice(&buf[..n]);
                    let seen = tail.windows(word.len()).any(|w| w == word.as_slice());
                    let keep = tail.len().min(word.len());
                    tail.drain(..tail.len() - keep);
                    seen
                });
                if hit {
                    trip.take().map(|(_, t)| t)
                } else {
                    None
                }
            };
            match fired {
                Some(Trip::SwallowIt) => swallowing.to_client.store(true, Ordering::SeqCst),
                Some(Trip::SwallowTheAnswer) => swallowing.to_server.store(true, Ordering::SeqCst),
                None => {}
            }
            if fired.is_some() {
                control.tripped.send_replace(true);
            }
        }
        let swallow = match direction {
            Direction::ToServer => &swallowing.to_server,
            Direction::ToClient => &swallowing.to_client,
        };
        if control.blackhole.load(Ordering::SeqCst) || swallow.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Samples of `/metrics`: `name{labels}` → value.
pub async fn metrics(port: u16) -> HashMap<String, f64> {
    let (_, body) = http_get(port, "/metrics").await.unwrap();
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// `/healthz` as JSON.
pub async fn health(port: u16) -> Value {
    let (_, body) = http_get(port, "/healthz").await.unwrap();
    serde_json::from_str(&body).unwrap()
}

/// Polls `check` every 20 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// p-th percentile (0–100) of durations, in milliseconds.
pub fn percentile_ms(samples: &mut [Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = (((samples.len() - 1) as f64) * p / 100.0).round() as usize;
    samples[i].as_secs_f64() * 1000.0
}
