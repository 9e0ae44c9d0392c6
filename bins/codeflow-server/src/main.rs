//! `codeflow-server`: reads its configuration, builds the parts from the CodeFlow libraries, and
//! serves `/ws`, `/healthz`, `/readyz`, `/metrics` and the web console (`/ui`) on one port until SIGINT or SIGTERM
//! (`codeflow-server healthcheck` probes a running one instead).

mod aliases;
mod app;
mod client_cert;
mod config;
#[cfg(test)]
mod config_doc;
mod console;
mod file_stream_socket;
mod gauges;
mod healthcheck;
mod huge_pages;
mod mcp_http;
mod projects;
mod routes;
mod run_files;
mod socket_fd;
mod status;
mod sync_receive;
mod terminal_socket;
mod terminals;
mod tls_reload;
mod transfers;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use metrics_exporter_prometheus::PrometheusBuilder;
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Command, Config, LogFormat, TokenArgs};

/// mimalloc: the allocator is on every message's path (P1 in docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long shutdown waits for connections to close before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn main() -> anyhow::Result<()> {
    huge_pages::refuse();
    let cli = Cli::parse();
    let config = match Config::load(&cli.flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("codeflow-server: {e:#}");
            std::process::exit(2);
        }
    };
    if let Some(Command::Healthcheck) = cli.command {
        std::process::exit(healthcheck::run(&config));
    }
    if let Some(Command::Token(args)) = &cli.command {
        return mint(&config, args);
    }
    if let Err(e) = init_logging(&config) {
        eprintln!("codeflow-server: {e:#}");
        std::process::exit(2);
    }
    // Terminals (their PTYs and viewers' sockets) run on a runtime of their own: keystrokes
    // are not queued behind whatever occupies the main runtime's workers.
    let terminals = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("codeflow-terminals")
        .enable_all()
        .build()
        .context("cannot start the terminals' runtime")?;
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(config, terminals.handle().clone()));
    terminals.shutdown_background();
    outcome
}

/// `codeflow-server token`: prints a token signed with the configured secret.
fn mint(config: &Config, args: &TokenArgs) -> anyhow::Result<()> {
    let auth = config.auth()?;
    if auth.jwt_secret.is_none() {
        anyhow::bail!(
            "no JWT secret is configured: set jwt_secret (or CODEFLOW_JWT_SECRET, --jwt-secret) as the server has it"
        );
    }
    let projects = if args.projects.iter().any(|p| p == "*") {
        None
    } else {
        for p in &args.projects {
            codeflow_session::ProjectId::parse(p).map_err(|e| anyhow::anyhow!("--project: {e}"))?;
        }
        Some(args.projects.clone())
    };
    let request = codeflow_session::MintRequest {
        subject: args.subject.clone(),
        projects,
        rights: config::parse_rights(&args.scope).context("--scope")?,
        ttl: config::parse_ttl(&args.ttl)?,
    };
    let token = codeflow_session::Authenticator::new(auth)
        .mint(&request)
        .map_err(|e| anyhow::anyhow!("cannot mint the token: {e}"))?;
    println!("{token}");
    Ok(())
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, fmt};

    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let main = match config.log_format {
        LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
        LogFormat::Text => fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // With `audit_file`, audit lines go there (one JSON object per line, whatever the log
    // level) and not to stderr.
    let audit_file = match &config.audit_file {
        Some(path) => Some(open_audit_file(path)?),
        None => None,
    };
    let separate = audit_file.is_some();
    let main = main
        .with_filter(filter_fn(move |m| {
            !(separate && m.target() == codeflow_session::audit::TARGET)
        }))
        .with_filter(filter);
    let audit = audit_file.map(|file| {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::sync::Mutex::new(file))
            .with_filter(filter_fn(|m| m.target() == codeflow_session::audit::TARGET))
    });
    tracing_subscriber::registry().with(main).with(audit).init();
    Ok(())
}

fn open_audit_file(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .with_context(|| format!("cannot open the audit file {}", path.display()))
}

async fn serve(config: Config, terminal_runtime: tokio::runtime::Handle) -> anyhow::Result<()> {
    codeflow_transport::tls::install_crypto_provider();
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticker.tick().await;
            upkeep.run_upkeep();
        }
    });

    let app = app::App::build(&config, metrics, terminal_runtime).await?;
    let executor = app.executor.clone();
    let terminals = app.terminals.clone();
    let registry = app.registry.clone();
    let services = app.services.clone();
    gauges::init(&services);
    let sampler = gauges::spawn(registry.clone(), services.clone(), config.data_dir.clone());
    let sockets = app.connection.tracker.clone().unwrap_or_default();
    let router = routes::router(app);
    let addr = SocketAddr::new(config.bind, config.port);
    let scheme = if config.tls_cert.is_some() {
        "wss"
    } else {
        "ws"
    };

    let shutdown = async move {
        wait_for_signal().await;
        tracing::info!("shutting down: closing sessions");
        registry.shutdown();
        // Every terminal's processes are killed; its viewers get `exit` and a close.
        terminals.shutdown(Duration::from_secs(2)).await;
    };

    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let client_ca = config.tls_client_ca.clone();
            let tls = codeflow_transport::tls::server_config(cert, key, client_ca.as_deref())?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopper.graceful_shutdown(Some(SHUTDOWN_GRACE));
            });
            let rustls =
                axum_server::tls_rustls::RustlsConfig::from_config(std::sync::Arc::new(tls));
            tls_reload::spawn(rustls.clone(), cert.clone(), key.clone(), client_ca);
            let server = axum_server::bind_rustls(addr, rustls).handle(handle.clone());
            announce(&config, scheme);
            server
                .serve(router.into_make_service())
                .await
                .with_context(|| format!("cannot serve on {addr}"))?;
        }
        _ => {
            let listener = listen(addr).with_context(|| {
                format!("cannot listen on {addr} (is another server using the port? try --port)")
            })?;
            announce(&config, scheme);
            // Each connection's descriptor is recorded so a terminal's socket can move to the
            // terminals' runtime after its upgrade (`socket_fd.rs`).
            let server = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<socket_fd::SocketFd>(),
            )
            .with_graceful_shutdown(shutdown);
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            let serving = tokio::spawn(async move {
                let outcome = server.await;
                let _ = done_tx.send(());
                outcome
            });
            let _ = done_rx.await;
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, serving).await;
        }
    }
    // The listener stopping does not wait for upgraded sockets: wait until each has sent its
    // close frame (1001), or the grace runs out.
    sockets.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, sockets.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = sockets.len(),
            "sockets still open after the shutdown grace; exiting anyway"
        );
    }
    sampler.abort();
    // Every run is stopped (its `complete` recorded) and every message log flushed.
    executor.shutdown().await;
    // No orphans: every language server is stopped before the process exits.
    services.pool().shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Many relays reconnect at once after a restart: a deep accept backlog keeps the kernel from
/// dropping their SYNs (each drop costs the client a 1 s retransmit).
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn announce(config: &Config, scheme: &str) {
    tracing::info!(
        "codeflow-server {} listening on {scheme}://{}:{}/ws (health: /healthz, metrics: /metrics)",
        env!("CARGO_PKG_VERSION"),
        config.bind,
        config.port
    );
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
