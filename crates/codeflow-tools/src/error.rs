//! Tool failures: the workspace's error type ([`codeflow_workspace::WorkspaceError`], under the
//! name tools use). Each becomes an MCP tool result with `isError: true` and a message a model
//! can act on; protocol-level errors are kept for requests that cannot be routed at all.

/// A tool's failure (see the module docs).
pub type ToolError = codeflow_workspace::WorkspaceError;

/// Reads a tool's arguments into its typed parameters, with a message that names the problem.
pub fn parse_args<T: serde::de::DeserializeOwned>(args: serde_json::Value) -> Result<T, ToolError> {
    serde_json::from_value(args).map_err(|e| ToolError::InvalidArguments(e.to_string()))
}
