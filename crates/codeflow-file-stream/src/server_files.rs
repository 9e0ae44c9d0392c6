//! The relay's side of `client/*`: [`FileServer`] serves one project root through the path
//! jail, with hash-checked atomic writes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::atomic::write_atomic;
use crate::delta;
use crate::error::{FileError, RemoteError};
use crate::jail::Jail;
use crate::limits::Limits;
use crate::manifest::mtime_ms;
use crate::paths::RelPath;
use crate::protocol::*;
use crate::watcher::WriteNotices;

/// Most bytes of content in one `client/readFiles` answer: far below the default 16 MiB
/// message limit even when JSON escaping inflates text.
const READ_FILES_BUDGET: usize = 4 * 1024 * 1024;

/// Serves the files of one client root to the server. Cheap to clone.
///
/// Every path is checked by the [`Jail`] before the disk is touched. Writes are serialized
/// within one `FileServer`, compare the file's current hash with `expectedHash` just before an
/// atomic rename, and never overwrite on a mismatch (another program writing the same file in
/// the microseconds between the check and the rename is the remaining window).
///
/// On the relay, make it with [`FileServer::reporting_to`] the [`Watcher`](crate::Watcher) of the
/// same root: the server records its write-backs in its mirror itself, and the watcher must
/// know what the server now holds (see [`watcher`](crate::watcher), "The relay's own writes").
#[derive(Debug, Clone)]
pub struct FileServer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    jail: Jail,
    limits: Limits,
    write_lock: Mutex<()>,
    notices: OnceLock<WriteNotices>,
}

fn parse<T: DeserializeOwned>(params: Value) -> Result<T, FileError> {
    serde_json::from_value(params).map_err(|e| FileError::InvalidParams(e.to_string()))
}

fn to_value<T: Serialize>(v: T) -> Result<Value, FileError> {
    serde_json::to_value(v).map_err(|e| FileError::Io(format!("serializing a result: {e}")))
}

/// The hash of the file at `abs`, `None` when absent; an error when it is not a regular file.
fn current_hash(abs: &Path, shown: &str) -> Result<Option<(ContentHash, Vec<u8>)>, FileError> {
    match std::fs::metadata(abs) {
        Ok(m) if m.is_file() => {
            let bytes = std::fs::read(abs).map_err(|e| FileError::io(shown, &e))?;
            Ok(Some((ContentHash::of(&bytes), bytes)))
        }
        Ok(_) => Err(FileError::NotAFile(shown.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FileError::io(shown, &e)),
    }
}

impl FileServer {
    /// Serves `root` (an existing directory) within `limits`.
    pub fn new(root: impl Into<PathBuf>, limits: Limits) -> Result<Self, FileError> {
        Ok(FileServer {
            inner: Arc::new(Inner {
                jail: Jail::new(root)?,
                limits,
                write_lock: Mutex::new(()),
                notices: OnceLock::new(),
            }),
        })
    }

    /// Reports every write, deletion and rename this server makes (and its clones make) to
    /// the watcher of the same root, [`Watcher::write_notices`](crate::Watcher::write_notices).
    /// Only the first watcher given is used.
    pub fn reporting_to(self, notices: WriteNotices) -> Self {
        if self.inner.notices.set(notices).is_err() {
            tracing::debug!("this file server already reports to a watcher");
        }
        self
    }

    /// The root as configured.
    pub fn root(&self) -> &Path {
        self.inner.jail.root()
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Answers one `client/*` request. Unknown methods get [`FileError::MethodNotFound`].
    pub async fn handle(&self, method: &str, params: Value) -> Result<Value, FileError> {
        let inner = Arc::clone(&self.inner);
        let method = method.to_owned();
        tokio::task::spawn_blocking(move || inner.handle_blocking(&method, params))
            .await
            .map_err(|e| FileError::Io(format!("file task failed: {e}")))?
    }

    /// The blocking form of [`FileServer::handle`], for callers already off the runtime.
    pub fn handle_blocking(&self, method: &str, params: Value) -> Result<Value, FileError> {
        self.inner.handle_blocking(method, params)
    }
}

impl Inner {
    fn handle_blocking(&self, method: &str, params: Value) -> Result<Value, FileError> {
        match method {
            READ_FILE => to_value(self.read_file(parse(params)?)?),
            READ_FILES => to_value(self.read_files(parse(params)?)),
            WRITE_FILE => to_value(self.write_file(parse(params)?)?),
            WRITE_DELTA => to_value(self.write_delta(parse(params)?)?),
            DELETE_FILE => self
                .delete_file(parse(params)?)
                .map(|()| Value::Object(Default::default())),
            RENAME_FILE => self
                .rename_file(parse(params)?)
                .map(|()| Value::Object(Default::default())),
            FILE_EXISTS => to_value(self.file_exists(parse(params)?)?),
            GET_FILE_STATS => to_value(self.file_stats(parse(params)?)?),
            LIST_DIRECTORY => to_value(self.list_directory(parse(params)?)?),
            other => Err(FileError::MethodNotFound(other.to_owned())),
        }
    }

    fn wrote(&self, rel: &RelPath, bytes: &[u8]) {
        if let Some(n) = self.notices.get() {
            n.wrote(rel, bytes);
        }
    }

    fn removed(&self, rel: &RelPath) {
        if let Some(n) = self.notices.get() {
            n.removed(rel);
        }
    }

    fn touched(&self, rel: &RelPath) {
        if let Some(n) = self.notices.get() {
            n.touched(rel);
        }
    }

    /// Jail check: the relative path and the absolute path on disk.
    fn locate(&self, raw: &str) -> Result<(RelPath, PathBuf), FileError> {
        let rel = self.jail.relativize(raw, &self.limits)?;
        let abs = self.jail.resolve(&rel)?;
        Ok((rel, abs))
    }

    /// Like [`Inner::locate`], for paths that are written: never the root itself.
    fn locate_file(&self, raw: &str) -> Result<(RelPath, PathBuf), FileError> {
        let (rel, abs) = self.locate(raw)?;
        if rel.is_root() {
            return Err(FileError::NotAFile(raw.to_owned()));
        }
        Ok((rel, abs))
    }

    fn read_file(&self, p: ReadFileParams) -> Result<ReadFileResult, FileError> {
        let (_, abs) = self.locate(&p.path)?;
        let meta = std::fs::metadata(&abs).map_err(|e| FileError::io(&p.path, &e))?;
        if !meta.is_file() {
            return Err(FileError::NotAFile(p.path));
        }
        self.limits.check_file_size(&p.path, meta.len())?;
        let bytes = std::fs::read(&abs).map_err(|e| FileError::io(&p.path, &e))?;
        self.limits.check_file_size(&p.path, bytes.len() as u64)?;
        let (content, encoding) = match p.encoding {
            Some(Encoding::Base64) => (
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes),
                Encoding::Base64,
            ),
            _ => encode_content(&bytes),
        };
        Ok(ReadFileResult {
            content,
            encoding,
            mtime: mtime_ms(&meta),
            size: bytes.len() as u64,
            hash: ContentHash::of(&bytes),
        })
    }

    /// Reads the files in order while their encoded contents stay within
    /// [`READ_FILES_BUDGET`] bytes (the first file always goes); the server asks again for
    /// the rest.
    fn read_files(&self, p: ReadFilesParams) -> ReadFilesResult {
        let mut files = Vec::with_capacity(p.paths.len());
        let mut bytes = 0usize;
        for path in p.paths {
            let read = self.read_file(ReadFileParams {
                path: path.clone(),
                encoding: None,
            });
            if let Ok(file) = &read
                && !files.is_empty()
                && bytes + file.content.len() > READ_FILES_BUDGET
            {
                break;
            }
            files.push(match read {
                Ok(file) => {
                    bytes += file.content.len();
                    ReadFilesEntry {
                        path,
                        file: Some(file),
                        error: None,
                    }
                }
                Err(e) => ReadFilesEntry {
                    path,
                    file: None,
                    error: Some(RemoteError::from(&e)),
                },
            });
        }
        ReadFilesResult { files }
    }

    fn write_file(&self, p: WriteFileParams) -> Result<WriteResult, FileError> {
        let (rel, abs) = self.locate_file(&p.path)?;
        let bytes = decode_content(&p.content, p.encoding)?;
        self.limits.check_file_size(&p.path, bytes.len() as u64)?;
        let _guard = self.write_lock.lock();
        let current = current_hash(&abs, &p.path)?.map(|(h, _)| h);
        if current != p.expected_hash {
            return Err(FileError::Conflict {
                path: p.path,
                actual: current,
            });
        }
        write_atomic(&abs, &bytes, current.is_none(), true)?;
        self.wrote(&rel, &bytes);
        Ok(WriteResult {
            hash: ContentHash::of(&bytes),
            used_delta: false,
        })
    }

    fn write_delta(&self, p: WriteDeltaParams) -> Result<WriteResult, FileError> {
        let (rel, abs) = self.locate_file(&p.path)?;
        let edits = match (p.edits, p.patch) {
            (Some(edits), _) => edits,
            (None, Some(_)) => {
                return Err(FileError::Unsupported(
                    "`patch` (unified diff) is not supported; send `edits`".into(),
                ));
            }
            (None, None) => return Err(FileError::InvalidParams("`edits` is required".into())),
        };
        let _guard = self.write_lock.lock();
        let Some((actual, base)) = current_hash(&abs, &p.path)? else {
            return Err(FileError::BaseMismatch {
                path: p.path,
                actual: None,
            });
        };
        if actual != p.base_hash {
            return Err(FileError::BaseMismatch {
                path: p.path,
                actual: Some(actual),
            });
        }
        let base = String::from_utf8(base)
            .map_err(|_| FileError::BadContent(format!("{} is not UTF-8 text", p.path)))?;
        let new = delta::apply(&base, &edits)?;
        let hash = ContentHash::of(new.as_bytes());
        if hash != p.result_hash {
            return Err(FileError::HashMismatch {
                path: p.path,
                expected: p.result_hash,
                actual: hash,
            });
        }
        self.limits.check_file_size(&p.path, new.len() as u64)?;
        write_atomic(&abs, new.as_bytes(), false, true)?;
        self.wrote(&rel, new.as_bytes());
        Ok(WriteResult {
            hash,
            used_delta: true,
        })
    }

    fn delete_file(&self, p: DeleteFileParams) -> Result<(), FileError> {
        let (rel, abs) = self.locate_file(&p.path)?;
        let _guard = self.write_lock.lock();
        let current = current_hash(&abs, &p.path)?;
        let Some((actual, _)) = current else {
            return Err(FileError::NotFound(p.path));
        };
        if let Some(expected) = p.expected_hash
            && expected != actual
        {
            return Err(FileError::Conflict {
                path: p.path,
                actual: Some(actual),
            });
        }
        std::fs::remove_file(&abs).map_err(|e| FileError::io(&p.path, &e))?;
        self.removed(&rel);
        Ok(())
    }

    fn rename_file(&self, p: RenameFileParams) -> Result<(), FileError> {
        let (from_rel, from) = self.locate_file(&p.from)?;
        let (to_rel, to) = self.locate_file(&p.to)?;
        let _guard = self.write_lock.lock();
        let Some((actual, bytes)) = current_hash(&from, &p.from)? else {
            return Err(FileError::NotFound(p.from));
        };
        if let Some(expected) = p.expected_hash
            && expected != actual
        {
            return Err(FileError::Conflict {
                path: p.from,
                actual: Some(actual),
            });
        }
        if std::fs::symlink_metadata(&to).is_ok() {
            return Err(FileError::Conflict {
                actual: current_hash(&to, &p.to).ok().flatten().map(|(h, _)| h),
                path: p.to,
            });
        }
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| FileError::io(&p.to, &e))?;
        }
        // link + unlink never replaces a destination that appeared meanwhile.
        match std::fs::hard_link(&from, &to) {
            Ok(()) => {
                self.wrote(&to_rel, &bytes);
                match std::fs::remove_file(&from) {
                    Ok(()) => {
                        self.removed(&from_rel);
                        Ok(())
                    }
                    Err(e) => {
                        self.touched(&from_rel);
                        Err(FileError::io(&p.from, &e))
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(FileError::Conflict {
                actual: current_hash(&to, &p.to).ok().flatten().map(|(h, _)| h),
                path: p.to,
            }),
            // File systems without hard links: a plain rename.
            Err(_) => {
                std::fs::rename(&from, &to).map_err(|e| FileError::io(&p.from, &e))?;
                self.removed(&from_rel);
                self.wrote(&to_rel, &bytes);
                Ok(())
            }
        }
    }

    fn file_exists(&self, p: PathParams) -> Result<FileExistsResult, FileError> {
        let (_, abs) = self.locate(&p.path)?;
        Ok(match std::fs::metadata(&abs) {
            Ok(m) => FileExistsResult {
                exists: true,
                is_file: m.is_file(),
                is_directory: m.is_dir(),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileExistsResult {
                exists: false,
                is_file: false,
                is_directory: false,
            },
            Err(e) => return Err(FileError::io(&p.path, &e)),
        })
    }

    fn file_stats(&self, p: PathParams) -> Result<FileStats, FileError> {
        let (_, abs) = self.locate(&p.path)?;
        let link = std::fs::symlink_metadata(&abs).map_err(|e| FileError::io(&p.path, &e))?;
        let meta = std::fs::metadata(&abs).map_err(|e| FileError::io(&p.path, &e))?;
        let hash = if meta.is_file() && meta.len() <= self.limits.max_file_size {
            std::fs::read(&abs).ok().map(|b| ContentHash::of(&b))
        } else {
            None
        };
        Ok(FileStats {
            size: meta.len(),
            mtime: mtime_ms(&meta),
            is_file: meta.is_file(),
            is_directory: meta.is_dir(),
            is_symlink: link.file_type().is_symlink(),
            mode: mode_of(&meta),
            hash,
        })
    }

    fn list_directory(&self, p: PathParams) -> Result<ListDirectoryResult, FileError> {
        let (_, abs) = self.locate(&p.path)?;
        let meta = std::fs::metadata(&abs).map_err(|e| FileError::io(&p.path, &e))?;
        if !meta.is_dir() {
            return Err(FileError::NotADirectory(p.path));
        }
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&abs).map_err(|e| FileError::io(&p.path, &e))? {
            let Ok(entry) = entry else { continue };
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(ft) = entry.file_type() else { continue };
            // Sizes of symlink targets are not looked up: the target may be outside the root.
            let size = if ft.is_file() {
                entry.metadata().map(|m| m.len()).unwrap_or(0)
            } else {
                0
            };
            entries.push(DirEntry {
                name,
                is_file: ft.is_file(),
                is_directory: ft.is_dir(),
                is_symlink: ft.is_symlink(),
                size,
            });
            if entries.len() as u64 >= self.limits.max_files {
                break;
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ListDirectoryResult { entries })
    }
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    Some(meta.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn mode_of(_: &std::fs::Metadata) -> Option<u32> {
    None
}
