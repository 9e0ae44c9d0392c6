//! The read-only tools on the Python fixture, in-process against a real pylsp: one short check
//! per behaviour (see `common` for how a check runs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Fixture, block_on, call, check, check_err, check_err_all, check_text, names, places};
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
    let args =
        json!({"file_path": "pkg/shapes.py", "symbol_name": "unused", "symbol_kind": "gizmo"});
    check(
        "python",
        "find_definition",
        args.clone(),
        json!({"substring_matches": true, "matches": [{"name": "unused_helper", "definitions": [
            {"path": "$ROOT/pkg/shapes.py", "line": 19, "character": 5}
        ]}]}),
    );
    check_text(
        "python",
        "find_definition",
        args,
        &["Warning: unknown symbol_kind `gizmo`"],
    );
}

#[test]
fn a_missing_symbol_names_the_file_symbols() {
    check_err_all(
        "python",
        "find_definition",
        json!({"file_path": "pkg/shapes.py", "symbol_name": "nope"}),
        &["no symbol named `nope`", "scale"],
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
    let (f, text, s) = call(
        "python",
        "find_references",
        json!({"file_path": "pkg/shapes.py", "symbol_name": "scale"}),
    );
    let refs = places(&s["references"]);
    for (rel, line, character) in [
        ("pkg/shapes.py", 14, 5),
        ("app.py", 7, 12),
        ("app.py", 10, 9),
        ("report.py", 7, 12),
    ] {
        assert!(
            refs.contains(&(f.path(rel), line, character)),
            "{rel}:{line}:{character} missing from {text}"
        );
    }
    assert_eq!(s["truncated"], false);
    assert_eq!(refs.len(), 6, "{text}");
}

#[test]
fn references_are_truncated_with_the_total() {
    check(
        "python",
        "find_references",
        json!({"file_path": "pkg/shapes.py", "symbol_name": "scale", "max_results": 2}),
        json!({"truncated": true, "total": 6, "references": [{}, {}]}),
    );
    check_text(
        "python",
        "find_references",
        json!({"file_path": "pkg/shapes.py", "symbol_name": "scale", "max_results": 2}),
        &["Truncated: showing the first 2 of 6"],
    );
}

#[test]
fn document_symbols_give_kinds_containers_and_positions() {
    let (_, _, s) = call(
        "python",
        "get_document_symbols",
        json!({"file_path": "pkg/shapes.py"}),
    );
    let symbols = s["symbols"].as_array().unwrap();
    let circle = symbols.iter().find(|s| s["name"] == "Circle").unwrap();
    common::contains(
        circle,
        &json!({"kind": "class", "line": 4, "character": 7}),
        "Circle",
    )
    .unwrap();
    let area = symbols.iter().find(|s| s["name"] == "area").unwrap();
    common::contains(
        area,
        &json!({"kind": "method", "container": "Circle", "line": 10}),
        "area",
    )
    .unwrap();
    check_text(
        "python",
        "get_document_symbols",
        json!({"file_path": "pkg/shapes.py"}),
        &["function scale  $ROOT/pkg/shapes.py:14:5"],
    );
}

#[test]
fn hover_shows_the_signature_and_docstring() {
    let args = json!({"file_path": "app.py", "line": 10, "character": 9});
    check("python", "get_hover", args.clone(), json!({"found": true}));
    check_text(
        "python",
        "get_hover",
        args,
        &["scale(value, factor)", "Multiply value by factor."],
    );
}

/// Free text a language server writes can name the mirror (here a docstring pylsp shows in a
/// hover and in signature help): it reaches the caller with the client's root in its place
/// (`Fixture::call` also fails on any answer that names the server's data directory).
#[test]
fn a_mirror_path_in_server_text_reaches_the_caller_as_a_client_path() {
    block_on(async {
        let f = Fixture::fresh("python").await;
        let source = format!(
            "def where(n):\n    \"\"\"Kept in {}/notes.py.\"\"\"\n    return n\n\n\nwhere(1)\n",
            f.mirror_root().display()
        );
        std::fs::write(f.root.join("where.py"), source).unwrap();
        f.sync().await;
        let client = format!("Kept in {}/notes.py", f.root.display());
        let hover = f
            .ok(
                "get_hover",
                json!({"file_path": "where.py", "line": 6, "character": 2}),
            )
            .await;
        let contents = hover.structured["contents"].as_str().unwrap();
        assert!(contents.contains(&client), "{contents}");
        assert!(hover.text.contains(&client), "{}", hover.text);
        let help = f
            .ok(
                "get_signature_help",
                json!({"file_path": "where.py", "line": 6, "character": 7}),
            )
            .await;
        let doc = help.structured["signatures"][0]["documentation"]
            .as_str()
            .unwrap();
        assert!(doc.contains(&client), "{doc}");
    });
}

#[test]
fn signature_help_names_the_parameters() {
    check(
        "python",
        "get_signature_help",
        json!({"file_path": "app.py", "line": 10, "character": 15}),
        json!({"active_parameter": 0, "signatures": [{"label": "scale(value, factor)", "parameters": [
            {"label": "value"}, {"label": "factor"}
        ]}]}),
    );
}

#[test]
fn completions_after_a_dot_list_the_members() {
    let (_, text, s) = call(
        "python",
        "get_completions",
        json!({"file_path": "app.py", "line": 6, "character": 18}),
    );
    let labels = names(&s["items"], "label");
    assert!(
        labels.iter().any(|l| l.starts_with("area")) && labels.contains(&"radius".to_owned()),
        "{text}"
    );
    assert_eq!(s["truncated"], false);
}

#[test]
fn completions_are_truncated() {
    let args = json!({"file_path": "app.py", "line": 6, "character": 18, "max_results": 3});
    check(
        "python",
        "get_completions",
        args.clone(),
        json!({"truncated": true, "items": [{}, {}, {}]}),
    );
    check_text(
        "python",
        "get_completions",
        args,
        &["Truncated: showing the first 3 of"],
    );
}

#[test]
fn type_definition_of_a_variable_is_its_class() {
    check(
        "python",
        "find_type_definition",
        json!({"file_path": "app.py", "line": 5, "character": 5}),
        json!({"locations": [{"path": "$ROOT/pkg/shapes.py", "line": 4, "character": 7}]}),
    );
}

#[test]
fn diagnostics_name_an_unused_import() {
    check(
        "python",
        "get_diagnostics",
        json!({"file_path": "report.py"}),
        json!({"source": "push", "fresh": true, "diagnostics": [
            {"source": "pyflakes", "line": 1, "character": 1, "message": "'os' imported but unused"}
        ]}),
    );
    check(
        "python",
        "get_diagnostics",
        json!({"file_path": "app.py"}),
        json!({"source": "push", "fresh": true, "diagnostics": []}),
    );
}

/// Reproduction 4 of issue 10: a syntax error is diagnosed (pylsp's pyflakes plugin, which
/// scripts/install-language-servers.sh installs).
#[test]
fn a_syntax_error_is_diagnosed() {
    common::block_on(async {
        let f = common::Fixture::from_files(
            "py-syntax",
            &[("broken.py", "def broken(:\n    return 1\n")],
        )
        .await;
        let out = f
            .ok("get_diagnostics", json!({"file_path": "broken.py"}))
            .await;
        assert_eq!(out.structured["errors"], 1, "{}", out.text);
        let d = &out.structured["diagnostics"][0];
        assert_eq!(
            (d["severity"].as_str(), d["line"].as_u64()),
            (Some("error"), Some(1)),
            "{}",
            out.text
        );
    });
}

#[test]
fn no_code_actions_is_said() {
    let (_, text, s) = call(
        "python",
        "get_code_actions",
        json!({"file_path": "report.py"}),
    );
    assert_eq!(s["actions"], json!([]), "{text}");
    assert!(text.starts_with("No code actions"), "{text}");
}

#[test]
fn call_hierarchy_implementations_and_workspace_symbols_come_from_basedpyright() {
    // pylsp answers none of these; the default table asks basedpyright for them.
    check(
        "python",
        "search_workspace_symbols",
        json!({"query": "scale"}),
        json!({"symbols": [{"name": "scale"}]}),
    );
    let (_, text, s) = call(
        "python",
        "get_call_hierarchy_incoming_calls",
        json!({"file_path": "pkg/shapes.py", "line": 14, "character": 5}),
    );
    let callers: Vec<String> = s["calls"]
        .as_array()
        .unwrap_or_else(|| panic!("no calls: {s:#}\n{text}"))
        .iter()
        .map(|c| c["from"]["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(callers.iter().any(|n| n == "main"), "{callers:?}\n{text}");
}

#[test]
fn what_pylsp_cannot_do_is_an_error_naming_the_capability() {
    // Without basedpyright, pylsp alone is asked, and says what it lacks.
    let mut pool = codeflow_lsp_pool::PoolConfig::default();
    let mut off = codeflow_lsp_pool::ServerConfig::new("basedpyright-langserver", &["py"]);
    off.enabled = false;
    pool.servers.insert("basedpyright".to_owned(), off);
    common::block_on(async {
        let f = common::Fixture::from_dir_with(
            "python-pylsp-only",
            &codeflow_e2e::fs::fixture_dir("python"),
            pool,
        )
        .await;
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
                "find_implementation",
                json!({"file_path": "app.py", "line": 5, "character": 14}),
                "implementationProvider",
            ),
        ] {
            let text = f.err(tool, args.clone()).await;
            for part in ["pylsp", capability] {
                assert!(text.contains(part), "{tool} {args}: {text}");
            }
        }
    });
}

#[test]
fn dead_code_lists_the_unused_and_not_the_used() {
    let (_, text, s) = call("python", "find_dead_code", json!({}));
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
}

#[test]
fn importers_of_a_module_in_order() {
    check(
        "python",
        "analyze_imports",
        json!({"file_path": "pkg/shapes.py"}),
        json!({"importers": [{"path": "$ROOT/app.py", "line": 1}, {"path": "$ROOT/report.py", "line": 3}]}),
    );
}

#[test]
fn imports_of_a_file_tell_external_from_local() {
    let (_, _, s) = call(
        "python",
        "analyze_imports",
        json!({"file_path": "report.py", "include_importers": false}),
    );
    let f = common::shared("python");
    assert_eq!(
        s["imports"],
        json!([
            {"specifier": "os", "line": 1, "path": null, "external": true},
            {"specifier": "pkg.shapes", "line": 3, "path": f.path("pkg/shapes.py"), "external": false}
        ])
    );
}

/// Issue 10, reproduction 6: `find_dead_code` on Python reports neither a name other modules
/// use (through `module.name`, which jedi does not count) nor `from __future__ import
/// annotations`; a function nothing names is still reported.
#[test]
fn dead_code_trusts_the_text_over_missed_uses_and_skips_imports() {
    common::block_on(async {
        let user = |n: &str| {
            format!("from pkg import util\n\n\ndef use_{n}():\n    return util.helper({n})\n")
        };
        let (a, b, c) = (user("1"), user("2"), user("3"));
        let f = common::Fixture::from_files(
            "py-dead",
            &[
                ("pkg/__init__.py", ""),
                (
                    "pkg/util.py",
                    "from __future__ import annotations\n\n\ndef helper(x: int) -> int:\n    return x\n\n\ndef lonely() -> int:\n    return 0\n",
                ),
                ("a.py", &a),
                ("b.py", &b),
                ("c.py", &c),
            ],
        )
        .await;
        let out = f.ok("find_dead_code", json!({})).await;
        let dead = names(&out.structured["unused"], "name");
        assert!(dead.contains(&"lonely".to_owned()), "{}", out.text);
        for used in ["helper", "annotations"] {
            assert!(!dead.contains(&used.to_owned()), "{used}: {}", out.text);
        }
    });
}

/// Issue 10, reproduction 6: in a package that has its own `typing.py` (flask does),
/// `import typing as t` is the standard library's, not the sibling file.
#[test]
fn analyze_imports_keeps_the_standard_library_apart_from_a_same_named_module() {
    common::block_on(async {
        let f = common::Fixture::from_files(
            "py-typing",
            &[
                ("src/flask/__init__.py", ""),
                ("src/flask/typing.py", "T = int\n"),
                (
                    "src/flask/app.py",
                    "import typing as t\n\nfrom . import typing as ft\n",
                ),
            ],
        )
        .await;
        let out = f
            .ok(
                "analyze_imports",
                json!({"file_path": "src/flask/app.py", "include_importers": false}),
            )
            .await;
        let imports = &out.structured["imports"];
        assert_eq!(imports[0]["specifier"], "typing", "{}", out.text);
        assert_eq!(imports[0]["path"], json!(null), "{}", out.text);
        assert_eq!(imports[0]["external"], true, "{}", out.text);
        assert_eq!(
            imports[1]["path"],
            f.path("src/flask/typing.py"),
            "{}",
            out.text
        );
    });
}

/// Issue 10: a references answer the project's text contradicts is marked partial. On flask
/// 3.0.3, pylsp (jedi) reports only the definition of `get_load_dotenv`, while cli.py and
/// app.py import and call it: the answer says partial and names them; on the fixture, where
/// every file is reported, it is complete.
#[test]
fn references_the_text_contradicts_are_marked_partial() {
    let (_, text, s) = call(
        "python",
        "find_references",
        json!({"file_path": "pkg/shapes.py", "symbol_name": "scale"}),
    );
    assert_eq!(s["partial"], false, "{text}");
    let flask = codeflow_e2e::registry::pypi_sdist("flask", "3.0.3");
    common::block_on(async {
        let f = common::Fixture::from_dir("flask-refs", &flask).await;
        let out = f
            .ok(
                "find_references",
                json!({"file_path": "src/flask/helpers.py", "symbol_name": "get_load_dotenv"}),
            )
            .await;
        let found: Vec<String> = places(&out.structured["references"])
            .into_iter()
            .map(|(p, _, _)| p)
            .collect();
        let reported_all = [f.path("src/flask/app.py"), f.path("src/flask/cli.py")]
            .iter()
            .all(|p| found.contains(p));
        if !reported_all {
            assert_eq!(out.structured["partial"], true, "{}", out.text);
            let reason = out.structured["partial_reason"].as_str().unwrap();
            assert!(
                reason.contains("src/flask/app.py") && reason.contains("src/flask/cli.py"),
                "{reason}"
            );
            assert!(out.text.contains("Partial: "), "{}", out.text);
        }
    });
}

#[test]
fn a_server_that_cannot_start_is_reported_in_the_clients_paths() {
    // The only Python server writes where it runs (the mirror) to stderr and exits: the error
    // the agent gets says so in its own paths, never the server's mirror (the fixture's `err`
    // fails on a mirror path in any error).
    let mut pool = codeflow_lsp_pool::PoolConfig::default();
    for id in ["pylsp", "basedpyright"] {
        if let Some(server) = pool.servers.get_mut(id) {
            server.enabled = false;
        }
    }
    let mut broken = codeflow_lsp_pool::ServerConfig::new("sh", &["py"]);
    broken.args = vec![
        "-c".to_owned(),
        "echo \"no index in $PWD/app.py\" >&2; exit 3".to_owned(),
    ];
    pool.servers.insert("broken".to_owned(), broken);
    common::block_on(async {
        let f = common::Fixture::from_dir_with(
            "python-broken-server",
            &codeflow_e2e::fs::fixture_dir("python"),
            pool,
        )
        .await;
        let text = f
            .err(
                "get_hover",
                json!({"file_path": "app.py", "line": 4, "character": 5}),
            )
            .await;
        assert!(text.contains("broken"), "{text}");
        let restarted = f.call("restart_server", json!({})).await;
        if let Err(e) = restarted {
            assert!(!e.to_text().is_empty());
        }
    });
}

/// pylsp lists the names a file imports among its symbols by default; they are not the file's
/// own, and they crowded real outlines past the tools' limit (the standard library's
/// `http/client.py`). The outline now has the file's definitions only, and a name the file
/// only imports is still found by name.
#[test]
fn the_outline_leaves_out_imported_names() {
    let (_, text, structured) = call(
        "python",
        "get_document_symbols",
        json!({"file_path": "app.py"}),
    );
    let listed: Vec<&str> = structured["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(
        listed.contains(&"main") && listed.contains(&"total"),
        "{text}"
    );
    assert!(
        !listed.contains(&"Circle") && !listed.contains(&"scale"),
        "imported names are not the file's symbols: {text}"
    );
}
