//! Dialling the server: the URL a person types made into the one the server serves (a URL
//! without a path reaches `/ws`), and a failed dial explained in words that say what to fix.

use codeflow_transport::{ConnectError, ConnectionConfig, Inbound, Outbound};
use serde_json::Value;
use url::Url;

/// Where `codeflow-server` serves its WebSocket.
pub const WS_PATH: &str = "/ws";

/// Checks a server URL and fills in what people leave out: `ws://host:3000` (or with a bare
/// `/`) becomes `ws://host:3000/ws`. Any other path is kept as given (a reverse proxy may mount
/// the server elsewhere). HTTP URLs and other schemes are refused with the URL to use instead.
pub fn normalize(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let mut url = Url::parse(trimmed).map_err(|e| {
        format!(
            "`{trimmed}` is not a valid server URL ({e}): pass --server ws://HOST:PORT{WS_PATH}"
        )
    })?;
    match url.scheme() {
        "ws" | "wss" => {}
        scheme @ ("http" | "https") => {
            let ws = if scheme == "https" { "wss" } else { "ws" };
            let mut suggested = url.clone();
            // Both are special schemes, so switching between them always succeeds.
            let _ = suggested.set_scheme(ws);
            if suggested.path() == "/" {
                suggested.set_path(WS_PATH);
            }
            return Err(format!(
                "`{trimmed}` is an {} URL, but the relay talks to the server over WebSocket: pass --server {suggested}",
                scheme.to_uppercase()
            ));
        }
        other => {
            return Err(format!(
                "`{trimmed}` has the scheme `{other}:`; the server URL must start with ws:// (or wss:// for TLS), e.g. ws://HOST:PORT{WS_PATH}"
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "`{trimmed}` names no host: pass --server ws://HOST:PORT{WS_PATH}"
        ));
    }
    if url.path().is_empty() || url.path() == "/" {
        url.set_path(WS_PATH);
    }
    Ok(url.to_string())
}

/// The dial URL with the project in its query (`?project=ID`, replacing one already there), so a
/// reverse proxy can send every session of a project to the same server instance by hashing
/// on it without reading frames (`deploy/nginx/codeflow.conf`). The server itself goes by the
/// project `initialize` names; the query is only a routing key.
pub fn with_project(url: &str, project: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        return url.to_owned();
    };
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "project")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    parsed
        .query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("project", project);
    parsed.to_string()
}

/// A failed dial: what to tell the user, and whether the server refused the token (then
/// dialling again with the same token cannot succeed).
#[derive(Debug)]
pub struct DialError {
    pub text: String,
    pub token_refused: bool,
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Dials `url` and, when that fails, says why and what to change.
pub async fn connect(
    url: &str,
    token: Option<&str>,
    config: &ConnectionConfig,
) -> Result<(Outbound, Inbound), DialError> {
    codeflow_transport::connect(url, token, config)
        .await
        .map_err(|e| DialError {
            text: explain(url, &e),
            token_refused: matches!(
                e,
                ConnectError::BadToken | ConnectError::Refused { status: 401, .. }
            ),
        })
}

/// A failed dial in words: what happened at which address, and the fix.
pub fn explain(url: &str, error: &ConnectError) -> String {
    let parsed = Url::parse(url).ok();
    let address = parsed
        .as_ref()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_else(|| url.to_owned());
    let tls = parsed.as_ref().is_some_and(|u| u.scheme() == "wss");
    match error {
        ConnectError::BadUrl(_) => {
            format!("`{url}` is not a valid server URL: pass --server ws://HOST:PORT{WS_PATH}")
        }
        ConnectError::BadToken => error.to_string(),
        ConnectError::Refused { status: 404, .. } => {
            let path = parsed.as_ref().map_or("", Url::path);
            let suggested = ws_url(parsed.as_ref());
            format!(
                "{address} answered HTTP 404 for `{path}`: nothing serves WebSocket at that path. codeflow-server serves it at {WS_PATH}: pass --server {suggested}"
            )
        }
        // `/mcp` is the server's MCP-over-HTTP endpoint, not the relay's.
        ConnectError::Refused { status: 405, .. }
            if parsed.as_ref().is_some_and(|u| u.path().ends_with("/mcp")) =>
        {
            let suggested = ws_url(parsed.as_ref());
            format!(
                "{address} serves MCP over HTTP at `/mcp`, for MCP clients without the relay; the relay speaks WebSocket at {WS_PATH}: pass --server {suggested}"
            )
        }
        ConnectError::Refused {
            status: 401 | 403,
            body,
        } => {
            let (reason, suggestion) = refusal(body.as_deref());
            let mut text = format!("the server refused the token: {reason}");
            match suggestion {
                Some(s) => text.push_str(&format!(". {}", sentence(&s))),
                None => text.push_str(
                    ". Pass a valid token with --token or CODEFLOW_TOKEN, minted with the server's secret",
                ),
            }
            text
        }
        ConnectError::Refused { status, .. } => format!(
            "{address} answered HTTP {status} instead of switching to WebSocket: what listens there is not codeflow-server (a plain HTTP server, or a proxy that does not pass WebSocket upgrades on). Check the host and port (`curl http://{address}/healthz` names codeflow-server), or let the proxy forward the Upgrade and Connection headers"
        ),
        ConnectError::Unreachable(detail) => unreachable(&address, tls, detail),
    }
}

/// `url` with the WebSocket path and no query: where the relay should dial.
fn ws_url(parsed: Option<&Url>) -> String {
    parsed
        .cloned()
        .map(|mut u| {
            u.set_path(WS_PATH);
            u.set_query(None);
            u.to_string()
        })
        .unwrap_or_else(|| format!("ws://HOST:PORT{WS_PATH}"))
}

/// `text` as the start of a sentence: its first letter upper-case (the server's suggestions
/// start lower-case, being written to follow a colon).
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if first.is_lowercase() => first.to_uppercase().chain(chars).collect(),
        _ => text.to_owned(),
    }
}

/// The token refusal's reason and suggestion, from the server's JSON body.
fn refusal(body: Option<&str>) -> (String, Option<String>) {
    let json: Option<Value> = body.and_then(|b| serde_json::from_str(b).ok());
    let field = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let reason = field("error")
        .or_else(|| body.map(str::to_owned))
        .unwrap_or_else(|| "no reason given".into());
    (reason, field("suggestion"))
}

fn unreachable(address: &str, tls: bool, detail: &str) -> String {
    let lower = detail.to_ascii_lowercase();
    let hint = if lower.contains("connection refused") {
        format!(
            "nothing is listening at {address}: check that codeflow-server is running there, or fix the host or port"
        )
    } else if lower.contains("failed to lookup")
        || lower.contains("name or service not known")
        || lower.contains("no address associated")
        || lower.contains("temporary failure in name resolution")
    {
        format!(
            "the host of {address} cannot be resolved: check its spelling and this container's DNS"
        )
    } else if tls && (lower.contains("invalidcontenttype") || lower.contains("corrupt message")) {
        format!(
            "{address} does not speak TLS: use ws:// instead of wss://, or start the server with --tls-cert and --tls-key"
        )
    } else if tls && lower.contains("certificate") {
        format!(
            "the TLS certificate of {address} is not accepted (not trusted, or not for that host name): without --ca-file the relay trusts the public web PKI roots only; for a private or self-signed CA pass --ca-file with that CA's PEM file (or set CODEFLOW_CA_FILE)"
        )
    } else if lower.contains("http version must be") {
        format!(
            "{address} answered with an old HTTP version, so what listens there is a plain HTTP server, not codeflow-server: check the host and port"
        )
    } else if !tls
        && (lower.contains("httparse")
            || lower.contains("http format")
            || lower.contains("handshake not finished")
            || lower.contains("connection reset"))
    {
        format!(
            "{address} did not answer with HTTP: if the server uses TLS (--tls-cert), use wss:// instead of ws://; otherwise check that the port is codeflow-server's"
        )
    } else {
        format!("check that codeflow-server runs at {address} and that the URL is right")
    };
    format!("cannot reach the server ({detail}): {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_rides_in_the_query_for_proxies() {
        assert_eq!(
            with_project("ws://h:3000/ws", "web-app"),
            "ws://h:3000/ws?project=web-app"
        );
        assert_eq!(
            with_project("wss://h/codeflow/ws?shard=2&project=old", "p.1"),
            "wss://h/codeflow/ws?shard=2&project=p.1"
        );
    }

    #[test]
    fn a_url_without_a_path_reaches_ws() {
        assert_eq!(
            normalize("ws://codeflow-service:3000").as_deref(),
            Ok("ws://codeflow-service:3000/ws")
        );
        assert_eq!(
            normalize(" ws://127.0.0.1:3000/ ").as_deref(),
            Ok("ws://127.0.0.1:3000/ws")
        );
        assert_eq!(
            normalize("wss://example.com").as_deref(),
            Ok("wss://example.com/ws")
        );
        assert_eq!(normalize("ws://h:3000/ws").as_deref(), Ok("ws://h:3000/ws"));
        // A proxy's own path is kept.
        assert_eq!(
            normalize("wss://h/codeflow/ws").as_deref(),
            Ok("wss://h/codeflow/ws")
        );
    }

    #[test]
    fn http_urls_are_refused_with_the_url_to_use() {
        let e = normalize("http://h:3000").unwrap_err();
        assert!(e.contains("--server ws://h:3000/ws"), "{e}");
        let e = normalize("https://h/ws").unwrap_err();
        assert!(e.contains("--server wss://h/ws"), "{e}");
        let e = normalize("h:3000").unwrap_err();
        assert!(e.contains("ws://"), "{e}");
        let e = normalize("not a url").unwrap_err();
        assert!(e.contains("ws://HOST:PORT/ws"), "{e}");
    }

    #[test]
    fn a_404_names_the_path_to_use() {
        let e = explain(
            "ws://h:3000/wrong?x=1",
            &ConnectError::Refused {
                status: 404,
                body: None,
            },
        );
        assert!(e.contains("`/wrong`"), "{e}");
        assert!(e.contains("--server ws://h:3000/ws"), "{e}");
    }

    #[test]
    fn the_http_mcp_endpoint_is_named_for_what_it_is() {
        let e = explain(
            "ws://h:3000/mcp",
            &ConnectError::Refused {
                status: 405,
                body: None,
            },
        );
        assert!(e.contains("MCP over HTTP at `/mcp`"), "{e}");
        assert!(e.contains("--server ws://h:3000/ws"), "{e}");
    }

    #[test]
    fn a_token_refusal_carries_the_servers_suggestion() {
        let e = explain(
            "ws://h:3000/ws",
            &ConnectError::Refused {
                status: 401,
                body: Some(r#"{"error":"token expired","suggestion":"mint a new one"}"#.into()),
            },
        );
        assert_eq!(
            e,
            "the server refused the token: token expired. Mint a new one"
        );
        // A suggestion that starts with a command or a flag is left as it is.
        assert_eq!(
            sentence("`codeflow-server token` mints one"),
            "`codeflow-server token` mints one"
        );
        assert_eq!(sentence("--token works"), "--token works");
    }
}
