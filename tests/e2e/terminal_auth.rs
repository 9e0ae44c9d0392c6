//! Who may open a terminal: the `terminal:open` right (not in a token's default rights), on a
//! project the token grants; a ticket opens one socket of one terminal within its lifetime;
//! `Authorization: Bearer` works instead; every refusal comes before the upgrade.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use codeflow_e2e::terminal::{self, create};
use codeflow_e2e::{Server, Ws};
use serde_json::{Value, json};

const SECRET: &str = "terminal-tests-secret-of-at-least-32-bytes!";

fn token(projects: Value, scope: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "sub": "console", "iss": "codeflow", "aud": "codeflow-clients",
        "exp": now + 600, "projects": projects, "scope": scope
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

const ALL: &str = "projects:manage terminal:open file:read";

async fn session(server: &Server, project: &str, token: &str) -> Ws {
    let mut ws = Ws::connect_with_token(&server.url(), Some(token))
        .await
        .unwrap();
    ws.initialize(project, &format!("/{project}")).await;
    ws
}

#[tokio::test]
async fn tickets_are_single_use_short_lived_and_bound_to_their_terminal() {
    let server = Server::start_with(
        &["--jwt-secret", SECRET],
        &[
            ("CODEFLOW_TERMINAL__SHELL", "/bin/bash"),
            ("CODEFLOW_TERMINAL__TICKET_TTL_SECS", "1"),
        ],
    )
    .await;
    let admin = token(json!(["p", "q"]), ALL);
    let mut ws = session(&server, "p", &admin).await;
    for (i, p) in ["p", "q"].iter().enumerate() {
        let made = ws
            .request(json!(i), "projects/create", json!({"id": p}))
            .await;
        assert!(made.get("result").is_some(), "{made}");
    }
    let params = json!({"project": "p", "cols": 80, "rows": 24});
    let a = create(&mut ws, 10, params.clone()).await;
    let b = create(&mut ws, 11, params.clone()).await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let address = |id: &str, ticket: &str| {
        terminal::address(&server, &format!("/ws/terminal/{id}?ticket={ticket}"))
    };

    // No credential, a made-up ticket, another terminal's ticket: 401 before any upgrade.
    let bare = terminal::address(&server, &format!("/ws/terminal/{a_id}"));
    assert_eq!(terminal::open(&bare, None).await.err(), Some(401));
    assert_eq!(
        terminal::open(&address(a_id, "forged"), None).await.err(),
        Some(401)
    );
    let b_ticket = b["ticket"].as_str().unwrap();
    assert_eq!(
        terminal::open(&address(a_id, b_ticket), None).await.err(),
        Some(401)
    );
    // ... and the ticket was spent by that try.
    assert_eq!(
        terminal::open(&address(b_id, b_ticket), None).await.err(),
        Some(401)
    );
    // An unknown terminal: 404.
    let none = terminal::address(&server, "/ws/terminal/t-none?ticket=x");
    assert_eq!(terminal::open(&none, None).await.err(), Some(404));

    // A good ticket opens one socket; the same ticket again is refused.
    let a_url = terminal::address(&server, a["url"].as_str().unwrap());
    let mut term = terminal::open(&a_url, None).await.unwrap();
    term.run("echo o\"\"k", "ok").await;
    assert_eq!(terminal::open(&a_url, None).await.err(), Some(401));

    // A ticket expires (1 s here; 60 s by default).
    let late = ws
        .request(json!(12), "terminals/attach", json!({"id": a_id}))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late_url = terminal::address(&server, late["result"]["url"].as_str().unwrap());
    assert_eq!(terminal::open(&late_url, None).await.err(), Some(401));

    // `Authorization: Bearer` instead of a ticket: the token's rules apply.
    let mut by_token = terminal::open(&bare, Some(&admin)).await.unwrap();
    by_token.until(0, "ok").await;
    let no_right = token(json!(["p"]), "projects:manage file:read lsp:query");
    assert_eq!(
        terminal::open(&bare, Some(&no_right)).await.err(),
        Some(403)
    );
    let other_project = token(json!(["q"]), ALL);
    assert_eq!(
        terminal::open(&bare, Some(&other_project)).await.err(),
        Some(403)
    );
    assert_eq!(
        terminal::open(&bare, Some("not-a-jwt")).await.err(),
        Some(401)
    );
}

#[tokio::test]
async fn terminal_methods_need_the_terminal_open_right_and_the_project() {
    let server = Server::start_with(
        &["--jwt-secret", SECRET],
        &[("CODEFLOW_TERMINAL__SHELL", "/bin/bash")],
    )
    .await;
    let admin = token(json!(["p", "q"]), ALL);
    let mut ws = session(&server, "p", &admin).await;
    for (i, p) in ["p", "q"].iter().enumerate() {
        ws.request(json!(i), "projects/create", json!({"id": p}))
            .await;
    }
    let on_q = create(&mut ws, 5, json!({"project": "q", "cols": 80, "rows": 24})).await;

    // A token naming no rights gets file:read lsp:query: no terminals.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let default_rights = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "x", "iss": "codeflow", "aud": "codeflow-clients", "exp": now + 600, "projects": ["p"]}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let mut reader = session(&server, "p", &default_rights).await;
    let refused = reader
        .request(
            json!(1),
            "terminals/create",
            json!({"project": "p", "cols": 80, "rows": 24}),
        )
        .await;
    assert_eq!(refused["error"]["code"], -32003, "{refused}");
    assert_eq!(refused["error"]["data"]["right"], "terminal:open");

    // A token for p only neither sees nor attaches to q's terminal.
    let p_only = token(json!(["p"]), ALL);
    let mut other = session(&server, "p", &p_only).await;
    let list = other
        .request(json!(2), "terminals/list", json!({"project": "q"}))
        .await;
    assert_eq!(list["error"]["code"], -32003, "{list}");
    let attach = other
        .request(json!(3), "terminals/attach", json!({"id": on_q["id"]}))
        .await;
    assert_eq!(attach["error"]["data"]["reason"], "not_found", "{attach}");
    let close = other
        .request(json!(4), "terminals/close", json!({"id": on_q["id"]}))
        .await;
    assert_eq!(close["error"]["data"]["reason"], "not_found", "{close}");
}
