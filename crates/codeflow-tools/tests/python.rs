//! The tools on the Python fixture, in-process against a real pylsp: one short check per
//! behaviour (see `common` for how a check runs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{check, check_err, check_text};
use serde_json::json;

#[test]
fn definition_of_an_imported_name_is_in_its_module() {
    check(
        "python",
        "find_definition",
        json!({"file_path": "app.py", "symbol_name": "scale"}),
        json!({"substring_matches": false, "matches": [{"definitions": [
            {"path": "$ROOT/pkg/shapes.py", "line": 14, "character": 5}
        ]}]}),
    );
}

#[test]
fn definition_text_names_path_position_and_line() {
    check_text(
        "python",
        "find_definition",
        json!({"file_path": "$ROOT/app.py", "symbol_name": "scale"}),
        &["$ROOT/pkg/shapes.py:14:5  def scale(value, factor):"],
    );
}

#[test]
fn definition_by_kind_in_the_file_itself() {
    check(
        "python",
        "find_definition",
        json!({"file_path": "app.py", "symbol_name": "main", "symbol_kind": "function"}),
        json!({"matches": [{"definitions": [{"path": "$ROOT/app.py", "line": 4, "character": 5}]}]}),
    );
}

#[test]
fn an_unknown_kind_warns_and_a_substring_matches() {
    check(
        "python",
        "find_definition",
        json!({"file_path": "pkg/shapes.py", "symbol_name": "unused", "symbol_kind": "gizmo"}),
        json!({"substring_matches": true, "matches": [{"name": "unused_helper", "definitions": [
            {"path": "$ROOT/pkg/shapes.py", "line": 19, "character": 5}
        ]}]}),
    );
    check_text(
        "python",
        "find_definition",
        json!({"file_path": "pkg/shapes.py", "symbol_name": "unused", "symbol_kind": "gizmo"}),
        &["Warning: unknown symbol_kind `gizmo`"],
    );
}

#[test]
fn a_missing_symbol_names_the_file_symbols() {
    check_err(
        "python",
        "find_definition",
        json!({"file_path": "pkg/shapes.py", "symbol_name": "nope"}),
        "no symbol named `nope`",
    );
}

#[test]
fn a_path_outside_the_project_is_refused() {
    check_err(
        "python",
        "get_hover",
        json!({"file_path": "../etc/passwd", "line": 1, "character": 1}),
        "invalid arguments",
    );
}

#[test]
fn references_cover_every_file() {
    let f = common::shared("python");
    common::runtime().block_on(async {
        let out = f
            .ok(
                "find_references",
                json!({"file_path": "pkg/shapes.py", "symbol_name": "scale"}),
            )
            .await;
        let refs: Vec<(String, u64, u64)> = out.structured["references"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["path"].as_str().unwrap().to_owned(),
                    p["line"].as_u64().unwrap(),
                    p["character"].as_u64().unwrap(),
                )
            })
            .collect();
        for (rel, line, character) in [
            ("pkg/shapes.py", 14, 5),
            ("app.py", 7, 12),
            ("app.py", 10, 9),
            ("report.py", 7, 12),
        ] {
            assert!(
                refs.contains(&(f.path(rel), line, character)),
                "{rel}:{line}:{character} missing from {}",
                out.text
            );
        }
        assert_eq!(out.structured["truncated"], false);
    });
}

#[test]
fn references_are_truncated_with_the_total() {
    check(
        "python",
        "find_references",
        json!({"file_path": "pkg/shapes.py", "symbol_name": "scale", "max_results": 2}),
        json!({"truncated": true, "total": 6}),
    );
}

#[test]
fn document_symbols_give_kinds_and_positions() {
    let f = common::shared("python");
    common::runtime().block_on(async {
        let out = f
            .ok(
                "get_document_symbols",
                json!({"file_path": "pkg/shapes.py"}),
            )
            .await;
        let symbols = out.structured["symbols"].as_array().unwrap();
        let circle = symbols.iter().find(|s| s["name"] == "Circle").unwrap();
        common::contains(circle, &json!({"kind": "class", "line": 4}), "Circle").unwrap();
        assert!(symbols.iter().any(|s| s["name"] == "scale"), "{}", out.text);
    });
}
