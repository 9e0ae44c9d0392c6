//! The ways in besides a fixed HS256 token, through real sockets (issue 12): the relay renewing
//! its own token (`--token-file`, `--token-command`), RS256 and JWKS keys, client
//! certificates mapped to grants, and SSH-key login.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use codeflow_e2e::{Relay, Server};
use serde_json::{Value, json};

const SECRET: &str = "login-e2e-secret-0123456789abcdef0123";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An HS256 token for project `project` living `secs` seconds.
fn hs256(project: &str, secs: i64) -> String {
    let claims = json!({
        "sub": "renewing-relay", "iss": "codeflow", "aud": "codeflow-clients",
        "exp": now() + secs, "projects": [project], "scope": "file:read lsp:query",
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Replaces a file at once (a write then a rename), as a token agent would.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn session_id(relay: &Relay) -> String {
    let health = relay.tool("health_check", json!({})).await;
    health["structuredContent"]["session"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no session id: {health}"))
        .to_owned()
}

/// A relay whose first token lives 8 s keeps its session past that: with `--token-file` the
/// file is replaced and the relay sends the new token (`auth/refresh`); with
/// `--token-command` the relay runs the command before expiry. Either way the session is the
/// same one afterwards (an expired session would have been closed with 4005 and replaced).
#[tokio::test]
async fn the_relay_renews_its_token_and_keeps_its_session() {
    let server = Server::start_with(&["--jwt-secret", SECRET], &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let by_file = dir.path().join("file-token");
    let by_command = dir.path().join("command-token");
    replace(&by_file, &hs256("renew", 8));
    replace(&by_command, &hs256("renew", 8));
    let started = std::time::Instant::now();
    let file_relay = Relay::spawn(
        &server.url(),
        "renew",
        root.path(),
        &["--token-file", by_file.to_str().unwrap()],
    );
    let command = format!("cat '{}'", by_command.display());
    let command_relay = Relay::spawn(
        &server.url(),
        "renew",
        root.path(),
        &["--token-command", &command],
    );
    file_relay.initialize().await;
    command_relay.initialize().await;
    let file_sid = session_id(&file_relay).await;
    let command_sid = session_id(&command_relay).await;

    // The token agent writes new tokens: the file relay notices the file; the command relay
    // reads it when it runs the command, before the first token expires.
    replace(&by_file, &hs256("renew", 600));
    replace(&by_command, &hs256("renew", 600));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the set-up took too long for an 8 s token"
    );
    tokio::time::sleep(
        Duration::from_secs(8).saturating_sub(started.elapsed()) + Duration::from_secs(3),
    )
    .await;

    assert_eq!(
        session_id(&file_relay).await,
        file_sid,
        "the file relay lost its session"
    );
    assert_eq!(
        session_id(&command_relay).await,
        command_sid,
        "the command relay lost its session"
    );
}
