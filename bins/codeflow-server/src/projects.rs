//! Wiring of the Claude executor into sessions: `projects/*` and `claude/*` as a session
//! method family, run events onto each project's `ai-response` channel, and the one function
//! that decides what a session may do with projects and runs.

use std::collections::HashSet;
use std::sync::{Arc, Weak};

use codeflow_claude_executor::{Caller, ErrorKind, EventSink, ExecError, Executor, Need};
use codeflow_session::{
    Channel, MethodFamily, MethodReply, ProjectId, Right, Session, SessionRegistry,
};
use codeflow_transport::{ErrorObject, codes};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::{Map, Value};

/// Publishes run events on the project's `ai-response` channel.
pub struct ChannelSink {
    registry: Mutex<Weak<SessionRegistry>>,
}

impl ChannelSink {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            registry: Mutex::new(Weak::new()),
        })
    }

    /// Connects the sink to the registry (built after the executor's sink exists).
    pub fn attach(&self, registry: &Arc<SessionRegistry>) {
        *self.registry.lock() = Arc::downgrade(registry);
    }
}

impl EventSink for ChannelSink {
    fn publish(&self, project: &str, event: Value) {
        let registry = self.registry.lock().upgrade();
        if let (Some(registry), Ok(project)) = (registry, ProjectId::parse(project)) {
            registry
                .channels()
                .publish(&project, Channel::AiResponse, event);
        }
    }
}

/// What a session may do with projects and runs: `projects:manage` for `projects/*`,
/// `claude:execute` for `claude/*`, and only on projects its token names. The single check
/// for both families (to be merged into the server's general authorization point).
pub fn authorize(session: &Session, need: Need, project: &str) -> Result<(), ExecError> {
    let right = match need {
        Need::Manage => Right::ProjectsManage,
        Need::Execute => Right::ClaudeExecute,
        Need::WriteFiles => Right::FileWrite,
    };
    if !session.has(right) {
        return Err(ExecError::new(
            ErrorKind::Forbidden,
            format!("this token lacks the `{}` right", right.as_str()),
        )
        .suggest("use a token whose scope includes it"));
    }
    let allowed = ProjectId::parse(project).is_ok_and(|p| session.grant().allows_project(&p));
    if !allowed {
        return Err(ExecError::new(
            ErrorKind::Forbidden,
            format!("this token does not grant project `{project}`"),
        )
        .suggest("use a token whose `projects` includes it"));
    }
    Ok(())
}

struct SessionCaller<'a>(&'a Session);

impl Caller for SessionCaller<'_> {
    fn session_id(&self) -> &str {
        &self.0.id
    }

    fn check(&self, need: Need, project: &str) -> Result<(), ExecError> {
        authorize(self.0, need, project)
    }
}

/// `projects/*` and `claude/*`, served by the executor.
pub struct ExecutorMethods {
    executor: Arc<Executor>,
    /// Sessions whose end is watched (to forget their project memberships).
    watched: Arc<Mutex<HashSet<String>>>,
}

impl ExecutorMethods {
    pub fn new(executor: Arc<Executor>) -> Arc<Self> {
        Arc::new(Self {
            executor,
            watched: Arc::default(),
        })
    }

    /// Forgets the session's memberships when it ends (once per session).
    fn watch(&self, session: &Arc<Session>) {
        if !self.watched.lock().insert(session.id.clone()) {
            return;
        }
        let executor = self.executor.clone();
        let watched = self.watched.clone();
        let session = session.clone();
        tokio::spawn(async move {
            session.closed().await;
            executor.session_ended(&session.id);
            watched.lock().remove(&session.id);
        });
    }
}

fn to_error(e: ExecError) -> ErrorObject {
    let code = match e.kind {
        ErrorKind::InvalidParams => codes::INVALID_PARAMS,
        ErrorKind::NotFound => codes::INVALID_PARAMS,
        ErrorKind::Conflict => codes::INVALID_REQUEST,
        ErrorKind::Limit => codes::LIMIT_EXCEEDED,
        ErrorKind::Forbidden => codes::FORBIDDEN,
        ErrorKind::Internal => codes::INTERNAL_ERROR,
    };
    let mut error = ErrorObject::new(code, e.message);
    let mut data = match e.data {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    data.insert(
        "reason".into(),
        match e.kind {
            ErrorKind::InvalidParams => "invalid_params",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Limit => "limit",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Internal => "internal",
        }
        .into(),
    );
    if let Some(s) = e.suggestion {
        data.insert("suggestion".into(), s.into());
    }
    error.data = Some(Value::Object(data));
    error
}

/// `since` as in `channels/subscribe`.
fn since(params: &Value) -> Result<Option<(String, u64)>, ErrorObject> {
    match params.get("since") {
        None | Some(Value::Null) => Ok(None),
        Some(since) => match (
            since.get("epoch").and_then(Value::as_str),
            since.get("offset").and_then(Value::as_u64),
        ) {
            (Some(e), Some(o)) => Ok(Some((e.to_owned(), o))),
            _ => Err(ErrorObject::new(
                codes::INVALID_PARAMS,
                "`since` must be {\"epoch\": string, \"offset\": number}",
            )
            .with_suggestion("pass back the epoch and offset of the last event you received")),
        },
    }
}

impl MethodFamily for ExecutorMethods {
    fn serves(&self, method: &str) -> bool {
        matches!(
            method,
            "projects/create"
                | "projects/delete"
                | "projects/list"
                | "projects/get"
                | "projects/join"
                | "projects/leave"
                | "projects/post"
                | "projects/history"
                | "claude/execute"
                | "claude/cancel"
                | "claude/changes"
        )
    }

    fn handle(
        &self,
        session: Arc<Session>,
        method: String,
        params: Option<Value>,
    ) -> BoxFuture<'static, Result<MethodReply, ErrorObject>> {
        let executor = self.executor.clone();
        if method == "projects/join" {
            self.watch(&session);
        }
        Box::pin(async move {
            let params = params.unwrap_or(Value::Null);
            let caller = SessionCaller(&session);
            match method.as_str() {
                "projects/join" | "projects/leave" => {
                    let since = since(&params)?;
                    // The session's own project, or another one its token grants (the executor
                    // checks the right and the project, as for every projects/* method).
                    let other = match params.get("project") {
                        None | Some(Value::Null) => None,
                        Some(Value::String(name)) if name == session.project.as_str() => None,
                        Some(Value::String(name)) => Some(ProjectId::parse(name).map_err(|e| {
                            to_error(ExecError::invalid(format!("`project`: {e}")))
                        })?),
                        Some(_) => {
                            return Err(to_error(ExecError::invalid(
                                "`project` must be a project id",
                            )));
                        }
                    };
                    let project = other.as_ref().unwrap_or(&session.project).clone();
                    let mut params = params;
                    if let Value::Object(map) = &mut params {
                        map.insert("project".into(), project.as_str().into());
                    } else {
                        params = serde_json::json!({"project": project.as_str()});
                    }
                    let info = executor
                        .call(&method, params, &caller)
                        .await
                        .map_err(to_error)?;
                    let mut extra = Map::new();
                    extra.insert("project".into(), info);
                    Ok(if method == "projects/join" {
                        MethodReply::Subscribe {
                            project: other,
                            channel: Channel::AiResponse,
                            since,
                            extra,
                        }
                    } else {
                        MethodReply::Unsubscribe {
                            project: other,
                            channel: Channel::AiResponse,
                            extra,
                        }
                    })
                }
                _ => executor
                    .call(&method, params, &caller)
                    .await
                    .map(MethodReply::Result)
                    .map_err(to_error),
            }
        })
    }
}
