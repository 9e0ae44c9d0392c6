//! Metric names and the label discipline: methods become labels only when they are known, so a
//! client cannot grow the metric set without bound by inventing methods.

const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "reconnect",
    "auth/refresh",
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
    "channels/publish",
    "channels/gap",
    "server/fileChanged",
    "server/gitState",
    "server/syncManifest",
    "server/syncBegin",
    "client/readFile",
    "client/readFiles",
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

/// A request re-sent after a reconnect and not run again (`running` or `answered`).
pub(crate) fn resend(kind: &'static str) {
    metrics::counter!("codeflow_resent_requests_total", "kind" => kind).increment(1);
}

/// Requests of ours sent to a client again when it resumed (their first send, or the
/// client's answer, may have died with the old socket).
pub(crate) fn resent_to_client(count: usize) {
    metrics::counter!("codeflow_resent_client_requests_total").increment(count as u64);
}

/// One publication and how many sessions it went to.
pub(crate) fn published(channel: crate::channels::Channel, subscribers: usize) {
    metrics::counter!("codeflow_channel_publications_total", "channel" => channel.as_str())
        .increment(1);
    metrics::counter!("codeflow_channel_deliveries_total", "channel" => channel.as_str())
        .increment(subscribers as u64);
}

/// A session resumed (`reconnect` or `initialize`), or a resume that found no session.
pub(crate) fn resume(outcome: &'static str) {
    metrics::counter!("codeflow_resumes_total", "outcome" => outcome).increment(1);
}
