//! A terminal over `wss://`: the socket stays on the TLS connection (served on the main
//! runtime) and works as over plain WebSocket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use codeflow_e2e::terminal;
use codeflow_e2e::{Ws, eventually};
use serde_json::json;

#[tokio::test]
async fn a_terminal_works_over_wss() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) =
        codeflow_e2e::ca_signed_certificate(dir.path(), "tls", "127.0.0.1", "serverAuth");
    let (_server, url, _data) = codeflow_e2e::spawn_tls_server(&cert, &key, &[]);
    let connect = || terminal::wss_session(&url, &ca);
    assert!(
        eventually(Duration::from_secs(20), || async {
            connect().await.is_ok()
        })
        .await,
        "the wss server did not come up"
    );
    let mut ws: Ws = connect().await.unwrap();
    ws.initialize("tls", "/tls").await;
    let made = ws
        .request(json!(1), "projects/create", json!({"id": "tls"}))
        .await;
    assert!(made.get("result").is_some(), "{made}");
    let made = terminal::create(
        &mut ws,
        2,
        json!({"project": "tls", "cols": 80, "rows": 24,
               "command": "echo over-\"\"tls; read x; echo got-$x; exit 5"}),
    )
    .await;
    let base = url.trim_end_matches("/ws");
    let address = format!("{base}{}", made["url"].as_str().unwrap());
    let mut term = terminal::open_tls(&address, &ca).await.unwrap();
    term.until(0, "over-tls").await;
    term.send(b"secret\r").await;
    term.until(0, "got-secret").await;
    assert_eq!(term.until_closed().await, (Some(5), Some(1000)));
}
