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
use codeflow_workspace::outcome_output_schema;

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default = "default_tab_size")]
    tab_size: u32,
    #[serde(default = "yes")]
    insert_spaces: bool,
    trim_trailing_whitespace: Option<bool>,
    insert_final_newline: Option<bool>,
    trim_final_newlines: Option<bool>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tab_size: default_tab_size(),
            insert_spaces: true,
            trim_trailing_whitespace: None,
            insert_final_newline: None,
            trim_final_newlines: None,
        }
    }
}

fn default_tab_size() -> u32 {
    4
}

fn yes() -> bool {
    true
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
                        "tab_size": {"type": "integer", "minimum": 1, "default": 4},
                        "insert_spaces": {"type": "boolean", "default": true},
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
        outcome_output_schema()
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
            let edits = doc
                .server
                .request::<Formatting>(DocumentFormattingParams {
                    text_document: doc.identifier(),
                    options: FormattingOptions {
                        tab_size: o.tab_size,
                        insert_spaces: o.insert_spaces,
                        properties: HashMap::new(),
                        trim_trailing_whitespace: o.trim_trailing_whitespace,
                        insert_final_newline: o.insert_final_newline,
                        trim_final_newlines: o.trim_final_newlines,
                    },
                    work_done_progress_params: Default::default(),
                })
                .await
                .map_err(ToolError::from_lsp)?
                .unwrap_or_default();
            let mut plan = ctx.edit_plan(ctx.workspace().await?)?;
            plan.text_edits(&doc.file.mirror, edits).await?;
            let outcome = plan.commit(args.dry_run).await?;
            Ok(outcome.report(
                &format!("Format {}", doc.file.client),
                Some(format!("{} is already formatted.", doc.file.client)),
            ))
        }
        .boxed()
    }
}
