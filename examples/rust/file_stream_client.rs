//! A file-stream client in a process of its own, built from the libraries' public API: a
//! `Watcher` and a `FileServer` (`codeflow-file-stream`) over one WebSocket connection
//! (`codeflow-transport`) to a running `codeflow-server`. It is the relay's file side without
//! its MCP side:
//!
//! - sends the watcher's manifest as `server/syncManifest` and serves the server's `client/*`
//!   requests (reads while the mirror syncs, and the write-back of the write tools) with the
//!   `FileServer`, inside the root's jail;
//! - streams every change the watcher sees as `server/fileChanged`, and flushes the watcher
//!   before each tool call, so a call sees every change made before it;
//! - reads commands from stdin, one per line: `TOOL {json arguments}`, and prints each
//!   tool's result as one JSON line (the first line printed is the sync's result).
//!
//! ```sh
//! cargo run -p codeflow-e2e --example file_stream_client -- ws://127.0.0.1:3000/ws demo "$PWD"
//! get_document_symbols {"file_path": "app.py"}
//! ```
//! `CODEFLOW_TOKEN` is sent when set. `tests/e2e/file_stream_client.rs` runs it.

use std::sync::Arc;
use std::time::Duration;

use codeflow_file_stream::{FileChanged, FileServer, Limits, Watcher, WatcherConfig};
use codeflow_transport::{
    ConnectionConfig, ErrorObject, Message, Outbound, PendingRequests, connect,
};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

type Error = Box<dyn std::error::Error + Send + Sync>;

const CALL_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [server, project, root] = args.as_slice() else {
        return Err("usage: file_stream_client SERVER_URL PROJECT ROOT".into());
    };
    let root = std::fs::canonicalize(root)?;
    let root_text = root.to_str().ok_or("the root is not UTF-8")?.to_owned();

    // The watcher scans the tree (the manifest) and then reports every change into `changes`
    // (bounded: when it is full the watcher waits; it never drops a change).
    let (changes_tx, mut changes) = mpsc::channel::<FileChanged>(256);
    let watcher = Watcher::start(&root, WatcherConfig::default(), changes_tx).await?;
    // The server's requests are served here; writes it makes are told to the watcher, so it
    // does not report them back as the user's changes.
    let files =
        Arc::new(FileServer::new(&root, Limits::default())?.reporting_to(watcher.write_notices()));

    let token = std::env::var("CODEFLOW_TOKEN").ok();
    let (outbound, mut inbound) =
        connect(server, token.as_deref(), &ConnectionConfig::default()).await?;
    let pending = PendingRequests::new("example");

    // One task reads the connection: answers go to their waiters, `client/*` requests to the
    // file server (each on a task of its own, so a large read does not hold up the others).
    let router = pending.clone();
    let serve_out = outbound.clone();
    tokio::spawn(async move {
        while let Some(message) = inbound.recv().await {
            let Some(Message::Request { id, method, params }) = router.resolve(message) else {
                continue; // answers were delivered; notifications are not needed here
            };
            let files = Arc::clone(&files);
            let out = serve_out.clone();
            tokio::spawn(async move {
                let reply = if method.starts_with("client/") {
                    match files.handle(&method, params.unwrap_or(Value::Null)).await {
                        Ok(result) => Message::response(id, result),
                        Err(e) => Message::error(id, ErrorObject::from(e)),
                    }
                } else {
                    Message::error(
                        id,
                        ErrorObject::new(-32601, format!("{method} is not served")),
                    )
                };
                let _ = out.send(&reply);
            });
        }
    });

    let call = |method: &'static str, params: Value| {
        let request = pending.register(method, params);
        let sent = outbound.send(&request.message);
        async move {
            sent.map_err(|e| format!("the connection is gone: {e}"))?;
            request
                .response(CALL_TIMEOUT)
                .await
                .map_err(|e| Error::from(format!("{method}: {} ({})", e.message, e.code)))
        }
    };

    call(
        "initialize",
        json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"experimental": {"codeflow": {"fileStream": true}}},
            "clientInfo": {"name": "file-stream-example", "version": "0.1"},
            "project": project,
            "projectRoot": root_text,
        }),
    )
    .await?;
    outbound.send(&Message::notification(
        "notifications/initialized",
        json!({}),
    ))?;
    let synced = call(
        "server/syncManifest",
        serde_json::to_value(watcher.manifest().to_params())?,
    )
    .await?;
    println!("{synced}");

    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            Some(change) = changes.recv() => send_change(&outbound, &change)?,
            line = stdin.next_line() => {
                let Some(line) = line? else { break };
                let (tool, arguments) = line.trim().split_once(' ').unwrap_or((line.trim(), "{}"));
                if tool.is_empty() {
                    continue;
                }
                let arguments: Value = serde_json::from_str(arguments)?;
                // Read-your-writes: every change on disk before this line goes out first.
                let flush = watcher.start_flush();
                tokio::pin!(flush);
                loop {
                    tokio::select! {
                        done = &mut flush => { done?; break }
                        Some(change) = changes.recv() => send_change(&outbound, &change)?,
                    }
                }
                while let Ok(change) = changes.try_recv() {
                    send_change(&outbound, &change)?;
                }
                let result = call("tools/call", json!({"name": tool, "arguments": arguments})).await?;
                println!("{result}");
            }
        }
    }
    outbound.close(1000, "stdin closed");
    watcher.stop().await;
    Ok(())
}

/// One change of the watcher as `server/fileChanged`; the connection keeps the order.
fn send_change(outbound: &Outbound, change: &FileChanged) -> Result<(), Error> {
    outbound.send(&Message::notification(
        "server/fileChanged",
        serde_json::to_value(change)?,
    ))?;
    Ok(())
}
