//! The crate's one error type, [`FileError`], and its wire form, [`RemoteError`].
//!
//! Every variant is a case a caller can act on and carries a stable JSON-RPC error `code`.
//! The file-stream protocol owns the codes `-33000..=-33099`; it also uses the two standard
//! JSON-RPC codes `-32601` (method not found) and `-32602` (invalid params).
//!
//! | code | variant | meaning | `data` |
//! |---|---|---|---|
//! | -32601 | `MethodNotFound` | not a `client/*` method this side serves | — |
//! | -32602 | `InvalidParams` | params do not deserialize | — |
//! | -33001 | `NotFound` | no such file or directory | — |
//! | -33002 | `Conflict` | the file's hash is not the expected one; nothing was written | `actualHash` (null: absent) |
//! | -33003 | `BaseMismatch` | a delta's `baseHash` is not the file's hash; send full content | `actualHash` |
//! | -33004 | `PathRejected` | the path jail refused the path before touching the disk | `reason` |
//! | -33005 | `FileTooLarge` | a file exceeds the per-file size limit | `size`, `limit` |
//! | -33006 | `TooManyFiles` | the project exceeds its file-count limit | `count`, `limit` |
//! | -33007 | `ProjectTooLarge` | the project exceeds its total-bytes limit | `bytes`, `limit` |
//! | -33008 | `NotAFile` | the path is a directory or special file | — |
//! | -33009 | `NotADirectory` | `listDirectory` on something that is not a directory | — |
//! | -33010 | `BadContent` | content could not be decoded (bad base64, edits out of range) | — |
//! | -33011 | `HashMismatch` | content received or produced does not have the announced hash | `expected`, `actual` |
//! | -33012 | `Io` | an operating-system error | — |
//! | -33013 | `Unsupported` | a protocol feature this side does not implement | — |
//! | -33014 | `Unavailable` | the other side could not be reached (transport failure) | — |
//! | -33015 | `SharedProject` | a shared project streams nothing; the operation does not apply | — |
//! | -33016 | `RolledBack` | a multi-file write-back failed and was rolled back | `failedPath`, `cause` |
//! | -33017 | `RollbackIncomplete` | a write-back failed and some files could not be restored | `failedPath`, `cause`, `notRestored` |

use serde_json::{Value, json};

use crate::protocol::ContentHash;

/// Stable numeric error codes of the file-stream protocol (see the module docs).
pub mod codes {
    /// `MethodNotFound`: not a `client/*` method this side serves.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// `InvalidParams`: params do not deserialize.
    pub const INVALID_PARAMS: i64 = -32602;
    /// `NotFound`: no such file or directory.
    pub const NOT_FOUND: i64 = -33001;
    /// `Conflict`: the file's hash is not the expected one; nothing was written.
    pub const CONFLICT: i64 = -33002;
    /// `BaseMismatch`: a delta's `baseHash` is not the file's hash; send full content.
    pub const BASE_MISMATCH: i64 = -33003;
    /// `PathRejected`: the path jail refused the path before touching the disk.
    pub const PATH_REJECTED: i64 = -33004;
    /// `FileTooLarge`: a file exceeds the per-file size limit.
    pub const FILE_TOO_LARGE: i64 = -33005;
    /// `TooManyFiles`: the project exceeds its file-count limit.
    pub const TOO_MANY_FILES: i64 = -33006;
    /// `ProjectTooLarge`: the project exceeds its total-bytes limit.
    pub const PROJECT_TOO_LARGE: i64 = -33007;
    /// `NotAFile`: the path is a directory or special file.
    pub const NOT_A_FILE: i64 = -33008;
    /// `NotADirectory`: `listDirectory` on something that is not a directory.
    pub const NOT_A_DIRECTORY: i64 = -33009;
    /// `BadContent`: content could not be decoded (bad base64, edits out of range).
    pub const BAD_CONTENT: i64 = -33010;
    /// `HashMismatch`: content received or produced does not have the announced hash.
    pub const HASH_MISMATCH: i64 = -33011;
    /// `Io`: an operating-system error.
    pub const IO: i64 = -33012;
    /// `Unsupported`: a protocol feature this side does not implement.
    pub const UNSUPPORTED: i64 = -33013;
    /// `Unavailable`: the other side could not be reached (transport failure).
    pub const UNAVAILABLE: i64 = -33014;
    /// `SharedProject`: a shared project streams nothing; the operation does not apply.
    pub const SHARED_PROJECT: i64 = -33015;
    /// `RolledBack`: a multi-file write-back failed and was rolled back.
    pub const ROLLED_BACK: i64 = -33016;
    /// `RollbackIncomplete`: a write-back failed and some files could not be restored.
    pub const ROLLBACK_INCOMPLETE: i64 = -33017;
}

/// Everything that can go wrong in file streaming, on either side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// Not a `client/*` method this side serves.
    #[error("unknown file-stream method `{0}`")]
    MethodNotFound(String),
    /// Params do not deserialize.
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// No such file or directory.
    #[error("not found: {0}")]
    NotFound(String),
    /// The file's hash is not the expected one; nothing was written.
    #[error("conflict on {path}: the file changed (actual hash {})", actual.as_ref().map_or("<absent>", |h| h.as_str()))]
    Conflict {
        /// The file.
        path: String,
        /// The file's hash now; `None` when it does not exist.
        actual: Option<ContentHash>,
    },
    /// A delta's `baseHash` is not the file's hash; send full content.
    #[error("delta base mismatch on {path}: the file's hash is {}", actual.as_ref().map_or("<absent>", |h| h.as_str()))]
    BaseMismatch {
        /// The file.
        path: String,
        /// The file's hash now; `None` when it does not exist.
        actual: Option<ContentHash>,
    },
    /// The path jail refused the path before touching the disk.
    #[error("path rejected: {reason}")]
    PathRejected {
        /// Why the jail refused it.
        reason: String,
    },
    /// A file exceeds the per-file size limit.
    #[error("{path} is {size} bytes, over the per-file limit of {limit} bytes")]
    FileTooLarge {
        /// The file.
        path: String,
        /// Its size in bytes.
        size: u64,
        /// The per-file limit in bytes (`FILE_SIZE_LIMIT`).
        limit: u64,
    },
    /// The project exceeds its file-count limit.
    #[error("the project has {count} files, over the limit of {limit}")]
    TooManyFiles {
        /// Files in the project.
        count: u64,
        /// The limit (`PROJECT_FILE_LIMIT`).
        limit: u64,
    },
    /// The project exceeds its total-bytes limit.
    #[error("the project holds {bytes} bytes, over the limit of {limit} bytes")]
    ProjectTooLarge {
        /// Bytes in the project.
        bytes: u64,
        /// The limit (`PROJECT_BYTES_LIMIT`).
        limit: u64,
    },
    /// The path is a directory or special file.
    #[error("{0} is not a regular file")]
    NotAFile(String),
    /// `listDirectory` on something that is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(String),
    /// Content could not be decoded (bad base64, edits out of range).
    #[error("bad content: {0}")]
    BadContent(String),
    /// Content received or produced does not have the announced hash.
    #[error("hash mismatch on {path}: expected {expected}, got {actual}")]
    HashMismatch {
        /// The file.
        path: String,
        /// The hash announced.
        expected: ContentHash,
        /// The hash of the content.
        actual: ContentHash,
    },
    /// An operating-system error.
    #[error("i/o error: {0}")]
    Io(String),
    /// A protocol feature this side does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The other side could not be reached (transport failure).
    #[error("the other side is unavailable: {0}")]
    Unavailable(String),
    /// A shared project streams nothing; the operation does not apply.
    #[error("project is shared (served from a server-side path); nothing is streamed")]
    SharedProject,
    /// A multi-file write-back failed and was rolled back.
    #[error("write-back failed on {failed_path} and was rolled back: {cause}")]
    RolledBack {
        /// The file whose write failed.
        failed_path: String,
        /// Why it failed.
        cause: Box<FileError>,
    },
    /// A write-back failed and some files could not be restored.
    #[error(
        "write-back failed on {failed_path} ({cause}) and these files could not be restored: {not_restored:?}"
    )]
    RollbackIncomplete {
        /// The file whose write failed.
        failed_path: String,
        /// Why it failed.
        cause: Box<FileError>,
        /// Files left as the failed write-back made them.
        not_restored: Vec<String>,
    },
}

impl FileError {
    pub(crate) fn rejected(reason: impl Into<String>) -> Self {
        FileError::PathRejected {
            reason: reason.into(),
        }
    }

    pub(crate) fn io(context: &str, err: &std::io::Error) -> Self {
        match err.kind() {
            std::io::ErrorKind::NotFound => FileError::NotFound(context.to_owned()),
            _ => FileError::Io(format!("{context}: {err}")),
        }
    }

    /// The stable JSON-RPC error code (see [`codes`]).
    pub fn code(&self) -> i64 {
        use codes::*;
        match self {
            FileError::MethodNotFound(_) => METHOD_NOT_FOUND,
            FileError::InvalidParams(_) => INVALID_PARAMS,
            FileError::NotFound(_) => NOT_FOUND,
            FileError::Conflict { .. } => CONFLICT,
            FileError::BaseMismatch { .. } => BASE_MISMATCH,
            FileError::PathRejected { .. } => PATH_REJECTED,
            FileError::FileTooLarge { .. } => FILE_TOO_LARGE,
            FileError::TooManyFiles { .. } => TOO_MANY_FILES,
            FileError::ProjectTooLarge { .. } => PROJECT_TOO_LARGE,
            FileError::NotAFile(_) => NOT_A_FILE,
            FileError::NotADirectory(_) => NOT_A_DIRECTORY,
            FileError::BadContent(_) => BAD_CONTENT,
            FileError::HashMismatch { .. } => HASH_MISMATCH,
            FileError::Io(_) => IO,
            FileError::Unsupported(_) => UNSUPPORTED,
            FileError::Unavailable(_) => UNAVAILABLE,
            FileError::SharedProject => SHARED_PROJECT,
            FileError::RolledBack { .. } => ROLLED_BACK,
            FileError::RollbackIncomplete { .. } => ROLLBACK_INCOMPLETE,
        }
    }

    /// A next step for a person, when there is one (sent as `data.suggestion`).
    pub fn suggestion(&self) -> Option<&'static str> {
        Some(match self {
            FileError::Conflict { .. } => {
                "the file changed on the client; re-read it and redo the edit against the new content"
            }
            FileError::BaseMismatch { .. } => "read the whole file instead of applying a delta",
            FileError::PathRejected { .. } => {
                "use a path inside the project root, without `..`, percent-escapes or symlinks leading out"
            }
            FileError::FileTooLarge { .. } => "raise FILE_SIZE_LIMIT or exclude the file",
            FileError::TooManyFiles { .. } | FileError::ProjectTooLarge { .. } => {
                "exclude generated directories (build output, caches) or raise the project limits"
            }
            FileError::Unavailable(_) => {
                "the client relay is disconnected; retry after it reconnects"
            }
            FileError::RolledBack { .. } => "no file was changed; re-read the files and retry",
            FileError::RollbackIncomplete { .. } => {
                "some files hold the new content while others do not; inspect the listed files"
            }
            _ => return None,
        })
    }

    /// Machine-readable details, merged with the suggestion into the JSON-RPC `data` member.
    pub fn data(&self) -> Option<Value> {
        let mut data = match self {
            FileError::Conflict { actual, .. } | FileError::BaseMismatch { actual, .. } => {
                json!({ "actualHash": actual })
            }
            FileError::PathRejected { reason } => json!({ "reason": reason }),
            FileError::FileTooLarge { size, limit, .. } => json!({ "size": size, "limit": limit }),
            FileError::TooManyFiles { count, limit } => json!({ "count": count, "limit": limit }),
            FileError::ProjectTooLarge { bytes, limit } => {
                json!({ "bytes": bytes, "limit": limit })
            }
            FileError::HashMismatch {
                expected, actual, ..
            } => json!({ "expected": expected, "actual": actual }),
            FileError::RolledBack { failed_path, cause } => {
                json!({ "failedPath": failed_path, "cause": RemoteError::from(cause.as_ref()) })
            }
            FileError::RollbackIncomplete {
                failed_path,
                cause,
                not_restored,
            } => json!({
                "failedPath": failed_path,
                "cause": RemoteError::from(cause.as_ref()),
                "notRestored": not_restored,
            }),
            _ => json!({}),
        };
        if let (Some(s), Some(obj)) = (self.suggestion(), data.as_object_mut()) {
            obj.insert("suggestion".into(), Value::from(s));
        }
        match &data {
            Value::Object(m) if m.is_empty() => None,
            _ => Some(data),
        }
    }
}

/// A JSON-RPC error object as it crosses the wire (the one [`codeflow_types::ErrorObject`]);
/// what [`crate::ClientFiles::call`] returns.
pub type RemoteError = codeflow_types::ErrorObject;

/// The error for a request the transport could not deliver, or whose answer it lost.
pub fn unavailable(message: impl Into<String>) -> RemoteError {
    RemoteError::new(codes::UNAVAILABLE, message)
}

impl From<&FileError> for RemoteError {
    fn from(e: &FileError) -> Self {
        RemoteError {
            code: e.code(),
            message: e.to_string(),
            data: e.data(),
        }
    }
}

impl From<FileError> for RemoteError {
    fn from(e: FileError) -> Self {
        RemoteError::from(&e)
    }
}

impl From<RemoteError> for FileError {
    /// Recovers the typed error from its wire form, so that a conflict seen across the
    /// socket still carries the actual hash. `path` fields are not on the wire; the message is
    /// used in their place.
    fn from(e: RemoteError) -> Self {
        let data = e.data.unwrap_or(Value::Null);
        let hash = |k: &str| {
            data.get(k)
                .and_then(Value::as_str)
                .map(|s| ContentHash::from_hex(s.to_owned()))
        };
        let num = |k: &str| data.get(k).and_then(Value::as_u64).unwrap_or(0);
        let msg = e.message;
        match e.code {
            codes::METHOD_NOT_FOUND => FileError::MethodNotFound(msg),
            codes::INVALID_PARAMS => FileError::InvalidParams(msg),
            codes::NOT_FOUND => FileError::NotFound(msg),
            codes::CONFLICT => FileError::Conflict {
                path: msg,
                actual: hash("actualHash"),
            },
            codes::BASE_MISMATCH => FileError::BaseMismatch {
                path: msg,
                actual: hash("actualHash"),
            },
            codes::PATH_REJECTED => FileError::PathRejected { reason: msg },
            codes::FILE_TOO_LARGE => FileError::FileTooLarge {
                path: msg,
                size: num("size"),
                limit: num("limit"),
            },
            codes::TOO_MANY_FILES => FileError::TooManyFiles {
                count: num("count"),
                limit: num("limit"),
            },
            codes::PROJECT_TOO_LARGE => FileError::ProjectTooLarge {
                bytes: num("bytes"),
                limit: num("limit"),
            },
            codes::NOT_A_FILE => FileError::NotAFile(msg),
            codes::NOT_A_DIRECTORY => FileError::NotADirectory(msg),
            codes::BAD_CONTENT => FileError::BadContent(msg),
            codes::HASH_MISMATCH => FileError::HashMismatch {
                path: msg,
                expected: hash("expected").unwrap_or_default(),
                actual: hash("actual").unwrap_or_default(),
            },
            codes::UNSUPPORTED => FileError::Unsupported(msg),
            codes::UNAVAILABLE => FileError::Unavailable(msg),
            codes::SHARED_PROJECT => FileError::SharedProject,
            _ => FileError::Io(format!("remote error {}: {msg}", e.code)),
        }
    }
}
