//! The server's parts, built from the libraries and wired together.

use std::sync::Arc;
use std::time::Duration;

use codeflow_session::{
    Authenticator, ChannelConfig, ConnectionCap, RateLimit, RegistryConfig, SessionRegistry,
};
use codeflow_tools::{Catalogue, McpService, ServerServices};
use codeflow_transport::ConnectionConfig;
use codeflow_workspace::{DiagnosticsPublisher, WorkspaceConfig, Workspaces};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;

/// Shared state of the HTTP routes.
#[derive(Clone)]
pub struct App {
    pub registry: Arc<SessionRegistry>,
    pub services: Arc<ServerServices>,
    pub cap: ConnectionCap,
    pub connection: ConnectionConfig,
    pub rate_limit: RateLimit,
    pub max_concurrent_requests: usize,
    /// `Origin` values allowed on `/ws`; `"*"` allows any.
    pub allowed_origins: Arc<Vec<String>>,
    pub metrics: PrometheusHandle,
    pub executor: Arc<codeflow_claude_executor::Executor>,
    /// The `/mcp` (Streamable HTTP) sessions.
    pub mcp_sessions: Arc<crate::mcp_http::McpSessions>,
    /// Terminals of server-side projects (`terminals/*`, `/ws/terminal/{id}`).
    pub terminals: codeflow_terminal::Terminals,
    /// Single-use tickets for terminal sockets.
    pub terminal_tickets: Arc<crate::terminals::TerminalTickets>,
    /// Bulk transfers begun with `files/beginTransfer` (`/ws/file-stream/{operation_id}`).
    pub transfers: Arc<crate::transfers::Operations>,
    /// The file limits (largest file sent in a transfer).
    pub file_limits: codeflow_file_stream::Limits,
}

impl App {
    pub async fn build(
        config: &Config,
        metrics: PrometheusHandle,
        terminal_runtime: tokio::runtime::Handle,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            anyhow::anyhow!("cannot create data dir {}: {e}", config.data_dir.display())
        })?;
        let limits = codeflow_file_stream::Limits::from_env()
            .map_err(|e| anyhow::anyhow!("invalid file limits: {e}"))?;
        let pool = codeflow_lsp_pool::LspPool::new(config.lsp.clone());
        let workspaces = Arc::new(Workspaces::new(
            WorkspaceConfig {
                data_dir: config.data_dir.clone(),
                mirror: codeflow_file_stream::MirrorConfig {
                    limits,
                    fetch_concurrency: config.sync_concurrency.max(1),
                    ..Default::default()
                },
                shared: config.shared_projects.clone().into_iter().collect(),
                prestart_servers: config.prestart_language_servers,
            },
            pool,
        ));
        let services = Arc::new(ServerServices::new(workspaces.clone()));
        let mut catalogue = Catalogue::standard();
        if config.test_tools {
            tracing::warn!(
                "CODEFLOW_TEST_TOOLS is on: test tools and client publishing are enabled"
            );
            catalogue.add_test_tools();
        }
        let service = Arc::new(McpService::new(catalogue, services.clone()));
        // Edits a language server asks for go back to the client like a tool's edits.
        services
            .pool()
            .set_apply_edit_handler(Some(service.edit_router()));
        // Language servers' diagnostics feed each project's `diagnostics` channel.
        let diagnostics = DiagnosticsPublisher::new(&services.workspaces);
        services
            .pool()
            .set_diagnostics_listener(Some(diagnostics.clone()));
        let auth = Authenticator::new(config.auth()?);
        let broker = match &config.cluster_url {
            Some(url) => {
                let broker = codeflow_cluster::RedisBroker::connect(url, config.channel_history)
                    .await
                    .map_err(|e| anyhow::anyhow!("cluster_url: {e}"))?;
                Some(broker as Arc<dyn codeflow_session::ChannelBroker>)
            }
            None => None,
        };
        let registry = SessionRegistry::with_channels(
            RegistryConfig {
                resume_grace: Duration::from_secs(config.resume_grace_secs),
                initialize_timeout: Duration::from_secs(config.initialize_timeout_secs.max(1)),
                max_sessions: config.max_sessions,
            },
            ChannelConfig {
                history: config.channel_history.max(1),
                client_publish: config.test_tools,
                broker,
            },
            auth,
            service,
        );
        diagnostics.attach(&registry);
        services.workspaces.attach(&registry);
        // Projects and Claude runs: run events go to each project's `ai-response` channel.
        let sink = crate::projects::ChannelSink::new();
        sink.attach(&registry);
        let executor = codeflow_claude_executor::Executor::open(config.executor(), sink)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the projects store: {e}"))?;
        registry.add_method_family(crate::projects::ExecutorMethods::new(executor.clone()));
        // `status/projects`: the read-only view the web console's projects page shows.
        registry.add_method_family(crate::status::StatusMethods::new(
            services.clone(),
            executor.clone(),
        ));
        // Terminals in server-side projects, each on its own socket.
        let terminal_config = config.terminals();
        let terminal_tickets = Arc::new(crate::terminals::TerminalTickets::new(
            terminal_config.ticket_ttl,
        ));
        let terminals = codeflow_terminal::Terminals::new(terminal_config, terminal_runtime);
        registry.add_method_family(crate::terminals::TerminalMethods::new(
            terminals.clone(),
            terminal_tickets.clone(),
            executor.clone(),
        ));
        // Bulk transfers, each on a socket of its own.
        let transfers = Arc::new(crate::transfers::Operations::default());
        // A sync sends what the mirror lacks over one of them when the relay offers it.
        services.workspaces.set_sync_uploads(transfers.clone());
        registry.add_method_family(crate::transfers::TransferMethods::new(
            transfers.clone(),
            services.workspaces.clone(),
            executor.clone(),
            config.shared_projects.clone(),
            &config.data_dir,
            limits,
        ));
        // Runs on streamed projects: working copies from the mirror, changes back to a relay.
        let run_files = crate::run_files::MirrorFiles::new(workspaces);
        run_files.attach(&registry);
        executor.set_streamed_files(run_files);
        let connection = ConnectionConfig {
            max_message_size: config.max_message_bytes,
            outbound_capacity: config.outbound_queue,
            ping_interval: (config.ping_interval_secs > 0)
                .then(|| Duration::from_secs(config.ping_interval_secs)),
            pong_timeout: Duration::from_secs(config.pong_timeout_secs),
            tracker: Some(tokio_util::task::TaskTracker::new()),
            max_json_depth: config.max_json_depth,
            ..ConnectionConfig::default()
        };
        Ok(Self {
            registry,
            services,
            cap: ConnectionCap::new(config.max_clients),
            connection,
            rate_limit: RateLimit {
                per_second: config.rate_limit_per_second,
                burst: config.rate_limit_burst,
            },
            max_concurrent_requests: config.max_concurrent_requests,
            allowed_origins: Arc::new(config.allowed_origins.clone()),
            metrics,
            executor,
            mcp_sessions: Arc::default(),
            terminals,
            terminal_tickets,
            transfers,
            file_limits: limits,
        })
    }
}
