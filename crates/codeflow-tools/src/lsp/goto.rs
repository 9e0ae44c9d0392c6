//! The "go to" requests (`textDocument/definition`, `implementation`, `typeDefinition`): one
//! call for all of them, and the whole flow of the tools that ask one at a position.

use codeflow_lsp_pool::lsp_types::request::Request;
use codeflow_lsp_pool::lsp_types::{GotoDefinitionParams, GotoDefinitionResponse, Position};
use schemars::JsonSchema;
use serde::Serialize;

use crate::catalogue::ToolOutput;
use crate::context::ToolContext;
use crate::error::ToolError;
use crate::lsp::{Coverage, CoverageMembers, Document, Limited, Locator, Place, render_places};

/// A request answered like `textDocument/definition`.
pub trait GotoRequest:
    Request<Params = GotoDefinitionParams, Result = Option<GotoDefinitionResponse>>
{
}

impl<R> GotoRequest for R where
    R: Request<Params = GotoDefinitionParams, Result = Option<GotoDefinitionResponse>>
{
}

/// The places request `R` answers for `position` in `doc`.
pub async fn goto<R: GotoRequest>(
    doc: &Document,
    locator: &Locator,
    position: Position,
) -> Result<Vec<Place>, ToolError> {
    let response = ask::<R>(doc, position)
        .await
        .map_err(|e| doc.lsp_error(e))?;
    Ok(locator.definition(response).await)
}

/// Like [`goto`] for a position found in the text rather than in the server's outline: the
/// server's error answer for that position (gopls' "no identifier found" for a name inside a
/// string or a comment) is no place instead of a failure; a failure of the server itself
/// (exited, timed out) still fails.
pub async fn goto_at_text<R: GotoRequest>(
    doc: &Document,
    locator: &Locator,
    position: Position,
) -> Result<Vec<Place>, ToolError> {
    match ask::<R>(doc, position).await {
        Ok(response) => Ok(locator.definition(response).await),
        // Not: method not found, and the request cancelled or the content modified (the
        // same question may be answered a moment later, so "none" would be a guess).
        Err(codeflow_lsp_pool::LspError::ServerError { code, .. })
            if !matches!(code, -32601 | -32800 | -32801 | -32802) =>
        {
            Ok(Vec::new())
        }
        Err(e) => Err(doc.lsp_error(e)),
    }
}

async fn ask<R: GotoRequest>(
    doc: &Document,
    position: Position,
) -> Result<Option<GotoDefinitionResponse>, codeflow_lsp_pool::LspError> {
    doc.server
        .request::<R>(GotoDefinitionParams {
            text_document_position_params: doc.at(position),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
        })
        .await
}

/// The answer of a location tool.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LocationsOutput {
    /// The places found.
    pub locations: Vec<Place>,
    /// How many there were before `max_results` cut them.
    pub total: usize,
    /// Whether the list was cut.
    pub truncated: bool,
    /// Whether the answer covers the project (questions that cross files).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<CoverageMembers>,
}

/// The operation a location request is, for servers preferred for it.
fn operation_of(method: &str) -> Option<codeflow_lsp_pool::Operation> {
    use codeflow_lsp_pool::Operation;
    match method {
        "textDocument/implementation" => Some(Operation::Implementation),
        "textDocument/typeDefinition" => Some(Operation::TypeDefinition),
        _ => None,
    }
}

/// A location tool's call: request `R` at a 1-based `line` and `character` of `file_path`,
/// at most `max_results` places; `what` names what it finds in the text. A `cross_file`
/// question (implementations) is prepared so the answer covers the project, or is marked
/// partial (see [`crate::lsp::coverage`]).
pub async fn location_tool<R: GotoRequest>(
    ctx: &ToolContext,
    file_path: &str,
    (line, character): (u32, u32),
    max_results: Option<usize>,
    what: &str,
    cross_file: bool,
) -> Result<ToolOutput, ToolError> {
    let doc = match operation_of(R::METHOD) {
        Some(operation) => Document::open_for(ctx, file_path, operation).await?,
        None => Document::open(ctx, file_path).await?,
    };
    let position = doc.position(line, character)?;
    let coverage = if cross_file {
        Some(crate::lsp::coverage::prepare_at(&doc, position, false).await?)
    } else {
        None
    };
    let locator = Locator::new(ctx).await?;
    let limited = Limited::new(goto::<R>(&doc, &locator, position).await?, max_results);
    let mut text = if limited.items.is_empty() {
        format!("No {what} found at {}:{line}:{character}.", doc.file.client)
    } else {
        render_places(&limited.items)
    };
    if let Some(n) = limited.notice(what) {
        text.push('\n');
        text.push_str(&n);
    }
    if let Some(coverage) = &coverage {
        coverage.note(&mut text);
    }
    let out = LocationsOutput {
        locations: limited.items,
        total: limited.total,
        truncated: limited.truncated,
        coverage: coverage.as_ref().map(Coverage::members),
    };
    ToolOutput::typed(text, &out)
}
