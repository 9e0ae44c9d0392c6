//! The framed format of bulk transfers on `/ws/file-stream/{operation_id}` (binary frames).
//!
//! - `0x01` + JSON [`FileHeader`]: a file begins (`index` counts the transfer's files from 0;
//!   `size` bytes of content follow, in order, in chunk frames; an empty file has none).
//! - `0x02` + raw bytes: the next content chunk of the current file.
//!
//! Text frames carry JSON control messages (progress, acknowledgements, the summary); they are
//! the endpoint's business, not this module's.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// `client/uploadFiles` (server → relay): send these files over an upload transfer that the
/// server began for a sync — [`UploadFilesParams`] → the transfer's summary. The server asks
/// only a relay whose `server/syncManifest` said `"transfers": true`.
pub const UPLOAD_FILES: &str = "client/uploadFiles";

/// `client/uploadFiles` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadFilesParams {
    /// The upload operation (single use, bound to this session's project).
    pub operation_id: String,
    /// Where to connect, relative to the server's `/ws` URL: `/ws/file-stream/{operationId}`.
    pub url: String,
    /// The files to send, in this order; `index` in each header is the position here.
    pub files: Vec<UploadEntry>,
}

/// One file the server wants, as the relay's manifest described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadEntry {
    /// Its path relative to the project root.
    pub path: String,
    /// Its size by the manifest.
    pub size: u64,
    /// Its hash by the manifest: the sender puts it in the header without hashing again; the
    /// server checks the content against it and refuses a file changed since.
    pub hash: String,
}

/// A file's header frame tag.
pub const HEADER: u8 = 1;
/// A content chunk frame tag.
pub const CHUNK: u8 = 2;
/// The largest content chunk a sender puts in one frame.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// What comes before a file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileHeader {
    /// The file's position in the transfer (from 0).
    pub index: u64,
    /// Its path relative to the project root (`/`-separated).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its Unix permission bits (`0o644`…).
    pub mode: u32,
    /// The blake3 hex hash of its content.
    pub hash: String,
}

/// One binary frame, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A file begins.
    Header(FileHeader),
    /// Content of the current file.
    Chunk(Bytes),
}

/// A header frame.
pub fn header_frame(header: &FileHeader) -> Bytes {
    let mut out = vec![HEADER];
    // A struct of strings and numbers always serializes.
    out.extend(serde_json::to_vec(header).unwrap_or_default());
    out.into()
}

/// A chunk frame.
pub fn chunk_frame(content: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(content.len() + 1);
    out.push(CHUNK);
    out.extend_from_slice(content);
    out.into()
}

/// Reads a binary frame.
pub fn parse(frame: &Bytes) -> Result<Frame, String> {
    match frame.first() {
        Some(&HEADER) => serde_json::from_slice(&frame[1..])
            .map(Frame::Header)
            .map_err(|e| format!("bad file header: {e}")),
        Some(&CHUNK) => Ok(Frame::Chunk(frame.slice(1..))),
        Some(other) => Err(format!("unknown frame tag {other}")),
        None => Err("empty frame".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let h = FileHeader {
            index: 3,
            path: "é/日本.txt".into(),
            size: 2,
            mode: 0o644,
            hash: "ab".into(),
        };
        assert_eq!(parse(&header_frame(&h)), Ok(Frame::Header(h)));
        assert_eq!(
            parse(&chunk_frame(b"\x00\xff")),
            Ok(Frame::Chunk(Bytes::from_static(b"\x00\xff")))
        );
        assert!(parse(&Bytes::new()).is_err());
        assert!(parse(&Bytes::from_static(b"\x07x")).is_err());
        assert!(parse(&Bytes::from_static(b"\x01{")).is_err());
    }
}
