//! `get_call_hierarchy_outgoing_calls`: `callHierarchy/outgoingCalls`.

use codeflow_lsp_pool::lsp_types::CallHierarchyOutgoingCallsParams;
use codeflow_lsp_pool::lsp_types::request::CallHierarchyOutgoingCalls;
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::Locator;
use crate::lsp::args::{finish, places_schema};
use crate::tools::prepare_call_hierarchy::{
    CallsArgs, calls_input_schema, describe_item, item_schema, target_item,
};

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
        json!({
            "type": "object",
            "properties": {
                "item": item_schema(),
                "calls": {"type": "array", "items": {"type": "object", "properties": {
                    "to": item_schema(),
                    "call_sites": places_schema("Where the calls are.")
                }, "required": ["to", "call_sites"]}}
            },
            "required": ["item", "calls"]
        })
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            ctx.require(Right::LspQuery)?;
            let args: CallsArgs = parse_args(args)?;
            let (doc, item) = target_item(ctx, args).await?;
            let calls = doc
                .server
                .request::<CallHierarchyOutgoingCalls>(CallHierarchyOutgoingCallsParams {
                    item: item.clone(),
                    work_done_progress_params: Default::default(),
                    partial_result_params: Default::default(),
                })
                .await
                .map_err(crate::lsp::lsp_error)?
                .unwrap_or_default();
            let locator = Locator::new(ctx).await?;
            let (item_value, item_text) = describe_item(&locator, &item).await;
            let mut rows = Vec::new();
            let mut text = vec![format!("{} callees of {item_text}:", calls.len())];
            for call in &calls {
                let (v, t) = describe_item(&locator, &call.to).await;
                text.push(format!("  {t}"));
                let sites_uri = &item.uri;
                let mut sites = Vec::new();
                for range in &call.from_ranges {
                    sites.push(locator.place(sites_uri, *range).await);
                }
                let sites = crate::lsp::locations::dedup(sites);
                for place in &sites {
                    text.push(format!("    call at {}", place.render()));
                }
                rows.push(json!({"to": v, "call_sites": sites}));
            }
            Ok(finish(
                &locator,
                text.join("\n"),
                json!({"item": item_value, "calls": rows}),
            ))
        }
        .boxed()
    }
}
