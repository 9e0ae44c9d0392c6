//! The server's line to a caller's client files: [`ClientFiles`] over
//! [`Session::request_client`] (or in-process files), with paths rebased when the caller's root
//! differs from the mirror's.

use std::sync::Arc;
use std::time::Duration;

use codeflow_file_stream::{ClientFiles, RemoteError};
use codeflow_session::Session;
use futures::future::BoxFuture;
use serde_json::Value;

/// How long a file request may take before it counts as lost (a 10 MB read over a slow link).
const FILE_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Moves client paths from one root to another (`/a/src/x` with `/a` → `/b` is `/b/src/x`).
///
/// Sessions of one project may mount it at different paths; the mirror speaks the root of the
/// session that opened it, and each session's traffic is rebased at this boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebase {
    from: String,
    to: String,
}

impl Rebase {
    pub fn new(from: &str, to: &str) -> Option<Self> {
        (from != to).then(|| Self {
            from: from.trim_end_matches('/').to_owned(),
            to: to.trim_end_matches('/').to_owned(),
        })
    }

    pub fn path(&self, path: &str) -> String {
        match path.strip_prefix(&self.from) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{}{rest}", self.to),
            _ => path.to_owned(),
        }
    }

    pub fn reversed(&self) -> Self {
        Self {
            from: self.to.clone(),
            to: self.from.clone(),
        }
    }

    /// Rebases the path-valued members of file-stream params (`path`, `from`, `to`, and each
    /// of `paths`).
    pub fn params(&self, mut params: Value) -> Value {
        if let Value::Object(map) = &mut params {
            for key in ["path", "from", "to"] {
                if let Some(Value::String(p)) = map.get_mut(key) {
                    *p = self.path(p);
                }
            }
            if let Some(Value::Array(paths)) = map.get_mut("paths") {
                for p in paths {
                    if let Value::String(p) = p {
                        *p = self.path(p);
                    }
                }
            }
        }
        params
    }

    /// Rebases the paths a result names (`client/readFiles` echoes each path asked).
    pub fn result(&self, method: &str, mut result: Value) -> Value {
        if method == codeflow_file_stream::protocol::READ_FILES
            && let Some(Value::Array(files)) = result.get_mut("files")
        {
            for entry in files {
                if let Some(Value::String(p)) = entry.get_mut("path") {
                    *p = self.path(p);
                }
            }
        }
        result
    }
}

/// Where a caller's file requests go.
#[derive(Clone)]
enum Target {
    Session(Arc<Session>),
    Local(Arc<dyn ClientFiles>),
}

/// [`ClientFiles`] for one caller: its session's relay (or in-process files), with the
/// mirror's client paths rebased onto the caller's root.
#[derive(Clone)]
pub struct CallerClient {
    target: Target,
    /// Mirror's client root → this caller's root.
    rebase: Option<Rebase>,
}

impl std::fmt::Debug for CallerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerClient")
            .field("rebase", &self.rebase)
            .finish_non_exhaustive()
    }
}

impl CallerClient {
    pub(crate) fn session(session: Arc<Session>, rebase: Option<Rebase>) -> Self {
        Self {
            target: Target::Session(session),
            rebase,
        }
    }

    pub(crate) fn local(files: Arc<dyn ClientFiles>, rebase: Option<Rebase>) -> Self {
        Self {
            target: Target::Local(files),
            rebase,
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
            let params = match &self.rebase {
                Some(r) => r.params(params),
                None => params,
            };
            let result = match &self.target {
                Target::Session(session) => session
                    .request_client(method, params, FILE_REQUEST_TIMEOUT)
                    .await
                    .map_err(|e| RemoteError {
                        code: e.code,
                        message: e.message,
                        data: e.data,
                    })?,
                Target::Local(files) => files.call(method, params).await?,
            };
            Ok(match &self.rebase {
                Some(r) => r.reversed().result(method, result),
                None => result,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebases_only_under_the_root() {
        let r = Rebase::new("/a", "/b/c").unwrap_or_else(|| unreachable!());
        assert_eq!(r.path("/a/src/x.py"), "/b/c/src/x.py");
        assert_eq!(r.path("/a"), "/b/c");
        assert_eq!(r.path("/ab/x"), "/ab/x");
        assert_eq!(r.reversed().path("/b/c/y"), "/a/y");
        assert!(Rebase::new("/a", "/a").is_none());
    }

    #[test]
    fn rebases_batched_reads_both_ways() {
        let r = Rebase::new("/a", "/b").unwrap_or_else(|| unreachable!());
        let params = r.params(serde_json::json!({"paths": ["/a/x", "/a/y/z", "/elsewhere"]}));
        assert_eq!(
            params["paths"],
            serde_json::json!(["/b/x", "/b/y/z", "/elsewhere"])
        );
        let answer =
            serde_json::json!({"files": [{"path": "/b/x", "file": {}}, {"path": "/b/y/z"}]});
        let back = r.reversed().result("client/readFiles", answer);
        assert_eq!(back["files"][0]["path"], "/a/x");
        assert_eq!(back["files"][1]["path"], "/a/y/z");
    }
}
