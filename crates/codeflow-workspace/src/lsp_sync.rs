//! Telling the project's running language servers what changed on disk: new text for open
//! documents, watched-file events for the rest, and file operations for servers that asked.

use codeflow_file_stream::MirrorPath;
use codeflow_lsp_pool::lsp_types::{
    DidChangeWatchedFilesParams, FileChangeType, FileEvent, notification::DidChangeWatchedFiles,
};

use crate::workspace::ProjectWorkspace;

/// Brings running language servers up to date: open documents get the new text
/// (`didChange`), everything else a `didChangeWatchedFiles`. Servers that are not running will
/// read the mirror when they start.
pub async fn tell_language_servers(
    workspace: &ProjectWorkspace,
    changes: &[(MirrorPath, FileChangeType)],
) {
    if changes.is_empty() {
        return;
    }
    for server in workspace.lease.running_servers() {
        let mut watched = Vec::new();
        for (path, kind) in changes {
            let disk_path = path.as_path();
            if server.is_open(disk_path) {
                if *kind == FileChangeType::DELETED {
                    let _ = server.close(disk_path);
                } else if let Ok(bytes) = workspace.mirror.read(path).await {
                    let _ = server
                        .sync_document(disk_path, String::from_utf8_lossy(&bytes).into_owned());
                }
            } else if let Ok(uri) = server.uri_for(disk_path) {
                watched.push(FileEvent { uri, typ: *kind });
            }
        }
        // A server still starting hears of it when it is up: a file event never waits for a
        // server's start (tool calls wait for the file events before them).
        if !watched.is_empty() {
            server.notify_soon::<DidChangeWatchedFiles>(DidChangeWatchedFilesParams {
                changes: watched,
            });
        }
    }
}

/// A file operation done on the client, for the language servers that asked to hear of it.
#[derive(Debug, Clone)]
pub enum FileOperation {
    /// Files created.
    Created(Vec<MirrorPath>),
    /// Files deleted.
    Deleted(Vec<MirrorPath>),
    /// Files renamed, `(from, to)`.
    Renamed(Vec<(MirrorPath, MirrorPath)>),
}

/// Sends `workspace/didCreateFiles` / `didDeleteFiles` / `didRenameFiles` to this project's
/// running servers that registered for them (file contents reach them separately, through
/// [`crate::EditPlan::commit`]).
pub async fn notify_file_operation(workspace: &ProjectWorkspace, op: &FileOperation) {
    use codeflow_lsp_pool::lsp_types::notification::{
        DidCreateFiles, DidDeleteFiles, DidRenameFiles,
    };
    use codeflow_lsp_pool::lsp_types::{
        CreateFilesParams, DeleteFilesParams, FileCreate, FileDelete, FileRename, RenameFilesParams,
    };
    for server in workspace.lease.running_servers() {
        let Some(ops) = server
            .capabilities_now()
            .and_then(|c| c.workspace)
            .and_then(|w| w.file_operations)
        else {
            continue;
        };
        let uri = |p: &MirrorPath| server.uri_for(p.as_path()).map(|u| u.to_string());
        let sent = match op {
            FileOperation::Created(paths) if ops.did_create.is_some() => {
                let files = paths
                    .iter()
                    .filter_map(|p| uri(p).ok())
                    .map(|uri| FileCreate { uri })
                    .collect();
                server
                    .notify::<DidCreateFiles>(CreateFilesParams { files })
                    .await
            }
            FileOperation::Deleted(paths) if ops.did_delete.is_some() => {
                let files = paths
                    .iter()
                    .filter_map(|p| uri(p).ok())
                    .map(|uri| FileDelete { uri })
                    .collect();
                server
                    .notify::<DidDeleteFiles>(DeleteFilesParams { files })
                    .await
            }
            FileOperation::Renamed(pairs) if ops.did_rename.is_some() => {
                let files = pairs
                    .iter()
                    .filter_map(|(a, b)| {
                        Some(FileRename {
                            old_uri: uri(a).ok()?,
                            new_uri: uri(b).ok()?,
                        })
                    })
                    .collect();
                server
                    .notify::<DidRenameFiles>(RenameFilesParams { files })
                    .await
            }
            _ => Ok(()),
        };
        if let Err(e) = sent {
            tracing::debug!(server = server.server_id(), error = %e, "file operation notification not sent");
        }
    }
}
