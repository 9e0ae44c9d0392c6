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

    /// Whether the server's catalogue marks `tool` read-only (MCP's
    /// `annotations.readOnlyHint`): `false` when unknown.
    pub fn read_only(&self, tool: &str) -> bool {
        self.last
            .as_ref()
            .and_then(|l| l.get("tools"))
            .and_then(Value::as_array)
            .and_then(|tools| {
                tools
                    .iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some(tool))
            })
            .and_then(|t| t.pointer("/annotations/readOnlyHint"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
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

    #[test]
    fn read_only_tools_are_the_ones_the_catalogue_marks() {
        let mut cache = ToolsCache::default();
        assert!(!cache.read_only("find_definition"));
        cache.answered(
            Some("tools/list"),
            &json!({"tools": [
                {"name": "find_definition", "annotations": {"readOnlyHint": true}},
                {"name": "create_file", "annotations": {"readOnlyHint": false}},
                {"name": "odd"}
            ]}),
        );
        assert!(cache.read_only("find_definition"));
        assert!(!cache.read_only("create_file"));
        assert!(!cache.read_only("odd"));
        assert!(!cache.read_only("missing"));
    }
}
