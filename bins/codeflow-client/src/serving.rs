//! Serving the server's `client/*` requests from this container's disk.
//!
//! Each request is served on a task of its own, owned here. Its answer comes back through the
//! relay loop ([`Serving::next`], then [`Serving::finished`]), so it goes to whichever
//! connection is up when it is ready — not to the one the request came in on, which may have
//! died meanwhile. A request the server sends again after a resume is answered from
//! [`crate::answers`] instead of being served twice.

use std::collections::HashMap;

use codeflow_file_stream::transfer::UPLOAD_FILES;
use codeflow_file_stream::{FileServer, RemoteError};
use codeflow_transport::{ErrorObject, Message, codes};
use serde_json::Value;
use tokio::task::JoinSet;

use crate::answers::{self, Admission, AnswerMemory};

/// A request served: its answer, for the session it came from.
pub struct Served {
    session: u64,
    key: String,
    text: String,
}

pub struct Serving {
    files: FileServer,
    /// Sends a sync's files over an upload transfer (`client/uploadFiles`).
    uploader: Option<std::sync::Arc<crate::upload::Uploader>>,
    memory: AnswerMemory,
    running: JoinSet<Served>,
    /// What each running task serves, to answer it even if the task fails.
    tasks: HashMap<tokio::task::Id, (u64, Value)>,
    /// Counts sessions: answers to an old session's requests are not sent to a new one (its
    /// ids start over).
    session: u64,
}

impl Serving {
    pub fn new(files: FileServer) -> Self {
        Self {
            files,
            uploader: None,
            memory: AnswerMemory::default(),
            running: JoinSet::new(),
            tasks: HashMap::new(),
            session: 0,
        }
    }

    /// Serves `client/uploadFiles` with `uploader` (without, it is answered as unknown and the
    /// server reads files instead).
    pub fn with_uploader(
        mut self,
        uploader: Option<std::sync::Arc<crate::upload::Uploader>>,
    ) -> Self {
        self.uploader = uploader;
        self
    }

    /// Takes a `client/*` request. Returns the text to send back now: a remembered answer to a
    /// re-sent request, or a refusal; `None` when it is being served (its answer comes from
    /// [`Self::next`]).
    pub fn request(&mut self, id: Value, method: String, params: Option<Value>) -> Option<String> {
        match self.memory.admit(answers::key(&id), &method) {
            Admission::Serve => {
                let files = self.files.clone();
                let uploader = self.uploader.clone();
                let session = self.session;
                let key = answers::key(&id);
                let request_id = id.clone();
                let task = self.running.spawn(async move {
                    let text = match uploader.filter(|_| method == UPLOAD_FILES) {
                        Some(uploader) => {
                            let reply = match uploader.run(params.unwrap_or(Value::Null)).await {
                                Ok(summary) => Message::response(request_id, summary),
                                Err(e) => Message::error(request_id, e),
                            };
                            reply.to_text()
                        }
                        None => answer(&files, request_id, &method, params).await,
                    };
                    Served { session, key, text }
                });
                self.tasks.insert(task.id(), (session, id));
                None
            }
            Admission::Running => {
                tracing::debug!(%id, "re-sent request still being served; its answer will follow");
                None
            }
            Admission::Answered(text) => {
                tracing::info!(%id, "re-sent `{method}` answered from memory, not served again");
                Some(text)
            }
            Admission::TooMany => {
                let error = ErrorObject::new(
                    codes::LIMIT_EXCEEDED,
                    format!(
                        "the relay is already serving {} file requests",
                        answers::MAX_RUNNING
                    ),
                )
                .with_suggestion("retry when some have been answered");
                Some(Message::error(id, error).to_text())
            }
        }
    }

    /// The next request served; pending while none is being served.
    pub async fn next(&mut self) -> Served {
        loop {
            let Some(joined) = self.running.join_next_with_id().await else {
                return std::future::pending().await;
            };
            match joined {
                Ok((task, served)) => {
                    self.tasks.remove(&task);
                    return served;
                }
                Err(e) => {
                    let Some((session, id)) = self.tasks.remove(&e.id()) else {
                        continue;
                    };
                    tracing::error!(%id, "serving a file request failed: {e}");
                    let error = ErrorObject::new(
                        codes::INTERNAL_ERROR,
                        format!("the relay failed while serving this request: {e}"),
                    );
                    return Served {
                        session,
                        key: answers::key(&id),
                        text: Message::error(id, error).to_text(),
                    };
                }
            }
        }
    }

    /// Records what was served; returns the answer to send, unless it belongs to a session
    /// the relay no longer has.
    pub fn finished(&mut self, served: Served) -> Option<String> {
        if served.session != self.session {
            return None;
        }
        self.memory.answered(&served.key, &served.text);
        Some(served.text)
    }

    /// The relay has a new session: forget the old one's requests.
    pub fn new_session(&mut self) {
        self.session += 1;
        self.memory.clear();
    }
}

async fn answer(files: &FileServer, id: Value, method: &str, params: Option<Value>) -> String {
    let reply = match files.handle(method, params.unwrap_or(Value::Null)).await {
        Ok(result) => Message::response(id, result),
        Err(e) => Message::error(id, RemoteError::from(&e)),
    };
    reply.to_text()
}

#[cfg(test)]
mod tests {
    use super::*;
    use codeflow_file_stream::Limits;
    use serde_json::json;

    fn write(path: &str) -> (String, Option<Value>) {
        (
            "client/writeFile".into(),
            Some(json!({"path": path, "content": "x = 1\n"})),
        )
    }

    #[tokio::test]
    async fn a_resent_write_acts_once_and_gets_the_same_answer() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let files = FileServer::new(&root, Limits::default()).unwrap();
        let mut serving = Serving::new(files);
        let path = root.join("new.py").to_string_lossy().into_owned();
        let (method, params) = write(&path);

        assert_eq!(
            serving.request(json!("s:1"), method.clone(), params.clone()),
            None
        );
        // Re-sent while being served: nothing more is served.
        assert_eq!(
            serving.request(json!("s:1"), method.clone(), params.clone()),
            None
        );
        let first = serving.next().await;
        let text = serving.finished(first).unwrap_or_default();
        assert!(text.contains(r#""result""#), "{text}");
        // Re-sent after the answer (the new file must not exist: served twice, it would fail).
        assert_eq!(
            serving.request(json!("s:1"), method.clone(), params.clone()),
            Some(text)
        );
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), serving.next())
                .await
                .is_err(),
            "nothing else was served"
        );

        // A new session's `s:1` is a new request: served (and refused, the file exists).
        serving.new_session();
        assert_eq!(serving.request(json!("s:1"), method, params), None);
        let again = serving.next().await;
        let text = serving.finished(again).unwrap_or_default();
        assert!(text.contains(r#""error""#), "{text}");
    }

    #[tokio::test]
    async fn an_answer_for_an_old_session_is_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let files = FileServer::new(&root, Limits::default()).unwrap();
        let mut serving = Serving::new(files);
        let path = root.join("old.py").to_string_lossy().into_owned();
        let (method, params) = write(&path);
        assert_eq!(serving.request(json!("s:1"), method, params), None);
        serving.new_session();
        let served = serving.next().await;
        assert_eq!(serving.finished(served), None);
    }
}
