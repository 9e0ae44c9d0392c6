//! The executor's metrics (Prometheus names via the `metrics` facade; labels from closed sets).

pub(crate) fn run_started() {
    metrics::counter!("codeflow_claude_runs_started_total").increment(1);
    metrics::gauge!("codeflow_claude_runs_live").increment(1.0);
}

pub(crate) fn run_completed(success: bool, aborted: bool, lines: u64) {
    let outcome = match (success, aborted) {
        (_, true) => "aborted",
        (true, false) => "success",
        (false, false) => "failed",
    };
    metrics::counter!("codeflow_claude_runs_completed_total", "outcome" => outcome).increment(1);
    metrics::gauge!("codeflow_claude_runs_live").decrement(1.0);
    metrics::counter!("codeflow_claude_run_lines_total").increment(lines);
}

pub(crate) fn log_commit(entries: usize) {
    metrics::counter!("codeflow_message_log_commits_total").increment(1);
    metrics::counter!("codeflow_message_log_appends_total").increment(entries as u64);
}
