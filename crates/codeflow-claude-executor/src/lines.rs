//! Reads a child's output as lines of bounded length. Cancel-safe: the partial line lives in
//! the reader, so dropping a pending [`LineReader::next`] loses nothing.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One unit of output.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, without its newline (also the last bytes before EOF).
    Text(Vec<u8>),
    /// A line passed the limit. Reported once, when it does; the rest of it is skipped.
    TooLong {
        /// How many bytes a line may have.
        limit: usize,
    },
}

/// Reads lines of at most `max` bytes from a child's output, so an endless line costs bounded memory.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    max: usize,
    /// Skipping the rest of an over-long line.
    skipping: bool,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// A reader of `inner` whose lines are cut at `max` bytes.
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            max: max.max(1),
            skipping: false,
        }
    }

    /// The next line, or `None` at the end of the output.
    pub async fn next(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                self.skipping = false;
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(Line::Text(std::mem::take(&mut self.buf))));
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let take = newline.unwrap_or(available.len());
            if self.skipping {
                self.inner.consume(take + usize::from(newline.is_some()));
                if newline.is_some() {
                    self.skipping = false;
                }
                continue;
            }
            if self.buf.len() + take > self.max {
                self.buf.clear();
                self.inner.consume(take + usize::from(newline.is_some()));
                self.skipping = newline.is_none();
                return Ok(Some(Line::TooLong { limit: self.max }));
            }
            self.buf.extend_from_slice(&available[..take]);
            self.inner.consume(take + usize::from(newline.is_some()));
            if newline.is_some() {
                return Ok(Some(Line::Text(std::mem::take(&mut self.buf))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_lines() {
        let input: &[u8] = b"ab\nlonglonglong\ncd\nxyzxyzxyzxyz";
        let mut r = LineReader::new(tokio::io::BufReader::with_capacity(4, input), 5);
        let mut got = Vec::new();
        while let Some(l) = r.next().await.unwrap_or(None) {
            got.push(l);
        }
        assert_eq!(
            got,
            vec![
                Line::Text(b"ab".to_vec()),
                Line::TooLong { limit: 5 },
                Line::Text(b"cd".to_vec()),
                Line::TooLong { limit: 5 },
            ]
        );
    }
}
