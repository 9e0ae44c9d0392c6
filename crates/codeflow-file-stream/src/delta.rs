//! Line-based deltas between two texts (computed with `similar`), and applying them.
//!
//! Used both ways: the watcher sends `server/fileChanged` with edits against the content it
//! last sent, and write-back sends `client/writeDelta`. A delta is only worth sending when it
//! is clearly smaller than the content; [`worth_sending`] decides.

use std::time::{Duration, Instant};

use similar::{Algorithm, DiffOp};

use crate::error::FileError;
use crate::protocol::LineEdit;

/// How long a diff may take before `similar` settles for a coarser (still correct) answer.
const DIFF_DEADLINE: Duration = Duration::from_millis(50);

fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// The edits that turn `old` into `new`, in order, with line numbers of `old`.
pub fn compute(old: &str, new: &str) -> Vec<LineEdit> {
    let old_lines = lines(old);
    let new_lines = lines(new);
    let ops = similar::capture_diff_slices_deadline(
        Algorithm::Myers,
        &old_lines,
        &new_lines,
        Some(Instant::now() + DIFF_DEADLINE),
    );
    let mut edits: Vec<LineEdit> = Vec::new();
    for op in ops {
        let (old_index, old_len, new_index, new_len) = match op {
            DiffOp::Equal { .. } => continue,
            DiffOp::Delete {
                old_index, old_len, ..
            } => (old_index, old_len, 0, 0),
            DiffOp::Insert {
                old_index,
                new_index,
                new_len,
            } => (old_index, 0, new_index, new_len),
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => (old_index, old_len, new_index, new_len),
        };
        let insert: String = new_lines[new_index..new_index + new_len].concat();
        let line = u32::try_from(old_index).unwrap_or(u32::MAX);
        let delete = u32::try_from(old_len).unwrap_or(u32::MAX);
        // Merge with the previous edit when adjacent (similar emits Delete+Insert pairs).
        if let Some(prev) = edits.last_mut()
            && prev.line.saturating_add(prev.delete) == line
        {
            prev.delete = prev.delete.saturating_add(delete);
            prev.insert.push_str(&insert);
            continue;
        }
        edits.push(LineEdit {
            line,
            delete,
            insert,
        });
    }
    edits
}

/// Applies `edits` (sorted, non-overlapping, line numbers of `base`) to `base`.
pub fn apply(base: &str, edits: &[LineEdit]) -> Result<String, FileError> {
    let base_lines = lines(base);
    let mut out = String::with_capacity(base.len());
    let mut next = 0usize; // first base line not yet copied
    for e in edits {
        let line = e.line as usize;
        let end = line
            .checked_add(e.delete as usize)
            .filter(|&end| line >= next && end <= base_lines.len())
            .ok_or_else(|| {
                FileError::BadContent(format!(
                    "edit at line {} deleting {} lines does not fit a {}-line base",
                    e.line,
                    e.delete,
                    base_lines.len()
                ))
            })?;
        out.extend(base_lines[next..line].iter().copied());
        out.push_str(&e.insert);
        next = end;
    }
    out.extend(base_lines[next..].iter().copied());
    Ok(out)
}

/// The wire size of a list of edits, roughly (inserted text plus per-edit overhead).
pub fn wire_size(edits: &[LineEdit]) -> usize {
    edits.iter().map(|e| e.insert.len() + 40).sum()
}

/// A delta is sent instead of full content when it is under half the content's size.
pub fn worth_sending(edits: &[LineEdit], content_len: usize) -> bool {
    wire_size(edits) < content_len / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(old: &str, new: &str) {
        let edits = compute(old, new);
        assert_eq!(apply(old, &edits).ok().as_deref(), Some(new), "{edits:?}");
    }

    #[test]
    fn round_trips() {
        check("", "");
        check("", "a\n");
        check("a\n", "");
        check("a\nb\nc\n", "a\nB\nc\n");
        check("a\nb\nc", "a\nb\nc\nd");
        check("a\r\nb\r\n", "a\r\nx\r\nb\r\n");
        check("1\n2\n3\n4\n5\n", "0\n1\n3\n4\n5\n6\n");
        check("no newline", "no newline at all");
    }

    #[test]
    fn one_line_edit_is_small() {
        let old: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
        let new = old.replace("line 5000\n", "line five thousand\n");
        let edits = compute(&old, &new);
        assert_eq!(edits.len(), 1);
        assert!(worth_sending(&edits, new.len()));
    }

    #[test]
    fn rejects_out_of_range() {
        let e = LineEdit {
            line: 5,
            delete: 1,
            insert: String::new(),
        };
        assert!(apply("a\n", &[e]).is_err());
    }
}
