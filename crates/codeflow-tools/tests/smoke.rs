//! A smoke set of the read-only tools on the Rust (rust-analyzer) and Go (gopls) fixtures,
//! in-process against the real language servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{call, check, check_text, names, places};
use serde_json::json;

/// Asserts that `get_document_symbols` of `file` names each of `expected`.
fn assert_outline(fixture: &str, file: &str, expected: &[&str]) {
    let (_, _, s) = call(fixture, "get_document_symbols", json!({"file_path": file}));
    let names = names(&s["symbols"], "name");
    assert!(
        expected.iter().all(|e| names.contains(&(*e).to_owned())),
        "{s}"
    );
}

#[test]
fn rust_outline() {
    assert_outline("rust", "src/shapes.rs", &["Shape", "Circle", "scale"]);
}

#[test]
fn rust_definition() {
    check(
        "rust",
        "find_definition",
        json!({"file_path": "src/shapes.rs", "symbol_name": "scale"}),
        json!({"matches": [{"definitions": [{"path": "$ROOT/src/shapes.rs", "line": 15, "character": 8}]}]}),
    );
}

#[test]
fn rust_references_without_the_declaration() {
    let (f, text, s) = call(
        "rust",
        "find_references",
        json!({"file_path": "src/shapes.rs", "symbol_name": "scale", "include_declaration": false}),
    );
    assert!(
        places(&s["references"]).contains(&(f.path("src/lib.rs"), 7, 5)),
        "{text}"
    );
}

#[test]
fn rust_hover() {
    check_text(
        "rust",
        "get_hover",
        json!({"file_path": "src/lib.rs", "line": 7, "character": 5}),
        &["fn scale(value: f64, factor: f64) -> f64"],
    );
}

#[test]
fn rust_implementation_of_a_trait() {
    check(
        "rust",
        "find_implementation",
        json!({"file_path": "src/shapes.rs", "line": 1, "character": 11}),
        json!({"locations": [{"path": "$ROOT/src/shapes.rs", "line": 9, "character": 16}]}),
    );
}

#[test]
fn go_outline() {
    assert_outline("go", "shapes/shapes.go", &["Shape", "Circle", "Scale"]);
}

#[test]
fn go_definition() {
    check(
        "go",
        "find_definition",
        json!({"file_path": "main.go", "symbol_name": "main"}),
        json!({"matches": [{"definitions": [{"path": "$ROOT/main.go", "line": 9, "character": 6}]}]}),
    );
}

#[test]
fn go_references_across_packages() {
    let (f, text, s) = call(
        "go",
        "find_references",
        json!({"file_path": "shapes/shapes.go", "symbol_name": "Scale"}),
    );
    assert!(
        places(&s["references"]).contains(&(f.path("main.go"), 11, 21)),
        "{text}"
    );
}

#[test]
fn go_hover() {
    let (_, text, _) = call(
        "go",
        "get_hover",
        json!({"file_path": "main.go", "line": 11, "character": 21}),
    );
    assert!(
        text.contains("func shapes.Scale(value float64, factor float64) float64")
            || text.contains("func Scale(value, factor float64) float64"),
        "{text}"
    );
}

#[test]
fn go_implementation_of_an_interface() {
    let (f, _, s) = call(
        "go",
        "find_implementation",
        json!({"file_path": "shapes/shapes.go", "line": 4, "character": 6}),
    );
    assert!(
        places(&s["locations"]).contains(&(f.path("shapes/shapes.go"), 9, 6)),
        "{s}"
    );
}

#[test]
fn go_importers_of_a_package_file() {
    let (f, _, s) = call(
        "go",
        "analyze_imports",
        json!({"file_path": "shapes/shapes.go"}),
    );
    assert_eq!(s["importers"][0]["path"], f.path("main.go").as_str());
}

/// Reproduction 5 of issue 10: a Go method is found by its name, receiver-qualified or bare,
/// and a single candidate is renamed (gopls names it `(Circle).Area`).
#[test]
fn go_method_renamed_by_name() {
    for name in ["(Circle).Area", "Circle.Area"] {
        let (f, text, s) = call(
            "go",
            "rename_symbol",
            json!({"file_path": "shapes/shapes.go", "symbol_name": name, "new_name": "Size", "dry_run": true}),
        );
        assert_eq!(s["dry_run"], true, "{text}");
        let files = names(&s["files"], "path");
        assert!(
            files.contains(&f.path("shapes/shapes.go")) && files.contains(&f.path("main.go")),
            "{name}: {text}"
        );
    }
}

/// The same with a pointer receiver and the bare name, as in Go's `text/template/parse`
/// (`(*Tree).newPipeline` renamed as `newPipeline`): the only candidate is renamed.
#[test]
fn go_pointer_method_renamed_by_its_bare_name() {
    common::block_on(async {
        let f = common::Fixture::from_files(
            "go-tree",
            &[
                ("go.mod", "module example.com/tree\n\ngo 1.21\n"),
                (
                    "tree.go",
                    "package tree\n\ntype Tree struct{ n int }\n\nfunc (t *Tree) newPipeline() int {\n\treturn t.n\n}\n\nfunc (t *Tree) Use() int {\n\treturn t.newPipeline() + 1\n}\n",
                ),
            ],
        )
        .await;
        let out = f
            .ok(
                "rename_symbol",
                json!({"file_path": "tree.go", "symbol_name": "newPipeline", "new_name": "makePipeline"}),
            )
            .await;
        assert_eq!(out.structured["applied"], true, "{}", out.text);
        let after = f.read("tree.go");
        assert!(
            after.contains("func (t *Tree) makePipeline() int")
                && after.contains("return t.makePipeline() + 1")
                && !after.contains("newPipeline"),
            "{after}"
        );
    });
}

/// Reproduction 5 of issue 10 on Go's own `text/template/parse`: `(*Tree).newPipeline` is
/// renamed by its name, bare or receiver-qualified, the only candidate proceeding, in both
/// files that use it.
#[test]
fn go_new_pipeline_of_text_template_parse_renamed_by_name() {
    let parse = codeflow_e2e::registry::go_std_package("text/template/parse");
    common::block_on(async {
        let f = common::Fixture::from_dir("go-parse", &parse).await;
        std::fs::write(
            f.root.join("go.mod"),
            "module example.com/parse\n\ngo 1.19\n",
        )
        .unwrap();
        f.sync().await;
        for name in ["newPipeline", "(*Tree).newPipeline"] {
            let out = f
                .ok(
                    "rename_symbol",
                    json!({"file_path": "node.go", "symbol_name": name, "new_name": "makePipeline", "dry_run": true}),
                )
                .await;
            let files = names(&out.structured["files"], "path");
            assert!(
                files.contains(&f.path("node.go")) && files.contains(&f.path("parse.go")),
                "{name}: {}",
                out.text
            );
            assert_eq!(out.structured["leftovers"], json!([]), "{}", out.text);
        }
    });
}
