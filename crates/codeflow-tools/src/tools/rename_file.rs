//! `rename_file`: move a file and update the imports that name it.

use std::collections::{BTreeMap, BTreeSet};

use codeflow_lsp_pool::lsp_types::{FileRename, RenameFilesParams, request::WillRenameFiles};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::{ResolvedFile, ToolContext};
use crate::error::{ToolError, parse_args};
use crate::imports::{self, Lang};
use codeflow_workspace::{FileOperation, notify_file_operation};

use crate::edit_output::{EditOutcomeExt, OutcomeWith};
use crate::output::schema_of;
use schemars::JsonSchema;
use serde::Serialize;

/// The `rename_file` tool (its description is in `description`).
#[derive(Debug)]
pub struct RenameFile;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    old_path: String,
    new_path: String,
    #[serde(default)]
    dry_run: bool,
}

/// Most files opened on a language server so it can compute a move's import edits.
const MAX_OPENED: usize = 100;

impl Tool for RenameFile {
    fn name(&self) -> &'static str {
        "rename_file"
    }

    fn description(&self) -> &'static str {
        "Move or rename a file and update every import of it (through the language server's workspace/willRenameFiles where it offers that, else by rewriting Python, JS/TS and C include imports), all or nothing; use dry_run to see the edits first."
    }

    fn input_schema(&self) -> Value {
        move_input_schema("file")
    }

    fn output_schema(&self) -> Value {
        schema_of::<MoveOutput>()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            let args: Args = parse_args(args)?;
            let from = ctx.resolve(&args.old_path).await?;
            let to = ctx.resolve(&args.new_path).await?;
            move_paths(ctx, &from, &to, false, args.dry_run).await
        }
        .boxed()
    }
}

pub(crate) fn move_input_schema(what: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "old_path": {"type": "string", "description": format!("The {what} to move, absolute or relative to the project root.")},
            "new_path": {"type": "string", "description": format!("Where the {what} goes; it must not exist.")},
            "dry_run": {"type": "boolean", "default": false, "description": "Return the edits without changing anything."}
        },
        "required": ["old_path", "new_path"],
        "additionalProperties": false
    })
}

/// The answer of `rename_file` and `rename_directory`.
pub(crate) type MoveOutput = OutcomeWith<Moved>;

/// What moved, and who updated the imports.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Moved {
    /// Each file moved.
    moved: Vec<Move>,
    /// Who computed the import edits: a language server's workspace/willRenameFiles, or
    /// `text` (CodeFlow's import scan).
    imports_updated_by: Vec<String>,
}

/// One file moved.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Move {
    from: String,
    to: String,
}

/// Moves a file or (with `directory`) a directory and updates imports; see the tool docs.
pub(crate) async fn move_paths(
    ctx: &ToolContext,
    from: &ResolvedFile,
    to: &ResolvedFile,
    directory: bool,
    dry_run: bool,
) -> Result<ToolOutput, ToolError> {
    let workspace = ctx.workspace().await?;
    let mut plan = ctx.edit_plan(workspace.clone())?;
    let files = plan.project_files();
    let from_rel = from.mirror.rel().as_str().to_owned();
    let to_rel = to.mirror.rel().as_str().to_owned();
    if from_rel.is_empty() || to_rel.is_empty() {
        return Err(ToolError::InvalidArguments(
            "the project root itself cannot be moved".to_owned(),
        ));
    }
    let under = |dir: &str, f: &str| f.starts_with(&format!("{dir}/"));
    let is_dir = !files.contains(&from_rel) && files.iter().any(|f| under(&from_rel, f));
    let moves: BTreeMap<String, String> = match (directory, is_dir, files.contains(&from_rel)) {
        (false, _, true) => BTreeMap::from([(from_rel.clone(), to_rel.clone())]),
        (true, true, _) => files
            .iter()
            .filter(|f| under(&from_rel, f))
            .map(|f| (f.clone(), format!("{to_rel}{}", &f[from_rel.len()..])))
            .collect(),
        (false, true, _) => {
            return Err(ToolError::InvalidArguments(format!(
                "{} is a directory; use rename_directory",
                from.client
            )));
        }
        (true, false, true) => {
            return Err(ToolError::InvalidArguments(format!(
                "{} is a file; use rename_file",
                from.client
            )));
        }
        _ => return Err(ToolError::failed(format!("{} does not exist", from.client))),
    };
    if to_rel.starts_with(&format!("{from_rel}/")) {
        return Err(ToolError::InvalidArguments(format!(
            "cannot move {} into itself",
            from.client
        )));
    }
    if files.contains(&to_rel) || files.iter().any(|f| under(&to_rel, f)) {
        return Err(ToolError::failed(format!("{} already exists", to.client))
            .with_suggestion("choose a new path, or delete the existing one first"));
    }

    // Language servers that can compute the import edits themselves (TypeScript can).
    let mut by_server: Vec<String> = Vec::new();
    let mut handled: BTreeSet<Lang> = BTreeSet::new();
    let langs: BTreeSet<Lang> = moves
        .keys()
        .filter_map(|f| Lang::of(f))
        .filter(|l| l.rewrites_imports())
        .collect();
    for lang in langs {
        let Some(sample) = moves.keys().find(|f| Lang::of(f) == Some(lang)) else {
            continue;
        };
        let sample_path = plan.mirror_path(sample)?;
        let Ok(server) = workspace.lease.server_for_file(sample_path.as_path()).await else {
            continue;
        };
        let supports = server
            .capabilities()
            .await
            .ok()
            .and_then(|c| c.workspace)
            .and_then(|w| w.file_operations)
            .is_some_and(|f| f.will_rename.is_some());
        if !supports {
            continue;
        }
        // Open the moved files and their importers so the server has them in its program.
        let mut to_open: BTreeSet<String> = moves
            .keys()
            .filter(|f| Lang::of(f) == Some(lang))
            .cloned()
            .collect();
        for moved in moves
            .keys()
            .filter(|f| Lang::of(f) == Some(lang))
            .take(MAX_OPENED)
        {
            for (importer, _) in imports::importers_of(&mut plan, &files, moved).await? {
                to_open.insert(importer);
            }
        }
        for file in to_open.iter().take(MAX_OPENED) {
            let path = plan.mirror_path(file)?;
            if let Some(text) = plan.text(&path).await? {
                server
                    .sync_document(path.as_path(), text)
                    .map_err(ToolError::from_lsp)?;
            }
        }
        let uri = |p: &codeflow_file_stream::MirrorPath| {
            server
                .uri_for(p.as_path())
                .map(|u| u.to_string())
                .map_err(ToolError::from_lsp)
        };
        let edit = server
            .request::<WillRenameFiles>(RenameFilesParams {
                files: vec![FileRename {
                    old_uri: uri(&from.mirror)?,
                    new_uri: uri(&to.mirror)?,
                }],
            })
            .await
            .map_err(ToolError::from_lsp)?;
        if let Some(edit) = edit {
            plan.workspace_edit(edit).await?;
        }
        handled.insert(lang);
        by_server.push(server.server_id().to_owned());
    }
    let rewritten = imports::rewrite_for_moves(&mut plan, &files, &moves, false, &handled).await?;
    plan.rename(&from.mirror, &to.mirror, false, false).await?;
    let outcome = plan.commit(dry_run).await?;
    let pairs: Vec<_> = moves
        .iter()
        .map(|(a, b)| Ok((plan_path(&workspace, a)?, plan_path(&workspace, b)?)))
        .collect::<Result<_, ToolError>>()?;
    if !outcome.dry_run {
        let renamed = if directory {
            vec![(from.mirror.clone(), to.mirror.clone())]
        } else {
            pairs.clone()
        };
        notify_file_operation(&workspace, &FileOperation::Renamed(renamed)).await;
    }
    let mut updated_by: Vec<String> = by_server
        .iter()
        .map(|s| format!("{s} (workspace/willRenameFiles)"))
        .collect();
    if rewritten > 0 || handled.is_empty() {
        updated_by.push("text".to_owned());
    }
    let moved = Moved {
        moved: pairs
            .iter()
            .map(|(a, b)| Move {
                from: ctx.client_path(&workspace, a),
                to: ctx.client_path(&workspace, b),
            })
            .collect(),
        imports_updated_by: updated_by,
    };
    let text = outcome.to_text(&format!("Move {} to {}", from.client, to.client));
    ToolOutput::typed(text, &outcome.with(moved))
}

fn plan_path(
    workspace: &codeflow_workspace::ProjectWorkspace,
    rel: &str,
) -> Result<codeflow_file_stream::MirrorPath, ToolError> {
    Ok(workspace.mirror.paths().mirror_path(&imports::rel(rel)?))
}
