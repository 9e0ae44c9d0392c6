//! The message log: group-committed appends, rotation by size and age, history across
//! segments, paging, and repair of a torn last line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use codeflow_claude_executor::history::{HistoryQuery, query};
use codeflow_claude_executor::log::segments_for_tests as segments;
use codeflow_claude_executor::{LogConfig, MessageLog, NewEntry};
use serde_json::{Value, json};

fn entry(i: u64) -> NewEntry {
    NewEntry {
        session: "s".into(),
        kind: "message".into(),
        payload: json!({"i": i, "text": "some text to take up room in the segment"}),
    }
}

async fn append_many(log: &MessageLog, n: u64) -> Vec<u64> {
    let mut stamps = Vec::new();
    // Concurrent appenders share group commits.
    let mut handles = Vec::new();
    for chunk in 0..8 {
        let log = log.clone();
        handles.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (chunk..n).step_by(8) {
                out.push((i, log.append(entry(i)).await.unwrap()));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort();
    stamps.extend(all.into_iter().map(|(_, ts)| ts));
    stamps
}

fn all_entries(dir: &std::path::Path) -> Vec<Value> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = query(
            dir,
            &HistoryQuery {
                before,
                limit: 333,
                ..Default::default()
            },
        )
        .unwrap();
        let mut entries = page.entries;
        entries.extend(out);
        out = entries;
        if !page.more {
            return out;
        }
        before = page.next_before;
    }
}

#[tokio::test]
async fn rotates_by_size_and_queries_span_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        rotate_bytes: 8 * 1024,
        ..LogConfig::default()
    };
    let log = MessageLog::open(dir.path().to_path_buf(), config).unwrap();
    let stamps = append_many(&log, 2000).await;
    log.flush().await.unwrap();
    let segs = segments(dir.path());
    assert!(segs.len() > 10, "rotated by size: {} segments", segs.len());

    // Every entry, once, in ts order, across every segment, paging backwards.
    let entries = all_entries(dir.path());
    assert_eq!(entries.len(), 2000);
    let ts: Vec<u64> = entries.iter().map(|e| e["ts"].as_u64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
    let mut sorted = stamps.clone();
    sorted.sort();
    assert_eq!(ts, sorted, "the acknowledged stamps are the stored ones");

    // A time window in the middle, crossing segment boundaries.
    let (since, until) = (sorted[500], sorted[1499]);
    let page = query(
        dir.path(),
        &HistoryQuery {
            since: Some(since),
            until: Some(until),
            limit: 1000,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(page.entries.len(), 1000);
    assert!(!page.more);
    assert_eq!(page.entries[0]["ts"], since);
    assert_eq!(page.entries[999]["ts"], until);
    // The newest 10 before a cursor.
    let page = query(
        dir.path(),
        &HistoryQuery {
            before: Some(sorted[100]),
            limit: 10,
            ..Default::default()
        },
    )
    .unwrap();
    let got: Vec<u64> = page
        .entries
        .iter()
        .map(|e| e["ts"].as_u64().unwrap())
        .collect();
    assert_eq!(got, sorted[90..100].to_vec());
    assert!(page.more);
    assert_eq!(page.next_before, Some(sorted[90]));
    // Empty windows.
    let page = query(
        dir.path(),
        &HistoryQuery {
            since: Some(sorted[1999] + 1),
            limit: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(page.entries.is_empty() && !page.more);
    let page = query(
        dir.path(),
        &HistoryQuery {
            until: Some(sorted[0] - 1),
            limit: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(page.entries.is_empty());
}

#[tokio::test]
async fn rotates_by_age_and_retention_deletes_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        rotate_age: Duration::from_millis(100),
        retention: Some(Duration::from_millis(700)),
        ..LogConfig::default()
    };
    let log = MessageLog::open(dir.path().to_path_buf(), config).unwrap();
    log.append(entry(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    log.append(entry(2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    log.append(entry(3)).await.unwrap();
    assert_eq!(segments(dir.path()).len(), 3, "one segment per age window");
    assert_eq!(all_entries(dir.path()).len(), 3);
    tokio::time::sleep(Duration::from_millis(800)).await;
    log.append(entry(4)).await.unwrap();
    let left = all_entries(dir.path());
    assert_eq!(left.len(), 1, "older segments expired: {left:?}");
    assert_eq!(left[0]["payload"]["i"], 4);
}

#[tokio::test]
async fn a_torn_last_line_is_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = MessageLog::open(dir.path().to_path_buf(), LogConfig::default()).unwrap();
        append_many(&log, 100).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seg = segments(dir.path()).pop().unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(br#"{"ts":99999999999999999,"session":"s","kind":"message","payl"#)
        .unwrap();
    drop(f);
    let log = MessageLog::open(dir.path().to_path_buf(), LogConfig::default()).unwrap();
    let text = std::fs::read_to_string(&seg).unwrap();
    assert!(text.ends_with('\n'));
    assert_eq!(text.lines().count(), 100);
    // Appends continue after the cut, with later stamps.
    let ts = log.append(entry(100)).await.unwrap();
    let entries = all_entries(dir.path());
    assert_eq!(entries.len(), 101);
    assert_eq!(entries[100]["ts"], ts);

    // A line that is complete but not JSON at the end is cut too; a file of only garbage is
    // removed; loading never fails.
    drop(log);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(b"garbage\n").unwrap();
    drop(f);
    std::fs::write(dir.path().join("99999999999999999999.jsonl"), b"junk").unwrap();
    let log = MessageLog::open(dir.path().to_path_buf(), LogConfig::default()).unwrap();
    assert_eq!(all_entries(dir.path()).len(), 101);
    log.append(entry(101)).await.unwrap();
    assert_eq!(all_entries(dir.path()).len(), 102);
}
