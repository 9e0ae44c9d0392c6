//! Tool failures. Each becomes an MCP tool result with `isError: true` and a message a model can
//! act on; protocol-level errors are kept for requests that cannot be routed at all.

use codeflow_session::Right;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolError {
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    #[error("this session's token lacks the `{}` right", .0.as_str())]
    Forbidden(Right),
    #[error("{message}")]
    Failed {
        message: String,
        suggestion: Option<String>,
    },
    #[error("the call was cancelled")]
    Cancelled,
}

impl ToolError {
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            suggestion: None,
        }
    }

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

    /// The text shown to the model.
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

/// Reads a tool's arguments into its typed parameters, with a message that names the problem.
pub fn parse_args<T: serde::de::DeserializeOwned>(args: serde_json::Value) -> Result<T, ToolError> {
    serde_json::from_value(args).map_err(|e| ToolError::InvalidArguments(e.to_string()))
}
