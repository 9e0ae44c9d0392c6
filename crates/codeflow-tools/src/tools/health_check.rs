//! `health_check`: is the service up, and what is it holding?

use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::BTreeMap;

use codeflow_workspace::{ProjectWorkspace, Scrubber, ServerText};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::catalogue::{Tool, ToolOutput, ToolOutputText};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::output::schema_of;

/// The answer for `ctx`'s caller: the text for the model and the structured output.
fn answer(
    ctx: &ToolContext,
    args: &Args,
    workspace: Option<&Arc<ProjectWorkspace>>,
) -> (String, Output) {
    // Counts of this session's project only: a session learns nothing about other
    // projects, not even that they exist (R6). `/healthz` has server-wide counts.
    let peers = ctx
        .caller
        .registry()
        .map(|r| r.sessions_of(&ctx.caller.project))
        .unwrap_or_default();
    let attached = peers.iter().filter(|s| s.is_attached()).count();
    let uptime = ctx.services.started.elapsed().as_secs_f64();
    // Only this session's project: a token for project A learns nothing about B.
    let project = ctx.caller.project.as_str();
    let servers = ctx.services.pool().project_status(project);
    let scrubber = workspace.map(|ws| ctx.caller.scrubber(ws));
    let server_text = |e: &str| match &scrubber {
        Some(scrubber) => scrubber.text(e),
        None => Scrubber::new(std::path::Path::new(""), "").text(e),
    };
    let structured = Output {
        status: Status::Ok,
        service: "codeflow-server".to_owned(),
        version: ctx.services.version.to_owned(),
        uptime_secs: (uptime * 1000.0).round() / 1000.0,
        sessions: peers.len(),
        attached_sessions: attached,
        session: SessionInfo {
            id: ctx.caller.id.to_string(),
            project: project.to_owned(),
            project_root: ctx.caller.root.as_str().to_owned(),
            file_stream: ctx.caller.file_stream,
        },
        language_servers: servers.len(),
        mirror: workspace.map(|ws| MirrorInfo {
            files: ws.mirror.file_count(),
            shared: ws.mirror.is_shared(),
            sync: ws
                .extensions
                .get::<codeflow_workspace::SyncState>()
                .to_json(),
        }),
        sessions_per_project: args
            .include_details
            .then(|| BTreeMap::from([(project.to_owned(), peers.len())])),
        servers: args.include_details.then(|| {
            servers
                .iter()
                .map(|s| ServerInfo {
                    server: s.server_id.clone(),
                    language: s.language.clone(),
                    state: format!("{:?}", s.state).to_lowercase(),
                    pid: s.pid,
                    uptime_secs: s.uptime_secs,
                    restarts: s.restarts,
                    crashes: s.crashes,
                    open_documents: s.open_documents,
                    indexing: s.indexing,
                    last_error: s.last_error.as_deref().map(server_text),
                })
                .collect()
        }),
    };
    let text = format!(
        "CodeFlow {} is healthy: up {:.0} s, {} session(s) on this project{}. This session: {} on project `{}` ({}).",
        ctx.services.version,
        uptime,
        peers.len(),
        // Sessions whose relay went away are kept for a resume (`resume_grace_secs`).
        if attached < peers.len() {
            format!(
                " ({attached} connected, {} kept for their relay to resume)",
                peers.len() - attached
            )
        } else {
            String::new()
        },
        ctx.caller.id,
        ctx.caller.project,
        ctx.caller.root.as_str(),
    );
    (text, structured)
}

/// The `health_check` tool (its description is in `description`).
#[derive(Debug)]
pub struct HealthCheck;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    include_details: bool,
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    status: Status,
    service: String,
    version: String,
    /// Seconds since the server started.
    uptime_secs: f64,
    /// Sessions of this project.
    sessions: usize,
    /// Sessions of this project with a connection.
    attached_sessions: usize,
    session: SessionInfo,
    /// Language servers this project has (any state).
    language_servers: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    mirror: Option<MirrorInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sessions_per_project: Option<BTreeMap<String, usize>>,
    /// Per language server: state, pid, uptime, restarts, open documents.
    #[serde(skip_serializing_if = "Option::is_none")]
    servers: Option<Vec<ServerInfo>>,
}

/// Always `ok`: an answer means the service is up.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
}

/// The calling session.
#[derive(Debug, Serialize, JsonSchema)]
struct SessionInfo {
    id: String,
    project: String,
    project_root: String,
    file_stream: bool,
}

/// The project's mirror.
#[derive(Debug, Serialize, JsonSchema)]
struct MirrorInfo {
    files: usize,
    shared: bool,
    /// The mirror's sync: running now (`progress`: via, files, totalFiles, bytes,
    /// totalBytes), the last one, the last refused.
    sync: Value,
}

/// One language server of the project.
#[derive(Debug, Serialize, JsonSchema)]
struct ServerInfo {
    server: String,
    language: String,
    state: String,
    pid: Option<u32>,
    uptime_secs: Option<f64>,
    restarts: u32,
    crashes: u32,
    open_documents: usize,
    indexing: bool,
    last_error: Option<ServerText>,
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
        schema_of::<Output>()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            let args: Args = if args.is_null() {
                Args::default()
            } else {
                parse_args(args)?
            };
            let workspace = ctx.services.workspaces.get(&ctx.caller.project).await;
            let (text, structured) = answer(ctx, &args, workspace.as_ref());
            ToolOutput::typed(text, &structured)
        }
        .boxed()
    }

    fn answer_at_once(
        &self,
        ctx: &ToolContext,
        args: &Value,
    ) -> Option<Result<ToolOutputText, ToolError>> {
        let args: Args = if args.is_null() {
            Args::default()
        } else {
            match parse_args(args.clone()) {
                Ok(args) => args,
                Err(e) => return Some(Err(e)),
            }
        };
        // The workspaces' lock, when free: else the call goes to its own task.
        let workspace = ctx
            .services
            .workspaces
            .get(&ctx.caller.project)
            .now_or_never()?;
        let (text, structured) = answer(ctx, &args, workspace.as_ref());
        Some(ToolOutputText::typed(text, &structured))
    }

    fn answers_from_memory(&self) -> bool {
        // Counts and states held in memory; the only await is the workspaces' lock, which a
        // try on the routing task does not wait for (the call then goes to its own task).
        true
    }
}
