//! A received file's content as it came off the wire: the chunks of the framed transfer
//! format, in order, each the buffer its frame was read into. A file of one chunk is that
//! chunk; a larger one stays in pieces, hashed and written piece by piece — putting it
//! together would copy the file (and fault in a fresh buffer for it) on the socket's reader.

use std::io::Write;

use bytes::Bytes;

use crate::protocol::ContentHash;

/// A file's content in the pieces it arrived in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunks {
    parts: Vec<Bytes>,
    len: u64,
}

impl Chunks {
    /// Appends the next piece (an empty one is dropped).
    pub fn push(&mut self, part: Bytes) {
        if !part.is_empty() {
            self.len += part.len() as u64;
            self.parts.push(part);
        }
    }

    /// The content's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether there is no content.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The content's hash, piece by piece (the same as [`ContentHash::of`] the whole).
    pub fn hash(&self) -> ContentHash {
        match self.parts.as_slice() {
            [] => ContentHash::of(b""),
            [one] => ContentHash::of(one),
            parts => ContentHash::of_parts(parts.iter().map(|p| &p[..])),
        }
    }

    /// Writes the content to `out`, piece by piece.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        for part in &self.parts {
            out.write_all(part)?;
        }
        Ok(())
    }

    /// The content in one buffer: the piece itself when there is one, else a copy.
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            parts => {
                let mut whole = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
                for part in parts {
                    whole.extend_from_slice(part);
                }
                whole.into()
            }
        }
    }
}

impl From<Bytes> for Chunks {
    fn from(bytes: Bytes) -> Self {
        let mut chunks = Chunks::default();
        chunks.push(bytes);
        chunks
    }
}

impl From<Vec<u8>> for Chunks {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl From<&'static [u8]> for Chunks {
    fn from(bytes: &'static [u8]) -> Self {
        Bytes::from_static(bytes).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_hash_write_and_join_as_the_whole() {
        let whole: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut chunks = Chunks::default();
        for piece in whole.chunks(256 * 1024) {
            chunks.push(Bytes::copy_from_slice(piece));
        }
        chunks.push(Bytes::new());
        assert_eq!(chunks.len(), whole.len() as u64);
        assert_eq!(chunks.parts().len(), 12, "the empty piece is dropped");
        assert_eq!(chunks.hash(), ContentHash::of(&whole));
        let mut written = Vec::new();
        chunks.write_to(&mut written).unwrap();
        assert_eq!(written, whole);
        assert_eq!(&chunks.to_bytes()[..], &whole[..]);
    }

    #[test]
    fn one_piece_is_not_copied_and_none_is_empty() {
        let one = Bytes::from_static(b"abc");
        let chunks = Chunks::from(one.clone());
        assert_eq!(chunks.to_bytes().as_ptr(), one.as_ptr());
        assert_eq!(chunks.hash(), ContentHash::of(b"abc"));
        let none = Chunks::default();
        assert!(none.is_empty());
        assert_eq!(none.hash(), ContentHash::of(b""));
        assert!(none.to_bytes().is_empty());
    }
}
