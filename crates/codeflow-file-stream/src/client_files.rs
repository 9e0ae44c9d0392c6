//! How the server side reaches a relay's files: the [`ClientFiles`] trait, which the transport
//! implements over its socket, and typed helpers on top of it.

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{FileError, RemoteError};
use crate::paths::ClientPath;
use crate::protocol::*;
use crate::server_files::FileServer;

/// Sends one `client/*` request to the relay serving a project and returns its result.
///
/// The transport implements this over its connection (mapping a lost connection to
/// [`crate::error::unavailable`]); [`FileServer`] implements it in-process, for tests and for
/// embedding both sides in one program.
pub trait ClientFiles: Send + Sync {
    /// Sends one `client/*` request (`method`, `params`) and returns its result or the client's error.
    fn call<'a>(
        &'a self,
        method: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<Value, RemoteError>>;
}

impl ClientFiles for FileServer {
    fn call<'a>(
        &'a self,
        method: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<Value, RemoteError>> {
        Box::pin(async move { self.handle(method, params).await.map_err(RemoteError::from) })
    }
}

async fn call_typed<P: Serialize, R: DeserializeOwned>(
    client: &dyn ClientFiles,
    method: &str,
    params: P,
) -> Result<R, FileError> {
    let params = serde_json::to_value(params)
        .map_err(|e| FileError::InvalidParams(format!("serializing {method} params: {e}")))?;
    let value = client.call(method, params).await.map_err(FileError::from)?;
    serde_json::from_value(value)
        .map_err(|e| FileError::BadContent(format!("malformed {method} result: {e}")))
}

/// `client/readFile`, with the content decoded and its hash verified.
pub async fn read_file(
    client: &dyn ClientFiles,
    path: &ClientPath,
) -> Result<(Vec<u8>, ReadFileResult), FileError> {
    let result: ReadFileResult = call_typed(
        client,
        READ_FILE,
        ReadFileParams {
            path: path.as_str().to_owned(),
            encoding: None,
        },
    )
    .await?;
    verified(path.as_str(), result)
}

/// Decodes a `client/readFile` result and checks its hash.
fn verified(
    path: &str,
    mut result: ReadFileResult,
) -> Result<(Vec<u8>, ReadFileResult), FileError> {
    let bytes = decode_content(&result.content, result.encoding)?;
    let actual = ContentHash::of(&bytes);
    if actual != result.hash {
        return Err(FileError::HashMismatch {
            path: path.to_owned(),
            expected: result.hash,
            actual,
        });
    }
    result.content = String::new();
    Ok((bytes, result))
}

/// One file of a [`read_files`] answer.
pub type ReadOne = Result<(Vec<u8>, ReadFileResult), FileError>;

/// `client/readFiles`: the files the relay returned, in the order asked, each decoded and its
/// hash verified. The answer may stop short of `paths` (the relay bounds its size); an entry
/// whose path is not the one asked at its place ends the list. A relay without the method
/// fails the whole call with [`FileError::MethodNotFound`].
pub async fn read_files(
    client: &dyn ClientFiles,
    paths: &[ClientPath],
) -> Result<Vec<ReadOne>, FileError> {
    let result: ReadFilesResult = call_typed(
        client,
        READ_FILES,
        ReadFilesParams {
            paths: paths.iter().map(|p| p.as_str().to_owned()).collect(),
        },
    )
    .await?;
    let mut out = Vec::with_capacity(result.files.len());
    for (entry, asked) in result.files.into_iter().zip(paths) {
        if entry.path != asked.as_str() {
            break;
        }
        out.push(match (entry.file, entry.error) {
            (Some(file), None) => verified(&entry.path, file),
            (None, Some(error)) => Err(FileError::from(error)),
            _ => Err(FileError::BadContent(format!(
                "readFiles entry for {} has neither or both of file and error",
                entry.path
            ))),
        });
    }
    Ok(out)
}

/// `client/writeFile`; `expected` `None` = the file must not exist.
pub async fn write_file(
    client: &dyn ClientFiles,
    path: &ClientPath,
    bytes: &[u8],
    expected: Option<&ContentHash>,
) -> Result<WriteResult, FileError> {
    let (content, encoding) = encode_content(bytes);
    call_typed(
        client,
        WRITE_FILE,
        WriteFileParams {
            path: path.as_str().to_owned(),
            content,
            encoding,
            expected_hash: expected.cloned(),
        },
    )
    .await
}

/// `client/writeDelta`.
pub async fn write_delta(
    client: &dyn ClientFiles,
    path: &ClientPath,
    base_hash: &ContentHash,
    edits: Vec<LineEdit>,
    result_hash: &ContentHash,
) -> Result<WriteResult, FileError> {
    call_typed(
        client,
        WRITE_DELTA,
        WriteDeltaParams {
            path: path.as_str().to_owned(),
            base_hash: base_hash.clone(),
            edits: Some(edits),
            patch: None,
            result_hash: result_hash.clone(),
        },
    )
    .await
}

/// `client/deleteFile`.
pub async fn delete_file(
    client: &dyn ClientFiles,
    path: &ClientPath,
    expected: Option<&ContentHash>,
) -> Result<(), FileError> {
    let _: Value = call_typed(
        client,
        DELETE_FILE,
        DeleteFileParams {
            path: path.as_str().to_owned(),
            expected_hash: expected.cloned(),
        },
    )
    .await?;
    Ok(())
}

/// `client/renameFile`.
pub async fn rename_file(
    client: &dyn ClientFiles,
    from: &ClientPath,
    to: &ClientPath,
    expected: Option<&ContentHash>,
) -> Result<(), FileError> {
    let _: Value = call_typed(
        client,
        RENAME_FILE,
        RenameFileParams {
            from: from.as_str().to_owned(),
            to: to.as_str().to_owned(),
            expected_hash: expected.cloned(),
        },
    )
    .await?;
    Ok(())
}

/// `client/getFileStats`; `None` when the file does not exist.
pub async fn file_stats(
    client: &dyn ClientFiles,
    path: &ClientPath,
) -> Result<Option<FileStats>, FileError> {
    match call_typed(
        client,
        GET_FILE_STATS,
        PathParams {
            path: path.as_str().to_owned(),
        },
    )
    .await
    {
        Ok(stats) => Ok(Some(stats)),
        Err(FileError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
