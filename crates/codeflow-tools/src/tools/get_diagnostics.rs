//! `get_diagnostics`: errors and warnings for a file, for its current content.

use codeflow_session::Right;
use codeflow_workspace::diagnostics::{code_text, diagnostic_json, severity_name};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{file_path_schema, finish, object};
use crate::lsp::{Document, Locator};

/// The `get_diagnostics` tool (its description is in `description`).
#[derive(Debug)]
pub struct GetDiagnostics;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
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
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "diagnostics": {"type": "array", "items": {"type": "object", "properties": {
                    "severity": {"type": "string", "enum": ["error", "warning", "information", "hint"]},
                    "message": {"type": "string"},
                    "source": {"type": "string"},
                    "code": {"type": "string"},
                    "line": {"type": "integer", "description": "1-based."},
                    "character": {"type": "integer", "description": "1-based."},
                    "end_line": {"type": "integer"},
                    "end_character": {"type": "integer"},
                    "text": {"type": "string", "description": "The line's text, trimmed."}
                }, "required": ["severity", "message", "line", "character"]}},
                "errors": {"type": "integer"},
                "warnings": {"type": "integer"},
                "fresh": {"type": "boolean", "description": "True when they describe the file's current content."},
                "source": {"type": "string", "enum": ["pull", "push", "none"], "description": "Pulled (textDocument/diagnostic) or the latest pushed set."}
            },
            "required": ["path", "diagnostics", "errors", "warnings", "fresh", "source"]
        })
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
                .map_err(crate::lsp::lsp_error)?;
            let locator = Locator::new(ctx).await?;
            let mut diagnostics = report.diagnostics.clone();
            diagnostics.sort_by_key(|d| (d.range.start.line, d.range.start.character));
            let mut rows = Vec::new();
            let mut text = Vec::new();
            let (mut errors, mut warnings) = (0, 0);
            for d in &diagnostics {
                let severity = severity_name(d.severity);
                match severity {
                    "error" => errors += 1,
                    "warning" => warnings += 1,
                    _ => {}
                }
                let row = diagnostic_json(Some(&doc.text), d);
                let origin = match (&d.source, code_text(d)) {
                    (Some(src), Some(c)) => format!(" [{src} {c}]"),
                    (Some(src), None) => format!(" [{src}]"),
                    (None, Some(c)) => format!(" [{c}]"),
                    (None, None) => String::new(),
                };
                text.push(format!(
                    "{}:{}:{}  {severity}: {}{origin}\n    {}",
                    doc.file.client,
                    row["line"],
                    row["character"],
                    d.message.replace('\n', " "),
                    row["text"].as_str().unwrap_or_default()
                ));
                rows.push(row);
            }
            let source = serde_json::to_value(report.source).unwrap_or(json!("none"));
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
            Ok(finish(
                &locator,
                text.join("\n"),
                json!({
                    "path": doc.file.client,
                    "diagnostics": rows,
                    "errors": errors,
                    "warnings": warnings,
                    "fresh": report.fresh,
                    "source": source,
                }),
            ))
        }
        .boxed()
    }
}
