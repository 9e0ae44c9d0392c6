//! Command line of `codeflow-client`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "codeflow-client",
    version,
    about = "CodeFlow relay: an MCP server on stdin/stdout that forwards to a central codeflow-server and serves this container's project files to it."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that the server is reachable and accepts this project and token, then exit.
    Check,
}

#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Server WebSocket URL, e.g. ws://127.0.0.1:3000/ws (without a path, /ws is used).
    #[arg(long, global = true, env = "CODEFLOW_SERVER")]
    pub server: Option<String>,
    /// Project id, e.g. my-app.
    #[arg(long, global = true, env = "PROJECT_ID")]
    pub project: Option<String>,
    /// Project directory in this container (default: the current directory).
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Token (JWT) for the server. It does not change while the relay runs; for tokens that
    /// are renewed use --token-file or --token-command.
    #[arg(long, global = true, env = "CODEFLOW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the token. The relay re-reads it every second; when another program
    /// replaces it, the new token is sent to the live session (`auth/refresh`) and used for
    /// every reconnect.
    #[arg(
        long,
        global = true,
        env = "CODEFLOW_TOKEN_FILE",
        conflicts_with_all = ["token", "token_command"]
    )]
    pub token_file: Option<PathBuf>,
    /// Command that prints a token on stdout, run at start and again before each token
    /// expires (a third of its life before `exp`, at most a minute); the new token is sent
    /// to the live session (`auth/refresh`). Split into words like a shell would (quotes
    /// work) but run without a shell: write `sh -c '…'` for pipes or variables.
    #[arg(
        long,
        global = true,
        env = "CODEFLOW_TOKEN_COMMAND",
        conflicts_with_all = ["token", "token_file"]
    )]
    pub token_command: Option<String>,
    /// OpenSSH private key (ed25519 or RSA, not passphrase-protected) to log in with instead
    /// of a token: the relay signs the server's one-time challenge; the server looks the
    /// public key up in its `auth.authorized_keys`.
    /// With --ssh-agent, it names the public key (or the private key beside its .pub) the
    /// agent should use.
    #[arg(long, global = true, env = "CODEFLOW_SSH_KEY")]
    pub ssh_key: Option<PathBuf>,
    /// Log in with a key held by the running ssh-agent (SSH_AUTH_SOCK): the one --ssh-key
    /// names, or the agent's first ed25519 or RSA key.
    #[arg(long, global = true)]
    pub ssh_agent: bool,
    /// Seconds a call waits for an unreachable server before it fails with an error.
    #[arg(
        long,
        global = true,
        default_value_t = 30,
        env = "CODEFLOW_OFFLINE_WAIT_SECS"
    )]
    pub offline_wait_secs: u64,
    /// Where the relay keeps the hashes of the project's files between runs, so a restart on
    /// an unchanged tree stats files instead of reading them all [default:
    /// $XDG_CACHE_HOME/codeflow, else ~/.cache/codeflow].
    #[arg(long, global = true, env = "CODEFLOW_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Keep no hash cache: hash every file at every start.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// PEM file of the CA that signed the server's certificate (a private CA); only it is
    /// trusted for wss://.
    #[arg(long, global = true, env = "CODEFLOW_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for servers that require one (`--tls-client-ca`).
    #[arg(
        long,
        global = true,
        env = "CODEFLOW_CLIENT_CERT",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        global = true,
        env = "CODEFLOW_CLIENT_KEY",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
    /// DANGEROUS: accept any server certificate on wss:// (a test bench only; logged loudly
    /// on every connection). Anyone on the path can read and change the traffic.
    #[arg(long, global = true, conflicts_with = "ca_file")]
    pub insecure_skip_tls_verify: bool,
    /// Log filter for stderr, e.g. info or debug.
    #[arg(long, global = true, default_value = "warn", env = "CODEFLOW_LOG")]
    pub log_level: String,
}

/// A target with every required piece present.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub server: String,
    pub project: String,
    pub root: PathBuf,
    /// The newest token (fixed, or renewed from --token-file / --token-command).
    pub tokens: crate::tokens::Tokens,
    /// The key for SSH-key login, when given.
    pub ssh_key: Option<std::sync::Arc<crate::ssh_login::LoginKey>>,
    /// How long a call waits for an unreachable server.
    pub offline_wait: std::time::Duration,
    /// The hash cache directory, if any.
    pub cache_dir: Option<PathBuf>,
    /// How wss:// checks the server (`None` = public roots).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Certificate checks are off (`--insecure-skip-tls-verify`).
    pub insecure_tls: bool,
}

impl Resolved {
    /// The connection settings for dialing the server.
    pub fn connection_config(&self) -> codeflow_transport::ConnectionConfig {
        if self.insecure_tls && self.server.starts_with("wss://") {
            tracing::warn!(
                "TLS CERTIFICATE VERIFICATION IS OFF (--insecure-skip-tls-verify): anyone between this container and {} can read and change the project's traffic",
                self.server
            );
        }
        codeflow_transport::ConnectionConfig {
            tls: self.tls.clone(),
            // The relay passes most of the server's messages to the agent as they arrived.
            keep_text: true,
            ..Default::default()
        }
    }
}

impl Target {
    pub fn resolve(&self) -> Result<Resolved, String> {
        let server = self
            .server
            .clone()
            .or_else(|| std::env::var("MCP_SERVER").ok())
            .ok_or("no server given: pass --server ws://HOST:PORT/ws (or set CODEFLOW_SERVER)")?;
        let server = crate::dial::normalize(&server)?;
        let project = self
            .project
            .clone()
            .ok_or("no project given: pass --project ID (or set PROJECT_ID)")?;
        // The project rides in the URL too: a proxy in front of several servers routes on it.
        let server = crate::dial::with_project(&server, &project);
        let root = match &self.root {
            Some(r) => r.clone(),
            None => std::env::current_dir()
                .map_err(|e| format!("cannot read the current directory: {e}"))?,
        };
        let root = std::fs::canonicalize(&root)
            .map_err(|e| format!("project root {} is not usable: {e}", root.display()))?;
        if !root.is_dir() {
            return Err(format!(
                "project root {} is not a directory",
                root.display()
            ));
        }
        use codeflow_transport::tls::ServerTrust;
        let trust = match (&self.ca_file, self.insecure_skip_tls_verify) {
            (Some(ca), _) => ServerTrust::CaFile(ca.clone()),
            (None, true) => ServerTrust::Insecure,
            (None, false) => ServerTrust::PublicRoots,
        };
        let identity = self.client_cert.as_deref().zip(self.client_key.as_deref());
        let tls = codeflow_transport::tls::client_config(&trust, identity)
            .map_err(|e| format!("TLS settings (--ca-file, --client-cert, --client-key): {e}"))?;
        Ok(Resolved {
            tls,
            insecure_tls: self.insecure_skip_tls_verify,
            server,
            project,
            root,
            tokens: self.tokens()?,
            ssh_key: crate::ssh_login::LoginKey::from_flags(
                self.ssh_key.as_deref(),
                self.ssh_agent,
            )?
            .map(std::sync::Arc::new),
            offline_wait: std::time::Duration::from_secs(self.offline_wait_secs.max(1)),
            cache_dir: self.cache_dir(),
        })
    }

    fn tokens(&self) -> Result<crate::tokens::Tokens, String> {
        use crate::tokens::Tokens;
        match (&self.token_file, &self.token_command) {
            (Some(path), _) => Tokens::from_file(path.clone()),
            (None, Some(command)) => Tokens::from_command(command),
            (None, None) => Ok(Tokens::fixed(self.token.clone())),
        }
    }

    fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        let nonempty = |v: std::ffi::OsString| (!v.is_empty()).then(|| PathBuf::from(v));
        self.cache_dir.clone().or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .and_then(nonempty)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .and_then(nonempty)
                        .map(|h| h.join(".cache"))
                })
                .map(|d| d.join("codeflow"))
        })
    }
}
