//! Minimal edits between two versions of a text: what changed, as small LSP text edits in the
//! old text's coordinates. Some language servers answer a rename with whole-file replacements
//! (pylsp through jedi or rope); shown as they come, nobody can review them, so an edit plan
//! shows (and reports) the differences instead.
//!
//! Lines are compared first (the `similar` crate), then each changed run is trimmed of the
//! text it shares at both ends — never inside an identifier, so a rename shows as the old name
//! replaced by the new one.

use codeflow_lsp_pool::lsp_types::{Range, TextEdit};
use similar::{DiffOp, TextDiff};

use crate::text::LineIndex;

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// The edits that turn `old` into `new`, smallest first-to-last, in `old`'s coordinates.
pub fn minimal_edits(old: &str, new: &str) -> Vec<TextEdit> {
    let diff = TextDiff::from_lines(old, new);
    let offsets = |slices: &[&str]| {
        let mut at = Vec::with_capacity(slices.len() + 1);
        let mut n = 0;
        at.push(0);
        for s in slices {
            n += s.len();
            at.push(n);
        }
        at
    };
    let old_at = offsets(diff.old_slices());
    let new_at = offsets(diff.new_slices());
    let index = LineIndex::new(old);
    let mut edits = Vec::new();
    for op in diff.ops() {
        if matches!(op, DiffOp::Equal { .. }) {
            continue;
        }
        let (o, n) = (op.old_range(), op.new_range());
        let (o_from, o_to) = (old_at[o.start], old_at[o.end]);
        let (n_from, n_to) = (new_at[n.start], new_at[n.end]);
        let (a, b) = (&old[o_from..o_to], &new[n_from..n_to]);
        let (prefix, suffix) = shared_ends(a, b);
        edits.push(TextEdit {
            range: Range::new(
                index.position(o_from + prefix),
                index.position(o_to - suffix),
            ),
            new_text: b[prefix..b.len() - suffix].to_owned(),
        });
    }
    edits
}

/// Bytes `a` and `b` share at their start and at their end (not overlapping), each backed off
/// so it does not end (or begin) inside an identifier.
fn shared_ends(a: &str, b: &str) -> (usize, usize) {
    let mut prefix = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i);
    // Never a prefix ending inside a word of either text.
    let splits_word = |s: &str, at: usize| {
        s[..at].chars().next_back().is_some_and(is_ident)
            && s[at..].chars().next().is_some_and(is_ident)
    };
    while prefix > 0 && (splits_word(a, prefix) || splits_word(b, prefix)) {
        prefix -= a[..prefix].chars().next_back().map_or(1, char::len_utf8);
    }
    let room = a.len().min(b.len()) - prefix;
    let mut suffix = a[prefix..]
        .chars()
        .rev()
        .zip(b[prefix..].chars().rev())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.len_utf8())
        .sum::<usize>()
        .min(room);
    while suffix > 0 && (splits_word(a, a.len() - suffix) || splits_word(b, b.len() - suffix)) {
        suffix -= a[a.len() - suffix..]
            .chars()
            .next()
            .map_or(1, char::len_utf8);
    }
    (prefix, suffix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::apply_text_edits;

    fn check(old: &str, new: &str) -> Vec<(u32, u32, u32, u32, String)> {
        let edits = minimal_edits(old, new);
        assert_eq!(apply_text_edits(old, &edits, true).unwrap(), new);
        edits
            .into_iter()
            .map(|e| {
                (
                    e.range.start.line,
                    e.range.start.character,
                    e.range.end.line,
                    e.range.end.character,
                    e.new_text,
                )
            })
            .collect()
    }

    #[test]
    fn a_rename_is_the_names_only() {
        let old = "import os\n\ndef get_load_dotenv(x):\n    return x\n\ny = get_load_dotenv(1)\n";
        let new = old.replace("get_load_dotenv", "should_load_dotenv");
        assert_eq!(
            check(old, &new),
            vec![
                (2, 4, 2, 19, "should_load_dotenv".to_owned()),
                (5, 4, 5, 19, "should_load_dotenv".to_owned()),
            ]
        );
        // Shared letters at the ends of the names do not split them.
        assert_eq!(
            check("scale(x)\n", "resize(x)\n"),
            vec![(0, 0, 0, 5, "resize".to_owned())]
        );
    }

    #[test]
    fn insertions_deletions_and_odd_texts() {
        assert_eq!(
            check("a\nb\n", "a\nx\nb\n"),
            vec![(1, 0, 1, 0, "x\n".to_owned())]
        );
        assert_eq!(
            check("a\nb\nc\n", "a\nc\n"),
            vec![(1, 0, 2, 0, String::new())]
        );
        assert!(check("same\n", "same\n").is_empty());
        check("", "new\n");
        check("no newline", "no newline at all");
        check("é = 1\r\nb = 2\r\n", "é = 2\r\nb = 2\r\n");
        check("  a\n  b\n", "    a\n    b\n");
    }
}
