//! The file-stream wire protocol: method names and a serde type for every message.
//!
//! Field names are camelCase and keep the ancestor's (`path`, `content`, `mtime`,
//! `changeType`). `client/*` requests go server → relay and carry the client's absolute paths;
//! `server/*` messages go relay → server. Errors are JSON-RPC errors whose codes are listed in
//! [`crate::error`]. Times (`mtime`) are milliseconds since the Unix epoch.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::FileError;

/// `client/readFile`: [`ReadFileParams`] → [`ReadFileResult`].
pub const READ_FILE: &str = "client/readFile";
/// `client/readFiles`: [`ReadFilesParams`] → [`ReadFilesResult`]: several files in one round
/// trip (a sync's fetches). A relay without it answers -32601 and the server reads singly.
pub const READ_FILES: &str = "client/readFiles";
/// `client/writeFile`: [`WriteFileParams`] → [`WriteResult`].
pub const WRITE_FILE: &str = "client/writeFile";
/// `client/writeDelta`: [`WriteDeltaParams`] → [`WriteResult`].
pub const WRITE_DELTA: &str = "client/writeDelta";
/// `client/deleteFile`: [`DeleteFileParams`] → `{}`.
pub const DELETE_FILE: &str = "client/deleteFile";
/// `client/renameFile`: [`RenameFileParams`] → `{}`.
pub const RENAME_FILE: &str = "client/renameFile";
/// `client/fileExists`: [`PathParams`] → [`FileExistsResult`].
pub const FILE_EXISTS: &str = "client/fileExists";
/// `client/getFileStats`: [`PathParams`] → [`FileStats`].
pub const GET_FILE_STATS: &str = "client/getFileStats";
/// `client/listDirectory`: [`PathParams`] → [`ListDirectoryResult`].
pub const LIST_DIRECTORY: &str = "client/listDirectory";
/// `server/fileChanged` notification (relay → server): [`FileChanged`].
pub const FILE_CHANGED: &str = "server/fileChanged";
/// `server/syncManifest` request (relay → server): [`SyncManifestParams`] → [`SyncManifestResult`].
pub const SYNC_MANIFEST: &str = "server/syncManifest";

/// Every `client/*` method a [`crate::FileServer`] answers.
pub const CLIENT_METHODS: &[&str] = &[
    READ_FILE,
    READ_FILES,
    WRITE_FILE,
    WRITE_DELTA,
    DELETE_FILE,
    RENAME_FILE,
    FILE_EXISTS,
    GET_FILE_STATS,
    LIST_DIRECTORY,
];

/// Inputs from this size are hashed on several threads (blake3's own split; below it the
/// threads cost more than they save).
const PARALLEL_HASH_MIN: usize = 1024 * 1024;

/// A blake3 hash of a file's bytes, as 64 lowercase hex digits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentHash(String);

impl ContentHash {
    /// Hashes `bytes` (large inputs on several cores: a 10 MB file is most of the time a
    /// one-line edit of it takes on each side).
    pub fn of(bytes: &[u8]) -> Self {
        let hash = if bytes.len() >= PARALLEL_HASH_MIN {
            blake3::Hasher::new().update_rayon(bytes).finalize()
        } else {
            blake3::hash(bytes)
        };
        ContentHash(hash.to_hex().to_string())
    }

    /// Hashes `bytes` on this thread only, whatever their size: for callers that already hash
    /// many files on several threads at once (the start-up scan's readers), where handing a
    /// large file to the thread pool only adds its threads spinning beside them.
    pub fn of_on_this_thread(bytes: &[u8]) -> Self {
        ContentHash(blake3::hash(bytes).to_hex().to_string())
    }

    /// Hashes content given in pieces: the hash of the pieces joined. On this thread only
    /// (its callers store many files at once; a piece is too small to share out).
    pub fn of_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut hasher = blake3::Hasher::new();
        for part in parts {
            hasher.update(part);
        }
        ContentHash(hasher.finalize().to_hex().to_string())
    }

    /// Wraps a hash received from elsewhere; compared as given, case-insensitively.
    pub fn from_hex(hex: String) -> Self {
        ContentHash(hex.to_ascii_lowercase())
    }

    /// The hash as 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How `content` is encoded on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The bytes are valid UTF-8 and sent as they are.
    #[default]
    Utf8,
    /// Binary (or forced) content, standard base64 with padding.
    Base64,
}

/// Encodes bytes for the wire: UTF-8 text as is, anything else as base64.
pub fn encode_content(bytes: &[u8]) -> (String, Encoding) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), Encoding::Utf8),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            Encoding::Base64,
        ),
    }
}

/// Decodes wire content back to bytes.
pub fn decode_content(content: &str, encoding: Encoding) -> Result<Vec<u8>, FileError> {
    match encoding {
        Encoding::Utf8 => Ok(content.as_bytes().to_vec()),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|e| FileError::BadContent(format!("invalid base64: {e}"))),
    }
}

/// Params of the requests that take only a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathParams {
    /// The client's absolute path.
    pub path: String,
}

/// Params of `client/readFile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFileParams {
    /// The client's absolute path.
    pub path: String,
    /// Force an encoding; by default UTF-8 when the bytes are valid UTF-8, else base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
}

/// Result of `client/readFile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFileResult {
    /// The content, as `encoding` says.
    pub content: String,
    /// `utf8` or `base64`.
    pub encoding: Encoding,
    /// Modification time, ms since the Unix epoch.
    pub mtime: u64,
    /// Size in bytes.
    pub size: u64,
    /// blake3 hash of the bytes.
    pub hash: ContentHash,
}

/// Params of `client/readFiles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFilesParams {
    /// The client's absolute paths, answered in this order.
    pub paths: Vec<String>,
}

/// The files of a `client/readFiles`, in the order asked. The relay may stop early (it
/// bounds the bytes of one answer): paths missing from `files` were not read and are asked
/// for again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadFilesResult {
    /// The files read, in the order asked.
    pub files: Vec<ReadFilesEntry>,
}

/// One file of a `client/readFiles`: exactly one of `file` and `error` is present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadFilesEntry {
    /// The path asked for.
    pub path: String,
    /// The file, when it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<ReadFileResult>,
    /// Why it was not, otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::error::RemoteError>,
}

/// Params of `client/writeFile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteFileParams {
    /// The client's absolute path.
    pub path: String,
    /// The new content, as `encoding` says.
    pub content: String,
    /// `utf8` or `base64`.
    #[serde(default)]
    pub encoding: Encoding,
    /// The hash the file must have now; `null` (or absent) means the file must not exist.
    /// There is no unconditional overwrite.
    #[serde(default)]
    pub expected_hash: Option<ContentHash>,
}

/// One line-based edit of a text: replace `delete` lines starting at line `line` (0-based, in
/// the base text) with `insert` (which carries its own line endings). Edits in one list are
/// sorted by `line` and do not overlap; all line numbers refer to the base text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineEdit {
    /// First line replaced (0-based, in the base text).
    pub line: u32,
    /// How many lines are replaced.
    pub delete: u32,
    /// The replacement text, with its line endings.
    #[serde(default)]
    pub insert: String,
}

/// Params of `client/writeDelta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteDeltaParams {
    /// The client's absolute path.
    pub path: String,
    /// The hash the file must have now (the base of the edits).
    pub base_hash: ContentHash,
    /// The line edits against the base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edits: Option<Vec<LineEdit>>,
    /// A unified diff; reserved, answered with `Unsupported` (send `edits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// The hash the result must have; otherwise nothing is written.
    pub result_hash: ContentHash,
}

/// Result of `client/writeFile` and `client/writeDelta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteResult {
    /// The file's new hash.
    pub hash: ContentHash,
    /// True when the write was applied as a delta (`writeDelta`), false for full content.
    #[serde(default)]
    pub used_delta: bool,
}

/// Params of `client/deleteFile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteFileParams {
    /// The client's absolute path.
    pub path: String,
    /// When given, the file is deleted only if it still has this hash.
    #[serde(default)]
    pub expected_hash: Option<ContentHash>,
}

/// Params of `client/renameFile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenameFileParams {
    /// The client's absolute path of the file.
    pub from: String,
    /// Its new absolute path.
    pub to: String,
    /// When given, `from` is renamed only if it still has this hash. `to` must not exist.
    #[serde(default)]
    pub expected_hash: Option<ContentHash>,
}

/// Result of `client/fileExists`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileExistsResult {
    /// Whether anything exists at the path.
    pub exists: bool,
    /// Whether it is a regular file.
    pub is_file: bool,
    /// Whether it is a directory.
    pub is_directory: bool,
}

/// Result of `client/getFileStats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileStats {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ms since the Unix epoch.
    pub mtime: u64,
    /// Whether it is a regular file.
    pub is_file: bool,
    /// Whether it is a directory.
    pub is_directory: bool,
    /// Whether the path is a symbolic link.
    pub is_symlink: bool,
    /// Unix permission bits, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// The content hash, for regular files within the size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<ContentHash>,
}

/// One entry of `client/listDirectory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirEntry {
    /// The entry's name (not a path).
    pub name: String,
    /// Whether it is a regular file.
    pub is_file: bool,
    /// Whether it is a directory.
    pub is_directory: bool,
    /// Whether it is a symbolic link.
    pub is_symlink: bool,
    /// Size in bytes.
    pub size: u64,
}

/// Result of `client/listDirectory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListDirectoryResult {
    /// The directory's entries.
    pub entries: Vec<DirEntry>,
}

/// What happened to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeType {
    /// The file is new.
    Created,
    /// The file's content changed.
    Changed,
    /// The file is gone.
    Deleted,
}

/// `server/fileChanged`: a file changed on the client.
///
/// For `created`/`changed`, exactly one of these forms is used:
/// - `content` (+ `encoding`): the whole new content;
/// - `baseHash` + `edits`: a line delta against the content the relay last sent with hash
///   `baseHash` (the server refuses it if its mirror holds something else, and reads the file);
/// - neither: only `hash` (large files); the server reads the file with `client/readFile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChanged {
    /// The client's absolute path.
    pub path: String,
    /// What happened.
    pub change_type: ChangeType,
    /// The new content's hash (`created`/`changed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<ContentHash>,
    /// The new size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The new modification time, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<u64>,
    /// The whole new content, as `encoding` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The encoding of `content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
    /// The content the `edits` apply to (the last one sent for this path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_hash: Option<ContentHash>,
    /// A line delta against `base_hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edits: Option<Vec<LineEdit>>,
}

impl FileChanged {
    /// A `deleted` event for `path`.
    pub fn deleted(path: String) -> Self {
        FileChanged {
            path,
            change_type: ChangeType::Deleted,
            hash: None,
            size: None,
            mtime: None,
            content: None,
            encoding: None,
            base_hash: None,
            edits: None,
        }
    }
}

/// One file of a project manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Relative to the project root, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ms since the Unix epoch.
    pub mtime: u64,
    /// blake3 hash of the bytes.
    pub hash: ContentHash,
}

/// `server/syncManifest` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncManifestParams {
    /// Every file of the project.
    pub files: Vec<ManifestEntry>,
    /// Only compare: answer what a sync would fetch and remove (or the conflict it would
    /// meet), changing nothing (`codeflow-client check`).
    #[serde(default, rename = "dryRun", skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// The relay can send what the mirror lacks over one upload on `/ws/file-stream/…` when
    /// the server asks with `client/uploadFiles` (see docs/protocol.md, "Initial sync over a
    /// transfer"). Absent (an older relay): the server fetches with `client/readFiles`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transfers: bool,
    /// With `transfers`: when the sync needs every file of this manifest, the server may ask
    /// for them as `client/uploadFiles {all: {files, bytes}}` instead of listing each file
    /// again (the relay kept this manifest). Absent (an older relay): the list is sent.
    #[serde(
        default,
        rename = "uploadAll",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub upload_all: bool,
}

/// `server/syncManifest` result: what the server will fetch and what it drops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncManifestResult {
    /// Relative paths the mirror lacks or holds stale.
    pub needed: Vec<String>,
    /// Relative paths in the mirror that are not in the manifest.
    pub removed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_changed_keeps_wire_names() {
        let ev = FileChanged {
            base_hash: Some(ContentHash::of(b"a")),
            edits: Some(vec![LineEdit {
                line: 1,
                delete: 0,
                insert: "x\n".into(),
            }]),
            ..FileChanged::deleted("/app/a.ts".into())
        };
        let v = serde_json::to_value(&ev).unwrap_or_default();
        assert_eq!(v["changeType"], "deleted");
        assert!(v.get("baseHash").is_some());
        assert!(v.get("content").is_none());
    }

    #[test]
    fn content_round_trips() {
        for bytes in [&b"hello\n"[..], &[0u8, 159, 146, 150][..]] {
            let (c, e) = encode_content(bytes);
            assert_eq!(decode_content(&c, e).ok().as_deref(), Some(bytes));
        }
    }
}
