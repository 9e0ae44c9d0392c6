//! The web console on `GET /ui`: a small single-page app whose files are embedded in the
//! binary (`bins/codeflow-server/ui/`), so nothing is served from disk or fetched from the
//! internet. It speaks the `/ws` protocol like every other client, with the user's token
//! (docs/console.md).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// One embedded file: its name under `/ui/`, its content type and its bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../ui/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("js/rpc.js", JS),
    asset!("js/util.js", JS),
    asset!("js/conversation.js", JS),
    asset!("js/projects.js", JS),
    asset!("js/project.js", JS),
    asset!("js/terminal.js", JS),
    asset!("js/service.js", JS),
    asset!("js/app.js", JS),
    asset!("vendor/xterm.js", JS),
    asset!("vendor/addon-fit.js", JS),
    asset!("vendor/xterm.css", "text/css; charset=utf-8"),
    asset!("vendor/LICENSE.xterm", "text/plain; charset=utf-8"),
];

/// Scripts, styles and sockets of this origin only; no frames, no plugins, no inline script.
/// Inline styles are allowed: xterm.js sizes its rows with a `<style>` element it writes.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `/ui` (the page) and `/ui/{file}` (its scripts and styles).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { serve("index.html") }))
        .route("/ui/", get(|| async { Redirect::permanent("/ui") }))
        .route(
            "/ui/{*file}",
            get(|Path(file): Path<String>| async move { serve(&file) }),
        )
}

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such console file").into_response();
    };
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // The files change with the binary: always revalidate (they are small).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_and_others_are_not() {
        for asset in ASSETS {
            let response = serve(asset.name);
            assert_eq!(response.status(), StatusCode::OK, "{}", asset.name);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                asset.content_type,
                "{}",
                asset.name
            );
            assert!(!asset.bytes.is_empty(), "{}", asset.name);
        }
        for missing in ["../Cargo.toml", "js/nope.js", "", "vendor"] {
            assert_eq!(serve(missing).status(), StatusCode::NOT_FOUND, "{missing}");
        }
    }

    #[test]
    fn the_page_loads_only_embedded_files() {
        let page = std::str::from_utf8(ASSETS[0].bytes).unwrap_or_default();
        for reference in page
            .split("src=\"")
            .skip(1)
            .chain(page.split("href=\"").skip(1))
        {
            let target = reference.split('"').next().unwrap_or_default();
            if target.starts_with('#') || target.starts_with("data:") {
                continue;
            }
            let name = target.strip_prefix("/ui/").unwrap_or(target);
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "index.html refers to `{target}`, which is not embedded"
            );
        }
    }
}
