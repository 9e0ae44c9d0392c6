//! A smoke set of the LSP tools on the Rust (rust-analyzer) and Go (gopls) fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use codeflow_e2e::tools::{Project, places};
use serde_json::json;

#[tokio::test]
async fn rust_tools_through_rust_analyzer() {
    let p = Project::start("rust", "tools-rs").await;
    let shapes = p.path("src/shapes.rs");
    let lib = p.path("src/lib.rs");
    let (_, s) = p
        .ok(
            "get_document_symbols",
            json!({"file_path": "src/shapes.rs"}),
        )
        .await;
    let names: Vec<&str> = s["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Shape") && names.contains(&"Circle") && names.contains(&"scale"),
        "{s}"
    );
    let (text, s) = p
        .ok(
            "find_definition",
            json!({"file_path": "src/shapes.rs", "symbol_name": "scale"}),
        )
        .await;
    assert_eq!(
        places(&s["matches"][0]["definitions"]),
        vec![(shapes.clone(), 15, 8)],
        "{text}"
    );
    let (text, s) = p.ok("find_references", json!({"file_path": "src/shapes.rs", "symbol_name": "scale", "include_declaration": false})).await;
    let refs = places(&s["references"]);
    assert!(refs.contains(&(lib.clone(), 7, 5)), "{text}");
    let (text, _) = p
        .ok(
            "get_hover",
            json!({"file_path": "src/lib.rs", "line": 7, "character": 5}),
        )
        .await;
    assert!(
        text.contains("fn scale(value: f64, factor: f64) -> f64"),
        "{text}"
    );
    let (_, s) = p
        .ok(
            "find_implementation",
            json!({"file_path": "src/shapes.rs", "line": 1, "character": 11}),
        )
        .await;
    assert_eq!(places(&s["locations"]), vec![(shapes.clone(), 9, 16)]);
}

#[tokio::test]
async fn go_tools_through_gopls() {
    let p = Project::start("go", "tools-go").await;
    let shapes = p.path("shapes/shapes.go");
    let main_go = p.path("main.go");
    let (_, s) = p
        .ok(
            "get_document_symbols",
            json!({"file_path": "shapes/shapes.go"}),
        )
        .await;
    let names: Vec<&str> = s["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Shape") && names.contains(&"Circle") && names.contains(&"Scale"),
        "{s}"
    );
    let (text, s) = p
        .ok(
            "find_definition",
            json!({"file_path": "main.go", "symbol_name": "main"}),
        )
        .await;
    assert_eq!(
        places(&s["matches"][0]["definitions"]),
        vec![(main_go.clone(), 9, 6)],
        "{text}"
    );
    let (text, s) = p
        .ok(
            "find_references",
            json!({"file_path": "shapes/shapes.go", "symbol_name": "Scale"}),
        )
        .await;
    assert!(
        places(&s["references"]).contains(&(main_go.clone(), 11, 21)),
        "{text}"
    );
    let (text, _) = p
        .ok(
            "get_hover",
            json!({"file_path": "main.go", "line": 11, "character": 21}),
        )
        .await;
    assert!(
        text.contains("func shapes.Scale(value float64, factor float64) float64")
            || text.contains("func Scale(value, factor float64) float64"),
        "{text}"
    );
    let (_, s) = p
        .ok(
            "find_implementation",
            json!({"file_path": "shapes/shapes.go", "line": 4, "character": 6}),
        )
        .await;
    assert!(
        places(&s["locations"]).contains(&(shapes.clone(), 9, 6)),
        "{s}"
    );
    let (_, s) = p
        .ok("analyze_imports", json!({"file_path": "shapes/shapes.go"}))
        .await;
    assert_eq!(s["importers"][0]["path"], main_go.as_str());
}
