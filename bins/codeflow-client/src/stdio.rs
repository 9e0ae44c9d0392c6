//! The agent's side: newline-delimited JSON-RPC on stdin and stdout.
//!
//! stdout carries protocol only (every log goes to stderr), and one task owns it so lines
//! never interleave.

use codeflow_transport::{ErrorObject, Message, codes, legacy};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Lines waiting for stdout. The agent reads its stdout promptly; if it stops, the relay waits
/// rather than dropping its replies.
const STDOUT_QUEUE: usize = 1024;

/// What the agent sent: a message, or a line that was not one (already answered).
pub enum FromAgent {
    Message(Message),
    Eof,
}

/// Starts the stdin reader. Malformed lines are answered on `stdout` directly.
pub fn spawn_stdin(stdout: mpsc::Sender<Message>) -> mpsc::Receiver<FromAgent> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        loop {
            let line = match lines.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) | Err(_) => break,
            };
            if line.trim().is_empty() {
                continue;
            }
            let parsed = serde_json::from_str::<Value>(&line)
                .map_err(|e| ErrorObject::new(codes::PARSE_ERROR, format!("line is not JSON: {e}")))
                .and_then(|v| {
                    Message::from_value(legacy::normalise(v))
                        .map_err(|e| ErrorObject::new(codes::INVALID_REQUEST, e.to_string()))
                });
            match parsed {
                Ok(m) => {
                    if tx.send(FromAgent::Message(m)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = stdout.send(Message::error(Value::Null, e)).await;
                }
            }
        }
        let _ = tx.send(FromAgent::Eof).await;
    });
    rx
}

/// Starts the stdout writer; returns the queue to it and the task (await it to flush on exit).
pub fn spawn_stdout() -> (mpsc::Sender<Message>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Message>(STDOUT_QUEUE);
    let task = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(message) = rx.recv().await {
            let mut line = message.to_text();
            line.push('\n');
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    (tx, task)
}
