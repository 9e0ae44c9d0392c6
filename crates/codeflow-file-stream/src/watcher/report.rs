//! The pure step of a check: given what was last reported for a file and what is on disk now,
//! what to tell the server. No disk, no state: [`scan`](super::scan) reads and records, this
//! decides.

use crate::delta;
use crate::protocol::{ChangeType, ContentHash, FileChanged, encode_content};

/// A file as one check read it.
pub(super) struct Read<'a> {
    /// The client path the event names.
    pub path: String,
    pub bytes: &'a [u8],
    pub hash: &'a ContentHash,
    pub mtime_ms: u64,
}

/// What was last reported for the file.
pub(super) struct Reported<'a> {
    pub hash: &'a ContentHash,
    /// The content that hash is of, when it is kept (text files): the base of a delta.
    pub text: Option<&'a [u8]>,
}

/// The event to send for `now`, or `None` when there is nothing to say.
///
/// - Same hash as reported: nothing, unless the relay's file server wrote the path since its
///   last check (`owed`): then a hash-only `Changed`, which the mirror confirms (`Unchanged`)
///   or answers by fetching the file if it missed the write.
/// - Otherwise `Created` (never reported) or `Changed`: as a delta from the reported text when
///   both are UTF-8 and the delta is worth it, else inline when at most `inline_limit` bytes,
///   else hash and size only (the server fetches the content).
pub(super) fn report(
    now: Read<'_>,
    previous: Option<Reported<'_>>,
    owed: bool,
    inline_limit: u64,
) -> Option<FileChanged> {
    let size = now.bytes.len() as u64;
    let mut event = FileChanged {
        change_type: ChangeType::Changed,
        hash: Some(now.hash.clone()),
        size: Some(size),
        mtime: Some(now.mtime_ms),
        ..FileChanged::deleted(now.path)
    };
    match &previous {
        Some(p) if p.hash == now.hash => return owed.then_some(event),
        Some(_) => {}
        None => event.change_type = ChangeType::Created,
    }
    let delta_base = previous
        .as_ref()
        .and_then(|p| Some((std::str::from_utf8(p.text?).ok()?, p.hash)));
    if let (Ok(new), Some((old, base_hash))) = (std::str::from_utf8(now.bytes), delta_base) {
        let edits = delta::compute(old, new);
        if delta::worth_sending(&edits, new.len()) {
            event.base_hash = Some(base_hash.clone());
            event.edits = Some(edits);
            return Some(event);
        }
    }
    if size <= inline_limit {
        let (content, encoding) = encode_content(now.bytes);
        event.content = Some(content);
        event.encoding = Some(encoding);
    }
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<'a>(bytes: &'a [u8], hash: &'a ContentHash) -> Read<'a> {
        Read {
            path: "/app/a.txt".into(),
            bytes,
            hash,
            mtime_ms: 7,
        }
    }

    #[test]
    fn unchanged_is_silent_unless_owed() {
        let bytes = b"same";
        let hash = ContentHash::of(bytes);
        let previous = || {
            Some(Reported {
                hash: &hash,
                text: Some(&bytes[..]),
            })
        };
        assert!(report(read(bytes, &hash), previous(), false, 1024).is_none());
        let owed = report(read(bytes, &hash), previous(), true, 1024);
        let owed = owed.unwrap_or_else(|| panic!("an owed path is reported"));
        assert_eq!(owed.change_type, ChangeType::Changed);
        assert_eq!(owed.hash.as_ref(), Some(&hash));
        assert!(owed.content.is_none() && owed.edits.is_none(), "hash only");
    }

    #[test]
    fn new_files_are_created_inline_or_by_hash() {
        let bytes = b"hello";
        let hash = ContentHash::of(bytes);
        let small = report(read(bytes, &hash), None, false, 1024);
        let small = small.unwrap_or_else(|| panic!("a new file is reported"));
        assert_eq!(small.change_type, ChangeType::Created);
        assert!(small.content.is_some());
        let big = report(read(bytes, &hash), None, false, 2);
        let big = big.unwrap_or_else(|| panic!("a new file is reported"));
        assert!(big.content.is_none(), "over the inline limit: fetched");
        assert_eq!(big.size, Some(5));
    }

    #[test]
    fn a_small_edit_of_a_text_travels_as_a_delta() {
        let old = "line\n".repeat(200);
        let new = format!("{old}one more\n");
        let (old_hash, new_hash) = (
            ContentHash::of(old.as_bytes()),
            ContentHash::of(new.as_bytes()),
        );
        let event = report(
            read(new.as_bytes(), &new_hash),
            Some(Reported {
                hash: &old_hash,
                text: Some(old.as_bytes()),
            }),
            false,
            1 << 20,
        );
        let event = event.unwrap_or_else(|| panic!("a change is reported"));
        assert_eq!(event.change_type, ChangeType::Changed);
        assert_eq!(event.base_hash.as_ref(), Some(&old_hash));
        assert!(event.edits.is_some() && event.content.is_none());
    }

    #[test]
    fn without_the_old_text_a_change_is_sent_whole() {
        let bytes = b"\xff\xfe binary";
        let hash = ContentHash::of(bytes);
        let old = ContentHash::of(b"before");
        let event = report(
            read(bytes, &hash),
            Some(Reported {
                hash: &old,
                text: None,
            }),
            false,
            1024,
        );
        let event = event.unwrap_or_else(|| panic!("a change is reported"));
        assert!(event.edits.is_none() && event.content.is_some());
    }
}
