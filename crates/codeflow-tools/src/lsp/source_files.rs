//! The project's source files a tool looks into: a file, or every file under a directory (the
//! whole project for `.` or an empty path) that a configured language server handles.

use std::collections::BTreeSet;

use codeflow_file_stream::{MirrorPath, RelPath};

use crate::context::ToolContext;
use crate::error::ToolError;

/// What a `file_path` argument names.
#[derive(Debug)]
pub struct Sources {
    /// The files, in path order (client paths), at most the limit.
    pub files: Vec<(String, MirrorPath)>,
    /// Whether the argument named one file (rather than a directory).
    pub single: bool,
    /// How many files there were in all (more than `files` when the limit cut them).
    pub total: usize,
}

/// The extensions some configured language server handles.
fn handled(ctx: &ToolContext) -> BTreeSet<String> {
    ctx.services
        .pool()
        .servers()
        .flat_map(|(_, config)| config.extensions.iter().cloned())
        .collect()
}

/// The source files `file_path` names (a file, a directory, or `.`/empty for the project),
/// keeping those whose text passes `keep` (files not yet read pass), at most `limit`.
pub async fn sources(
    ctx: &ToolContext,
    file_path: Option<&str>,
    limit: usize,
    keep: impl Fn(&str) -> bool,
) -> Result<Sources, ToolError> {
    let workspace = ctx.workspace().await?;
    let index = workspace.mirror.files();
    let dir: RelPath = match file_path
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "." && *p != "./")
    {
        None => RelPath::root(),
        Some(path) => {
            let file = ctx.resolve(path).await?;
            if index.contains_key(file.mirror.rel()) {
                return Ok(Sources {
                    files: vec![(file.client, file.mirror)],
                    single: true,
                    total: 1,
                });
            }
            file.mirror.rel().clone()
        }
    };
    let extensions = handled(ctx);
    let paths = workspace.mirror.paths().clone();
    let mut files = Vec::new();
    let mut total = 0;
    for rel in index.keys() {
        if !(dir.as_str().is_empty() || (rel != &dir && rel.starts_with(&dir))) {
            continue;
        }
        let ext = std::path::Path::new(rel.as_str())
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if !extensions.contains(ext) || is_generated(rel.as_str()) {
            continue;
        }
        let mirror = paths.mirror_path(rel);
        let Ok(bytes) = workspace.mirror.read(&mirror).await else {
            continue;
        };
        if !keep(&String::from_utf8_lossy(&bytes)) {
            continue;
        }
        total += 1;
        if files.len() < limit {
            files.push((ctx.client_path(&workspace, &mirror), mirror));
        }
    }
    if total == 0 && !dir.as_str().is_empty() && !index.keys().any(|r| r.starts_with(&dir)) {
        return Err(ToolError::failed(format!(
            "{} is neither a file nor a directory of the project",
            file_path.unwrap_or_default()
        ))
        .with_suggestion(
            "give a path relative to the project root, or `.` for the whole project",
        ));
    }
    Ok(Sources {
        files,
        single: false,
        total,
    })
}

/// Build output and dependencies, which overviews skip.
fn is_generated(rel: &str) -> bool {
    rel.split('/').any(|c| {
        matches!(
            c,
            "node_modules"
                | "vendor"
                | "target"
                | ".git"
                | "build"
                | "dist"
                | "out"
                | "__pycache__"
        )
    })
}
