//! Embedding the pool in another tokio service: an "outline" service that owns an
//! [`LspPool`], takes requests from a bounded channel on a task of its own, and answers each
//! with the symbols a real language server (pylsp for `.py` files) reports for one file.
//!
//! ```sh
//! cargo run -p codeflow-lsp-pool --example outline_service            # a demo project
//! cargo run -p codeflow-lsp-pool --example outline_service -- DIR FILE  # your own file
//! ```
//! `FILE` is relative to `DIR`. Prints one line per symbol: `kind name line` (1-based line).
//! `crates/codeflow-lsp-pool/tests/examples.rs` runs this against pylsp.

use std::path::{Path, PathBuf};

use codeflow_lsp_pool::lsp_types::request::DocumentSymbolRequest;
use codeflow_lsp_pool::lsp_types::{
    DocumentSymbolParams, DocumentSymbolResponse, SymbolKind, TextDocumentIdentifier,
};
use codeflow_lsp_pool::{LspPool, PoolConfig, ProjectKey};
use codeflow_types::ProjectId;
use tokio::sync::{mpsc, oneshot};

/// Any failure: the pool's [`codeflow_lsp_pool::LspError`], reading the file, a stopped service.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// One symbol of a file's outline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub kind: SymbolKind,
    /// 1-based line of the symbol's name.
    pub line: u32,
}

/// A request to the service: the outline of `file` (relative to `root`).
struct OutlineRequest {
    project: ProjectId,
    root: PathBuf,
    file: String,
    reply: oneshot::Sender<Result<Vec<Symbol>, Error>>,
}

/// The handle the rest of the service holds: cheap to clone, talks to the pool's task.
#[derive(Clone)]
pub struct OutlineService {
    requests: mpsc::Sender<OutlineRequest>,
}

impl OutlineService {
    /// Starts the service's task, which owns the pool. It stops (and shuts the pool down,
    /// stopping every language server) when the last handle is dropped.
    pub fn start(config: PoolConfig) -> (Self, tokio::task::JoinHandle<()>) {
        // Bounded: a caller waits when 64 requests are queued.
        let (requests, mut inbox) = mpsc::channel::<OutlineRequest>(64);
        let task = tokio::spawn(async move {
            let pool = LspPool::new(config);
            while let Some(request) = inbox.recv().await {
                let answer = outline(&pool, request.project, &request.root, &request.file).await;
                // The caller may have gone away; nothing to do then.
                let _ = request.reply.send(answer);
            }
            pool.shutdown().await;
        });
        (Self { requests }, task)
    }

    /// The symbols of `file` in the project at `root`.
    pub async fn outline(
        &self,
        project: ProjectId,
        root: &Path,
        file: &str,
    ) -> Result<Vec<Symbol>, Error> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(OutlineRequest {
                project,
                root: root.to_path_buf(),
                file: file.to_owned(),
                reply,
            })
            .await
            .map_err(|_| "the outline service has stopped")?;
        answer
            .await
            .map_err(|_| "the outline service has stopped")?
    }
}

/// Leases the project, opens the file in its language server and asks for its symbols.
async fn outline(
    pool: &LspPool,
    project: ProjectId,
    root: &Path,
    file: &str,
) -> Result<Vec<Symbol>, Error> {
    let lease = pool.lease(ProjectKey::new(project, root));
    let server = lease.server_for_file(file).await?;
    let text =
        std::fs::read_to_string(root.join(file)).map_err(|e| format!("cannot read {file}: {e}"))?;
    server.sync_document(file, text)?;
    let answer = server
        .request::<DocumentSymbolRequest>(DocumentSymbolParams {
            text_document: TextDocumentIdentifier::new(server.uri_for(file)?),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
        })
        .await?;
    let mut symbols = Vec::new();
    match answer {
        None => {}
        Some(DocumentSymbolResponse::Flat(list)) => {
            for s in list {
                symbols.push(Symbol {
                    name: s.name,
                    kind: s.kind,
                    line: s.location.range.start.line + 1,
                });
            }
        }
        Some(DocumentSymbolResponse::Nested(tree)) => {
            let mut stack = tree;
            while let Some(s) = stack.pop() {
                symbols.push(Symbol {
                    name: s.name,
                    kind: s.kind,
                    line: s.selection_range.start.line + 1,
                });
                stack.extend(s.children.unwrap_or_default());
            }
        }
    }
    symbols.sort_by(|a, b| (a.line, &a.name).cmp(&(b.line, &b.name)));
    // The lease ends here; the project's servers stop `idle_timeout` after the last one.
    Ok(symbols)
}

/// A two-function Python project, for running the example without arguments.
pub fn demo_project(dir: &Path) -> std::io::Result<()> {
    std::fs::write(
        dir.join("shapes.py"),
        "class Circle:\n    def __init__(self, r):\n        self.r = r\n\n    def area(self):\n        return 3.14159 * self.r ** 2\n\n\ndef largest(circles):\n    return max(circles, key=Circle.area)\n",
    )
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let demo = tempfile::tempdir()?;
    let (root, file) = match args.as_slice() {
        [] => {
            demo_project(demo.path())?;
            (demo.path().to_path_buf(), "shapes.py".to_owned())
        }
        [dir, file] => (PathBuf::from(dir), file.clone()),
        _ => return Err("usage: outline_service [DIR FILE]".into()),
    };
    let root = std::fs::canonicalize(root)?;

    let (service, task) = OutlineService::start(PoolConfig::default());
    let symbols = service
        .outline(ProjectId::parse("example")?, &root, &file)
        .await?;
    for s in &symbols {
        println!("{:?} {} {}", s.kind, s.name, s.line);
    }
    drop(service);
    task.await?;
    Ok(())
}
