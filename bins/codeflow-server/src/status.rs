//! `status/projects`: a read-only view of the projects a session's token may see — their
//! sessions, language servers (state, pid, restarts, memory), mirror sync state and Claude-run
//! status — for the web console's projects page (docs/console.md).
//!
//! It needs no right beyond the token's project grant: the same facts `health_check` tells a
//! session about its own project. Projects the token does not name are left out entirely, so a
//! token for A learns nothing of B, not even that it exists.

use std::collections::BTreeSet;
use std::sync::Arc;

use codeflow_claude_executor::{Caller, ErrorKind, ExecError, Executor, Need};
use codeflow_lsp_pool::ServerStatus;
use codeflow_session::{
    Grant, MethodFamily, MethodReply, ProjectId, ProjectScope, Session, SessionRegistry,
};
use codeflow_tools::ServerServices;
use codeflow_transport::ErrorObject;
use futures::future::BoxFuture;
use serde_json::{Value, json};

/// The `status/*` family.
pub struct StatusMethods {
    services: Arc<ServerServices>,
    executor: Arc<Executor>,
}

impl StatusMethods {
    pub fn new(services: Arc<ServerServices>, executor: Arc<Executor>) -> Arc<Self> {
        Arc::new(Self { services, executor })
    }
}

impl MethodFamily for StatusMethods {
    fn serves(&self, method: &str) -> bool {
        method == "status/projects"
    }

    fn handle(
        &self,
        session: Arc<Session>,
        _method: String,
        _params: Option<Value>,
    ) -> BoxFuture<'static, Result<MethodReply, ErrorObject>> {
        let services = self.services.clone();
        let executor = self.executor.clone();
        Box::pin(async move {
            let Some(registry) = session.registry() else {
                return Err(ErrorObject::new(
                    codeflow_transport::codes::INTERNAL_ERROR,
                    "the server is shutting down",
                ));
            };
            let grant = session.grant();
            let projects = projects(&grant, &registry, &services, &executor, &session.id).await;
            Ok(MethodReply::Result(json!({ "projects": projects })))
        })
    }
}

/// Lets the executor list what the grant names, whatever its rights (status is read-only).
struct GrantOnly<'a>(&'a Grant, &'a str);

impl Caller for GrantOnly<'_> {
    fn session_id(&self) -> &str {
        self.1
    }

    fn check(&self, _need: Need, project: &str) -> Result<(), ExecError> {
        if self.0.allows_project_name(project) {
            Ok(())
        } else {
            Err(ExecError::new(ErrorKind::Forbidden, "not granted"))
        }
    }
}

async fn projects(
    grant: &Grant,
    registry: &SessionRegistry,
    services: &ServerServices,
    executor: &Arc<Executor>,
    session_id: &str,
) -> Vec<Value> {
    let caller = GrantOnly(grant, session_id);
    let managed = executor
        .call("projects/list", json!({}), &caller)
        .await
        .ok()
        .and_then(|v| v.get("projects").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    let servers = services.pool().status();
    // Every project the server knows of (sessions, language servers, managed projects), and
    // the ones the token names even when idle.
    let mut ids: BTreeSet<String> = registry.stats().projects.into_keys().collect();
    ids.extend(servers.iter().map(|s| s.project.clone()));
    ids.extend(
        managed
            .iter()
            .filter_map(|p| p.get("id").and_then(Value::as_str).map(str::to_owned)),
    );
    if let ProjectScope::Only(named) = &grant.projects {
        ids.extend(named.iter().cloned());
    }
    let mut out = Vec::new();
    for id in ids {
        let Ok(project) = ProjectId::parse(&id) else {
            continue;
        };
        if !grant.allows_project(&project) {
            continue;
        }
        let sessions: Vec<Value> = registry
            .sessions_of(&project)
            .iter()
            .map(|s| {
                json!({
                    // A prefix: enough to tell sessions apart, not a resume key.
                    "id": s.id.chars().take(8).collect::<String>(),
                    "root": s.root.as_str(),
                    "fileStream": s.file_stream,
                    "attached": s.is_attached(),
                    "ageSecs": s.created.elapsed().as_secs(),
                    "detachedSecs": s.detached_for().map(|d| d.as_secs()),
                    "you": s.id == session_id,
                })
            })
            .collect();
        let language_servers: Vec<Value> = servers
            .iter()
            .filter(|s| s.project == id)
            .map(server_json)
            .collect();
        let mirror = services.workspaces.get(&project).await.map(|ws| {
            json!({
                "files": ws.mirror.file_count(),
                "shared": ws.mirror.is_shared(),
                "sync": ws.extensions.get::<codeflow_workspace::SyncState>().to_json(),
            })
        });
        let executor = managed
            .iter()
            .find(|p| p.get("id").and_then(Value::as_str) == Some(id.as_str()))
            .map(|p| {
                json!({
                    "status": p["status"],
                    "streamed": p["streamed"],
                    "currentRun": p["currentRun"],
                    "runs": p["runs"],
                    "lastActive": p["lastActive"],
                    "lastError": p["lastError"],
                    "subscribers": p["subscribers"],
                })
            });
        let status = if let Some(e) = &executor {
            e["status"].as_str().unwrap_or("idle").to_owned()
        } else if sessions.iter().any(|s| s["attached"] == true) {
            "connected".to_owned()
        } else if sessions.is_empty() {
            "inactive".to_owned()
        } else {
            "detached".to_owned()
        };
        out.push(json!({
            "id": id,
            "status": status,
            "sessions": sessions,
            "languageServers": language_servers,
            "mirror": mirror,
            "managed": executor,
        }));
    }
    out
}

fn server_json(s: &ServerStatus) -> Value {
    json!({
        "server": s.server_id,
        "language": s.language,
        "state": format!("{:?}", s.state).to_lowercase(),
        "pid": s.pid,
        "uptimeSecs": s.uptime_secs,
        "restarts": s.restarts,
        "crashes": s.crashes,
        "openDocuments": s.open_documents,
        "indexing": s.indexing,
        "memoryBytes": s.pid.and_then(resident_bytes),
        "lastError": s.last_error,
    })
}

/// A process's resident memory, from `/proc/<pid>/status` (Linux; `None` elsewhere).
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_of_this_process() {
        let bytes = resident_bytes(std::process::id());
        assert!(bytes.is_some_and(|b| b > 0), "{bytes:?}");
        assert_eq!(resident_bytes(u32::MAX), None);
    }
}
