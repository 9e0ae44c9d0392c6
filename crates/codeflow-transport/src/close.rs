//! WebSocket close codes CodeFlow sends. The 4000+ codes are CodeFlow's own; `docs/protocol.md`
//! lists them for client authors.

/// The conversation ended normally (e.g. the relay's stdin closed).
pub const NORMAL: u16 = 1000;
/// The server is shutting down.
pub const GOING_AWAY: u16 = 1001;
/// Authentication failed, or the server is at capacity.
pub const POLICY: u16 = 1008;
/// A message exceeded the size limit.
pub const TOO_BIG: u16 = 1009;
/// The server hit an internal error.
pub const SERVER_ERROR: u16 = 1011;
/// No successful `initialize` in time, or a request was sent before it.
pub const NOT_INITIALIZED: u16 = 4000;
/// The peer stopped answering pings.
pub const HEARTBEAT_TIMEOUT: u16 = 4001;
/// The peer did not read its messages and its outbound queue filled up.
pub const SLOW_READER: u16 = 4002;
/// Another socket resumed this session.
pub const SESSION_REPLACED: u16 = 4003;
/// The session ended (expired, or closed by the server).
pub const SESSION_CLOSED: u16 = 4004;
/// The session's token expired (and was not replaced with `auth/refresh` in time).
pub const TOKEN_EXPIRED: u16 = 4005;
