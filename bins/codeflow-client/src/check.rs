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
            if check_tree(&target, &outbound, &mut inbound).await {
                // The command as the person would type it: the URL without the `project`
                // query the relay adds itself, and the root, which is not always the
                // directory the MCP client starts the relay in.
                let server = target
                    .server
                    .strip_suffix(&format!("?project={}", target.project))
                    .unwrap_or(&target.server);
                println!(
                    "The relay is ready: point your MCP client at `codeflow-client --server {server} --project {} --root {}` (with the same credential options).",
                    target.project,
                    target.root.display()
                );
                0
            } else {
                1
            }
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

/// Compares this tree with the project's mirror on the server (a dry-run `server/syncManifest`):
/// fails when the mirror holds another live session's different tree, which a relay started
/// here would be refused for.
async fn check_tree(
    target: &Resolved,
    outbound: &codeflow_transport::Outbound,
    inbound: &mut codeflow_transport::Inbound,
) -> bool {
    use codeflow_file_stream::{ExcludeConfig, FileFilter, Limits, Manifest};
    let scanned = Limits::from_env()
        .map_err(|e| e.to_string())
        .and_then(|limits| {
            // As the relay's watcher judges: files git tracks are in, whatever .gitignore says.
            let filter = FileFilter::new(&target.root, ExcludeConfig::default())
                .map_err(|e| e.to_string())?
                .following_git_index();
            Manifest::scan(&target.root, &filter, &limits).map_err(|e| e.to_string())
        });
    let manifest = match scanned {
        Ok(m) => m,
        Err(e) => {
            println!(
                "FAILED: cannot read the tree at {}: {e}",
                target.root.display()
            );
            return false;
        }
    };
    let mut params = manifest.to_params();
    params.dry_run = true;
    let params = serde_json::to_value(params).unwrap_or(Value::Null);
    if outbound
        .send(&Message::request(json!(2), "server/syncManifest", params))
        .is_err()
    {
        println!("FAILED: the connection closed before the tree was compared");
        return false;
    }
    let reply = tokio::time::timeout(TIMEOUT, async {
        loop {
            match inbound.recv().await {
                Some(m @ (Message::Response { .. } | Message::Error { .. }))
                    if m.id() == Some(&json!(2)) =>
                {
                    return Some(m);
                }
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await;
    match reply {
        Ok(Some(Message::Response { result, .. })) => {
            let count = |k: &str| result.get(k).and_then(Value::as_array).map_or(0, Vec::len);
            println!(
                "OK: tree compared with the server's mirror ({} file(s) to fetch, {} to remove)",
                count("needed"),
                count("removed")
            );
            true
        }
        Ok(Some(Message::Error { error, .. })) if error.code == codes::CONFLICT => {
            println!("FAILED: {}", error.message);
            if let Some(s) = error
                .data
                .as_ref()
                .and_then(|d| d.get("suggestion"))
                .and_then(Value::as_str)
            {
                println!("Next step: {s}");
            }
            false
        }
        Ok(Some(Message::Error { error, .. })) => {
            // An older server, or a token without file rights: the tree cannot be compared,
            // which is not this check's failure.
            println!(
                "NOTE: the tree was not compared with the server's mirror: {}",
                error.message
            );
            true
        }
        _ => {
            println!(
                "FAILED: the server did not answer the tree comparison within {} s",
                TIMEOUT.as_secs()
            );
            false
        }
    }
}
