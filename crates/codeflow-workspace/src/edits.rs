//! Edits computed on the server (an LSP `WorkspaceEdit`, a formatter's text edits, a tool's
//! own file operations) turned into one all-or-nothing write-back to the client — or into a
//! dry-run description of exactly what would change.
//!
//! An [`EditPlan`] is a small virtual file system over the mirror: every operation (text
//! edits, create, rename, delete) is applied in order to in-memory copies of the files, each
//! loaded once from the mirror together with its hash. [`EditPlan::commit`] then compares the
//! final state with the originals and sends one [`WriteBack`] whose every step expects the hash
//! the edit was computed from; if the client's file changed underneath, nothing is written and
//! the error names the file. After a write, the mirror holds the new content at once and the
//! running language servers are told (open documents get the new text).
//!
//! Batches: a plan made for a [`BatchScope`] (passed explicitly to [`EditPlan::new`]) records
//! every commit (original content, hash written) so an atomic batch can put every file back,
//! each restore guarded by the hash the batch wrote; a dry-run batch turns every commit into a
//! description.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use codeflow_file_stream::{
    ContentHash, Expect, FileError, Mirror, MirrorPath, RelPath, WriteBack,
};
use codeflow_lsp_pool::lsp_types::{
    DocumentChangeOperation, DocumentChanges, FileChangeType, OneOf, Position, Range, ResourceOp,
    TextEdit, Url, WorkspaceEdit,
};
use serde_json::Value;

use crate::after_write::{FileDiagnostics, diagnostics_of, diagnostics_text};
use crate::batch::BatchScope;
use crate::caller::Caller;
use crate::error::WorkspaceError;
use crate::lsp_sync::tell_language_servers;
use crate::text::{apply_text_edits, end_position};
use crate::workspace::ProjectWorkspace;

/// One file's state inside a plan.
#[derive(Debug, Clone)]
pub(crate) struct PlannedFile {
    pub(crate) mirror: MirrorPath,
    /// What the client is expected to hold (read from the mirror): content and hash.
    pub(crate) original: Option<(bytes::Bytes, ContentHash)>,
    /// The content after the plan; `None` when the file ends up absent.
    pub(crate) current: Option<Vec<u8>>,
    /// Text edits applied to this file, in order, as given (0-based LSP ranges).
    edits: Vec<TextEdit>,
    /// This file's content came from renaming that one.
    moved_from: Option<RelPath>,
    /// This file was renamed to that one.
    moved_to: Option<RelPath>,
}

/// A multi-file change computed against the mirror, not yet written.
#[derive(Debug)]
pub struct EditPlan {
    caller: Arc<Caller>,
    /// The batch this plan belongs to, if any.
    batch: Option<Arc<BatchScope>>,
    workspace: Arc<ProjectWorkspace>,
    /// The project's mirror in the caller's client paths.
    mirror: Mirror,
    files: BTreeMap<RelPath, PlannedFile>,
    /// Whether out-of-range positions are errors (true) or clamped (false).
    validate: bool,
}

/// What a change does to one file.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum FileAction {
    /// Its text changes.
    Edit,
    /// It is created.
    Create,
    /// It is deleted.
    Delete,
    /// It moves (and its text may change).
    Rename,
}

impl FileAction {
    /// `edit`, `create`, `delete` or `rename`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Edit => "edit",
            Self::Create => "create",
            Self::Delete => "delete",
            Self::Rename => "rename",
        }
    }
}

/// A 1-based line and character.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema, serde::Deserialize,
)]
pub struct EditPosition {
    /// 1-based line.
    pub line: u32,
    /// 1-based character.
    pub character: u32,
}

/// A 1-based range of the file's text before the edit.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema, serde::Deserialize,
)]
pub struct EditRange {
    /// Where it starts.
    pub start: EditPosition,
    /// Where it ends (exclusive).
    pub end: EditPosition,
}

/// One text edit of a report.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema, serde::Deserialize,
)]
pub struct ReportedEdit {
    /// What it replaces.
    pub range: EditRange,
    /// The text put there.
    pub new_text: String,
}

/// What happened to one file (or would, in a dry run), in the client's paths.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema, serde::Deserialize)]
pub struct FileReport {
    /// The file, as the caller's path.
    pub path: String,
    /// What happens to it.
    pub action: FileAction,
    /// For a rename: the old path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Text edits with 1-based ranges, in the coordinates of the file before them: as the
    /// language server gave them, or the minimal differences when those are smaller (a
    /// whole-file replacement is never shown as such).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edits: Vec<ReportedEdit>,
    /// The whole resulting content (created files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// The result of [`EditPlan::commit`].
#[derive(Debug, Clone, PartialEq)]
pub struct EditOutcome {
    /// Nothing was written: the plan was only described.
    pub dry_run: bool,
    /// What happened to each file.
    pub files: Vec<FileReport>,
    /// After a write: the diagnostics of the files it touched, once their language servers
    /// saw the new content (see [`crate::after_write`]). Empty for a dry run.
    pub diagnostics: Vec<FileDiagnostics>,
}

/// An [`EditOutcome`] as tools answer it (`structuredContent`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct OutcomeOutput {
    /// True when nothing was written.
    pub dry_run: bool,
    /// True when the client's files were changed.
    pub applied: bool,
    /// How many files change.
    pub files_changed: usize,
    /// Per file: what changes, with 1-based ranges in the file's text before the edit.
    pub files: Vec<FileReport>,
    /// After a write (not in a dry run): per file it touched that a language server handles,
    /// the diagnostics once the server saw the new content — what the change broke.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Vec<FileDiagnostics>>,
}

impl EditOutcome {
    /// The outcome as tools answer it.
    pub fn to_output(&self) -> OutcomeOutput {
        let applied = !self.dry_run && !self.files.is_empty();
        OutcomeOutput {
            dry_run: self.dry_run,
            applied,
            files_changed: self.files.len(),
            files: self.files.clone(),
            diagnostics: applied.then(|| self.diagnostics.clone()),
        }
    }

    /// One line per file; in a dry run, every edit too; after a write, the diagnostics of the
    /// files it touched.
    pub fn to_text(&self, what: &str) -> String {
        let mut out = self.files_text(what);
        let diagnostics = diagnostics_text(&self.diagnostics);
        if !diagnostics.is_empty() {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&diagnostics);
        }
        out
    }

    fn files_text(&self, what: &str) -> String {
        if self.files.is_empty() {
            return format!("{what}: nothing to change.");
        }
        let mut out = if self.dry_run {
            format!(
                "{what} (dry run, nothing was changed) would change {} file(s):\n",
                self.files.len()
            )
        } else {
            format!("{what}: changed {} file(s):\n", self.files.len())
        };
        for f in &self.files {
            let head = match (&f.from, f.action) {
                (Some(from), _) => format!("{from} -> {}", f.path),
                (None, action) => format!("{} ({})", f.path, action.name()),
            };
            out.push_str(&format!("- {head}: {} edit(s)\n", f.edits.len()));
            if self.dry_run {
                for e in &f.edits {
                    out.push_str(&format!(
                        "    {}:{}-{}:{} -> {}\n",
                        e.range.start.line,
                        e.range.start.character,
                        e.range.end.line,
                        e.range.end.character,
                        Value::String(e.new_text.clone())
                    ));
                }
            }
        }
        out
    }
}

impl EditPlan {
    /// A plan for `caller`'s project; with `batch`, its commit is part of that batch (recorded
    /// for a roll-back, or only described in a dry-run batch).
    pub fn new(
        caller: &Arc<Caller>,
        workspace: Arc<ProjectWorkspace>,
        batch: Option<&Arc<BatchScope>>,
    ) -> Result<Self, WorkspaceError> {
        Ok(Self {
            caller: Arc::clone(caller),
            batch: batch.cloned(),
            mirror: caller.mirror(&workspace)?,
            workspace,
            files: BTreeMap::new(),
            validate: true,
        })
    }

    /// Clamp out-of-range positions instead of refusing them.
    pub fn lenient(mut self) -> Self {
        self.validate = false;
        self
    }

    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.files
            .values()
            .all(|f| f.original.as_ref().map(|(b, _)| &b[..]) == f.current.as_deref())
    }

    /// The client's path of a mirror path (for messages and results).
    fn client(&self, path: &MirrorPath) -> String {
        self.mirror.paths().to_client(path).as_str().to_owned()
    }

    /// A language server's `file://` URI (in the mirror) → the mirror path.
    pub fn mirror_path_of_uri(&self, uri: &Url) -> Result<MirrorPath, WorkspaceError> {
        let raw = codeflow_file_stream::paths::uri_path(uri.as_str())
            .map_err(|e| WorkspaceError::failed(format!("the language server named {uri}: {e}")))?;
        self.workspace
            .mirror
            .paths()
            .parse_mirror(std::path::Path::new(&raw))
            .map_err(|e| {
                WorkspaceError::failed(format!(
                    "the language server wants to edit {uri}, which is outside the project: {e}"
                ))
            })
    }

    async fn load(&mut self, path: &MirrorPath) -> Result<&mut PlannedFile, WorkspaceError> {
        let rel = path.rel().clone();
        if !self.files.contains_key(&rel) {
            let original = match self.mirror.read(path).await {
                Ok(bytes) => {
                    let hash = ContentHash::of(&bytes);
                    Some((bytes, hash))
                }
                Err(FileError::NotFound(_) | FileError::NotAFile(_)) => None,
                Err(e) => {
                    return Err(WorkspaceError::failed(format!(
                        "cannot read {}: {e}",
                        self.client(path)
                    )));
                }
            };
            let current = original.as_ref().map(|(b, _)| b.to_vec());
            self.files.insert(
                rel.clone(),
                PlannedFile {
                    mirror: path.clone(),
                    original,
                    current,
                    edits: Vec::new(),
                    moved_from: None,
                    moved_to: None,
                },
            );
        }
        self.files
            .get_mut(&rel)
            .ok_or_else(|| WorkspaceError::failed("edit plan lost a file"))
    }

    /// Whether the file exists at this point of the plan.
    pub async fn exists(&mut self, path: &MirrorPath) -> Result<bool, WorkspaceError> {
        Ok(self.load(path).await?.current.is_some())
    }

    /// The file's text at this point of the plan.
    pub async fn text(&mut self, path: &MirrorPath) -> Result<Option<String>, WorkspaceError> {
        Ok(self
            .load(path)
            .await?
            .current
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned()))
    }

    /// Applies LSP text edits (0-based, UTF-16) to a file of the plan.
    pub async fn text_edits(
        &mut self,
        path: &MirrorPath,
        edits: Vec<TextEdit>,
    ) -> Result<(), WorkspaceError> {
        if edits.is_empty() {
            return Ok(());
        }
        let validate = self.validate;
        let client = self.client(path);
        let file = self.load(path).await?;
        let Some(current) = &file.current else {
            return Err(WorkspaceError::failed(format!(
                "cannot edit {client}: the file does not exist"
            )));
        };
        let text = std::str::from_utf8(current).map_err(|_| {
            WorkspaceError::failed(format!("cannot edit {client}: it is not UTF-8 text"))
        })?;
        let new_text = apply_text_edits(text, &edits, validate)
            .map_err(|e| WorkspaceError::InvalidArguments(format!("edit to {client}: {e}")))?;
        file.current = Some(new_text.into_bytes());
        file.edits.extend(edits);
        Ok(())
    }

    /// Replaces a file's whole content (it must exist).
    pub async fn replace(
        &mut self,
        path: &MirrorPath,
        content: String,
    ) -> Result<(), WorkspaceError> {
        let client = self.client(path);
        let file = self.load(path).await?;
        let Some(current) = &file.current else {
            return Err(WorkspaceError::failed(format!(
                "cannot edit {client}: the file does not exist"
            )));
        };
        let old = String::from_utf8_lossy(current).into_owned();
        if old != content {
            file.edits.push(TextEdit {
                range: Range::new(Position::new(0, 0), end_position(&old)),
                new_text: content.clone(),
            });
            file.current = Some(content.into_bytes());
        }
        Ok(())
    }

    /// Creates a file. An existing file is an error unless `overwrite` (replace it) or
    /// `ignore_if_exists` (leave it).
    pub async fn create(
        &mut self,
        path: &MirrorPath,
        content: Vec<u8>,
        overwrite: bool,
        ignore_if_exists: bool,
    ) -> Result<(), WorkspaceError> {
        let client = self.client(path);
        let file = self.load(path).await?;
        if file.current.is_some() {
            if overwrite {
                file.current = Some(content);
                return Ok(());
            }
            if ignore_if_exists {
                return Ok(());
            }
            return Err(WorkspaceError::failed(format!("{client} already exists"))
                .with_suggestion("pass overwrite: true to replace it"));
        }
        file.current = Some(content);
        Ok(())
    }

    /// Deletes a file, or with `recursive` every file under a directory.
    pub async fn delete(
        &mut self,
        path: &MirrorPath,
        recursive: bool,
        ignore_if_not_exists: bool,
    ) -> Result<(), WorkspaceError> {
        if self.exists(path).await? {
            if let Some(file) = self.files.get_mut(path.rel()) {
                file.current = None;
            }
            return Ok(());
        }
        let under = self.files_under(path.rel());
        if !under.is_empty() {
            if !recursive {
                return Err(WorkspaceError::failed(format!(
                    "{} is a directory; deleting it needs recursive",
                    self.client(path)
                )));
            }
            for rel in under {
                let p = self.mirror.paths().mirror_path(&rel);
                if let Some(file) = self.files.get_mut(&rel) {
                    file.current = None;
                } else {
                    self.load(&p).await?.current = None;
                }
            }
            return Ok(());
        }
        if ignore_if_not_exists {
            Ok(())
        } else {
            Err(WorkspaceError::failed(format!(
                "cannot delete {}: it does not exist",
                self.client(path)
            )))
        }
    }

    /// Renames a file (a directory: every file under it).
    pub async fn rename(
        &mut self,
        from: &MirrorPath,
        to: &MirrorPath,
        overwrite: bool,
        ignore_if_exists: bool,
    ) -> Result<(), WorkspaceError> {
        if !self.exists(from).await? {
            let under = self.files_under(from.rel());
            if under.is_empty() {
                return Err(WorkspaceError::failed(format!(
                    "cannot rename {}: it does not exist",
                    self.client(from)
                )));
            }
            let paths = self.mirror.paths().clone();
            for rel in under {
                let suffix = &rel.as_str()[from.rel().as_str().len()..];
                let target = RelPath::parse(&format!("{}{suffix}", to.rel().as_str()))
                    .map_err(|e| WorkspaceError::InvalidArguments(e.to_string()))?;
                Box::pin(self.rename(
                    &paths.mirror_path(&rel),
                    &paths.mirror_path(&target),
                    overwrite,
                    ignore_if_exists,
                ))
                .await?;
            }
            return Ok(());
        }
        if self.exists(to).await? {
            if ignore_if_exists && !overwrite {
                return Ok(());
            }
            if !overwrite {
                return Err(WorkspaceError::failed(format!(
                    "cannot rename {} to {}: the target exists",
                    self.client(from),
                    self.client(to)
                )));
            }
        }
        let source = self.load(from).await?;
        let content = source.current.take();
        let source_edits = std::mem::take(&mut source.edits);
        source.moved_to = Some(to.rel().clone());
        let target = self.load(to).await?;
        target.current = content;
        target.edits = source_edits;
        target.moved_from = Some(from.rel().clone());
        Ok(())
    }

    /// The mirror path of a project-relative path.
    pub fn mirror_path(&self, rel: &str) -> Result<MirrorPath, WorkspaceError> {
        let rel =
            RelPath::parse(rel).map_err(|e| WorkspaceError::InvalidArguments(e.to_string()))?;
        Ok(self.mirror.paths().mirror_path(&rel))
    }

    /// [`EditPlan::text`] by project-relative path.
    pub async fn text_of_rel(&mut self, rel: &str) -> Result<Option<String>, WorkspaceError> {
        let path = self.mirror_path(rel)?;
        self.text(&path).await
    }

    /// [`EditPlan::text_edits`] by project-relative path.
    pub async fn text_edits_rel(
        &mut self,
        rel: &str,
        edits: Vec<TextEdit>,
    ) -> Result<(), WorkspaceError> {
        let path = self.mirror_path(rel)?;
        self.text_edits(&path, edits).await
    }

    /// Every file of the project as the plan sees it now (relative paths).
    pub fn project_files(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self
            .workspace
            .mirror
            .files()
            .into_keys()
            .map(|r| r.as_str().to_owned())
            .collect();
        for (rel, f) in &self.files {
            if f.current.is_some() {
                out.insert(rel.as_str().to_owned());
            } else {
                out.remove(rel.as_str());
            }
        }
        out
    }

    /// The project's workspace the plan writes to.
    pub fn workspace(&self) -> &Arc<ProjectWorkspace> {
        &self.workspace
    }

    /// Every file of the mirror (and of this plan) strictly under `dir`, as the plan sees it.
    pub fn files_under(&self, dir: &RelPath) -> Vec<RelPath> {
        let mut out: BTreeSet<RelPath> = self
            .workspace
            .mirror
            .files()
            .into_keys()
            .filter(|r| r != dir && r.starts_with(dir))
            .filter(|r| self.files.get(r).is_none_or(|f| f.current.is_some()))
            .collect();
        for (rel, f) in &self.files {
            if rel != dir && rel.starts_with(dir) && f.current.is_some() {
                out.insert(rel.clone());
            }
        }
        out.into_iter().collect()
    }

    /// Adds a language server's `WorkspaceEdit` (mirror URIs), operations in order.
    pub async fn workspace_edit(&mut self, edit: WorkspaceEdit) -> Result<(), WorkspaceError> {
        if let Some(changes) = edit.changes {
            // A map has no order; sort so results are stable.
            let mut changes: Vec<_> = changes.into_iter().collect();
            changes.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            for (uri, edits) in changes {
                let path = self.mirror_path_of_uri(&uri)?;
                self.text_edits(&path, edits).await?;
            }
        }
        let operations = match edit.document_changes {
            None => Vec::new(),
            Some(DocumentChanges::Edits(edits)) => edits
                .into_iter()
                .map(DocumentChangeOperation::Edit)
                .collect(),
            Some(DocumentChanges::Operations(ops)) => ops,
        };
        for op in operations {
            match op {
                DocumentChangeOperation::Edit(edit) => {
                    let path = self.mirror_path_of_uri(&edit.text_document.uri)?;
                    let edits = edit
                        .edits
                        .into_iter()
                        .map(|e| match e {
                            OneOf::Left(e) => e,
                            OneOf::Right(annotated) => annotated.text_edit,
                        })
                        .collect();
                    self.text_edits(&path, edits).await?;
                }
                DocumentChangeOperation::Op(ResourceOp::Create(c)) => {
                    let path = self.mirror_path_of_uri(&c.uri)?;
                    let (overwrite, ignore) = c.options.map_or((false, false), |o| {
                        (
                            o.overwrite.unwrap_or(false),
                            o.ignore_if_exists.unwrap_or(false),
                        )
                    });
                    self.create(&path, Vec::new(), overwrite, ignore).await?;
                }
                DocumentChangeOperation::Op(ResourceOp::Rename(r)) => {
                    let from = self.mirror_path_of_uri(&r.old_uri)?;
                    let to = self.mirror_path_of_uri(&r.new_uri)?;
                    let (overwrite, ignore) = r.options.map_or((false, false), |o| {
                        (
                            o.overwrite.unwrap_or(false),
                            o.ignore_if_exists.unwrap_or(false),
                        )
                    });
                    self.rename(&from, &to, overwrite, ignore).await?;
                }
                DocumentChangeOperation::Op(ResourceOp::Delete(d)) => {
                    let path = self.mirror_path_of_uri(&d.uri)?;
                    let (recursive, ignore) = d.options.map_or((false, false), |o| {
                        (
                            o.recursive.unwrap_or(false),
                            o.ignore_if_not_exists.unwrap_or(false),
                        )
                    });
                    self.delete(&path, recursive, ignore).await?;
                }
            }
        }
        Ok(())
    }

    /// The files that change, with what happens to each, in path order.
    fn reports(&self) -> Vec<FileReport> {
        let mut out = Vec::new();
        for file in self.files.values() {
            let original = file.original.as_ref().map(|(b, _)| &b[..]);
            let renamed_away = file.moved_to.is_some() && file.current.is_none();
            if renamed_away && original.is_some() {
                continue; // shown as the target's `rename`
            }
            if original == file.current.as_deref() && file.moved_from.is_none() {
                continue;
            }
            let action = match (&file.moved_from, original, &file.current) {
                (Some(_), _, Some(_)) => FileAction::Rename,
                (_, None, Some(_)) => FileAction::Create,
                (_, Some(_), None) => FileAction::Delete,
                (_, None, None) => continue,
                (None, Some(_), Some(_)) => FileAction::Edit,
            };
            let from = file
                .moved_from
                .as_ref()
                .map(|rel| self.client(&self.mirror.paths().mirror_path(rel)));
            let content = match action {
                FileAction::Create => file
                    .current
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned()),
                _ => None,
            };
            out.push(FileReport {
                path: self.client(&file.mirror),
                action,
                from,
                edits: shown_edits(file).iter().map(reported_edit).collect(),
                content,
            });
        }
        out
    }

    /// The write-back for this plan, in the mirror's client paths.
    fn write_back(&self) -> Result<WriteBack, WorkspaceError> {
        let paths = self.mirror.paths();
        // Pure moves (the target is new and holds exactly the source's content) become one
        // rename on the client: atomic, and it keeps the file's permissions.
        let pure_moves: BTreeMap<&RelPath, (&RelPath, &ContentHash)> = self
            .files
            .iter()
            .filter_map(|(rel, file)| {
                let to = file.moved_to.as_ref()?;
                let (bytes, hash) = file.original.as_ref()?;
                let target = self.files.get(to)?;
                (file.current.is_none()
                    && target.original.is_none()
                    && target.current.as_deref() == Some(&bytes[..]))
                .then_some((rel, (to, hash)))
            })
            .collect();
        let targets: BTreeSet<&RelPath> = pure_moves.values().map(|(to, _)| *to).collect();
        let mut plan = WriteBack::new();
        for (rel, file) in &self.files {
            let client = paths.to_client(&file.mirror);
            if let Some((to, hash)) = pure_moves.get(rel) {
                plan = plan.rename(client, paths.client_path(to), (*hash).clone());
                continue;
            }
            if targets.contains(rel) {
                continue;
            }
            match (file.original.as_ref(), &file.current) {
                (Some((bytes, _)), Some(now)) if bytes[..] == now[..] => {}
                (Some((_, hash)), Some(now)) => {
                    plan = plan.write(client, now.clone(), Expect::Hash(hash.clone()));
                }
                (None, Some(now)) => plan = plan.write(client, now.clone(), Expect::Absent),
                (Some((_, hash)), None) => plan = plan.delete(client, hash.clone()),
                (None, None) => {}
            }
        }
        Ok(plan)
    }

    /// Writes the plan to the client (all or nothing), updates the mirror, tells the language
    /// servers and waits (bounded) for the diagnostics of the files it touched; or, with
    /// `dry_run` (or inside a dry-run batch), only describes it.
    pub async fn commit(self, dry_run: bool) -> Result<EditOutcome, WorkspaceError> {
        self.commit_inner(dry_run, true).await
    }

    /// [`EditPlan::commit`] without waiting for diagnostics: for edits a language server asked
    /// for itself (`workspace/applyEdit`), which it may not process until it has its answer.
    pub async fn commit_without_diagnostics(
        self,
        dry_run: bool,
    ) -> Result<EditOutcome, WorkspaceError> {
        self.commit_inner(dry_run, false).await
    }

    async fn commit_inner(
        self,
        dry_run: bool,
        with_diagnostics: bool,
    ) -> Result<EditOutcome, WorkspaceError> {
        let scope = self.batch.clone();
        let dry_run = dry_run || scope.as_ref().is_some_and(|s| s.is_dry_run());
        let files = self.reports();
        if dry_run || files.is_empty() {
            if let Some(scope) = scope.as_ref().filter(|s| s.is_dry_run()) {
                scope.record_planned(&self.files);
            }
            return Ok(EditOutcome {
                dry_run,
                files,
                diagnostics: Vec::new(),
            });
        }
        self.caller.require(codeflow_session::Right::FileWrite)?;
        let write_back = self.write_back()?;
        let client = self.caller.client();
        write_back
            .apply_and_mirror(&client, &self.mirror)
            .await
            .map_err(|e| self.write_error(e))?;
        if let Some(scope) = &scope {
            scope.record(&self.files);
        }
        let mut changes = Vec::new();
        for file in self.files.values() {
            let original = file.original.as_ref().map(|(b, _)| &b[..]);
            if original == file.current.as_deref() {
                continue;
            }
            let kind = match (original, &file.current) {
                (None, _) => FileChangeType::CREATED,
                (_, None) => FileChangeType::DELETED,
                _ => FileChangeType::CHANGED,
            };
            changes.push((file.mirror.clone(), kind));
        }
        tell_language_servers(&self.workspace, &changes).await;
        let diagnostics = if with_diagnostics {
            let touched: Vec<MirrorPath> = changes
                .iter()
                .filter(|(_, kind)| *kind != FileChangeType::DELETED)
                .map(|(path, _)| path.clone())
                .collect();
            diagnostics_of(&self.caller, &self.workspace, &touched).await
        } else {
            Vec::new()
        };
        Ok(EditOutcome {
            dry_run: false,
            files,
            diagnostics,
        })
    }

    fn write_error(&self, e: FileError) -> WorkspaceError {
        write_error(e)
    }
}

/// A write-back failure in the client's paths, saying what was (not) written.
/// (Write-backs are made in the caller's own paths, so the error's paths are already its.)
pub(crate) fn write_error(e: FileError) -> WorkspaceError {
    let client_path = |p: &str| p.to_owned();
    match e {
        FileError::Conflict { path, actual } => WorkspaceError::failed(format!(
            "conflict: {} {} since CodeFlow computed this edit; nothing was written",
            client_path(&path),
            if actual.is_some() {
                "changed on disk"
            } else {
                "was deleted or appeared on disk"
            }
        ))
        .with_suggestion(
            "re-run the tool: it will compute the edit from the file's current content",
        ),
        FileError::RolledBack { failed_path, cause } => WorkspaceError::failed(format!(
            "writing {} failed ({cause}); the files already written were restored, so nothing changed",
            client_path(&failed_path)
        )),
        FileError::RollbackIncomplete {
            failed_path,
            cause,
            not_restored,
        } => WorkspaceError::failed(format!(
            "writing {} failed ({cause}) and these files could not be restored: {}",
            client_path(&failed_path),
            not_restored
                .iter()
                .map(|p| client_path(p))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_suggestion("check those files by hand"),
        other => WorkspaceError::failed(format!("writing to the client failed: {other}")),
    }
}

/// A rough size of an edit (characters it replaces and inserts), to compare two ways of
/// describing one change.
fn edit_weight(e: &TextEdit) -> u64 {
    let span = if e.range.start.line == e.range.end.line {
        u64::from(
            e.range
                .end
                .character
                .saturating_sub(e.range.start.character),
        )
    } else {
        u64::from(e.range.end.line - e.range.start.line) * 40 + u64::from(e.range.end.character)
    };
    span + e.new_text.len() as u64
}

/// The edits a report shows for a file: as given, unless the differences between its original
/// and final text are smaller (a language server's whole-file replacement shows as the few
/// places that changed; see [`crate::hunks`]).
fn shown_edits(file: &PlannedFile) -> Vec<TextEdit> {
    let (Some((original, _)), Some(current)) = (&file.original, &file.current) else {
        return file.edits.clone();
    };
    let (Ok(old), Ok(new)) = (std::str::from_utf8(original), std::str::from_utf8(current)) else {
        return file.edits.clone();
    };
    let given: u64 = file.edits.iter().map(edit_weight).sum();
    let diffed = crate::hunks::minimal_edits(old, new);
    if diffed.iter().map(edit_weight).sum::<u64>() < given {
        diffed
    } else {
        file.edits.clone()
    }
}

fn reported_edit(e: &TextEdit) -> ReportedEdit {
    let at = |p: Position| EditPosition {
        line: p.line + 1,
        character: p.character + 1,
    };
    ReportedEdit {
        range: EditRange {
            start: at(e.range.start),
            end: at(e.range.end),
        },
        new_text: e.new_text.clone(),
    }
}
