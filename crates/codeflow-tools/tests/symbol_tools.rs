//! The symbol-level tools (by name path), the pattern search, and what every write tool now
//! returns — the diagnostics of the files it touched — in-process against real language
//! servers (pylsp, typescript-language-server). Writing tests get a fresh copy and assert what
//! the tool answered AND what the client's disk holds afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Fixture, block_on, call, check, check_err_all, edit};
use serde_json::{Value, json};

const PY: &str = "python";
const SHAPES: &str = "pkg/shapes.py";

/// The Python fixture's `pkg/shapes.py` with `lines` (1-based, inclusive) replaced by `with`.
fn shapes_with(f: &Fixture, from: usize, to: usize, with: &[&str]) -> String {
    let original = std::fs::read_to_string(codeflow_e2e::fs::fixture_dir(PY).join(SHAPES)).unwrap();
    let mut lines: Vec<&str> = original.lines().collect();
    lines.splice(from - 1..to, with.iter().copied());
    let _ = f;
    lines.join("\n") + "\n"
}

fn diagnostics_of<'a>(structured: &'a Value, path: &str) -> &'a Value {
    structured["diagnostics"]
        .as_array()
        .unwrap_or_else(|| panic!("no diagnostics in {structured:#}"))
        .iter()
        .find(|d| d["path"] == path)
        .unwrap_or_else(|| panic!("no diagnostics for {path} in {structured:#}"))
}

// ---- diagnostics after a write --------------------------------------------------------------

const GREET_PY: &str =
    "def greet(name):\n    return 'hi ' + name\n\n\ndef main():\n    return greet('x')\n";

/// Renaming a function's definition without its callers: the answer lists the call site it
/// broke, from pylsp (pyflakes) after it saw the new content.
#[test]
fn renaming_a_definition_alone_reports_the_broken_call_site() {
    block_on(async {
        let f = Fixture::from_files("brokenpy", &[("lib.py", GREET_PY)]).await;
        let out = f
            .ok(
                "replace_symbol_body",
                json!({"file_path": "lib.py", "name_path": "greet",
                       "body": "def salute(name):\n    return 'hi ' + name"}),
            )
            .await;
        assert_eq!(
            f.read("lib.py"),
            GREET_PY.replace("def greet", "def salute"),
            "{}",
            out.text
        );
        let d = diagnostics_of(&out.structured, &f.path("lib.py"));
        assert_eq!(d["fresh"], true, "{:#}", out.structured);
        let broken: Vec<&Value> = d["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["message"].as_str().unwrap().contains("greet"))
            .collect();
        assert_eq!(broken.len(), 1, "{:#}", out.structured);
        assert_eq!(
            (&broken[0]["line"], &broken[0]["severity"]),
            (&json!(6), &json!("error"))
        );
        assert!(
            out.text.contains("Diagnostics after the change:")
                && out.text.contains(&format!("{}:6:", f.path("lib.py"))),
            "{}",
            out.text
        );
    });
}

/// Any write tool (here apply_workspace_edit) on TypeScript: tsserver's error for the call
/// site, and a dry run carries no diagnostics (nothing changed).
#[test]
fn a_workspace_edit_reports_what_tsserver_then_says() {
    block_on(async {
        let src = "export function greet(name: string): string {\n  return 'hi ' + name;\n}\n\nexport function main(): string {\n  return greet('x');\n}\n";
        let f = Fixture::from_files(
            "brokents",
            &[
                ("src/lib.ts", src),
                (
                    "tsconfig.json",
                    r#"{"compilerOptions": {"strict": true}, "include": ["src"]}"#,
                ),
            ],
        )
        .await;
        // Read before writing, as an agent does (tsserver loads the project meanwhile).
        f.ok("get_symbols_overview", json!({"file_path": "src/lib.ts"}))
            .await;
        let changes = json!({f.path("src/lib.ts"): [edit(0, 16, 21, "salute")]});
        let dry = f
            .ok(
                "apply_workspace_edit",
                json!({"changes": changes.clone(), "dry_run": true}),
            )
            .await;
        assert!(
            dry.structured.get("diagnostics").is_none(),
            "{:#}",
            dry.structured
        );
        let out = f
            .ok("apply_workspace_edit", json!({"changes": changes}))
            .await;
        let d = diagnostics_of(&out.structured, &f.path("src/lib.ts"));
        let rows = d["diagnostics"].as_array().unwrap();
        assert!(
            rows.iter().any(|r| r["line"] == 6
                && r["severity"] == "error"
                && r["message"].as_str().unwrap().contains("greet")),
            "{:#}",
            out.structured
        );
    });
}

// ---- preview_edit ---------------------------------------------------------------------------

/// A preview shows what an edit would break and what it would fix, writes nothing, and leaves
/// the language server seeing the file as it is.
#[test]
fn preview_edit_lists_what_appears_and_disappears_and_writes_nothing() {
    block_on(async {
        let f = Fixture::from_files(
            "preview",
            &[
                ("lib.py", GREET_PY),
                ("other.py", "def f():\n    return missing_name\n"),
            ],
        )
        .await;
        let before = f.tree();
        let out = f
            .ok(
                "preview_edit",
                json!({"tool": "replace_symbol_body", "args": {"file_path": "lib.py", "name_path": "greet",
                       "body": "def salute(name):\n    return 'hi ' + name"}}),
            )
            .await;
        assert_eq!(f.tree(), before, "a preview writes nothing");
        let file = &out.structured["files"][0];
        assert_eq!(file["path"], f.path("lib.py"), "{:#}", out.structured);
        assert_eq!(
            (&file["errors_before"], &file["errors_after"]),
            (&json!(0), &json!(1)),
            "{}",
            out.text
        );
        assert_eq!(file["appeared"][0]["line"], 6, "{}", out.text);
        assert_eq!(file["disappeared"], json!([]));
        assert_eq!(out.structured["edit"]["files"][0]["action"], "edit");
        // The server's view is the file as it is again.
        let now = f
            .ok("get_diagnostics", json!({"file_path": "lib.py"}))
            .await;
        assert_eq!(now.structured["errors"], 0, "{}", now.text);
        // A workspace edit that fixes an error: it disappears.
        let fix = json!({"changes": {f.path("other.py"): [edit(1, 11, 23, "1")]}});
        let out = f.ok("preview_edit", fix).await;
        let file = &out.structured["files"][0];
        assert_eq!(
            (&file["errors_before"], &file["errors_after"]),
            (&json!(1), &json!(0)),
            "{}",
            out.text
        );
        assert!(
            file["disappeared"][0]["message"]
                .as_str()
                .unwrap()
                .contains("missing_name"),
            "{}",
            out.text
        );
        assert_eq!(f.tree(), before);
        let refused = f
            .err("preview_edit", json!({"tool": "find_symbol", "args": {}}))
            .await;
        assert!(refused.contains("cannot be previewed"), "{refused}");
    });
}

// ---- symbol-level editing -------------------------------------------------------------------

#[test]
fn replace_symbol_body_by_name_path_dry_run_then_written() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let before = f.tree();
        let args = |dry_run: bool| {
            json!({"file_path": SHAPES, "name_path": "Circle/area", "dry_run": dry_run,
                   "body": "def area(self):\n    return 3.14159 * self.radius ** 2"})
        };
        let dry = f.ok("replace_symbol_body", args(true)).await;
        assert_eq!(
            (&dry.structured["dry_run"], &dry.structured["applied"]),
            (&json!(true), &json!(false))
        );
        assert_eq!(
            dry.structured["symbol"],
            json!({"name_path": "Circle/area", "kind": "method", "line": 10, "end_line": 11})
        );
        assert_eq!(f.tree(), before, "a dry run writes nothing");
        let out = f.ok("replace_symbol_body", args(false)).await;
        assert_eq!(out.structured["applied"], true);
        let expected = shapes_with(
            &f,
            10,
            11,
            &[
                "    def area(self):",
                "        return 3.14159 * self.radius ** 2",
            ],
        );
        assert_eq!(f.read(SHAPES), expected);
        assert_eq!(f.mirror(SHAPES).as_deref(), Some(expected.as_str()));
        let d = diagnostics_of(&out.structured, &f.path(SHAPES));
        assert_eq!(d["errors"], 0, "{:#}", out.structured);
    });
}

#[test]
fn insert_after_and_before_a_symbol_keep_indentation_and_spacing() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        f.ok(
            "insert_after_symbol",
            json!({"file_path": SHAPES, "name_path": "Circle/area",
                   "body": "def diameter(self):\n    return 2 * self.radius\n"}),
        )
        .await;
        let after = shapes_with(
            &f,
            11,
            11,
            &[
                "        return 3.14 * self.radius * self.radius",
                "",
                "    def diameter(self):",
                "        return 2 * self.radius",
            ],
        );
        assert_eq!(f.read(SHAPES), after);
        let out = f
            .ok(
                "insert_before_symbol",
                json!({"file_path": SHAPES, "name_path": "/scale",
                       "body": "def double(value):\n    return value * 2"}),
            )
            .await;
        let both = after.replace(
            "def scale(",
            "def double(value):\n    return value * 2\n\n\ndef scale(",
        );
        assert_eq!(f.read(SHAPES), both, "{}", out.text);
        // The new method is a symbol the server now sees.
        let found = f
            .ok(
                "find_symbol",
                json!({"file_path": SHAPES, "name_path": "Circle/diameter"}),
            )
            .await;
        assert_eq!(found.structured["total"], 1, "{}", found.text);
    });
}

#[test]
fn an_edit_by_name_path_on_a_file_changed_underneath_writes_nothing() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        // The client's file changed after the mirror saw it (no sync in between).
        let mut changed = f.read(SHAPES);
        changed.push_str("\n# edited by hand\n");
        std::fs::write(f.root.join(SHAPES), &changed).unwrap();
        let before = f.tree();
        for (tool, extra) in [
            (
                "replace_symbol_body",
                json!({"body": "def scale(v, k):\n    return v * k"}),
            ),
            ("insert_after_symbol", json!({"body": "X = 1"})),
            ("insert_before_symbol", json!({"body": "X = 1"})),
        ] {
            let mut args = json!({"file_path": SHAPES, "name_path": "scale"});
            args.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let refused = f.err(tool, args).await;
            assert!(
                refused.contains("conflict") && refused.contains(&f.path(SHAPES)),
                "{tool}: {refused}"
            );
            assert_eq!(f.tree(), before, "{tool} wrote nothing");
        }
        let refused = f
            .err(
                "safe_delete_symbol",
                json!({"file_path": SHAPES, "name_path": "unused_helper"}),
            )
            .await;
        assert!(refused.contains("conflict"), "{refused}");
        assert_eq!(f.tree(), before);
    });
}

#[test]
fn safe_delete_refuses_while_references_remain_and_lists_them() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let before = f.tree();
        let out = f
            .ok(
                "safe_delete_symbol",
                json!({"file_path": SHAPES, "name_path": "scale"}),
            )
            .await;
        assert_eq!(
            (&out.structured["refused"], &out.structured["applied"]),
            (&json!(true), &json!(false)),
            "{}",
            out.text
        );
        let places: Vec<(String, u64)> = out.structured["references"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["path"].as_str().unwrap().to_owned(),
                    r["line"].as_u64().unwrap(),
                )
            })
            .collect();
        for expected in [(f.path("app.py"), 7), (f.path("report.py"), 7)] {
            assert!(places.contains(&expected), "{expected:?} not in {places:?}");
        }
        assert!(out.text.contains("nothing was deleted"), "{}", out.text);
        assert_eq!(f.tree(), before);
    });
}

#[test]
fn safe_delete_of_an_unused_symbol_dry_run_then_deleted() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let before = f.tree();
        let args = |dry_run: bool| json!({"file_path": SHAPES, "name_path": "unused_helper", "dry_run": dry_run});
        let dry = f.ok("safe_delete_symbol", args(true)).await;
        assert_eq!(
            (&dry.structured["refused"], &dry.structured["dry_run"]),
            (&json!(false), &json!(true)),
            "{}",
            dry.text
        );
        assert_eq!(f.tree(), before);
        let out = f.ok("safe_delete_symbol", args(false)).await;
        assert_eq!(out.structured["applied"], true, "{}", out.text);
        let expected = shapes_with(&f, 17, 20, &[]);
        assert_eq!(f.read(SHAPES), expected);
        // A method, inside its class: the spacing around it stays single.
        let out = f
            .ok(
                "safe_delete_symbol",
                json!({"file_path": SHAPES, "name_path": "Circle/area"}),
            )
            .await;
        // `area` is called in app.py: refused.
        assert_eq!(out.structured["refused"], true, "{}", out.text);
    });
}

#[test]
fn name_paths_that_name_nothing_or_several_are_clear_errors() {
    check_err_all(
        PY,
        "replace_symbol_body",
        json!({"file_path": SHAPES, "name_path": "Square", "body": "x = 1"}),
        &["no symbol `Square`", "Circle/area", "scale"],
    );
    check_err_all(
        PY,
        "insert_after_symbol",
        json!({"file_path": SHAPES, "name_path": "a//b", "body": "x = 1"}),
        &["empty part"],
    );
}

/// A file no language server handles: the error names what is missing.
#[test]
fn a_file_without_a_language_server_is_a_clear_error() {
    block_on(async {
        let f = Fixture::from_files("nolsp", &[("notes.txt", "hello\n")]).await;
        for tool in ["replace_symbol_body", "safe_delete_symbol", "find_symbol"] {
            let args = json!({"file_path": "notes.txt", "name_path": "hello", "body": "x"});
            let mut args = args.as_object().unwrap().clone();
            if tool != "replace_symbol_body" {
                args.remove("body");
            }
            let text = f.err(tool, Value::Object(args)).await;
            assert!(
                text.contains("no language server") && text.contains("txt"),
                "{tool}: {text}"
            );
        }
    });
}

// ---- finding symbols ------------------------------------------------------------------------

#[test]
fn symbols_overview_of_a_file_and_of_the_project() {
    check(
        PY,
        "get_symbols_overview",
        json!({"file_path": SHAPES}),
        json!({"truncated": false, "files_total": 1, "files": [{"path": "$ROOT/pkg/shapes.py", "symbols": [
            {"name": "Circle", "kind": "class", "line": 4},
            {"name": "scale", "kind": "function", "line": 14},
            {"name": "unused_helper", "kind": "function", "line": 19}
        ]}]}),
    );
    let (_, text, s) = call(PY, "get_symbols_overview", json!({"file_path": "."}));
    let paths: Vec<&str> = s["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 4, "{text}");
    assert!(text.contains("class Circle (4)"), "{text}");
    let (_, text, s) = call(
        PY,
        "get_symbols_overview",
        json!({"file_path": ".", "max_files": 1}),
    );
    assert_eq!(
        (&s["truncated"], &s["files_total"]),
        (&json!(true), &json!(4)),
        "{text}"
    );
}

#[test]
fn find_symbol_by_name_path_with_children_and_body() {
    check(
        PY,
        "find_symbol",
        json!({"name_path": "Circle", "depth": 1}),
        json!({"total": 1, "truncated": false, "symbols": [{
            "name_path": "Circle", "kind": "class", "path": "$ROOT/pkg/shapes.py", "line": 4,
            "children": [
                {"name_path": "Circle/__init__", "kind": "method", "line": 7},
                {"name_path": "Circle/area", "kind": "method", "line": 10}
            ]
        }]}),
    );
    check(
        PY,
        "find_symbol",
        json!({"name_path": "/scale", "file_path": "pkg", "include_body": true}),
        json!({"total": 1, "symbols": [{"name_path": "scale", "line": 14,
            "body": "def scale(value, factor):\n    \"\"\"Multiply value by factor.\"\"\"\n    return value * factor"}]}),
    );
    let (_, text, s) = call(
        PY,
        "find_symbol",
        json!({"name_path": "Circle/AR", "substring_matching": true}),
    );
    assert_eq!(s["symbols"][0]["name_path"], "Circle/area", "{text}");
}

// ---- search_for_pattern ---------------------------------------------------------------------

#[test]
fn search_for_pattern_with_globs_context_and_honest_truncation() {
    check(
        PY,
        "search_for_pattern",
        json!({"pattern": r"scale\(", "paths_include_glob": "*.py", "paths_exclude_glob": "pkg/**", "context_lines": 1}),
        json!({"truncated": false, "total": 3, "files_matched": 2, "matches": [
            {"path": "$ROOT/app.py", "line": 7, "character": 12, "text": "    return scale(circle.area(), 2)",
             "before": [{"line": 6, "text": "    print(circle.area())"}], "after": [{"line": 8, "text": ""}]},
            {"path": "$ROOT/app.py", "line": 10, "character": 9, "text": "total = scale(3, 4)",
             "before": [{"line": 9, "text": ""}]},
            {"path": "$ROOT/report.py", "line": 7, "character": 12, "text": "    return scale(x, 10)",
             "before": [{"line": 6, "text": "def report(x):"}]}
        ]}),
    );
    let (_, text, s) = call(
        PY,
        "search_for_pattern",
        json!({"pattern": "scale", "max_results": 2}),
    );
    assert_eq!(
        (&s["truncated"], &s["total"]),
        (&json!(true), &json!(2)),
        "{text}"
    );
    assert!(text.contains("Truncated"), "{text}");
    check_err_all(
        PY,
        "search_for_pattern",
        json!({"pattern": "scale("}),
        &["pattern `scale(`"],
    );
    // The error shows the pattern as written, the caret under the unclosed group, not the
    // matcher's wrapper around it (`(?:scale()`).
    let f = common::shared(PY);
    let text = block_on(f.err("search_for_pattern", json!({"pattern": "(unclosed"})));
    assert!(text.contains("unclosed group"), "{text}");
    assert!(!text.contains("(?:"), "{text}");
    assert!(text.contains("\n    (unclosed\n    ^\n"), "{text}");
}

#[test]
fn search_for_pattern_respects_ignore_files() {
    block_on(async {
        let f = Fixture::from_files(
            "ignoring",
            &[
                (".gitignore", "generated/\n"),
                ("src/a.py", "NEEDLE = 1\n"),
                ("generated/b.py", "NEEDLE = 2\n"),
            ],
        )
        .await;
        let out = f
            .ok("search_for_pattern", json!({"pattern": "NEEDLE"}))
            .await;
        let paths: Vec<&str> = out.structured["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["path"].as_str().unwrap())
            .collect();
        if f.mirror("generated/b.py").is_some() {
            assert_eq!(paths, vec![f.path("src/a.py")], "{}", out.text);
        } else {
            // The relay's own filter kept the ignored file out of the mirror already.
            assert_eq!(paths, vec![f.path("src/a.py")], "{}", out.text);
        }
    });
}

// ---- on a real project ----------------------------------------------------------------------

/// flask 3.0.3 from PyPI: read a decorated method by name path, replace a function, add a
/// method, refuse to delete a method that is called — and flask still imports, with the new
/// method working.
#[test]
fn symbol_editing_on_flask_keeps_it_importable() {
    let flask = codeflow_e2e::registry::pypi_sdist("flask", "3.0.3");
    block_on(async {
        let f = Fixture::from_dir("flask", &flask).await;
        let route = f
            .ok(
                "find_symbol",
                json!({"name_path": "Scaffold/route", "file_path": "src/flask/sansio/scaffold.py", "include_body": true}),
            )
            .await;
        let body = route.structured["symbols"][0]["body"].as_str().unwrap();
        assert!(
            body.starts_with("    @setupmethod\n    def route(self, rule: str"),
            "{body}"
        );
        let overview = f
            .ok(
                "get_symbols_overview",
                json!({"file_path": "src/flask/app.py"}),
            )
            .await;
        assert!(
            overview.text.contains("class Flask (79)"),
            "{}",
            overview.text
        );
        let out = f
            .ok(
                "replace_symbol_body",
                json!({"file_path": "src/flask/app.py", "name_path": "_make_timedelta",
                       "body": "def _make_timedelta(value: timedelta | int | None) -> timedelta | None:\n    if value is None or isinstance(value, timedelta):\n        return value\n    return timedelta(seconds=value)"}),
            )
            .await;
        let d = diagnostics_of(&out.structured, &f.path("src/flask/app.py"));
        assert_eq!(
            (&d["fresh"], &d["errors"]),
            (&json!(true), &json!(0)),
            "{}",
            out.text
        );
        f.ok(
            "insert_after_symbol",
            json!({"file_path": "src/flask/app.py", "name_path": "Flask/make_default_options_response",
                   "body": "def codeflow_marker(self) -> int:\n    return 42"}),
        )
        .await;
        let refused = f
            .ok(
                "safe_delete_symbol",
                json!({"file_path": "src/flask/app.py", "name_path": "Flask/make_default_options_response"}),
            )
            .await;
        assert_eq!(refused.structured["refused"], true, "{}", refused.text);
        assert!(
            // 862 before the edit; the new `_make_timedelta` is one line shorter.
            refused
                .text
                .contains(&format!("{}:861:", f.path("src/flask/app.py"))),
            "{}",
            refused.text
        );
        let app = f.read("src/flask/app.py");
        assert!(
            app.contains("        return rv\n\n    def codeflow_marker(self) -> int:\n        return 42\n\n    def ensure_sync"),
            "{}",
            &app[app.find("return rv").unwrap()..][..200]
        );
        let run = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys; sys.path.insert(0, 'src'); import flask; assert flask.Flask.codeflow_marker(None) == 42; print('ok')",
            ])
            .current_dir(&f.root)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    });
}

/// TypeScript (tsserver's nested symbol tree, `export` modifiers, class members): a method
/// replaced, one added after it, an unused function deleted, a used one refused — and tsserver
/// finds no error in the result.
#[test]
fn symbol_editing_on_typescript() {
    block_on(async {
        let f = Fixture::fresh("typescript").await;
        let out = f
            .ok(
                "replace_symbol_body",
                json!({"file_path": "src/shapes.ts", "name_path": "Circle/area",
                       "body": "area(): number {\n  return Math.PI * this.radius ** 2;\n}"}),
            )
            .await;
        assert_eq!(
            out.structured["symbol"],
            json!({"name_path": "Circle/area", "kind": "method", "line": 9, "end_line": 11})
        );
        f.ok(
            "insert_after_symbol",
            json!({"file_path": "src/shapes.ts", "name_path": "Circle/area",
                   "body": "diameter(): number {\n  return 2 * this.radius;\n}"}),
        )
        .await;
        let deleted = f
            .ok(
                "safe_delete_symbol",
                json!({"file_path": "src/shapes.ts", "name_path": "unusedHelper"}),
            )
            .await;
        assert_eq!(deleted.structured["applied"], true, "{}", deleted.text);
        let refused = f
            .ok(
                "safe_delete_symbol",
                json!({"file_path": "src/shapes.ts", "name_path": "/scale"}),
            )
            .await;
        assert_eq!(refused.structured["refused"], true, "{}", refused.text);
        assert!(
            refused
                .text
                .contains(&format!("{}:4:", f.path("src/app.ts"))),
            "{}",
            refused.text
        );
        assert_eq!(
            f.read("src/shapes.ts"),
            "export interface Shape {\n  name: string;\n  area(): number;\n}\n\nexport class Circle implements Shape {\n  name = \"circle\";\n  constructor(private radius: number) {}\n  area(): number {\n    return Math.PI * this.radius ** 2;\n  }\n  diameter(): number {\n    return 2 * this.radius;\n  }\n}\n\nexport function scale(value: number, factor: number): number {\n  return value * factor;\n}\n"
        );
        // A preview of a type error: tsserver's error appears, nothing is written.
        let before = f.tree();
        let preview = f
            .ok(
                "preview_edit",
                json!({"tool": "insert_after_symbol", "args": {"file_path": "src/shapes.ts", "name_path": "/scale",
                       "body": "export const bad: number = \"x\";"}}),
            )
            .await;
        assert_eq!(f.tree(), before);
        let file = &preview.structured["files"][0];
        assert_eq!(
            (&file["errors_before"], &file["errors_after"]),
            (&json!(0), &json!(1)),
            "{}",
            preview.text
        );
        assert_eq!(file["appeared"][0]["code"], "2322", "{}", preview.text);
        // typescript-language-server publishes only changes: a clean file that stays clean gets
        // no new push, and the answer says so after a short wait rather than claim freshness.
        let d = diagnostics_of(&deleted.structured, &f.path("src/shapes.ts"));
        assert_eq!(d["errors"], 0, "{}", deleted.text);
        assert!(
            d["fresh"] == true
                || d["note"]
                    .as_str()
                    .unwrap()
                    .contains("publishes only changes"),
            "{}",
            deleted.text
        );
    });
}

/// Rust (rust-analyzer): a trait method inside `impl Shape for Circle` is `Circle/area`.
#[test]
fn rust_impl_methods_are_named_by_their_type() {
    check(
        "rust",
        "find_symbol",
        json!({"name_path": "Circle/area", "file_path": "src/shapes.rs", "include_body": true}),
        json!({"total": 1, "symbols": [{"name_path": "Circle/area", "kind": "method", "line": 10}]}),
    );
}

/// bash-language-server without shellcheck publishes no diagnostics at all: a write to a shell
/// script does not wait the whole limit for them, and the answer says why there are none.
#[test]
fn a_server_that_never_publishes_diagnostics_is_not_waited_for_long() {
    block_on(async {
        let f = Fixture::from_files(
            "bashproj",
            &[("run.sh", "#!/bin/bash\ngreet() {\n  echo hi\n}\n\ngreet\n")],
        )
        .await;
        let started = std::time::Instant::now();
        let changes = json!({f.path("run.sh"): [edit(2, 7, 9, "hello")]});
        let out = f
            .ok("apply_workspace_edit", json!({"changes": changes}))
            .await;
        let d = diagnostics_of(&out.structured, &f.path("run.sh"));
        if d["fresh"] == false {
            assert!(
                d["note"]
                    .as_str()
                    .unwrap()
                    .contains("published no diagnostics"),
                "{}",
                out.text
            );
            assert!(
                started.elapsed() < std::time::Duration::from_secs(9),
                "{:?}",
                started.elapsed()
            );
        }
        assert_eq!(
            f.read("run.sh"),
            "#!/bin/bash\ngreet() {\n  echo hello\n}\n\ngreet\n"
        );
    });
}

/// Both insert tools' dry runs: the exact insertion, nothing written.
#[test]
fn insert_dry_runs_describe_the_insertion_and_write_nothing() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let before = f.tree();
        let after = f
            .ok(
                "insert_after_symbol",
                json!({"file_path": SHAPES, "name_path": "Circle/area", "dry_run": true,
                       "body": "def diameter(self):\n    return 2 * self.radius"}),
            )
            .await;
        assert_eq!(
            (&after.structured["dry_run"], &after.structured["applied"]),
            (&json!(true), &json!(false))
        );
        assert_eq!(
            after.structured["files"][0]["edits"],
            json!([{"range": {"start": {"line": 11, "character": 48}, "end": {"line": 11, "character": 48}},
                    "new_text": "\n\n    def diameter(self):\n        return 2 * self.radius"}]),
            "{}",
            after.text
        );
        let before_edit = f
            .ok(
                "insert_before_symbol",
                json!({"file_path": SHAPES, "name_path": "/scale", "dry_run": true, "body": "X = 1"}),
            )
            .await;
        assert_eq!(
            before_edit.structured["files"][0]["edits"],
            json!([{"range": {"start": {"line": 14, "character": 1}, "end": {"line": 14, "character": 1}},
                    "new_text": "X = 1\n\n\n"}]),
            "{}",
            before_edit.text
        );
        assert!(after.structured.get("diagnostics").is_none());
        assert_eq!(f.tree(), before);
    });
}

/// basedpyright answers `textDocument/diagnostic` (pull): the write's answer has its error for
/// the broken call site, pulled for the new content.
#[test]
fn diagnostics_after_a_write_are_pulled_where_the_server_can() {
    use codeflow_lsp_pool::{PoolConfig, ServerConfig};
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lib.py"), GREET_PY).unwrap();
        let mut pool = PoolConfig::default();
        let mut off = ServerConfig::new("pylsp", &["py"]);
        off.enabled = false;
        pool.servers.insert("pylsp".to_owned(), off);
        pool.servers.insert(
            "basedpyright".to_owned(),
            ServerConfig::new("basedpyright-langserver", &["py", "pyi"]).with_args(&["--stdio"]),
        );
        let f = Fixture::from_dir_with("pulled", dir.path(), pool).await;
        let out = f
            .ok(
                "replace_symbol_body",
                json!({"file_path": "lib.py", "name_path": "greet",
                       "body": "def salute(name):\n    return 'hi ' + name"}),
            )
            .await;
        let d = diagnostics_of(&out.structured, &f.path("lib.py"));
        assert_eq!(
            (&d["server"], &d["fresh"]),
            (&json!("basedpyright"), &json!(true)),
            "{}",
            out.text
        );
        assert!(
            d["diagnostics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["line"] == 6
                    && r["severity"] == "error"
                    && r["message"].as_str().unwrap().contains("greet")),
            "{}",
            out.text
        );
    });
}

/// A server without `textDocument/references` (the JSON server): `safe_delete_symbol` cannot
/// prove a symbol unused, so it refuses with an error naming the server and the capability,
/// and deletes nothing.
#[test]
fn safe_delete_on_a_server_without_references_is_a_clear_error() {
    block_on(async {
        let f = Fixture::from_dir("json-safe-delete", &codeflow_e2e::fs::fixture_dir("json")).await;
        let before = f.tree();
        let error = f
            .err(
                "safe_delete_symbol",
                json!({"file_path": "shapes.json", "name_path": "title"}),
            )
            .await;
        for part in ["vscode-json-language-server", "references"] {
            assert!(error.contains(part), "{error}");
        }
        assert_eq!(f.tree(), before);
    });
}
