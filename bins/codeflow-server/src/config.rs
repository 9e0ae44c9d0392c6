//! Server configuration: built-in defaults < `--config` TOML file < `CODEFLOW_*` environment <
//! command-line flags. `docs/configuration.md` lists every key.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(
    name = "codeflow-server",
    version,
    about = "The CodeFlow central server: language servers, project mirrors and MCP tools for many dev containers, over WebSocket."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub flags: Flags,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Ask the running server's /healthz on this machine (same config); exit 0 when healthy.
    Healthcheck,
    /// Mint a client token signed with the configured secret, and print it.
    Token(TokenArgs),
}

/// `codeflow-server token`: reads the same configuration as the server (for the secret,
/// issuer and audience).
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// A project the token grants; repeat for several, or `*` for every project.
    #[arg(long = "project", required = true)]
    pub projects: Vec<String>,
    /// Rights, space- or comma-separated: file:read file:write lsp:query claude:execute
    /// projects:manage terminal:open.
    #[arg(long, default_value = "file:read lsp:query")]
    pub scope: String,
    /// Lifetime: seconds or a number with a unit (`90s`, `30m`, `12h`, `7d`).
    #[arg(long, default_value = "12h")]
    pub ttl: String,
    /// Who the token is for (`sub`; shown in the audit log).
    #[arg(long, default_value = "codeflow-client")]
    pub subject: String,
}

/// Reads `--scope` or `anonymous_rights`: known right names, space- or comma-separated.
pub fn parse_rights(text: &str) -> anyhow::Result<Vec<codeflow_session::Right>> {
    text.split([' ', ','])
        .filter(|w| !w.is_empty())
        .map(|w| {
            codeflow_session::Right::parse(w).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown right `{w}`: use file:read, file:write, lsp:query, claude:execute, projects:manage, terminal:open"
                )
            })
        })
        .collect()
}

/// Reads a duration: seconds, or a number with `s`, `m`, `h` or `d`.
pub fn parse_ttl(text: &str) -> anyhow::Result<std::time::Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("--ttl `{text}`: expected e.g. 3600, 30m, 12h or 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--ttl `{text}`: the unit must be s, m, h or d"),
    };
    if secs == 0 {
        bail!("--ttl must be more than 0");
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// Flags override every other source; only flags actually given are applied.
#[derive(Debug, Args, Serialize, Default)]
pub struct Flags {
    /// Address to listen on.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<IpAddr>,
    /// Port to listen on.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Directory for mirrors, logs and state.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, global = true, env = "CODEFLOW_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Most WebSocket connections at once; more are closed with 1008.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_clients: Option<usize>,
    /// HS256 secret for client tokens.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
    /// Refuse clients without a valid token.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub require_auth: bool,
    /// PEM certificate chain for wss://.
    #[arg(long, global = true, requires = "tls_key")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for wss://.
    #[arg(long, global = true, requires = "tls_cert")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// PEM file of the CA(s) whose client certificates are accepted; clients without one
    /// are refused in the TLS handshake.
    #[arg(long, global = true, requires = "tls_cert")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_ca: Option<PathBuf>,
    /// Allow a non-loopback address without authentication.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Log format: `text` or `json`.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `codeflow=debug` (RUST_LOG also works).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Redis shared by several instances for channels (`redis://host:6379`); unset = embedded.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_url: Option<String>,
}

/// The `[auth]` table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// `authorized_keys`-style file for SSH-key login; each key's `codeflow-projects` and
    /// `codeflow-scope` options name what it grants.
    pub authorized_keys: Option<PathBuf>,
    /// Client certificate names (CN or SAN) mapped to grants; needs `tls_client_ca`.
    pub client_certs: Vec<ClientCertEntry>,
}

/// One `[[auth.client_certs]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertEntry {
    /// The certificate's CN, or one of its SANs (DNS name, e-mail, URI, IP address).
    pub subject: String,
    /// Project ids, or `["*"]` for every project.
    pub projects: Vec<String>,
    /// Rights; default `["file:read", "lsp:query"]`.
    #[serde(default)]
    pub scope: Option<Vec<String>>,
}

/// The `[terminal]` table: terminals on `/ws/terminal/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TerminalSection {
    /// The shell terminals run; unset = the server's `SHELL`, else `/bin/sh`.
    pub shell: Option<PathBuf>,
    /// Seconds a terminal without viewers lives before its processes are killed.
    pub grace_secs: u64,
    /// Bytes of recent output a viewer gets when it attaches.
    pub scrollback_bytes: usize,
    /// Most terminals per project.
    pub max_per_project: usize,
    /// Most terminals on the server.
    pub max_total: usize,
    /// Seconds a ticket from `terminals/create` or `terminals/attach` stays valid.
    pub ticket_ttl_secs: u64,
    /// The user terminals run as (a server running as root only); unset = the server's.
    pub run_as_uid: Option<u32>,
    /// The group terminals run as; unset with `run_as_uid` = that user's primary group.
    pub run_as_gid: Option<u32>,
}

impl Default for TerminalSection {
    fn default() -> Self {
        Self {
            shell: None,
            grace_secs: 60,
            scrollback_bytes: 256 * 1024,
            max_per_project: 8,
            max_total: 64,
            ticket_ttl_secs: 60,
            run_as_uid: None,
            run_as_gid: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting, with its default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub bind: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub max_clients: usize,
    pub jwt_secret: Option<String>,
    /// PEM public key file, Ed25519 or RSA: tokens signed with its private key (EdDSA or
    /// RS256) are accepted.
    pub jwt_public_key: Option<PathBuf>,
    /// JWKS file: tokens whose header `kid` names one of its public keys are checked with
    /// it (re-read when the file changes).
    pub jwt_jwks_file: Option<PathBuf>,
    /// Credentials other than tokens: SSH keys and client certificates.
    pub auth: AuthSection,
    pub require_auth: bool,
    /// Rights of clients without a token, space-separated (e.g. `"file:read lsp:query"`).
    /// With a secret, unset means tokens are required; without one, unset means every right.
    pub anonymous_rights: Option<String>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Client certificates must be signed by a CA in this PEM file (mutual TLS).
    pub tls_client_ca: Option<PathBuf>,
    pub insecure: bool,
    pub log_format: LogFormat,
    pub log_level: String,
    /// File for the audit log (`codeflow::audit`, JSON lines); unset = the main log.
    pub audit_file: Option<PathBuf>,
    /// Seconds a session without a socket is kept for a resume.
    pub resume_grace_secs: u64,
    /// Seconds a new socket has to complete `initialize`.
    pub initialize_timeout_secs: u64,
    /// Seconds between pings; 0 disables heartbeats.
    pub ping_interval_secs: u64,
    /// Seconds past a ping before a silent peer is dropped.
    pub pong_timeout_secs: u64,
    /// Largest WebSocket message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Messages queued per connection before it counts as a slow reader.
    pub outbound_queue: usize,
    /// Requests per second allowed per session.
    pub rate_limit_per_second: u32,
    /// Burst above the rate allowed per session.
    pub rate_limit_burst: u32,
    /// Requests running at once per session.
    pub max_concurrent_requests: usize,
    /// Deepest nesting of arrays and objects in a client message.
    pub max_json_depth: usize,
    /// `Origin` values allowed on `/ws` (browser clients); `"*"` allows any. A request without
    /// an `Origin` header (the relay, tools) is always allowed.
    pub allowed_origins: Vec<String>,
    /// Most sessions held at once (attached or awaiting resume).
    pub max_sessions: usize,
    /// Publications kept per channel for clients that resubscribe with `since`.
    pub channel_history: usize,
    /// The broker several instances share for channels (`redis://…`); unset keeps channels
    /// embedded in this process.
    pub cluster_url: Option<String>,
    /// Test-only tools and client publishing on channels (`CODEFLOW_TEST_TOOLS=true`); for
    /// end-to-end tests and benchmarks, never for production.
    pub test_tools: bool,
    /// The language-server pool: timeouts and the server table (`[lsp.servers.<id>]`).
    pub lsp: codeflow_lsp_pool::PoolConfig,
    /// Projects the server sees through a shared volume instead of streaming them:
    /// project id → directory on the server.
    pub shared_projects: std::collections::BTreeMap<String, PathBuf>,
    /// `client/readFile` requests in flight per project during a sync.
    pub sync_concurrency: usize,
    /// Language servers started right after a project's first sync, for its most common
    /// languages (0 = start each on first use).
    pub prestart_language_servers: usize,
    /// Where the directories of projects made with `projects/create` live (default
    /// `<data_dir>/workspaces`).
    pub projects_root: Option<PathBuf>,
    /// Most projects (`projects/create` beyond it is refused).
    pub max_projects: usize,
    /// The Claude Code CLI (a name in `PATH` or a path). Go alias `CLAUDE_CMD`.
    pub claude_cmd: String,
    /// Extra arguments for every run, after CodeFlow's own.
    pub claude_args: Vec<String>,
    /// A run's default time limit, in seconds. Go alias `EXEC_TIMEOUT`.
    pub exec_timeout_secs: u64,
    /// The largest time limit a `claude/execute` may ask for, in seconds.
    pub exec_max_timeout_secs: u64,
    /// A run that prints no complete line for this long is stopped, in seconds.
    pub exec_stall_secs: u64,
    /// How long the CLI may take to exit after its `result` line, in seconds.
    pub exec_exit_grace_secs: u64,
    /// Wait between SIGINT, SIGTERM and SIGKILL when a run is stopped, in milliseconds.
    pub exec_kill_grace_ms: u64,
    /// Longest stream-json line, in bytes; longer lines become error events.
    pub exec_max_line_bytes: usize,
    /// Variables of the server's environment passed to the CLI besides the clean base (`PATH`,
    /// `HOME`, the locale, toolchains); a trailing `*` matches a prefix.
    pub exec_env_pass: Vec<String>,
    /// More environment variables withheld from the CLI (`CLAUDECODE*` and `CODEFLOW_*`
    /// always are); a trailing `*` matches a prefix.
    pub exec_env_remove: Vec<String>,
    /// Run the CLI as this user / group id.
    pub exec_run_as_uid: Option<u32>,
    pub exec_run_as_gid: Option<u32>,
    /// Resource limits of a run (through util-linux `prlimit`): address space in MiB, CPU
    /// seconds, open files, processes of the user.
    pub exec_max_memory_mb: Option<u64>,
    pub exec_max_cpu_secs: Option<u64>,
    pub exec_max_open_files: Option<u64>,
    pub exec_max_processes: Option<u64>,
    /// Message-log segment size that starts a new segment, in bytes. Go alias
    /// `MSG_ROTATE_SIZE`.
    pub msg_rotate_bytes: u64,
    /// Age of a segment's first entry that starts a new segment, in days. Go alias
    /// `MSG_ROTATE_DAYS`.
    pub msg_rotate_days: f64,
    /// Delete sealed segments last written this many days ago (0 = keep them).
    pub msg_retention_days: f64,
    /// Terminals: shell, grace, scrollback, limits, tickets.
    pub terminal: TerminalSection,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 3000,
            data_dir: PathBuf::from("./.codeflow"),
            max_clients: 10_000,
            jwt_secret: None,
            jwt_public_key: None,
            jwt_jwks_file: None,
            auth: AuthSection::default(),
            require_auth: false,
            anonymous_rights: None,
            jwt_issuer: "codeflow".into(),
            jwt_audience: "codeflow-clients".into(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            insecure: false,
            log_format: LogFormat::Text,
            log_level: "info,rmcp=warn".into(),
            audit_file: None,
            resume_grace_secs: 60,
            initialize_timeout_secs: 10,
            ping_interval_secs: 25,
            pong_timeout_secs: 10,
            max_message_bytes: 16 * 1024 * 1024,
            outbound_queue: 1024,
            rate_limit_per_second: 100_000,
            rate_limit_burst: 20_000,
            max_concurrent_requests: 4096,
            max_json_depth: 64,
            allowed_origins: Vec::new(),
            max_sessions: 100_000,
            channel_history: 1024,
            cluster_url: None,
            test_tools: false,
            lsp: codeflow_lsp_pool::PoolConfig::default(),
            shared_projects: Default::default(),
            sync_concurrency: 32,
            prestart_language_servers: 2,
            projects_root: None,
            max_projects: 1000,
            claude_cmd: "claude".into(),
            claude_args: Vec::new(),
            exec_timeout_secs: 300,
            exec_max_timeout_secs: 3600,
            exec_stall_secs: 240,
            exec_exit_grace_secs: 10,
            exec_kill_grace_ms: 3000,
            exec_max_line_bytes: 4 * 1024 * 1024,
            exec_env_pass: codeflow_claude_executor::config::default_env_pass(),
            exec_env_remove: Vec::new(),
            exec_run_as_uid: None,
            exec_run_as_gid: None,
            exec_max_memory_mb: None,
            exec_max_cpu_secs: None,
            exec_max_open_files: None,
            exec_max_processes: None,
            msg_rotate_bytes: 1024 * 1024 * 1024,
            msg_rotate_days: 30.0,
            msg_retention_days: 0.0,
            terminal: TerminalSection::default(),
        }
    }
}

impl Config {
    /// The executor's settings.
    pub fn executor(&self) -> codeflow_claude_executor::ExecutorConfig {
        use std::time::Duration;
        let days = |d: f64| Duration::from_secs_f64((d * 86_400.0).clamp(0.0, 1e12));
        codeflow_claude_executor::ExecutorConfig {
            projects_root: self
                .projects_root
                .clone()
                .unwrap_or_else(|| self.data_dir.join("workspaces")),
            state_dir: self.data_dir.join("projects"),
            claude_cmd: self.claude_cmd.clone(),
            claude_args: self.claude_args.clone(),
            default_timeout: Duration::from_secs(self.exec_timeout_secs),
            max_timeout: Duration::from_secs(self.exec_max_timeout_secs),
            stall_timeout: Duration::from_secs(self.exec_stall_secs.max(1)),
            exit_grace: Duration::from_secs(self.exec_exit_grace_secs),
            kill_grace: Duration::from_millis(self.exec_kill_grace_ms),
            max_line_bytes: self.exec_max_line_bytes.max(1024),
            max_projects: self.max_projects,
            env_pass: self.exec_env_pass.clone(),
            env_remove: self.exec_env_remove.clone(),
            run_as_uid: self.exec_run_as_uid,
            run_as_gid: self.exec_run_as_gid,
            limits: codeflow_claude_executor::Limits {
                memory_mb: self.exec_max_memory_mb,
                cpu_secs: self.exec_max_cpu_secs,
                open_files: self.exec_max_open_files,
                processes: self.exec_max_processes,
            },
            log: codeflow_claude_executor::LogConfig {
                rotate_bytes: self.msg_rotate_bytes.max(1),
                rotate_age: days(self.msg_rotate_days),
                retention: (self.msg_retention_days > 0.0).then(|| days(self.msg_retention_days)),
                ..Default::default()
            },
        }
    }

    /// The terminals' settings.
    pub fn terminals(&self) -> codeflow_terminal::TerminalConfig {
        let shell = self
            .terminal
            .shell
            .clone()
            .or_else(|| std::env::var_os("SHELL").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/bin/sh"));
        codeflow_terminal::TerminalConfig {
            shell,
            grace: std::time::Duration::from_secs(self.terminal.grace_secs),
            scrollback_bytes: self.terminal.scrollback_bytes,
            max_per_project: self.terminal.max_per_project,
            max_total: self.terminal.max_total,
            ticket_ttl: std::time::Duration::from_secs(self.terminal.ticket_ttl_secs.max(1)),
            run_as_uid: self.terminal.run_as_uid,
            run_as_gid: self.terminal.run_as_gid,
            ..Default::default()
        }
    }

    /// Merges every source, then checks the result.
    pub fn load(flags: &Flags) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &flags.config {
            if !path.exists() {
                bail!("config file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let config: Config = figment
            // The original Go server's variable names, below CodeFlow's own.
            .merge(Serialized::defaults(crate::aliases::from_env()?))
            .merge(
                Env::prefixed("CODEFLOW_")
                    .ignore(&["TOKEN", "SERVER", "CONFIG", "LOG"])
                    .split("__"),
            )
            .merge(Serialized::defaults(flags))
            .extract()
            .context("invalid configuration")?;
        config.check()?;
        Ok(config)
    }

    /// The authentication settings these keys describe.
    pub fn auth(&self) -> anyhow::Result<codeflow_session::AuthConfig> {
        let anonymous_rights = match &self.anonymous_rights {
            None => None,
            Some(text) => Some(
                parse_rights(text)
                    .context("invalid anonymous_rights")?
                    .into_iter()
                    .collect(),
            ),
        };
        let jwt_public_key_pem = match &self.jwt_public_key {
            None => None,
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read jwt_public_key {}", path.display()))?,
            ),
        };
        let mut client_certs = Vec::new();
        for entry in &self.auth.client_certs {
            let projects = if entry.projects.iter().any(|p| p == "*") {
                None
            } else {
                Some(entry.projects.clone())
            };
            let rights = match &entry.scope {
                None => vec![
                    codeflow_session::Right::FileRead,
                    codeflow_session::Right::LspQuery,
                ],
                Some(words) => parse_rights(&words.join(" "))
                    .with_context(|| format!("auth.client_certs `{}`", entry.subject))?,
            };
            client_certs.push(codeflow_session::CertGrant {
                subject: entry.subject.clone(),
                projects,
                rights: rights.into_iter().collect(),
            });
        }
        let auth = codeflow_session::AuthConfig {
            jwt_secret: self.jwt_secret.clone(),
            jwt_public_key_pem,
            jwks_file: self.jwt_jwks_file.clone(),
            client_certs,
            authorized_keys: self.auth.authorized_keys.clone(),
            require_auth: self.require_auth,
            anonymous_rights,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
        };
        auth.check().map_err(|e| anyhow::anyhow!(e))?;
        Ok(auth)
    }

    fn check(&self) -> anyhow::Result<()> {
        let auth = self.auth()?;
        if !self.bind.is_loopback() && !auth.has_credentials() && !self.insecure {
            bail!(
                "refusing to listen on {} without authentication: anyone who can reach it could read and edit projects. \
                 Set --jwt-secret (tokens are then required), or pass --insecure if the network is trusted",
                self.bind
            );
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bail!("TLS needs both --tls-cert and --tls-key");
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            bail!("--tls-client-ca needs --tls-cert and --tls-key");
        }
        if !self.auth.client_certs.is_empty() && self.tls_client_ca.is_none() {
            bail!(
                "auth.client_certs needs tls_client_ca: only certificates the server verified can be mapped to grants"
            );
        }
        if self.max_json_depth < 8 {
            bail!("max_json_depth must be at least 8 (MCP messages nest a few levels)");
        }
        if self.max_concurrent_requests == 0 {
            bail!("max_concurrent_requests must be at least 1");
        }
        if self.max_clients == 0 {
            bail!("--max-clients must be at least 1");
        }
        if self.exec_timeout_secs == 0 || self.exec_timeout_secs > self.exec_max_timeout_secs {
            bail!("exec_timeout_secs must be between 1 and exec_max_timeout_secs");
        }
        if self.claude_cmd.trim().is_empty() {
            bail!("claude_cmd must name the Claude Code CLI");
        }
        if let Some(shell) = &self.terminal.shell
            && !shell.is_file()
        {
            bail!(
                "terminal.shell {} is not a file: name the shell terminals run, e.g. /bin/bash",
                shell.display()
            );
        }
        let me = nix::unistd::geteuid();
        for (key, uid) in [
            ("terminal.run_as_uid", self.terminal.run_as_uid),
            ("exec_run_as_uid", self.exec_run_as_uid),
        ] {
            if let Some(uid) = uid
                && !me.is_root()
                && uid != me.as_raw()
            {
                bail!(
                    "{key} = {uid} needs the server to run as root (it runs as uid {me}): start it as root, or unset {key}"
                );
            }
        }
        if !(self.msg_rotate_days > 0.0 && self.msg_retention_days >= 0.0) {
            bail!("msg_rotate_days must be positive and msg_retention_days not negative");
        }
        Ok(())
    }
}
