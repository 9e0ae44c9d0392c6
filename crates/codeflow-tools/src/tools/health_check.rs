//! `health_check`: is the service up, and what is it holding?

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};

/// The `health_check` tool (its description is in `description`).
#[derive(Debug)]
pub struct HealthCheck;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    include_details: bool,
}

impl Tool for HealthCheck {
    fn name(&self) -> &'static str {
        "health_check"
    }

    fn description(&self) -> &'static str {
        "Report whether the CodeFlow service is healthy: version, uptime, this project's sessions, and this session; use it to check the connection before other tools or when tools fail."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "include_details": {
                    "type": "boolean",
                    "default": false,
                    "description": "Also list this project's language servers (state, pid, uptime, restarts, open documents)."
                }
            },
            "additionalProperties": false
        })
    }

    fn output_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["ok"]},
                "service": {"type": "string"},
                "version": {"type": "string"},
                "uptime_secs": {"type": "number", "description": "Seconds since the server started."},
                "sessions": {"type": "integer", "description": "Sessions of this project."},
                "attached_sessions": {"type": "integer", "description": "Sessions of this project with a connection."},
                "session": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "project": {"type": "string"},
                        "project_root": {"type": "string"},
                        "file_stream": {"type": "boolean"}
                    }
                },
                "sessions_per_project": {"type": "object", "additionalProperties": {"type": "integer"}},
                "language_servers": {"type": "integer", "description": "Language servers this project has (any state)."},
                "mirror": {"type": "object", "properties": {"files": {"type": "integer"}, "shared": {"type": "boolean"}, "sync": {"type": "object", "description": "The mirror's sync: running now (progress: via, files, totalFiles, bytes, totalBytes), the last one, the last refused."}}},
                "servers": {"type": "array", "items": {"type": "object"}, "description": "Per language server: state, pid, uptime, restarts, open documents."}
            },
            "required": ["status", "service", "version", "uptime_secs", "sessions", "session"]
        })
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            let args: Args = if args.is_null() { Args::default() } else { parse_args(args)? };
            // Counts of this session's project only: a session learns nothing about other
            // projects, not even that they exist (R6). `/healthz` has server-wide counts.
            let peers = ctx
                .caller
                .registry()
                .map(|r| r.sessions_of(&ctx.caller.project))
                .unwrap_or_default();
            let attached = peers.iter().filter(|s| s.is_attached()).count();
            let uptime = ctx.services.started.elapsed().as_secs_f64();
            let mut structured = json!({
                "status": "ok",
                "service": "codeflow-server",
                "version": ctx.services.version,
                "uptime_secs": (uptime * 1000.0).round() / 1000.0,
                "sessions": peers.len(),
                "attached_sessions": attached,
                "session": {
                    "id": ctx.caller.id,
                    "project": ctx.caller.project.as_str(),
                    "project_root": ctx.caller.root.as_str(),
                    "file_stream": ctx.caller.file_stream,
                }
            });
            // Only this session's project: a token for project A learns nothing about B.
            let project = ctx.caller.project.as_str();
            let servers = ctx.services.pool().project_status(project);
            let workspace = ctx.services.workspaces.get(&ctx.caller.project).await;
            structured["language_servers"] = json!(servers.len());
            if let Some(ws) = &workspace {
                structured["mirror"] = json!({
                    "files": ws.mirror.file_count(),
                    "shared": ws.mirror.is_shared(),
                    "sync": ws.extensions.get::<codeflow_workspace::SyncState>().to_json(),
                });
            }
            if args.include_details {
                structured["sessions_per_project"] = json!({project: peers.len()});
                structured["servers"] = json!(servers
                    .iter()
                    .map(|s| json!({
                        "server": s.server_id,
                        "language": s.language,
                        "state": format!("{:?}", s.state).to_lowercase(),
                        "pid": s.pid,
                        "uptime_secs": s.uptime_secs,
                        "restarts": s.restarts,
                        "crashes": s.crashes,
                        "open_documents": s.open_documents,
                        "indexing": s.indexing,
                        "last_error": s.last_error,
                    }))
                    .collect::<Vec<_>>());
            }
            let text = format!(
                "CodeFlow {} is healthy: up {:.0} s, {} session(s) on this project. This session: {} on project `{}` ({}).",
                ctx.services.version,
                uptime,
                peers.len(),
                ctx.caller.id,
                ctx.caller.project,
                ctx.caller.root.as_str(),
            );
            Ok(ToolOutput { text, structured })
        }
        .boxed()
    }
}
