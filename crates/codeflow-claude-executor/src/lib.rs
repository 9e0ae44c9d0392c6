//! Runs the `claude` CLI for CodeFlow projects.
//!
//! This crate will own the projects store, `claude -p … --output-format stream-json --verbose`
//! runs (one process group per run, killed as a group; stdin closed; `CLAUDECODE*` variables
//! removed), stream-json parsing, the per-project message log with rotation, and recovery of
//! runs after a server restart. Run output is published on the project's `ai-response` channel
//! and every run ends with exactly one `complete` event (see `docs/protocol.md`).
//!
//! It deliberately knows nothing of WebSocket or LSP.
//!
//! Not built yet: no issue has asked for it so far, and nothing here is wired into the server.
