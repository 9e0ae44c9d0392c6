//! A bench client's JSON-RPC request on a raw WebSocket (p4, p8): send, then wait for the answer
//! with the same id, skipping anything else (channel events) on the way.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn request(ws: &mut Ws, id: u64, method: &str, params: Value) -> Result<Value> {
    let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    ws.send(Message::text(msg.to_string())).await?;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .context("no answer within 60 s")?;
        match frame {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str())?;
                if v.get("id") == Some(&json!(id)) {
                    if let Some(e) = v.get("error") {
                        bail!("{method} failed: {e}");
                    }
                    return Ok(v["result"].clone());
                }
            }
            Some(Ok(Message::Close(f))) => bail!("closed: {f:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed"),
        }
    }
}
