//! Fuzz entry points: one function per kind of network input, each taking raw bytes and
//! required never to panic, whatever the bytes. `fuzz/` runs them under libFuzzer
//! (`cargo +nightly fuzz run <target>`); this crate's `tests/replay.rs` replays the seed corpus
//! in `fuzz/corpus/<target>/` and a deterministic mutation of it on stable, in CI.

#![warn(missing_docs)]

use codeflow_file_stream::protocol::{FileChanged, LineEdit, SyncManifestParams};
use codeflow_file_stream::{ClientPath, Limits, Manifest, PathMap, RelPath};
use serde_json::Value;

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("frame", frame),
    ("handshake", handshake),
    ("paths", paths),
    ("delta", delta),
    ("manifest", manifest),
    ("stream_json", stream_json),
    ("transfer", transfer),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A text frame as the connection task reads it: depth check, JSON, legacy normalisation,
/// JSON-RPC message.
pub fn frame(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if codeflow_transport::connection::nesting_exceeds(text, 64) {
        return;
    }
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        let normalised = codeflow_transport::legacy::normalise(value);
        if let Ok(message) = codeflow_transport::Message::from_value(normalised) {
            let _ = message.to_text();
        }
    }
}

/// `initialize` and `reconnect` params, project ids and roots.
pub fn handshake(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let _ = codeflow_session::ProjectId::parse(text);
    let _ = codeflow_session::ClientRoot::parse(text);
    if let Ok(value) = serde_json::from_str::<Value>(text)
        && let Ok(handshake) = codeflow_session::Handshake::parse(Some(value))
        && let Some(login) = handshake.ssh_login
    {
        // The SSH login's key and signature parsers, on input as the network sends it (the
        // challenge matches, the authorized keys file does not exist).
        let issued = codeflow_session::ssh_login::Challenge {
            value: login.challenge.clone(),
            issued: std::time::Instant::now(),
        };
        let _ = codeflow_session::ssh_login::verify(
            std::path::Path::new("/nonexistent/authorized_keys"),
            &login,
            Some(issued),
        );
    }
}

/// Client paths, relative paths and the client ↔ mirror mapping.
pub fn paths(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let _ = RelPath::parse(text);
    if let Ok(path) = ClientPath::parse(text)
        && let Ok(map) = PathMap::new("/workspace/app", "/srv/mirror/app")
        && let Ok(mirror) = map.to_mirror(&path)
    {
        let _ = map.to_client(&mirror);
    }
    // The first line as a root, the rest as a path under it.
    if let Some((root, rest)) = text.split_once('\n')
        && let Ok(map) = PathMap::new(root, "/srv/mirror/x")
        && let Ok(path) = ClientPath::parse(rest)
    {
        let _ = map.to_mirror(&path);
    }
}

/// A delta (`server/fileChanged` edits) applied to a base: the first line of the input is the
/// edits as JSON, the rest the base.
pub fn delta(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let (edits, base) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(edits) = serde_json::from_str::<Vec<LineEdit>>(edits) {
        let _ = codeflow_file_stream::delta::apply(base, &edits);
    }
    if let Ok(change) = serde_json::from_str::<FileChanged>(text) {
        let _ = serde_json::to_string(&change);
    }
}

/// `server/syncManifest` params, validated into a manifest.
pub fn manifest(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(params) = serde_json::from_str::<SyncManifestParams>(text) {
        let _ = Manifest::from_params(params, &Limits::default());
    }
}

/// The `claude` CLI's stream-json output: bounded lines (a small limit, so over-long lines are
/// exercised), each interpreted as a run would.
pub fn stream_json(data: &[u8]) {
    use codeflow_claude_executor::lines::{Line, LineReader};
    let mut reader = LineReader::new(tokio::io::BufReader::with_capacity(7, data), 64);
    futures::executor::block_on(async {
        while let Ok(Some(line)) = reader.next().await {
            if let Line::Text(bytes) = line {
                let _ = codeflow_claude_executor::stream_json::interpret(&bytes);
            }
        }
    });
}

/// An upload's binary frames on `/ws/file-stream/{operation_id}` (header, chunk, whole file),
/// put together as a receiver does: the input is frames, each a 2-byte big-endian length and
/// that many bytes; the receiver stops at the first framing violation, and checks for `end`
/// after the last frame.
pub fn transfer(data: &[u8]) {
    use codeflow_file_stream::transfer::Assembler;
    let mut assembler = Assembler::default();
    let mut rest = data;
    while let [a, b, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        let frame = bytes::Bytes::copy_from_slice(frame);
        // Refuse some files, as a receiver's checks do, so both paths are taken.
        let check = |h: &codeflow_file_stream::transfer::FileHeader| {
            h.path
                .contains("..")
                .then(|| (-33004, "escapes".to_owned()))
        };
        match assembler.frame(&frame, check) {
            Ok(files) => {
                for file in files {
                    assert!(file.refused.is_some() || file.content.len() == file.header.size);
                }
            }
            Err(_) => return,
        }
    }
    let _ = assembler.end();
}
