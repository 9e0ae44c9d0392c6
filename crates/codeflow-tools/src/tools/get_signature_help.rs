//! `get_signature_help`: the signature of the call around a position, with the active
//! parameter.

use codeflow_lsp_pool::lsp_types::request::SignatureHelpRequest;
use codeflow_lsp_pool::lsp_types::{
    Documentation, ParameterLabel, SignatureHelpContext, SignatureHelpParams,
    SignatureHelpTriggerKind,
};
use codeflow_session::Right;
use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::args::{object, position_properties};
use crate::lsp::{Document, Locator};
use crate::output::schema_of;
use codeflow_workspace::ServerText;

/// The `get_signature_help` tool (its description is in `description`).
#[derive(Debug)]
pub struct GetSignatureHelp;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    line: u32,
    character: u32,
    #[serde(default)]
    trigger_character: Option<String>,
}

fn doc_text(d: Option<&Documentation>) -> Option<String> {
    match d? {
        Documentation::String(s) => Some(s.clone()),
        Documentation::MarkupContent(m) => Some(m.value.clone()),
    }
    .filter(|s| !s.trim().is_empty())
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    signatures: Vec<Signature>,
    /// 0-based index into signatures.
    #[serde(skip_serializing_if = "Option::is_none")]
    active_signature: Option<u32>,
    /// 0-based index into the active signature's parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    active_parameter: Option<u32>,
}

/// One signature (its texts as the server wrote them).
#[derive(Debug, Serialize, JsonSchema)]
struct Signature {
    label: ServerText,
    #[serde(skip_serializing_if = "Option::is_none")]
    documentation: Option<ServerText>,
    parameters: Vec<Parameter>,
}

/// One parameter of a signature.
#[derive(Debug, Serialize, JsonSchema)]
struct Parameter {
    label: ServerText,
    #[serde(skip_serializing_if = "Option::is_none")]
    documentation: Option<ServerText>,
}

impl Tool for GetSignatureHelp {
    fn name(&self) -> &'static str {
        "get_signature_help"
    }

    fn description(&self) -> &'static str {
        "Show the signature of the function being called at a 1-based line and character (inside its parentheses) and which parameter is active; use it while writing or checking a call."
    }

    fn input_schema(&self) -> Value {
        let mut props = position_properties();
        props.insert("character".into(), json!({"type": "integer", "minimum": 1, "description": "1-based character inside the call's parentheses (e.g. just after `(` or `,`)."}));
        props.insert("trigger_character".into(), json!({"type": "string", "description": "The character just typed, e.g. \"(\" or \",\"; omit for an explicit request."}));
        object(props, &["file_path", "line", "character"])
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
            let args: Args = parse_args(args)?;
            let doc = Document::open(ctx, &args.file_path).await?;
            let position = doc.position(args.line, args.character)?;
            let context = Some(SignatureHelpContext {
                trigger_kind: if args.trigger_character.is_some() {
                    SignatureHelpTriggerKind::TRIGGER_CHARACTER
                } else {
                    SignatureHelpTriggerKind::INVOKED
                },
                trigger_character: args.trigger_character.clone(),
                is_retrigger: false,
                active_signature_help: None,
            });
            let help = doc
                .server
                .request::<SignatureHelpRequest>(SignatureHelpParams {
                    context,
                    text_document_position_params: doc.at(position),
                    work_done_progress_params: Default::default(),
                })
                .await
                .map_err(|e| doc.lsp_error(e))?;
            let locator = Locator::new(ctx).await?;
            let Some(help) = help.filter(|h| !h.signatures.is_empty()) else {
                let out = Output {
                    signatures: Vec::new(),
                    active_signature: None,
                    active_parameter: None,
                };
                return ToolOutput::typed(
                    format!(
                        "No signature help at {}:{}:{} (is the position inside a call's parentheses?).",
                        doc.file.client, args.line, args.character
                    ),
                    &out,
                );
            };
            let active_signature = help.active_signature.unwrap_or(0);
            let mut signatures = Vec::new();
            let mut text = Vec::new();
            for (i, sig) in help.signatures.iter().enumerate() {
                let params: Vec<Parameter> = sig
                    .parameters
                    .iter()
                    .flatten()
                    .map(|p| {
                        let label = match &p.label {
                            ParameterLabel::Simple(s) => s.clone(),
                            ParameterLabel::LabelOffsets([a, b]) => {
                                codeflow_workspace::utf16_slice(&sig.label, *a, *b).to_owned()
                            }
                        };
                        Parameter {
                            label: locator.server_text(&label),
                            documentation: doc_text(p.documentation.as_ref())
                                .map(|d| locator.server_text(&d)),
                        }
                    })
                    .collect();
                let active_param = sig.active_parameter.or(help.active_parameter);
                let marker = if i as u32 == active_signature { "* " } else { "  " };
                let label = locator.server_text(&sig.label);
                let documentation =
                    doc_text(sig.documentation.as_ref()).map(|d| locator.server_text(&d));
                let mut line = format!("{marker}{label}");
                if let Some(p) = active_param
                    .and_then(|p| params.get(p as usize))
                    .filter(|_| i as u32 == active_signature)
                {
                    line.push_str(&format!("  (active parameter: {})", p.label));
                }
                text.push(line);
                if let Some(d) = &documentation {
                    text.push(format!(
                        "    {}",
                        d.as_str().lines().next().unwrap_or_default()
                    ));
                }
                signatures.push(Signature {
                    label,
                    documentation,
                    parameters: params,
                });
            }
            let active_parameter = help
                .signatures
                .get(active_signature as usize)
                .and_then(|s| s.active_parameter)
                .or(help.active_parameter)
                .unwrap_or(0);
            let out = Output {
                signatures,
                active_signature: Some(active_signature),
                active_parameter: Some(active_parameter),
            };
            ToolOutput::typed(text.join("\n"), &out)
        }
        .boxed()
    }
}
