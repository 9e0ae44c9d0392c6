//! Text positions and edits: LSP's 0-based lines and UTF-16 columns over a document's text.
//!
//! One [`LineIndex`] answers every conversion (line starts, the byte offset of a position,
//! the position of a byte offset, a line's text), and the functions below convert between LSP
//! positions and the 1-based positions tools and channels report ([`UserPosition`]: characters
//! counted in Unicode scalar values, what a person or a model counts), so no other module counts
//! lines or UTF-16 units itself.

use codeflow_lsp_pool::lsp_types::{Position, Range, TextEdit};

/// Where each line of a text starts. Lines end at `\n`, `\r\n` or a lone `\r`, as LSP says.
#[derive(Debug, Clone)]
pub struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of each line's start; the first is 0.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes the lines of `text`.
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
        Ok(start + utf16_to_byte(&self.text[start..end], pos.character))
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

/// UTF-16 code units in `s`.
pub fn utf16_len(s: &str) -> u32 {
    u32::try_from(s.encode_utf16().count()).unwrap_or(u32::MAX)
}

/// The byte offset in `line` of UTF-16 column `units`; past the end, the line's length; inside
/// a surrogate pair, the character's end.
pub fn utf16_to_byte(line: &str, units: u32) -> usize {
    let mut seen = 0u32;
    for (i, c) in line.char_indices() {
        if seen >= units {
            return i;
        }
        seen += c.len_utf16() as u32;
    }
    line.len()
}

/// The part of `s` between UTF-16 offsets `from` and `to` (clamped).
pub fn utf16_slice(s: &str, from: u32, to: u32) -> &str {
    let start = utf16_to_byte(s, from);
    let end = utf16_to_byte(s, to.max(from));
    &s[start..end]
}

/// A 1-based position as tools and channels report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct UserPosition {
    /// 1-based line.
    pub line: u32,
    /// 1-based character (a Unicode scalar value, not a UTF-16 unit).
    pub character: u32,
}

/// The text of line `line0` (0-based), without its line ending; `None` past the end.
pub fn line_text(text: &str, line0: u32) -> Option<&str> {
    LineIndex::new(text).line(line0)
}

/// 1-based (line, character) → LSP position, checked against the document's text. A character
/// one past the end of the line is allowed (the cursor after the last character, where
/// completions are asked for).
pub fn to_lsp(text: &str, line: u32, character: u32) -> Result<Position, String> {
    if line == 0 || character == 0 {
        return Err(format!(
            "line and character are 1-based; got line {line}, character {character}"
        ));
    }
    let index = LineIndex::new(text);
    let Some(content) = index.line(line - 1) else {
        return Err(format!(
            "line {line} is past the end of the file ({} lines)",
            index.line_count()
        ));
    };
    let chars = content.chars().count();
    let column = (character - 1) as usize;
    if column > chars {
        return Err(format!(
            "character {character} is past the end of line {line} ({chars} characters)"
        ));
    }
    let byte = content
        .char_indices()
        .nth(column)
        .map_or(content.len(), |(i, _)| i);
    Ok(Position::new(line - 1, utf16_len(&content[..byte])))
}

/// LSP position → 1-based (line, character). Without the line's text (a file the server can
/// read but we cannot), the UTF-16 column is taken as the character count.
pub fn from_lsp(line_content: Option<&str>, position: Position) -> UserPosition {
    let character = match line_content {
        Some(content) => {
            let byte = utf16_to_byte(content, position.character);
            let chars = u32::try_from(content[..byte].chars().count()).unwrap_or(u32::MAX);
            // A column past the line's end (some servers point at the newline) is kept.
            chars + position.character.saturating_sub(utf16_len(content))
        }
        None => position.character,
    };
    UserPosition {
        line: position.line + 1,
        character: character + 1,
    }
}

/// A range's start and end in 1-based form, given the document's text when known.
pub fn range_from_lsp(text: Option<&str>, range: Range) -> (UserPosition, UserPosition) {
    let index = text.map(LineIndex::new);
    let line = |n: u32| index.as_ref().and_then(|i| i.line(n));
    (
        from_lsp(line(range.start.line), range.start),
        from_lsp(line(range.end.line), range.end),
    )
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

    #[test]
    fn user_positions_round_trip_in_ascii() {
        let text = "def f():\n    return 1\n";
        let p = to_lsp(text, 2, 5).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p, Position::new(1, 4));
        assert_eq!(
            from_lsp(line_text(text, 1), p),
            UserPosition {
                line: 2,
                character: 5
            }
        );
    }

    #[test]
    fn user_positions_count_characters_not_utf16_units() {
        // 'é' is one UTF-16 unit, '𝄞' two.
        let text = "a𝄞é = x\n";
        let p = to_lsp(text, 1, 4).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p, Position::new(0, 4));
        assert_eq!(from_lsp(line_text(text, 0), p).character, 4);
        assert_eq!(
            from_lsp(line_text(text, 0), Position::new(0, 5)).character,
            5
        );
        assert_eq!(utf16_slice("a𝄞é", 1, 3), "𝄞");
    }

    #[test]
    fn user_positions_are_checked() {
        let text = "ab\ncd";
        assert!(to_lsp(text, 0, 1).is_err());
        assert!(to_lsp(text, 1, 0).is_err());
        assert!(to_lsp(text, 3, 1).is_err());
        assert!(to_lsp(text, 1, 4).is_err());
        assert_eq!(to_lsp(text, 2, 3), Ok(Position::new(1, 2)));
        assert_eq!(line_text("a\r\nb", 0), Some("a"));
    }
}
