//! What can go wrong with a terminal, in words a client can act on.

/// A terminal operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    /// No terminal of that id (never made, closed, or its grace ran out).
    #[error("no terminal `{0}`: it was closed, its grace ran out, or it never existed")]
    NotFound(String),
    /// A limit on terminals is reached.
    #[error("{what}: {limit} terminals are open already")]
    Limit {
        /// Which limit (`in this project`, `on this server`, `viewing this terminal`).
        what: &'static str,
        /// Its value.
        limit: usize,
    },
    /// The PTY or the shell could not be started.
    #[error("cannot start the terminal: {0}")]
    Spawn(String),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
}
