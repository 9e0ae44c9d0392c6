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

/// Newlines in `bytes` (a plain count the compiler turns into SIMD).
fn newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// Length of the common prefix of `a` and `b`, compared a block at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 256;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Length of the common suffix of `a` and `b`, compared a block at a time.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 256;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n
        && a[a.len() - i - BLOCK..a.len() - i] == b[b.len() - i - BLOCK..b.len() - i]
    {
        i += BLOCK;
    }
    while i < n && a[a.len() - i - 1] == b[b.len() - i - 1] {
        i += 1;
    }
    i
}

/// The edits that turn `old` into `new`, in order, with line numbers of `old`.
///
/// The common head and tail (whole lines) are found by comparing bytes first, so a one-line
/// edit in a large file costs two memory scans, not a line split and a diff of every line.
pub fn compute(old: &str, new: &str) -> Vec<LineEdit> {
    let (a, b) = (old.as_bytes(), new.as_bytes());
    // The head: whole lines equal in both (ends just after a newline, or at 0).
    let head = common_prefix(a, b);
    let head = a[..head]
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |i| i + 1);
    // The tail: whole lines equal in both, after the head. Its start must be a line start in
    // both texts; if it is not, it begins after its first newline (same place in both).
    let mut tail = common_suffix(&a[head..], &b[head..]);
    let starts_line = |t: &[u8], at: usize| at == head || t[at - 1] == b'\n';
    if tail > 0 && !(starts_line(a, a.len() - tail) && starts_line(b, b.len() - tail)) {
        tail = a[a.len() - tail..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(0, |i| tail - i - 1);
    }
    let old_mid = &old[head..old.len() - tail];
    let new_mid = &new[head..new.len() - tail];
    let offset = newlines(&a[..head]);
    diff_lines(old_mid, new_mid, offset)
}

/// Line edits between two texts made of whole lines, numbered from `offset`.
fn diff_lines(old: &str, new: &str, offset: usize) -> Vec<LineEdit> {
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
        let line = u32::try_from(old_index + offset).unwrap_or(u32::MAX);
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

/// Where the line `n` lines after the one starting at `from` starts; the end of the text
/// counts as the start of the line after the last. `None` when the text has fewer lines.
fn line_start(text: &[u8], from: usize, n: usize) -> Option<usize> {
    const CHUNK: usize = 4096;
    let mut left = n;
    let mut pos = from;
    while left > 0 && pos < text.len() {
        let end = (pos + CHUNK).min(text.len());
        let count = newlines(&text[pos..end]);
        if count < left {
            left -= count;
            pos = end;
            continue;
        }
        for (i, &c) in text[pos..end].iter().enumerate() {
            if c == b'\n' {
                left -= 1;
                if left == 0 {
                    return Some(pos + i + 1);
                }
            }
        }
    }
    match left {
        0 => Some(pos),
        // The last line has no newline: stepping over it reaches the end.
        1 if text.len() > from && text.last() != Some(&b'\n') => Some(text.len()),
        _ => None,
    }
}

/// Applies `edits` (sorted, non-overlapping, line numbers of `base`) to `base`. Only the
/// lines up to the last edit are walked; the rest is copied in one piece.
pub fn apply(base: &str, edits: &[LineEdit]) -> Result<String, FileError> {
    let bytes = base.as_bytes();
    let mut out = String::with_capacity(base.len());
    let mut pos = 0usize; // start of `line`, the first base line not yet copied
    let mut line = 0usize;
    for e in edits {
        let (at, delete) = (e.line as usize, e.delete as usize);
        let span = at
            .checked_sub(line)
            .and_then(|skip| line_start(bytes, pos, skip))
            .and_then(|start| Some((start, line_start(bytes, start, delete)?)));
        let Some((start, end)) = span else {
            return Err(FileError::BadContent(format!(
                "edit at line {} deleting {} lines does not fit a {}-line base",
                e.line,
                e.delete,
                lines(base).len()
            )));
        };
        out.push_str(&base[pos..start]);
        out.push_str(&e.insert);
        pos = end;
        line = at + delete;
    }
    out.push_str(&base[pos..]);
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
        check("x\nb", "y\nb");
        check("a\nb", "a\nbc");
        check("a\nb\n", "a\nb\nc");
        check("same\n", "same\n");
        check("a\na\na\n", "a\na\n");
        check("a\nb\na\nb\n", "a\nb\nX\na\nb\n");
        check("tail\nend", "head\ntail\nend");
        check("ab\ncd\n", "ab\nXcd\n");
        check("ab\ncd\n", "aXb\ncd\n");
    }

    #[test]
    fn round_trips_generated_edits() {
        // Every single-line replace, insert and delete in a small text with repeats.
        let base: Vec<&str> = vec!["a\n", "b\n", "a\n", "", "c", "\n", "a\n"];
        let text: String = base.concat();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        for i in 0..=lines.len() {
            for insert in ["", "a\n", "z\n", "a", "\n"] {
                for delete in 0..=(lines.len() - i).min(2) {
                    let mut new: Vec<&str> = lines[..i].to_vec();
                    new.push(insert);
                    new.extend_from_slice(&lines[i + delete..]);
                    check(&text, &new.concat());
                }
            }
        }
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
