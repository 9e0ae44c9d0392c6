//! The relay's token and where newer ones come from: fixed (`--token`), a file that an outside
//! agent replaces (`--token-file`, re-read when it changes), or a command run before the
//! current token expires (`--token-command`, its stdout is the new token). The newest token is
//! used for every dial and handshake; the relay loop sends each new one to the live session
//! as `auth/refresh`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How often `--token-file` is looked at.
const FILE_CHECK_EVERY: Duration = Duration::from_secs(1);
/// The longest a `--token-command` may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long before expiry a command-refreshed token is renewed, at most.
const RENEW_MARGIN: Duration = Duration::from_secs(60);
/// When a token's expiry cannot be read, how often the command is run.
const RENEW_WITHOUT_EXP: Duration = Duration::from_secs(300);
/// After a failed command, how soon it is tried again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
enum Source {
    Fixed,
    File(PathBuf),
    /// The program and its arguments (split like a POSIX shell would, but no shell runs).
    Command(Vec<String>),
}

/// The newest token, shared by the dialer, the handshake and the refresher.
#[derive(Debug, Clone)]
pub struct Tokens {
    current: Arc<RwLock<Option<String>>>,
    source: Source,
}

impl Tokens {
    /// A token that never changes (`--token`), or none.
    pub fn fixed(token: Option<String>) -> Self {
        Self {
            current: Arc::new(RwLock::new(token.filter(|t| !t.trim().is_empty()))),
            source: Source::Fixed,
        }
    }

    /// Whether a new token can come without a restart (`--token-file`, `--token-command`).
    pub fn renews(&self) -> bool {
        !matches!(self.source, Source::Fixed)
    }

    /// The token in `path`, re-read when the file changes.
    pub fn from_file(path: PathBuf) -> Result<Self, String> {
        let token = read_token_file(&path)?;
        Ok(Self {
            current: Arc::new(RwLock::new(Some(token))),
            source: Source::File(path),
        })
    }

    /// The token a command prints, run again before each token expires.
    pub fn from_command(command: &str) -> Result<Self, String> {
        let argv = shlex::split(command)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                format!("--token-command `{command}` is empty or has unbalanced quotes")
            })?;
        let token = run_command_blocking(&argv)?;
        Ok(Self {
            current: Arc::new(RwLock::new(Some(token))),
            source: Source::Command(argv),
        })
    }

    /// The newest token.
    pub fn current(&self) -> Option<String> {
        self.current.read().clone()
    }

    fn replace(&self, token: String) -> bool {
        let mut current = self.current.write();
        if current.as_deref() == Some(token.as_str()) {
            return false;
        }
        *current = Some(token);
        true
    }

    /// Starts watching the source; each new token is sent on the returned channel. `None`
    /// for a fixed token. The task ends when the receiver is dropped (and is aborted with the
    /// returned guard).
    pub fn watch(&self) -> Option<(mpsc::Receiver<String>, AbortOnDrop)> {
        let (tx, rx) = mpsc::channel(4);
        let this = self.clone();
        let task = match self.source.clone() {
            Source::Fixed => return None,
            Source::File(path) => tokio::spawn(async move { this.watch_file(path, tx).await }),
            Source::Command(argv) => {
                tokio::spawn(async move { this.run_before_expiry(argv, tx).await })
            }
        };
        Some((rx, AbortOnDrop(task)))
    }

    async fn watch_file(self, path: PathBuf, tx: mpsc::Sender<String>) {
        let mut ticker = tokio::time::interval(FILE_CHECK_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let path2 = path.clone();
            let read = tokio::task::spawn_blocking(move || read_token_file(&path2)).await;
            match read {
                Ok(Ok(token)) => {
                    if self.replace(token.clone()) {
                        tracing::info!(file = %path.display(), "the token file changed; using the new token");
                        if tx.send(token).await.is_err() {
                            return;
                        }
                    }
                }
                // Between a truncate and a write, or a rename in progress: next tick.
                Ok(Err(e)) => tracing::debug!("token file: {e}"),
                Err(_) => return,
            }
            if tx.is_closed() {
                return;
            }
        }
    }

    async fn run_before_expiry(self, argv: Vec<String>, tx: mpsc::Sender<String>) {
        let mut obtained = SystemTime::now();
        loop {
            let wait = self
                .current()
                .and_then(|t| expires_at(&t))
                .map_or(RENEW_WITHOUT_EXP, |exp| renew_in(obtained, exp));
            tokio::time::sleep(wait).await;
            if tx.is_closed() {
                return;
            }
            match run_command(&argv).await {
                Ok(token) => {
                    obtained = SystemTime::now();
                    if self.replace(token.clone()) {
                        tracing::info!("--token-command gave a new token");
                        if tx.send(token).await.is_err() {
                            return;
                        }
                    } else {
                        tracing::warn!(
                            "--token-command printed the same token again; trying again in {} s",
                            RETRY_AFTER_FAILURE.as_secs()
                        );
                        tokio::time::sleep(RETRY_AFTER_FAILURE).await;
                    }
                }
                Err(e) => {
                    tracing::warn!("{e}; trying again in {} s", RETRY_AFTER_FAILURE.as_secs());
                    tokio::time::sleep(RETRY_AFTER_FAILURE).await;
                }
            }
        }
    }
}

/// Aborts its task when dropped: the watcher never outlives the relay.
#[derive(Debug)]
pub struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long from now until a token obtained at `obtained` and expiring at `exp` (seconds
/// since the epoch) should be renewed: a third of its life before expiry, at most a minute
/// before.
fn renew_in(obtained: SystemTime, exp: u64) -> Duration {
    let exp = UNIX_EPOCH + Duration::from_secs(exp);
    let life = exp.duration_since(obtained).unwrap_or_default();
    let renew_at = exp - (life / 3).min(RENEW_MARGIN);
    renew_at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .max(Duration::from_millis(200))
}

/// The `exp` claim of a JWT, read without checking the signature (only to know when to renew).
pub fn expires_at(token: &str) -> Option<u64> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_u64()
}

fn read_token_file(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok(token.to_owned())
}

fn command_output(
    argv: &[String],
    output: std::io::Result<std::process::Output>,
) -> Result<String, String> {
    let shown = argv.join(" ");
    let output = output.map_err(|e| format!("--token-command `{shown}` cannot run: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "--token-command `{shown}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if token.is_empty() {
        return Err(format!("--token-command `{shown}` printed no token"));
    }
    Ok(token)
}

/// Runs the command once at start-up (before the runtime serves anything).
fn run_command_blocking(argv: &[String]) -> Result<String, String> {
    let output = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .output();
    command_output(argv, output)
}

async fn run_command(argv: &[String]) -> Result<String, String> {
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(COMMAND_TIMEOUT, command.output()).await {
        Ok(output) => command_output(argv, output),
        Err(_) => Err(format!(
            "--token-command `{}` did not finish within {} s",
            argv.join(" "),
            COMMAND_TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exp_and_renews_a_third_of_the_life_before_expiry() {
        use base64::Engine;
        let claims =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":2000000000}"#);
        assert_eq!(expires_at(&format!("h.{claims}.s")), Some(2_000_000_000));
        assert_eq!(expires_at("not a jwt"), None);
        let now = SystemTime::now();
        let exp = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() + 9;
        let wait = renew_in(now, exp);
        assert!(
            wait > Duration::from_secs(4) && wait <= Duration::from_secs(7),
            "{wait:?}"
        );
        // A long-lived token is renewed a minute before it expires.
        let exp = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() + 3600;
        let wait = renew_in(now, exp);
        assert!(
            wait > Duration::from_secs(3500) && wait <= Duration::from_secs(3540),
            "{wait:?}"
        );
    }

    #[test]
    fn commands_are_split_without_a_shell() {
        assert!(Tokens::from_command("   ").is_err());
        assert!(Tokens::from_command("echo 'unbalanced").is_err());
        let t = Tokens::from_command("echo 'a b'").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.current().as_deref(), Some("a b"));
        // `$HOME` is not expanded: no shell.
        let t = Tokens::from_command("echo $HOME").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.current().as_deref(), Some("$HOME"));
        let failing = Tokens::from_command("false").unwrap_err();
        assert!(failing.contains("failed"), "{failing}");
    }
}
