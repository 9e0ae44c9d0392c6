//! The server side of the relay: dialing, and after a drop, coming back — resuming the session
//! when the server still has it, or quietly starting a new one with the agent's own
//! `initialize` when it does not.

use std::sync::Arc;
use std::time::Duration;

use codeflow_transport::{Backoff, ConnectionConfig, Inbound, Message, Outbound};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::cli::Resolved;

/// How long the relay waits for the server to answer its own re-`initialize`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// What the relay remembers of the agent's handshake, to replay it after a reconnect.
#[derive(Debug, Default)]
pub struct HandshakeMemory {
    /// The agent's `initialize` params with the CodeFlow fields added.
    pub init_params: Option<Value>,
    pub session_id: Option<String>,
    /// Why the last dial failed, while the server is unreachable (cleared once a dial
    /// succeeds): the agent's "unreachable" errors carry it.
    pub last_dial_error: Option<String>,
    /// The last dial failed because the server refused the token (HTTP 401 at the upgrade).
    pub token_refused: bool,
}

/// A live connection, ready for the agent's traffic.
pub struct Established {
    pub outbound: Outbound,
    pub inbound: Inbound,
    /// Messages the server sent before the handshake reply (delivered backlog).
    pub early: Vec<Message>,
    pub kind: Reestablished,
    /// With `--ssh-key`: this connection's signed login (`initialize`'s `auth`), for the
    /// agent's own `initialize` when it goes out on this connection.
    pub login: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reestablished {
    /// First connection: the agent's `initialize` is still to come.
    New,
    /// The server still had the session.
    Resumed,
    /// The session was gone (e.g. the server restarted); a new one was created.
    Fresh,
}

/// Adds what the server needs to the agent's `initialize` params.
pub fn augment_initialize(target: &Resolved, params: Option<Value>) -> Value {
    let mut params = match params {
        Some(Value::Object(p)) => p,
        _ => serde_json::Map::new(),
    };
    params.insert("project".into(), json!(target.project));
    params.insert("projectRoot".into(), json!(target.root.to_string_lossy()));
    if let Some(token) = target.tokens.current() {
        params.insert("token".into(), json!(token));
    }
    let capabilities = params.entry("capabilities").or_insert_with(|| json!({}));
    if let Value::Object(caps) = capabilities {
        let experimental = caps.entry("experimental").or_insert_with(|| json!({}));
        if let Value::Object(exp) = experimental {
            exp.insert("codeflow".into(), json!({"fileStream": true}));
        }
    }
    Value::Object(params)
}

/// Puts this connection's credentials in `initialize` params: the newest token, and the SSH
/// login signed for this connection (a challenge is good for one connection only).
pub fn with_credentials(target: &Resolved, params: &mut Value, login: Option<&Value>) {
    if let Value::Object(p) = params {
        match target.tokens.current() {
            Some(token) => p.insert("token".into(), json!(token)),
            None => p.remove("token"),
        };
        match login {
            Some(auth) => p.insert("auth".into(), auth.clone()),
            None => p.remove("auth"),
        };
    }
}

/// Connects, retrying with full-jitter backoff until it succeeds, then re-runs the handshake if
/// the agent has already initialized. `hurry` cuts a backoff short (a call is waiting), no
/// sooner than [`HURRIED_GAP`] after the last attempt began.
pub async fn establish(
    target: &Resolved,
    config: &ConnectionConfig,
    memory: &Arc<Mutex<HandshakeMemory>>,
    hurry: &Notify,
) -> Established {
    let mut backoff = Backoff::default();
    loop {
        let began = tokio::time::Instant::now();
        match attempt(target, config, memory).await {
            Ok(established) => {
                memory.lock().last_dial_error = None;
                return established;
            }
            Err(e) => {
                memory.lock().last_dial_error = Some(e.clone());
                let delay = backoff.next_delay();
                tracing::warn!(
                    "cannot reach {}: {e}; retrying in {:.1} s",
                    target.server,
                    delay.as_secs_f32()
                );
                if pause(delay, began, hurry).await == Pause::Hurried {
                    tracing::info!("a call is waiting: trying {} again now", target.server);
                }
            }
        }
    }
}

/// Least time between the start of one attempt and a hurried next one: a busy agent on a down
/// server makes at most one connection attempt a second.
pub const HURRIED_GAP: Duration = Duration::from_secs(1);

#[derive(Debug, PartialEq, Eq)]
enum Pause {
    Waited,
    Hurried,
}

/// Sleeps `delay` (from now: the attempt that began at `began` has just failed), or less when
/// `hurry` is notified: then until [`HURRIED_GAP`] after `began`.
async fn pause(delay: Duration, began: tokio::time::Instant, hurry: &Notify) -> Pause {
    let hurried = async {
        hurry.notified().await;
        tokio::time::sleep_until(began + HURRIED_GAP).await;
    };
    tokio::select! {
        () = tokio::time::sleep(delay) => Pause::Waited,
        () = hurried => Pause::Hurried,
    }
}

async fn attempt(
    target: &Resolved,
    config: &ConnectionConfig,
    memory: &Arc<Mutex<HandshakeMemory>>,
) -> Result<Established, String> {
    let connected =
        crate::dial::connect(&target.server, target.tokens.current().as_deref(), config).await;
    memory.lock().token_refused = connected.as_ref().is_err_and(|e| e.token_refused);
    let (outbound, mut inbound) = connected.map_err(|e| e.text)?;
    let login = match &target.ssh_key {
        Some(key) => Some(crate::ssh_login::login(key, &outbound, &mut inbound).await?),
        None => None,
    };
    let (params, previous) = {
        let m = memory.lock();
        (m.init_params.clone(), m.session_id.clone())
    };
    // Replay the handshake only once the agent's own `initialize` was answered; until then the
    // agent's request is still queued in the relay and goes out on this connection.
    let Some(mut params) = params.filter(|_| previous.is_some()) else {
        return Ok(Established {
            outbound,
            inbound,
            early: Vec::new(),
            kind: Reestablished::New,
            login,
        });
    };
    with_credentials(target, &mut params, login.as_ref());
    if let (Some(sid), Value::Object(p)) = (&previous, &mut params) {
        p.insert("sessionId".into(), json!(sid));
    }
    let id = json!("r:initialize");
    outbound
        .send(&Message::request(id.clone(), "initialize", params))
        .map_err(|e| e.to_string())?;
    let mut early = Vec::new();
    let deadline = tokio::time::sleep(HANDSHAKE_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        let message = tokio::select! {
            m = inbound.recv() => m.ok_or("the server closed the connection during the handshake")?,
            _ = &mut deadline => return Err("the server did not answer initialize".into()),
        };
        match message {
            Message::Response { id: rid, result } if rid == id => {
                let sid = result
                    .get("sessionId")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let kind = if sid.is_some() && sid == previous {
                    Reestablished::Resumed
                } else {
                    // A new session has not seen `initialized` yet.
                    let _ = outbound.send(&Message::notification(
                        "notifications/initialized",
                        json!({}),
                    ));
                    Reestablished::Fresh
                };
                memory.lock().session_id = sid;
                return Ok(Established {
                    outbound,
                    inbound,
                    early,
                    kind,
                    login: None,
                });
            }
            Message::Error { id: rid, error } if rid == id => {
                return Err(format!("the server refused the session: {error}"));
            }
            other => early.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn a_backoff_is_slept_out_when_nothing_waits() {
        let hurry = Notify::new();
        let began = Instant::now();
        assert_eq!(
            pause(Duration::from_secs(16), began, &hurry).await,
            Pause::Waited
        );
        assert_eq!(began.elapsed(), Duration::from_secs(16));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_call_cuts_the_backoff_short_but_not_below_a_second_per_attempt() {
        let hurry = Notify::new();
        // Hurried while the attempt was still running: the next one starts a second after it.
        hurry.notify_one();
        let began = Instant::now();
        assert_eq!(
            pause(Duration::from_secs(16), began, &hurry).await,
            Pause::Hurried
        );
        assert_eq!(began.elapsed(), HURRIED_GAP);

        // Hurried five seconds into a long backoff: at once.
        let began = Instant::now();
        let hurry = Arc::new(Notify::new());
        let later = Arc::clone(&hurry);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            later.notify_one();
        });
        assert_eq!(
            pause(Duration::from_secs(16), began, &hurry).await,
            Pause::Hurried
        );
        assert_eq!(began.elapsed(), Duration::from_secs(5));
    }
}
