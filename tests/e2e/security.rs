//! Security through real sockets: hostile handshakes, authorization, tokens, audit, children's
//! environments and limits (issue 12; `docs/security.md`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use codeflow_e2e::{Next, Server, Ws, eventually, health, metrics};
use serde_json::{Value, json};

/// An initialize with these params, then what the server answered: the error code, or the
/// close code when it closed instead.
async fn hostile_initialize(ws: &mut Ws, params: Value) -> Result<i64, Option<u16>> {
    ws.send_json(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}))
        .await;
    loop {
        match ws.next().await {
            Next::Json(m) if m["id"] == json!(1) || m["id"].is_null() => {
                return match m["error"]["code"].as_i64() {
                    Some(code) => Ok(code),
                    // Capabilities are MCP's open map: a value of the wrong type there is
                    // ignored, not refused.
                    None if m["result"]["sessionId"].is_string()
                        && params["capabilities"].is_object() =>
                    {
                        Ok(0)
                    }
                    None => panic!("hostile initialize accepted: {m}"),
                };
            }
            Next::Json(_) => continue,
            Next::Closed(code) => return Err(code),
        }
    }
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn hostile_handshakes_get_errors_and_the_server_keeps_serving() {
    let server = Server::start().await;
    let url = server.url();
    let cases: Vec<(&str, Value)> = vec![
        (
            "non-ASCII root (was a panic)",
            json!({"project": "p", "projectRoot": "aé"}),
        ),
        (
            "non-ASCII drive",
            json!({"project": "p", "projectRoot": "é:/x"}),
        ),
        (
            "drive then multi-byte",
            json!({"project": "p", "projectRoot": "a:é"}),
        ),
        ("CJK root", json!({"project": "p", "projectRoot": "日本語"})),
        ("emoji root", json!({"project": "p", "projectRoot": "🦀"})),
        ("empty root", json!({"project": "p", "projectRoot": ""})),
        (
            "NUL in root",
            json!({"project": "p", "projectRoot": "/a\u{0}b"}),
        ),
        (
            "huge root",
            json!({"project": "p", "projectRoot": format!("/{}", "é".repeat(5000))}),
        ),
        (
            "non-ASCII project",
            json!({"project": "projé", "projectRoot": "/a"}),
        ),
        (
            "traversal project",
            json!({"project": "../etc", "projectRoot": "/a"}),
        ),
        ("dot project", json!({"project": "..", "projectRoot": "/a"})),
        (
            "long project",
            json!({"project": "x".repeat(65), "projectRoot": "/a"}),
        ),
        (
            "project with slash",
            json!({"project": "a/b", "projectRoot": "/a"}),
        ),
        ("number project", json!({"project": 7, "projectRoot": "/a"})),
        (
            "object root",
            json!({"project": "p", "projectRoot": {"a": 1}}),
        ),
        ("array root", json!({"project": "p", "projectRoot": ["/a"]})),
        (
            "bool token",
            json!({"project": "p", "projectRoot": "/a", "token": true}),
        ),
        (
            "number session id",
            json!({"project": "p", "projectRoot": "/a", "sessionId": 5}),
        ),
        ("params an array", json!(["p", "/a"])),
        ("params a string", json!("p")),
        (
            "fileStream not a bool",
            json!({"project": "p", "projectRoot": "/a",
            "capabilities": {"experimental": {"codeflow": {"fileStream": {"deep": [[[[[[1]]]]]]}}}}}),
        ),
    ];
    for (what, params) in cases {
        let mut ws = Ws::connect(&url).await;
        let outcome = hostile_initialize(&mut ws, params.clone()).await;
        match outcome {
            Ok(code) => assert!(
                [0, -32602, -32600, -32001].contains(&code),
                "{what}: unexpected error {code}"
            ),
            // A refused handshake keeps the socket open for a corrected one.
            Err(close) => panic!("{what}: closed ({close:?}) instead of an error"),
        }
        // The socket that refused a bad handshake still takes a good one (or was closed with
        // a code); either way the server answers the next client.
        let mut fresh = Ws::connect(&url).await;
        assert!(
            fresh.initialize("fresh", "/fresh").await["sessionId"].is_string(),
            "{what}: the server stopped serving"
        );
        fresh.close().await;
    }

    // Raw frames: deep nesting, a legacy handshake with a multi-byte root, broken UTF-8-ish
    // JSON, a huge number, wrong top-level types.
    let frames = [
        format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{{\"project\":\"p\",\"projectRoot\":\"/a\",\"x\":{}}}}}",
            nested(100_000)
        ),
        nested(1_000_000),
        "{\"method\":\"initialize\",\"project\":\"p\",\"projectRoot\":\"aé\"}".to_owned(),
        "{\"method\":\"initialize\",\"project\":\"日本\",\"projectRoot\":\"/a\",\"id\":\"é\"}".to_owned(),
        "{\"jsonrpc\":\"2.0\",\"id\":1e999,\"method\":\"initialize\"}".to_owned(),
        "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"initialize\"}".to_owned(),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}".to_owned(),
        "\"initialize\"".to_owned(),
        "null".to_owned(),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"project\":\"p\",\"projectRoot\":\"\\ud800\"}}".to_owned(),
    ];
    for frame in &frames {
        let mut ws = Ws::connect(&url).await;
        ws.send_text(frame).await;
        match ws.next().await {
            Next::Json(m) => assert!(
                m["error"]["code"].is_i64(),
                "frame {:.80}: expected an error, got {m}",
                frame
            ),
            Next::Closed(code) => {
                assert!(
                    code.is_some(),
                    "frame {:.80}: dropped without a code",
                    frame
                )
            }
        }
    }

    // Still serving, nothing leaked: once every hostile socket is gone the gauge is back to 0.
    let mut last = Ws::connect(&url).await;
    assert!(last.initialize("last", "/last").await["sessionId"].is_string());
    last.close().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            metrics(server.port).await.get("codeflow_connections") == Some(&0.0)
                && health(server.port).await["connections"] == 0
        })
        .await,
        "connections gauge {:?}, healthz {}",
        metrics(server.port).await.get("codeflow_connections"),
        health(server.port).await
    );
    assert!(
        !metrics(server.port)
            .await
            .contains_key("codeflow_errors_total{kind=\"panic\"}"),
        "no connection task panicked"
    );
}

const SECRET: &str = "security-e2e-secret-0123456789abcdef";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token with these claims over the defaults (issuer, audience, an hour to live).
fn jwt_with(secret: &str, algorithm: jsonwebtoken::Algorithm, overrides: Value) -> String {
    let mut claims = json!({
        "sub": "e2e", "iss": "codeflow", "aud": "codeflow-clients", "exp": now() + 3600,
    });
    for (k, v) in overrides.as_object().unwrap() {
        claims[k] = v.clone();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn jwt(projects: Value, scope: &str) -> String {
    jwt_with(
        SECRET,
        jsonwebtoken::Algorithm::HS256,
        json!({"projects": projects, "scope": scope}),
    )
}

const ALL_RIGHTS: &str = "file:read file:write lsp:query claude:execute projects:manage";

/// A socket with a session on `project` for this token.
async fn session(server: &Server, project: &str, token: &str) -> (Ws, String) {
    let mut ws = Ws::connect_with_token(&server.url(), Some(token))
        .await
        .unwrap();
    let sid = ws.initialize(project, &format!("/{project}")).await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    (ws, sid)
}

/// The answer with every mention of `name` (and `sid`) blanked, for comparing the answers about
/// a project that exists and one that does not.
fn normalised(answer: &Value, names: &[&str]) -> String {
    let mut text = answer.to_string();
    for name in names {
        text = text.replace(name, "«P»");
    }
    text
}

/// R6: a session of project A tries every method family against project B, and against a
/// project that does not exist; it is refused, and the two refusals are the same.
#[tokio::test]
async fn a_session_cannot_reach_or_detect_another_project() {
    let server = Server::start_with(
        &["--jwt-secret", SECRET],
        &[("CODEFLOW_TEST_TOOLS", "true")],
    )
    .await;
    // Project B exists: a live session, subscribed to its channels.
    let (mut beta, beta_sid) = session(&server, "beta", &jwt(json!(["beta"]), ALL_RIGHTS)).await;
    let sub = beta
        .request(json!(1), "channels/subscribe", json!({"channel": "files"}))
        .await;
    assert!(sub["result"].is_object(), "{sub}");
    // A's token has every right, on A only.
    let alpha_token = jwt(json!(["alpha"]), ALL_RIGHTS);
    let (mut alpha, _) = session(&server, "alpha", &alpha_token).await;

    type Params = fn(&str) -> Value;
    let table: Vec<(&str, &str, Params)> = vec![
        (
            "tools",
            "tools/call",
            |p| json!({"name": "health_check", "arguments": {"project": p}}),
        ),
        (
            "tools, a path in B",
            "tools/call",
            |p| json!({"name": "find_definition", "arguments": {"file_path": format!("/{p}/main.py"), "line": 1, "character": 1}}),
        ),
        (
            "tools, a relative escape",
            "tools/call",
            |p| json!({"name": "get_document_symbols", "arguments": {"file_path": format!("../{p}/main.py")}}),
        ),
        (
            "write tools",
            "tools/call",
            |p| json!({"name": "create_file", "arguments": {"file_path": format!("/{p}/new.py"), "content": "x"}}),
        ),
        (
            "batch",
            "tools/call",
            |p| json!({"name": "batch_execute", "arguments": {"operations": [{"tool": "health_check", "args": {"project": p}}], "project": p}}),
        ),
        (
            "subscribe",
            "channels/subscribe",
            |p| json!({"channel": "files", "project": p}),
        ),
        (
            "unsubscribe",
            "channels/unsubscribe",
            |p| json!({"channel": "files", "project": p}),
        ),
        (
            "publish",
            "channels/publish",
            |p| json!({"channel": "files", "project": p, "data": 1}),
        ),
        (
            "file stream",
            "server/syncManifest",
            |p| json!({"files": [], "project": p}),
        ),
        ("projects", "projects/status", |p| json!({"project": p})),
        (
            "projects by id",
            "projects/delete",
            |p| json!({"projectId": p}),
        ),
        (
            "claude",
            "claude/run",
            |p| json!({"project": p, "prompt": "list files"}),
        ),
    ];
    for (family, method, params) in &table {
        let id = json!(format!("r6-{family}"));
        let existing = alpha.request(id.clone(), method, params("beta")).await;
        let missing = alpha.request(id, method, params("gamma")).await;
        let refused =
            existing["error"]["code"].is_i64() || existing["result"]["isError"] == json!(true);
        assert!(refused, "{family}: B was reachable: {existing}");
        assert_eq!(
            normalised(&existing, &["beta"]),
            normalised(&missing, &["gamma"]),
            "{family}: the answer tells B exists"
        );
    }

    // Handshakes: A's token for B, a resume of B's session, a reconnect to it.
    let fake_sid = "00000000-0000-4000-8000-000000000000";
    let mut answers = Vec::new();
    for (project, sid) in [("beta", beta_sid.as_str()), ("gamma", fake_sid)] {
        let mut ws = Ws::connect_with_token(&server.url(), Some(&alpha_token))
            .await
            .unwrap();
        let init = ws
            .request(
                json!(1),
                "initialize",
                json!({"project": project, "projectRoot": "/x"}),
            )
            .await;
        assert_eq!(init["error"]["code"], -32001, "{init}");
        let mut ws = Ws::connect_with_token(&server.url(), Some(&alpha_token))
            .await
            .unwrap();
        let reconnect = ws
            .request(json!(1), "reconnect", json!({"sessionId": sid}))
            .await;
        assert_eq!(reconnect["error"]["code"], -32005, "{reconnect}");
        let mut ws = Ws::connect_with_token(&server.url(), Some(&alpha_token))
            .await
            .unwrap();
        let resume = ws
            .request(
                json!(1),
                "initialize",
                json!({"project": "alpha", "projectRoot": "/alpha", "sessionId": sid}),
            )
            .await;
        assert_eq!(resume["result"]["resumed"], false, "{resume}");
        let mut resume_error = resume["result"]["resumeError"].clone();
        resume_error["message"] = json!(
            resume_error["message"]
                .as_str()
                .unwrap()
                .replace(sid, "«S»")
        );
        answers.push((
            normalised(&init["error"], &[project]),
            normalised(&reconnect["error"], &[sid]),
            resume_error,
        ));
    }
    assert_eq!(answers[0], answers[1], "handshake answers tell B exists");

    // B saw none of it: its channel did not move, its session is untouched.
    let ping = beta.request(json!(2), "ping", json!({})).await;
    assert_eq!(ping["result"], json!({}));
    let pos = beta
        .request(json!(3), "channels/subscribe", json!({"channel": "files"}))
        .await;
    assert_eq!(pos["result"]["offset"], sub["result"]["offset"], "{pos}");
}

/// Every method family checks its right at the one authorization point: -32003 with the
/// missing right and a suggestion.
#[tokio::test]
async fn each_method_family_needs_its_right() {
    let server = Server::start_with(&["--jwt-secret", SECRET], &[]).await;
    let (mut query_only, _) = session(&server, "p", &jwt(json!(["p"]), "lsp:query")).await;
    let cases = [
        (
            "tools/call",
            json!({"name": "rename_file", "arguments": {"old_path": "/p/a.py", "new_path": "/p/b.py"}}),
            "file:write",
        ),
        (
            "tools/call",
            json!({"name": "create_file", "arguments": {"file_path": "/p/n.py", "content": ""}}),
            "file:write",
        ),
        (
            "tools/call",
            json!({"name": "batch_execute", "arguments": {"operations": [{"tool": "find_definition", "args": {}}, {"tool": "delete_file", "args": {}}]}}),
            "file:write",
        ),
        (
            "channels/subscribe",
            json!({"channel": "files"}),
            "file:read",
        ),
        ("server/syncManifest", json!({"files": []}), "file:read"),
        ("projects/list", json!({}), "projects:manage"),
        ("claude/run", json!({"prompt": "hi"}), "claude:execute"),
    ];
    for (i, (method, params, right)) in cases.iter().enumerate() {
        let e = query_only.request(json!(i), method, params.clone()).await;
        assert_eq!(e["error"]["code"], -32003, "{method}: {e}");
        assert_eq!(e["error"]["data"]["right"], *right, "{method}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(right),
            "{e}"
        );
        assert!(e["error"]["data"]["suggestion"].is_string(), "{e}");
    }
    // What the token grants goes through: read tools, dry runs, and rightless methods.
    for (i, (method, params)) in [
        ("tools/call", json!({"name": "health_check", "arguments": {}})),
        ("tools/call", json!({"name": "rename_file", "arguments": {"old_path": "/p/a.py", "new_path": "/p/b.py", "dry_run": true}})),
        ("tools/call", json!({"name": "get_document_symbols", "arguments": {"file_path": "/p/a.py"}})),
        ("tools/list", json!({})),
        ("ping", json!({})),
    ]
    .into_iter()
    .enumerate()
    {
        let r = query_only.request(json!(100 + i), method, params).await;
        assert_ne!(r["error"]["code"], -32003, "{method}: {r}");
    }
    // A notification the grant does not allow is dropped (nothing to answer), and the session
    // goes on.
    query_only
        .send_json(json!({"jsonrpc": "2.0", "method": "server/fileChanged",
            "params": {"path": "/p/a.py", "changeType": "created", "content": "x"}}))
        .await;
    let ping = query_only.request(json!(200), "ping", json!({})).await;
    assert_eq!(ping["result"], json!({}));
    assert!(
        metrics(server.port)
            .await
            .get("codeflow_errors_total{kind=\"forbidden\"}")
            .is_some_and(|v| *v >= 8.0)
    );
}

/// What an initialize with `token` is answered: the error message (the socket is then closed
/// with 1008).
async fn refused_with(server: &Server, token: Option<&str>, project: &str) -> String {
    let mut ws = Ws::connect(&server.url()).await;
    let mut params = json!({"project": project, "projectRoot": "/t"});
    if let Some(t) = token {
        params["token"] = json!(t);
    }
    let e = ws.request(json!(1), "initialize", params).await;
    assert_eq!(e["error"]["code"], -32001, "{e}");
    assert!(e["error"]["data"]["suggestion"].is_string(), "{e}");
    assert_eq!(ws.closed().await, Some(1008));
    e["error"]["message"].as_str().unwrap().to_owned()
}

/// Each bad token is refused with its own clear error, through a real socket.
#[tokio::test]
async fn each_bad_token_gets_its_own_error() {
    let server = Server::start_with(&["--jwt-secret", SECRET], &[]).await;
    use jsonwebtoken::Algorithm::{HS256, HS512};
    let base = json!({"projects": ["t"], "scope": "lsp:query"});
    let with = |extra: Value| {
        let mut claims = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "requires a token"),
        (
            "bad signature",
            Some(jwt_with(
                "another-secret-of-enough-length-0123456",
                HS256,
                base.clone(),
            )),
            "signature does not match",
        ),
        (
            "wrong algorithm",
            Some(jwt_with(SECRET, HS512, base.clone())),
            "algorithm",
        ),
        (
            "expired",
            Some(jwt_with(SECRET, HS256, with(json!({"exp": now() - 600})))),
            "expired",
        ),
        (
            "not yet valid",
            Some(jwt_with(SECRET, HS256, with(json!({"nbf": now() + 600})))),
            "not valid yet",
        ),
        (
            "wrong audience",
            Some(jwt_with(
                SECRET,
                HS256,
                with(json!({"aud": "someone-else"})),
            )),
            "audience",
        ),
        (
            "wrong issuer",
            Some(jwt_with(
                SECRET,
                HS256,
                with(json!({"iss": "someone-else"})),
            )),
            "issuer",
        ),
        (
            "wrong project",
            Some(jwt_with(
                SECRET,
                HS256,
                with(json!({"projects": ["other"]})),
            )),
            "does not grant project `t`",
        ),
        ("garbage", Some("not.a.jwt".into()), "well-formed"),
    ];
    let mut messages = std::collections::HashSet::new();
    for (what, token, words) in &cases {
        let message = refused_with(&server, token.as_deref(), "t").await;
        assert!(message.contains(words), "{what}: {message}");
        assert!(
            messages.insert(message),
            "{what}: the same message as another case"
        );
    }
    // Missing right: the handshake works, the method is refused with -32003 naming the right.
    let (mut ws, _) = session(&server, "t", &jwt(json!(["t"]), "lsp:query")).await;
    let e = ws
        .request(
            json!(1),
            "tools/call",
            json!({"name": "delete_file", "arguments": {"file_path": "/t/x"}}),
        )
        .await;
    assert_eq!(e["error"]["code"], -32003, "{e}");
    assert_eq!(e["error"]["data"]["right"], "file:write");
    // The audit counted the refusals by reason.
    let m = metrics(server.port).await;
    assert!(
        m.get("codeflow_errors_total{kind=\"auth\"}")
            .is_some_and(|v| *v >= 9.0),
        "{m:?}"
    );
}

/// `auth/refresh` keeps a session past its first token's expiry; a session whose token expires
/// is closed with 4005.
#[tokio::test]
async fn refresh_keeps_a_session_and_expiry_closes_one() {
    let server = Server::start_with(&["--jwt-secret", SECRET], &[]).await;
    let short = |secs: i64| {
        jwt_with(
            SECRET,
            jsonwebtoken::Algorithm::HS256,
            json!({"projects": ["r"], "scope": "lsp:query", "exp": now() + secs}),
        )
    };
    let (mut kept, kept_sid) = session(&server, "r", &short(3)).await;
    let (mut lapsed, _) = session(&server, "r", &short(3)).await;

    // A refresh for another subject, or another project, is refused; the session goes on.
    let stranger = jwt_with(
        SECRET,
        jsonwebtoken::Algorithm::HS256,
        json!({"sub": "someone-else", "projects": ["r"], "exp": now() + 600}),
    );
    let e = kept
        .request(json!(1), "auth/refresh", json!({"token": stranger}))
        .await;
    assert_eq!(e["error"]["code"], -32001, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("same subject"),
        "{e}"
    );
    let e = kept
        .request(
            json!(2),
            "auth/refresh",
            json!({"token": jwt(json!(["x"]), "lsp:query")}),
        )
        .await;
    assert_eq!(e["error"]["code"], -32001, "{e}");

    let ok = kept
        .request(json!(3), "auth/refresh", json!({"token": short(600)}))
        .await;
    assert_eq!(ok["result"]["refreshed"], true, "{ok}");
    assert!(ok["result"]["expiresAt"].as_i64().unwrap() > now() + 500);

    // The unrefreshed session is closed with 4005 when its token expires.
    let started = std::time::Instant::now();
    assert_eq!(lapsed.closed().await, Some(4005));
    assert!(started.elapsed() < Duration::from_secs(6));
    // The refreshed one lives on, as the same session.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ping = kept.request(json!(4), "ping", json!({})).await;
    assert_eq!(ping["result"], json!({}), "{ping}");
    let health = kept
        .request(
            json!(5),
            "tools/call",
            json!({"name": "health_check", "arguments": {}}),
        )
        .await;
    assert_eq!(
        health["result"]["structuredContent"]["session"]["id"],
        kept_sid.as_str()
    );
}

/// `codeflow-server token` mints tokens the server accepts, from the same configuration;
/// a short secret stops the server with a clear error.
#[tokio::test]
async fn the_token_command_mints_accepted_tokens() {
    let server = Server::start_with(&["--jwt-secret", SECRET], &[]).await;
    let out = std::process::Command::new(codeflow_e2e::binary("codeflow-server"))
        .args([
            "token",
            "--project",
            "minted",
            "--scope",
            "file:read,lsp:query",
            "--ttl",
            "10m",
            "--subject",
            "ops",
        ])
        .env("CODEFLOW_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (mut ws, _) = session(&server, "minted", &token).await;
    assert_eq!(
        ws.request(json!(1), "ping", json!({})).await["result"],
        json!({})
    );
    // Another project is not in it.
    assert!(
        refused_with(&server, Some(&token), "elsewhere")
            .await
            .contains("does not grant")
    );

    for (args, words) in [
        (
            vec!["token", "--project", "p", "--jwt-secret", "short"],
            "at least 32",
        ),
        (
            vec![
                "token",
                "--project",
                "p",
                "--scope",
                "file:everything",
                "--jwt-secret",
                SECRET,
            ],
            "unknown right",
        ),
        (
            vec![
                "token",
                "--project",
                "p",
                "--ttl",
                "soon",
                "--jwt-secret",
                SECRET,
            ],
            "--ttl",
        ),
        (vec!["token", "--project", "p"], "no JWT secret"),
        (vec!["--jwt-secret", "short", "--port", "1"], "at least 32"),
    ] {
        let out = std::process::Command::new(codeflow_e2e::binary("codeflow-server"))
            .args(&args)
            .env_remove("CODEFLOW_JWT_SECRET")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(words), "{args:?}: {stderr}");
    }
}

/// One audit line per authentication (with the reason of a failure), refused request and write
/// to a client file, on `codeflow::audit`, here in its own file.
#[tokio::test]
async fn the_audit_log_records_who_did_what() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let server = Server::start_with(
        &["--jwt-secret", SECRET],
        &[("CODEFLOW_AUDIT_FILE", audit.to_str().unwrap())],
    )
    .await;
    // A failure, a refusal, and a write through the relay.
    refused_with(
        &server,
        Some(&jwt_with(
            "another-secret-of-enough-length-0123456",
            jsonwebtoken::Algorithm::HS256,
            json!({"projects": ["au"]}),
        )),
        "au",
    )
    .await;
    let (mut reader, _) = session(&server, "au", &jwt(json!(["au"]), "lsp:query")).await;
    let e = reader
        .request(
            json!(1),
            "tools/call",
            json!({"name": "create_file", "arguments": {"file_path": "/au/x.txt", "content": "x"}}),
        )
        .await;
    assert_eq!(e["error"]["code"], -32003);
    let root = tempfile::tempdir().unwrap();
    let writer = jwt_with(
        SECRET,
        jsonwebtoken::Algorithm::HS256,
        json!({"sub": "writer-7", "projects": ["au"], "scope": "file:read file:write lsp:query"}),
    );
    let relay = codeflow_e2e::Relay::spawn(&server.url(), "au", root.path(), &["--token", &writer]);
    relay.initialize().await;
    let created = relay
        .tool(
            "create_file",
            json!({"file_path": "notes.txt", "content": "hello\n"}),
        )
        .await;
    assert_ne!(created["isError"], true, "{created}");
    assert_eq!(
        std::fs::read_to_string(root.path().join("notes.txt")).unwrap(),
        "hello\n"
    );

    let lines = || -> Vec<Value> {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
            .collect()
    };
    let has = |pred: &dyn Fn(&Value) -> bool| lines().iter().any(pred);
    assert!(
        eventually(Duration::from_secs(5), || async {
            has(&|l| l["event"] == "client_write" && l["outcome"] == "ok")
        })
        .await,
        "{:#?}",
        lines()
    );
    assert!(lines().iter().all(|l| l["target"] == "codeflow::audit"));
    assert!(has(&|l| l["event"] == "auth"
        && l["outcome"] == "refused"
        && l["reason"] == "bad_signature"
        && l["project"] == "au"));
    assert!(has(&|l| l["event"] == "auth"
        && l["outcome"] == "ok"
        && l["subject"] == "writer-7"
        && l["how"] == "initialize"));
    assert!(has(&|l| l["event"] == "forbidden"
        && l["right"] == "file:write"
        && l["what"] == "create_file"));
    assert!(has(&|l| l["event"] == "client_write"
        && l["method"] == "client/writeFile"
        && l["subject"] == "writer-7"
        && l["path"].as_str().unwrap().ends_with("notes.txt")));
}

/// Language servers start with a clean environment: the basics and what the server table
/// passes, never the CodeFlow server's secrets. A fake language server dumps what it got.
#[tokio::test]
async fn language_servers_do_not_inherit_the_servers_secrets() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("env.txt");
    let script = dir.path().join("envdump-ls");
    std::fs::write(
        &script,
        "#!/bin/sh\nenv > \"$DUMP_TO.tmp\" && mv \"$DUMP_TO.tmp\" \"$DUMP_TO\"\nexec cat > /dev/null\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("codeflow.toml");
    std::fs::write(
        &config,
        format!(
            "[lsp]\ninitialize_timeout = \"2s\"\nrequest_timeout = \"3s\"\n\
             [lsp.servers.envdump]\ncommand = \"{}\"\nargs = []\nextensions = [\"envdump\"]\n\
             language = \"envdump\"\nenv = {{ DUMP_TO = \"{}\", FROM_CONFIG = \"yes\" }}\n",
            script.display(),
            dump.display()
        ),
    )
    .unwrap();
    let server = Server::start_with(
        &["--config", config.to_str().unwrap()],
        &[
            ("CODEFLOW_JWT_SECRET", SECRET),
            ("AWS_SECRET_ACCESS_KEY", "do-not-leak"),
            ("GITHUB_TOKEN", "do-not-leak-either"),
        ],
    )
    .await;
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.envdump"), "x\n").unwrap();
    let token = jwt(json!(["envp"]), "file:read lsp:query");
    let relay =
        codeflow_e2e::Relay::spawn(&server.url(), "envp", root.path(), &["--token", &token]);
    relay.initialize().await;
    // The fake server never answers initialize; the call fails, but the process ran.
    let _ = relay
        .tool("get_document_symbols", json!({"file_path": "a.envdump"}))
        .await;
    assert!(
        eventually(Duration::from_secs(10), || async { dump.exists() }).await,
        "the fake language server never started"
    );
    let env = std::fs::read_to_string(&dump).unwrap();
    let names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    assert!(names.contains(&"FROM_CONFIG"), "{env}");
    assert!(names.contains(&"PATH"), "{env}");
    for secret in [
        "CODEFLOW_JWT_SECRET",
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_TOKEN",
    ] {
        assert!(!names.contains(&secret), "{secret} leaked: {env}");
    }
    assert!(
        !env.contains(SECRET) && !env.contains("do-not-leak"),
        "{env}"
    );
    assert!(names.iter().all(|n| !n.starts_with("CODEFLOW")), "{env}");
}

/// p99 of a batch of pings, one at a time, in milliseconds.
async fn ping_p99(ws: &mut Ws, base: u64, n: u64) -> f64 {
    let mut samples = Vec::new();
    for i in 0..n {
        let started = std::time::Instant::now();
        let r = ws.request(json!(base + i), "ping", json!({})).await;
        assert_eq!(r["result"], json!({}), "a quiet session was refused: {r}");
        samples.push(started.elapsed());
        // A quiet client: well under the limit.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    codeflow_e2e::percentile_ms(&mut samples, 99.0)
}

/// A flood from one session is answered with -32004 and `retryAfterMs`; another session is
/// not refused and its latency stays close to its unloaded value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_session_is_rate_limited_and_others_are_not() {
    let server = Server::start_with(
        &[],
        &[
            ("CODEFLOW_RATE_LIMIT_PER_SECOND", "200"),
            ("CODEFLOW_RATE_LIMIT_BURST", "100"),
        ],
    )
    .await;
    let mut quiet = Ws::connect(&server.url()).await;
    quiet.initialize("quiet", "/q").await;
    let unloaded = ping_p99(&mut quiet, 0, 40).await;

    let mut flood = Ws::connect(&server.url()).await;
    flood.initialize("flood", "/f").await;
    let flooding = tokio::spawn(async move {
        let (mut ok, mut limited, mut retry) = (0, 0, 0u64);
        // 2000 requests as fast as the socket takes them, in rounds of 200 (reading the
        // answers between rounds, so the flooder is not also a slow reader).
        for round in 0..10u64 {
            for i in 0..200 {
                flood
                    .send_json(json!({"jsonrpc": "2.0", "id": round * 200 + i, "method": "ping"}))
                    .await;
            }
            for _ in 0..200 {
                let m = flood.json().await;
                if m["error"]["code"] == -32004 {
                    limited += 1;
                    retry = retry.max(m["error"]["data"]["retryAfterMs"].as_u64().unwrap());
                    assert!(
                        m["error"]["message"]
                            .as_str()
                            .unwrap()
                            .contains("per second")
                    );
                } else {
                    ok += 1;
                }
            }
        }
        (ok, limited, retry)
    });
    let loaded = ping_p99(&mut quiet, 1000, 40).await;
    let (ok, limited, retry) = flooding.await.unwrap();
    eprintln!(
        "flood: {ok} answered, {limited} limited (retryAfterMs ≤ {retry}); quiet p99 {unloaded:.2} ms unloaded, {loaded:.2} ms during the flood"
    );
    assert!(limited > 1000, "{limited} of 2000 limited");
    assert!(ok >= 100, "the burst is served");
    assert!((1..=1000).contains(&retry), "retryAfterMs {retry}");
    // Within 2× of unloaded, with a few ms of slack for a 2-core machine shared by others.
    assert!(
        loaded <= unloaded * 2.0 + 5.0,
        "p99 {loaded:.2} ms vs {unloaded:.2} ms unloaded"
    );
    let m = metrics(server.port).await;
    assert!(
        m.get("codeflow_errors_total{kind=\"rate_limited\"}")
            .is_some_and(|v| *v >= 1000.0)
    );
}

/// Concurrent requests per session, JSON nesting depth, handshake time and the Origin
/// allow-list: each hit, answered with an error or a close code, and counted.
#[tokio::test]
async fn each_limit_is_answered_and_counted() {
    let server = Server::start_with(
        &[],
        &[
            ("CODEFLOW_MAX_CONCURRENT_REQUESTS", "3"),
            ("CODEFLOW_MAX_SESSIONS", "1"),
            ("CODEFLOW_MAX_JSON_DEPTH", "16"),
            ("CODEFLOW_INITIALIZE_TIMEOUT_SECS", "1"),
            ("CODEFLOW_TEST_TOOLS", "true"),
            ("CODEFLOW_ALLOWED_ORIGINS", "[\"https://ok.example\"]"),
        ],
    )
    .await;
    // Concurrency: three slow calls run, the fourth is refused at once.
    let mut ws = Ws::connect(&server.url()).await;
    ws.initialize("lim", "/lim").await;
    for i in 0..4 {
        ws.send_json(json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": "test_counter", "arguments": {"key": "k", "delay_ms": 1500}}}))
            .await;
    }
    let first = ws.json().await;
    assert_eq!(first["id"], 3, "the fourth is answered first: {first}");
    assert_eq!(first["error"]["code"], -32004, "{first}");
    assert_eq!(first["error"]["data"]["limit"], "concurrent_requests");
    for _ in 0..3 {
        let done = ws.json().await;
        assert!(done["result"].is_object(), "{done}");
    }
    // Depth: 17 levels refused before parsing, 16 accepted; the socket stays open.
    let deep = |levels: usize| {
        format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\",\"params\":{{\"x\":{}}}}}",
            nested(levels - 2)
        )
    };
    ws.send_text(&deep(17)).await;
    let e = ws.json().await;
    assert_eq!(e["error"]["code"], -32600, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deeper than 16"),
        "{e}"
    );
    ws.send_text(&deep(16)).await;
    let ok = ws.json().await;
    assert_eq!(ok["id"], 9, "{ok}");
    assert!(
        ok.get("error").is_none() || ok["error"]["code"] != -32600,
        "{ok}"
    );
    // Sessions: the one allowed is taken; the next handshake gets -32004, then 1008.
    let mut extra = Ws::connect(&server.url()).await;
    let e = extra
        .request(
            json!(1),
            "initialize",
            json!({"project": "lim2", "projectRoot": "/l"}),
        )
        .await;
    assert_eq!(e["error"]["code"], -32004, "{e}");
    assert_eq!(extra.closed().await, Some(1008));
    // Handshake time: closed with 4000.
    let mut idle = Ws::connect(&server.url()).await;
    assert_eq!(idle.closed().await, Some(4000));
    // Origin: a browser page from elsewhere is refused before the upgrade; a listed one and a
    // client without Origin are served.
    let url = server.url();
    let origin = |o: &'static str| {
        let url = url.clone();
        async move {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            let mut request = url.into_client_request().unwrap();
            request.headers_mut().insert("origin", o.parse().unwrap());
            tokio_tungstenite::connect_async(request).await.map(|_| ())
        }
    };
    match origin("https://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    assert!(origin("https://ok.example").await.is_ok());
    let m = metrics(server.port).await;
    for kind in [
        "too_many_running",
        "json_depth",
        "initialize_timeout",
        "origin",
    ] {
        assert!(
            m.get(&format!("codeflow_errors_total{{kind=\"{kind}\"}}"))
                .is_some_and(|v| *v >= 1.0),
            "{kind} not counted: {m:?}"
        );
    }
}

/// A CA and a leaf certificate for 127.0.0.1 signed by it, made with the openssl CLI:
/// (ca.pem, leaf.pem, leaf.key) in `dir`, named with `tag`.
fn make_certificate(
    dir: &std::path::Path,
    tag: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    make_certificate_for(dir, tag, "serverAuth")
}

/// [`make_certificate`] with another extended key usage (`clientAuth` for a client).
fn make_certificate_for(
    dir: &std::path::Path,
    tag: &str,
    usage: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    codeflow_e2e::ca_signed_certificate(dir, tag, "127.0.0.1", usage)
}

/// A wss:// connection that trusts only `ca`.
async fn wss_connect(url: &str, ca: &std::path::Path) -> Result<Ws, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(config));
    let (socket, _) =
        tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector))
            .await
            .map_err(|e| e.to_string())?;
    Ok(Ws::from_socket(socket))
}

/// A server on wss:// with this certificate: (child, url, data dir).
async fn tls_server(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (tokio::process::Child, String, tempfile::TempDir) {
    tls_server_with(cert, key, &[]).await
}

/// [`tls_server`] with extra flags.
async fn tls_server_with(
    cert: &std::path::Path,
    key: &std::path::Path,
    extra: &[&str],
) -> (tokio::process::Child, String, tempfile::TempDir) {
    codeflow_e2e::spawn_tls_server(cert, key, extra)
}

/// wss with a generated certificate; a certificate replaced on disk is served to the next
/// connection while the existing session goes on.
#[tokio::test]
async fn a_replaced_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_a, leaf_a, key_a) = make_certificate(dir.path(), "a");
    let (ca_b, leaf_b, key_b) = make_certificate(dir.path(), "b");
    let cert = dir.path().join("server.pem");
    let key = dir.path().join("server.key");
    std::fs::copy(&leaf_a, &cert).unwrap();
    std::fs::copy(&key_a, &key).unwrap();

    let (mut child, url, _data) = tls_server(&cert, &key).await;
    let mut first = None;
    for _ in 0..200 {
        if let Ok(ws) = wss_connect(&url, &ca_a).await {
            first = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut first = first.expect("wss with certificate A");
    first.initialize("tls", "/tls").await;
    // A client that trusts only B is refused while A is served.
    assert!(wss_connect(&url, &ca_b).await.is_err());

    // Replace the pair (key first, then the certificate, as a renewal tool would).
    std::fs::copy(&key_b, dir.path().join("new.key")).unwrap();
    std::fs::rename(dir.path().join("new.key"), &key).unwrap();
    std::fs::copy(&leaf_b, dir.path().join("new.pem")).unwrap();
    std::fs::rename(dir.path().join("new.pem"), &cert).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            wss_connect(&url, &ca_b).await.is_ok()
        })
        .await,
        "the new certificate was not served"
    );
    assert!(
        wss_connect(&url, &ca_a).await.is_err(),
        "the old certificate is still served"
    );
    // The session opened under the old certificate continues.
    assert_eq!(
        first.request(json!(1), "ping", json!({})).await["result"],
        json!({})
    );
    let mut second = wss_connect(&url, &ca_b).await.unwrap();
    assert!(second.initialize("tls", "/tls2").await["sessionId"].is_string());
    let _ = child.kill().await;
}

/// The relay refuses a certificate it cannot trust, says why in words, trusts a private CA
/// with `--ca-file`, and skips the check only with the loud `--insecure-skip-tls-verify`.
#[tokio::test]
async fn the_relay_trusts_a_private_ca_only_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certificate(dir.path(), "relay");
    let (_server, url, _data) = tls_server(&cert, &key).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            wss_connect(&url, &ca).await.is_ok()
        })
        .await,
        "the TLS server did not start"
    );
    let root = tempfile::tempdir().unwrap();
    let check = |extra: &[&str]| {
        std::process::Command::new(codeflow_e2e::binary("codeflow-client"))
            .args(["check", "--server", &url, "--project", "tlsrelay"])
            .arg("--root")
            .arg(root.path())
            .args(extra)
            .env_remove("CODEFLOW_CA_FILE")
            .output()
            .unwrap()
    };
    let refused = check(&[]);
    let said = String::from_utf8_lossy(&refused.stdout);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("not trusted") && said.contains("--ca-file"),
        "{said}"
    );

    let trusted = check(&["--ca-file", ca.to_str().unwrap()]);
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stdout)
    );

    let insecure = check(&["--insecure-skip-tls-verify"]);
    assert!(
        insecure.status.success(),
        "{}",
        String::from_utf8_lossy(&insecure.stdout)
    );
    let warned = String::from_utf8_lossy(&insecure.stderr);
    assert!(warned.contains("VERIFICATION IS OFF"), "{warned}");

    // The relay itself, with the CA: a tool call goes through.
    let relay = codeflow_e2e::Relay::spawn(
        &url,
        "tlsrelay",
        root.path(),
        &["--ca-file", ca.to_str().unwrap()],
    );
    relay.initialize().await;
    let health = relay.tool("health_check", json!({})).await;
    assert_eq!(
        health["structuredContent"]["session"]["project"], "tlsrelay",
        "{health}"
    );
}

/// With `--tls-client-ca`, a client certificate from an unknown CA, or none, is refused in the
/// TLS handshake; one signed by the listed CA is accepted.
#[tokio::test]
async fn client_certificates_from_unknown_cas_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, cert, key) = make_certificate(dir.path(), "srv");
    let (client_ca, good_cert, good_key) = make_certificate_for(dir.path(), "cli", "clientAuth");
    let (_, bad_cert, bad_key) = make_certificate_for(dir.path(), "rogue", "clientAuth");
    let (_server, url, _data) = tls_server_with(
        &cert,
        &key,
        &["--tls-client-ca", client_ca.to_str().unwrap()],
    )
    .await;
    let root = tempfile::tempdir().unwrap();
    let check = |extra: &[&std::path::Path]| {
        let mut command = std::process::Command::new(codeflow_e2e::binary("codeflow-client"));
        command
            .args(["check", "--server", &url, "--project", "mtls", "--ca-file"])
            .arg(&server_ca)
            .arg("--root")
            .arg(root.path());
        if let [cert, key] = extra {
            command
                .arg("--client-cert")
                .arg(cert)
                .arg("--client-key")
                .arg(key);
        }
        command.output().unwrap()
    };
    // The server may still be starting: wait until the good certificate gets through.
    let mut accepted = None;
    for _ in 0..100 {
        let out = check(&[&good_cert, &good_key]);
        if out.status.success() {
            accepted = Some(out);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        accepted.is_some(),
        "a certificate from the listed CA was refused"
    );
    let none = check(&[]);
    let said = String::from_utf8_lossy(&none.stdout);
    assert!(!none.status.success(), "{said}");
    assert!(
        said.contains("client certificate") || said.contains("FAILED"),
        "{said}"
    );
    let rogue = check(&[&bad_cert, &bad_key]);
    assert!(
        !rogue.status.success(),
        "{}",
        String::from_utf8_lossy(&rogue.stdout)
    );
}

/// EdDSA tokens, checked against an Ed25519 public key file; an HS256 token to that server is
/// refused as the wrong algorithm.
#[tokio::test]
async fn eddsa_tokens_are_checked_with_a_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "set -e; cd '{}'; openssl genpkey -algorithm ed25519 -outform DER -out ed.der; \
         openssl pkey -inform DER -in ed.der -pubout -out ed.pub",
        dir.path().display()
    );
    assert!(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .status()
            .unwrap()
            .success()
    );
    let config = dir.path().join("codeflow.toml");
    std::fs::write(
        &config,
        format!(
            "jwt_public_key = \"{}\"\n",
            dir.path().join("ed.pub").display()
        ),
    )
    .unwrap();
    let server = Server::start_with(&["--config", config.to_str().unwrap()], &[]).await;
    let private = std::fs::read(dir.path().join("ed.der")).unwrap();
    let claims = json!({"sub": "ed", "iss": "codeflow", "aud": "codeflow-clients",
        "exp": now() + 600, "projects": ["ed"], "scope": "lsp:query"});
    let signed = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(&private),
    )
    .unwrap();
    let (mut ws, _) = session(&server, "ed", &signed).await;
    assert_eq!(
        ws.request(json!(1), "ping", json!({})).await["result"],
        json!({})
    );
    // No token: refused (a key is configured); HS256: the wrong algorithm.
    assert!(
        refused_with(&server, None, "ed")
            .await
            .contains("requires a token")
    );
    let hs = jwt_with(
        SECRET,
        jsonwebtoken::Algorithm::HS256,
        json!({"projects": ["ed"]}),
    );
    let message = refused_with(&server, Some(&hs), "ed").await;
    assert!(
        message.contains("algorithm") && message.contains("EdDSA"),
        "{message}"
    );
}

/// A relay whose `--token` the server refuses cannot succeed by waiting: the agent's calls fail
/// at once with what the server refused (not after the offline wait as "unreachable"). With a
/// token file, a new token may come: calls wait as for any outage.
#[tokio::test]
async fn a_refused_fixed_token_fails_calls_at_once_with_the_reason() {
    let server = Server::start_with(&["--jwt-secret", SECRET], &[]).await;
    let root = tempfile::tempdir().unwrap();
    let wrong = jwt_with(
        "another-secret-0123456789abcdef-0123",
        jsonwebtoken::Algorithm::HS256,
        json!({"sub": "someone", "projects": ["fast"]}),
    );
    let relay =
        codeflow_e2e::Relay::spawn(&server.url(), "fast", root.path(), &["--token", &wrong]);
    let started = std::time::Instant::now();
    let reply = relay
        .call(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "e2e", "version": "1"}}),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(reply["error"]["code"], -32001, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("refused the token"), "{message}");
    assert!(
        reply["error"]["data"]["suggestion"]
            .as_str()
            .unwrap()
            .contains("--token"),
        "{reply}"
    );
    // Every later call too, at once.
    let again = relay.call("tools/list", json!({})).await;
    assert_eq!(again["error"]["code"], -32001, "{again}");

    // A token file may be rewritten with a good token: the call waits (here: the offline wait).
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("token");
    std::fs::write(&file, &wrong).unwrap();
    let waiting = codeflow_e2e::Relay::spawn_with_env(
        &server.url(),
        "fast",
        root.path(),
        &["--token-file", file.to_str().unwrap()],
        &[("CODEFLOW_OFFLINE_WAIT_SECS", "3")],
    );
    let started = std::time::Instant::now();
    let reply = waiting
        .call(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "e2e", "version": "1"}}),
        )
        .await;
    assert_eq!(reply["error"]["code"], -32007, "{reply}");
    assert!(started.elapsed() >= Duration::from_secs(3));
}
