//! Documents open in one server (kept across restarts so they can be re-opened) and the
//! diagnostics it pushed for them.

use std::collections::HashMap;
use std::sync::Arc;

use lsp_types::{Diagnostic, PublishDiagnosticsParams, Url};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

/// One open document as the server was last told.
#[derive(Debug, Clone)]
pub(crate) struct OpenDocument {
    pub(crate) language_id: String,
    pub(crate) version: i32,
    pub(crate) text: Arc<str>,
    /// Diagnostics sequence number when this version was sent: a push without a version that
    /// arrives later is taken as describing this version.
    pub(crate) synced_at: u64,
}

/// The open-document table of one managed server.
#[derive(Debug, Default)]
pub(crate) struct Documents {
    pub(crate) open: HashMap<Url, OpenDocument>,
}

/// Diagnostics one server pushed for one document.
#[derive(Debug, Clone)]
struct Published {
    version: Option<i32>,
    diagnostics: Vec<Diagnostic>,
    seq: u64,
}

/// Where a diagnostics report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticsSource {
    /// `textDocument/diagnostic` (pull).
    Pull,
    /// The latest `textDocument/publishDiagnostics` (push).
    Push,
    /// Nothing was received yet.
    None,
}

/// The diagnostics of one document.
#[derive(Debug, Clone, Serialize)]
pub struct DiagnosticsReport {
    /// The document.
    pub uri: Url,
    /// The document version they describe, when known.
    pub version: Option<i32>,
    /// True when they describe the document's current version (not an older one, because the
    /// server had not answered for the latest change within the wait).
    pub fresh: bool,
    /// Pull or push.
    pub source: DiagnosticsSource,
    /// The diagnostics (LSP positions, 0-based).
    pub diagnostics: Vec<Diagnostic>,
}

/// The freshest pushed diagnostics per document. Shared by every instance of one managed
/// server; cleared on restart.
#[derive(Debug)]
pub(crate) struct DiagnosticStore {
    by_uri: Mutex<HashMap<Url, Published>>,
    /// Bumped on every push; waiters watch it to see new diagnostics.
    seq: watch::Sender<u64>,
}

impl Default for DiagnosticStore {
    fn default() -> Self {
        Self {
            by_uri: Mutex::new(HashMap::new()),
            seq: watch::channel(0).0,
        }
    }
}

impl DiagnosticStore {
    pub(crate) fn current_seq(&self) -> u64 {
        *self.seq.borrow()
    }

    pub(crate) fn publish(&self, params: PublishDiagnosticsParams) {
        let mut by_uri = self.by_uri.lock();
        // A push for an older version than one we hold is stale (servers may answer out of
        // order): keep the newer.
        if let (Some(old), Some(new)) = (
            by_uri.get(&params.uri).and_then(|p| p.version),
            params.version,
        ) && new < old
        {
            return;
        }
        let mut seq = 0;
        self.seq.send_modify(|s| {
            *s += 1;
            seq = *s;
        });
        by_uri.insert(
            params.uri,
            Published {
                version: params.version,
                diagnostics: params.diagnostics,
                seq,
            },
        );
    }

    pub(crate) fn clear(&self) {
        self.by_uri.lock().clear();
    }

    /// The stored report, and whether it describes `doc` (its version, or pushed after it was
    /// sent when the server does not give versions).
    pub(crate) fn report(&self, uri: &Url, doc: Option<&OpenDocument>) -> DiagnosticsReport {
        let by_uri = self.by_uri.lock();
        match by_uri.get(uri) {
            None => DiagnosticsReport {
                uri: uri.clone(),
                version: None,
                fresh: false,
                source: DiagnosticsSource::None,
                diagnostics: Vec::new(),
            },
            Some(p) => {
                let fresh = match (doc, p.version) {
                    (None, _) => true,
                    (Some(d), Some(v)) => v >= d.version,
                    (Some(d), None) => p.seq > d.synced_at,
                };
                DiagnosticsReport {
                    uri: uri.clone(),
                    version: p.version,
                    fresh,
                    source: DiagnosticsSource::Push,
                    diagnostics: p.diagnostics.clone(),
                }
            }
        }
    }

    /// The sequence number of the latest push for `uri`.
    pub(crate) fn seq_of(&self, uri: &Url) -> Option<u64> {
        self.by_uri.lock().get(uri).map(|p| p.seq)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.seq.subscribe()
    }
}
