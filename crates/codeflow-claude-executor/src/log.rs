//! A project's message log: JSON lines `{"ts", "session", "kind", "payload"}` in segment files
//! `<dir>/<first ts, 20 digits>.jsonl`.
//!
//! **Durability: group commit.** Appends go through a bounded queue to one writer task per
//! project. The writer takes everything queued (up to [`LogConfig::batch`] entries), writes it
//! with one `write` and one `fdatasync`, and only then acknowledges each append of the batch.
//! An acknowledged append therefore survives a crash of the process or of the machine; appends
//! that arrive while a sync runs share the next one, so throughput grows with concurrency
//! instead of being one sync per append.
//!
//! `ts` is microseconds since the Unix epoch, strictly increasing within a project (a clock
//! that stands still or goes back is bumped by one), so it orders entries and serves as the
//! paging cursor of [`crate::history`].
//!
//! **Rotation** happens in the writer, in the background of appends: a segment is sealed once it
//! reaches [`LogConfig::rotate_bytes`] or its first entry is [`LogConfig::rotate_age`] old (checked
//! on every batch and once a minute); the next append starts a new segment. Sealed segments
//! last written longer ago than [`LogConfig::retention`] (off by default) are deleted.
//!
//! **Recovery** on open: a last line without its newline (a write torn by a crash) or one that
//! does not parse is cut off; loading never fails because of it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::config::LogConfig;

/// Why an append failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LogError {
    /// The disk failed (the message says how).
    #[error("cannot write the message log: {0}")]
    Io(String),
    /// The log was shut down.
    #[error("the message log is closed")]
    Closed,
}

/// One entry as appended.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The session that sent it (or `server` for the executor's own records).
    pub session: String,
    /// What it is: a client message, a run event, …
    pub kind: String,
    /// The message or event itself.
    pub payload: Value,
}

struct Append {
    /// `None`: a barrier, acknowledged once everything before it is durable.
    entry: Option<NewEntry>,
    ack: Option<oneshot::Sender<Result<u64, LogError>>>,
}

/// The handle of a project's log. Cloning shares the writer; the writer stops when the last
/// handle is dropped, after writing what was queued.
#[derive(Clone)]
pub struct MessageLog {
    dir: Arc<PathBuf>,
    tx: mpsc::Sender<Append>,
}

impl std::fmt::Debug for MessageLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageLog")
            .field("dir", &self.dir)
            .finish()
    }
}

/// Microseconds since the Unix epoch.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The segment files of a log directory, oldest first: (first ts, path).
pub(crate) fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".jsonl")
            && let Ok(ts) = stem.parse::<u64>()
        {
            found.push((ts, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The segment files of a log directory, oldest first (for tests and tools).
pub fn segments_for_tests(dir: &Path) -> Vec<PathBuf> {
    segments(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

fn segment_path(dir: &Path, first_ts: u64) -> PathBuf {
    dir.join(format!("{first_ts:020}.jsonl"))
}

/// The `ts` of one log line, if it parses.
pub(crate) fn line_ts(line: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Ts {
        ts: u64,
    }
    serde_json::from_slice::<Ts>(line).ok().map(|t| t.ts)
}

/// The writer's state, moved into blocking sections.
struct Writer {
    dir: PathBuf,
    config: LogConfig,
    /// The open segment: file, first ts, size.
    active: Option<(File, u64, u64)>,
    last_ts: u64,
    buffer: Vec<u8>,
}

impl Writer {
    /// Opens a log directory: cuts a torn last line, finds the last ts.
    fn open(dir: PathBuf, config: LogConfig) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        let mut last_ts = 0;
        let mut active = None;
        let segs = segments(&dir)?;
        for (first, path) in segs.iter().rev() {
            let newest = Some(path) == segs.last().map(|(_, p)| p);
            let opened = repair_tail(path).and_then(|(len, ts)| {
                if len == 0 {
                    // Nothing survived in it: remove it so its name does not claim a first
                    // entry.
                    fs::remove_file(path)?;
                    crate::atomic::sync_dir(&dir)?;
                    return Ok(None);
                }
                let file = if newest {
                    Some(OpenOptions::new().append(true).open(path)?)
                } else {
                    None
                };
                Ok(Some((len, ts, file)))
            });
            match opened {
                Err(e) => {
                    // An unreadable segment must not stop the server: set it aside, keep the
                    // stamps after its name, and go on with the older ones.
                    quarantine(path, &e);
                    last_ts = last_ts.max(*first);
                }
                Ok(None) => {}
                Ok(Some((len, ts, file))) => {
                    last_ts = last_ts.max(ts.unwrap_or(*first));
                    if let Some(file) = file {
                        active = Some((file, *first, len));
                    }
                    break;
                }
            }
        }
        Ok(Self {
            dir,
            config,
            active,
            last_ts,
            buffer: Vec::with_capacity(64 * 1024),
        })
    }

    /// Writes a batch and syncs it; returns each entry's ts.
    fn write_batch(&mut self, batch: &[NewEntry]) -> io::Result<Vec<u64>> {
        #[derive(Serialize)]
        struct Line<'a> {
            ts: u64,
            session: &'a str,
            kind: &'a str,
            payload: &'a Value,
        }
        self.rotate_if_due(now_micros())?;
        self.buffer.clear();
        let mut stamps = Vec::with_capacity(batch.len());
        for entry in batch {
            let ts = now_micros().max(self.last_ts + 1);
            self.last_ts = ts;
            serde_json::to_writer(
                &mut self.buffer,
                &Line {
                    ts,
                    session: &entry.session,
                    kind: &entry.kind,
                    payload: &entry.payload,
                },
            )
            .map_err(io::Error::other)?;
            self.buffer.push(b'\n');
            stamps.push(ts);
        }
        let Some(&first) = stamps.first() else {
            return Ok(stamps);
        };
        if self.active.is_none() {
            let path = segment_path(&self.dir, first);
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            crate::atomic::sync_dir(&self.dir)?;
            self.active = Some((file, first, 0));
        }
        if let Some((file, _, size)) = &mut self.active {
            if let Err(e) = file.write_all(&self.buffer).and_then(|()| file.sync_data()) {
                // The file may hold part of the batch: cut it back so no torn line stays
                // in the middle of the log, and report the failure.
                let _ = file.set_len(*size);
                return Err(e);
            }
            *size += self.buffer.len() as u64;
        }
        self.rotate_if_due(now_micros())?;
        Ok(stamps)
    }

    /// Seals the active segment when it is too big or too old; deletes expired segments.
    fn rotate_if_due(&mut self, now: u64) -> io::Result<()> {
        let age = |first: u64| Duration::from_micros(now.saturating_sub(first));
        if let Some((_, first, size)) = &self.active
            && (*size >= self.config.rotate_bytes || age(*first) >= self.config.rotate_age)
        {
            self.active = None;
        }
        if let Some(retention) = self.config.retention {
            // A sealed segment was last written when its newest entry was: its mtime says
            // whether every entry in it has expired.
            let active = self
                .active
                .as_ref()
                .map(|(_, first, _)| segment_path(&self.dir, *first));
            for (_, path) in segments(&self.dir)? {
                if Some(&path) == active.as_ref() {
                    continue;
                }
                let expired = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= retention);
                if expired {
                    fs::remove_file(&path)?;
                }
            }
        }
        Ok(())
    }
}

/// Cuts a torn or unparsable tail off a segment. Returns the new length and the last ts.
/// Renames a segment that cannot be read or repaired to `<name>.corrupt` (no longer a segment:
/// history and the writer skip it; an operator can inspect it).
pub(crate) fn quarantine(path: &Path, error: &io::Error) {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    match fs::rename(path, &aside) {
        Ok(()) => tracing::error!(
            path = %path.display(), error = %error,
            "message log: a segment cannot be read; set aside as {}", Path::new(&aside).display()
        ),
        Err(e) => tracing::error!(
            path = %path.display(), error = %error, rename_error = %e,
            "message log: a segment cannot be read, nor set aside; skipped"
        ),
    }
}

fn repair_tail(path: &Path) -> io::Result<(u64, Option<u64>)> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut len = file.metadata()?.len();
    loop {
        if len == 0 {
            return Ok((0, None));
        }
        // The last line: from after the previous newline up to `len`.
        let end_has_newline = read_byte(&mut file, len - 1)? == b'\n';
        let body_end = if end_has_newline { len - 1 } else { len };
        let start = match last_newline_before(&mut file, body_end)? {
            Some(p) => p + 1,
            None => 0,
        };
        let mut line = vec![0; usize::try_from(body_end - start).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut line)?;
        match (end_has_newline, line_ts(&line)) {
            (true, Some(ts)) => {
                if len != file.metadata()?.len() {
                    file.set_len(len)?;
                    file.sync_all()?;
                }
                return Ok((len, Some(ts)));
            }
            _ => {
                tracing::warn!(path = %path.display(), cut = len - start, "message log: cutting a torn last line");
                len = start;
                file.set_len(len)?;
                file.sync_all()?;
            }
        }
    }
}

fn read_byte(file: &mut File, at: u64) -> io::Result<u8> {
    let mut b = [0u8; 1];
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(&mut b)?;
    Ok(b[0])
}

/// The position of the last `\n` before `end`, reading backwards in blocks.
pub(crate) fn last_newline_before(file: &mut File, end: u64) -> io::Result<Option<u64>> {
    const BLOCK: u64 = 64 * 1024;
    let mut pos = end;
    let mut buf = vec![0u8; BLOCK as usize];
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK);
        let n = usize::try_from(pos - start).unwrap_or(0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        pos = start;
    }
    Ok(None)
}

impl MessageLog {
    /// Opens (and repairs) the log in `dir` and starts its writer task. Blocking file work:
    /// call from a blocking context or accept the short stall at start-up.
    pub fn open(dir: PathBuf, config: LogConfig) -> io::Result<Self> {
        let queue = config.queue.max(1);
        let batch_max = config.batch.max(1);
        let mut writer = Writer::open(dir.clone(), config)?;
        let (tx, mut rx) = mpsc::channel::<Append>(queue);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(60));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let first = tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => Some(m),
                        None => break,
                    },
                    _ = ticker.tick() => None,
                };
                let mut batch = Vec::new();
                batch.extend(first);
                while batch.len() < batch_max {
                    match rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                let mut entries = Vec::with_capacity(batch.len());
                let mut acks = Vec::with_capacity(batch.len());
                for a in batch {
                    acks.push((a.entry.is_some(), a.ack));
                    entries.extend(a.entry);
                }
                let outcome = tokio::task::spawn_blocking(move || {
                    let result = if entries.is_empty() {
                        writer.rotate_if_due(now_micros()).map(|()| Vec::new())
                    } else {
                        writer.write_batch(&entries)
                    };
                    (writer, result)
                })
                .await;
                let Ok((back, result)) = outcome else {
                    tracing::error!("message log writer panicked; the log is closed");
                    break;
                };
                writer = back;
                match result {
                    Ok(stamps) => {
                        if !stamps.is_empty() {
                            crate::metrics::log_commit(stamps.len());
                        }
                        let mut stamps = stamps.into_iter();
                        let mut last = writer.last_ts;
                        for (is_entry, ack) in acks {
                            if is_entry {
                                last = stamps.next().unwrap_or(last);
                            }
                            if let Some(ack) = ack {
                                let _ = ack.send(Ok(last));
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(dir = %writer.dir.display(), error = %e, "message log write failed");
                        let error = LogError::Io(e.to_string());
                        for (_, ack) in acks {
                            let Some(ack) = ack else { continue };
                            let _ = ack.send(Err(error.clone()));
                        }
                    }
                }
            }
        });
        Ok(Self {
            dir: Arc::new(dir),
            tx,
        })
    }

    /// The directory the log's segments are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends an entry and waits until it is durable; returns its ts.
    pub async fn append(&self, entry: NewEntry) -> Result<u64, LogError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Append {
                entry: Some(entry),
                ack: Some(ack),
            })
            .await
            .map_err(|_| LogError::Closed)?;
        done.await.map_err(|_| LogError::Closed)?
    }

    /// Queues an entry without waiting for it to be durable (waits only for room in the
    /// queue). For run events, whose order the writer keeps.
    pub async fn record(&self, entry: NewEntry) {
        let _ = self
            .tx
            .send(Append {
                entry: Some(entry),
                ack: None,
            })
            .await;
    }

    /// Waits until everything queued before this call is durable.
    pub async fn flush(&self) -> Result<(), LogError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Append {
                entry: None,
                ack: Some(ack),
            })
            .await
            .map_err(|_| LogError::Closed)?;
        done.await.map_err(|_| LogError::Closed)?.map(|_| ())
    }
}
