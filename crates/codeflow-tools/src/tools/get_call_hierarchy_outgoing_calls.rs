//! `get_call_hierarchy_outgoing_calls`: `callHierarchy/outgoingCalls`.

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::ToolError;
use crate::tools::prepare_call_hierarchy::{CallDirection, calls_input_schema};

/// The `get_call_hierarchy_outgoing_calls` tool (its description is in `description`).
#[derive(Debug)]
pub struct GetCallHierarchyOutgoingCalls;

impl Tool for GetCallHierarchyOutgoingCalls {
    fn name(&self) -> &'static str {
        "get_call_hierarchy_outgoing_calls"
    }

    fn description(&self) -> &'static str {
        "List the functions the given function or method calls (an item from prepare_call_hierarchy, or a 1-based position on its name), with each call site; use it to see what it depends on."
    }

    fn input_schema(&self) -> Value {
        calls_input_schema()
    }

    fn output_schema(&self) -> Value {
        CallDirection::Outgoing.output_schema()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        CallDirection::Outgoing.list(ctx, args).boxed()
    }
}
