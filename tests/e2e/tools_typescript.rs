//! The read-only LSP tools end to end on the TypeScript fixture (typescript-language-server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use codeflow_e2e::tools::{Project, names, places};
use serde_json::json;

#[tokio::test]
async fn typescript_tools_through_tsserver() {
    let p = Project::start("typescript", "tools-ts").await;
    let shapes = p.path("src/shapes.ts");
    let app = p.path("src/app.ts");
    let broken = p.path("src/broken.ts");

    let (text, s) = p
        .ok(
            "find_definition",
            json!({"file_path": "src/app.ts", "symbol_name": "describe"}),
        )
        .await;
    assert_eq!(
        places(&s["matches"][0]["definitions"]),
        vec![(app.clone(), 3, 17)]
    );
    assert!(
        text.contains(&format!(
            "{app}:3:17  export function describe(shape: Shape): string {{"
        )),
        "{text}"
    );

    let (text, s) = p
        .ok(
            "find_references",
            json!({"file_path": "src/shapes.ts", "symbol_name": "scale"}),
        )
        .await;
    assert_eq!(
        places(&s["references"]),
        vec![
            (shapes.clone(), 14, 17),
            (app.clone(), 1, 25),
            (app.clone(), 4, 29),
            (broken.clone(), 1, 10),
            (broken.clone(), 4, 24),
        ],
        "{text}"
    );
    let (_, s) = p.ok("find_references", json!({"file_path": "src/shapes.ts", "symbol_name": "scale", "include_declaration": false, "max_results": 2})).await;
    assert_eq!(
        (s["total"].as_u64(), s["truncated"].as_bool()),
        (Some(4), Some(true))
    );

    let (_, s) = p
        .ok(
            "get_document_symbols",
            json!({"file_path": "src/shapes.ts"}),
        )
        .await;
    let rows: Vec<(String, String, u64)> = s["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap().to_owned(),
                x["kind"].as_str().unwrap().to_owned(),
                x["line"].as_u64().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("Circle", "class", 6),
        ("Shape", "interface", 1),
        ("scale", "function", 14),
        ("area", "method", 9),
    ] {
        assert!(
            rows.contains(&(expected.0.into(), expected.1.into(), expected.2)),
            "{expected:?} in {rows:?}"
        );
    }

    let (text, _) = p
        .ok(
            "get_hover",
            json!({"file_path": "src/app.ts", "line": 4, "character": 30}),
        )
        .await;
    assert!(
        text.contains("scale(value: number, factor: number): number"),
        "{text}"
    );
    let (_, s) = p.ok("get_completions", json!({"file_path": "src/app.ts", "line": 4, "character": 16, "trigger_character": "."})).await;
    assert_eq!(names(&s["items"], "label"), ["area", "name"]);
    let (_, s) = p
        .ok(
            "get_signature_help",
            json!({"file_path": "src/app.ts", "line": 4, "character": 35}),
        )
        .await;
    assert_eq!(
        s["signatures"][0]["label"],
        "scale(value: number, factor: number): number"
    );

    let (text, s) = p
        .ok("get_diagnostics", json!({"file_path": "src/broken.ts"}))
        .await;
    assert_eq!(s["errors"], 1);
    assert_eq!(s["diagnostics"][0]["code"], "2322");
    assert_eq!(
        (
            s["diagnostics"][0]["line"].as_u64(),
            s["diagnostics"][0]["character"].as_u64()
        ),
        (Some(3), Some(14))
    );
    assert!(
        text.contains(&format!(
            "{broken}:3:14  error: Type 'string' is not assignable to type 'number'."
        )),
        "{text}"
    );
    let (_, s) = p.ok("get_code_actions", json!({"file_path": "src/broken.ts", "range": {"start": {"line": 2, "character": 13}, "end": {"line": 2, "character": 18}}})).await;
    assert!(!s["actions"].as_array().unwrap().is_empty(), "{s}");
    assert!(
        s["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["title"].is_string())
    );

    let (_, s) = p
        .ok("search_workspace_symbols", json!({"query": "scale"}))
        .await;
    assert_eq!(s["symbols"][0]["name"], "scale");
    assert_eq!(s["symbols"][0]["path"], shapes.as_str());

    let (_, s) = p
        .ok(
            "prepare_call_hierarchy",
            json!({"file_path": "src/shapes.ts", "line": 14, "character": 17}),
        )
        .await;
    let item = s["items"][0]["item"].clone();
    assert_eq!(item["name"], "scale");
    let (_, s) = p
        .ok("get_call_hierarchy_incoming_calls", json!({"item": item}))
        .await;
    let callers: Vec<String> = s["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["from"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(callers.contains(&"describe".to_owned()), "{s}");
    assert_eq!(
        places(&s["calls"][0]["call_sites"]),
        vec![(app.clone(), 4, 29)]
    );
    let (_, s) = p
        .ok(
            "get_call_hierarchy_outgoing_calls",
            json!({"file_path": "src/app.ts", "line": 3, "character": 17}),
        )
        .await;
    let callees: Vec<String> = s["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["to"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(callees, ["scale", "area"]);

    let (_, s) = p
        .ok(
            "find_implementation",
            json!({"file_path": "src/shapes.ts", "line": 1, "character": 18}),
        )
        .await;
    assert_eq!(places(&s["locations"]), vec![(shapes.clone(), 6, 14)]);
    let (_, s) = p
        .ok(
            "find_type_definition",
            json!({"file_path": "src/app.ts", "line": 7, "character": 7}),
        )
        .await;
    assert_eq!(places(&s["locations"]), vec![(shapes.clone(), 6, 14)]);

    let (text, s) = p.ok("find_dead_code", json!({})).await;
    let dead = names(&s["unused"], "name");
    assert!(dead.contains(&"unusedHelper".to_owned()), "{text}");
    assert!(
        !dead
            .iter()
            .any(|d| d == "scale" || d == "Circle" || d == "describe"),
        "{text}"
    );
    let (_, s) = p
        .ok("analyze_imports", json!({"file_path": "src/app.ts"}))
        .await;
    assert_eq!(s["imports"][0]["path"], shapes.as_str());
    assert_eq!(s["importers"], json!([]));
}
