//! The server's line to a caller's client files: [`ClientFiles`] over
//! [`Session::request_client`], or in-process files. Requests are in the caller's own paths
//! (see [`crate::Caller::mirror`]).

use std::sync::Arc;
use std::time::Duration;

use codeflow_file_stream::{ClientFiles, RemoteError};
use codeflow_session::Session;
use futures::future::BoxFuture;
use serde_json::Value;

/// How long a file request may take before it counts as lost (a 10 MB read over a slow link).
const FILE_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a caller's file requests go.
#[derive(Clone)]
enum Target {
    Session(Arc<Session>),
    Local(Arc<dyn ClientFiles>),
}

/// [`ClientFiles`] for one caller: its session's relay, or in-process files.
#[derive(Clone)]
pub struct CallerClient {
    target: Target,
}

impl std::fmt::Debug for CallerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerClient").finish_non_exhaustive()
    }
}

impl CallerClient {
    pub(crate) fn session(session: Arc<Session>) -> Self {
        Self {
            target: Target::Session(session),
        }
    }

    pub(crate) fn local(files: Arc<dyn ClientFiles>) -> Self {
        Self {
            target: Target::Local(files),
        }
    }
}

impl ClientFiles for CallerClient {
    fn call<'a>(
        &'a self,
        method: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<Value, RemoteError>> {
        Box::pin(async move {
            match &self.target {
                Target::Session(session) => {
                    session
                        .request_client(method, params, FILE_REQUEST_TIMEOUT)
                        .await
                }
                Target::Local(files) => files.call(method, params).await,
            }
        })
    }
}
