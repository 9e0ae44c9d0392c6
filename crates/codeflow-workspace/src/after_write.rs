//! What a write broke: after a write, the diagnostics of the files it touched, once their
//! language servers have seen the new content.
//!
//! Each touched file (edited, created, or the target of a rename) is synced to its language
//! server at the mirror's new content, then its diagnostics are asked for: pulled where the
//! server supports it, else the pushed sets that describe the new version — a bounded wait on
//! `publishDiagnostics` until the server has been quiet for [`SETTLE`] after its first fresh
//! set ([`codeflow_lsp_pool::ServerHandle::diagnostics_settled`]: tsserver publishes a
//! version's syntax errors, then its semantic ones), never a fixed sleep. Files are asked in parallel, and the whole step is bounded by
//! [`AFTER_WRITE_LIMIT`]; a file whose server did not answer in time is reported with
//! `fresh: false`. Files no language server handles are left out. Every run is also published
//! on the project's `validation` channel.

use std::time::Duration;

use std::path::Path;

use codeflow_file_stream::MirrorPath;
use codeflow_lsp_pool::{DiagnosticsReport, ServerHandle};
use codeflow_session::Channel;
use serde_json::json;

use crate::caller::Caller;
use crate::diagnostics::{DiagnosticRow, Severity, diagnostic_row};
use crate::workspace::ProjectWorkspace;

/// The longest the diagnostics of one write are waited for, all files together.
pub const AFTER_WRITE_LIMIT: Duration = Duration::from_secs(10);

/// The wait for a file whose server had reported no diagnostics before the change: a server
/// that publishes only changes stays silent when it stays clean.
pub const CLEAN_LIMIT: Duration = Duration::from_secs(3);

/// The wait for a file its server never published diagnostics for (it may publish none).
pub const NEVER_LIMIT: Duration = Duration::from_secs(5);

const NEVER_PUBLISHED: &str = "the language server has published no diagnostics for this file (some never do, e.g. bash-language-server without shellcheck)";

const SILENT_CLEAN: &str = "the language server published nothing for the new content; it had reported no diagnostics before (a server that publishes only changes stays silent while a file stays clean)";

/// After the first diagnostics for the new content, later pushes for the file are taken until
/// none comes for this long (tsserver publishes syntax errors first, semantic ones after);
/// a server's `diagnostics_settle` overrides it (zero for those that push once per version).
pub const SETTLE: Duration = Duration::from_millis(500);

/// At most this many diagnostics per file are listed in a tool's text answer.
const SHOWN_PER_FILE: usize = 20;

/// One file's diagnostics after a change.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct FileDiagnostics {
    /// The file, as the caller's path.
    pub path: String,
    /// The language server that reported them.
    pub server: String,
    /// True when they describe the file's new content; false when the server did not answer
    /// in time (then they may be stale or missing).
    pub fresh: bool,
    /// How many rows are errors.
    pub errors: usize,
    /// How many rows are warnings.
    pub warnings: usize,
    /// Rows as `get_diagnostics` gives them (1-based, with the line's text).
    pub diagnostics: Vec<DiagnosticRow>,
    /// Why they may not be fresh, when more is known (a server that publishes only changes
    /// stays silent while a file stays clean).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl FileDiagnostics {
    /// A file's rows, counted.
    pub fn new(
        path: String,
        server: String,
        fresh: bool,
        diagnostics: Vec<DiagnosticRow>,
        note: Option<String>,
    ) -> Self {
        let count = |s: Severity| diagnostics.iter().filter(|d| d.severity == s).count();
        Self {
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
            path,
            server,
            fresh,
            diagnostics,
            note,
        }
    }
}

/// One row as a line of text: `path:line:character  severity: message [source code]`.
pub fn row_text(path: &str, row: &DiagnosticRow) -> String {
    let origin = match (&row.source, &row.code) {
        (Some(s), Some(c)) => format!(" [{s} {c}]"),
        (Some(s), None) => format!(" [{s}]"),
        (None, Some(c)) => format!(" [{c}]"),
        (None, None) => String::new(),
    };
    let mut line = format!(
        "{path}:{}:{}  {}: {}{origin}",
        row.line,
        row.character,
        row.severity.name(),
        row.message.as_str().replace('\n', " ")
    );
    if let Some(text) = row.text.as_deref().filter(|t| !t.is_empty()) {
        line.push_str(&format!("\n      {text}"));
    }
    line
}

/// The text block for diagnostics after a change (empty when there are none to report).
pub fn diagnostics_text(files: &[FileDiagnostics]) -> String {
    if files.is_empty() {
        return String::new();
    }
    let mut out = String::from("Diagnostics after the change:");
    for f in files {
        let (errors, warnings) = (f.errors, f.warnings);
        out.push_str(&format!(
            "\n- {}: {errors} error(s), {warnings} warning(s){}",
            f.path,
            match (&f.note, f.fresh) {
                (_, true) => String::new(),
                (Some(note), false) => format!(" ({note})"),
                (None, false) => " (the language server had not answered for the new content in time; may be stale)".to_owned(),
            }
        ));
        for (shown, row) in f
            .diagnostics
            .iter()
            .filter(|r| matches!(r.severity, Severity::Error | Severity::Warning))
            .enumerate()
        {
            if shown == SHOWN_PER_FILE {
                out.push_str("\n    …");
                break;
            }
            out.push_str("\n    ");
            out.push_str(&row_text(&f.path, row).replace('\n', "\n    "));
        }
    }
    out
}

/// The diagnostics of `files` (mirror paths that exist after the change) as their language
/// servers see them now: each file is synced to its server at the mirror's content first. Files
/// no configured server handles are left out; the wait is bounded (see the module docs).
pub async fn diagnostics_of(
    caller: &Caller,
    workspace: &ProjectWorkspace,
    files: &[MirrorPath],
) -> Vec<FileDiagnostics> {
    let asks = files.iter().map(|path| async move {
        let server = workspace.lease.server_for_file(path.as_path()).await.ok()?;
        let bytes = workspace.mirror.read(path).await.ok()?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        server.sync_document(path.as_path(), text.clone()).ok()?;
        let client = caller.client_path(workspace, path);
        let server_id = server.server_id().to_owned();
        let (last, silent_clean) = wait_fresh(&server, path.as_path()).await;
        let Some(report) = last else {
            return Some(FileDiagnostics::new(
                client,
                server_id,
                false,
                Vec::new(),
                silent_clean,
            ));
        };
        let mut diagnostics = report.diagnostics;
        diagnostics.sort_by_key(|d| (d.range.start.line, d.range.start.character));
        let scrubber = caller.scrubber(workspace);
        Some(FileDiagnostics::new(
            client,
            server_id,
            report.fresh,
            diagnostics
                .iter()
                .map(|d| diagnostic_row(Some(&text), d, &scrubber))
                .collect(),
            if report.fresh { None } else { silent_clean },
        ))
    });
    let found: Vec<FileDiagnostics> = futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    publish_run(caller, "write", &found);
    found
}

/// Publishes one diagnostics run on the project's `validation` channel: what started it
/// (`write`, `preview_edit`, …) and, per file, its counts and rows.
pub fn publish_run(caller: &Caller, trigger: &str, files: &[FileDiagnostics]) {
    if files.is_empty() {
        return;
    }
    let Some(registry) = caller.registry() else {
        return;
    };
    registry.channels().publish(
        &caller.project,
        Channel::Validation,
        json!({
            "kind": "diagnostics",
            "trigger": trigger,
            "session": caller.id,
            "files": files,
        }),
    );
}

/// Waits (bounded) for diagnostics describing the document's current content at `path` on
/// `server`, after a change was sent: the report (the last one had, when none was fresh in
/// time; `None` when the server failed) and, when the server stayed silent about a file it had
/// reported clean, a note saying so. See the module docs for the bounds.
pub async fn wait_fresh(
    server: &ServerHandle,
    path: &Path,
) -> (Option<DiagnosticsReport>, Option<String>) {
    let server_id = server.server_id().to_owned();
    // What the server said before the change: one that publishes only changes
    // (typescript-language-server) says nothing when a clean file stays clean, so then the
    // wait is short.
    let before = server.pushed_diagnostics(path).ok();
    let was_clean = before.as_ref().is_some_and(|r| {
        r.source == codeflow_lsp_pool::DiagnosticsSource::Push && r.diagnostics.is_empty()
    });
    // Nothing ever published for this document: a server that reports no diagnostics at all
    // (bash-language-server without shellcheck) would make every write wait the whole limit.
    let never = before
        .as_ref()
        .is_some_and(|r| r.source == codeflow_lsp_pool::DiagnosticsSource::None)
        && server
            .capabilities_now()
            .is_none_or(|c| c.diagnostic_provider.is_none());
    // The server's own wait for a fresh push is bounded (`diagnostics_timeout`); a server
    // still loading the project is asked again until the limit.
    let deadline = tokio::time::Instant::now()
        + if was_clean {
            CLEAN_LIMIT
        } else if never {
            NEVER_LIMIT
        } else {
            AFTER_WRITE_LIMIT
        };
    let mut last = None;
    for _ in 0..3 {
        match tokio::time::timeout_at(deadline, server.diagnostics_settled(path, SETTLE)).await {
            Ok(Ok(report)) => {
                let fresh = report.fresh;
                last = Some(report);
                if fresh {
                    break;
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(server = %server_id, error = %e, "diagnostics after a write");
                break;
            }
            Err(_) => break,
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    let note = if was_clean {
        Some(SILENT_CLEAN.to_owned())
    } else if never {
        Some(NEVER_PUBLISHED.to_owned())
    } else {
        None
    };
    (last, note)
}
