//! Text positions and edits: LSP's 0-based lines and UTF-16 columns over a document's text.
//!
//! One [`LineIndex`] answers every conversion (line starts, the byte offset of a position,
//! the position of a byte offset, a line's text), so no other module counts lines or UTF-16
//! units itself.

use codeflow_lsp_pool::lsp_types::{Position, TextEdit};

/// Where each line of a text starts. Lines end at `\n`, `\r\n` or a lone `\r`, as LSP says.
#[derive(Debug, Clone)]
pub struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of each line's start; the first is 0.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => starts.push(i + 1),
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    starts.push(i + 2);
                    i += 1;
                }
                b'\r' => starts.push(i + 1),
                _ => {}
            }
            i += 1;
        }
        Self { text, starts }
    }

    /// Lines in the text (a text ending in a line break has an empty last line).
    pub fn line_count(&self) -> usize {
        self.starts.len()
    }

    /// Byte range of line `line0` (0-based) without its line ending; `None` past the end.
    fn line_span(&self, line0: usize) -> Option<(usize, usize)> {
        let start = *self.starts.get(line0)?;
        let end = self.starts.get(line0 + 1).map_or(self.text.len(), |&next| {
            start + self.text[start..next].trim_end_matches(['\n', '\r']).len()
        });
        Some((start, end))
    }

    /// The text of line `line0` (0-based) without its line ending; `None` past the end.
    pub fn line(&self, line0: u32) -> Option<&'a str> {
        let (start, end) = self.line_span(line0 as usize)?;
        Some(&self.text[start..end])
    }

    /// Byte offset of an LSP position (UTF-16 columns). A column past the line's end is the
    /// line's end (as LSP says); a line past the end is an error when `validate`, else the
    /// text's end.
    pub fn offset(&self, pos: Position, validate: bool) -> Result<usize, String> {
        let line = pos.line as usize;
        let Some((start, end)) = self.line_span(line) else {
            if validate && !(line == self.starts.len() && pos.character == 0) {
                return Err(format!(
                    "line {} is past the end of the file ({} lines)",
                    line + 1,
                    self.starts.len()
                ));
            }
            return Ok(self.text.len());
        };
        let mut units = 0u32;
        for (i, c) in self.text[start..end].char_indices() {
            if units >= pos.character {
                return Ok(start + i);
            }
            units += c.len_utf16() as u32;
        }
        Ok(end)
    }

    /// The LSP position of a byte offset (clamped to the text, and back to a character
    /// boundary).
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let column = self.text[self.starts[line]..offset].encode_utf16().count();
        Position::new(line as u32, column as u32)
    }

    /// The position just past the last character.
    pub fn end(&self) -> Position {
        self.position(self.text.len())
    }
}

/// The position just past the last character of `text`.
pub fn end_position(text: &str) -> Position {
    LineIndex::new(text).end()
}

/// Applies LSP text edits to `text`. Edits refer to the original text; they must not overlap;
/// edits at the same position are applied in the order given.
pub fn apply_text_edits(text: &str, edits: &[TextEdit], validate: bool) -> Result<String, String> {
    let index = LineIndex::new(text);
    let mut spans = Vec::with_capacity(edits.len());
    for (i, e) in edits.iter().enumerate() {
        let start = index.offset(e.range.start, validate)?;
        let end = index.offset(e.range.end, validate)?;
        if end < start {
            return Err(format!(
                "range {}:{}-{}:{} ends before it starts",
                e.range.start.line,
                e.range.start.character,
                e.range.end.line,
                e.range.end.character
            ));
        }
        spans.push((start, end, i));
    }
    spans.sort_by_key(|&(start, end, i)| (start, end, i));
    for pair in spans.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err("two edits overlap".to_owned());
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, i) in spans {
        out.push_str(&text[at..start]);
        out.push_str(&edits[i].new_text);
        at = end;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use codeflow_lsp_pool::lsp_types::Range;

    fn edit(l1: u32, c1: u32, l2: u32, c2: u32, text: &str) -> TextEdit {
        TextEdit {
            range: Range::new(Position::new(l1, c1), Position::new(l2, c2)),
            new_text: text.to_owned(),
        }
    }

    fn check(text: &str, edits: &[TextEdit], expect: &str) {
        assert_eq!(apply_text_edits(text, edits, true).as_deref(), Ok(expect));
    }

    #[test]
    fn applies_edits_against_the_original_text() {
        check(
            "def add(a, b):\n    return add\n",
            &[edit(0, 4, 0, 7, "plus"), edit(1, 11, 1, 14, "plus")],
            "def plus(a, b):\n    return plus\n",
        );
        check("ab\r\ncd", &[edit(1, 0, 1, 2, "x")], "ab\r\nx");
        check("a\n", &[edit(1, 0, 1, 0, "b\n")], "a\nb\n");
        check("x", &[edit(0, 0, 0, 0, "1"), edit(0, 0, 0, 0, "2")], "12x");
    }

    #[test]
    fn counts_utf16_and_clamps_past_line_end() {
        check("é😀x\n", &[edit(0, 3, 0, 4, "y")], "é😀y\n");
        check("ab\ncd\n", &[edit(0, 9, 1, 0, "")], "abcd\n");
    }

    #[test]
    fn refuses_overlaps_and_lines_past_the_end() {
        assert!(
            apply_text_edits("abc", &[edit(0, 0, 0, 2, ""), edit(0, 1, 0, 3, "")], true).is_err()
        );
        assert!(apply_text_edits("abc", &[edit(5, 0, 5, 0, "x")], true).is_err());
        assert_eq!(
            apply_text_edits("abc", &[edit(5, 0, 5, 0, "x")], false).as_deref(),
            Ok("abcx")
        );
    }

    #[test]
    fn lines_end_at_every_kind_of_break() {
        let index = LineIndex::new("a\r\nb\rc\nd");
        assert_eq!(index.line_count(), 4);
        assert_eq!(
            (0..5).map(|l| index.line(l)).collect::<Vec<_>>(),
            vec![Some("a"), Some("b"), Some("c"), Some("d"), None]
        );
    }

    #[test]
    fn positions_and_offsets_round_trip() {
        let text = "é😀x\nab";
        let index = LineIndex::new(text);
        for offset in [0, 2, 6, 7, 8, 9, 10] {
            let pos = index.position(offset);
            assert_eq!(index.offset(pos, true), Ok(offset), "{offset} → {pos:?}");
        }
        assert_eq!(index.position(6), Position::new(0, 3));
        assert_eq!(index.position(3), Position::new(0, 1), "inside a character");
    }

    #[test]
    fn end_position_is_past_the_last_character() {
        assert_eq!(end_position("a\nbc"), Position::new(1, 2));
        assert_eq!(end_position("a\n"), Position::new(1, 0));
    }
}
