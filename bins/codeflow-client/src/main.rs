//! `codeflow-client`: the relay an agent starts as its stdio MCP server. It forwards MCP to a
//! central `codeflow-server`, serves the server's file requests from this container's disk,
//! and reconnects by itself. Logs go to stderr only: stdout is the protocol.

mod answers;
mod check;
mod cli;
mod dial;
mod files;
mod git_state;
mod relay;
mod serving;
mod ssh_login;
mod stdio;
mod tokens;
mod upload;
mod upstream;

/// mimalloc: the allocator is on every message's path (P1 in docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = cli::Cli::parse();
    let filter =
        EnvFilter::try_new(&cli.target.log_level).unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let target = match cli.target.resolve() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("codeflow-client: {e}");
            std::process::exit(2);
        }
    };
    // One thread is plenty for a relay, and it keeps every hop between the relay's tasks a
    // same-thread wake instead of a cross-thread one (stdin and stdout are polled on it when
    // they are pipes or sockets; the watcher has a thread of its own; file I/O goes to the
    // blocking pool).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("codeflow-client: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Some(cli::Command::Check) => check::run(target).await,
            None => match relay::run(target).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("codeflow-client: {e:#}");
                    1
                }
            },
        }
    });
    // Do not wait for the stdin reader: it blocks until the agent closes stdin.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    std::process::exit(code);
}
