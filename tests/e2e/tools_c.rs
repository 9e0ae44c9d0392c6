//! The read-only LSP tools end to end on the C fixture (clangd).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use codeflow_e2e::tools::{Project, names, places};
use serde_json::json;

#[tokio::test]
async fn c_tools_through_clangd() {
    let p = Project::start("c", "tools-c").await;
    let main_c = p.path("main.c");
    let shapes_c = p.path("shapes.c");
    let shapes_h = p.path("shapes.h");
    let broken = p.path("broken.c");

    let (_, s) = p
        .ok(
            "find_definition",
            json!({"file_path": "main.c", "symbol_name": "report"}),
        )
        .await;
    assert_eq!(
        places(&s["matches"][0]["definitions"]),
        vec![(main_c.clone(), 3, 15)]
    );

    // Every file is opened first, so clangd without a background index sees every use.
    let (text, s) = p
        .ok(
            "find_references",
            json!({"file_path": "shapes.c", "symbol_name": "scale"}),
        )
        .await;
    let refs = places(&s["references"]);
    for expected in [
        (shapes_c.clone(), 7, 8),
        (main_c.clone(), 4, 12),
        (main_c.clone(), 10, 18),
    ] {
        assert!(refs.contains(&expected), "{expected:?}: {text}");
    }

    let (_, s) = p
        .ok("get_document_symbols", json!({"file_path": "main.c"}))
        .await;
    assert_eq!(names(&s["symbols"], "name"), ["report", "main"]);
    assert_eq!(s["symbols"][0]["detail"], "double (double)");

    let (text, s) = p
        .ok(
            "get_hover",
            json!({"file_path": "main.c", "line": 4, "character": 12}),
        )
        .await;
    assert!(
        text.contains("double scale(double value, double factor)"),
        "{text}"
    );
    assert_eq!(
        s["range"],
        json!({"line": 4, "character": 12, "end_line": 4, "end_character": 17})
    );
    let (_, s) = p
        .ok(
            "get_completions",
            json!({"file_path": "main.c", "line": 9, "character": 17}),
        )
        .await;
    assert!(
        names(&s["items"], "label")
            .iter()
            .any(|l| l.starts_with("area(")),
        "{s}"
    );
    let (_, s) = p
        .ok(
            "get_signature_help",
            json!({"file_path": "main.c", "line": 4, "character": 18}),
        )
        .await;
    assert_eq!(
        s["signatures"][0]["label"],
        "scale(double value, double factor) -> double"
    );

    let (text, s) = p
        .ok("get_diagnostics", json!({"file_path": "broken.c"}))
        .await;
    assert_eq!(s["errors"], 1);
    assert!(
        text.contains(&format!(
            "{broken}:4:12  error: Use of undeclared identifier 'missing_value'"
        )),
        "{text}"
    );
    let (_, s) = p
        .ok("get_code_actions", json!({"file_path": "broken.c"}))
        .await;
    assert!(s["actions"].is_array());

    let (_, s) = p
        .ok("search_workspace_symbols", json!({"query": "scale"}))
        .await;
    assert_eq!(places(&s["symbols"])[0], (shapes_c.clone(), 7, 8));

    let (_, s) = p
        .ok(
            "get_call_hierarchy_incoming_calls",
            json!({"file_path": "shapes.c", "line": 7, "character": 8}),
        )
        .await;
    let mut callers: Vec<String> = s["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["from"]["name"].as_str().unwrap().to_owned())
        .collect();
    callers.sort();
    assert_eq!(callers, ["main", "report"]);
    // This clangd has no outgoing calls: a clear error, not an empty list.
    let e = p
        .err(
            "get_call_hierarchy_outgoing_calls",
            json!({"file_path": "main.c", "line": 7, "character": 5}),
        )
        .await;
    assert!(
        e.contains("clangd") && e.contains("callHierarchy/outgoingCalls"),
        "{e}"
    );

    let (_, s) = p
        .ok(
            "find_type_definition",
            json!({"file_path": "main.c", "line": 9, "character": 22}),
        )
        .await;
    assert_eq!(places(&s["locations"]), vec![(shapes_h.clone(), 4, 8)]);

    let (text, s) = p.ok("find_dead_code", json!({})).await;
    let dead = names(&s["unused"], "name");
    assert!(dead.contains(&"unused_helper".to_owned()), "{text}");
    assert!(
        !dead
            .iter()
            .any(|d| d == "scale" || d == "area" || d == "report"),
        "{text}"
    );
    let (_, s) = p
        .ok("analyze_imports", json!({"file_path": "shapes.h"}))
        .await;
    assert_eq!(
        names(&s["importers"], "path"),
        [broken.clone(), main_c.clone(), shapes_c.clone()]
    );
}
