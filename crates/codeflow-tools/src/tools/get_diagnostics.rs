//! `get_diagnostics`: errors and warnings for a file, for its current content.

use codeflow_lsp_pool::DiagnosticsSource;
use codeflow_session::Right;
use codeflow_workspace::diagnostics::{DiagnosticRow, Severity, diagnostic_row};
use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{file_path_schema, object};
use crate::lsp::{Document, Locator};
use crate::output::schema_of;

/// The `get_diagnostics` tool (its description is in `description`).
#[derive(Debug)]
pub struct GetDiagnostics;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    path: String,
    diagnostics: Vec<DiagnosticRow>,
    errors: usize,
    warnings: usize,
    /// True when they describe the file's current content.
    fresh: bool,
    /// Pulled (textDocument/diagnostic) or the latest pushed set.
    source: Source,
}

/// Where the diagnostics came from.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Source {
    Pull,
    Push,
    None,
}

impl From<DiagnosticsSource> for Source {
    fn from(s: DiagnosticsSource) -> Self {
        match s {
            DiagnosticsSource::Pull => Self::Pull,
            DiagnosticsSource::Push => Self::Push,
            DiagnosticsSource::None => Self::None,
        }
    }
}

impl Tool for GetDiagnostics {
    fn name(&self) -> &'static str {
        "get_diagnostics"
    }

    fn description(&self) -> &'static str {
        "Report the language server's errors and warnings for a file as it is now (1-based positions, with the line's text); use it after editing to check the file compiles and lints clean."
    }

    fn input_schema(&self) -> Value {
        let mut props = serde_json::Map::new();
        props.insert("file_path".into(), file_path_schema());
        object(props, &["file_path"])
    }

    fn output_schema(&self) -> Value {
        schema_of::<Output>()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            ctx.require(Right::LspQuery)?;
            let args: Args = parse_args(args)?;
            let doc = Document::open(ctx, &args.file_path).await?;
            let report = doc
                .server
                .diagnostics(doc.file.mirror.as_path())
                .await
                .map_err(|e| doc.lsp_error(e))?;
            let locator = Locator::new(ctx).await?;
            let mut diagnostics = report.diagnostics.clone();
            diagnostics.sort_by_key(|d| (d.range.start.line, d.range.start.character));
            let mut rows = Vec::new();
            let mut text = Vec::new();
            let (mut errors, mut warnings) = (0, 0);
            for d in &diagnostics {
                let row = diagnostic_row(Some(&doc.text), d, locator.scrubber());
                match row.severity {
                    Severity::Error => errors += 1,
                    Severity::Warning => warnings += 1,
                    _ => {}
                }
                let origin = match (&row.source, &row.code) {
                    (Some(src), Some(c)) => format!(" [{src} {c}]"),
                    (Some(src), None) => format!(" [{src}]"),
                    (None, Some(c)) => format!(" [{c}]"),
                    (None, None) => String::new(),
                };
                text.push(format!(
                    "{}:{}:{}  {}: {}{origin}\n    {}",
                    doc.file.client,
                    row.line,
                    row.character,
                    row.severity.name(),
                    row.message.as_str().replace('\n', " "),
                    row.text.as_deref().unwrap_or_default()
                ));
                rows.push(row);
            }
            let mut head = if rows.is_empty() {
                format!("No diagnostics for {}.", doc.file.client)
            } else {
                format!(
                    "{} error(s), {} warning(s), {} diagnostic(s) in total for {}:",
                    errors,
                    warnings,
                    rows.len(),
                    doc.file.client
                )
            };
            if !report.fresh {
                head.push_str("\nWarning: the language server has not yet answered for the file's latest content; these may be stale.");
            }
            text.insert(0, head);
            let out = Output {
                path: doc.file.client.clone(),
                diagnostics: rows,
                errors,
                warnings,
                fresh: report.fresh,
                source: report.source.into(),
            };
            ToolOutput::typed(text.join("\n"), &out)
        }
        .boxed()
    }
}
