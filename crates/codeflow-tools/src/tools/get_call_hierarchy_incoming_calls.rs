//! `get_call_hierarchy_incoming_calls`: `callHierarchy/incomingCalls`.

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::ToolError;
use crate::tools::prepare_call_hierarchy::{CallDirection, calls_input_schema};

/// The `get_call_hierarchy_incoming_calls` tool (its description is in `description`).
#[derive(Debug)]
pub struct GetCallHierarchyIncomingCalls;

impl Tool for GetCallHierarchyIncomingCalls {
    fn name(&self) -> &'static str {
        "get_call_hierarchy_incoming_calls"
    }

    fn description(&self) -> &'static str {
        "List the functions that call the given function or method (an item from prepare_call_hierarchy, or a 1-based position on its name), with each call site; use it to see who depends on it."
    }

    fn input_schema(&self) -> Value {
        calls_input_schema()
    }

    fn output_schema(&self) -> Value {
        CallDirection::Incoming.output_schema()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        CallDirection::Incoming.list(ctx, args).boxed()
    }
}
