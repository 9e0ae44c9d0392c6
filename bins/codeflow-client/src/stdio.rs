//! The agent's side: newline-delimited JSON-RPC on stdin and stdout.
//!
//! Each direction has a thread of its own doing plain blocking I/O. Async stdio in tokio hands
//! every read to the blocking pool, which costs a thread switch per line; a dedicated thread
//! reads and writes in large buffered chunks and only wakes the runtime per message. stdout
//! carries protocol only (every log goes to stderr), and one thread owns it so lines never
//! interleave.

use std::io::{BufRead, Write};

use codeflow_transport::{ErrorObject, Message, codes, legacy};
use serde_json::Value;
use tokio::sync::mpsc;

/// Lines waiting for stdout. The agent reads its stdout promptly; if it stops, the relay waits
/// rather than dropping its replies.
const STDOUT_QUEUE: usize = 1024;

/// What the agent sent.
pub enum FromAgent {
    Message(Message),
    Eof,
}

fn parse_line(line: &str) -> Result<Message, ErrorObject> {
    let value: Value = serde_json::from_str(line)
        .map_err(|e| ErrorObject::new(codes::PARSE_ERROR, format!("line is not JSON: {e}")))?;
    Message::from_value(legacy::normalise(value))
        .map_err(|e| ErrorObject::new(codes::INVALID_REQUEST, e.to_string()))
}

/// Starts the stdin reader. Malformed lines are answered on `stdout` directly.
pub fn spawn_stdin(stdout: mpsc::Sender<Message>) -> mpsc::Receiver<FromAgent> {
    let (tx, rx) = mpsc::channel(256);
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut input = std::io::BufReader::with_capacity(64 * 1024, stdin.lock());
            let mut line = String::new();
            loop {
                line.clear();
                match input.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if line.trim().is_empty() {
                    continue;
                }
                match parse_line(&line) {
                    Ok(m) => {
                        if tx.blocking_send(FromAgent::Message(m)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = stdout.blocking_send(Message::error(Value::Null, e));
                    }
                }
            }
            let _ = tx.blocking_send(FromAgent::Eof);
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the stdin thread: {e}");
    }
    rx
}

/// Starts the stdout writer; returns the queue to it and the thread (join it to flush on exit;
/// it ends when every sender is dropped).
pub fn spawn_stdout() -> (mpsc::Sender<Message>, Option<std::thread::JoinHandle<()>>) {
    let (tx, mut rx) = mpsc::channel::<Message>(STDOUT_QUEUE);
    let handle = std::thread::Builder::new()
        .name("stdout".into())
        .spawn(move || {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
            while let Some(message) = rx.blocking_recv() {
                let mut pending = Some(message);
                // Write everything already queued, then flush once.
                while let Some(m) = pending.take() {
                    let mut line = m.to_text();
                    line.push('\n');
                    if out.write_all(line.as_bytes()).is_err() {
                        return;
                    }
                    pending = rx.try_recv().ok();
                }
                if out.flush().is_err() {
                    return;
                }
            }
            let _ = out.flush();
        })
        .map_err(|e| tracing::error!("cannot start the stdout thread: {e}"))
        .ok();
    (tx, handle)
}
