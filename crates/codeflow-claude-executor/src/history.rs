//! `projects/history`: entries of a message log by time, newest pages first, across segments.
//!
//! Segment names give each segment's first ts, and ts grows through every segment, so a query
//! skips whole segments by name, finds its upper bound inside a segment by binary search over
//! byte offsets (seek, skip to the next line, read its ts), and reads backwards from there only
//! as far as it needs. No file is read whole.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::Value;

use crate::log::{line_ts, segments};

/// Most entries one query returns.
pub const MAX_LIMIT: usize = 1000;

/// A history query: entries with `since <= ts <= until` and `ts < before`, the newest `limit`
/// of them (returned oldest first).
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Entries at or after this time (ms since the Unix epoch).
    pub since: Option<u64>,
    /// Entries at or before this time (ms since the Unix epoch).
    pub until: Option<u64>,
    /// Entries strictly before this time: the cursor of the previous page's `next_before`.
    pub before: Option<u64>,
    /// At most this many entries (the newest ones of the range).
    pub limit: usize,
}

/// One page of history.
#[derive(Debug, Clone, Default)]
pub struct HistoryPage {
    /// Oldest first.
    pub entries: Vec<Value>,
    /// More entries match before the first one: pass `next_before` as `before`.
    pub more: bool,
    /// The cursor for the next (older) page, when `more`.
    pub next_before: Option<u64>,
}

/// Runs a query on the log in `dir`. Blocking file work.
pub fn query(dir: &Path, q: &HistoryQuery) -> io::Result<HistoryPage> {
    let limit = q.limit.clamp(1, MAX_LIMIT);
    let lower = q.since.unwrap_or(0);
    // Exclusive upper bound.
    let upper = match (q.until.map(|u| u.saturating_add(1)), q.before) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => u64::MAX,
    };
    let mut newest_first: Vec<(u64, Value)> = Vec::new();
    if lower < upper {
        for (first, path) in segments(dir)?.into_iter().rev() {
            if first >= upper {
                continue;
            }
            let done = read_segment_backwards(&path, lower, upper, limit + 1, &mut newest_first)?;
            if done || first < lower {
                break;
            }
        }
    }
    let more = newest_first.len() > limit;
    newest_first.truncate(limit);
    let next_before = if more {
        newest_first.last().map(|(ts, _)| *ts)
    } else {
        None
    };
    Ok(HistoryPage {
        entries: newest_first.into_iter().rev().map(|(_, v)| v).collect(),
        more,
        next_before,
    })
}

/// Collects entries of one segment with `lower <= ts < upper`, newest first, until `want` are
/// collected in total. Returns true when the query is satisfied (enough entries, or an entry
/// older than `lower` was reached).
fn read_segment_backwards(
    path: &Path,
    lower: u64,
    upper: u64,
    want: usize,
    out: &mut Vec<(u64, Value)>,
) -> io::Result<bool> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        // Deleted by retention meanwhile.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let len = complete_len(&mut file)?;
    let end = lower_bound(&mut file, len, upper)?;
    const BLOCK: u64 = 64 * 1024;
    let mut pos = end;
    // Bytes of the line that continues into the block read last (its beginning is further back).
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; BLOCK as usize];
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK);
        let n = usize::try_from(pos - start).unwrap_or(0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        let mut block = buf[..n].to_vec();
        block.extend_from_slice(&carry);
        carry.clear();
        // Lines are `...\n`; split so each piece is a line without its newline.
        let mut pieces: Vec<&[u8]> = block.split(|&b| b == b'\n').collect();
        // The last piece is what follows the last newline: empty (the block ends a line).
        pieces.pop();
        // The first piece may start before this block.
        let head = if start > 0 {
            Some(pieces.remove(0))
        } else {
            None
        };
        for line in pieces.into_iter().rev() {
            if line.is_empty() {
                continue;
            }
            let Some(ts) = line_ts(line) else {
                continue;
            };
            if ts < lower {
                return Ok(true);
            }
            if ts < upper {
                let value = serde_json::from_slice(line).unwrap_or(Value::Null);
                out.push((ts, value));
                if out.len() >= want {
                    return Ok(true);
                }
            }
        }
        if let Some(head) = head {
            carry = head.to_vec();
            carry.push(b'\n');
        }
        pos = start;
    }
    Ok(false)
}

/// The length of the file up to its last newline (a line being appended right now is not
/// complete yet and is left out).
fn complete_len(file: &mut File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    Ok(crate::log::last_newline_before(file, len)?.map_or(0, |p| p + 1))
}

/// The offset of the first line with `ts >= target` (or `len`), by binary search over bytes.
fn lower_bound(file: &mut File, len: u64, target: u64) -> io::Result<u64> {
    let (mut lo, mut hi) = (0u64, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match line_at_or_after(file, mid, len)? {
            Some((start, end, ts)) if start < hi && ts < target => lo = end,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// The first complete line starting at or after `pos`: (start, end after its newline, ts).
/// Lines that do not parse count as older than anything (they are skipped by readers).
fn line_at_or_after(file: &mut File, pos: u64, len: u64) -> io::Result<Option<(u64, u64, u64)>> {
    file.seek(SeekFrom::Start(pos.saturating_sub(1)))?;
    let mut reader = BufReader::with_capacity(16 * 1024, &mut *file);
    let mut start = pos;
    if pos > 0 {
        // Skip the rest of the line that `pos - 1` is in (nothing if it is a newline).
        let mut skipped = Vec::new();
        let n = reader.read_until(b'\n', &mut skipped)?;
        start = pos - 1 + n as u64;
    }
    if start >= len {
        return Ok(None);
    }
    let mut line = Vec::new();
    let n = reader.read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Ok(None);
    }
    let end = start + n as u64;
    Ok(Some((start, end, line_ts(&line[..n - 1]).unwrap_or(0))))
}
