//! Real language servers on small fixture projects answer through the pool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use codeflow_lsp_pool::lsp_types::request::{DocumentSymbolRequest, GotoDefinition, References};
use codeflow_lsp_pool::lsp_types::{
    DocumentSymbolParams, DocumentSymbolResponse, TextDocumentIdentifier,
};
use codeflow_lsp_pool::{LspPool, ProjectKey, ProjectLease, ServerHandle};
use common::*;

async fn definition(
    server: &ServerHandle,
    uri: &codeflow_lsp_pool::lsp_types::Url,
    text: &str,
    needle: &str,
    nth: usize,
) -> Vec<(String, u32, u32)> {
    let pos = position_of(text, needle, nth);
    def_locations(
        server
            .request::<GotoDefinition>(definition_params(uri, pos))
            .await
            .expect("definition"),
    )
}

async fn references(
    server: &ServerHandle,
    uri: &codeflow_lsp_pool::lsp_types::Url,
    text: &str,
    needle: &str,
    nth: usize,
) -> Vec<(String, u32, u32)> {
    let pos = position_of(text, needle, nth);
    triples(
        server
            .request::<References>(references_params(uri, pos))
            .await
            .expect("references")
            .unwrap_or_default(),
    )
}

async fn symbol_names(
    server: &ServerHandle,
    uri: &codeflow_lsp_pool::lsp_types::Url,
) -> Vec<String> {
    let params = DocumentSymbolParams {
        text_document: TextDocumentIdentifier::new(uri.clone()),
        work_done_progress_params: Default::default(),
        partial_result_params: Default::default(),
    };
    let resp = server
        .request::<DocumentSymbolRequest>(params)
        .await
        .expect("documentSymbol");
    let mut names = Vec::new();
    match resp {
        Some(DocumentSymbolResponse::Flat(v)) => names.extend(v.into_iter().map(|s| s.name)),
        Some(DocumentSymbolResponse::Nested(v)) => {
            let mut stack = v;
            while let Some(s) = stack.pop() {
                names.push(s.name);
                stack.extend(s.children.unwrap_or_default());
            }
        }
        None => {}
    }
    names
}

/// The fixture project `fixture` served by a pool as project `key`, with the language server
/// for `file` started (`starts` is the failure message). Fields drop in the order the tests'
/// locals did: server, lease, pool, then the directory.
struct Served {
    server: ServerHandle,
    root: std::path::PathBuf,
    _lease: ProjectLease,
    pool: LspPool,
    _dir: tempfile::TempDir,
}

async fn serve(fixture: &str, key: &str, file: &str, starts: &str) -> Served {
    serve_dir(project(fixture), key, file, starts).await
}

async fn serve_dir(dir: tempfile::TempDir, key: &str, file: &str, starts: &str) -> Served {
    let pool = LspPool::new(config());
    let lease = pool.lease(ProjectKey::new(
        codeflow_types::ProjectId::parse(key).expect("project id"),
        dir.path(),
    ));
    let server = lease.server_for_file(file).await.expect(starts);
    let root = lease.root().to_path_buf();
    Served {
        server,
        root,
        _lease: lease,
        pool,
        _dir: dir,
    }
}

/// Asserts that the document symbols of `file` name each of `wanted`.
async fn assert_symbols(s: &Served, file: &str, wanted: &[&str]) {
    let (uri, _) = open(&s.server, &s.root, file);
    let names = symbol_names(&s.server, &uri).await;
    for want in wanted {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_definition_and_references() {
    let served = serve("python", "py", "app.py", "pylsp starts").await;
    let (server, root) = (&served.server, &served.root);
    assert_eq!(server.server_id(), "pylsp");
    let (app, app_text) = open(server, root, "app.py");
    let (lib, lib_text) = open(server, root, "mathlib.py");

    assert_eq!(
        definition(server, &app, &app_text, "add", 1).await,
        vec![t("mathlib.py", 0, 4)]
    );
    let refs = references(server, &lib, &lib_text, "add", 0).await;
    for want in [
        t("mathlib.py", 0, 4),
        t("mathlib.py", 5, 11),
        t("app.py", 2, 9),
        t("app.py", 3, 8),
    ] {
        assert!(refs.contains(&want), "{want:?} missing from {refs:?}");
    }
    served.pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_definition_and_references() {
    let served = serve("ts", "ts", "main.ts", "typescript-language-server starts").await;
    let (server, root) = (&served.server, &served.root);
    let (main, main_text) = open(server, root, "main.ts");
    let (lib, lib_text) = open(server, root, "lib.ts");

    // tsserver resolves a call of an imported function to the import binding, and the import
    // binding to the declaration.
    assert_eq!(
        definition(server, &main, &main_text, "greet", 1).await,
        vec![t("main.ts", 0, 9)]
    );
    assert_eq!(
        definition(server, &main, &main_text, "greet", 0).await,
        vec![t("lib.ts", 0, 16)]
    );
    let refs = references(server, &lib, &lib_text, "greet", 0).await;
    assert_eq!(
        refs,
        vec![
            t("lib.ts", 0, 16),
            t("main.ts", 0, 9),
            t("main.ts", 2, 10),
            t("main.ts", 3, 10)
        ]
    );
    served.pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_definition_and_references() {
    let served = serve("c", "c", "main.c", "clangd starts").await;
    let (server, root) = (&served.server, &served.root);
    assert_eq!(server.server_id(), "clangd");
    let (main, main_text) = open(server, root, "main.c");
    let _ = open(server, root, "util.c");

    assert_eq!(
        definition(server, &main, &main_text, "square", 1).await,
        vec![t("main.c", 2, 11)]
    );
    assert_eq!(
        references(server, &main, &main_text, "square", 0).await,
        vec![t("main.c", 2, 11), t("main.c", 7, 12), t("main.c", 8, 12)]
    );
    // Across files: the definition in util.c, once clangd has built util.c (its diagnostics
    // for the opened version arrive after the build, which also feeds the dynamic index).
    let built = server
        .diagnostics("util.c")
        .await
        .expect("util.c diagnostics");
    assert!(built.fresh, "{built:?}");
    assert_eq!(
        definition(server, &main, &main_text, "cube", 0).await,
        vec![t("util.c", 2, 4)]
    );
    // No `.cache/` written into the project.
    assert!(!root.join(".cache").exists());
    served.pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_analyzer_document_symbols() {
    let served = serve("rust", "rs", "src/lib.rs", "rust-analyzer starts").await;
    assert_symbols(&served, "src/lib.rs", &["Counter", "bump", "make"]).await;
    served.pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gopls_document_symbols() {
    let served = serve("go", "go", "main.go", "gopls starts").await;
    assert_symbols(&served, "main.go", &["Shape", "Area", "main"]).await;
    served.pool.shutdown().await;
}

/// vim-language-server parses a document after `didOpen` returns and answers an empty outline
/// until then (`ready_after_diagnostics`): the first question after opening is answered in
/// full, not empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vim_answers_the_first_outline_after_parsing() {
    let served = serve_dir(
        shared_project("vim"),
        "vim",
        "plugin.vim",
        "vim server starts",
    )
    .await;
    let (uri, _) = open(&served.server, &served.root, "plugin.vim");
    let names = symbol_names(&served.server, &uri).await;
    for want in ["s:Scale", "ShapesArea", "g:shapes_factor"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    served.pool.shutdown().await;
}

/// bash-language-server finds the project's scripts in the background (`ready_after_log`):
/// the first definition asked across files is the right one, not empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_answers_the_first_cross_file_definition() {
    let served = serve_dir(
        shared_project("bash"),
        "bash",
        "build.sh",
        "bash server starts",
    )
    .await;
    let (uri, text) = open(&served.server, &served.root, "build.sh");
    assert_eq!(
        definition(&served.server, &uri, &text, "log_info", 0).await,
        vec![t("lib.sh", 2, 0)]
    );
    served.pool.shutdown().await;
}
