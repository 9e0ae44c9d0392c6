//! Series the server samples every few seconds rather than records as things happen: projects
//! and attached sessions, language servers by state, and the data directory's filesystem (so an
//! operator can alert before it fills). At start the per-language counters of the language
//! servers are registered at zero, so dashboards and alerts see them before the first event.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use codeflow_lsp_pool::ServerState;
use codeflow_lsp_pool::metrics as lsp;
use codeflow_session::SessionRegistry;
use codeflow_tools::ServerServices;

/// How often the gauges are refreshed.
const PERIOD: Duration = Duration::from_secs(5);

/// Every state, with its label (the match keeps the list complete when a state is added).
fn state_label(state: ServerState) -> &'static str {
    match state {
        ServerState::Stopped => "stopped",
        ServerState::Starting => "starting",
        ServerState::Running => "running",
        ServerState::Restarting => "restarting",
        ServerState::Stopping => "stopping",
        ServerState::Failed => "failed",
    }
}

const STATES: [ServerState; 6] = [
    ServerState::Stopped,
    ServerState::Starting,
    ServerState::Running,
    ServerState::Restarting,
    ServerState::Stopping,
    ServerState::Failed,
];

/// Describes the language servers' series and registers their counters at zero for every
/// language of the server table.
pub fn init(services: &ServerServices) {
    lsp::describe();
    for language in languages(services) {
        for name in [
            lsp::STARTS,
            lsp::START_FAILURES,
            lsp::CRASHES,
            lsp::RESTARTS,
            lsp::GIVE_UPS,
        ] {
            metrics::counter!(name, "language" => language.clone()).increment(0);
        }
        metrics::gauge!(lsp::SERVERS_RUNNING, "language" => language.clone()).increment(0.0);
    }
    metrics::describe_gauge!(
        "codeflow_projects",
        "Projects with at least one session (attached or awaiting resume)"
    );
    metrics::describe_gauge!("codeflow_sessions_attached", "Sessions with a live socket");
    metrics::describe_gauge!(
        "codeflow_lsp_servers",
        "Managed language servers by language and state"
    );
    metrics::describe_gauge!(
        "codeflow_data_dir_available_bytes",
        metrics::Unit::Bytes,
        "Bytes available to the server on the data directory's filesystem"
    );
    metrics::describe_gauge!(
        "codeflow_data_dir_size_bytes",
        metrics::Unit::Bytes,
        "Size of the data directory's filesystem"
    );
}

/// Samples the gauges every few seconds until the task is aborted.
pub fn spawn(
    registry: Arc<SessionRegistry>,
    services: Arc<ServerServices>,
    data_dir: PathBuf,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let languages = languages(&services);
        let mut ticker = tokio::time::interval(PERIOD);
        loop {
            ticker.tick().await;
            sample(&registry, &services, &languages, &data_dir);
        }
    })
}

fn languages(services: &ServerServices) -> Vec<String> {
    let mut languages: Vec<String> = services
        .pool()
        .servers()
        .map(|(id, config)| config.language_label(id))
        .collect();
    languages.sort();
    languages.dedup();
    languages
}

#[allow(clippy::cast_precision_loss)]
fn sample(
    registry: &SessionRegistry,
    services: &ServerServices,
    languages: &[String],
    data_dir: &Path,
) {
    let stats = registry.stats();
    metrics::gauge!("codeflow_projects").set(stats.projects.len() as f64);
    metrics::gauge!("codeflow_sessions_attached").set(stats.attached as f64);

    let servers = services.pool().status();
    for language in languages {
        for state in STATES {
            let n = servers
                .iter()
                .filter(|s| &s.language == language && s.state == state)
                .count();
            metrics::gauge!(
                "codeflow_lsp_servers",
                "language" => language.clone(),
                "state" => state_label(state)
            )
            .set(n as f64);
        }
    }

    match rustix::fs::statvfs(data_dir) {
        Ok(fs) => {
            let unit = fs.f_frsize;
            metrics::gauge!("codeflow_data_dir_available_bytes")
                .set(fs.f_bavail.saturating_mul(unit) as f64);
            metrics::gauge!("codeflow_data_dir_size_bytes")
                .set(fs.f_blocks.saturating_mul(unit) as f64);
        }
        Err(e) => {
            tracing::debug!(error = %e, dir = %data_dir.display(), "cannot stat the data dir's filesystem");
        }
    }
}
