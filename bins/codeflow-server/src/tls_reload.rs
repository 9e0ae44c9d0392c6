//! Certificate reload: the certificate and key files are checked every few seconds and, when
//! either changed and both load, the next TLS handshake uses them. Established connections
//! keep theirs; nothing restarts. A pair that does not load is logged and the old one kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum_server::tls_rustls::RustlsConfig;

/// How often the files are checked.
const CHECK_EVERY: Duration = Duration::from_secs(2);

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Watches `cert` and `key` until the process ends, reloading `config` when they change.
pub fn spawn(config: RustlsConfig, cert: PathBuf, key: PathBuf, client_ca: Option<PathBuf>) {
    tokio::spawn(async move {
        let mut last = (stamp(&cert), stamp(&key));
        let mut ticker = tokio::time::interval(CHECK_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = (stamp(&cert), stamp(&key));
            if now == last {
                continue;
            }
            match codeflow_transport::tls::server_config(&cert, &key, client_ca.as_deref()) {
                Ok(server) => {
                    config.reload_from_config(Arc::new(server));
                    last = now;
                    metrics::counter!("codeflow_tls_reloads_total", "outcome" => "ok").increment(1);
                    tracing::info!(cert = %cert.display(), "TLS certificate reloaded; new connections use it");
                }
                Err(e) => {
                    // Half-written (a cert replaced before its key): try again next tick, and
                    // say so once per change.
                    last = now;
                    metrics::counter!("codeflow_tls_reloads_total", "outcome" => "error")
                        .increment(1);
                    tracing::warn!(error = %e, "TLS certificate changed but does not load; still serving the previous one");
                }
            }
        }
    });
}
