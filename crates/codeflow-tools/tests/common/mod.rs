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
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use codeflow_e2e::fs::tree;
use codeflow_e2e::fs::{copy_dir, fixture_dir};
pub use codeflow_e2e::results::{changed, edit, edits_of, names, places};
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

/// A fixture served as one project: the client's tree, its mirror, and a caller.
pub struct Fixture {
    /// The client's root (canonical), as results name it.
    pub root: PathBuf,
    pub ctx: ToolContext,
    /// The project's name (the fixture's).
    pub name: String,
    caller: Arc<Caller>,
    catalogue: Catalogue,
    data_root: PathBuf,
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
        Self::serve(name, client, grant).await
    }

    /// A fresh copy of the directory `dir` (a real project, see `codeflow_e2e::registry`),
    /// synced into a new mirror as project `name`.
    pub async fn from_dir(name: &str, dir: &Path) -> Self {
        Self::from_dir_with(name, dir, PoolConfig::default()).await
    }

    /// [`Fixture::from_dir`] with other language servers (`pool`).
    pub async fn from_dir_with(name: &str, dir: &Path, pool: PoolConfig) -> Self {
        let client = tempfile::tempdir().unwrap();
        copy_dir(dir, client.path());
        Self::serve_with(name, client, Grant::anonymous(), pool).await
    }

    /// A project `name` made of `files` (relative path, content), synced into a new mirror.
    pub async fn from_files(name: &str, files: &[(&str, &str)]) -> Self {
        let client = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let path = client.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Self::serve(name, client, Grant::anonymous()).await
    }

    async fn serve(name: &str, client: tempfile::TempDir, grant: Grant) -> Self {
        Self::serve_with(name, client, grant, PoolConfig::default()).await
    }

    async fn serve_with(
        name: &str,
        client: tempfile::TempDir,
        grant: Grant,
        pool: PoolConfig,
    ) -> Self {
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
            LspPool::new(pool),
        ));
        let data_root = data.path().canonicalize().unwrap();
        let files = Arc::new(FileServer::new(&root, limits).unwrap());
        let caller = Arc::new(Caller::local(
            format!("test-{name}"),
            ProjectId::parse(name).unwrap(),
            ClientRoot::parse(root.to_str().unwrap()).unwrap(),
            grant,
            files,
            workspaces.clone(),
        ));
        let mut catalogue = Catalogue::standard();
        catalogue.add_test_tools();
        let fixture = Self {
            root,
            ctx: ToolContext::new(caller.clone(), Arc::new(ServerServices::new(workspaces))),
            name: name.to_owned(),
            caller,
            catalogue,
            data_root,
            _client: client,
            _data: data,
        };
        fixture.sync().await;
        fixture
    }

    /// Syncs the mirror with the client's tree by manifest, as the relay does when it connects
    /// (in-process there is no watcher: a change made by hand on the client's disk reaches the
    /// mirror only through this).
    pub async fn sync(&self) {
        let limits = Limits::default();
        let filter = FileFilter::new(&self.root, ExcludeConfig::default()).unwrap();
        let manifest = Manifest::scan(&self.root, &filter, &limits).unwrap();
        let params = serde_json::to_value(manifest.to_params()).unwrap();
        codeflow_workspace::sync::sync_manifest(&self.caller, &NoNotices, Some(params))
            .await
            .unwrap_or_else(|e| panic!("syncing fixture {}: {}", self.name, e.message));
    }

    /// A file on the client's disk.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel))
            .unwrap_or_else(|e| panic!("{rel} on the client: {e}"))
    }

    /// Whether `rel` exists on the client's disk.
    pub fn exists(&self, rel: &str) -> bool {
        self.root.join(rel).exists()
    }

    /// A file in the server's mirror of the project, if it is there.
    pub fn mirror(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.data_root.join("mirrors").join(&self.name).join(rel)).ok()
    }

    /// The server's mirror of the project (where its language servers see the files).
    pub fn mirror_root(&self) -> PathBuf {
        self.data_root.join("mirrors").join(&self.name)
    }

    /// Every file of the client's tree: relative path → content.
    pub fn tree(&self) -> BTreeMap<String, String> {
        tree(&self.root)
    }

    /// Fails if `what` names the server's data directory (where the mirror is): results name
    /// the client's paths only.
    fn assert_no_mirror(&self, tool: &str, what: &str) {
        let data = self.data_root.to_string_lossy();
        assert!(
            !what.contains(data.as_ref()),
            "{tool}: a result names the server's mirror: {what}"
        );
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
        let out = match self.ctx.run(tool.as_ref(), args.clone()).await {
            Ok(out) => out,
            Err(e) => {
                self.assert_no_mirror(tool.name(), &e.to_text());
                return Err(e);
            }
        };
        assert!(
            !out.text.is_empty(),
            "{} {args}: no text content",
            tool.name()
        );
        self.assert_no_mirror(tool.name(), &out.text);
        self.assert_no_mirror(tool.name(), &out.structured.to_string());
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

/// Whether `value` is valid against the JSON Schema `schema` and declares every member it has
/// (a member the schema does not name, where it allows no `additionalProperties` schema, is
/// drift too); the first problem otherwise.
pub fn matches_schema(schema: &Value, value: &Value) -> Result<(), String> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| format!("the schema itself is invalid: {e}"))?;
    // Undeclared members first: the walk names the member itself, where the validator names
    // the object that has it.
    undeclared(schema, schema, value, "")?;
    if let Some(e) = validator.iter_errors(value).next() {
        return Err(format!("at {}: {e}", e.instance_path()));
    }
    Ok(())
}

/// The first member of `value` that `schema` does not declare: objects by `properties` (or an
/// `additionalProperties` schema), arrays by `items`; a `$ref` is followed within `root`.
fn undeclared(root: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        let target = target.strip_prefix('#').unwrap_or(target);
        let resolved = root
            .pointer(target)
            .ok_or_else(|| format!("at {at}: the schema's $ref {target} resolves to nothing"))?;
        return undeclared(root, resolved, value, at);
    }
    match value {
        Value::Object(members) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (key, member) in members {
                let here = format!("{at}/{key}");
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(s), _) => undeclared(root, s, member, &here)?,
                    (None, Some(s @ Value::Object(_))) => undeclared(root, s, member, &here)?,
                    (None, Some(Value::Bool(true))) => {}
                    (None, None) if properties.is_none() => {}
                    (None, _) => {
                        return Err(format!("at {here}: a member the schema does not declare"));
                    }
                }
            }
            Ok(())
        }
        Value::Array(items) => match schema.get("items") {
            Some(s) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| undeclared(root, s, item, &format!("{at}/{i}"))),
            None => Ok(()),
        },
        _ => Ok(()),
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

/// Calls `tool` on the shared fixture and checks that it fails with a message containing every
/// one of `parts` (`$ROOT` stands for the client root).
pub fn check_err_all(fixture: &str, tool: &str, args: Value, parts: &[&str]) {
    let f = shared(fixture);
    let args = f.expand(args);
    runtime().block_on(async {
        let text = f.err(tool, args.clone()).await;
        for part in parts {
            let part = f.expand(Value::String((*part).to_owned()));
            let part = part.as_str().unwrap_or_default();
            assert!(
                text.contains(part),
                "{tool} {args} on {fixture}: error {text:?} does not contain {part:?}"
            );
        }
    });
}

/// Calls `tool` on the shared fixture: (text, structuredContent) of a success, for checks
/// [`check`] cannot express (membership, order-free sets).
pub fn call(fixture: &str, tool: &str, args: Value) -> (Arc<Fixture>, String, Value) {
    let f = shared(fixture);
    let args = f.expand(args);
    let out = runtime().block_on(f.ok(tool, args));
    (f, out.text, out.structured)
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

/// Runs `f` on the test runtime (for tests with their own [`Fixture::fresh`]).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}
