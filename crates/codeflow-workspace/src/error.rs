//! What can go wrong when a caller works on its project: each case a caller can act on, with a
//! message a person (or a model) can follow. The tool catalogue reports the same type
//! (`codeflow_tools::ToolError` is this type), so a failure keeps its words from the workspace
//! up to the agent.

use codeflow_session::Right;

/// What can go wrong in the workspace, as tools and agents see it (one JSON-RPC mapping).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkspaceError {
    /// The caller named something that cannot be: a path outside the project, a position past
    /// the end of a file, overlapping edits.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The caller's token lacks a right the operation needs.
    #[error("this session's token lacks the `{}` right", .0.as_str())]
    Forbidden(Right),
    /// The operation ran and failed; `suggestion` says what to do next, when there is a step.
    #[error("{message}")]
    Failed {
        /// What failed, in words.
        message: String,
        /// What to do next, when there is a step.
        suggestion: Option<String>,
    },
    /// The caller gave up on the operation (a cancelled tool call).
    #[error("the call was cancelled")]
    Cancelled,
}

impl WorkspaceError {
    /// A failure saying `message`.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            suggestion: None,
        }
    }

    /// Adds what to do next (to a `Failed` error; others are returned as they are).
    pub fn with_suggestion(self, suggestion: impl Into<String>) -> Self {
        match self {
            Self::Failed { message, .. } => Self::Failed {
                message,
                suggestion: Some(suggestion.into()),
            },
            other => other,
        }
    }

    /// A language-server failure, in words that say what to do.
    pub fn from_lsp(e: codeflow_lsp_pool::LspError) -> Self {
        use codeflow_lsp_pool::LspError as L;
        let suggestion = match &e {
            L::NotInstalled { .. } => Some(
                "install the language server on the CodeFlow server (scripts/install-language-servers.sh)",
            ),
            L::NoServerForFile { .. } => Some(
                "add a language server for this extension in the server's config ([lsp.servers])",
            ),
            L::Timeout { .. } | L::GaveUp { .. } => {
                Some("retry; if it keeps failing, call restart_server")
            }
            L::CapabilityMissing { .. } => {
                Some("this language server cannot do that; try another tool")
            }
            L::Interrupted { .. } => Some(
                "check whether the command took effect (read the files it changes), then call it again if it did not",
            ),
            _ => None,
        };
        Self::Failed {
            message: e.to_string(),
            suggestion: suggestion.map(str::to_owned),
        }
    }

    /// The text shown to the caller: the message, and the suggestion on its own line.
    pub fn to_text(&self) -> String {
        match self {
            Self::Failed {
                message,
                suggestion: Some(s),
            } => format!("{message}\nSuggestion: {s}"),
            other => other.to_string(),
        }
    }
}
