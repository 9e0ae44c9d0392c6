//! What the line-oriented editors (requirements.txt, go.mod) share: the file as editable lines,
//! written back with its own newline style and final newline.

use super::Edited;

/// A manifest's text split into lines, remembering how to join them again.
pub struct LineFile {
    pub lines: Vec<String>,
    newline: &'static str,
    ends_with_newline: bool,
}

impl LineFile {
    pub fn new(text: &str) -> Self {
        Self {
            lines: text.lines().map(str::to_owned).collect(),
            newline: if text.contains("\r\n") { "\r\n" } else { "\n" },
            ends_with_newline: text.is_empty() || text.ends_with('\n'),
        }
    }

    /// Sets `out.content`: the edited lines when `out` records a change, else `original`
    /// untouched (byte for byte).
    pub fn finish(self, original: &str, out: &mut Edited) {
        out.content = if out.changes.is_empty() {
            original.to_owned()
        } else {
            let mut content = self.lines.join(self.newline);
            if self.ends_with_newline && !content.is_empty() {
                content.push_str(self.newline);
            }
            content
        };
    }
}
