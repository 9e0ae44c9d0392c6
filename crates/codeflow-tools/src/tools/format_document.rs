//! `format_document`: format a file with its language server and write the result.

use std::collections::HashMap;

use codeflow_lsp_pool::lsp_types::{
    DocumentFormattingParams, FormattingOptions, request::Formatting,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::edit_output::EditOutcomeExt;
use crate::error::{ToolError, parse_args};
use crate::lsp::document::Document;

/// The `format_document` tool (its description is in `description`).
#[derive(Debug)]
pub struct FormatDocument;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    #[serde(default)]
    options: Options,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Absent: the file's own indentation width.
    tab_size: Option<u32>,
    /// Absent: tabs if the file indents with tabs, else spaces.
    insert_spaces: Option<bool>,
    trim_trailing_whitespace: Option<bool>,
    insert_final_newline: Option<bool>,
    trim_final_newlines: Option<bool>,
}

/// The file's indentation: (width, spaces rather than tabs). Lines indented with a tab make
/// it tabs; else the width is the greatest common divisor of the space indents (2 for a file
/// indented by 2 and 4 and 6), 4 when nothing is indented.
fn detect_indentation(text: &str) -> (u32, bool) {
    let mut tabs = 0usize;
    let mut spaces = 0usize;
    let mut width = 0u32;
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('\t') {
            tabs += 1;
            continue;
        }
        let n = line.len() - line.trim_start_matches(' ').len();
        // A lone space is alignment (a comment's ` *`), not indentation.
        if n >= 2 {
            spaces += 1;
            width = gcd(width, u32::try_from(n).unwrap_or(4));
        }
    }
    if tabs > spaces {
        return (4, false);
    }
    match width {
        0 => (4, true),
        w => (w.clamp(2, 8), true),
    }
}

impl Tool for FormatDocument {
    fn name(&self) -> &'static str {
        "format_document"
    }

    fn description(&self) -> &'static str {
        "Format a whole file with its language server's formatter (textDocument/formatting) and write the result to your file; use dry_run to see the edits without changing anything."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {"type": "string", "description": "The file, absolute or relative to the project root."},
                "options": {
                    "type": "object",
                    "properties": {
                        "tab_size": {"type": "integer", "minimum": 1, "description": "Indentation width; by default the file's own (2 stays 2), 4 for a file with no indentation."},
                        "insert_spaces": {"type": "boolean", "description": "Spaces rather than tabs; by default as the file indents."},
                        "trim_trailing_whitespace": {"type": "boolean"},
                        "insert_final_newline": {"type": "boolean"},
                        "trim_final_newlines": {"type": "boolean"}
                    },
                    "additionalProperties": false
                },
                "dry_run": {"type": "boolean", "default": false, "description": "Return the edits without changing the file."}
            },
            "required": ["file_path"],
            "additionalProperties": false
        })
    }

    fn output_schema(&self) -> Value {
        crate::output::schema_of::<codeflow_workspace::OutcomeOutput>()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            let args: Args = parse_args(args)?;
            let doc = Document::open(ctx, &args.file_path).await?;
            let o = args.options;
            let (width, spaces) = detect_indentation(&doc.text);
            let tab_size = o.tab_size.unwrap_or(width);
            let insert_spaces = o.insert_spaces.unwrap_or(spaces);
            let edits = doc
                .server
                .request::<Formatting>(DocumentFormattingParams {
                    text_document: doc.identifier(),
                    options: FormattingOptions {
                        tab_size,
                        insert_spaces,
                        properties: HashMap::new(),
                        trim_trailing_whitespace: o.trim_trailing_whitespace,
                        insert_final_newline: o.insert_final_newline,
                        trim_final_newlines: o.trim_final_newlines,
                    },
                    work_done_progress_params: Default::default(),
                })
                .await
                .map_err(|e| doc.lsp_error(e))?
                .unwrap_or_default();
            let mut plan = ctx.edit_plan(ctx.workspace().await?)?;
            plan.text_edits(&doc.file.mirror, edits).await?;
            let outcome = plan.commit(args.dry_run).await?;
            let how = if insert_spaces {
                format!("indent {tab_size} spaces")
            } else {
                "indent with tabs".to_owned()
            };
            outcome.report(
                &format!("Format {} ({how})", doc.file.client),
                Some(format!("{} is already formatted ({how}).", doc.file.client)),
            )
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::detect_indentation;

    #[test]
    fn the_files_own_indentation() {
        assert_eq!(detect_indentation("a {\n  b {\n    c\n  }\n}\n"), (2, true));
        assert_eq!(detect_indentation("def f():\n    return 1\n"), (4, true));
        assert_eq!(detect_indentation("func f() {\n\treturn\n}\n"), (4, false));
        assert_eq!(detect_indentation("x = 1\n"), (4, true));
        assert_eq!(
            detect_indentation("/**\n * doc\n */\nf() {\n  g()\n}\n"),
            (2, true)
        );
    }
}
