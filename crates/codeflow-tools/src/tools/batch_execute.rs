//! `batch_execute`: run several catalogue tools as one call, optionally all or nothing.
//!
//! Atomic mode runs the operations with a [`BatchScope`] in their context: every write an operation
//! makes goes through [`codeflow_workspace::EditPlan::commit`], which records the file's original
//! content and the hash it wrote. When an operation fails, the scope restores every file the
//! batch changed in one write-back, each restore expecting the hash the batch left, so a file
//! someone else changed in the meantime is reported rather than clobbered.

use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::catalogue::{Catalogue, Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::output::schema_of;
use codeflow_workspace::BatchScope;

/// Most operations in one batch.
const MAX_OPERATIONS: usize = 50;

/// Runs the tools of the catalogue it was made with.
#[derive(Debug)]
pub struct BatchExecute {
    tools: Catalogue,
}

impl BatchExecute {
    /// A batch over `tools` (the catalogue as it is, without this tool).
    pub fn over(tools: Catalogue) -> Self {
        Self { tools }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    operations: Vec<Operation>,
    #[serde(default)]
    options: Options,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Operation {
    tool: String,
    #[serde(default)]
    args: Map<String, Value>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    atomic: bool,
    #[serde(default)]
    parallel: bool,
    #[serde(default)]
    dry_run: bool,
    #[serde(default = "yes")]
    stop_on_error: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            atomic: false,
            parallel: false,
            dry_run: false,
            stop_on_error: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// One operation's outcome.
#[derive(Debug, Clone)]
enum Outcome {
    Ok(ToolOutput),
    Failed(String),
    Skipped,
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    /// True when every operation succeeded.
    success: bool,
    atomic: bool,
    dry_run: bool,
    /// True when an atomic batch failed and its writes were undone.
    rolled_back: bool,
    /// Files put back by the rollback.
    restored: Vec<String>,
    /// Files the batch changed (and kept).
    changed: Vec<String>,
    summary: Summary,
    results: Vec<OperationResult>,
    /// Why the rollback of a failed atomic batch failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback_error: Option<String>,
}

/// How the operations went.
#[derive(Debug, Serialize, JsonSchema)]
struct Summary {
    total: usize,
    succeeded: usize,
    failed: usize,
    skipped: usize,
}

/// What an operation did.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Error,
    Skipped,
}

/// One operation's result.
#[derive(Debug, Serialize, JsonSchema)]
struct OperationResult {
    /// 1-based.
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    tool: String,
    status: Status,
    /// The tool's structuredContent.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Tool for BatchExecute {
    fn name(&self) -> &'static str {
        "batch_execute"
    }

    fn description(&self) -> &'static str {
        "Run up to 50 CodeFlow tool calls in one request, in order or in parallel; with atomic: true, if any operation fails every file the batch changed is put back as it was; with dry_run: true no operation writes anything and write tools return the edits they would make. Each result says ok, error or skipped; success is false when any failed."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "operations": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_OPERATIONS,
                    "items": {
                        "type": "object",
                        "properties": {
                            "tool": {"type": "string", "description": "A CodeFlow tool name, e.g. rename_symbol."},
                            "args": {"type": "object", "description": "That tool's arguments."},
                            "id": {"type": "string", "description": "Your label for this operation, echoed in its result."}
                        },
                        "required": ["tool"]
                    }
                },
                "options": {
                    "type": "object",
                    "properties": {
                        "atomic": {"type": "boolean", "default": false, "description": "All or nothing: on the first failure, stop and restore every file the batch changed."},
                        "parallel": {"type": "boolean", "default": false, "description": "Run the operations concurrently (for independent operations)."},
                        "dry_run": {"type": "boolean", "default": false, "description": "Nothing is written; write tools report the edits they would make."},
                        "stop_on_error": {"type": "boolean", "default": true, "description": "In sequence, skip the remaining operations after a failure."}
                    },
                    "additionalProperties": false
                }
            },
            "required": ["operations"],
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
            let args: Args = parse_args(args)?;
            if args.operations.is_empty() || args.operations.len() > MAX_OPERATIONS {
                return Err(ToolError::InvalidArguments(format!(
                    "operations must hold 1 to {MAX_OPERATIONS} items; got {}",
                    args.operations.len()
                )));
            }
            if ctx.batch.is_some() {
                return Err(ToolError::InvalidArguments(
                    "batch_execute cannot run inside another batch".to_owned(),
                ));
            }
            // Every tool must exist before anything runs.
            let mut tools = Vec::with_capacity(args.operations.len());
            for (i, op) in args.operations.iter().enumerate() {
                match self.tools.get(&op.tool) {
                    Some(tool) if tool.name() != self.name() => tools.push(tool.clone()),
                    _ => {
                        return Err(ToolError::InvalidArguments(format!(
                            "operation {} names unknown tool `{}`; tools/list names the available tools",
                            i + 1,
                            op.tool
                        )));
                    }
                }
            }
            let options = args.options;
            let scope = BatchScope::new(options.dry_run);
            let batch_ctx = ctx.in_batch(&scope);
            let batch_ctx = &batch_ctx;
            let run = |i: usize| {
                let tool = tools[i].clone();
                let args = Value::Object(args.operations[i].args.clone());
                async move {
                    match batch_ctx.run(tool.as_ref(), args).await {
                        Ok(out) => Outcome::Ok(out),
                        Err(e) => Outcome::Failed(e.to_text()),
                    }
                }
            };
            let n = args.operations.len();
            let outcomes: Vec<Outcome> = if options.parallel {
                futures::future::join_all((0..n).map(run)).await
            } else {
                let mut out = Vec::with_capacity(n);
                let mut stop = false;
                for i in 0..n {
                    if stop {
                        out.push(Outcome::Skipped);
                        continue;
                    }
                    let outcome = run(i).await;
                    stop = matches!(outcome, Outcome::Failed(_))
                        && (options.atomic || options.stop_on_error);
                    out.push(outcome);
                }
                out
            };
            let failed = outcomes.iter().filter(|o| matches!(o, Outcome::Failed(_))).count();
            let skipped = outcomes.iter().filter(|o| matches!(o, Outcome::Skipped)).count();
            let workspace = ctx.workspace().await?;
            let mut rolled_back = false;
            let mut restored = Vec::new();
            let mut rollback_error = None;
            if options.atomic && failed > 0 && !options.dry_run {
                match scope.roll_back(&ctx.caller, &workspace).await {
                    Ok(paths) => {
                        rolled_back = true;
                        restored = paths;
                    }
                    Err(e) => rollback_error = Some(e.to_text()),
                }
            }
            let changed = if rolled_back || options.dry_run {
                Vec::new()
            } else {
                scope.changed(&ctx.caller, &workspace)
            };
            let results: Vec<OperationResult> = outcomes
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let op = &args.operations[i];
                    let mut v = OperationResult {
                        index: i + 1,
                        id: op.id.clone(),
                        tool: op.tool.clone(),
                        status: Status::Skipped,
                        result: None,
                        text: None,
                        error: None,
                    };
                    match o {
                        Outcome::Ok(out) => {
                            v.status = Status::Ok;
                            v.result = Some(out.structured.as_object().cloned().unwrap_or_default());
                            v.text = Some(out.text.clone());
                        }
                        Outcome::Failed(e) => {
                            v.status = Status::Error;
                            v.error = Some(e.clone());
                        }
                        Outcome::Skipped => {}
                    }
                    v
                })
                .collect();
            let text = summary_text(&args.operations, &outcomes, rolled_back, &restored, rollback_error.as_deref(), options.dry_run);
            let out = Output {
                success: failed == 0,
                atomic: options.atomic,
                dry_run: options.dry_run,
                rolled_back,
                restored,
                changed,
                summary: Summary {
                    total: n,
                    succeeded: n - failed - skipped,
                    failed,
                    skipped,
                },
                results,
                rollback_error,
            };
            ToolOutput::typed(text, &out)
        }
        .boxed()
    }
}

fn summary_text(
    operations: &[Operation],
    outcomes: &[Outcome],
    rolled_back: bool,
    restored: &[String],
    rollback_error: Option<&str>,
    dry_run: bool,
) -> String {
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Failed(_)))
        .count();
    let mut text = if failed == 0 {
        format!(
            "Batch{}: all {} operation(s) succeeded.\n",
            if dry_run {
                " (dry run, nothing was changed)"
            } else {
                ""
            },
            outcomes.len()
        )
    } else {
        format!(
            "Batch: {failed} of {} operation(s) failed.\n",
            outcomes.len()
        )
    };
    for (i, (op, o)) in operations.iter().zip(outcomes).enumerate() {
        let label = op
            .id
            .as_deref()
            .map_or_else(|| op.tool.clone(), |id| format!("{id} ({})", op.tool));
        let line = match o {
            Outcome::Ok(out) => format!(
                "{}. {label}: ok — {}",
                i + 1,
                out.text.lines().next().unwrap_or("")
            ),
            Outcome::Failed(e) => format!("{}. {label}: error — {e}", i + 1),
            Outcome::Skipped => format!("{}. {label}: skipped", i + 1),
        };
        text.push_str(&line);
        text.push('\n');
    }
    if rolled_back {
        text.push_str(&format!(
            "Atomic batch rolled back: {} file(s) restored, so no file changed.\n",
            restored.len()
        ));
    }
    if let Some(e) = rollback_error {
        text.push_str(&format!("Rollback FAILED: {e}\n"));
    }
    text
}
