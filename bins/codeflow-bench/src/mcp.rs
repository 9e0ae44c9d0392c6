//! A small MCP client that speaks either newline-delimited JSON on a child's stdin/stdout (the
//! CodeFlow relay) or JSON text frames on a WebSocket (supergateway), and the two request
//! patterns the bench measures on it: sequential round trips and a pipelined window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long one answer may take before the bench gives up on the target.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

pub enum Tx {
    Stdio(ChildStdin),
    Ws(SplitSink<Ws, Message>),
}

pub enum Rx {
    Stdio(BufReader<ChildStdout>, String),
    Ws(SplitStream<Ws>),
}

impl Tx {
    async fn send(&mut self, text: String) -> Result<()> {
        match self {
            Tx::Stdio(stdin) => {
                let mut line = text.into_bytes();
                line.push(b'\n');
                stdin.write_all(&line).await?;
                stdin.flush().await?;
            }
            Tx::Ws(sink) => sink.send(Message::text(text)).await?,
        }
        Ok(())
    }
}

impl Rx {
    /// The next JSON-RPC message, whatever it is.
    async fn recv(&mut self) -> Result<Value> {
        match self {
            Rx::Stdio(reader, buf) => loop {
                buf.clear();
                let n = reader.read_line(buf).await?;
                if n == 0 {
                    bail!("the relay closed its stdout");
                }
                let line = buf.trim();
                if line.is_empty() {
                    continue;
                }
                return serde_json::from_str(line)
                    .with_context(|| format!("bad JSON from relay: {line}"));
            },
            Rx::Ws(stream) => loop {
                match stream.next().await {
                    None => bail!("the WebSocket closed"),
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(Message::Text(text))) => {
                        return serde_json::from_str(text.as_str())
                            .with_context(|| format!("bad JSON frame: {}", text.as_str()));
                    }
                    Some(Ok(Message::Binary(bytes))) => return Ok(serde_json::from_slice(&bytes)?),
                    Some(Ok(Message::Close(frame))) => bail!("the WebSocket was closed: {frame:?}"),
                    Some(Ok(_)) => continue,
                }
            },
        }
    }

    /// The next response (a message with an `id` and no `method`), skipping notifications and
    /// server→client requests.
    async fn recv_response(&mut self) -> Result<Value> {
        loop {
            let msg = tokio::time::timeout(ANSWER_TIMEOUT, self.recv())
                .await
                .context("no answer within the timeout")??;
            if msg.get("method").is_none() && msg.get("id").is_some() {
                return Ok(msg);
            }
        }
    }
}

/// The request the bench repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Ping,
    HealthCheck,
}

impl Workload {
    pub fn label(self) -> &'static str {
        match self {
            Workload::Ping => "ping",
            Workload::HealthCheck => "tools/call health_check",
        }
    }

    fn request(self, id: u64) -> String {
        match self {
            Workload::Ping => json!({"jsonrpc": "2.0", "id": id, "method": "ping"}),
            Workload::HealthCheck => json!({
                "jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "health_check", "arguments": {}}
            }),
        }
        .to_string()
    }
}

pub struct McpClient {
    tx: Tx,
    rx: Option<Rx>,
    next_id: u64,
}

fn check_ok(response: &Value, what: &str) -> Result<()> {
    if let Some(error) = response.get("error") {
        bail!("{what} answered with an error: {error}");
    }
    if response.get("result").is_none() {
        bail!("{what} answered without a result: {response}");
    }
    Ok(())
}

impl McpClient {
    pub fn stdio(stdin: ChildStdin, stdout: ChildStdout) -> Self {
        Self {
            tx: Tx::Stdio(stdin),
            rx: Some(Rx::Stdio(
                BufReader::with_capacity(64 * 1024, stdout),
                String::new(),
            )),
            next_id: 1,
        }
    }

    pub async fn websocket(url: &str) -> Result<Self> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let (sink, stream) = ws.split();
        Ok(Self {
            tx: Tx::Ws(sink),
            rx: Some(Rx::Ws(stream)),
            next_id: 1,
        })
    }

    fn rx(&mut self) -> Result<&mut Rx> {
        self.rx.as_mut().context("receiver is in use")
    }

    /// `initialize` + `notifications/initialized`; returns the initialize result.
    pub async fn initialize(&mut self) -> Result<Value> {
        self.initialize_with(json!({})).await
    }

    /// `initialize` with `extra` params beside MCP's (e.g. CodeFlow's `project` and
    /// `projectRoot` when talking to the server without a relay).
    pub async fn initialize_with(&mut self, extra: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut params = json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "codeflow-bench", "version": env!("CARGO_PKG_VERSION")}
        });
        if let (Some(params), Value::Object(extra)) = (params.as_object_mut(), extra) {
            params.extend(extra);
        }
        let request = json!({
            "jsonrpc": "2.0", "id": id, "method": "initialize", "params": params
        });
        self.tx.send(request.to_string()).await?;
        let response = tokio::time::timeout(Duration::from_secs(30), self.rx()?.recv_response())
            .await
            .context("initialize: no answer within 30 s")??;
        check_ok(&response, "initialize")?;
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.tx.send(note.to_string()).await?;
        Ok(response["result"].clone())
    }

    /// One request with `params`, waiting for its answer; returns the answer's `result` (an
    /// error answer is an error).
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.tx.send(request.to_string()).await?;
        let response = self.rx()?.recv_response().await?;
        if response.get("id").and_then(Value::as_u64) != Some(id) {
            bail!("{method}: expected the answer to id {id}, got {response}");
        }
        check_ok(&response, method)?;
        Ok(response["result"].clone())
    }

    /// One request, waiting for its answer; returns the round-trip time.
    pub async fn round_trip(&mut self, workload: Workload) -> Result<Duration> {
        let id = self.next_id;
        self.next_id += 1;
        let text = workload.request(id);
        let start = Instant::now();
        self.tx.send(text).await?;
        let response = self.rx()?.recv_response().await?;
        let elapsed = start.elapsed();
        if response.get("id").and_then(Value::as_u64) != Some(id) {
            bail!(
                "{}: expected the answer to id {id}, got {response}",
                workload.label()
            );
        }
        check_ok(&response, workload.label())?;
        Ok(elapsed)
    }

    /// `count` sequential round trips; returns each latency in nanoseconds.
    pub async fn sequential(&mut self, workload: Workload, count: usize) -> Result<Vec<u64>> {
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let d = self.round_trip(workload).await?;
            samples.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        }
        Ok(samples)
    }

    /// `total` requests with at most `window` unanswered at any time; returns requests per
    /// second (first send to last answer).
    pub async fn pipelined(
        &mut self,
        workload: Workload,
        total: usize,
        window: usize,
    ) -> Result<f64> {
        let slots = Arc::new(Semaphore::new(window));
        let mut rx = self.rx.take().context("receiver is in use")?;
        let reader_slots = slots.clone();
        let reader = tokio::spawn(async move {
            let mut answered = 0usize;
            let mut errors = 0usize;
            let mut result = Ok(());
            while answered < total {
                match rx.recv_response().await {
                    Ok(response) => {
                        answered += 1;
                        if response.get("result").is_none() {
                            errors += 1;
                        }
                        reader_slots.add_permits(1);
                    }
                    Err(e) => {
                        result = Err(e.context(format!("after {answered} of {total} answers")));
                        break;
                    }
                }
            }
            // Wake the writer should it wait on a slot after a failure.
            reader_slots.close();
            (rx, result, errors)
        });
        let start = Instant::now();
        let mut write_result = Ok(());
        for _ in 0..total {
            match slots.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => break, // the reader stopped
            }
            let id = self.next_id;
            self.next_id += 1;
            if let Err(e) = self.tx.send(workload.request(id)).await {
                write_result = Err(e);
                break;
            }
        }
        if write_result.is_err() {
            reader.abort();
            return write_result.map(|()| 0.0);
        }
        let (rx, read_result, errors) = reader.await.context("reader task")?;
        let elapsed = start.elapsed();
        self.rx = Some(rx);
        read_result?;
        if errors > 0 {
            bail!(
                "{errors} of {total} pipelined {} requests failed",
                workload.label()
            );
        }
        #[allow(clippy::cast_precision_loss)]
        Ok(total as f64 / elapsed.as_secs_f64())
    }
}
