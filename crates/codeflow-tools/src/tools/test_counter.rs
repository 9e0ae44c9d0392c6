//! `test_counter`: a test-only "write" tool that counts how often it runs, per session and key.
//!
//! The server offers it only with `CODEFLOW_TEST_TOOLS=true` (end-to-end fault tests and
//! benchmarks). A fault test calls it with a delay so calls are in flight when it cuts the
//! connection, then reads the counts back with `peek` to prove that no call ran twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::output::schema_of;

/// Longest delay a call may ask for.
const MAX_DELAY_MS: u64 = 60_000;

/// Counts executions per (session, key). Memory grows with the keys tests use until they
/// `forget` them (the chaos soak does, so its memory figures are the server's); it is never
/// enabled in production.
#[derive(Debug, Default)]
pub struct TestCounter {
    counts: Arc<Mutex<HashMap<(String, String), u64>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    key: String,
    #[serde(default)]
    delay_ms: u64,
    /// Read the count without running (not counted).
    #[serde(default)]
    peek: bool,
    /// With `peek`: forget the key once read (its count, and memory, are gone).
    #[serde(default)]
    forget: bool,
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    key: String,
    /// Executions of this key in this session, this one included.
    executions: u64,
}

impl Tool for TestCounter {
    fn name(&self) -> &'static str {
        "test_counter"
    }

    fn description(&self) -> &'static str {
        "Test only: counts its executions per session and key (a stand-in for a write tool), after an optional delay; `peek` reads the count without running, `forget` (with `peek`) then drops the key."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "key": {"type": "string", "description": "What to count."},
                "delay_ms": {"type": "integer", "minimum": 0, "description": "Milliseconds to wait before answering."},
                "peek": {"type": "boolean", "description": "Only read the count."},
                "forget": {"type": "boolean", "description": "With peek: forget the key once read."}
            },
            "required": ["key"],
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
            let slot = (ctx.caller.id.clone(), args.key.clone());
            let executions = {
                let mut counts = self.counts.lock();
                if args.peek && args.forget {
                    let n = counts.remove(&slot).unwrap_or(0);
                    if counts.len() * 4 < counts.capacity() {
                        counts.shrink_to_fit();
                    }
                    n
                } else if args.peek {
                    counts.get(&slot).copied().unwrap_or(0)
                } else {
                    let n = counts.entry(slot).or_default();
                    *n += 1;
                    *n
                }
            };
            if !args.peek {
                tokio::time::sleep(Duration::from_millis(args.delay_ms.min(MAX_DELAY_MS))).await;
            }
            let text = format!("{}: {executions} execution(s)", args.key);
            let out = Output {
                key: args.key,
                executions,
            };
            ToolOutput::typed(text, &out)
        }
        .boxed()
    }
}
