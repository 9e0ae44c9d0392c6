//! `restart_server`: restart this project's language servers.

use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::output::schema_of;

/// The `restart_server` tool (its description is in `description`).
#[derive(Debug)]
pub struct RestartServer;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    extensions: Option<Vec<String>>,
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    /// Ids of the servers restarted.
    restarted: Vec<String>,
}

impl Tool for RestartServer {
    fn name(&self) -> &'static str {
        "restart_server"
    }

    fn description(&self) -> &'static str {
        "Restart this project's language servers (all, or those for the given file extensions); use it when answers look stale or a server seems stuck."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "extensions": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "File extensions whose servers to restart, e.g. [\"py\", \"ts\"]; all servers when omitted."
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
            ctx.require(Right::LspQuery)?;
            let args: Args = if args.is_null() {
                Args::default()
            } else {
                parse_args(args)?
            };
            let project = ctx.caller.project.as_str();
            let restarted = ctx
                .services
                .pool()
                .restart_project(project, args.extensions.as_deref())
                .await
                .map_err(ToolError::from_lsp)?;
            let text = if restarted.is_empty() {
                "No language server was running for this project; servers start on first use."
                    .to_owned()
            } else {
                format!("Restarted: {}.", restarted.join(", "))
            };
            ToolOutput::typed(text, &Output { restarted })
        }
        .boxed()
    }
}
