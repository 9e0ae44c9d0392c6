//! Server-side edits written back to the client, all or nothing.
//!
//! A [`WriteBack`] is a plan of writes, deletions and renames, each with the hash the edit was
//! based on. [`WriteBack::apply`] first checks every expected hash (reading the originals, which
//! it keeps for rollback), then performs the operations in order, each again guarded by its
//! expected hash on the client. If any operation fails, the ones already done are undone in
//! reverse order — each undo guarded by the hash just written, so a change someone made in the
//! meantime is never clobbered — and the plan fails with [`FileError::RolledBack`].

use crate::client_files::{self, ClientFiles};
use crate::delta;
use crate::error::FileError;
use crate::mirror::Mirror;
use crate::paths::ClientPath;
use crate::protocol::ContentHash;

/// What a file must hold for an operation to go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The file must not exist (creating a new file).
    Absent,
    /// The file must have this hash.
    Hash(ContentHash),
}

#[derive(Debug, Clone)]
enum Op {
    Write {
        path: ClientPath,
        content: Vec<u8>,
        expect: Expect,
    },
    Delete {
        path: ClientPath,
        expect: ContentHash,
    },
    Rename {
        from: ClientPath,
        to: ClientPath,
        expect: ContentHash,
    },
}

/// Undo steps for operations already applied.
#[derive(Debug)]
enum Undo {
    Restore {
        path: ClientPath,
        original: Vec<u8>,
        written: ContentHash,
    },
    Remove {
        path: ClientPath,
        written: ContentHash,
    },
    Recreate {
        path: ClientPath,
        original: Vec<u8>,
    },
    RenameBack {
        from: ClientPath,
        to: ClientPath,
        hash: ContentHash,
    },
}

/// The outcome of a successful write-back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBackReport {
    /// Files written, with their new hashes.
    pub written: Vec<(ClientPath, ContentHash)>,
    /// Files deleted.
    pub deleted: Vec<ClientPath>,
    /// Files renamed (from, to).
    pub renamed: Vec<(ClientPath, ClientPath)>,
    /// Writes sent as `client/writeDelta` rather than full content.
    pub deltas_used: usize,
}

/// A multi-file edit to apply to the client all or nothing.
#[derive(Debug, Clone, Default)]
pub struct WriteBack {
    ops: Vec<Op>,
}

impl WriteBack {
    /// An empty write-back.
    pub fn new() -> Self {
        Self::default()
    }

    /// Write `content` to `path`, which must be as `expect` says.
    pub fn write(mut self, path: ClientPath, content: impl Into<Vec<u8>>, expect: Expect) -> Self {
        self.ops.push(Op::Write {
            path,
            content: content.into(),
            expect,
        });
        self
    }

    /// Delete `path`, which must have hash `expect`.
    pub fn delete(mut self, path: ClientPath, expect: ContentHash) -> Self {
        self.ops.push(Op::Delete { path, expect });
        self
    }

    /// Rename `from` (which must have hash `expect`) to `to` (which must not exist).
    pub fn rename(mut self, from: ClientPath, to: ClientPath, expect: ContentHash) -> Self {
        self.ops.push(Op::Rename { from, to, expect });
        self
    }

    /// How many operations it holds.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether it holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Applies the plan to the client, all or nothing (see the module docs). A conflict found
    /// before anything is written is returned as [`FileError::Conflict`]; a failure after some
    /// operations were applied is returned as [`FileError::RolledBack`] once they are undone.
    pub async fn apply(&self, client: &dyn ClientFiles) -> Result<WriteBackReport, FileError> {
        self.apply_keeping_originals(client)
            .await
            .map(|(report, _)| report)
    }

    /// [`WriteBack::apply`], also returning each operation's original content as read (and
    /// hash-checked) on the client before anything was written.
    async fn apply_keeping_originals(
        &self,
        client: &dyn ClientFiles,
    ) -> Result<(WriteBackReport, Vec<Option<Vec<u8>>>), FileError> {
        self.check_distinct()?;
        let originals = self.preflight(client).await?;
        let mut undo: Vec<Undo> = Vec::new();
        let mut report = WriteBackReport::default();
        for (op, original) in self.ops.iter().zip(&originals) {
            let result = Self::perform(client, op, original.clone(), &mut undo, &mut report).await;
            if let Err(cause) = result {
                let failed_path = match op {
                    Op::Write { path, .. } | Op::Delete { path, .. } => path.to_string(),
                    Op::Rename { from, .. } => from.to_string(),
                };
                let not_restored = Self::roll_back(client, undo).await;
                if !not_restored.is_empty() {
                    tracing::error!(?not_restored, "write-back rollback incomplete");
                    return Err(FileError::RollbackIncomplete {
                        failed_path,
                        cause: Box::new(cause),
                        not_restored,
                    });
                }
                return Err(FileError::RolledBack {
                    failed_path,
                    cause: Box::new(cause),
                });
            }
        }
        Ok((report, originals))
    }

    /// [`WriteBack::apply`], then records the new contents in `mirror` so tools see them
    /// before the client's watcher echoes them.
    ///
    /// The mirror update never races with that echo: everything it needs (a renamed file's
    /// content included) comes from the plan and the originals read on the client, not from
    /// the mirror after the client was written; and a path the mirror changed since before
    /// the client was written (the echo, or a newer change) is left as the mirror has it
    /// ([`Mirror::record_local`]). So a write that succeeded on the client never fails here
    /// because the echo came first.
    pub async fn apply_and_mirror(
        &self,
        client: &dyn ClientFiles,
        mirror: &Mirror,
    ) -> Result<WriteBackReport, FileError> {
        if mirror.is_shared() {
            return self.apply(client).await;
        }
        let paths = mirror.paths();
        // Where every touched path stands in the mirror before the client is touched.
        let mut marks = Vec::with_capacity(self.ops.len());
        for op in &self.ops {
            let (first, second) = match op {
                Op::Write { path, .. } | Op::Delete { path, .. } => (path, None),
                Op::Rename { from, to, .. } => (from, Some(to)),
            };
            let first = paths.to_mirror(first)?;
            let second = second.map(|p| paths.to_mirror(p)).transpose()?;
            let first_mark = mirror.mark(&first);
            let second = second.map(|p| {
                let mark = mirror.mark(&p);
                (p, mark)
            });
            marks.push(((first, first_mark), second));
        }
        let (report, originals) = self.apply_keeping_originals(client).await?;
        for ((op, original), ((path, mark), second)) in self.ops.iter().zip(originals).zip(marks) {
            match op {
                Op::Write { content, .. } => {
                    mirror
                        .record_local(&path, Some(content.clone()), mark)
                        .await?;
                }
                Op::Delete { .. } => {
                    mirror.record_local(&path, None, mark).await?;
                }
                Op::Rename { .. } => {
                    // The content moved is what the client held under the expected hash.
                    if let Some((to, to_mark)) = second {
                        mirror.record_local(&to, original, to_mark).await?;
                    }
                    mirror.record_local(&path, None, mark).await?;
                }
            }
        }
        Ok(report)
    }

    fn check_distinct(&self) -> Result<(), FileError> {
        let mut seen = std::collections::HashSet::new();
        for op in &self.ops {
            let paths: Vec<&ClientPath> = match op {
                Op::Write { path, .. } | Op::Delete { path, .. } => vec![path],
                Op::Rename { from, to, .. } => vec![from, to],
            };
            for p in paths {
                if !seen.insert(p.clone()) {
                    return Err(FileError::InvalidParams(format!(
                        "{p} appears twice in one write-back; merge the edits first"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Checks every expected hash; returns each operation's original content (for rollback).
    async fn preflight(&self, client: &dyn ClientFiles) -> Result<Vec<Option<Vec<u8>>>, FileError> {
        let mut originals = Vec::with_capacity(self.ops.len());
        for op in &self.ops {
            let (path, expect) = match op {
                Op::Write { path, expect, .. } => (path, expect.clone()),
                Op::Delete { path, expect } => (path, Expect::Hash(expect.clone())),
                Op::Rename { from, to, expect } => {
                    if let Some(stats) = client_files::file_stats(client, to).await? {
                        return Err(FileError::Conflict {
                            path: to.to_string(),
                            actual: stats.hash,
                        });
                    }
                    (from, Expect::Hash(expect.clone()))
                }
            };
            match expect {
                Expect::Absent => {
                    if let Some(stats) = client_files::file_stats(client, path).await? {
                        return Err(FileError::Conflict {
                            path: path.to_string(),
                            actual: stats.hash,
                        });
                    }
                    originals.push(None);
                }
                Expect::Hash(expected) => match client_files::read_file(client, path).await {
                    Ok((bytes, meta)) if meta.hash == expected => originals.push(Some(bytes)),
                    Ok((_, meta)) => {
                        return Err(FileError::Conflict {
                            path: path.to_string(),
                            actual: Some(meta.hash),
                        });
                    }
                    Err(FileError::NotFound(_)) => {
                        return Err(FileError::Conflict {
                            path: path.to_string(),
                            actual: None,
                        });
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(originals)
    }

    async fn perform(
        client: &dyn ClientFiles,
        op: &Op,
        original: Option<Vec<u8>>,
        undo: &mut Vec<Undo>,
        report: &mut WriteBackReport,
    ) -> Result<(), FileError> {
        match op {
            Op::Write {
                path,
                content,
                expect,
            } => {
                let new_hash = ContentHash::of(content);
                let used_delta = match (expect, &original) {
                    (Expect::Hash(base), Some(orig)) => {
                        send_as_delta(client, path, base, orig, content, &new_hash).await?
                    }
                    _ => false,
                };
                if !used_delta {
                    let expected = match expect {
                        Expect::Absent => None,
                        Expect::Hash(h) => Some(h),
                    };
                    client_files::write_file(client, path, content, expected).await?;
                }
                report.deltas_used += usize::from(used_delta);
                report.written.push((path.clone(), new_hash.clone()));
                undo.push(match original {
                    Some(original) => Undo::Restore {
                        path: path.clone(),
                        original,
                        written: new_hash,
                    },
                    None => Undo::Remove {
                        path: path.clone(),
                        written: new_hash,
                    },
                });
            }
            Op::Delete { path, expect } => {
                client_files::delete_file(client, path, Some(expect)).await?;
                report.deleted.push(path.clone());
                undo.push(Undo::Recreate {
                    path: path.clone(),
                    original: original.unwrap_or_default(),
                });
            }
            Op::Rename { from, to, expect } => {
                client_files::rename_file(client, from, to, Some(expect)).await?;
                report.renamed.push((from.clone(), to.clone()));
                undo.push(Undo::RenameBack {
                    from: to.clone(),
                    to: from.clone(),
                    hash: expect.clone(),
                });
            }
        }
        Ok(())
    }

    /// Undoes applied operations in reverse; returns the paths that could not be restored.
    async fn roll_back(client: &dyn ClientFiles, undo: Vec<Undo>) -> Vec<String> {
        let mut failed = Vec::new();
        for step in undo.into_iter().rev() {
            let (path, result) = match &step {
                Undo::Restore {
                    path,
                    original,
                    written,
                } => (
                    path,
                    client_files::write_file(client, path, original, Some(written))
                        .await
                        .map(|_| ()),
                ),
                Undo::Remove { path, written } => (
                    path,
                    client_files::delete_file(client, path, Some(written)).await,
                ),
                Undo::Recreate { path, original } => (
                    path,
                    client_files::write_file(client, path, original, None)
                        .await
                        .map(|_| ()),
                ),
                Undo::RenameBack { from, to, hash } => (
                    to,
                    client_files::rename_file(client, from, to, Some(hash)).await,
                ),
            };
            if let Err(e) = result {
                tracing::error!(path = %path, error = %e, "could not undo a write-back step");
                failed.push(path.to_string());
            }
        }
        failed
    }
}

/// Sends a text edit as `client/writeDelta` when that is clearly smaller; returns whether it
/// did. A refused delta (base changed) is a conflict like any other.
async fn send_as_delta(
    client: &dyn ClientFiles,
    path: &ClientPath,
    base: &ContentHash,
    original: &[u8],
    content: &[u8],
    new_hash: &ContentHash,
) -> Result<bool, FileError> {
    let (Ok(old), Ok(new)) = (std::str::from_utf8(original), std::str::from_utf8(content)) else {
        return Ok(false);
    };
    let edits = delta::compute(old, new);
    if !delta::worth_sending(&edits, new.len()) {
        return Ok(false);
    }
    match client_files::write_delta(client, path, base, edits, new_hash).await {
        Ok(_) => Ok(true),
        Err(FileError::BaseMismatch { path, actual }) => Err(FileError::Conflict { path, actual }),
        Err(e) => Err(e),
    }
}
