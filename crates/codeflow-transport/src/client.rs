//! The client side of a CodeFlow socket: dial `ws://` or `wss://` and get the same
//! [`Outbound`]/[`Inbound`] pair the server side gets.

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::connection::{ConnectionConfig, Inbound, Outbound, spawn_connection};

/// Why a connection attempt failed, in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not `ws://` or `wss://` (or does not parse).
    #[error("`{0}` is not a ws:// or wss:// URL")]
    BadUrl(String),
    /// The token is not a valid HTTP header value.
    #[error("the token cannot be sent as an HTTP header (it contains invalid characters)")]
    BadToken,
    /// The server answered the upgrade with an HTTP error.
    #[error("the server refused the connection: HTTP {status}{}", body.as_deref().map(|b| format!(" — {b}")).unwrap_or_default())]
    Refused {
        /// The HTTP status (401, 403, 404…).
        status: u16,
        /// The response body, when it had one (the server's explanation).
        body: Option<String>,
    },
    /// No connection: DNS, TCP or TLS failed (the reason says which).
    #[error("cannot reach the server: {0}")]
    Unreachable(String),
}

/// Dials `url`, sending `token` (if any) as `Authorization: Bearer`.
pub async fn connect(
    url: &str,
    token: Option<&str>,
    config: &ConnectionConfig,
) -> Result<(Outbound, Inbound), ConnectError> {
    if !(url.starts_with("ws://") || url.starts_with("wss://")) {
        return Err(ConnectError::BadUrl(url.to_owned()));
    }
    let mut request = url
        .into_client_request()
        .map_err(|_| ConnectError::BadUrl(url.to_owned()))?;
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ConnectError::BadToken)?;
        request.headers_mut().insert("authorization", value);
    }
    crate::tls::install_crypto_provider();
    let connector = config.tls.clone().map(tokio_tungstenite::Connector::Rustls);
    let (socket, _response) = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config.websocket_config()),
        true,
        connector,
    )
    .await
    .map_err(|e| match e {
        tokio_tungstenite::tungstenite::Error::Http(resp) => ConnectError::Refused {
            status: resp.status().as_u16(),
            body: resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                .filter(|b| !b.is_empty()),
        },
        tokio_tungstenite::tungstenite::Error::Url(_) => ConnectError::BadUrl(url.to_owned()),
        other => ConnectError::Unreachable(other.to_string()),
    })?;
    Ok(spawn_connection(socket, config.clone()))
}
