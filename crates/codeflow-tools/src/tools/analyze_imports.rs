//! `analyze_imports`: a file's import neighbourhood — what it imports and which project files
//! import it.

use std::collections::BTreeSet;

use codeflow_file_stream::RelPath;
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::imports::{Analysis, Lang};
use crate::lsp::Locator;
use crate::lsp::args::{file_path_schema, object};
use crate::output::schema_of;

/// The `analyze_imports` tool (its description is in `description`).
#[derive(Debug)]
pub struct AnalyzeImports;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    #[serde(default = "yes")]
    include_importers: bool,
    #[serde(default = "yes")]
    include_imports: bool,
}

fn yes() -> bool {
    true
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    path: String,
    imports: Vec<ImportRow>,
    importers: Vec<ImporterRow>,
}

/// One import of the file.
#[derive(Debug, Serialize, JsonSchema)]
struct ImportRow {
    /// As written in the file.
    specifier: String,
    /// 1-based.
    line: u32,
    /// The project file (or Go package directory) it resolves to; null for external modules.
    path: Option<String>,
    external: bool,
}

/// One import of the file by another.
#[derive(Debug, Serialize, JsonSchema)]
struct ImporterRow {
    path: String,
    /// 1-based.
    line: u32,
    specifier: String,
    text: String,
}

impl Tool for AnalyzeImports {
    fn name(&self) -> &'static str {
        "analyze_imports"
    }

    fn description(&self) -> &'static str {
        "Show a file's import neighbourhood: the modules it imports (resolved to project files where they are) and the project files that import it; use it before moving, renaming or deleting a file."
    }

    fn input_schema(&self) -> Value {
        let mut props = serde_json::Map::new();
        props.insert("file_path".into(), file_path_schema());
        props.insert("include_importers".into(), json!({"type": "boolean", "default": true, "description": "List the project files that import this file."}));
        props.insert("include_imports".into(), json!({"type": "boolean", "default": true, "description": "List what this file imports."}));
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
            let file = ctx.resolve(&args.file_path).await?;
            let locator = Locator::new(ctx).await?;
            let workspace = locator.workspace().clone();
            let target = file.mirror.rel().as_str().to_owned();
            let Some(lang) = Lang::of(&target) else {
                return Err(ToolError::InvalidArguments(format!(
                    "{}: imports are understood for Python, TypeScript/JavaScript, C/C++, Go and Rust files",
                    file.client
                )));
            };
            let files: BTreeSet<String> = workspace
                .mirror
                .files()
                .keys()
                .map(|r| r.as_str().to_owned())
                .collect();
            let read = |rel: String| {
                let workspace = workspace.clone();
                async move {
                    let path = workspace.mirror.paths().mirror_path(&RelPath::parse(&rel).ok()?);
                    let bytes = workspace.mirror.read(&path).await.ok()?;
                    Some(String::from_utf8_lossy(&bytes).into_owned())
                }
            };
            let go_module = match files.contains("go.mod") {
                true => read("go.mod".to_owned()).await.and_then(|t| {
                    t.lines()
                        .find_map(|l| l.trim().strip_prefix("module ").map(|m| m.trim().to_owned()))
                }),
                false => None,
            };
            let text = read(target.clone()).await.ok_or_else(|| {
                ToolError::failed(format!("cannot read {}", file.client))
                    .with_suggestion("check the path; files reach the server through codeflow-client's sync")
            })?;
            let to_client = |rel: &str| {
                RelPath::parse(rel)
                    .map(|r| locator.client_path(&workspace.mirror.paths().mirror_path(&r)))
                    .unwrap_or_else(|_| rel.to_owned())
            };
            let analysis = Analysis {
                files: &files,
                go_module: go_module.as_deref(),
            };
            let mut lines = vec![format!("{}:", file.client)];
            let mut import_rows = Vec::new();
            if args.include_imports {
                let found = analysis.imports(&target, &text);
                lines.push(format!("imports ({}):", found.len()));
                for i in &found {
                    let path = i.resolved.as_deref().map(&to_client);
                    lines.push(format!(
                        "  {}:{}  {} -> {}",
                        file.client,
                        i.import.line + 1,
                        i.import.spec,
                        path.as_deref().unwrap_or("(external)")
                    ));
                    import_rows.push(ImportRow {
                        specifier: i.import.spec.clone(),
                        line: i.import.line + 1,
                        path,
                        external: i.resolved.is_none(),
                    });
                }
            }
            let mut importer_rows = Vec::new();
            if args.include_importers {
                // A Go file is imported through its package directory.
                let target_dir = target.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
                let is_target = |resolved: &str| {
                    resolved == target || (target.ends_with(".go") && resolved == target_dir)
                };
                for other in files.iter().filter(|f| **f != target && Lang::of(f) == Some(lang)) {
                    if other.split('/').any(|c| c == "node_modules") {
                        continue;
                    }
                    let Some(content) = read(other.clone()).await else { continue };
                    for i in analysis.imports(other, &content) {
                        if i.resolved.as_deref().is_some_and(is_target) {
                            let line_text = content
                                .lines()
                                .nth(i.import.line as usize)
                                .unwrap_or_default()
                                .trim()
                                .to_owned();
                            importer_rows.push(ImporterRow {
                                path: to_client(other),
                                line: i.import.line + 1,
                                specifier: i.import.spec.clone(),
                                text: line_text,
                            });
                        }
                    }
                }
                lines.push(format!("imported by ({}):", importer_rows.len()));
                for r in &importer_rows {
                    lines.push(format!(
                        "  {}:{}:1  {}",
                        r.path, r.line, r.text
                    ));
                }
            }
            let out = Output {
                path: file.client,
                imports: import_rows,
                importers: importer_rows,
            };
            ToolOutput::typed(lines.join("\n"), &out)
        }
        .boxed()
    }
}
