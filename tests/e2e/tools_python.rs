//! The read-only LSP tools end to end on the Python fixture (pylsp), through the real relay
//! and server: answers name the client's paths with 1-based positions and line text, carry
//! structuredContent, and capabilities pylsp lacks are clear errors. Also: truncation, symbol
//! lookup rules, and the legacy WebSocket form reaching the same tool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use codeflow_e2e::Ws;
use codeflow_e2e::tools::{Project, names, places};
use serde_json::json;

#[tokio::test]
async fn python_tools_through_pylsp() {
    let p = Project::start("python", "tools-py").await;
    let shapes = p.path("pkg/shapes.py");
    let app = p.path("app.py");
    let report = p.path("report.py");

    // find_definition: an imported name resolves to the package's file (absolute path in).
    let (text, s) = p
        .ok(
            "find_definition",
            json!({"file_path": app, "symbol_name": "scale"}),
        )
        .await;
    let defs = places(&s["matches"][0]["definitions"]);
    assert!(defs.contains(&(shapes.clone(), 14, 5)), "{text}");
    assert!(
        text.contains(&format!("{shapes}:14:5  def scale(value, factor):")),
        "{text}"
    );
    assert_eq!(s["substring_matches"], false);

    // A relative path, a top-level function of the file itself.
    let (_, s) = p
        .ok(
            "find_definition",
            json!({"file_path": "app.py", "symbol_name": "main", "symbol_kind": "function"}),
        )
        .await;
    assert_eq!(
        places(&s["matches"][0]["definitions"]),
        vec![(app.clone(), 4, 5)]
    );

    // Unknown kind: a warning, all kinds searched. Substring when nothing matches exactly.
    let (text, s) = p
        .ok(
            "find_definition",
            json!({"file_path": "pkg/shapes.py", "symbol_name": "unused", "symbol_kind": "gizmo"}),
        )
        .await;
    assert!(
        text.contains("Warning: unknown symbol_kind `gizmo`"),
        "{text}"
    );
    assert_eq!(s["substring_matches"], true);
    assert_eq!(s["matches"][0]["name"], "unused_helper");
    assert_eq!(
        places(&s["matches"][0]["definitions"]),
        vec![(shapes.clone(), 19, 5)]
    );
    let missing = p
        .err(
            "find_definition",
            json!({"file_path": "pkg/shapes.py", "symbol_name": "nope"}),
        )
        .await;
    assert!(
        missing.contains("no symbol named `nope`") && missing.contains("scale"),
        "{missing}"
    );
    let bad = p
        .err(
            "get_hover",
            json!({"file_path": "../etc/passwd", "line": 1, "character": 1}),
        )
        .await;
    assert!(bad.contains("invalid arguments"), "{bad}");

    // find_references: the function used in two files, and truncation.
    let (text, s) = p
        .ok(
            "find_references",
            json!({"file_path": "pkg/shapes.py", "symbol_name": "scale"}),
        )
        .await;
    let refs = places(&s["references"]);
    for expected in [
        (shapes.clone(), 14, 5),
        (app.clone(), 7, 12),
        (app.clone(), 10, 9),
        (report.clone(), 7, 12),
    ] {
        assert!(refs.contains(&expected), "{expected:?} missing from {text}");
    }
    assert_eq!(s["truncated"], false);
    let (text, s) = p
        .ok(
            "find_references",
            json!({"file_path": "pkg/shapes.py", "symbol_name": "scale", "max_results": 2}),
        )
        .await;
    assert_eq!(s["references"].as_array().unwrap().len(), 2);
    assert_eq!(s["truncated"], true);
    assert_eq!(s["total"].as_u64(), Some(refs.len() as u64));
    assert!(
        text.contains(&format!("Truncated: showing the first 2 of {}", refs.len())),
        "{text}"
    );

    // get_document_symbols: the outline with kinds and name positions.
    let (text, s) = p
        .ok(
            "get_document_symbols",
            json!({"file_path": "pkg/shapes.py"}),
        )
        .await;
    let syms = s["symbols"].as_array().unwrap();
    let circle = syms.iter().find(|x| x["name"] == "Circle").unwrap();
    assert_eq!(
        (
            circle["kind"].as_str(),
            circle["line"].as_u64(),
            circle["character"].as_u64()
        ),
        (Some("class"), Some(4), Some(7))
    );
    let area = syms.iter().find(|x| x["name"] == "area").unwrap();
    assert_eq!(
        (
            area["kind"].as_str(),
            area["container"].as_str(),
            area["line"].as_u64()
        ),
        (Some("method"), Some("Circle"), Some(10))
    );
    assert!(
        text.contains(&format!("function scale  {shapes}:14:5")),
        "{text}"
    );

    // get_hover, get_signature_help, get_completions.
    let (text, s) = p
        .ok(
            "get_hover",
            json!({"file_path": "app.py", "line": 10, "character": 9}),
        )
        .await;
    assert!(
        text.contains("scale(value, factor)") && text.contains("Multiply value by factor."),
        "{text}"
    );
    assert_eq!(s["found"], true);
    let (text, s) = p
        .ok(
            "get_signature_help",
            json!({"file_path": "app.py", "line": 10, "character": 15}),
        )
        .await;
    assert_eq!(
        s["signatures"][0]["label"], "scale(value, factor)",
        "{text}"
    );
    assert_eq!(
        names(&s["signatures"][0]["parameters"], "label"),
        ["value", "factor"]
    );
    assert_eq!(s["active_parameter"], 0);
    let (text, s) = p
        .ok(
            "get_completions",
            json!({"file_path": "app.py", "line": 6, "character": 18}),
        )
        .await;
    let labels = names(&s["items"], "label");
    assert!(
        labels.iter().any(|l| l.starts_with("area")) && labels.contains(&"radius".to_owned()),
        "{text}"
    );
    assert_eq!(s["truncated"], false);
    let (text, s) = p
        .ok(
            "get_completions",
            json!({"file_path": "app.py", "line": 6, "character": 18, "max_results": 3}),
        )
        .await;
    assert_eq!(s["items"].as_array().unwrap().len(), 3);
    assert_eq!(s["truncated"], true);
    assert!(text.contains("Truncated: showing the first 3 of"), "{text}");

    // find_type_definition: the class of a variable.
    let (_, s) = p
        .ok(
            "find_type_definition",
            json!({"file_path": "app.py", "line": 5, "character": 5}),
        )
        .await;
    assert_eq!(places(&s["locations"]), vec![(shapes.clone(), 4, 7)]);

    // Diagnostics: pylsp here has no linter plugins, so a clean (pushed, fresh) empty set.
    let (text, s) = p
        .ok("get_diagnostics", json!({"file_path": "report.py"}))
        .await;
    assert_eq!(
        (s["source"].as_str(), s["fresh"].as_bool()),
        (Some("push"), Some(true)),
        "{text}"
    );
    assert_eq!(s["diagnostics"], json!([]));
    let (text, s) = p
        .ok("get_code_actions", json!({"file_path": "report.py"}))
        .await;
    assert_eq!(s["actions"], json!([]), "{text}");
    assert!(text.starts_with("No code actions"));

    // What pylsp cannot do is an error naming it and the capability.
    for (tool, args, capability) in [
        (
            "search_workspace_symbols",
            json!({"query": "scale"}),
            "workspaceSymbolProvider",
        ),
        (
            "prepare_call_hierarchy",
            json!({"file_path": "app.py", "line": 4, "character": 5}),
            "callHierarchyProvider",
        ),
        (
            "get_call_hierarchy_incoming_calls",
            json!({"file_path": "app.py", "line": 4, "character": 5}),
            "callHierarchyProvider",
        ),
        (
            "get_call_hierarchy_outgoing_calls",
            json!({"file_path": "app.py", "line": 4, "character": 5}),
            "callHierarchyProvider",
        ),
        (
            "find_implementation",
            json!({"file_path": "app.py", "line": 5, "character": 14}),
            "implementationProvider",
        ),
    ] {
        let e = p.err(tool, args).await;
        assert!(e.contains("pylsp") && e.contains(capability), "{tool}: {e}");
    }

    // find_dead_code and analyze_imports.
    let (text, s) = p.ok("find_dead_code", json!({})).await;
    let dead = names(&s["unused"], "name");
    for name in ["unused_helper", "report"] {
        assert!(
            dead.contains(&name.to_owned()),
            "{name} not reported: {text}"
        );
    }
    for name in ["scale", "Circle"] {
        assert!(!dead.contains(&name.to_owned()), "{name} is used: {text}");
    }
    let (text, s) = p
        .ok("analyze_imports", json!({"file_path": "pkg/shapes.py"}))
        .await;
    let importers: Vec<(String, u64)> = s["importers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["path"].as_str().unwrap().to_owned(),
                i["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        importers,
        vec![(app.clone(), 1), (report.clone(), 3)],
        "{text}"
    );
    let (_, s) = p
        .ok(
            "analyze_imports",
            json!({"file_path": "report.py", "include_importers": false}),
        )
        .await;
    assert_eq!(
        s["imports"],
        json!([
            {"specifier": "os", "line": 1, "path": null, "external": true},
            {"specifier": "pkg.shapes", "line": 3, "path": shapes, "external": false}
        ])
    );

    // The legacy form (tool name as the JSON-RPC method, no `jsonrpc`) reaches the same tool.
    let mut ws = Ws::connect(&p.server.url()).await;
    ws.send_json(json!({"method": "initialize", "project": "tools-py", "projectRoot": p.root.to_string_lossy()})).await;
    let init = ws.json().await;
    assert!(init["result"]["sessionId"].is_string(), "{init}");
    ws.send_json(json!({"id": 7, "method": "find_definition", "params": {"file_path": "app.py", "symbol_name": "scale"}})).await;
    let reply = ws.json().await;
    assert_eq!(reply["jsonrpc"], "2.0");
    assert_eq!(reply["id"], 7);
    let defs = places(&reply["result"]["structuredContent"]["matches"][0]["definitions"]);
    assert!(defs.contains(&(shapes.clone(), 14, 5)), "{reply}");
    ws.close().await;
}
