//! `codeflow-client check`: is the server reachable, and does it accept this project and token?
//! Prints what it found in words a person can act on; exits 0 only when everything works.

use std::time::Duration;

use codeflow_transport::{Message, codes};
use serde_json::{Value, json};

use crate::cli::Resolved;
use crate::upstream::augment_initialize;

const TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(target: Resolved) -> i32 {
    println!("Server:  {}", target.server);
    println!(
        "Project: {} (root {})",
        target.project,
        target.root.display()
    );
    let (outbound, mut inbound) = match tokio::time::timeout(
        TIMEOUT,
        crate::dial::connect(
            &target.server,
            target.tokens.current().as_deref(),
            &target.connection_config(),
        ),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            println!("FAILED: {e}");
            let text = e.to_string();
            if text.contains("CertificateRequired") || text.contains("certificate required") {
                println!(
                    "The server requires a client certificate: pass --client-cert and --client-key (signed by the CA the server trusts)."
                );
            }
            return 1;
        }
        Err(_) => {
            println!(
                "FAILED: no answer from {} within {} s",
                target.server,
                TIMEOUT.as_secs()
            );
            return 1;
        }
    };
    println!("OK: connected");
    let login = match &target.ssh_key {
        None => None,
        Some(key) => match crate::ssh_login::login(key, &outbound, &mut inbound).await {
            Ok(login) => {
                println!("OK: signed the server's login challenge with the SSH key");
                Some(login)
            }
            Err(e) => {
                println!("FAILED: SSH-key login: {e}");
                return 1;
            }
        },
    };
    let mut params = augment_initialize(
        &target,
        Some(json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "codeflow-client check", "version": env!("CARGO_PKG_VERSION")}
        })),
    );
    crate::upstream::with_credentials(&target, &mut params, login.as_ref());
    if outbound
        .send(&Message::request(json!(1), "initialize", params))
        .is_err()
    {
        println!("FAILED: the connection closed before the handshake");
        return 1;
    }
    let reply = tokio::time::timeout(TIMEOUT, async {
        loop {
            match inbound.recv().await {
                Some(m @ (Message::Response { .. } | Message::Error { .. }))
                    if m.id() == Some(&json!(1)) =>
                {
                    return Some(m);
                }
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await;
    let code = match reply {
        Ok(Some(Message::Response { result, .. })) => {
            let server = result
                .pointer("/serverInfo/version")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let session = result
                .get("sessionId")
                .and_then(Value::as_str)
                .unwrap_or("?");
            println!("OK: handshake accepted (server version {server}, session {session})");
            println!(
                "The relay is ready: point your MCP client at `codeflow-client --server {} --project {}`.",
                target.server, target.project
            );
            0
        }
        Ok(Some(Message::Error { error, .. })) => {
            let what = match error.code {
                codes::UNAUTHORIZED if target.ssh_key.is_some() => {
                    "the server refused the SSH-key login"
                }
                codes::UNAUTHORIZED if target.tokens.current().is_some() => {
                    "the server refused the token"
                }
                codes::UNAUTHORIZED => "the server refused the connection's credentials",
                codes::INVALID_PARAMS => "the server refused the project id or root",
                _ => "the server refused the handshake",
            };
            println!("FAILED: {what}: {}", error.message);
            if let Some(s) = error
                .data
                .as_ref()
                .and_then(|d| d.get("suggestion"))
                .and_then(Value::as_str)
            {
                println!("Next step: {s}");
            }
            1
        }
        Ok(_) => {
            println!(
                "FAILED: the server closed the connection during the handshake (a token problem, or the server is at capacity)"
            );
            1
        }
        Err(_) => {
            println!(
                "FAILED: the server did not answer initialize within {} s",
                TIMEOUT.as_secs()
            );
            1
        }
    };
    outbound.close(codeflow_transport::close::NORMAL, "check done");
    tokio::time::sleep(Duration::from_millis(50)).await;
    code
}
