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
use crate::lsp::args::{PositionArgs, finish, object, places_schema, position_properties};
use crate::lsp::{Document, Locator, Place, kind_name};

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

/// The schema of an item summary as the three tools return it.
pub(crate) fn item_schema() -> Value {
    let mut place = Place::schema();
    if let Some(props) = place["properties"].as_object_mut() {
        props.insert("name".into(), json!({"type": "string"}));
        props.insert(
            "kind".into(),
            json!({"type": "string", "description": "Lowercase LSP symbol kind."}),
        );
        props.insert("detail".into(), json!({"type": "string"}));
        props.insert("item".into(), json!({"type": "object", "description": "The raw LSP item (0-based ranges) to pass back to the incoming/outgoing tools."}));
    }
    place
}

/// An item as tools show it: where it is (1-based, client path) and the raw item.
pub(crate) async fn describe_item(locator: &Locator, item: &CallHierarchyItem) -> (Value, String) {
    let place = locator.place(&item.uri, item.selection_range).await;
    let kind = kind_name(item.kind);
    let mut v = place.symbol_json(&item.name, kind);
    if let Some(d) = item.detail.as_ref().filter(|d| !d.is_empty()) {
        v["detail"] = json!(d);
    }
    v["item"] = serde_json::to_value(item).unwrap_or_default();
    let text = format!("{kind} {}  {}", item.name, place.render());
    (v, text)
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
        .map_err(crate::lsp::lsp_error)?
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
    /// The key naming the other end of a call in the output.
    fn key(self) -> &'static str {
        match self {
            Self::Incoming => "from",
            Self::Outgoing => "to",
        }
    }

    /// The output schema of the tool listing calls in this direction.
    pub fn output_schema(self) -> Value {
        let key = self.key();
        let mut schema = json!({
            "type": "object",
            "properties": {
                "item": item_schema(),
                "calls": {"type": "array", "items": {"type": "object", "properties": {
                    key: item_schema(),
                    "call_sites": places_schema("Where the calls are.")
                }, "required": [key, "call_sites"]}}
            },
            "required": ["item", "calls"]
        });
        if matches!(self, Self::Incoming) {
            crate::lsp::Coverage::schema_members(&mut schema["properties"]);
        }
        schema
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
                .map_err(crate::lsp::lsp_error)?
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
                .map_err(crate::lsp::lsp_error)?
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
        let (item_value, item_text) = describe_item(&locator, &item).await;
        let noun = match self {
            Self::Incoming => "callers",
            Self::Outgoing => "callees",
        };
        let mut rows = Vec::new();
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
            rows.push(json!({self.key(): v, "call_sites": sites}));
        }
        let mut text = text.join("\n");
        let mut structured = json!({"item": item_value, "calls": rows});
        if let Some(coverage) = &coverage {
            coverage.note(&mut text);
            coverage.mark(&mut structured);
        }
        Ok(finish(&locator, text, structured))
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
        json!({
            "type": "object",
            "properties": {"items": {"type": "array", "items": item_schema()}},
            "required": ["items"]
        })
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
                text.push(format!("{t}\n  item: {}", v["item"]));
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
            Ok(finish(&locator, text, json!({"items": rows})))
        }
        .boxed()
    }
}
