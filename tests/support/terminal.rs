//! A terminal socket's client (`/ws/terminal/{id}`): raw bytes in binary frames, JSON control
//! messages in text frames.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::{Server, TIMEOUT, Ws};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// What a terminal socket sent.
#[derive(Debug, Clone, PartialEq)]
pub enum TermEvent {
    Bytes(Vec<u8>),
    Control(Value),
    Closed(Option<u16>),
}

/// One viewer of a terminal; everything it has read so far is in `output`.
pub struct Term {
    socket: Socket,
    /// Every byte received (the scrollback first).
    pub output: Vec<u8>,
    /// Control messages received.
    pub controls: Vec<Value>,
    /// The close code, once closed.
    pub closed: Option<Option<u16>>,
}

/// `terminals/create` on `ws`; returns its result (`id`, `url`, `ticket`, `expiresAt`).
pub async fn create(ws: &mut Ws, id: i64, params: Value) -> Value {
    let reply = ws.request(json!(id), "terminals/create", params).await;
    reply
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("terminals/create failed: {reply}"))
}

/// A server-side project made with `projects/create`, and a `/ws` session on it.
pub async fn project_session(server: &Server, project: &str) -> Ws {
    let mut ws = Ws::connect(&server.url()).await;
    ws.initialize(project, &format!("/{project}")).await;
    let reply = ws
        .request(json!(900), "projects/create", json!({"id": project}))
        .await;
    assert!(reply.get("result").is_some(), "projects/create: {reply}");
    ws
}

/// The full `ws://` address of a terminal `url` (a path) on `server`.
pub fn address(server: &Server, url: &str) -> String {
    format!("ws://127.0.0.1:{}{url}", server.port)
}

/// A `/ws` client on `wss://`, trusting the CA in `ca`.
pub async fn wss_session(url: &str, ca: &std::path::Path) -> Result<Ws, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
            roots
                .add(cert.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(config));
    let (socket, _) =
        tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector))
            .await
            .map_err(|e| e.to_string())?;
    Ok(Ws::from_socket(socket))
}

/// Opens a terminal socket on `wss://`, trusting the CA in `ca` (a PEM file).
pub async fn open_tls(address: &str, ca: &std::path::Path) -> Result<Term, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(config));
    let (socket, _) =
        tokio_tungstenite::connect_async_tls_with_config(address, None, false, Some(connector))
            .await
            .map_err(|e| e.to_string())?;
    Ok(Term {
        socket,
        output: Vec::new(),
        controls: Vec::new(),
        closed: None,
    })
}

/// Opens a terminal socket; `Err` carries the HTTP status of a refused upgrade.
pub async fn open(address: &str, token: Option<&str>) -> Result<Term, u16> {
    let mut request = address.into_client_request().expect("terminal address");
    if let Some(t) = token {
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(Term {
            socket,
            output: Vec::new(),
            controls: Vec::new(),
            closed: None,
        }),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("terminal socket: {e}"),
    }
}

impl Term {
    /// Sends bytes (keystrokes).
    pub async fn send(&mut self, bytes: &[u8]) {
        self.socket
            .send(WsMessage::Binary(bytes.to_vec().into()))
            .await
            .expect("send to terminal");
    }

    /// Sends a control message.
    pub async fn control(&mut self, value: Value) {
        self.socket
            .send(WsMessage::Text(value.to_string().into()))
            .await
            .expect("send control");
    }

    /// The next thing the socket sends (pings skipped), or `None` after `limit`.
    pub async fn event(&mut self, limit: Duration) -> Option<TermEvent> {
        let deadline = Instant::now() + limit;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let event = match tokio::time::timeout(remaining, self.socket.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => TermEvent::Closed(None),
                Ok(Some(Ok(WsMessage::Binary(b)))) => TermEvent::Bytes(b.to_vec()),
                Ok(Some(Ok(WsMessage::Text(t)))) => {
                    TermEvent::Control(serde_json::from_str(t.as_str()).expect("control JSON"))
                }
                Ok(Some(Ok(WsMessage::Close(frame)))) => {
                    TermEvent::Closed(frame.map(|f| u16::from(f.code)))
                }
                Ok(Some(Ok(_))) => continue,
            };
            match &event {
                TermEvent::Bytes(b) => self.output.extend_from_slice(b),
                TermEvent::Control(v) => self.controls.push(v.clone()),
                TermEvent::Closed(code) => self.closed = Some(*code),
            }
            return Some(event);
        }
    }

    /// Reads until the output (since `from`) contains `needle`; panics after [`TIMEOUT`].
    pub async fn until(&mut self, from: usize, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let text =
                String::from_utf8_lossy(&self.output[from.min(self.output.len())..]).into_owned();
            if text.contains(needle) {
                return text;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.event(remaining).await {
                None => panic!("no `{needle}` from the terminal within {TIMEOUT:?}; got {text:?}"),
                Some(TermEvent::Closed(code)) => {
                    panic!("terminal closed ({code:?}) before `{needle}`; got {text:?}")
                }
                Some(_) => {}
            }
        }
    }

    /// Types a line and waits for `needle` in what follows.
    pub async fn run(&mut self, line: &str, needle: &str) -> String {
        let from = self.output.len();
        self.send(format!("{line}\r").as_bytes()).await;
        self.until(from, needle).await
    }

    /// Reads until the socket closes; returns the `exit` code seen (if any) and the close
    /// code.
    pub async fn until_closed(&mut self) -> (Option<i64>, Option<u16>) {
        let deadline = Instant::now() + TIMEOUT;
        while self.closed.is_none() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if self.event(remaining).await.is_none() {
                panic!("the terminal socket did not close within {TIMEOUT:?}");
            }
        }
        let exit = self
            .controls
            .iter()
            .find(|c| c["type"] == "exit")
            .and_then(|c| c["code"].as_i64());
        (exit, self.closed.flatten())
    }

    /// Closes the socket from this side.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

impl Term {
    /// Types keystrokes one at a time at the shell's prompt, each after the echo of the one
    /// before, at least `n` of them and for at least `min`; returns each one's echo time and
    /// clears the line after.
    pub async fn echo_latencies(&mut self, n: usize, min: Duration) -> Vec<Duration> {
        let mut out = Vec::with_capacity(n);
        let begun = Instant::now();
        for i in 0.. {
            if i >= n && begun.elapsed() >= min {
                break;
            }
            let key = [b'a' + (i % 26) as u8];
            let from = self.output.len();
            let started = Instant::now();
            self.send(&key).await;
            loop {
                if self.output[from..].contains(&key[0]) {
                    break;
                }
                match self.event(TIMEOUT).await {
                    None | Some(TermEvent::Closed(_)) => panic!("no echo of keystroke {i}"),
                    Some(_) => {}
                }
            }
            out.push(started.elapsed());
            if i >= n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if i % 50 == 49 {
                self.send(b"\x15").await; // ^U: clear the line
            }
        }
        self.send(b"\x15").await;
        out
    }
}

/// The `q`-quantile of `samples` (sorted in place).
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples.get(i).copied().unwrap_or_default()
}
