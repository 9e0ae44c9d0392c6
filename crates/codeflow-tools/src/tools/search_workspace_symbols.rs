//! `search_workspace_symbols`: symbols by (fuzzy) name across the project, from every
//! language server the project's files need.

use std::collections::BTreeMap;

use codeflow_lsp_pool::lsp_types::request::WorkspaceSymbolRequest;
use codeflow_lsp_pool::lsp_types::{OneOf, Range, WorkspaceSymbolParams, WorkspaceSymbolResponse};
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{object, with_warnings};
use crate::lsp::coverage::Wanted;
use crate::lsp::limit::max_results_schema;
use crate::lsp::{Coverage, Document, FileRef, Limited, Locator, Place, kind_name};
use crate::lsp::{CoverageMembers, SymbolPlace};
use crate::output::schema_of;
use schemars::JsonSchema;
use serde::Serialize;

/// The `search_workspace_symbols` tool (its description is in `description`).
#[derive(Debug)]
pub struct SearchWorkspaceSymbols;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    query: String,
    #[serde(default)]
    workspace_path: Option<String>,
    #[serde(default)]
    max_results: Option<usize>,
}

/// Directories whose files never pick a language server for the search.
fn is_vendored(rel: &str) -> bool {
    rel.split('/')
        .any(|c| matches!(c, "node_modules" | "vendor" | "target" | ".git"))
}

/// One project file per language server (the one under `within` first): opening it makes the
/// server load the project, so its workspace search has something to search.
pub(crate) async fn files_per_server(
    ctx: &ToolContext,
    within: Option<&str>,
) -> Result<BTreeMap<String, String>, ToolError> {
    let workspace = ctx.workspace().await?;
    let mut by_extension: BTreeMap<String, String> = BTreeMap::new();
    for rel in workspace.mirror.files().keys() {
        let rel = rel.as_str();
        if is_vendored(rel) || within.is_some_and(|w| !rel.starts_with(w)) {
            continue;
        }
        if let Some((_, ext)) = rel.rsplit_once('.').filter(|(_, e)| !e.contains('/')) {
            by_extension
                .entry(ext.to_owned())
                .or_insert_with(|| rel.to_owned());
        }
    }
    let mut per_server = BTreeMap::new();
    for rel in by_extension.into_values() {
        let mirror = workspace.mirror.paths().mirror_path(
            &codeflow_file_stream::RelPath::parse(&rel)
                .map_err(|e| ToolError::failed(e.to_string()))?,
        );
        if let Ok(server) = workspace
            .lease
            .server_for_operation(
                mirror.as_path(),
                codeflow_lsp_pool::Operation::WorkspaceSymbols,
            )
            .await
        {
            per_server
                .entry(server.server_id().to_owned())
                .or_insert(rel);
        }
    }
    Ok(per_server)
}

/// `workspace/symbol` for `query` on the document's server.
async fn ask(
    doc: &Document,
    query: &str,
) -> Result<Option<WorkspaceSymbolResponse>, codeflow_lsp_pool::LspError> {
    doc.server
        .request::<WorkspaceSymbolRequest>(WorkspaceSymbolParams {
            query: query.to_owned(),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
        })
        .await
}

fn is_empty(response: Option<&WorkspaceSymbolResponse>) -> bool {
    match response {
        None => true,
        Some(WorkspaceSymbolResponse::Flat(list)) => list.is_empty(),
        Some(WorkspaceSymbolResponse::Nested(list)) => list.is_empty(),
    }
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    query: String,
    symbols: Vec<Found>,
    total: usize,
    truncated: bool,
    /// Language servers asked.
    servers: Vec<String>,
    warnings: Vec<String>,
    #[serde(flatten)]
    coverage: CoverageMembers,
}

/// A symbol found.
#[derive(Debug, Serialize, JsonSchema)]
struct Found {
    #[serde(flatten)]
    symbol: SymbolPlace,
    container: String,
}

impl Tool for SearchWorkspaceSymbols {
    fn name(&self) -> &'static str {
        "search_workspace_symbols"
    }

    fn description(&self) -> &'static str {
        "Search the whole project for symbols (classes, functions, variables) whose names match a query; use it when you know a name but not which file declares it."
    }

    fn input_schema(&self) -> Value {
        let mut props = serde_json::Map::new();
        props.insert("query".into(), json!({"type": "string", "description": "The name or part of it; servers match fuzzily."}));
        props.insert("workspace_path".into(), json!({"type": "string", "description": "Only results under this file or directory (absolute, or relative to the project root); the whole project when omitted."}));
        props.insert("max_results".into(), max_results_schema("symbols"));
        object(props, &["query"])
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
            let locator = Locator::new(ctx).await?;
            let within = match &args.workspace_path {
                Some(p) => {
                    let resolved = ctx.resolve(p).await?;
                    Some(resolved.mirror.rel().as_str().to_owned())
                }
                None => None,
            };
            let files = files_per_server(ctx, within.as_deref()).await?;
            if files.is_empty() {
                return Err(ToolError::failed(
                    "no file in the project (or under workspace_path) has a language server",
                )
                .with_suggestion("check workspace_path; files reach the server through codeflow-client's sync"));
            }
            let mut warnings = Vec::new();
            let mut servers = Vec::new();
            let mut missing = Vec::new();
            let mut rows: Vec<(Place, String, &'static str, String)> = Vec::new();
            let mut coverage = Coverage::default();
            for (server_id, rel) in &files {
                let doc = Document::open_for(
                    ctx,
                    rel,
                    codeflow_lsp_pool::Operation::WorkspaceSymbols,
                )
                .await?;
                // A server that sees only open files searches those: open the ones that
                // contain the query.
                coverage = coverage.and(
                    crate::lsp::coverage::prepare(
                        doc.workspace(),
                        &doc.server,
                        doc.file.mirror.rel().as_str(),
                        Wanted::Text(&args.query),
                        false,
                    )
                    .await?,
                );
                // A server that has just opened the file may still be loading the project
                // (typescript-language-server answers from the opened file alone until its
                // program is built): once the file's diagnostics describe it, it has been
                // analysed with the project (at once on a warm server, bounded on a cold one).
                let path = doc.file.mirror.as_path();
                if !doc
                    .server
                    .pushed_diagnostics(path)
                    .is_ok_and(|report| report.fresh)
                {
                    let _ = doc.server.diagnostics(path).await;
                }
                let mut response = match ask(&doc, &args.query).await {
                    Ok(r) => r,
                    Err(e @ codeflow_lsp_pool::LspError::CapabilityMissing { .. }) => {
                        missing.push(ToolError::from_lsp(e).to_string());
                        continue;
                    }
                    Err(e) => return Err(doc.lsp_error(e)),
                };
                if is_empty(response.as_ref()) {
                    // A server that has just started may answer before it has found the
                    // project's files (basedpyright does): once it has analysed the opened
                    // file (its diagnostics, bounded wait), ask again.
                    let _ = doc.server.diagnostics(doc.file.mirror.as_path()).await;
                    response = ask(&doc, &args.query)
                        .await
                        .map_err(|e| doc.lsp_error(e))?;
                }
                servers.push(server_id.clone());
                let found: Vec<(String, _, Option<String>, _, Range)> = match response {
                    None => Vec::new(),
                    Some(WorkspaceSymbolResponse::Flat(list)) => list
                        .into_iter()
                        .map(|s| (s.name, s.kind, s.container_name, s.location.uri, s.location.range))
                        .collect(),
                    Some(WorkspaceSymbolResponse::Nested(list)) => list
                        .into_iter()
                        .map(|s| {
                            let (uri, range) = match s.location {
                                OneOf::Left(l) => (l.uri, l.range),
                                OneOf::Right(w) => (w.uri, Range::default()),
                            };
                            (s.name, s.kind, s.container_name, uri, range)
                        })
                        .collect(),
                };
                for (name, kind, container, uri, range) in found {
                    let Some(FileRef::Project { mirror, .. }) = locator.file(&uri) else {
                        continue; // libraries and the standard library are not the project
                    };
                    if within.as_deref().is_some_and(|w| !mirror.rel().as_str().starts_with(w)) {
                        continue;
                    }
                    let place = locator.place(&uri, range).await;
                    rows.push((place, name, kind_name(kind), container.unwrap_or_default()));
                }
            }
            if servers.is_empty() {
                return Err(ToolError::failed(missing.join("; ")).with_suggestion(
                    "this project's language servers cannot search the workspace; use get_document_symbols on a file, or find_definition",
                ));
            }
            warnings.extend(missing);
            // Exact names first, then names starting with the query, then the rest.
            let q = args.query.to_lowercase();
            rows.sort_by_key(|(p, name, _, _)| {
                let n = name.to_lowercase();
                let rank = if n == q { 0 } else if n.starts_with(&q) { 1 } else { 2 };
                (rank, p.path.clone(), p.line, p.character)
            });
            rows.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
            let limited = Limited::new(rows, args.max_results);
            let mut lines: Vec<String> = limited
                .items
                .iter()
                .map(|(p, name, kind, _)| format!("{kind} {name}  {}", p.render()))
                .collect();
            if lines.is_empty() {
                lines.push(format!("No symbols match `{}`.", args.query));
            }
            if let Some(n) = limited.notice("symbols") {
                lines.push(n);
            }
            let symbols: Vec<Found> = limited
                .items
                .iter()
                .map(|(p, name, kind, container)| Found {
                    symbol: p.clone().symbol(name, kind),
                    container: container.clone(),
                })
                .collect();
            let mut text = lines.join("\n");
            coverage.note(&mut text);
            let text = with_warnings(text, &warnings);
            let out = Output {
                query: args.query,
                symbols,
                total: limited.total,
                truncated: limited.truncated,
                servers,
                warnings,
                coverage: coverage.members(),
            };
            ToolOutput::typed(text, &out)
        }
        .boxed()
    }
}
