//! Runs on a streamed project (the executor's side): the run's private working copy, its
//! changes against the starting state, their write-back through [`StreamedFiles`], and the
//! record `claude/changes` reads.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::{Executor, io_err};
use crate::error::{ErrorKind, ExecError, Result};
use crate::project::now_millis;
use crate::sink::{Caller, Need};
use crate::streamed::{StreamedFiles, WriteBackOutcome};
use crate::working_copy::{self, ChangedFile, Record};

impl Executor {
    /// Makes a run's private copy of a streamed project: the mirror's files copied to
    /// `base/` (kept as the starting state) and again to `work/`, where the CLI runs.
    pub(super) async fn working_copy(
        &self,
        streams: &dyn StreamedFiles,
        id: &str,
        run_id: &str,
        session: &str,
    ) -> Result<PathBuf> {
        let dir = working_copy::run_dir(&self.config.state_dir, id, run_id);
        let prepared = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || working_copy::prepare(&dir))
                .await
                .map_err(|e| io_err("working copy failed", e))?
        };
        let result = async {
            let base = prepared.map_err(|e| io_err("cannot create the run's working copy", e))?;
            let files = streams.copy_out(id, session, &base).await.map_err(|e| {
                ExecError::internal(format!("cannot copy the project's files: {e}")).suggest(
                    "check that the project's client is connected and synced, then run again",
                )
            })?;
            let (base, work) = working_copy::base_and_work(&dir);
            let (uid, gid) = (self.config.run_as_uid, self.config.run_as_gid);
            tokio::task::spawn_blocking(move || {
                working_copy::copy_tree(&base, &work)?;
                working_copy::hand_over(&work, uid, gid)
            })
            .await
            .map_err(|e| io_err("working copy failed", e))?
            .map_err(|e| io_err("cannot fill the run's working copy", e))?;
            tracing::info!(project = %id, run = %run_id, files, "working copy made");
            Ok(working_copy::base_and_work(&dir).1)
        }
        .await;
        if result.is_err() {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        }
        result
    }

    /// Compares a streamed run's working copy with its starting state, writes the changes
    /// back to the client (unless `refused` says why not), and keeps them for `claude/changes`.
    pub(super) async fn finish_working_copy(
        &self,
        id: &str,
        run_id: &str,
        session: &str,
        refused: Option<&str>,
    ) -> Record {
        let dir = working_copy::run_dir(&self.config.state_dir, id, run_id);
        let mut record = Record {
            run_id: run_id.to_owned(),
            project: id.to_owned(),
            files: Vec::new(),
            applied: false,
            conflicts: Vec::new(),
            write_back: String::new(),
            ended_at: now_millis(),
        };
        let compared = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || {
                let (base, work) = working_copy::base_and_work(&dir);
                working_copy::changes(&base, &work)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        };
        let changes = match compared {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(project = %id, run = %run_id, error = %e, "cannot compare the run's working copy");
                record.write_back =
                    format!("not written back: the working copy could not be compared ({e})");
                return record;
            }
        };
        record.files = changes
            .iter()
            .map(|c| ChangedFile {
                path: c.path.clone(),
                action: c.action().to_owned(),
            })
            .collect();
        if changes.is_empty() {
            record.applied = true;
            record.write_back = "the run changed no file".into();
        } else if let Some(why) = refused {
            record.write_back =
                format!("not written back: {why}; claude/changes shows what the run changed");
        } else {
            match self.streams() {
                None => record.write_back = "not written back: no file streaming".into(),
                Some(streams) => match streams.write_back(id, session, &changes).await {
                    WriteBackOutcome::Applied { session } => {
                        record.applied = true;
                        record.write_back =
                            format!("written to the client's files through session {session}");
                    }
                    WriteBackOutcome::Conflicts(paths) => {
                        record.write_back = format!(
                            "not written back: {} changed on the client during the run; nothing was written",
                            paths.join(", ")
                        );
                        record.conflicts = paths;
                    }
                    WriteBackOutcome::NoSession => {
                        record.write_back = "not written back: no live session of the project serves its files; claude/changes shows what the run changed".into();
                    }
                    WriteBackOutcome::Failed(e) => {
                        record.write_back = format!("not written back: {e}");
                    }
                },
            }
        }
        tracing::info!(project = %id, run = %run_id, files = changes.len(), applied = record.applied, "{}", record.write_back);
        let kept = {
            let record = record.clone();
            let state_dir = self.config.state_dir.clone();
            let id = id.to_owned();
            tokio::task::spawn_blocking(move || {
                working_copy::keep(&dir, &changes, &record)?;
                working_copy::prune(
                    &working_copy::runs_dir(&state_dir, &id),
                    working_copy::KEEP_RUNS,
                )
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        };
        if let Err(e) = kept {
            tracing::error!(project = %id, run = %run_id, error = %e, "cannot keep the run's changes");
        }
        record
    }

    /// `claude/changes {runId}`: what a streamed run changed, as a unified diff.
    pub(super) async fn run_changes(
        &self,
        params: &serde_json::Map<String, Value>,
        caller: &dyn Caller,
    ) -> Result<Value> {
        let run_id = params
            .get("runId")
            .and_then(Value::as_str)
            .filter(|r| {
                (1..=64).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
            })
            .ok_or_else(|| ExecError::invalid("`runId` (a run id) is required"))?
            .to_owned();
        let not_found = || {
            ExecError::new(
                ErrorKind::NotFound,
                format!(
                    "run {run_id} has no recorded changes (not a run on a streamed project, too old, or never existed)"
                ),
            )
        };
        if let Some(handle) = self.runs.lock().get(&run_id) {
            if caller.check(Need::Execute, &handle.project).is_err() {
                return Err(not_found());
            }
            return Err(ExecError::new(
                ErrorKind::Conflict,
                format!("run {run_id} is still running"),
            )
            .suggest("its changes are known once its `complete` event arrives"));
        }
        let ids: Vec<String> = self.projects.lock().keys().cloned().collect();
        for id in ids {
            if caller.check(Need::Execute, &id).is_err() {
                continue;
            }
            let dir = working_copy::run_dir(&self.config.state_dir, &id, &run_id);
            let loaded = tokio::task::spawn_blocking(move || working_copy::load(&dir))
                .await
                .map_err(|e| io_err("reading the run's changes failed", e))?
                .map_err(|e| io_err("cannot read the run's changes", e))?;
            if let Some((record, changes)) = loaded {
                let (diff, truncated) = capped(working_copy::unified_diff(&changes), DIFF_LIMIT);
                return Ok(json!({
                    "runId": run_id, "project": id, "applied": record.applied,
                    "conflicts": record.conflicts, "writeBack": record.write_back,
                    "files": record.files, "diff": diff, "truncated": truncated,
                }));
            }
        }
        Err(not_found())
    }
}

/// The most diff text `claude/changes` returns (well under a frame's size limit); the rest is
/// cut at a line boundary and the answer says `truncated: true` (`files` still lists every
/// changed file).
const DIFF_LIMIT: usize = 4 * 1024 * 1024;

/// `text` cut to at most `limit` bytes at the end of a line, and whether it was cut.
fn capped(mut text: String, limit: usize) -> (String, bool) {
    if text.len() <= limit {
        return (text, false);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let end = text[..end].rfind('\n').map_or(end, |i| i + 1);
    text.truncate(end);
    (text, true)
}

/// A streamed run's changes in its `complete` event.
pub(super) fn add_changes(event: &mut Value, record: &Record) {
    event["changes"] = json!(record.files);
    event["applied"] = json!(record.applied);
    event["conflicts"] = json!(record.conflicts);
    event["writeBack"] = json!(record.write_back);
}

#[cfg(test)]
mod tests {
    use super::capped;

    #[test]
    fn long_diffs_are_cut_at_a_line_and_say_so() {
        assert_eq!(capped("a\nb\n".into(), 10), ("a\nb\n".into(), false));
        assert_eq!(
            capped("abc\ndef\nghi\n".into(), 9),
            ("abc\ndef\n".into(), true)
        );
        let (cut, truncated) = capped("é".repeat(10), 5);
        assert!(truncated && cut.len() <= 5 && cut.chars().all(|c| c == 'é'));
    }
}
