//! Metric names and recording. All names start with `codeflow_lsp_`; the server binary
//! installs the Prometheus recorder, this crate only emits through the `metrics` macros.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

/// Gauge: language-server instances running, by `language`.
pub const SERVERS_RUNNING: &str = "codeflow_lsp_servers_running";
/// Counter: instances that initialized, by `language`.
pub const STARTS: &str = "codeflow_lsp_starts_total";
/// Counter: first starts that failed (not installed, no `initialize` answer, …).
pub const START_FAILURES: &str = "codeflow_lsp_start_failures_total";
/// Counter: crashes (exit, broken pipe, failed re-initialization), by `language`.
pub const CRASHES: &str = "codeflow_lsp_crashes_total";
/// Counter: automatic restarts, by `language`.
pub const RESTARTS: &str = "codeflow_lsp_restarts_total";
/// Counter: servers the pool gave up restarting, by `language`.
pub const GIVE_UPS: &str = "codeflow_lsp_give_ups_total";
/// Histogram: request latency in seconds, by `language`, `method`, `outcome` (`ok`/`error`).
pub const REQUEST_DURATION: &str = "codeflow_lsp_request_duration_seconds";

/// Register descriptions with the installed recorder (call once after installing it).
pub fn describe() {
    describe_gauge!(
        SERVERS_RUNNING,
        "Language-server processes running, by language"
    );
    describe_counter!(STARTS, "Language-server instances started and initialized");
    describe_counter!(START_FAILURES, "Language servers that failed to start");
    describe_counter!(CRASHES, "Language-server crashes");
    describe_counter!(RESTARTS, "Automatic language-server restarts");
    describe_counter!(GIVE_UPS, "Language servers given up after repeated crashes");
    describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Latency of requests to language servers"
    );
}

pub(crate) fn record_start(language: &str) {
    counter!(STARTS, "language" => language.to_owned()).increment(1);
}

pub(crate) fn record_start_failure(language: &str) {
    counter!(START_FAILURES, "language" => language.to_owned()).increment(1);
}

pub(crate) fn record_crash(language: &str) {
    counter!(CRASHES, "language" => language.to_owned()).increment(1);
}

pub(crate) fn record_restart(language: &str) {
    counter!(RESTARTS, "language" => language.to_owned()).increment(1);
}

pub(crate) fn record_give_up(language: &str) {
    counter!(GIVE_UPS, "language" => language.to_owned()).increment(1);
}

pub(crate) fn record_request(language: &str, method: &'static str, ok: bool, took: Duration) {
    histogram!(
        REQUEST_DURATION,
        "language" => language.to_owned(),
        "method" => method,
        "outcome" => if ok { "ok" } else { "error" },
    )
    .record(took.as_secs_f64());
}

/// Counts one running instance for as long as it lives.
pub(crate) struct RunningGuard(String);

impl RunningGuard {
    pub(crate) fn new(language: &str) -> Self {
        gauge!(SERVERS_RUNNING, "language" => language.to_owned()).increment(1.0);
        Self(language.to_owned())
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        gauge!(SERVERS_RUNNING, "language" => self.0.clone()).decrement(1.0);
    }
}
