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
    /// What kind of failure (decides the JSON-RPC code).
    pub kind: ErrorKind,
    /// What went wrong, in words for the client.
    pub message: String,
    /// What to do about it, when something can be done.
    pub suggestion: Option<String>,
    /// Structured details (e.g. the running run's id).
    pub data: Option<serde_json::Value>,
}

impl ExecError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            suggestion: None,
            data: None,
        }
    }

    /// Adds what the client can do about it.
    pub fn suggest(mut self, suggestion: impl Into<String>) -> Self {
        self.suggestion = Some(suggestion.into());
        self
    }

    /// Adds structured data for programs (e.g. the running run's id).
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }

    /// Bad params: the client's request cannot be served as sent.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParams, message)
    }

    /// A failure on the server's side (disk, process), not the client's.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The project does not exist (or the caller may not know it does).
    pub fn no_project(id: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            format!("project `{id}` does not exist"),
        )
        .suggest("create it with projects/create, or list projects with projects/list")
    }
}

/// The executor's results.
pub type Result<T, E = ExecError> = std::result::Result<T, E>;
