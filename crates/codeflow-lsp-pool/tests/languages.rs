//! Real language servers on small fixture projects answer through the pool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use codeflow_lsp_pool::lsp_types::request::{DocumentSymbolRequest, GotoDefinition, References};
use codeflow_lsp_pool::lsp_types::{
    DocumentSymbolParams, DocumentSymbolResponse, TextDocumentIdentifier,
};
use codeflow_lsp_pool::{LspPool, ProjectKey, ServerHandle};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_definition_and_references() {
    let dir = project("python");
    let pool = LspPool::new(config());
    let lease = pool.lease(ProjectKey::new("py", dir.path()));
    let server = lease.server_for_file("app.py").await.expect("pylsp starts");
    assert_eq!(server.server_id(), "pylsp");
    let root = lease.root().to_path_buf();
    let (app, app_text) = open(&server, &root, "app.py");
    let (lib, lib_text) = open(&server, &root, "mathlib.py");

    assert_eq!(
        definition(&server, &app, &app_text, "add", 1).await,
        vec![t("mathlib.py", 0, 4)]
    );
    let refs = references(&server, &lib, &lib_text, "add", 0).await;
    for want in [
        t("mathlib.py", 0, 4),
        t("mathlib.py", 5, 11),
        t("app.py", 2, 9),
        t("app.py", 3, 8),
    ] {
        assert!(refs.contains(&want), "{want:?} missing from {refs:?}");
    }
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_definition_and_references() {
    let dir = project("ts");
    let pool = LspPool::new(config());
    let lease = pool.lease(ProjectKey::new("ts", dir.path()));
    let server = lease
        .server_for_file("main.ts")
        .await
        .expect("typescript-language-server starts");
    let root = lease.root().to_path_buf();
    let (main, main_text) = open(&server, &root, "main.ts");
    let (lib, lib_text) = open(&server, &root, "lib.ts");

    // tsserver resolves a call of an imported function to the import binding, and the import
    // binding to the declaration.
    assert_eq!(
        definition(&server, &main, &main_text, "greet", 1).await,
        vec![t("main.ts", 0, 9)]
    );
    assert_eq!(
        definition(&server, &main, &main_text, "greet", 0).await,
        vec![t("lib.ts", 0, 16)]
    );
    let refs = references(&server, &lib, &lib_text, "greet", 0).await;
    assert_eq!(
        refs,
        vec![
            t("lib.ts", 0, 16),
            t("main.ts", 0, 9),
            t("main.ts", 2, 10),
            t("main.ts", 3, 10)
        ]
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_definition_and_references() {
    let dir = project("c");
    let pool = LspPool::new(config());
    let lease = pool.lease(ProjectKey::new("c", dir.path()));
    let server = lease
        .server_for_file("main.c")
        .await
        .expect("clangd starts");
    assert_eq!(server.server_id(), "clangd");
    let root = lease.root().to_path_buf();
    let (main, main_text) = open(&server, &root, "main.c");
    let _ = open(&server, &root, "util.c");

    assert_eq!(
        definition(&server, &main, &main_text, "square", 1).await,
        vec![t("main.c", 2, 11)]
    );
    assert_eq!(
        references(&server, &main, &main_text, "square", 0).await,
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
        definition(&server, &main, &main_text, "cube", 0).await,
        vec![t("util.c", 2, 4)]
    );
    // No `.cache/` written into the project.
    assert!(!root.join(".cache").exists());
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_analyzer_document_symbols() {
    let dir = project("rust");
    let pool = LspPool::new(config());
    let lease = pool.lease(ProjectKey::new("rs", dir.path()));
    let server = lease
        .server_for_file("src/lib.rs")
        .await
        .expect("rust-analyzer starts");
    let root = lease.root().to_path_buf();
    let (uri, _) = open(&server, &root, "src/lib.rs");
    let names = symbol_names(&server, &uri).await;
    for want in ["Counter", "bump", "make"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gopls_document_symbols() {
    let dir = project("go");
    let pool = LspPool::new(config());
    let lease = pool.lease(ProjectKey::new("go", dir.path()));
    let server = lease
        .server_for_file("main.go")
        .await
        .expect("gopls starts");
    let root = lease.root().to_path_buf();
    let (uri, _) = open(&server, &root, "main.go");
    let names = symbol_names(&server, &uri).await;
    for want in ["Shape", "Area", "main"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    pool.shutdown().await;
}
