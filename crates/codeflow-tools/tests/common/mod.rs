//! Tools in-process against real language servers, without sockets.
//!
//! A fixture (`tests/fixtures/<name>` at the workspace root) is copied to a temporary directory
//! that plays the client's container: the relay's own `FileServer` serves it in-process, a real
//! mirror is synced from it by manifest, and real language servers run on the mirror. A tool is
//! then called with a [`ToolContext`] over a local [`Caller`]:
//!
//! ```ignore
//! check("python", "find_definition", json!({...}), json!({"matches": [...]}));
//! ```
//!
//! Read-only checks share one fixture per name (and its language servers) for the whole test
//! binary, on one runtime; tests that write get a fresh copy ([`Fixture::fresh`]).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use codeflow_file_stream::{ExcludeConfig, FileFilter, FileServer, Limits, Manifest, MirrorConfig};
use codeflow_lsp_pool::{LspPool, PoolConfig};
use codeflow_session::{ClientRoot, Grant, ProjectId};
use codeflow_tools::{Catalogue, ServerServices, ToolContext, ToolError, ToolOutput};
use codeflow_workspace::{Caller, NoNotices, WorkspaceConfig, Workspaces};
use serde_json::Value;

/// The runtime every check runs on: language servers started by one test serve the next.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// `tests/fixtures/<name>` at the workspace root.
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A fixture served as one project: the client's tree, its mirror, and a caller.
pub struct Fixture {
    /// The client's root (canonical), as results name it.
    pub root: PathBuf,
    pub ctx: ToolContext,
    catalogue: Catalogue,
    _client: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl Fixture {
    /// A fresh copy of `tests/fixtures/<name>`, synced into a new mirror.
    pub async fn fresh(name: &str) -> Self {
        Self::fresh_with(name, Grant::anonymous()).await
    }

    /// [`Fixture::fresh`] for a caller with `grant`'s rights.
    pub async fn fresh_with(name: &str, grant: Grant) -> Self {
        let client = tempfile::tempdir().unwrap();
        copy_dir(&fixture_dir(name), client.path());
        let root = client.path().canonicalize().unwrap();
        let data = tempfile::tempdir().unwrap();
        let limits = Limits::default();
        let workspaces = Arc::new(Workspaces::new(
            WorkspaceConfig {
                data_dir: data.path().to_path_buf(),
                mirror: MirrorConfig {
                    limits,
                    ..Default::default()
                },
                shared: HashMap::new(),
                prestart_servers: 0,
            },
            LspPool::new(PoolConfig::default()),
        ));
        let files = Arc::new(FileServer::new(&root, limits).unwrap());
        let caller = Arc::new(Caller::local(
            format!("test-{name}"),
            ProjectId::parse(name).unwrap(),
            ClientRoot::parse(root.to_str().unwrap()).unwrap(),
            grant,
            files,
            workspaces.clone(),
        ));
        let filter = FileFilter::new(&root, ExcludeConfig::default()).unwrap();
        let manifest = Manifest::scan(&root, &filter, &limits).unwrap();
        let params = serde_json::to_value(manifest.to_params()).unwrap();
        codeflow_workspace::sync::sync_manifest(&caller, &NoNotices, Some(params))
            .await
            .unwrap_or_else(|e| panic!("syncing fixture {name}: {}", e.message));
        let mut catalogue = Catalogue::standard();
        catalogue.add_test_tools();
        Self {
            root,
            ctx: ToolContext::new(caller, Arc::new(ServerServices::new(workspaces))),
            catalogue,
            _client: client,
            _data: data,
        }
    }

    /// The client's absolute path of a fixture file.
    pub fn path(&self, rel: &str) -> String {
        self.root.join(rel).to_string_lossy().into_owned()
    }

    /// Calls `tool` with `args` as the agent would (arguments as JSON). A success's
    /// `structuredContent` must match the tool's declared output schema: every check is also a
    /// schema check.
    pub async fn call(&self, tool: &str, args: Value) -> Result<ToolOutput, ToolError> {
        let tool = self
            .catalogue
            .get(tool)
            .unwrap_or_else(|| panic!("no tool `{tool}`"));
        let out = tool.call(&self.ctx, args.clone()).await?;
        if let Err(problem) = matches_schema(&tool.output_schema(), &out.structured) {
            panic!(
                "{} {args}: structuredContent does not match the declared outputSchema: {problem}\n{:#}",
                tool.name(),
                out.structured
            );
        }
        Ok(out)
    }

    /// The tool's answer, which must be a success.
    pub async fn ok(&self, tool: &str, args: Value) -> ToolOutput {
        match self.call(tool, args.clone()).await {
            Ok(out) => out,
            Err(e) => panic!("{tool} {args} failed: {}", e.to_text()),
        }
    }

    /// The tool's error text, which must be an error.
    pub async fn err(&self, tool: &str, args: Value) -> String {
        match self.call(tool, args.clone()).await {
            Ok(out) => panic!("{tool} {args} succeeded: {}", out.text),
            Err(e) => e.to_text(),
        }
    }

    /// `$ROOT` in every string of `value` replaced by the client root.
    pub fn expand(&self, value: Value) -> Value {
        let root = self.root.to_string_lossy();
        match value {
            Value::String(s) => Value::String(s.replace("$ROOT", &root)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.expand(v)).collect())
            }
            Value::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, self.expand(v))).collect())
            }
            other => other,
        }
    }
}

/// Whether `value` is valid against the JSON Schema `schema`; the first problem otherwise.
pub fn matches_schema(schema: &Value, value: &Value) -> Result<(), String> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| format!("the schema itself is invalid: {e}"))?;
    match validator.iter_errors(value).next() {
        None => Ok(()),
        Some(e) => Err(format!("at {}: {e}", e.instance_path())),
    }
}

/// The shared read-only copy of fixture `name` (made on first use).
pub fn shared(name: &str) -> Arc<Fixture> {
    static FIXTURES: OnceLock<parking_lot::Mutex<HashMap<String, Arc<Fixture>>>> = OnceLock::new();
    let fixtures = FIXTURES.get_or_init(Default::default);
    if let Some(f) = fixtures.lock().get(name) {
        return f.clone();
    }
    let made = Arc::new(runtime().block_on(Fixture::fresh(name)));
    fixtures
        .lock()
        .entry(name.to_owned())
        .or_insert(made)
        .clone()
}

/// Whether `actual` contains `expected`: objects by their named members, arrays element by
/// element with the same length, other values equal. Returns the first difference.
pub fn contains(actual: &Value, expected: &Value, at: &str) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (key, want) in e {
                let here = format!("{at}.{key}");
                match a.get(key) {
                    Some(got) => contains(got, want, &here)?,
                    None => return Err(format!("{here} is missing")),
                }
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(e)) => {
            if a.len() != e.len() {
                return Err(format!("{at} has {} items, expected {}", a.len(), e.len()));
            }
            for (i, (got, want)) in a.iter().zip(e).enumerate() {
                contains(got, want, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (a, e) if a == e => Ok(()),
        (a, e) => Err(format!("{at} is {a}, expected {e}")),
    }
}

/// Calls `tool` on the shared fixture and checks that its `structuredContent` contains
/// `expected` (see [`contains`]; `$ROOT` stands for the client root, in `args` too).
pub fn check(fixture: &str, tool: &str, args: Value, expected: Value) {
    let f = shared(fixture);
    let args = f.expand(args);
    runtime().block_on(async {
        let out = f.ok(tool, args.clone()).await;
        let expected = f.expand(expected);
        if let Err(diff) = contains(&out.structured, &expected, "$") {
            panic!(
                "{tool} {args} on {fixture}: {diff}\n--- structured:\n{:#}\n--- text:\n{}",
                out.structured, out.text
            );
        }
    });
}

/// Calls `tool` on the shared fixture and checks that it fails with a message containing
/// `expected`.
pub fn check_err(fixture: &str, tool: &str, args: Value, expected: &str) {
    let f = shared(fixture);
    let args = f.expand(args);
    runtime().block_on(async {
        let text = f.err(tool, args.clone()).await;
        assert!(
            text.contains(expected),
            "{tool} {args} on {fixture}: error {text:?} does not contain {expected:?}"
        );
    });
}

/// Calls `tool` on the shared fixture and checks that its text contains every one of `parts`.
pub fn check_text(fixture: &str, tool: &str, args: Value, parts: &[&str]) {
    let f = shared(fixture);
    let args = f.expand(args);
    runtime().block_on(async {
        let out = f.ok(tool, args.clone()).await;
        let text = f.expand(Value::String(out.text.clone()));
        for part in parts {
            let part = f.expand(Value::String((*part).to_owned()));
            assert!(
                out.text.contains(part.as_str().unwrap_or_default()),
                "{tool} {args} on {fixture}: text does not contain {part}:\n{text}"
            );
        }
    });
}
