//! Free text a language server wrote (hover markdown, diagnostic messages, code-action titles,
//! error messages): the only output that can name the mirror, since every path CodeFlow puts
//! in an answer is already a typed client path. A [`ServerText`] is scrubbed when it is made —
//! the mirror's root, as a path or inside a `file://` URI, becomes the caller's client root —
//! so no mirror path can leave the server through it.

use std::path::Path;

use codeflow_file_stream::PathMap;

/// Server-written text, scrubbed of the mirror (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct ServerText(String);

/// Replaces one project's mirror root by the caller's client root in server-written text.
#[derive(Debug, Clone)]
pub struct Scrubber {
    mirror_root: String,
    client_root: String,
}

impl Scrubber {
    /// A scrubber from `mirror_root` (the server's directory) to `client_root`.
    pub fn new(mirror_root: &Path, client_root: &str) -> Self {
        Self {
            mirror_root: mirror_root.to_string_lossy().into_owned(),
            client_root: client_root.to_owned(),
        }
    }

    /// The scrubber of a path map (its mirror root → its client root).
    pub fn of(paths: &PathMap) -> Self {
        Self::new(paths.mirror_root(), paths.client_root().as_str())
    }

    /// `text`, scrubbed.
    pub fn text(&self, text: &str) -> ServerText {
        ServerText(self.scrub(text))
    }

    /// An error whose message a language server wrote (in part), scrubbed: where a server's
    /// failure becomes the caller's error.
    pub fn error(&self, e: crate::WorkspaceError) -> crate::WorkspaceError {
        match e {
            crate::WorkspaceError::Failed {
                message,
                suggestion,
            } => crate::WorkspaceError::Failed {
                message: self.scrub(&message),
                suggestion,
            },
            crate::WorkspaceError::InvalidArguments(m) => {
                crate::WorkspaceError::InvalidArguments(self.scrub(&m))
            }
            other => other,
        }
    }

    /// Opaque data a language server attached to an item (a call-hierarchy item's `data`),
    /// every string in it scrubbed: it is the server's own text too.
    pub fn data(&self, value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.scrub(&s)),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.data(v)).collect()),
            Value::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, self.data(v))).collect())
            }
            other => other,
        }
    }

    /// `text` with the mirror root replaced by the client root (for text that is not kept
    /// as a [`ServerText`], such as an error message).
    pub fn scrub(&self, text: &str) -> String {
        if self.mirror_root.is_empty() || !text.contains(&self.mirror_root) {
            return text.to_owned();
        }
        text.replace(&self.mirror_root, &self.client_root)
    }
}

impl ServerText {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for ServerText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_root_becomes_the_client_root() {
        let s = Scrubber::new(Path::new("/data/mirrors/p"), "/home/me/p");
        assert_eq!(
            s.text("see /data/mirrors/p/a.py:3 and file:///data/mirrors/p/b.py")
                .as_str(),
            "see /home/me/p/a.py:3 and file:///home/me/p/b.py"
        );
        assert_eq!(s.text("nothing here").as_str(), "nothing here");
        assert_eq!(
            s.error(crate::WorkspaceError::failed("no /data/mirrors/p/x.py"))
                .to_string(),
            "no /home/me/p/x.py"
        );
        assert_eq!(
            serde_json::to_value(s.text("x /data/mirrors/p")).ok(),
            Some(serde_json::json!("x /home/me/p"))
        );
    }
}
