//! `prepare_call_hierarchy`: the call-hierarchy item(s) at a position — the input of
//! `get_call_hierarchy_incoming_calls` and `get_call_hierarchy_outgoing_calls`. The shared
//! pieces of all three live here.

use codeflow_lsp_pool::Operation;
use codeflow_lsp_pool::lsp_types::request::{
    CallHierarchyIncomingCalls, CallHierarchyOutgoingCalls, CallHierarchyPrepare,
};
use codeflow_lsp_pool::lsp_types::{
    CallHierarchyIncomingCallsParams, CallHierarchyItem, CallHierarchyOutgoingCallsParams,
    CallHierarchyPrepareParams, Position, Range, Url,
};
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{PositionArgs, object, position_properties};
use crate::lsp::{Coverage, CoverageMembers, FileRef, SymbolPlace};
use crate::lsp::{Document, Locator, Place, kind_name};
use crate::output::schema_of;
use codeflow_workspace::ServerText;
use schemars::JsonSchema;
use serde::Serialize;

/// The `prepare_call_hierarchy` tool (its description is in `description`).
#[derive(Debug)]
pub struct PrepareCallHierarchy;

/// Arguments of the incoming/outgoing tools: an item from `prepare_call_hierarchy`, or a
/// position.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallsArgs {
    /// The raw LSP item, or the whole entry prepare_call_hierarchy returned (see [`raw_item`]).
    #[serde(default)]
    item: Option<Value>,
    #[serde(default)]
    file_path: Option<String>,
    #[serde(default)]
    line: Option<u32>,
    #[serde(default)]
    character: Option<u32>,
}

pub(crate) fn calls_input_schema() -> Value {
    let mut props: Map<String, Value> = position_properties();
    props.insert("item".into(), json!({
        "type": "object",
        "description": "A call-hierarchy item as prepare_call_hierarchy returned it: an entry of its `items`, or that entry's `item` (its text answer shows it after `item:`). Give this, or file_path + line + character."
    }));
    json!({"type": "object", "properties": props, "additionalProperties": false})
}

/// The LSP item out of what an agent passed as `item`: the raw item, or the whole entry of
/// prepare_call_hierarchy's answer (its `item` member), with `kind` as a number or as the
/// lowercase name the entries show (`function`).
fn raw_item(value: Value) -> Result<CallHierarchyItem, ToolError> {
    let mut value = match value {
        Value::Object(mut entry) if entry.get("item").is_some_and(Value::is_object) => {
            entry.remove("item").unwrap_or_default()
        }
        other => other,
    };
    if let Some(kind) = value.get("kind").and_then(Value::as_str) {
        let number = crate::lsp::kind_from_name(kind).ok_or_else(|| {
            ToolError::InvalidArguments(format!(
                "item.kind `{kind}` is not a symbol kind (known: {})",
                crate::lsp::symbols::kind_names().join(", ")
            ))
        })?;
        value["kind"] = serde_json::to_value(number).unwrap_or_default();
    }
    serde_json::from_value(value).map_err(|e| {
        ToolError::InvalidArguments(format!(
            "item: {e}; pass an entry of prepare_call_hierarchy's `items` (or its `item`) unchanged"
        ))
    })
}

/// An item as the three tools return it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub(crate) struct ItemSummary {
    /// Where it is, its name and its lowercase LSP symbol kind.
    #[serde(flatten)]
    symbol: SymbolPlace,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<ServerText>,
    /// The raw LSP item (0-based ranges) to pass back to the incoming/outgoing tools.
    item: serde_json::Map<String, Value>,
}

/// A call of the item, by one caller.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct IncomingCall {
    from: ItemSummary,
    /// Where the calls are.
    call_sites: Vec<Place>,
}

/// A call the item makes, to one callee.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct OutgoingCall {
    to: ItemSummary,
    /// Where the calls are.
    call_sites: Vec<Place>,
}

/// The answer of the incoming/outgoing tools.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct CallsOutput<C> {
    item: ItemSummary,
    calls: Vec<C>,
    /// Whether the callers cover the project (incoming calls).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    coverage: Option<CoverageMembers>,
}

/// The answer of `prepare_call_hierarchy`.
#[derive(Debug, Serialize, JsonSchema)]
struct PrepareOutput {
    items: Vec<ItemSummary>,
}

/// An item as tools show it: where it is (1-based, client path) and the raw item, in the
/// caller's paths (its URI the client's; its detail and the server's private `data` scrubbed
/// as server-written text).
pub(crate) async fn describe_item(
    locator: &Locator,
    item: &CallHierarchyItem,
) -> (ItemSummary, String) {
    let place = locator.place(&item.uri, item.selection_range).await;
    let kind = kind_name(item.kind);
    let text = format!("{kind} {}  {}", item.name, place.render());
    let detail = item
        .detail
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(|d| locator.server_text(d));
    let mut raw = item.clone();
    if let Some(FileRef::Project { client, .. }) = locator.file(&item.uri)
        && let Ok(uri) = Url::from_file_path(&client)
    {
        raw.uri = uri;
    }
    raw.detail = raw.detail.map(|d| locator.server_text(&d).to_string());
    raw.data = raw.data.map(|d| locator.scrubber().data(d));
    let raw = match serde_json::to_value(raw) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let summary = ItemSummary {
        symbol: place.symbol(&item.name, kind),
        detail,
        item: raw,
    };
    (summary, text)
}

/// Prepares the call hierarchy at an LSP position of an open document.
async fn prepare(doc: &Document, position: Position) -> Result<Vec<CallHierarchyItem>, ToolError> {
    Ok(doc
        .server
        .request::<CallHierarchyPrepare>(CallHierarchyPrepareParams {
            text_document_position_params: doc.at(position),
            work_done_progress_params: Default::default(),
        })
        .await
        .map_err(|e| doc.lsp_error(e))?
        .unwrap_or_default())
}

/// The item the incoming/outgoing tools work on, fresh from the server: re-prepared at the
/// given item's position (so a stale or edited item still works), or at the position.
pub(crate) async fn target_item(
    ctx: &ToolContext,
    args: CallsArgs,
) -> Result<(Document, CallHierarchyItem), ToolError> {
    let (doc, position, name) = match (args.item, args.file_path, args.line, args.character) {
        (Some(item), _, _, _) => {
            let item = raw_item(item)?;
            let path = item.uri.to_file_path().map_err(|()| {
                ToolError::InvalidArguments(format!("item.uri `{}` is not a file URI", item.uri))
            })?;
            let doc =
                Document::open_for(ctx, &path.to_string_lossy(), Operation::CallHierarchy).await?;
            (doc, item.selection_range.start, Some(item.name))
        }
        (None, Some(file_path), Some(line), Some(character)) => {
            let doc = Document::open_for(ctx, &file_path, Operation::CallHierarchy).await?;
            let position = doc.position(line, character)?;
            (doc, position, None)
        }
        _ => {
            return Err(ToolError::InvalidArguments(
                "give `item` (from prepare_call_hierarchy) or `file_path`, `line` and `character`"
                    .into(),
            ));
        }
    };
    let items = prepare(&doc, position).await?;
    let chosen = match &name {
        Some(n) => items.iter().find(|i| &i.name == n).or(items.first()),
        None => items.first(),
    }
    .cloned();
    match chosen {
        Some(item) => Ok((doc, item)),
        None => Err(ToolError::failed(format!(
            "no callable symbol at that position in {}",
            doc.file.client
        ))
        .with_suggestion("put the position on a function or method name (prepare_call_hierarchy shows what is there)")),
    }
}

/// Which calls of an item `get_call_hierarchy_incoming_calls` and
/// `get_call_hierarchy_outgoing_calls` list: its callers or its callees.
#[derive(Debug, Clone, Copy)]
pub enum CallDirection {
    /// The item's callers.
    Incoming,
    /// What the item calls.
    Outgoing,
}

impl CallDirection {
    /// The output schema of the tool listing calls in this direction.
    pub fn output_schema(self) -> Value {
        match self {
            Self::Incoming => schema_of::<CallsOutput<IncomingCall>>(),
            Self::Outgoing => schema_of::<CallsOutput<OutgoingCall>>(),
        }
    }

    /// The other end of each call, with where the calls are (the file and ranges).
    async fn request(
        self,
        doc: &Document,
        item: &CallHierarchyItem,
    ) -> Result<Vec<(CallHierarchyItem, Url, Vec<Range>)>, ToolError> {
        let calls = match self {
            Self::Incoming => doc
                .server
                .request::<CallHierarchyIncomingCalls>(CallHierarchyIncomingCallsParams {
                    item: item.clone(),
                    work_done_progress_params: Default::default(),
                    partial_result_params: Default::default(),
                })
                .await
                .map_err(|e| doc.lsp_error(e))?
                .unwrap_or_default()
                .into_iter()
                .map(|call| {
                    let uri = call.from.uri.clone();
                    (call.from, uri, call.from_ranges)
                })
                .collect(),
            Self::Outgoing => doc
                .server
                .request::<CallHierarchyOutgoingCalls>(CallHierarchyOutgoingCallsParams {
                    item: item.clone(),
                    work_done_progress_params: Default::default(),
                    partial_result_params: Default::default(),
                })
                .await
                .map_err(|e| doc.lsp_error(e))?
                .unwrap_or_default()
                .into_iter()
                .map(|call| (call.to, item.uri.clone(), call.from_ranges))
                .collect(),
        };
        Ok(calls)
    }

    /// The tool's call: the item's calls in this direction, with their call sites.
    pub async fn list(self, ctx: &ToolContext, args: Value) -> Result<ToolOutput, ToolError> {
        ctx.require(Right::LspQuery)?;
        let args: CallsArgs = parse_args(args)?;
        let (doc, item) = target_item(ctx, args).await?;
        // Callers are in other files: a server that sees only open files needs them open.
        let coverage = match self {
            Self::Incoming => Some(
                crate::lsp::coverage::prepare(
                    doc.workspace(),
                    &doc.server,
                    doc.file.mirror.rel().as_str(),
                    crate::lsp::coverage::Wanted::Word(&item.name),
                    false,
                )
                .await?,
            ),
            Self::Outgoing => None,
        };
        let calls = self.request(&doc, &item).await?;
        let locator = Locator::new(ctx).await?;
        let (item_summary, item_text) = describe_item(&locator, &item).await;
        let noun = match self {
            Self::Incoming => "callers",
            Self::Outgoing => "callees",
        };
        let mut incoming = Vec::new();
        let mut outgoing = Vec::new();
        let mut text = vec![format!("{} {noun} of {item_text}:", calls.len())];
        for (other, sites_uri, ranges) in &calls {
            let (v, t) = describe_item(&locator, other).await;
            text.push(format!("  {t}"));
            let mut sites = Vec::new();
            for range in ranges {
                sites.push(locator.place(sites_uri, *range).await);
            }
            let sites = crate::lsp::locations::dedup(sites);
            for place in &sites {
                text.push(format!("    call at {}", place.render()));
            }
            match self {
                Self::Incoming => incoming.push(IncomingCall {
                    from: v,
                    call_sites: sites,
                }),
                Self::Outgoing => outgoing.push(OutgoingCall {
                    to: v,
                    call_sites: sites,
                }),
            }
        }
        let mut text = text.join("\n");
        if let Some(coverage) = &coverage {
            coverage.note(&mut text);
        }
        let coverage = coverage.as_ref().map(Coverage::members);
        match self {
            Self::Incoming => ToolOutput::typed(
                text,
                &CallsOutput {
                    item: item_summary,
                    calls: incoming,
                    coverage,
                },
            ),
            Self::Outgoing => ToolOutput::typed(
                text,
                &CallsOutput {
                    item: item_summary,
                    calls: outgoing,
                    coverage,
                },
            ),
        }
    }
}

impl Tool for PrepareCallHierarchy {
    fn name(&self) -> &'static str {
        "prepare_call_hierarchy"
    }

    fn description(&self) -> &'static str {
        "Identify the function or method at a 1-based line and character as a call-hierarchy item; use it before asking for its incoming or outgoing calls (pass the returned `item`)."
    }

    fn input_schema(&self) -> Value {
        object(position_properties(), &["file_path", "line", "character"])
    }

    fn output_schema(&self) -> Value {
        schema_of::<PrepareOutput>()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            ctx.require(Right::LspQuery)?;
            let args: PositionArgs = parse_args(args)?;
            let doc = Document::open_for(ctx, &args.file_path, Operation::CallHierarchy).await?;
            let position = doc.position(args.line, args.character)?;
            let items = prepare(&doc, position).await?;
            let locator = Locator::new(ctx).await?;
            let mut rows = Vec::new();
            let mut text = Vec::new();
            for item in &items {
                let (v, t) = describe_item(&locator, item).await;
                // The item the incoming/outgoing tools take, ready to pass as `item`.
                text.push(format!("{t}\n  item: {}", Value::Object(v.item.clone())));
                rows.push(v);
            }
            let text = if text.is_empty() {
                format!(
                    "No call-hierarchy item at {}:{}:{}; put the position on a function or method name.",
                    doc.file.client, args.line, args.character
                )
            } else {
                text.join("\n")
            };
            ToolOutput::typed(text, &PrepareOutput { items: rows })
        }
        .boxed()
    }
}
