//! What can go wrong, with the next step for whoever asked.

/// The family of an error; the server maps it to a JSON-RPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request's params were wrong.
    InvalidParams,
    /// The project or run does not exist.
    NotFound,
    /// The project is busy, exists already, or the run has ended.
    Conflict,
    /// A cap was reached (`max_projects`).
    Limit,
    /// The caller's token does not allow it.
    Forbidden,
    /// The server failed (disk, process start).
    Internal,
}

/// An executor error: a kind, a message and a suggestion.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ExecError {
    pub kind: ErrorKind,
    pub message: String,
    pub suggestion: Option<String>,
    /// Structured details (e.g. the running run's id).
    pub data: Option<serde_json::Value>,
}

impl ExecError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            suggestion: None,
            data: None,
        }
    }

    pub fn suggest(mut self, suggestion: impl Into<String>) -> Self {
        self.suggestion = Some(suggestion.into());
        self
    }

    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParams, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn no_project(id: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            format!("project `{id}` does not exist"),
        )
        .suggest("create it with projects/create, or list projects with projects/list")
    }
}

pub type Result<T, E = ExecError> = std::result::Result<T, E>;
