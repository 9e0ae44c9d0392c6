//! A terminal's recent output: the last N bytes, what a viewer that attaches sees first.

use std::collections::VecDeque;

use bytes::Bytes;

/// The last `capacity` bytes written.
#[derive(Debug)]
pub struct Scrollback {
    bytes: VecDeque<u8>,
    capacity: usize,
}

impl Scrollback {
    /// An empty scrollback of at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            bytes: VecDeque::with_capacity(capacity.min(64 * 1024)),
            capacity,
        }
    }

    /// Appends output, forgetting the oldest bytes past the capacity.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.capacity == 0 {
            return;
        }
        let chunk = &chunk[chunk.len().saturating_sub(self.capacity)..];
        let overflow = (self.bytes.len() + chunk.len()).saturating_sub(self.capacity);
        self.bytes.drain(..overflow);
        self.bytes.extend(chunk);
    }

    /// The kept bytes in chunks of at most `chunk` bytes, oldest first.
    pub fn chunks(&self, chunk: usize) -> Vec<Bytes> {
        let (a, b) = self.bytes.as_slices();
        let mut all = Vec::with_capacity(self.bytes.len());
        all.extend_from_slice(a);
        all.extend_from_slice(b);
        all.chunks(chunk.max(1))
            .map(Bytes::copy_from_slice)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes() {
        let mut s = Scrollback::new(5);
        s.push(b"abc");
        s.push(b"defg");
        assert_eq!(
            s.chunks(2),
            vec![Bytes::from("cd"), "ef".into(), "g".into()]
        );
        s.push(b"0123456789");
        assert_eq!(s.chunks(10), vec![Bytes::from("56789")]);
        let mut none = Scrollback::new(0);
        none.push(b"x");
        assert!(none.chunks(4).is_empty());
    }
}
