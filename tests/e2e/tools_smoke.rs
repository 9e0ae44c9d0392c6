//! A smoke set of the LSP tools on the Rust (rust-analyzer) and Go (gopls) fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use codeflow_e2e::tools::{Project, places};
use serde_json::{Value, json};

type Places = Vec<(String, u64, u64)>;

/// Asserts that `get_document_symbols` of `file` names each of `expected`.
async fn assert_outline(p: &Project, file: &str, expected: &[&str]) {
    let (_, s) = p
        .ok("get_document_symbols", json!({"file_path": file}))
        .await;
    let names: Vec<&str> = s["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert!(expected.iter().all(|e| names.contains(e)), "{s}");
}

/// `find_definition` of `symbol` named in `file`: (text, definitions of the first match).
async fn definitions(p: &Project, file: &str, symbol: &str) -> (String, Places) {
    let (text, s) = p
        .ok(
            "find_definition",
            json!({"file_path": file, "symbol_name": symbol}),
        )
        .await;
    (text, places(&s["matches"][0]["definitions"]))
}

/// `find_references` with `args`: (text, references).
async fn references(p: &Project, args: Value) -> (String, Places) {
    let (text, s) = p.ok("find_references", args).await;
    (text, places(&s["references"]))
}

/// The text of `get_hover` at a 1-based position.
async fn hover(p: &Project, file: &str, line: u64, character: u64) -> String {
    let (text, _) = p
        .ok(
            "get_hover",
            json!({"file_path": file, "line": line, "character": character}),
        )
        .await;
    text
}

/// `find_implementation` at a 1-based position: (structured result, locations).
async fn implementations(p: &Project, file: &str, line: u64, character: u64) -> (Value, Places) {
    let (_, s) = p
        .ok(
            "find_implementation",
            json!({"file_path": file, "line": line, "character": character}),
        )
        .await;
    let found = places(&s["locations"]);
    (s, found)
}

#[tokio::test]
async fn rust_tools_through_rust_analyzer() {
    let p = Project::start("rust", "tools-rs").await;
    let shapes = p.path("src/shapes.rs");
    let lib = p.path("src/lib.rs");
    assert_outline(&p, "src/shapes.rs", &["Shape", "Circle", "scale"]).await;
    let (text, defs) = definitions(&p, "src/shapes.rs", "scale").await;
    assert_eq!(defs, vec![(shapes.clone(), 15, 8)], "{text}");
    let (text, refs) = references(
        &p,
        json!({"file_path": "src/shapes.rs", "symbol_name": "scale", "include_declaration": false}),
    )
    .await;
    assert!(refs.contains(&(lib.clone(), 7, 5)), "{text}");
    let text = hover(&p, "src/lib.rs", 7, 5).await;
    assert!(
        text.contains("fn scale(value: f64, factor: f64) -> f64"),
        "{text}"
    );
    let (_, found) = implementations(&p, "src/shapes.rs", 1, 11).await;
    assert_eq!(found, vec![(shapes.clone(), 9, 16)]);
}

#[tokio::test]
async fn go_tools_through_gopls() {
    let p = Project::start("go", "tools-go").await;
    let shapes = p.path("shapes/shapes.go");
    let main_go = p.path("main.go");
    assert_outline(&p, "shapes/shapes.go", &["Shape", "Circle", "Scale"]).await;
    let (text, defs) = definitions(&p, "main.go", "main").await;
    assert_eq!(defs, vec![(main_go.clone(), 9, 6)], "{text}");
    let (text, refs) = references(
        &p,
        json!({"file_path": "shapes/shapes.go", "symbol_name": "Scale"}),
    )
    .await;
    assert!(refs.contains(&(main_go.clone(), 11, 21)), "{text}");
    let text = hover(&p, "main.go", 11, 21).await;
    assert!(
        text.contains("func shapes.Scale(value float64, factor float64) float64")
            || text.contains("func Scale(value, factor float64) float64"),
        "{text}"
    );
    let (s, found) = implementations(&p, "shapes/shapes.go", 4, 6).await;
    assert!(found.contains(&(shapes.clone(), 9, 6)), "{s}");
    let (_, s) = p
        .ok("analyze_imports", json!({"file_path": "shapes/shapes.go"}))
        .await;
    assert_eq!(s["importers"][0]["path"], main_go.as_str());
}
