//! `organize_imports`: the language server's `source.organizeImports` code action, applied.

use codeflow_lsp_pool::lsp_types::{
    CodeActionContext, CodeActionKind, CodeActionOrCommand, CodeActionParams,
    CodeActionProviderCapability, Position, Range, ServerCapabilities, request::CodeActionRequest,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::edit_output::EditOutcomeExt;
use crate::error::{ToolError, parse_args};
use crate::lsp::Document;
use codeflow_workspace::end_position;

/// The `organize_imports` tool (its description is in `description`).
#[derive(Debug)]
pub struct OrganizeImports;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    #[serde(default)]
    dry_run: bool,
}

impl Tool for OrganizeImports {
    fn name(&self) -> &'static str {
        "organize_imports"
    }

    fn description(&self) -> &'static str {
        "Sort the file's imports and remove unused ones with the language server's source.organizeImports code action, and write the result to your file; use dry_run to see the edits first."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {"type": "string", "description": "The file, absolute or relative to the project root."},
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
            let actions = doc
                .server
                .request::<CodeActionRequest>(CodeActionParams {
                    text_document: doc.identifier(),
                    range: Range::new(Position::new(0, 0), end_position(&doc.text)),
                    context: CodeActionContext {
                        diagnostics: Vec::new(),
                        only: Some(vec![CodeActionKind::SOURCE_ORGANIZE_IMPORTS]),
                        trigger_kind: None,
                    },
                    work_done_progress_params: Default::default(),
                    partial_result_params: Default::default(),
                })
                .await
                .map_err(|e| doc.lsp_error(e))?
                .unwrap_or_default();
            let server = doc.server.server_id().to_owned();
            let action = actions.into_iter().find_map(|a| match a {
                CodeActionOrCommand::CodeAction(a)
                    if a.kind.as_ref().is_some_and(|k| {
                        k.as_str().starts_with(CodeActionKind::SOURCE_ORGANIZE_IMPORTS.as_str())
                    }) =>
                {
                    Some(a)
                }
                _ => None,
            });
            let Some(action) = action else {
                if offers_organize_imports(doc.server.capabilities_now().as_ref()) {
                    // The server can organize imports and found nothing to do.
                    let plan = ctx.edit_plan(ctx.workspace().await?)?;
                    let outcome = plan.commit(args.dry_run).await?;
                    return outcome.report(
                        &format!("Organize imports in {}", doc.file.client),
                        Some(format!(
                            "The imports of {} are already organized.",
                            doc.file.client
                        ),
                    ));
                }
                return Err(ToolError::failed(format!(
                    "language server {server} does not support source.organizeImports for {}",
                    doc.file.client
                ))
                .with_suggestion("this language server cannot do that; try another tool"));
            };
            let Some(edit) = action.edit else {
                return Err(ToolError::failed(format!(
                    "language server {server} answered source.organizeImports with a command only, which CodeFlow cannot apply"
                )));
            };
            let mut plan = ctx.edit_plan(ctx.workspace().await?)?;
            plan.workspace_edit(edit).await?;
            let outcome = plan.commit(args.dry_run).await?;
            outcome.report(
                &format!("Organize imports in {}", doc.file.client),
                Some(format!(
                    "The imports of {} are already organized.",
                    doc.file.client
                ),
            ))
        }
        .boxed()
    }
}

/// Whether the server says it has `source.organizeImports` actions. Only then does an empty
/// answer mean "nothing to organize"; a server that lists no code-action kinds may simply not
/// have the action.
fn offers_organize_imports(capabilities: Option<&ServerCapabilities>) -> bool {
    let organize = CodeActionKind::SOURCE_ORGANIZE_IMPORTS;
    matches!(
        capabilities.and_then(|c| c.code_action_provider.as_ref()),
        Some(CodeActionProviderCapability::Options(options))
            if options.code_action_kinds.as_ref().is_some_and(|kinds| {
                kinds.iter().any(|k| k.as_str().starts_with(organize.as_str()))
            })
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use codeflow_lsp_pool::lsp_types::CodeActionOptions;

    #[test]
    fn only_listed_kinds_count_as_offering_the_action() {
        let with = |provider| ServerCapabilities {
            code_action_provider: Some(provider),
            ..Default::default()
        };
        let listed = with(CodeActionProviderCapability::Options(CodeActionOptions {
            code_action_kinds: Some(vec![CodeActionKind::new("source.organizeImports.ts")]),
            ..Default::default()
        }));
        assert!(offers_organize_imports(Some(&listed)));
        assert!(!offers_organize_imports(Some(&with(
            CodeActionProviderCapability::Simple(true)
        ))));
        assert!(!offers_organize_imports(None));
    }
}
