//! The last `tools/list` answer, so the relay can answer the agent while the server is
//! unreachable (the catalogue does not change while a relay runs).

use serde_json::Value;

#[derive(Default)]
pub struct ToolsCache {
    last: Option<Value>,
}

impl ToolsCache {
    /// Remembers `result` when it answers a `tools/list`.
    pub fn answered(&mut self, method: Option<&str>, result: &Value) {
        if method == Some("tools/list") {
            self.last = Some(result.clone());
        }
    }

    /// The last `tools/list` result, if the server has sent one.
    pub fn get(&self) -> Option<Value> {
        self.last.clone()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keeps_the_last_tools_list_only() {
        let mut cache = ToolsCache::default();
        assert_eq!(cache.get(), None);
        cache.answered(Some("tools/call"), &json!({"content": []}));
        assert_eq!(cache.get(), None);
        cache.answered(Some("tools/list"), &json!({"tools": [1]}));
        cache.answered(None, &json!({"other": true}));
        cache.answered(Some("tools/list"), &json!({"tools": [2]}));
        assert_eq!(cache.get(), Some(json!({"tools": [2]})));
    }
}
