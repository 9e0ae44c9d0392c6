//! Shared test helpers: fixture trees, tree hashing, an instrumented in-process client.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use codeflow_file_stream::{ClientFiles, FileServer, RemoteError};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::Value;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A hook run before each forwarded request.
pub type BeforeHook = Box<dyn FnMut(&str, &Value) + Send>;

pub fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("create fixture dir");
    }
    std::fs::write(&p, bytes).expect("write fixture file");
}

/// A small project tree with ignored, excluded and partially kept parts.
pub fn fixture(root: &Path) {
    write(
        root,
        "src/main.py",
        b"def main():\n    print('hi')\n\nmain()\n",
    );
    write(root, "src/lib/util.ts", b"export const x: number = 1;\n");
    write(root, "README.md", b"# fixture\n");
    write(root, "data/blob.bin", &(0u8..=255).collect::<Vec<u8>>());
    write(root, ".gitignore", b"build/\n*.log\nnode_modules/\n");
    write(root, "build/out.js", b"ignored();\n");
    write(root, "app.log", b"ignored log\n");
    write(root, ".git/HEAD", b"ref: refs/heads/main\n");
    write(root, "target/debug/app", b"\x7fELF");
    write(
        root,
        "node_modules/pkg/package.json",
        b"{\"name\":\"pkg\",\"types\":\"index.d.ts\"}\n",
    );
    write(
        root,
        "node_modules/pkg/index.d.ts",
        b"export declare const y: string;\n",
    );
    write(root, "node_modules/pkg/index.js", b"exports.y = 'y';\n");
    write(
        root,
        "node_modules/.cache/stale.d.ts",
        b"declare const z: 1;\n",
    );
    write(root, "sub/.gitignore", b"secret.txt\n");
    write(root, "sub/secret.txt", b"nested-ignored\n");
    write(root, "sub/keep.txt", b"kept\n");
}

/// What the fixture's mirror must hold.
pub const FIXTURE_STREAMED: &[&str] = &[
    ".gitignore",
    "README.md",
    "data/blob.bin",
    "node_modules/pkg/index.d.ts",
    "node_modules/pkg/package.json",
    "src/lib/util.ts",
    "src/main.py",
    "sub/.gitignore",
    "sub/keep.txt",
];

/// Every regular file under `root` (relative path → blake3 hex), skipping nothing.
pub fn tree_hashes(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let rel = p
                    .strip_prefix(root)
                    .map(|r| r.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.insert(rel, blake3::hash(&bytes).to_hex().to_string());
            }
        }
    }
    out
}

pub fn root_str(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .map(|p| p.to_string_lossy().into_owned())
        .expect("canonical temp dir")
}

/// An in-process client that records the requests it forwards and the peak concurrency.
pub struct Recording {
    pub inner: FileServer,
    pub calls: Mutex<Vec<(String, Value)>>,
    in_flight: AtomicUsize,
    pub peak: AtomicUsize,
    /// Called before each forwarded request (tests use it to change files underneath).
    pub before: Mutex<Option<BeforeHook>>,
    /// Answer `client/readFiles` with -32601, as a relay that predates it does.
    pub no_batches: AtomicBool,
    /// When non-zero, `client/readFiles` answers carry at most this many files.
    pub batch_answer_cap: AtomicUsize,
}

impl Recording {
    pub fn new(inner: FileServer) -> Arc<Self> {
        Arc::new(Recording {
            inner,
            calls: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            before: Mutex::new(None),
            no_batches: AtomicBool::new(false),
            batch_answer_cap: AtomicUsize::new(0),
        })
    }

    /// How many requests of `method` were made.
    pub fn count(&self, method: &str) -> usize {
        self.calls
            .lock()
            .iter()
            .filter(|(m, _)| m == method)
            .count()
    }

    pub fn reads(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .calls
            .lock()
            .iter()
            .flat_map(|(m, p)| match m.as_str() {
                "client/readFile" => vec![p["path"].as_str().unwrap_or_default().to_owned()],
                "client/readFiles" => p["paths"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| v.as_str().unwrap_or_default().to_owned())
                            .collect()
                    })
                    .unwrap_or_default(),
                _ => Vec::new(),
            })
            .collect();
        v.sort();
        v
    }

    pub fn clear(&self) {
        self.calls.lock().clear();
    }
}

impl ClientFiles for Recording {
    fn call<'a>(
        &'a self,
        method: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<Value, RemoteError>> {
        Box::pin(async move {
            if let Some(f) = self.before.lock().as_mut() {
                f(method, &params);
            }
            self.calls.lock().push((method.to_owned(), params.clone()));
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            // Let other fetches start, so concurrency is observable.
            tokio::task::yield_now().await;
            let r = if method == "client/readFiles" && self.no_batches.load(Ordering::SeqCst) {
                Err(RemoteError {
                    code: -32601,
                    message: "Method not found".into(),
                    data: None,
                })
            } else {
                self.inner.call(method, params).await
            };
            let cap = self.batch_answer_cap.load(Ordering::SeqCst);
            let r = r.map(|mut v| {
                if method == "client/readFiles"
                    && cap > 0
                    && let Some(files) = v["files"].as_array_mut()
                {
                    files.truncate(cap);
                }
                v
            });
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            r
        })
    }
}

pub fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

pub fn join(root: &Path, rel: &str) -> PathBuf {
    root.join(rel)
}
