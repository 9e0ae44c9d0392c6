//! The read-only tools on the TypeScript fixture, in-process against a real
//! typescript-language-server: one short check per behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{call, check, check_text, names, places};
use serde_json::json;

const TS: &str = "typescript";

#[test]
fn definition_of_a_function_in_its_file() {
    check(
        TS,
        "find_definition",
        json!({"file_path": "src/app.ts", "symbol_name": "describe"}),
        json!({"matches": [{"definitions": [{"path": "$ROOT/src/app.ts", "line": 3, "character": 17}]}]}),
    );
    check_text(
        TS,
        "find_definition",
        json!({"file_path": "src/app.ts", "symbol_name": "describe"}),
        &["$ROOT/src/app.ts:3:17  export function describe(shape: Shape): string {"],
    );
}

#[test]
fn references_in_every_file_in_order() {
    check(
        TS,
        "find_references",
        json!({"file_path": "src/shapes.ts", "symbol_name": "scale"}),
        json!({"references": [
            {"path": "$ROOT/src/shapes.ts", "line": 14, "character": 17},
            {"path": "$ROOT/src/app.ts", "line": 1, "character": 25},
            {"path": "$ROOT/src/app.ts", "line": 4, "character": 29},
            {"path": "$ROOT/src/broken.ts", "line": 1, "character": 10},
            {"path": "$ROOT/src/broken.ts", "line": 4, "character": 24},
        ]}),
    );
}

#[test]
fn references_without_the_declaration_truncated() {
    check(
        TS,
        "find_references",
        json!({"file_path": "src/shapes.ts", "symbol_name": "scale", "include_declaration": false, "max_results": 2}),
        json!({"total": 4, "truncated": true}),
    );
}

#[test]
fn document_symbols_with_kinds_and_lines() {
    let (_, _, s) = call(
        TS,
        "get_document_symbols",
        json!({"file_path": "src/shapes.ts"}),
    );
    let rows: Vec<(String, String, u64)> = s["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap().into(),
                x["kind"].as_str().unwrap().into(),
                x["line"].as_u64().unwrap(),
            )
        })
        .collect();
    for (name, kind, line) in [
        ("Circle", "class", 6),
        ("Shape", "interface", 1),
        ("scale", "function", 14),
        ("area", "method", 9),
    ] {
        assert!(
            rows.contains(&(name.into(), kind.into(), line)),
            "{name} {kind} {line} in {rows:?}"
        );
    }
}

#[test]
fn hover_shows_the_signature() {
    check_text(
        TS,
        "get_hover",
        json!({"file_path": "src/app.ts", "line": 4, "character": 30}),
        &["scale(value: number, factor: number): number"],
    );
}

#[test]
fn completions_after_a_dot_are_the_members() {
    check(
        TS,
        "get_completions",
        json!({"file_path": "src/app.ts", "line": 4, "character": 16, "trigger_character": "."}),
        json!({"items": [{"label": "area"}, {"label": "name"}]}),
    );
}

#[test]
fn signature_help_labels_the_signature() {
    check(
        TS,
        "get_signature_help",
        json!({"file_path": "src/app.ts", "line": 4, "character": 35}),
        json!({"signatures": [{"label": "scale(value: number, factor: number): number"}]}),
    );
}

#[test]
fn diagnostics_give_code_position_and_message() {
    check(
        TS,
        "get_diagnostics",
        json!({"file_path": "src/broken.ts"}),
        json!({"errors": 1, "diagnostics": [{"code": "2322", "line": 3, "character": 14}]}),
    );
    check_text(
        TS,
        "get_diagnostics",
        json!({"file_path": "src/broken.ts"}),
        &["$ROOT/src/broken.ts:3:14  error: Type 'string' is not assignable to type 'number'."],
    );
}

#[test]
fn code_actions_for_an_error_have_titles() {
    let (_, _, s) = call(
        TS,
        "get_code_actions",
        json!({"file_path": "src/broken.ts", "range": {"start": {"line": 2, "character": 13}, "end": {"line": 2, "character": 18}}}),
    );
    let actions = s["actions"].as_array().unwrap();
    assert!(!actions.is_empty(), "{s}");
    assert!(actions.iter().all(|a| a["title"].is_string()), "{s}");
}

#[test]
fn workspace_symbols_find_the_function_first() {
    let (f, _, s) = call(TS, "search_workspace_symbols", json!({"query": "scale"}));
    assert_eq!(s["symbols"][0]["name"], "scale");
    assert_eq!(s["symbols"][0]["path"], f.path("src/shapes.ts").as_str());
}

#[test]
fn call_hierarchy_incoming_from_a_prepared_item() {
    let (f, _, s) = call(
        TS,
        "prepare_call_hierarchy",
        json!({"file_path": "src/shapes.ts", "line": 14, "character": 17}),
    );
    let item = s["items"][0]["item"].clone();
    assert_eq!(item["name"], "scale");
    let (_, _, s) = call(
        TS,
        "get_call_hierarchy_incoming_calls",
        json!({"item": item}),
    );
    let callers: Vec<String> = s["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["from"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(callers.contains(&"describe".to_owned()), "{s}");
    assert_eq!(
        places(&s["calls"][0]["call_sites"]),
        vec![(f.path("src/app.ts"), 4, 29)]
    );
}

#[test]
fn call_hierarchy_outgoing_at_a_position() {
    check(
        TS,
        "get_call_hierarchy_outgoing_calls",
        json!({"file_path": "src/app.ts", "line": 3, "character": 17}),
        json!({"calls": [{"to": {"name": "scale"}}, {"to": {"name": "area"}}]}),
    );
}

#[test]
fn implementation_of_an_interface_is_the_class() {
    check(
        TS,
        "find_implementation",
        json!({"file_path": "src/shapes.ts", "line": 1, "character": 18}),
        json!({"locations": [{"path": "$ROOT/src/shapes.ts", "line": 6, "character": 14}]}),
    );
}

#[test]
fn type_definition_of_a_variable_is_its_class() {
    check(
        TS,
        "find_type_definition",
        json!({"file_path": "src/app.ts", "line": 7, "character": 7}),
        json!({"locations": [{"path": "$ROOT/src/shapes.ts", "line": 6, "character": 14}]}),
    );
}

#[test]
fn dead_code_lists_the_unused_and_not_the_used() {
    let (_, text, s) = call(TS, "find_dead_code", json!({}));
    let dead = names(&s["unused"], "name");
    assert!(dead.contains(&"unusedHelper".to_owned()), "{text}");
    assert!(
        !dead
            .iter()
            .any(|d| d == "scale" || d == "Circle" || d == "describe"),
        "{text}"
    );
}

#[test]
fn imports_resolve_to_files_and_nothing_imports_the_entry() {
    check(
        TS,
        "analyze_imports",
        json!({"file_path": "src/app.ts"}),
        json!({"imports": [{"path": "$ROOT/src/shapes.ts"}], "importers": []}),
    );
}

/// Reproduction 5 of issue 10: a name the file imports and calls, not declares, is looked up
/// where the file uses it (`scale(` in app.ts), and the server answers for what it refers to.
#[test]
fn a_name_the_file_uses_but_does_not_declare() {
    check(
        TS,
        "find_definition",
        json!({"file_path": "src/app.ts", "symbol_name": "scale"}),
        json!({"matches": [{"kind": "reference", "line": 4, "character": 29,
            "definitions": [{"path": "$ROOT/src/shapes.ts", "line": 14, "character": 17}]}]}),
    );
    let (_, text, s) = call(
        TS,
        "find_references",
        json!({"file_path": "src/app.ts", "symbol_name": "scale"}),
    );
    assert_eq!(s["total"], 5, "{text}");
    assert!(text.contains("is not declared in"), "{text}");
}

/// Issue 10, reproduction 6: the text answer of prepare_call_hierarchy carries the item, and
/// the whole entry (its `kind` a name like `function`) is accepted as `item`; so is the item
/// copied out of the text.
#[test]
fn call_hierarchy_takes_the_whole_entry_or_the_item_from_the_text() {
    let (_, text, s) = call(
        TS,
        "prepare_call_hierarchy",
        json!({"file_path": "src/shapes.ts", "line": 14, "character": 17}),
    );
    let entry = s["items"][0].clone();
    assert_eq!(entry["kind"], "function");
    let from_text: serde_json::Value = serde_json::from_str(
        text.split("item: ")
            .nth(1)
            .and_then(|rest| rest.lines().next())
            .unwrap_or_else(|| panic!("no item in the text: {text}")),
    )
    .unwrap();
    for item in [entry, from_text] {
        check(
            TS,
            "get_call_hierarchy_incoming_calls",
            json!({"item": item}),
            json!({"item": {"name": "scale"}, "calls": [{"from": {"name": "describe"}}, {"from": {}}]}),
        );
    }
}

/// Issue 10, reproduction 6: a 2-space file is formatted with 2 spaces by default (it was
/// re-indented to 4).
#[test]
fn format_document_keeps_the_files_indentation() {
    let (f, text, s) = call(
        TS,
        "format_document",
        json!({"file_path": "src/app.ts", "dry_run": true}),
    );
    assert!(text.contains("indent 2 spaces"), "{text}");
    let before = f.read("src/app.ts");
    for file in s["files"].as_array().unwrap() {
        for e in file["edits"].as_array().unwrap() {
            assert!(
                !e["new_text"].as_str().unwrap().contains("    "),
                "re-indented: {text}"
            );
        }
    }
    assert_eq!(f.read("src/app.ts"), before);
}

/// Reproduction 5 of issue 10 on TanStack query-core 5.108.4 (npm): `hashKey` is imported and
/// called by src/mutationObserver.ts, not declared there; it is found where the file uses it,
/// and its definition is in src/utils.ts.
#[test]
fn hash_key_is_found_from_mutation_observer() {
    let query_core = codeflow_e2e::registry::npm_package("@tanstack/query-core", "5.108.4");
    common::block_on(async {
        let f = common::Fixture::from_dir("query-core", &query_core).await;
        // The repository's tsconfig is not in the npm tarball; a minimal one stands for it.
        std::fs::write(
            f.root.join("tsconfig.json"),
            r#"{"compilerOptions": {"target": "es2020", "module": "esnext", "moduleResolution": "bundler", "strict": true}, "include": ["src"]}"#,
        )
        .unwrap();
        f.sync().await;
        let out = f
            .ok(
                "find_definition",
                json!({"file_path": "src/mutationObserver.ts", "symbol_name": "hashKey"}),
            )
            .await;
        let definitions = places(&out.structured["matches"][0]["definitions"]);
        assert!(
            definitions
                .iter()
                .any(|(p, _, _)| p == &f.path("src/utils.ts")),
            "{}",
            out.text
        );
    });
}
