//! The agent's side: newline-delimited JSON-RPC on stdin and stdout.
//!
//! When stdin and stdout are pipes or sockets (how every agent starts an MCP server: Node gives
//! its children socket pairs, Python and Rust give them pipes), both are read and written on
//! the relay's own runtime thread, non-blocking through epoll: a message from the agent reaches
//! the relay loop, and an answer reaches the agent, without waking another thread. Anything
//! else (a terminal, a file) gets a thread per direction doing plain blocking I/O, which only
//! wakes the runtime per message. stdout carries protocol only (every log goes to stderr), and
//! one task or thread owns it so lines never interleave.

use std::io::{BufRead, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::pin::Pin;

use codeflow_transport::frame::Utf8Bytes;
use codeflow_transport::{ErrorObject, Message, codes, legacy};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Lines waiting for stdout. The agent reads its stdout promptly; if it stops, the relay waits
/// rather than dropping its replies.
const STDOUT_QUEUE: usize = 1024;

/// Messages from the agent waiting for the relay loop.
const STDIN_QUEUE: usize = 256;

/// Buffer size for each direction.
const BUFFER: usize = 64 * 1024;

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

/// What one input line becomes: a message for the relay, an error for the agent, or nothing.
fn read_line(line: &str) -> Option<Result<Message, Message>> {
    if line.trim().is_empty() {
        return None;
    }
    Some(parse_line(line).map_err(|e| Message::error(Value::Null, e)))
}

type AsyncIn = Pin<Box<dyn AsyncRead + Send>>;
type AsyncOut = Pin<Box<dyn AsyncWrite + Send>>;

/// Where a standard stream leads, when the runtime can poll it.
enum Stream {
    Pipe(std::fs::File),
    Socket(std::os::unix::net::UnixStream),
}

/// A duplicate of `fd` when it is a pipe or a socket (the runtime then polls it, non-blocking).
/// `None` for a terminal or a file: those use threads.
fn pollable(fd: std::os::fd::BorrowedFd<'_>) -> Option<Stream> {
    let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
    let kind = file.metadata().ok()?.file_type();
    if kind.is_fifo() {
        Some(Stream::Pipe(file))
    } else if kind.is_socket() {
        let socket = std::os::unix::net::UnixStream::from(OwnedFd::from(file));
        socket.set_nonblocking(true).ok()?;
        Some(Stream::Socket(socket))
    } else {
        None
    }
}

fn async_reader(stream: Stream) -> Option<AsyncIn> {
    Some(match stream {
        Stream::Pipe(file) => Box::pin(tokio::net::unix::pipe::Receiver::from_file(file).ok()?),
        Stream::Socket(socket) => Box::pin(tokio::net::UnixStream::from_std(socket).ok()?),
    })
}

fn async_writer(stream: Stream) -> Option<AsyncOut> {
    Some(match stream {
        Stream::Pipe(file) => Box::pin(tokio::net::unix::pipe::Sender::from_file(file).ok()?),
        Stream::Socket(socket) => Box::pin(tokio::net::UnixStream::from_std(socket).ok()?),
    })
}

/// Starts the stdin reader (a task on the runtime, or a thread). Malformed lines are answered
/// on `stdout` directly. Must be called inside the runtime.
pub fn spawn_stdin(stdout: mpsc::Sender<Utf8Bytes>) -> mpsc::Receiver<FromAgent> {
    let (tx, rx) = mpsc::channel(STDIN_QUEUE);
    let input = pollable(std::io::stdin().as_fd()).and_then(async_reader);
    match input {
        Some(input) => {
            tokio::spawn(read_async(input, tx, stdout));
        }
        None => read_on_thread(tx, stdout),
    }
    rx
}

async fn read_async(input: AsyncIn, tx: mpsc::Sender<FromAgent>, stdout: mpsc::Sender<Utf8Bytes>) {
    let mut input = tokio::io::BufReader::with_capacity(BUFFER, input);
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let relay_listens = match read_line(&line) {
            None => true,
            Some(Ok(m)) => tx.send(FromAgent::Message(m)).await.is_ok(),
            Some(Err(answer)) => {
                let _ = stdout.send(answer.to_text().into()).await;
                true
            }
        };
        if !relay_listens {
            return;
        }
    }
    let _ = tx.send(FromAgent::Eof).await;
}

fn read_on_thread(tx: mpsc::Sender<FromAgent>, stdout: mpsc::Sender<Utf8Bytes>) {
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut input = std::io::BufReader::with_capacity(BUFFER, stdin.lock());
            let mut line = String::new();
            loop {
                line.clear();
                match input.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let relay_listens = match read_line(&line) {
                    None => true,
                    Some(Ok(m)) => tx.blocking_send(FromAgent::Message(m)).is_ok(),
                    Some(Err(answer)) => {
                        let _ = stdout.blocking_send(answer.to_text().into());
                        true
                    }
                };
                if !relay_listens {
                    return;
                }
            }
            let _ = tx.blocking_send(FromAgent::Eof);
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the stdin thread: {e}");
    }
}

/// The stdout writer, to wait for on exit so queued replies reach the agent.
pub enum StdoutWriter {
    Task(tokio::task::JoinHandle<()>),
    Thread(std::thread::JoinHandle<()>),
    Missing,
}

impl StdoutWriter {
    /// Waits (at most `limit`) until every queued line is written; the writer ends once every
    /// sender is dropped.
    pub async fn finish(self, limit: std::time::Duration) {
        match self {
            StdoutWriter::Task(task) => {
                let _ = tokio::time::timeout(limit, task).await;
            }
            StdoutWriter::Thread(thread) => {
                let joined = tokio::task::spawn_blocking(move || thread.join());
                let _ = tokio::time::timeout(limit, joined).await;
            }
            StdoutWriter::Missing => {}
        }
    }
}

/// Appends one message's text (one line of JSON, no line break) as a line.
fn push_line(buffer: &mut Vec<u8>, line: &Utf8Bytes) {
    buffer.extend_from_slice(line.as_bytes());
    buffer.push(b'\n');
}

/// Starts the stdout writer (a task on the runtime, or a thread); returns the queue to it,
/// which takes each message's JSON text without a line break (a server's answer passes
/// through as it arrived, see [`codeflow_transport::RawMessage`]). Must be called inside the
/// runtime.
pub fn spawn_stdout() -> (mpsc::Sender<Utf8Bytes>, StdoutWriter) {
    let (tx, rx) = mpsc::channel::<Utf8Bytes>(STDOUT_QUEUE);
    match pollable(std::io::stdout().as_fd()).and_then(async_writer) {
        Some(out) => (tx, StdoutWriter::Task(tokio::spawn(write_async(out, rx)))),
        None => (tx, write_on_thread(rx)),
    }
}

async fn write_async(mut out: AsyncOut, mut rx: mpsc::Receiver<Utf8Bytes>) {
    let mut buffer = Vec::with_capacity(BUFFER);
    while let Some(message) = rx.recv().await {
        // Everything already queued goes out in one write.
        push_line(&mut buffer, &message);
        while buffer.len() < BUFFER {
            match rx.try_recv() {
                Ok(m) => push_line(&mut buffer, &m),
                Err(_) => break,
            }
        }
        if out.write_all(&buffer).await.is_err() || out.flush().await.is_err() {
            return;
        }
        buffer.clear();
    }
}

fn write_on_thread(mut rx: mpsc::Receiver<Utf8Bytes>) -> StdoutWriter {
    std::thread::Builder::new()
        .name("stdout".into())
        .spawn(move || {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(BUFFER, stdout.lock());
            let mut line = Vec::new();
            while let Some(message) = rx.blocking_recv() {
                let mut pending = Some(message);
                // Write everything already queued, then flush once.
                while let Some(m) = pending.take() {
                    line.clear();
                    push_line(&mut line, &m);
                    if out.write_all(&line).is_err() {
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
        .map(StdoutWriter::Thread)
        .unwrap_or_else(|e| {
            tracing::error!("cannot start the stdout thread: {e}");
            StdoutWriter::Missing
        })
}
