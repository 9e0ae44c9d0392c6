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
        codeflow_workspace::WorkspaceError::from_lsp(e).into()
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

impl From<codeflow_workspace::WorkspaceError> for ToolError {
    fn from(e: codeflow_workspace::WorkspaceError) -> Self {
        use codeflow_workspace::WorkspaceError as W;
        match e {
            W::InvalidArguments(m) => Self::InvalidArguments(m),
            W::Forbidden(right) => Self::Forbidden(right),
            W::Failed {
                message,
                suggestion,
            } => Self::Failed {
                message,
                suggestion,
            },
        }
    }
}

/// Reads a tool's arguments into its typed parameters, with a message that names the problem.
pub fn parse_args<T: serde::de::DeserializeOwned>(args: serde_json::Value) -> Result<T, ToolError> {
    serde_json::from_value(args).map_err(|e| ToolError::InvalidArguments(e.to_string()))
}
