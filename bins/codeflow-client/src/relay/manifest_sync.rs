//! Keeping the server's mirror of this project current: a `server/syncManifest` when a session
//! starts (or may have missed something), then the watcher's changes as `server/fileChanged`,
//! in order behind the manifest.

use codeflow_file_stream::transfer::{SYNC_BEGIN, SYNC_UPLOAD_OVER, SyncBeginParams};
use codeflow_file_stream::{FileChanged, Walked};
use codeflow_transport::{Message, Outbound};
use serde_json::{Value, json};

use crate::files::LocalFiles;
use crate::upstream::Reestablished;

/// Prefix of ids the relay uses for its own requests (the syncs, and the handshake it replays
/// in [`crate::upstream`]); their answers stay in the relay.
pub const OWN_ID_PREFIX: &str = "r:";

/// Whether `id` is one of the relay's own requests.
pub fn is_own(id: &Value) -> bool {
    id.as_str().is_some_and(|s| s.starts_with(OWN_ID_PREFIX))
}

#[derive(Default)]
pub struct ManifestSync {
    /// The server has been sent a manifest for the current session: file changes flow.
    live: bool,
    syncs: u64,
    /// The upload whose end was told with `server/syncUploadOver` while its sync's answer has
    /// not come: told again on a resumed session (the notification may have died with the
    /// old connection, and the server's sync would wait for it).
    over_unanswered: Option<String>,
}

impl ManifestSync {
    /// Whether file changes flow to the server.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// A connection came up: whether the server needs a manifest now. A new session knows
    /// nothing of this project's files. On a resumed one, what this relay sent just before the
    /// socket died (changes, or the manifest itself) may never have arrived; a manifest of the
    /// tree as it is now heals that (the server fetches only what differs). The first
    /// connection waits for the agent's `initialize` ([`Self::wants_first`]).
    pub fn needed_after(&mut self, kind: Reestablished) -> bool {
        match kind {
            Reestablished::Fresh => {
                self.live = false;
                true
            }
            Reestablished::Resumed => self.syncs > 0,
            Reestablished::New => false,
        }
    }

    /// The agent's `initialize` was answered: whether the session still needs its first
    /// manifest.
    pub fn wants_first(&self) -> bool {
        !self.live
    }

    /// Sends a manifest (`first`: the one the watcher started from, serialised at start; else
    /// the tree as the watcher knows it now); from then on changes flow. Changes the watcher
    /// hands over while the manifest is taken are sent after it; those already in it are
    /// re-applied harmlessly (each carries its path's whole new state), none is lost.
    pub async fn send(&mut self, files: &mut LocalFiles, outbound: Option<&Outbound>, first: bool) {
        if files.scanned().await.is_err() {
            // The relay stops (see `LocalFiles::failure`).
            return;
        }
        self.syncs += 1;
        let id = Value::String(format!("{OWN_ID_PREFIX}sync:{}", self.syncs));
        let mut caught = Vec::new();
        let text = match first.then(|| files.take_initial_text()).flatten() {
            Some(params) => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"server/syncManifest","params":{params}}}"#
            ),
            None => {
                let manifest = if first {
                    files.initial_manifest()
                } else {
                    let snapshot = files.current_manifest();
                    tokio::pin!(snapshot);
                    let taken = loop {
                        tokio::select! {
                            biased;
                            manifest = &mut snapshot => break manifest,
                            Some(change) = files.changes.recv() => caught.push(change),
                        }
                    };
                    taken.unwrap_or_else(|e| {
                        tracing::warn!("no current manifest ({e}); sending the starting one");
                        files.initial_manifest()
                    })
                };
                Message::request(id, "server/syncManifest", manifest).to_text()
            }
        };
        if let Some(outbound) = outbound
            && outbound.send_text_wait(text).await.is_ok()
        {
            self.live = true;
            for change in caught {
                send_change(outbound, change);
            }
        }
    }
}

impl ManifestSync {
    /// Asks the server to begin a streamed first sync (`server/syncBegin`): the scan's files
    /// go over an upload as it reads them, and the manifest after
    /// ([`Self::send_streamed`]). Returns the request's id, `None` when it could not be sent.
    pub async fn begin(&mut self, walked: Walked, outbound: Option<&Outbound>) -> Option<Value> {
        let outbound = outbound?;
        self.syncs += 1;
        let id = Value::String(format!("{BEGIN_ID_PREFIX}{}", self.syncs));
        let params = SyncBeginParams {
            transfers: true,
            files: walked.files,
            bytes: walked.bytes,
        };
        let request = Message::request(
            id.clone(),
            SYNC_BEGIN,
            serde_json::to_value(params).unwrap_or(Value::Null),
        );
        outbound.send_wait(&request).await.ok()?;
        Some(id)
    }

    /// The manifest of a streamed first sync, once the scan is over: the starting manifest
    /// with `streamed` naming the upload its files went to. From then on changes flow —
    /// unless it goes while the upload runs (`running`: `"uploadRunning": true`), then from
    /// [`Self::upload_over`] on. Returns whether it was sent.
    pub async fn send_streamed(
        &mut self,
        files: &mut LocalFiles,
        outbound: Option<&Outbound>,
        operation_id: &str,
        running: bool,
    ) -> bool {
        if files.scanned().await.is_err() {
            return false;
        }
        let Some(params) = files.take_initial_text() else {
            if running {
                // Already sent once: the upload's end sends the tree as it is now.
                return false;
            }
            // Already sent once: a manifest of the tree as it is now does the same.
            self.send(files, outbound, false).await;
            return true;
        };
        let Some(open) = params.strip_suffix('}') else {
            return false;
        };
        let id = Value::String(format!("{OWN_ID_PREFIX}sync:{}", self.syncs));
        let operation = Value::String(operation_id.to_owned());
        let text = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"server/syncManifest","params":{open},"streamed":{operation},"uploadRunning":{running}}}}}"#
        );
        let Some(outbound) = outbound else {
            return false;
        };
        let sent = outbound.send_text_wait(text).await.is_ok();
        // Changes queued on the server behind a sync that waits for the upload would stop its
        // socket before `server/syncUploadOver` could be read: they wait here instead.
        self.live = sent && !running;
        sent
    }

    /// Tells the server the upload of a sync whose manifest went while it ran is over
    /// (`server/syncUploadOver`); from then on changes flow. Told again by
    /// [`Self::tell_over_again`] until the sync is answered.
    pub async fn upload_over(&mut self, outbound: Option<&Outbound>, operation_id: &str) {
        self.over_unanswered = Some(operation_id.to_owned());
        let Some(outbound) = outbound else {
            return;
        };
        let over = Message::notification(SYNC_UPLOAD_OVER, json!({"operationId": operation_id}));
        if outbound.send_wait(&over).await.is_ok() {
            self.live = true;
        }
    }

    /// The upload `operation_id`, whose manifest went while it ran, was given up: its end is
    /// told on the next session ([`Self::tell_over_again`]).
    pub fn owe_over(&mut self, operation_id: String) {
        self.over_unanswered = Some(operation_id);
    }

    /// On a resumed session: a `server/syncUploadOver` whose sync was not answered yet goes
    /// again (the server takes it twice harmlessly). A new session has no such sync.
    pub async fn tell_over_again(&mut self, outbound: Option<&Outbound>, kind: Reestablished) {
        if kind != Reestablished::Resumed {
            self.over_unanswered = None;
            return;
        }
        if let Some(operation_id) = self.over_unanswered.clone() {
            self.upload_over(outbound, &operation_id).await;
        }
    }

    /// One of the relay's syncs was answered (or refused): nothing is owed any more.
    pub fn answered(&mut self) {
        self.over_unanswered = None;
    }
}

/// Prefix of the relay's `server/syncBegin` requests.
pub const BEGIN_ID_PREFIX: &str = "r:begin:";

/// Whether `id` is one of the relay's `server/syncBegin` requests.
pub fn is_begin(id: &Value) -> bool {
    id.as_str().is_some_and(|s| s.starts_with(BEGIN_ID_PREFIX))
}

/// Sends one watcher change as `server/fileChanged`.
pub fn send_change(outbound: &Outbound, change: FileChanged) {
    match serde_json::to_value(&change) {
        Ok(params) => {
            let _ = outbound.send(&Message::notification("server/fileChanged", params));
        }
        Err(e) => tracing::warn!("cannot encode a file change: {e}"),
    }
}

/// A sync's answer for the log, as JSON with every list replaced by its length (an initial
/// sync names every file it fetched: 10,000 paths made a megabyte-long log line).
pub fn sync_summary(result: &Value) -> String {
    fn counted(v: &Value) -> Value {
        match v {
            Value::Array(items) => Value::from(items.len()),
            Value::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), counted(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    counted(result).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::relay::testing::connection_pair;

    #[test]
    fn a_sync_answer_is_logged_by_counts() {
        let answer = json!({"fetched": ["a", "b", "c"], "removed": [], "unchanged": 5,
            "transfer": {"files": ["x"], "bytes": 10}});
        let logged: Value = serde_json::from_str(&sync_summary(&answer)).unwrap();
        assert_eq!(
            logged,
            json!({"fetched": 3, "removed": 0, "unchanged": 5,
                "transfer": {"files": 1, "bytes": 10}})
        );
    }

    #[test]
    fn when_a_manifest_is_needed() {
        let mut sync = ManifestSync::default();
        assert!(!sync.needed_after(Reestablished::New), "initialize first");
        assert!(sync.wants_first());
        assert!(
            !sync.needed_after(Reestablished::Resumed),
            "nothing sent yet"
        );
        sync.syncs = 1;
        sync.live = true;
        assert!(sync.needed_after(Reestablished::Resumed));
        assert!(
            sync.is_live(),
            "a resumed session keeps its changes flowing"
        );
        assert!(sync.needed_after(Reestablished::Fresh));
        assert!(
            !sync.is_live(),
            "a new session gets a manifest before any change"
        );
        assert!(is_own(&json!("r:sync:1")));
        assert!(!is_own(&json!(1)));
    }

    /// `server/syncUploadOver` may die with the connection it went on: a resumed session gets
    /// it again until the sync is answered; a new session never does.
    #[tokio::test]
    async fn the_end_of_an_upload_is_told_again_until_its_sync_is_answered() {
        let ((outbound, _inbound), (_far, mut far_in)) = connection_pair().await;
        let mut sync = ManifestSync::default();
        let over = |m: Option<Message>| match m {
            Some(Message::Notification { method, params }) => {
                assert_eq!(method, SYNC_UPLOAD_OVER);
                params.unwrap()["operationId"].clone()
            }
            other => panic!("expected server/syncUploadOver, got {other:?}"),
        };
        // Told while the link was down: owed, and changes wait.
        sync.upload_over(None, "op-1").await;
        assert!(!sync.is_live());
        sync.tell_over_again(Some(&outbound), Reestablished::Resumed)
            .await;
        assert_eq!(over(far_in.recv().await), json!("op-1"));
        assert!(sync.is_live());
        // Sent, but the session resumed before the answer: told again.
        sync.tell_over_again(Some(&outbound), Reestablished::Resumed)
            .await;
        assert_eq!(over(far_in.recv().await), json!("op-1"));
        sync.answered();
        sync.tell_over_again(Some(&outbound), Reestablished::Resumed)
            .await;
        // A new session has no sync waiting for it.
        sync.upload_over(None, "op-2").await;
        sync.tell_over_again(Some(&outbound), Reestablished::Fresh)
            .await;
        sync.tell_over_again(Some(&outbound), Reestablished::Resumed)
            .await;
        drop(outbound);
        assert!(far_in.recv().await.is_none(), "nothing else was sent");
    }

    #[tokio::test]
    async fn the_manifest_goes_out_then_changes_flow() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("a.py"), "A = 1\n").unwrap();
        let mut files = LocalFiles::start(&root, None).await.unwrap();
        let ((outbound, _inbound), (_far, mut far_in)) = connection_pair().await;
        let mut sync = ManifestSync::default();

        // Without a connection nothing is sent and changes do not flow.
        sync.send(&mut files, None, true).await;
        assert!(!sync.is_live());

        sync.send(&mut files, Some(&outbound), false).await;
        assert!(sync.is_live());
        let Some(Message::Request { id, method, params }) = far_in.recv().await else {
            panic!("no manifest");
        };
        assert_eq!(
            (id, method.as_str()),
            (json!("r:sync:2"), "server/syncManifest")
        );
        assert!(params.unwrap().to_string().contains("a.py"));

        // A change after it follows as `server/fileChanged`.
        std::fs::write(root.join("b.py"), "B = 1\n").unwrap();
        files.start_flush().await.unwrap();
        let change = files.changes.recv().await.unwrap();
        send_change(&outbound, change);
        let Some(Message::Notification { method, params }) = far_in.recv().await else {
            panic!("no change");
        };
        assert_eq!(method, "server/fileChanged");
        assert!(params.unwrap().to_string().contains("b.py"));
    }
}
