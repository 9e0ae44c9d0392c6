//! `max_results`: tools that can return many items cut the list and say so.

use serde_json::{Value, json};

/// The default of every `max_results`.
pub const DEFAULT_MAX_RESULTS: usize = 200;

/// A list cut to at most `max` items.
#[derive(Debug, Clone)]
pub struct Limited<T> {
    /// The items kept.
    pub items: Vec<T>,
    /// How many there were before the cut.
    pub total: usize,
    /// Whether items were cut.
    pub truncated: bool,
}

impl<T> Limited<T> {
    /// `items`, cut to `max` when given.
    pub fn new(mut items: Vec<T>, max: Option<usize>) -> Self {
        let max = max.unwrap_or(DEFAULT_MAX_RESULTS).max(1);
        let total = items.len();
        let truncated = total > max;
        items.truncate(max);
        Self {
            items,
            total,
            truncated,
        }
    }

    /// "Showing the first N of M `<what>`; raise max_results to see more." when cut.
    pub fn notice(&self, what: &str) -> Option<String> {
        self.truncated.then(|| {
            format!(
                "Truncated: showing the first {} of {} {what}; raise max_results to see more.",
                self.items.len(),
                self.total
            )
        })
    }
}

/// The schema of a `max_results` parameter.
pub fn max_results_schema(what: &str) -> Value {
    json!({
        "type": "integer",
        "minimum": 1,
        "default": DEFAULT_MAX_RESULTS,
        "description": format!("Most {what} to return (default {DEFAULT_MAX_RESULTS}); the result says when it was truncated.")
    })
}
