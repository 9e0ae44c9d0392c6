//! Real producers for the project channels: language servers' diagnostics go to
//! `diagnostics`, applied file changes to `files` — with client paths, never mirror paths.

use std::sync::{Arc, OnceLock, Weak};

use codeflow_lsp_pool::DiagnosticsListener;
use codeflow_lsp_pool::lsp_types::PublishDiagnosticsParams;
use codeflow_session::{Channel, ProjectId, SessionRegistry};
use serde_json::json;

use crate::diagnostics::diagnostic_row;
use crate::server_text::Scrubber;

use crate::workspace::Workspaces;

/// Publishes every language server's diagnostics on its project's `diagnostics` channel.
#[derive(Default)]
pub struct DiagnosticsPublisher {
    registry: OnceLock<Weak<SessionRegistry>>,
    workspaces: OnceLock<Weak<Workspaces>>,
}

impl std::fmt::Debug for DiagnosticsPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiagnosticsPublisher")
            .finish_non_exhaustive()
    }
}

impl DiagnosticsPublisher {
    /// A publisher of the diagnostics of `workspaces`' language servers.
    pub fn new(workspaces: &Arc<Workspaces>) -> Arc<Self> {
        let publisher = Arc::new(Self::default());
        let _ = publisher.workspaces.set(Arc::downgrade(workspaces));
        publisher
    }

    /// Connects the publisher to the registry whose channels it feeds (created after the
    /// services, so it is set afterwards).
    pub fn attach(&self, registry: &Arc<SessionRegistry>) {
        let _ = self.registry.set(Arc::downgrade(registry));
    }
}

impl DiagnosticsListener for DiagnosticsPublisher {
    fn on_diagnostics(&self, project: &str, server_id: &str, params: &PublishDiagnosticsParams) {
        let Some(registry) = self.registry.get().and_then(Weak::upgrade) else {
            return;
        };
        let Some(workspaces) = self.workspaces.get().and_then(Weak::upgrade) else {
            return;
        };
        let Ok(project) = ProjectId::parse(project) else {
            return;
        };
        let Some(paths) = workspaces.paths_of(project.as_str()) else {
            return;
        };
        let Ok(uri) = paths.uri_to_client(params.uri.as_str()) else {
            return;
        };
        let path = codeflow_file_stream::paths::uri_path(&uri).unwrap_or_default();
        // The same rows as `get_diagnostics`, with characters counted from the file's text in
        // the mirror (a small local read; without it, columns are UTF-16 units).
        let text = paths
            .parse_mirror(std::path::Path::new(
                &codeflow_file_stream::paths::uri_path(params.uri.as_str()).unwrap_or_default(),
            ))
            .ok()
            .and_then(|m| read_small(m.as_path()));
        let scrubber = Scrubber::of(&paths);
        let diagnostics: Vec<_> = params
            .diagnostics
            .iter()
            .map(|d| diagnostic_row(text.as_deref(), d, &scrubber))
            .collect();
        registry.channels().publish(
            &project,
            Channel::Diagnostics,
            json!({
                "path": path,
                "uri": uri,
                "server": server_id,
                "version": params.version,
                "diagnostics": diagnostics,
            }),
        );
    }
}

/// The text of a mirror file of at most 1 MiB (diagnostics positions are converted with it).
fn read_small(path: &std::path::Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > 1 << 20 {
        return None;
    }
    std::fs::read_to_string(path).ok()
}
