//! `server/syncBegin`: a session's first sync over a transfer that starts before the relay's
//! manifest exists, so the relay's start-up scan and the upload overlap.
//!
//! The relay asks once its walk is done; the server makes a streamed upload
//! ([`SyncUpload::streamed`]) and answers `{transfers: true, operationId, url, have}` (`have`:
//! the mirror's `path → hash`, for the relay to skip what the mirror holds). The relay sends
//! each file as its scan reads and hashes it, then its `server/syncManifest` with `streamed`
//! set to the operation id; [`crate::sync::SessionFiles`] hands that manifest to the waiting
//! sync instead of queueing it behind. The manifest then runs as any sync, finding the
//! streamed files in the mirror: what it does not list is removed, what is still missing is
//! fetched, and only then is the sync over. The sync is one file event of the session from
//! `syncBegin` on: the session's calls wait for it whole.
//!
//! The server declines (`{transfers: false}`) when it takes no uploads, the project is shared,
//! or another live session's tree is in the mirror (streamed files would land before the
//! conflict check); the relay then sends its manifest as before, and it is synced here all the
//! same.

use std::sync::Arc;

use codeflow_file_stream::transfer::{SyncBeginParams, SyncBeginResult};
use codeflow_session::Session;
use codeflow_transport::{ErrorObject, Message, codes};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::caller::Caller;
use crate::sync::{
    EndUpload, ParsedManifest, RunningSync, SessionFiles, progress_sink, sync_manifest_reporting,
    sync_parsed, workspace_error,
};
use crate::sync_upload::SyncUpload;

/// What a begun sync received before its manifest.
pub(crate) struct Streamed {
    pub(crate) upload: Arc<SyncUpload>,
    pub(crate) operation_id: String,
    pub(crate) running: RunningSync,
}

/// Runs one begun sync: answers `server/syncBegin`, waits for the manifest (or the session's
/// end), then syncs it and answers the manifest.
pub(crate) async fn run(
    files: &SessionFiles,
    session: &Arc<Session>,
    id: Value,
    params: Option<Value>,
    manifest: oneshot::Receiver<crate::sync::ManifestRequest>,
) {
    let caller = files.caller();
    let begun = begin(files, params).await;
    let (answer, streamed) = match begun {
        Ok(Some((result, streamed))) => (json_of(id, &result), Some(streamed)),
        Ok(None) => (json_of(id, &SyncBeginResult::default()), None),
        Err(e) => (Message::error(id, e), None),
    };
    session.send_to_client(answer);
    // However this ends, reads of files announced and never stored go to the disk again.
    let _end = streamed.as_ref().map(|s| EndUpload(s.upload.clone()));
    let got = tokio::select! {
        m = manifest => m.ok(),
        () = session.closed() => None,
        () = tokio::time::sleep(crate::sync::MANIFEST_WAIT) => None,
    };
    let Some((id, params)) = got else {
        tracing::warn!(session = %caller.id, "a begun sync ended without its manifest");
        return;
    };
    let reply = match sync_with(files, session, params, streamed).await {
        Ok(result) => Message::response(id, result),
        Err(e) => Message::error(id, e),
    };
    session.send_to_client(reply);
}

/// Syncs the begun sync's manifest. One sent while its upload still ran (`"uploadRunning":
/// true`) is parsed at once, then waits until the relay says the upload is over
/// (`server/syncUploadOver`): only then does the mirror hold every file it will get.
async fn sync_with(
    files: &SessionFiles,
    session: &Arc<Session>,
    params: Option<Value>,
    streamed: Option<Streamed>,
) -> Result<Value, ErrorObject> {
    let caller = files.caller();
    let running = params
        .as_ref()
        .and_then(|p| p.get("uploadRunning"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (true, Some(operation_id)) = (running, streamed.as_ref().map(|s| s.operation_id.clone()))
    else {
        return sync_manifest_reporting(
            caller,
            files.notices(),
            params,
            Some(files.progress()),
            streamed,
        )
        .await;
    };
    // 10,000 entries take milliseconds: off the runtime's threads, which meanwhile read the
    // upload's frames.
    let limits = caller.workspaces().config().mirror.limits;
    let parsed = tokio::task::spawn_blocking(move || ParsedManifest::parse(&limits, params))
        .await
        .map_err(|e| {
            ErrorObject::new(
                codes::INTERNAL_ERROR,
                format!("parsing the manifest failed: {e}"),
            )
        })??;
    tokio::select! {
        () = files.upload_over(&operation_id) => {}
        () = session.closed() => {
            return Err(ErrorObject::new(codes::CONFLICT, "the session closed during the sync"));
        }
        () = tokio::time::sleep(crate::sync::MANIFEST_WAIT) => {
            tracing::warn!(session = %caller.id, "a begun sync's upload never said it was over; syncing what arrived");
        }
    }
    sync_parsed(
        caller,
        files.notices(),
        parsed,
        Some(files.progress()),
        streamed,
    )
    .await
}

fn json_of(id: Value, result: &SyncBeginResult) -> Message {
    Message::response(id, serde_json::to_value(result).unwrap_or(Value::Null))
}

/// Makes the streamed upload, or says why not (`None`: declined, the relay sends its manifest).
async fn begin(
    files: &SessionFiles,
    params: Option<Value>,
) -> Result<Option<(SyncBeginResult, Streamed)>, ErrorObject> {
    let caller: &Caller = files.caller();
    let params: SyncBeginParams =
        serde_json::from_value(params.unwrap_or(Value::Null)).map_err(|e| {
            ErrorObject::new(
                codes::INVALID_PARAMS,
                format!("invalid server/syncBegin params: {e}"),
            )
        })?;
    if !params.transfers {
        return Ok(None);
    }
    let workspace = caller.open_workspace().await.map_err(workspace_error)?;
    let mirror = caller.mirror(&workspace).map_err(workspace_error)?;
    let (Some(session), Some(uploads)) = (caller.session(), caller.workspaces().sync_uploads())
    else {
        return Ok(None);
    };
    if mirror.is_shared() || !workspace.trees.others(&caller.id).is_empty() {
        return Ok(None);
    }
    let limits = caller.workspaces().config().mirror.limits;
    let running = RunningSync::start(progress_sink(caller, &workspace, Some(files.progress())));
    let sink = running.sink.clone();
    let upload = SyncUpload::streamed(
        mirror.clone(),
        limits,
        params.files,
        params.bytes,
        Arc::new(move |p| sink.report(p, "transfer")),
    );
    let (operation_id, url) = uploads.begin(session, upload.clone())?;
    let have = mirror
        .files()
        .into_iter()
        .map(|(rel, hash)| (rel.as_str().to_owned(), hash.as_str().to_owned()))
        .collect();
    tracing::debug!(session = %caller.id, files = params.files, "sync begun: streamed upload made");
    Ok(Some((
        SyncBeginResult {
            transfers: true,
            operation_id: operation_id.clone(),
            url,
            have,
            manifest_while_uploading: true,
            whole_frames: true,
        },
        Streamed {
            upload,
            operation_id,
            running,
        },
    )))
}
