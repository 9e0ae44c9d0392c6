//! The ways in besides a fixed HS256 token, through real sockets (issue 12): the relay renewing
//! its own token (`--token-file`, `--token-command`), RS256 and JWKS keys, client
//! certificates mapped to grants, and SSH-key login.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use codeflow_e2e::{Relay, Server, Ws};
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

/// Runs a shell script (openssl) in `dir`.
fn sh(dir: &Path, script: &str) {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("set -e; cd '{}'; {script}", dir.display()))
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

/// An RSA key pair made with openssl: `<name>.key` (PKCS#8 PEM) and `<name>.pub` (SPKI PEM).
fn rsa_key(dir: &Path, name: &str) {
    sh(
        dir,
        &format!(
            "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out {name}.key 2>/dev/null; \
             openssl pkey -in {name}.key -pubout -out {name}.pub"
        ),
    );
}

/// The JWK of an RSA public key, with `kid`.
fn rsa_jwk(dir: &Path, name: &str, kid: &str) -> Value {
    use base64::Engine;
    let out = std::process::Command::new("openssl")
        .args(["rsa", "-pubin", "-noout", "-modulus", "-in"])
        .arg(dir.join(format!("{name}.pub")))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text.trim().trim_start_matches("Modulus=");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
           "n": b64.encode(bytes), "e": "AQAB"})
}

/// A token for `project` signed with an RSA private key, with `alg` and `kid`.
fn rsa_token(
    dir: &Path,
    name: &str,
    alg: jsonwebtoken::Algorithm,
    kid: Option<&str>,
    project: &str,
) -> String {
    let pem = std::fs::read(dir.join(format!("{name}.key"))).unwrap();
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let claims = json!({"sub": "rsa", "iss": "codeflow", "aud": "codeflow-clients",
        "exp": now() + 600, "projects": [project], "scope": "lsp:query"});
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

/// An initialize with `params` (project `project`, root `/t`); the result, or the error
/// message after which the server closes with 1008.
async fn initialize_with(server: &Server, params: Value) -> Result<Value, String> {
    let mut ws = Ws::connect(&server.url()).await;
    initialize_on(&mut ws, params).await
}

async fn initialize_on(ws: &mut Ws, mut params: Value) -> Result<Value, String> {
    params["projectRoot"] = json!("/t");
    params["protocolVersion"] = json!("2025-11-25");
    params["capabilities"] = json!({});
    params["clientInfo"] = json!({"name": "e2e-login", "version": "1"});
    let reply = ws.request(json!("init"), "initialize", params).await;
    match reply.get("result") {
        Some(result) => Ok(result.clone()),
        None => {
            assert_eq!(reply["error"]["code"], -32001, "{reply}");
            assert!(reply["error"]["data"]["suggestion"].is_string(), "{reply}");
            assert_eq!(ws.closed().await, Some(1008), "{reply}");
            Err(reply["error"]["message"].as_str().unwrap().to_owned())
        }
    }
}

fn config_file(dir: &Path, text: &str) -> String {
    let path = dir.join("codeflow.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// RS256 tokens checked with a PEM public key; a JWKS file whose `kid` selects the key, re-read
/// when it changes; an unknown `kid`, the wrong algorithm and another key's signature each
/// refused with their own error.
#[tokio::test]
async fn rs256_tokens_with_a_public_key_or_a_jwks_file() {
    use jsonwebtoken::Algorithm::{HS256, RS256, RS384};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rsa_key(d, "one");
    rsa_key(d, "two");

    // A PEM public key: RS256.
    let pem_server = Server::start_with(
        &[
            "--config",
            &config_file(
                d,
                &format!("jwt_public_key = \"{}\"\n", d.join("one.pub").display()),
            ),
        ],
        &[],
    )
    .await;
    let accepted = initialize_with(
        &pem_server,
        json!({"project": "rs", "token": rsa_token(d, "one", RS256, None, "rs")}),
    )
    .await;
    assert!(accepted.is_ok_and(|r| r["sessionId"].is_string()));
    let hs = hs256("rs", 600);
    let e = initialize_with(&pem_server, json!({"project": "rs", "token": hs}))
        .await
        .unwrap_err();
    assert!(e.contains("algorithm") && e.contains("RS256"), "{e}");
    let e = initialize_with(
        &pem_server,
        json!({"project": "rs", "token": rsa_token(d, "two", RS256, None, "rs")}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("signature"), "{e}");

    // A JWKS file with key `two` as `k-two`.
    let jwks = d.join("jwks.json");
    std::fs::write(
        &jwks,
        json!({"keys": [rsa_jwk(d, "two", "k-two")]}).to_string(),
    )
    .unwrap();
    let sub = tempfile::tempdir().unwrap();
    let jwks_server = Server::start_with(
        &[
            "--config",
            &config_file(
                sub.path(),
                &format!("jwt_jwks_file = \"{}\"\n", jwks.display()),
            ),
        ],
        &[],
    )
    .await;
    let ok = initialize_with(
        &jwks_server,
        json!({"project": "jw", "token": rsa_token(d, "two", RS256, Some("k-two"), "jw")}),
    )
    .await;
    assert!(ok.is_ok_and(|r| r["sessionId"].is_string()));
    let e = initialize_with(
        &jwks_server,
        json!({"project": "jw", "token": rsa_token(d, "two", RS256, Some("k-nope"), "jw")}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("`k-nope`") && e.contains("JWKS"), "{e}");
    let e = initialize_with(
        &jwks_server,
        json!({"project": "jw", "token": rsa_token(d, "two", RS384, Some("k-two"), "jw")}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("algorithm"), "{e}");
    let e = initialize_with(
        &jwks_server,
        json!({"project": "jw", "token": rsa_token(d, "one", RS256, Some("k-two"), "jw")}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("signature"), "{e}");
    let mut hs_kid = jsonwebtoken::Header::new(HS256);
    hs_kid.kid = Some("k-two".into());
    let claims = json!({"sub": "x", "iss": "codeflow", "aud": "codeflow-clients", "exp": now() + 600, "projects": ["jw"]});
    let forged = jsonwebtoken::encode(
        &hs_kid,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"whatever-secret-0123456789abcdef"),
    )
    .unwrap();
    let e = initialize_with(&jwks_server, json!({"project": "jw", "token": forged}))
        .await
        .unwrap_err();
    assert!(e.contains("algorithm"), "{e}");

    // The file is rotated to key `one` as `k-one`: the next handshakes use it.
    let rotated = d.join("jwks.new");
    std::fs::write(
        &rotated,
        json!({"keys": [rsa_jwk(d, "one", "k-one")]}).to_string(),
    )
    .unwrap();
    std::fs::rename(&rotated, &jwks).unwrap();
    let fresh = rsa_token(d, "one", RS256, Some("k-one"), "jw");
    let mut rotated_ok = false;
    for _ in 0..50 {
        if initialize_with(&jwks_server, json!({"project": "jw", "token": fresh}))
            .await
            .is_ok()
        {
            rotated_ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rotated_ok, "the rotated JWKS file was not picked up");
    let e = initialize_with(
        &jwks_server,
        json!({"project": "jw", "token": rsa_token(d, "two", RS256, Some("k-two"), "jw")}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("`k-two`"), "{e}");
}

/// Runs `codeflow-client check` with these flags; (succeeded, what it printed).
fn check(url: &str, project: &str, root: &Path, extra: &[&str]) -> (bool, String) {
    check_with_env(url, project, root, extra, &[])
}

fn check_with_env(
    url: &str,
    project: &str,
    root: &Path,
    extra: &[&str],
    env: &[(&str, &Path)],
) -> (bool, String) {
    let out = std::process::Command::new(codeflow_e2e::binary("codeflow-client"))
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .args(["check", "--server", url, "--project", project])
        .arg("--root")
        .arg(root)
        .args(extra)
        .env_remove("CODEFLOW_TOKEN")
        .env_remove("CODEFLOW_CA_FILE")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// With `--tls-client-ca` and `[[auth.client_certs]]`, a relay with a client certificate and
/// no token gets exactly the grant its certificate's CN maps to; a certificate from the same
/// CA without a mapping is refused with words that name it (a token is required: the server
/// has a secret and no anonymous rights).
#[tokio::test]
async fn a_client_certificate_maps_to_its_grant() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server_ca, cert, key) =
        codeflow_e2e::ca_signed_certificate(d, "srv", "127.0.0.1", "serverAuth");
    let (client_ca, _, _) = codeflow_e2e::ca_signed_certificate(d, "cli", "ca-only", "clientAuth");
    let (mapped_cert, mapped_key) =
        codeflow_e2e::client_certificate(d, "cli", "relay7", "relay-7.example");
    let (other_cert, other_key) =
        codeflow_e2e::client_certificate(d, "cli", "stranger", "stranger.example");
    let config = config_file(
        d,
        &format!(
            "jwt_secret = \"{SECRET}\"\ntls_client_ca = \"{}\"\n\n[[auth.client_certs]]\nsubject = \"relay-7.example\"\nprojects = [\"mtls\"]\nscope = [\"lsp:query\"]\n",
            client_ca.display()
        ),
    );
    let (_server, url, _data) = codeflow_e2e::spawn_tls_server(&cert, &key, &["--config", &config]);
    let root = tempfile::tempdir().unwrap();
    let ca = server_ca.to_str().unwrap();
    let mapped = [
        "--ca-file",
        ca,
        "--client-cert",
        mapped_cert.to_str().unwrap(),
        "--client-key",
        mapped_key.to_str().unwrap(),
    ];
    let mut ready = false;
    for _ in 0..100 {
        if check(&url, "mtls", root.path(), &mapped).0 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "{}", check(&url, "mtls", root.path(), &mapped).1);

    // Another project than the mapping names: refused.
    let (ok, said) = check(&url, "elsewhere", root.path(), &mapped);
    assert!(!ok && said.contains("does not grant project"), "{said}");
    // The same CA, no mapping: refused, naming the certificate.
    let unmapped = [
        "--ca-file",
        ca,
        "--client-cert",
        other_cert.to_str().unwrap(),
        "--client-key",
        other_key.to_str().unwrap(),
    ];
    let (ok, said) = check(&url, "mtls", root.path(), &unmapped);
    assert!(
        !ok && said.contains("stranger.example") && said.contains("maps to no grant"),
        "{said}"
    );
    // ... unless it brings a token.
    let token = hs256("mtls", 600);
    let with_token = [&unmapped[..], &["--token", &token]].concat();
    let (ok, said) = check(&url, "mtls", root.path(), &with_token);
    assert!(ok, "{said}");

    // The relay with the mapped certificate: exactly `lsp:query` on `mtls`.
    let relay = Relay::spawn(&url, "mtls", root.path(), &mapped);
    relay.initialize().await;
    let health = relay.tool("health_check", json!({})).await;
    assert_eq!(
        health["structuredContent"]["session"]["project"], "mtls",
        "{health}"
    );
    let write = relay
        .call(
            "tools/call",
            json!({"name": "rename_file", "arguments": {"old_path": "a", "new_path": "b"}}),
        )
        .await;
    assert_eq!(write["error"]["code"], -32003, "{write}");
    assert_eq!(write["error"]["data"]["right"], "file:write", "{write}");
    let read = relay
        .call("tools/call", json!({"name": "find_definition", "arguments": {"file": "a.py", "line": 1, "character": 1}}))
        .await;
    assert_ne!(read["error"]["code"], -32003, "{read}");
}

/// An OpenSSH key pair made with ssh-keygen: `<name>` and `<name>.pub`, comment `<name>@e2e`.
fn ssh_keygen(dir: &Path, name: &str, kind: &str) -> String {
    let bits = if kind == "rsa" { "-b 2048" } else { "" };
    sh(
        dir,
        &format!("ssh-keygen -q -t {kind} {bits} -N '' -C {name}@e2e -f {name}"),
    );
    std::fs::read_to_string(dir.join(format!("{name}.pub")))
        .unwrap()
        .trim()
        .to_owned()
}

/// The `auth` object of an initialize: `challenge` signed with the private key in `path`.
fn ssh_auth(path: &Path, challenge: &str) -> Value {
    let key = ssh_key::PrivateKey::read_openssh_file(path).unwrap();
    let signature = key
        .sign("codeflow", ssh_key::HashAlg::Sha512, challenge.as_bytes())
        .unwrap()
        .to_pem(ssh_key::LineEnding::LF)
        .unwrap();
    json!({"sshKey": {
        "publicKey": key.public_key().to_openssh().unwrap(),
        "challenge": challenge,
        "signature": signature,
    }})
}

async fn challenge(ws: &mut Ws) -> String {
    let reply = ws.request(json!("c"), "auth/challenge", json!({})).await;
    reply["result"]["challenge"]
        .as_str()
        .unwrap_or_else(|| panic!("no challenge: {reply}"))
        .to_owned()
}

/// SSH-key login: a listed key gets its options' projects and rights (ed25519 through the
/// relay, RSA through `check`); an unlisted key, a key whose options do not grant the project,
/// a replayed challenge (on another connection, or a challenge other than the connection's)
/// are each refused. The audit log names the key by its comment.
#[tokio::test]
async fn ssh_key_login_grants_what_the_key_options_say() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let alice = ssh_keygen(d, "alice", "ed25519");
    let bob = ssh_keygen(d, "bob", "rsa");
    ssh_keygen(d, "mallory", "ed25519");
    let keys = d.join("authorized_keys");
    std::fs::write(
        &keys,
        format!(
            "# CodeFlow relays\ncodeflow-projects=\"sshp,other\",codeflow-scope=\"file:read,lsp:query\" {alice}\nno-pty,codeflow-projects=\"bobs\",codeflow-scope=\"file:read,lsp:query,file:write\" {bob}\n"
        ),
    )
    .unwrap();
    let audit = d.join("audit.log");
    let config = config_file(
        d,
        &format!(
            "jwt_secret = \"{SECRET}\"\naudit_file = \"{}\"\n\n[auth]\nauthorized_keys = \"{}\"\n",
            audit.display(),
            keys.display()
        ),
    );
    let server = Server::start_with(&["--config", &config], &[]).await;
    let root = tempfile::tempdir().unwrap();
    let key = |name: &str| d.join(name).to_str().unwrap().to_owned();

    // The relay with alice's ed25519 key: `lsp:query` on `sshp`.
    let relay = Relay::spawn(
        &server.url(),
        "sshp",
        root.path(),
        &["--ssh-key", &key("alice")],
    );
    relay.initialize().await;
    let health = relay.tool("health_check", json!({})).await;
    assert_eq!(
        health["structuredContent"]["session"]["project"], "sshp",
        "{health}"
    );
    let write = relay
        .call(
            "tools/call",
            json!({"name": "rename_file", "arguments": {"old_path": "a", "new_path": "b"}}),
        )
        .await;
    assert_eq!(write["error"]["data"]["right"], "file:write", "{write}");

    // Bob's RSA key is accepted for his project, refused for alice's.
    let (ok, said) = check(
        &server.url(),
        "bobs",
        root.path(),
        &["--ssh-key", &key("bob")],
    );
    assert!(ok, "{said}");
    let (ok, said) = check(
        &server.url(),
        "sshp",
        root.path(),
        &["--ssh-key", &key("bob")],
    );
    assert!(!ok && said.contains("does not grant project"), "{said}");
    // An unlisted key.
    let (ok, said) = check(
        &server.url(),
        "sshp",
        root.path(),
        &["--ssh-key", &key("mallory")],
    );
    assert!(
        !ok && said.contains("not in this server's authorized keys"),
        "{said}"
    );

    // Replays. A signed challenge logs in once, on its own connection...
    let mut first = Ws::connect(&server.url()).await;
    let c1 = challenge(&mut first).await;
    let signed = ssh_auth(&d.join("alice"), &c1);
    assert!(
        initialize_on(&mut first, json!({"project": "sshp", "auth": signed}))
            .await
            .is_ok()
    );
    // ...not on another connection that asked for none...
    let e = initialize_with(&server, json!({"project": "sshp", "auth": signed}))
        .await
        .unwrap_err();
    assert!(e.contains("no challenge was issued"), "{e}");
    // ...nor on one that was issued another.
    let mut third = Ws::connect(&server.url()).await;
    let _c3 = challenge(&mut third).await;
    let e = initialize_on(&mut third, json!({"project": "sshp", "auth": signed}))
        .await
        .unwrap_err();
    assert!(e.contains("not the one issued"), "{e}");
    // A signature by another key than the one named.
    let mut fourth = Ws::connect(&server.url()).await;
    let c4 = challenge(&mut fourth).await;
    let mut forged = ssh_auth(&d.join("mallory"), &c4);
    forged["sshKey"]["publicKey"] = json!(alice);
    let e = initialize_on(&mut fourth, json!({"project": "sshp", "auth": forged}))
        .await
        .unwrap_err();
    assert!(e.contains("does not verify"), "{e}");

    // Through an ssh-agent that holds bob's RSA key: the key named, or the agent's first.
    let socket = d.join("agent.sock");
    let mut agent = tokio::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let added = std::process::Command::new("ssh-add")
        .arg("-q")
        .arg(d.join("bob"))
        .env("SSH_AUTH_SOCK", &socket)
        .status()
        .unwrap();
    assert!(added.success());
    let env = [("SSH_AUTH_SOCK", socket.as_path())];
    let bob_pub = d.join("bob.pub");
    let (ok, said) = check_with_env(
        &server.url(),
        "bobs",
        root.path(),
        &["--ssh-agent", "--ssh-key", bob_pub.to_str().unwrap()],
        &env,
    );
    assert!(ok, "{said}");
    let (ok, said) = check_with_env(&server.url(), "bobs", root.path(), &["--ssh-agent"], &env);
    assert!(ok, "{said}");
    let (ok, said) = check_with_env(
        &server.url(),
        "sshp",
        root.path(),
        &["--ssh-agent", "--ssh-key", &key("alice")],
        &env,
    );
    assert!(!ok && said.contains("does not hold the key"), "{said}");
    let _ = agent.kill().await;

    // The audit log names the key by its comment.
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(
        log.contains("ssh:alice@e2e") && log.contains("ssh:bob@e2e"),
        "{log}"
    );
}

/// A relay logged in with an SSH key signs a new challenge on every connection: after the
/// connection is cut it logs in again and resumes the same session.
#[tokio::test]
async fn an_ssh_key_relay_logs_in_again_after_a_drop() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = ssh_keygen(d, "carol", "ed25519");
    let keys = d.join("authorized_keys");
    std::fs::write(
        &keys,
        format!("codeflow-projects=\"again\",codeflow-scope=\"file:read,lsp:query\" {key}\n"),
    )
    .unwrap();
    let config = config_file(
        d,
        &format!(
            "jwt_secret = \"{SECRET}\"\n\n[auth]\nauthorized_keys = \"{}\"\n",
            keys.display()
        ),
    );
    let server = Server::start_with(&["--config", &config], &[]).await;
    let proxy = codeflow_e2e::TcpProxy::start(server.port).await;
    let root = tempfile::tempdir().unwrap();
    let relay = Relay::spawn(
        &proxy.url(),
        "again",
        root.path(),
        &["--ssh-key", d.join("carol").to_str().unwrap()],
    );
    relay.initialize().await;
    let sid = session_id(&relay).await;
    let dials = proxy.accepted();
    proxy.sever();
    assert!(
        codeflow_e2e::eventually(Duration::from_secs(10), || async {
            proxy.accepted() > dials
        })
        .await,
        "the relay did not dial again"
    );
    assert_eq!(session_id(&relay).await, sid, "the session was not resumed");
}
