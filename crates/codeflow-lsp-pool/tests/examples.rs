//! The crate's examples, run against real language servers so they cannot rot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The example's own code (its service, request and demo project), compiled into this test.
#[allow(dead_code)]
#[path = "../examples/outline_service.rs"]
mod outline_service;

use codeflow_lsp_pool::PoolConfig;
use codeflow_lsp_pool::lsp_types::SymbolKind;
use codeflow_types::ProjectId;
use outline_service::{OutlineService, Symbol, demo_project};

/// `outline_service`: the pool embedded behind a bounded channel answers with pylsp's symbols
/// of the demo project, and stops its language servers when the service is dropped.
#[tokio::test]
async fn outline_service_answers_with_pylsps_symbols() {
    let dir = tempfile::tempdir().unwrap();
    demo_project(dir.path()).unwrap();
    let root = dir.path().canonicalize().unwrap();

    let (service, task) = OutlineService::start(PoolConfig::default());
    let symbols = service
        .outline(ProjectId::parse("example").unwrap(), &root, "shapes.py")
        .await
        .unwrap_or_else(|e| panic!("outline: {e}"));
    let has = |name: &str, kind: SymbolKind, line: u32| {
        symbols.contains(&Symbol {
            name: name.into(),
            kind,
            line,
        })
    };
    assert!(has("Circle", SymbolKind::CLASS, 1), "{symbols:?}");
    assert!(
        has("area", SymbolKind::METHOD, 5) || has("area", SymbolKind::FUNCTION, 5),
        "{symbols:?}"
    );
    assert!(has("largest", SymbolKind::FUNCTION, 9), "{symbols:?}");

    // A missing file is an error answer, not a hang or a panic; the service keeps serving.
    let missing = service
        .outline(ProjectId::parse("example").unwrap(), &root, "nope.py")
        .await;
    assert!(missing.is_err());

    drop(service);
    tokio::time::timeout(std::time::Duration::from_secs(20), task)
        .await
        .expect("the service stops when its last handle is dropped")
        .unwrap();
}
