//! The framed format of bulk transfers on `/ws/file-stream/{operation_id}` (binary frames).
//!
//! - `0x01` + JSON [`FileHeader`]: a file begins (`index` counts the transfer's files from 0;
//!   `size` bytes of content follow, in order, in chunk frames; an empty file has none).
//! - `0x02` + raw bytes: the next content chunk of the current file.
//! - `0x03` + one or more whole files, each its header's length (4 bytes, big-endian), its
//!   JSON [`FileHeader`], then exactly `size` bytes of content: small files in one frame
//!   ([`WholeFrames`] packs them up to [`CHUNK_BYTES`]), instead of a header and a chunk
//!   message each. Sent only to a receiver that said it takes them
//!   ([`SyncBeginResult::whole_frames`], [`UploadFilesParams::whole_frames`]).
//!
//! Text frames carry JSON control messages (progress, acknowledgements, the summary); they are
//! the endpoint's business, not this module's.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::Chunks;

/// `client/uploadFiles` (server → relay): send these files over an upload transfer that the
/// server began for a sync — [`UploadFilesParams`] → the transfer's summary. The server asks
/// only a relay whose `server/syncManifest` said `"transfers": true`.
pub const UPLOAD_FILES: &str = "client/uploadFiles";

/// `server/syncBegin` (relay → server, request): the first sync of a session over a transfer
/// that starts before the relay's manifest exists — the relay sends files as its start-up scan
/// reads them, then `server/syncManifest` with `streamed` set to the operation id (see
/// docs/protocol.md, "Initial sync over a transfer"). An older server answers -32601 and the
/// relay sends its manifest as before.
pub const SYNC_BEGIN: &str = "server/syncBegin";

/// `server/syncUploadOver` (relay → server, notification `{operationId}`): the upload of a
/// begun sync is over — finished, or given up by the relay. Sent only when the relay sent its
/// manifest while the upload still ran (`"uploadRunning": true` in the manifest's params,
/// offered by [`SyncBeginResult::manifest_while_uploading`]): the server parses that manifest
/// at once and plans the sync with it when this arrives.
pub const SYNC_UPLOAD_OVER: &str = "server/syncUploadOver";

/// `server/syncBegin` params.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncBeginParams {
    /// The relay can send files over an upload transfer (always true when sent).
    #[serde(default)]
    pub transfers: bool,
    /// How many files the relay's walk found (for progress; the manifest is what counts).
    #[serde(default)]
    pub files: u64,
    /// Their bytes by the walk.
    #[serde(default)]
    pub bytes: u64,
}

/// `server/syncBegin` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncBeginResult {
    /// Whether the server takes streamed files now; when false the relay just sends its
    /// manifest (the other fields are empty).
    pub transfers: bool,
    /// The upload operation the files go to.
    #[serde(default)]
    pub operation_id: String,
    /// Where to connect, relative to the server's `/ws` URL: `/ws/file-stream/{operationId}`.
    #[serde(default)]
    pub url: String,
    /// What the mirror holds for this project: relative path → hash (empty for an initial
    /// sync). The relay sends only files whose hash differs.
    #[serde(default)]
    pub have: std::collections::BTreeMap<String, String>,
    /// The server takes the manifest while the upload still runs (`"uploadRunning": true`)
    /// and waits for [`SYNC_UPLOAD_OVER`]; an older server leaves this out, and the relay
    /// then sends its manifest after the upload.
    #[serde(default)]
    pub manifest_while_uploading: bool,
    /// The server takes a file in one frame (`0x03`, [`whole_frame`]); an older server
    /// leaves this out, and the relay then sends a header frame and chunk frames.
    #[serde(default)]
    pub whole_frames: bool,
}

/// `client/uploadFiles` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadFilesParams {
    /// The upload operation (single use, bound to this session's project).
    pub operation_id: String,
    /// Where to connect, relative to the server's `/ws` URL: `/ws/file-stream/{operationId}`.
    pub url: String,
    /// The files to send, in this order; `index` in each header is the position here.
    /// Empty when `all` is given.
    #[serde(default)]
    pub files: Vec<UploadEntry>,
    /// Instead of `files` (only to a relay whose manifest said `uploadAll`): every file of
    /// that manifest, in its path order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<UploadAll>,
    /// The server takes a file in one frame (`0x03`, [`whole_frame`]).
    #[serde(default)]
    pub whole_frames: bool,
}

/// `client/uploadFiles`'s `all`: every file of the manifest the relay sent with `uploadAll`;
/// the counts let the relay check it kept the same manifest (it refuses the request if not,
/// and the server then reads the files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadAll {
    /// How many files that manifest has.
    pub files: u64,
    /// Their bytes together.
    pub bytes: u64,
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
/// A file-in-one-frame tag.
pub const WHOLE: u8 = 3;
/// The largest content chunk a sender puts in one frame (and the largest file sent whole).
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
    /// Whole files (at least one): each header with all of its content.
    Whole(Vec<(FileHeader, Bytes)>),
}

/// A header frame.
pub fn header_frame(header: &FileHeader) -> Bytes {
    let mut out = vec![HEADER];
    // A struct of strings and numbers always serializes.
    out.extend(serde_json::to_vec(header).unwrap_or_default());
    out.into()
}

/// One file in one `0x03` frame: its header and its whole `content`.
pub fn whole_frame(header: &FileHeader, content: &[u8]) -> Bytes {
    let mut frames = WholeFrames::default();
    frames.push(header, content);
    frames.take().unwrap_or_default()
}

/// Packs whole files into `0x03` frames of up to [`CHUNK_BYTES`]: a sender pushes each small
/// file and sends the frames it gets back, then what [`WholeFrames::take`] gives when it has no
/// file ready (or before a file it sends as a header and chunks).
#[derive(Debug, Default)]
pub struct WholeFrames {
    frame: Vec<u8>,
}

impl WholeFrames {
    /// Adds a file; returns the frame of the files before it when this one would take that
    /// frame past [`CHUNK_BYTES`] (a file alone is never refused).
    pub fn push(&mut self, header: &FileHeader, content: &[u8]) -> Option<Bytes> {
        // A struct of strings and numbers always serializes.
        let json = serde_json::to_vec(header).unwrap_or_default();
        let record = 4 + json.len() + content.len();
        let full = (!self.frame.is_empty() && self.frame.len() + record > CHUNK_BYTES)
            .then(|| self.take())
            .flatten();
        if self.frame.is_empty() {
            self.frame.reserve(1 + record);
            self.frame.push(WHOLE);
        }
        self.frame
            .extend_from_slice(&u32::try_from(json.len()).unwrap_or(u32::MAX).to_be_bytes());
        self.frame.extend_from_slice(&json);
        self.frame.extend_from_slice(content);
        full
    }

    /// The frame of the files pushed since the last one, if any.
    pub fn take(&mut self) -> Option<Bytes> {
        (!self.frame.is_empty()).then(|| Bytes::from(std::mem::take(&mut self.frame)))
    }
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
        Some(&WHOLE) => {
            let mut files = Vec::new();
            let mut at = 1;
            while at < frame.len() {
                let len = frame
                    .get(at..at + 4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
                    .ok_or("a whole-file frame cut in a header's length")?;
                let json = frame
                    .get(at + 4..)
                    .and_then(|rest| rest.get(..len))
                    .ok_or("a whole-file frame shorter than its header's length")?;
                let header: FileHeader =
                    serde_json::from_slice(json).map_err(|e| format!("bad file header: {e}"))?;
                let from = at + 4 + len;
                let to = usize::try_from(header.size)
                    .ok()
                    .and_then(|size| from.checked_add(size))
                    .filter(|to| *to <= frame.len())
                    .ok_or_else(|| {
                        format!(
                            "`{}` came whole with fewer bytes than its header's {}",
                            header.path, header.size
                        )
                    })?;
                files.push((header, frame.slice(from..to)));
                at = to;
            }
            if files.is_empty() {
                return Err("a whole-file frame without a file".into());
            }
            Ok(Frame::Whole(files))
        }
        Some(other) => Err(format!("unknown frame tag {other}")),
        None => Err("empty frame".into()),
    }
}

/// Whether a text frame is the sender's `{"type":"end"}`.
pub fn is_end(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v["type"] == "end")
}

/// A file being received, put together from its frames by an [`Assembler`].
#[derive(Debug)]
pub struct Incoming {
    /// Its header.
    pub header: FileHeader,
    /// Its content (kept only for a file that will be stored): the chunks' frames as they
    /// came, not a copy.
    pub content: Chunks,
    /// Content bytes received so far (kept or not).
    received: u64,
    /// Why it will not be stored, with the file error code (its content is read and dropped).
    pub refused: Option<(i64, String)>,
}

/// One WebSocket message as an upload's receiver sees it (the endpoint maps its socket's
/// message type onto this).
#[derive(Debug, Clone, Copy)]
pub enum Received<'a> {
    /// A binary frame: a header or a content chunk.
    Binary(&'a Bytes),
    /// A text frame: the sender's `end`, or a control message the receiver ignores.
    Text(&'a str),
    /// The sender closed the connection (or it broke).
    Close,
    /// Anything else (ping, pong): ignored.
    Other,
}

/// What a receiver does after one message ([`Assembler::take`]).
#[derive(Debug)]
pub enum Step {
    /// Files are complete (at least one, in the order sent): store each (or report its
    /// refusal).
    Files(Vec<Incoming>),
    /// Nothing complete yet: read the next message.
    More,
    /// The upload is over: `Ok` at the sender's `end`; `Err(None)` when the connection closed
    /// early; `Err(Some((close code, reason)))` for a framing violation (the socket closes with
    /// that code, [`POLICY_VIOLATION`]).
    Over(Result<(), Option<(u16, String)>>),
}

/// The close code of a framing violation (RFC 6455 "policy violation").
pub const POLICY_VIOLATION: u16 = 1008;

/// Puts a receiver's binary frames together into whole files, enforcing the framing: a
/// header only after the last file's content ended, content only after a header and never
/// beyond its `size`. A violation is an `Err` with the reason (the socket closes with 1008).
#[derive(Debug, Default)]
pub struct Assembler {
    current: Option<Incoming>,
}

impl Assembler {
    /// Takes one binary frame; `check` says why a file announced by a header will not be
    /// stored (its content is then counted, not kept). Returns the files it completed, in
    /// order (none, one, or a whole-file frame's several).
    pub fn frame(
        &mut self,
        frame: &Bytes,
        mut check: impl FnMut(&FileHeader) -> Option<(i64, String)>,
    ) -> Result<Vec<Incoming>, String> {
        match parse(frame)? {
            Frame::Header(header) => {
                if self.current.is_some() {
                    return Err("a file header before the last file's content ended".into());
                }
                let refused = check(&header);
                self.current = Some(Incoming {
                    header,
                    content: Chunks::default(),
                    received: 0,
                    refused,
                });
            }
            Frame::Whole(files) => {
                if self.current.is_some() {
                    return Err("a whole file before the last file's content ended".into());
                }
                return Ok(files
                    .into_iter()
                    .map(|(header, content)| {
                        let refused = check(&header);
                        let mut kept = Chunks::default();
                        // A refused file's content is counted, not kept.
                        if refused.is_none() {
                            kept.push(content);
                        }
                        Incoming {
                            received: header.size,
                            header,
                            content: kept,
                            refused,
                        }
                    })
                    .collect());
            }
            Frame::Chunk(chunk) => {
                let Some(file) = self.current.as_mut() else {
                    return Err("content before a file header".into());
                };
                if file.received + chunk.len() as u64 > file.header.size {
                    return Err(format!(
                        "more content than the {} bytes `{}` announced",
                        file.header.size, file.header.path
                    ));
                }
                file.received += chunk.len() as u64;
                // A refused file's content is counted, not kept.
                if file.refused.is_none() {
                    file.content.push(chunk);
                }
            }
        }
        Ok(self
            .current
            .take_if(|f| f.received == f.header.size)
            .into_iter()
            .collect())
    }

    /// Takes one message of an upload's connection: binary frames go to [`Assembler::frame`]
    /// (with `check`), the sender's `end` to [`Assembler::end`], a close ends the upload early;
    /// anything else is ignored.
    pub fn take(
        &mut self,
        message: Received<'_>,
        check: impl FnMut(&FileHeader) -> Option<(i64, String)>,
    ) -> Step {
        let violation = |e: String| Step::Over(Err(Some((POLICY_VIOLATION, e))));
        match message {
            Received::Binary(frame) => match self.frame(frame, check) {
                Ok(files) if files.is_empty() => Step::More,
                Ok(files) => Step::Files(files),
                Err(e) => violation(e),
            },
            Received::Text(text) if is_end(text) => match self.end() {
                Ok(()) => Step::Over(Ok(())),
                Err(e) => violation(e),
            },
            Received::Close => Step::Over(Err(None)),
            Received::Text(_) | Received::Other => Step::More,
        }
    }

    /// The sender's `end`: refused in the middle of a file.
    pub fn end(&self) -> Result<(), String> {
        match self.current {
            Some(_) => Err("`end` before the last file's content ended".into()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header for tests: `path`, `size`, mode 0o644, hash "h".
    fn file_header(index: u64, path: String, size: u64) -> FileHeader {
        FileHeader {
            index,
            path,
            size,
            mode: 0o644,
            hash: "h".into(),
        }
    }

    /// [`Assembler::frame`] for a frame that completes at most one file.
    fn single(
        a: &mut Assembler,
        frame: &Bytes,
        check: impl FnMut(&FileHeader) -> Option<(i64, String)>,
    ) -> Result<Option<Incoming>, String> {
        let mut files = a.frame(frame, check)?;
        assert!(files.len() <= 1, "{files:?}");
        Ok(files.pop())
    }

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

    #[test]
    fn the_assembler_puts_files_together_and_enforces_the_framing() {
        let header = |index: u64, size: u64| file_header(index, format!("f{index}"), size);
        let mut a = Assembler::default();
        let empty = single(&mut a, &header_frame(&header(0, 0)), |_| None).unwrap();
        assert_eq!(
            empty.map(|f| f.content.len()),
            Some(0),
            "an empty file is whole at once"
        );
        assert_eq!(
            single(&mut a, &header_frame(&header(1, 3)), |_| None)
                .unwrap()
                .map(|f| f.content.len()),
            None
        );
        assert!(a.end().is_err(), "end in the middle of a file");
        assert!(single(&mut a, &header_frame(&header(2, 1)), |_| None).is_err());
        let done = single(&mut a, &chunk_frame(b"abc"), |_| None)
            .unwrap()
            .unwrap();
        assert_eq!(&done.content.to_bytes()[..], b"abc");
        assert!(
            single(&mut a, &chunk_frame(b"x"), |_| None).is_err(),
            "content without a header"
        );
        let refused = Some((1, "no".to_owned()));
        single(&mut a, &header_frame(&header(3, 2)), |_| refused.clone()).unwrap();
        assert!(
            single(&mut a, &chunk_frame(b"xyz"), |_| None).is_err(),
            "beyond its size"
        );
        let mut a = Assembler::default();
        single(&mut a, &header_frame(&header(3, 2)), |_| refused.clone()).unwrap();
        let dropped = single(&mut a, &chunk_frame(b"xy"), |_| None)
            .unwrap()
            .unwrap();
        assert!(
            dropped.content.is_empty() && dropped.refused.is_some(),
            "counted, not kept"
        );
        assert!(a.end().is_ok());
        assert!(is_end(r#"{"type":"end"}"#) && !is_end("{}"));
    }

    #[test]
    fn a_file_is_its_chunks_frames_not_a_copy() {
        let header = |size: u64| FileHeader {
            index: 0,
            path: "f".into(),
            size,
            mode: 0o644,
            hash: "h".into(),
        };
        let mut a = Assembler::default();
        single(&mut a, &header_frame(&header(3)), |_| None).unwrap();
        let frame = chunk_frame(b"abc");
        let one = single(&mut a, &frame, |_| None).unwrap().unwrap();
        assert_eq!(one.content.parts(), [frame.slice(1..)]);
        assert_eq!(
            one.content.parts()[0].as_ptr(),
            frame[1..].as_ptr(),
            "not copied"
        );
        single(&mut a, &header_frame(&header(5)), |_| None).unwrap();
        assert!(
            single(&mut a, &chunk_frame(b"ab"), |_| None)
                .unwrap()
                .is_none()
        );
        assert!(
            single(&mut a, &chunk_frame(b""), |_| None)
                .unwrap()
                .is_none()
        );
        let last = chunk_frame(b"cde");
        let two = single(&mut a, &last, |_| None).unwrap().unwrap();
        assert_eq!(two.content.len(), 5);
        assert_eq!(&two.content.to_bytes()[..], b"abcde");
        assert_eq!(two.content.parts().len(), 2, "the empty chunk is dropped");
        assert_eq!(
            two.content.parts()[1].as_ptr(),
            last[1..].as_ptr(),
            "not copied"
        );
    }

    #[test]
    fn files_in_one_frame_are_whole_checked_and_not_copied() {
        let header = |index: u64, size: u64| file_header(index, format!("dir/é{index}.txt"), size);
        let frame = whole_frame(&header(0, 3), b"abc");
        assert_eq!(frame[0], WHOLE);
        assert_eq!(
            parse(&frame),
            Ok(Frame::Whole(vec![(
                header(0, 3),
                Bytes::from_static(b"abc")
            )]))
        );
        // Several in one frame: an empty one, one refused (counted, not kept), one kept.
        let mut packer = WholeFrames::default();
        assert!(packer.push(&header(1, 0), b"").is_none());
        assert!(packer.push(&header(2, 2), b"xy").is_none());
        assert!(packer.push(&header(3, 4), b"wxyz").is_none());
        let several = packer.take().expect("a frame");
        assert!(packer.take().is_none(), "taken once");
        let mut a = Assembler::default();
        let files = a
            .frame(&several, |h| (h.index == 2).then(|| (5, "no".into())))
            .unwrap();
        let seen: Vec<(u64, u64, bool)> = files
            .iter()
            .map(|f| (f.header.index, f.content.len(), f.refused.is_some()))
            .collect();
        assert_eq!(seen, [(1, 0, false), (2, 0, true), (3, 4, false)]);
        assert_eq!(
            files[2].content.parts()[0].as_ptr(),
            several[several.len() - 4..].as_ptr(),
            "not copied"
        );
        assert!(a.end().is_ok(), "nothing left open");
        // Content short of the header's size, or a frame without a file: a violation.
        let mut short = whole_frame(&header(4, 3), b"abc").to_vec();
        short.pop();
        assert!(a.frame(&Bytes::from(short), |_| None).is_err());
        assert!(a.frame(&Bytes::from_static(b"\x03"), |_| None).is_err());
        // Bytes after the last file must be another file.
        let mut trailing = whole_frame(&header(4, 3), b"abc").to_vec();
        trailing.push(0);
        assert!(a.frame(&Bytes::from(trailing), |_| None).is_err());
        // Not in the middle of a chunked file.
        let mut a = Assembler::default();
        a.frame(&header_frame(&header(5, 2)), |_| None).unwrap();
        assert!(
            a.frame(&whole_frame(&header(6, 1), b"z"), |_| None)
                .is_err()
        );
        // Cut short: the header's length past the frame's end, or no length at all; a size
        // past any frame.
        let mut cut = frame.to_vec();
        cut.truncate(8);
        assert!(parse(&Bytes::from(cut)).is_err());
        assert!(parse(&Bytes::from_static(b"\x03\x00")).is_err());
        assert!(parse(&Bytes::from_static(b"\x03\xff\xff\xff\xff{}")).is_err());
        assert!(parse(&whole_frame(&header(7, u64::MAX), b"")).is_err());
    }

    #[test]
    fn whole_frames_fill_up_to_a_chunk_and_a_large_file_goes_alone() {
        let header = |index: u64, size: usize| file_header(index, format!("f{index}"), size as u64);
        let small = vec![7u8; 100 * 1024];
        let mut packer = WholeFrames::default();
        let mut sent = Vec::new();
        for index in 0..3 {
            sent.extend(packer.push(&header(index, small.len()), &small));
        }
        // Two of 100 KiB fit in 256 KiB; the third starts the next frame.
        assert_eq!(sent.len(), 1);
        let big = vec![1u8; CHUNK_BYTES];
        sent.extend(packer.push(&header(3, big.len()), &big));
        sent.extend(packer.take());
        let files: Vec<Vec<u64>> = sent
            .iter()
            .map(|frame| match parse(frame) {
                Ok(Frame::Whole(files)) => files.iter().map(|(h, _)| h.index).collect(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            files,
            [vec![0, 1], vec![2], vec![3]],
            "a file alone is never refused"
        );
    }

    #[test]
    fn take_turns_messages_into_steps() {
        let header = FileHeader {
            index: 0,
            path: "a.txt".into(),
            size: 3,
            mode: 0o644,
            hash: "h".into(),
        };
        let mut a = Assembler::default();
        let (h, c) = (header_frame(&header), chunk_frame(b"abc"));
        assert!(matches!(a.take(Received::Binary(&h), |_| None), Step::More));
        assert!(
            matches!(
                a.take(Received::Text(r#"{"type":"ack"}"#), |_| None),
                Step::More
            ),
            "other text is ignored"
        );
        assert!(matches!(a.take(Received::Other, |_| None), Step::More));
        match a.take(Received::Text(r#"{"type":"end"}"#), |_| None) {
            Step::Over(Err(Some((code, _)))) => assert_eq!(code, POLICY_VIOLATION),
            other => panic!("end in the middle of a file: {other:?}"),
        }
        match a.take(Received::Binary(&c), |_| None) {
            Step::Files(files) => assert_eq!(
                (
                    files[0].header.path.as_str(),
                    &files[0].content.to_bytes()[..]
                ),
                ("a.txt", &b"abc"[..])
            ),
            other => panic!("no file: {other:?}"),
        }
        // `check` decides for the header it is given.
        let refused = a.take(
            Received::Binary(&header_frame(&FileHeader { size: 0, ..header })),
            |h| Some((7, format!("no {}", h.path))),
        );
        assert!(matches!(refused, Step::Files(f) if f[0].refused == Some((7, "no a.txt".into()))));
        assert!(matches!(
            a.take(Received::Binary(&Bytes::from_static(b"\x09")), |_| None),
            Step::Over(Err(Some((POLICY_VIOLATION, _))))
        ));
        assert!(matches!(
            a.take(Received::Text(r#"{"type":"end"}"#), |_| None),
            Step::Over(Ok(()))
        ));
        assert!(matches!(
            a.take(Received::Close, |_| None),
            Step::Over(Err(None))
        ));
    }
}
