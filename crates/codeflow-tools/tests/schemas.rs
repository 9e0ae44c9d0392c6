//! Every tool's declared `outputSchema`: it compiles and describes an object, a real answer
//! that drifts from it is rejected, and every tool of the catalogue answers within it (every
//! check in the other test files validates its answer the same way: see `common`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use codeflow_tools::Catalogue;
use common::{Fixture, block_on, call, edit, matches_schema, shared};
use serde_json::{Value, json};

#[test]
fn every_output_schema_compiles_and_describes_an_object() {
    for tool in Catalogue::standard().iter() {
        let schema = tool.output_schema();
        let name = tool.name();
        jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(schema["type"], "object", "{name}: {schema}");
        let properties = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: no properties"));
        for required in schema["required"].as_array().into_iter().flatten() {
            assert!(
                properties.contains_key(required.as_str().unwrap()),
                "{name}: {required} is required but not a property"
            );
        }
        let input = tool.input_schema();
        jsonschema::validator_for(&input).unwrap_or_else(|e| panic!("{name} input: {e}"));
        assert_eq!(input["type"], "object", "{name} input: {input}");
    }
}

/// Every object schema that names its members, anywhere in `schema`, allows no others (the
/// path of the first that does).
fn open_object(schema: &Value, at: &str) -> Option<String> {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties")
                && map.get("additionalProperties") != Some(&json!(false))
            {
                return Some(at.to_owned());
            }
            map.iter()
                .find_map(|(k, v)| open_object(v, &format!("{at}/{k}")))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| open_object(v, &format!("{at}/{i}"))),
        _ => None,
    }
}

/// The schemas are derived from the output types (`codeflow_tools::schema_of`) and closed: the
/// validator alone rejects a member the type does not have, at any depth.
#[test]
fn every_output_schema_is_closed() {
    for tool in Catalogue::standard().iter() {
        let schema = tool.output_schema();
        assert_eq!(open_object(&schema, ""), None, "{}: {schema}", tool.name());
    }
    let (schema, answer) = find_definition();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&answer));
    let mut extra = answer.clone();
    extra["matches"][0]["definitions"][0]["column"] = json!(5);
    assert!(!validator.is_valid(&extra));
    let mut extra = answer;
    extra["extra"] = json!(true);
    assert!(!validator.is_valid(&extra));
}

fn find_definition() -> (Value, Value) {
    let (_, _, answer) = call(
        "python",
        "find_definition",
        json!({"file_path": "app.py", "symbol_name": "scale"}),
    );
    let schema = Catalogue::standard()
        .get("find_definition")
        .unwrap()
        .output_schema();
    (schema, answer)
}

#[test]
fn a_real_answer_matches_its_schema() {
    let (schema, answer) = find_definition();
    matches_schema(&schema, &answer).unwrap();
}

#[test]
fn a_member_of_the_wrong_type_is_drift() {
    let (schema, mut answer) = find_definition();
    answer["matches"][0]["definitions"][0]["line"] = json!("14");
    let problem = matches_schema(&schema, &answer).unwrap_err();
    assert!(
        problem.contains("/matches/0/definitions/0/line"),
        "{problem}"
    );
    let (_, mut answer) = find_definition();
    answer["substring_matches"] = json!("no");
    assert!(matches_schema(&schema, &answer).is_err());
}

#[test]
fn a_missing_required_member_is_drift() {
    let (schema, mut answer) = find_definition();
    answer.as_object_mut().unwrap().remove("matches");
    let problem = matches_schema(&schema, &answer).unwrap_err();
    assert!(problem.contains("matches"), "{problem}");
    let (_, mut answer) = find_definition();
    answer["matches"][0]
        .as_object_mut()
        .unwrap()
        .remove("definitions");
    assert!(matches_schema(&schema, &answer).is_err());
}

#[test]
fn an_undeclared_member_is_drift() {
    let (schema, mut answer) = find_definition();
    answer["matches"][0]["definitions"][0]["column"] = json!(5);
    let problem = matches_schema(&schema, &answer).unwrap_err();
    assert!(
        problem.contains("/matches/0/definitions/0/column"),
        "{problem}"
    );
}

/// Each tool of the catalogue once, with valid arguments: read tools on the shared fixtures,
/// write tools as dry runs or on fresh copies. `Fixture::ok` fails on any answer that does not
/// match the tool's schema; the test fails when a tool is added without a call here.
#[test]
fn every_tool_answers_within_its_schema() {
    let py = shared("python");
    let ts = shared("typescript");
    block_on(async {
        let py_w = Fixture::fresh("python").await;
        let ts_w = Fixture::fresh("typescript").await;
        // Imports out of order: typescript-language-server offers no organizeImports action
        // for a file whose imports are already sorted.
        let messy =
            "import { scale, Circle } from \"./shapes\";\n\nexport const n = scale(1, 2);\n";
        std::fs::write(ts_w.root.join("src/messy.ts"), messy).unwrap();
        ts_w.sync().await;
        let deps =
            Fixture::from_files("deps", &[("package.json", "{\n  \"name\": \"x\"\n}\n")]).await;
        let at = |file: &str, line: u32, character: u32| json!({"file_path": file, "line": line, "character": character});
        let scale = json!({"file_path": "pkg/shapes.py", "symbol_name": "scale"});
        let rename = json!({"file_path": "pkg/shapes.py", "symbol_name": "scale", "new_name": "resize", "dry_run": true});
        let calls: Vec<(&str, &Fixture, Value)> = vec![
            ("health_check", &py, json!({})),
            (
                "analyze_imports",
                &py,
                json!({"file_path": "pkg/shapes.py"}),
            ),
            ("find_dead_code", &py, json!({})),
            (
                "get_document_symbols",
                &py,
                json!({"file_path": "pkg/shapes.py"}),
            ),
            ("get_diagnostics", &py, json!({"file_path": "report.py"})),
            ("get_code_actions", &py, json!({"file_path": "report.py"})),
            ("find_definition", &py, scale.clone()),
            ("find_references", &py, scale),
            ("get_hover", &py, at("app.py", 10, 9)),
            ("get_completions", &py, at("app.py", 6, 18)),
            ("get_signature_help", &py, at("app.py", 10, 15)),
            ("find_type_definition", &py, at("app.py", 5, 5)),
            ("search_workspace_symbols", &ts, json!({"query": "scale"})),
            ("prepare_call_hierarchy", &ts, at("src/shapes.ts", 14, 17)),
            (
                "get_call_hierarchy_incoming_calls",
                &ts,
                at("src/shapes.ts", 14, 17),
            ),
            (
                "get_call_hierarchy_outgoing_calls",
                &ts,
                at("src/app.ts", 3, 17),
            ),
            ("find_implementation", &ts, at("src/shapes.ts", 1, 18)),
            ("rename_symbol", &py, rename.clone()),
            (
                "rename_symbol_strict",
                &py,
                json!({"file_path": "pkg/shapes.py", "line": 4, "character": 8, "new_name": "Disc", "dry_run": true}),
            ),
            (
                "apply_workspace_edit",
                &py,
                json!({"changes": {py.path("app.py"): [edit(0, 0, 0, "# x\n")]}, "dry_run": true}),
            ),
            (
                "format_document",
                &ts_w,
                json!({"file_path": "src/app.ts", "dry_run": true}),
            ),
            (
                "organize_imports",
                &ts_w,
                json!({"file_path": "src/messy.ts", "dry_run": true}),
            ),
            (
                "update_dependencies",
                &deps,
                json!({"file_path": "package.json", "add_dependencies": {"a": "1"}, "dry_run": true}),
            ),
            (
                "batch_execute",
                &py_w,
                json!({"operations": [{"tool": "rename_symbol", "args": rename}], "options": {"dry_run": true}}),
            ),
            (
                "replace_symbol_body",
                &py,
                json!({"file_path": "pkg/shapes.py", "name_path": "Circle/area", "body": "def area(self):\n    return 0", "dry_run": true}),
            ),
            (
                "insert_before_symbol",
                &py,
                json!({"file_path": "pkg/shapes.py", "name_path": "scale", "body": "X = 1", "dry_run": true}),
            ),
            (
                "insert_after_symbol",
                &py_w,
                json!({"file_path": "pkg/shapes.py", "name_path": "scale", "body": "X = 1"}),
            ),
            (
                "safe_delete_symbol",
                &py,
                json!({"file_path": "pkg/shapes.py", "name_path": "scale", "dry_run": true}),
            ),
            (
                "search_for_pattern",
                &py,
                json!({"pattern": "scale", "context_lines": 1}),
            ),
            (
                "find_symbol",
                &py,
                json!({"name_path": "Circle", "depth": 1, "include_body": true}),
            ),
            (
                "preview_edit",
                &py,
                json!({"tool": "insert_after_symbol", "args": {"file_path": "pkg/shapes.py", "name_path": "scale", "body": "Y = undefined_name"}}),
            ),
            ("get_symbols_overview", &py, json!({"file_path": "."})),
            (
                "create_file",
                &py_w,
                json!({"file_path": "extra.py", "content": "X = 1\n"}),
            ),
            ("delete_file", &py_w, json!({"file_path": "extra.py"})),
            (
                "rename_file",
                &py_w,
                json!({"old_path": "pkg/shapes.py", "new_path": "pkg/geometry.py"}),
            ),
            (
                "fix_imports",
                &py_w,
                json!({"file_path": "pkg/geometry.py", "old_path": "pkg/shapes.py"}),
            ),
            (
                "rename_directory",
                &py_w,
                json!({"old_path": "pkg", "new_path": "lib"}),
            ),
            ("restart_server", &py_w, json!({})),
        ];
        let catalogue: BTreeSet<&str> = Catalogue::standard().iter().map(|t| t.name()).collect();
        let called: BTreeSet<&str> = calls.iter().map(|(tool, ..)| *tool).collect();
        assert_eq!(called, catalogue, "call every tool of the catalogue here");
        for (tool, f, args) in calls {
            let args = f.expand(args);
            f.ok(tool, args).await;
        }
    });
}

/// A tool that writes its answer as text on the routing task (`Tool::answer_at_once`) answers
/// what its ordinary call answers, within the same schema.
#[test]
fn an_answer_written_as_text_is_the_ordinary_answer() {
    let py = shared("python");
    let catalogue = Catalogue::standard();
    let tool = catalogue.get("health_check").unwrap();
    let written = py
        .ctx
        .run_at_once(tool.as_ref(), &json!({"include_details": true}))
        .expect("health_check answers at once")
        .unwrap();
    let mut structured: Value = serde_json::from_str(written.structured.get()).unwrap();
    matches_schema(&tool.output_schema(), &structured).unwrap();
    let mut ordinary = block_on(py.ok("health_check", json!({"include_details": true})));
    for answer in [&mut structured, &mut ordinary.structured] {
        answer["uptime_secs"] = json!(0);
        for server in answer["servers"].as_array_mut().unwrap() {
            server["uptime_secs"] = json!(0);
        }
    }
    assert_eq!(structured, ordinary.structured);
    assert!(written.text.starts_with("CodeFlow "), "{}", written.text);
    assert!(
        py.ctx
            .run_at_once(tool.as_ref(), &json!({"bogus": 1}))
            .expect("answered at once")
            .is_err(),
        "arguments are checked as in the ordinary call"
    );
    let find = catalogue.get("find_definition").unwrap();
    assert!(
        py.ctx.run_at_once(find.as_ref(), &json!({})).is_none(),
        "a tool that waits never answers at once"
    );
}
