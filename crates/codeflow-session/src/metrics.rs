//! Metric names and the label discipline: methods become labels only when they are known, so a
//! client cannot grow the metric set without bound by inventing methods.

const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "reconnect",
    "ping",
    "tools/list",
    "tools/call",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/message",
    "channels/subscribe",
    "channels/unsubscribe",
    "channels/event",
    "server/fileChanged",
    "server/syncManifest",
    "client/readFile",
    "client/writeFile",
    "client/writeDelta",
    "client/deleteFile",
    "client/renameFile",
    "client/fileExists",
    "client/getFileStats",
    "client/listDirectory",
];

fn label(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

pub(crate) fn message_in(method: &str) {
    metrics::counter!("codeflow_messages_in_total", "method" => label(method)).increment(1);
}

pub(crate) fn message_out(method: &str) {
    metrics::counter!("codeflow_messages_out_total", "method" => label(method)).increment(1);
}

pub(crate) fn error_sent(kind: &'static str) {
    metrics::counter!("codeflow_errors_total", "kind" => kind).increment(1);
}

pub(crate) fn sessions(n: usize) {
    metrics::gauge!("codeflow_sessions").set(n as f64);
}
