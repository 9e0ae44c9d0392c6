//! Positions: the tools' 1-based `line`/`character` (characters counted in Unicode scalar
//! values, what a person or a model counts) ↔ LSP's 0-based lines and UTF-16 code units.

use codeflow_lsp_pool::lsp_types::{Position, Range};
use serde::Serialize;

use crate::error::ToolError;

/// A 1-based position as tools take and return it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct UserPosition {
    pub line: u32,
    pub character: u32,
}

/// The text of line `line0` (0-based), without its line ending; `None` past the end.
pub fn line_text(text: &str, line0: u32) -> Option<&str> {
    let line = text.split('\n').nth(line0 as usize)?;
    Some(line.strip_suffix('\r').unwrap_or(line))
}

/// 1-based (line, character) → LSP position, checked against the document's text.
///
/// A character one past the end of the line is allowed (the cursor after the last
/// character, where completions are asked for).
pub fn to_lsp(text: &str, line: u32, character: u32) -> Result<Position, ToolError> {
    if line == 0 || character == 0 {
        return Err(ToolError::InvalidArguments(format!(
            "line and character are 1-based; got line {line}, character {character}"
        )));
    }
    let line_count = text.split('\n').count();
    let Some(content) = line_text(text, line - 1) else {
        return Err(ToolError::InvalidArguments(format!(
            "line {line} is past the end of the file ({line_count} lines)"
        )));
    };
    let chars = content.chars().count();
    let column = (character - 1) as usize;
    if column > chars {
        return Err(ToolError::InvalidArguments(format!(
            "character {character} is past the end of line {line} ({chars} characters)"
        )));
    }
    let utf16: usize = content.chars().take(column).map(char::len_utf16).sum();
    Ok(Position::new(line - 1, to_u32(utf16)))
}

/// LSP position → 1-based (line, character). Without the line's text (a file the server
/// can read but we cannot), the UTF-16 column is taken as the character count.
pub fn from_lsp(line_content: Option<&str>, position: Position) -> UserPosition {
    let character = match line_content {
        Some(content) => {
            let mut units = 0u32;
            let mut chars = 0u32;
            for c in content.chars() {
                if units >= position.character {
                    break;
                }
                units += to_u32(c.len_utf16());
                chars += 1;
            }
            // A column past the line's end (some servers point at the newline) is kept.
            chars + position.character.saturating_sub(units)
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
    let start = from_lsp(
        text.and_then(|t| line_text(t, range.start.line)),
        range.start,
    );
    let end = from_lsp(text.and_then(|t| line_text(t, range.end.line)), range.end);
    (start, end)
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_round_trip() {
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
    fn utf16_columns() {
        // 'é' is one UTF-16 unit, '𝄞' two.
        let text = "a𝄞é = x\n";
        let p = to_lsp(text, 1, 4).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p, Position::new(0, 4));
        assert_eq!(from_lsp(line_text(text, 0), p).character, 4);
        assert_eq!(
            from_lsp(line_text(text, 0), Position::new(0, 5)).character,
            5
        );
    }

    #[test]
    fn bounds_are_checked() {
        let text = "ab\ncd";
        assert!(to_lsp(text, 0, 1).is_err());
        assert!(to_lsp(text, 1, 0).is_err());
        assert!(to_lsp(text, 3, 1).is_err());
        assert!(to_lsp(text, 1, 4).is_err());
        assert_eq!(
            to_lsp(text, 2, 3).unwrap_or_else(|e| panic!("{e}")),
            Position::new(1, 2)
        );
        assert_eq!(line_text("a\r\nb", 0), Some("a"));
    }
}
