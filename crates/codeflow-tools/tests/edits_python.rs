//! The write tools on the Python fixture, in-process against a real pylsp. Each test writes
//! to its own fresh copy and asserts what the tool returned AND what the client's disk (and
//! the server's mirror, where it matters) holds afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Fixture, block_on, changed, edit};
use serde_json::json;

const PY: &str = "python";

fn rename_scale(dry_run: bool) -> serde_json::Value {
    json!({"file_path": "pkg/shapes.py", "symbol_name": "scale", "new_name": "resize", "dry_run": dry_run})
}

#[test]
fn a_rename_dry_run_gives_minimal_edits_and_writes_nothing() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let before = f.tree();
        let out = f.ok("rename_symbol", rename_scale(true)).await;
        let dry = out.structured;
        assert_eq!(
            (&dry["dry_run"], &dry["applied"]),
            (&json!(true), &json!(false))
        );
        let files = changed(&dry);
        for rel in ["app.py", "report.py", "pkg/shapes.py"] {
            assert_eq!(
                files.get(&f.path(rel)).map(String::as_str),
                Some("edit"),
                "{dry}"
            );
        }
        // pylsp (jedi) answers with whole-file replacements; they are shown as the names
        // that change (reproduction 3 of issue 10).
        let edits_of = |rel: &str| {
            dry["files"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["path"] == f.path(rel))
                .unwrap()["edits"]
                .clone()
        };
        assert_eq!(
            edits_of("pkg/shapes.py"),
            json!([{"range": {"start": {"line": 14, "character": 5}, "end": {"line": 14, "character": 10}}, "new_text": "resize"}]),
            "{}",
            out.text
        );
        assert_eq!(
            edits_of("app.py").as_array().unwrap().len(),
            3,
            "{}",
            out.text
        );
        assert_eq!(dry["leftovers"], json!([]));
        assert!(
            out.text.contains("14:5-14:10 -> \"resize\""),
            "{}",
            out.text
        );
        assert_eq!(f.tree(), before, "a dry run changes nothing");
    });
}

/// Reproduction 3 of issue 10 on flask 3.0.3 from PyPI: renaming `get_load_dotenv` from
/// cli.py either renames every use (app.py included — pylsp's edit misses it, CodeFlow renames
/// the uses whose definition is the symbol's — and `import flask` still works) or, when a use
/// stays unresolved, writes nothing and names where the old name remains.
#[test]
fn the_flask_rename_keeps_flask_importable_or_refuses_naming_app_py() {
    let flask = codeflow_e2e::registry::pypi_sdist("flask", "3.0.3");
    block_on(async {
        let f = Fixture::from_dir("flask", &flask).await;
        let before = f.tree();
        let out = f
            .ok(
                "rename_symbol",
                json!({"file_path": "src/flask/cli.py", "symbol_name": "get_load_dotenv", "new_name": "should_load_dotenv"}),
            )
            .await;
        let s = &out.structured;
        if s["applied"] == true {
            for (rel, text) in f.tree() {
                if rel.ends_with(".py") {
                    assert!(
                        !text.contains("get_load_dotenv"),
                        "{rel} keeps the old name\n{}",
                        out.text
                    );
                }
            }
            let import = std::process::Command::new("python3")
                .args(["-c", "import flask"])
                .env("PYTHONPATH", f.root.join("src"))
                .output()
                .unwrap();
            assert!(
                import.status.success(),
                "{}",
                String::from_utf8_lossy(&import.stderr)
            );
        } else {
            assert_eq!(s["refused"], true, "{}", out.text);
            assert!(out.text.contains("src/flask/app.py"), "{}", out.text);
            let places: Vec<(String, u64)> = s["leftovers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    (
                        l["path"].as_str().unwrap().to_owned(),
                        l["line"].as_u64().unwrap(),
                    )
                })
                .collect();
            assert!(
                places.contains(&(f.path("src/flask/app.py"), 586)),
                "{}",
                out.text
            );
            assert_eq!(f.tree(), before, "nothing was written");
        }
        // No edit is a whole-file replacement.
        for file in s["files"].as_array().unwrap() {
            for e in file["edits"].as_array().unwrap() {
                assert!(e["new_text"].as_str().unwrap().len() < 200, "{e}");
            }
        }
    });
}

#[test]
fn a_rename_writes_every_file_and_the_mirror() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let before = f.tree();
        let done = f.ok("rename_symbol", rename_scale(false)).await.structured;
        assert_eq!(done["applied"], true);
        assert_eq!(
            f.read("app.py"),
            before["app.py"].replace("scale", "resize")
        );
        assert_eq!(
            f.read("report.py"),
            before["report.py"].replace("scale", "resize")
        );
        assert_eq!(
            f.read("pkg/shapes.py"),
            before["pkg/shapes.py"].replace("def scale", "def resize")
        );
        assert_eq!(f.mirror("report.py"), Some(f.read("report.py")));
        // The language server sees the new text: the old name is gone.
        let again = f
            .call(
                "rename_symbol",
                json!({"file_path": "pkg/shapes.py", "symbol_name": "scale", "new_name": "x"}),
            )
            .await;
        assert!(
            again
                .as_ref()
                .map_or(true, |o| o.structured["applied"] == false),
            "{again:?}"
        );
    });
}

#[test]
fn a_strict_rename_at_a_position_follows_the_imports() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let args = json!({"file_path": f.path("pkg/shapes.py"), "line": 4, "character": 8, "new_name": "Disc"});
        let strict = f.ok("rename_symbol_strict", args).await.structured;
        assert!(changed(&strict).contains_key(&f.path("app.py")), "{strict}");
        assert!(
            f.read("app.py")
                .starts_with("from pkg.shapes import Disc, scale\n")
        );
        assert!(f.read("pkg/shapes.py").contains("class Disc:"));
    });
}

#[test]
fn create_file_writes_disk_and_mirror_and_refuses_to_overwrite() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let text = "from pkg.shapes import scale\n\nTEN = scale(5, 2)\n";
        let created = f
            .ok(
                "create_file",
                json!({"file_path": "pkg/extra.py", "content": text}),
            )
            .await
            .structured;
        assert_eq!(changed(&created)[&f.path("pkg/extra.py")], "create");
        assert_eq!(f.read("pkg/extra.py"), text);
        assert_eq!(f.mirror("pkg/extra.py"), Some(f.read("pkg/extra.py")));
        let again = f
            .err("create_file", json!({"file_path": "pkg/extra.py"}))
            .await;
        assert!(again.contains("already exists"), "{again}");
        f.ok(
            "create_file",
            json!({"file_path": "pkg/extra.py", "content": "X = 1\n", "overwrite": true}),
        )
        .await;
        assert_eq!(f.read("pkg/extra.py"), "X = 1\n");
    });
}

#[test]
fn delete_file_is_refused_while_imported_naming_the_importers() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let refused = f
            .err("delete_file", json!({"file_path": "pkg/shapes.py"}))
            .await;
        assert!(
            refused.contains(&format!("{}:1", f.path("app.py")))
                && refused.contains(&format!("{}:3", f.path("report.py"))),
            "names the importers: {refused}"
        );
        assert!(f.exists("pkg/shapes.py"));
    });
}

#[test]
fn delete_file_removes_from_disk_and_mirror() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        f.ok(
            "create_file",
            json!({"file_path": "pkg/extra.py", "content": "X = 1\n"}),
        )
        .await;
        f.ok("delete_file", json!({"file_path": "pkg/extra.py"}))
            .await;
        assert!(!f.exists("pkg/extra.py"));
        assert_eq!(f.mirror("pkg/extra.py"), None, "gone from the mirror too");
    });
}

#[test]
fn fix_imports_after_a_move_by_hand() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        std::fs::rename(f.root.join("pkg/shapes.py"), f.root.join("geo.py")).unwrap();
        f.sync().await;
        let fixed = f
            .ok(
                "fix_imports",
                json!({"file_path": "geo.py", "old_path": "pkg/shapes.py"}),
            )
            .await
            .structured;
        assert_eq!(fixed["imports_fixed"], 2, "{fixed}");
        assert!(
            f.read("app.py")
                .starts_with("from geo import Circle, scale\n"),
            "{}",
            f.read("app.py")
        );
        assert!(f.read("report.py").contains("\nfrom geo import scale\n"));
    });
}

/// pylsp has no willRenameFiles, so CodeFlow rewrites the imports.
#[test]
fn rename_file_rewrites_the_imports_itself() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let moved = f
            .ok(
                "rename_file",
                json!({"old_path": "pkg/shapes.py", "new_path": "geo.py"}),
            )
            .await
            .structured;
        assert_eq!(changed(&moved)[&f.path("geo.py")], "rename", "{moved}");
        assert_eq!(moved["imports_updated_by"], json!(["text"]));
        assert!(!f.exists("pkg/shapes.py"));
        assert!(f.read("geo.py").contains("class Circle:"));
        assert!(
            f.read("app.py")
                .starts_with("from geo import Circle, scale\n"),
            "{}",
            f.read("app.py")
        );
        assert!(f.read("report.py").contains("\nfrom geo import scale\n"));
        assert_eq!(f.mirror("pkg/shapes.py"), None, "the mirror follows");
        assert_eq!(f.mirror("geo.py"), Some(f.read("geo.py")));
        // And back into a package: a top-level module becomes `pkg.geometry`.
        f.ok(
            "rename_file",
            json!({"old_path": "geo.py", "new_path": "pkg/geometry.py"}),
        )
        .await;
        assert!(
            f.read("app.py")
                .starts_with("from pkg.geometry import Circle, scale\n"),
            "{}",
            f.read("app.py")
        );
        assert!(
            f.read("report.py")
                .contains("\nfrom pkg.geometry import scale\n")
        );
    });
}

#[test]
fn rename_directory_moves_the_package_and_its_importers_follow() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        f.ok(
            "create_file",
            json!({"file_path": "use_geo.py", "content": "from pkg.shapes import Circle\n"}),
        )
        .await;
        let dir = f
            .ok(
                "rename_directory",
                json!({"old_path": "pkg", "new_path": "lib"}),
            )
            .await
            .structured;
        assert_eq!(
            dir["moved"].as_array().unwrap().len(),
            2,
            "__init__.py and shapes.py: {dir}"
        );
        assert!(f.exists("lib/shapes.py") && !f.exists("pkg/shapes.py"));
        assert_eq!(f.read("use_geo.py"), "from lib.shapes import Circle\n");
        assert!(
            f.read("app.py")
                .starts_with("from lib.shapes import Circle, scale\n")
        );
        assert_eq!(f.mirror("lib/shapes.py"), Some(f.read("lib/shapes.py")));
    });
}

#[test]
fn organize_imports_is_a_clear_error_on_pylsp() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let refused = f
            .err("organize_imports", json!({"file_path": "report.py"}))
            .await;
        assert!(
            refused.contains("pylsp") && refused.contains("organizeImports"),
            "{refused}"
        );
    });
}

/// A file changed on the client's disk after the mirror saw it: the tool plans from the
/// mirror's content, the write-back finds a hash on disk the edit was not based on, and
/// nothing is written, the current file included.
#[test]
fn an_edit_planned_on_a_stale_file_is_refused_and_nothing_changes() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        std::fs::write(f.root.join("report.py"), "import os\n\n# edited by hand\n").unwrap();
        let before = f.tree();
        // app.py (written first) is current; report.py is not.
        let changes = json!({f.path("app.py"): [edit(0, 0, 0, "# first\n")], f.path("report.py"): [edit(0, 0, 0, "# second\n")]});
        let refused = f
            .err("apply_workspace_edit", json!({"changes": changes}))
            .await;
        assert!(
            refused.contains("conflict") && refused.contains(&f.path("report.py")),
            "{refused}"
        );
        assert_eq!(f.tree(), before, "nothing was written, app.py included");
        // A rename computed from the stale mirror is refused the same way.
        let refused = f.err("rename_symbol", rename_scale(false)).await;
        assert!(refused.contains("conflict"), "{refused}");
        assert_eq!(f.tree(), before);
    });
}

#[test]
fn an_atomic_batch_whose_third_operation_fails_leaves_every_file_as_it_was() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let before = f.tree();
        let mirror_before = f.mirror("app.py");
        let bad = json!({f.path("report.py"): [edit(99, 0, 1, "x")]});
        let result = f.ok("batch_execute", json!({"operations": [
            {"id": "rename", "tool": "rename_symbol", "args": rename_scale(false)},
            {"id": "create", "tool": "create_file", "args": {"file_path": "new.py", "content": "N = 1\n"}},
            {"id": "bad", "tool": "apply_workspace_edit", "args": {"changes": bad}},
            {"id": "never", "tool": "create_file", "args": {"file_path": "never.py"}}
        ], "options": {"atomic": true}})).await.structured;
        assert_eq!(
            (&result["success"], &result["rolled_back"]),
            (&json!(false), &json!(true)),
            "{result}"
        );
        let status: Vec<&str> = result["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect();
        assert_eq!(status, ["ok", "ok", "error", "skipped"]);
        assert!(
            result["results"][2]["error"]
                .as_str()
                .unwrap()
                .contains("past the end")
        );
        assert_eq!(
            result["restored"].as_array().unwrap().len(),
            4,
            "3 edited + 1 created: {result}"
        );
        assert_eq!(f.tree(), before, "every file as it was");
        assert_eq!(f.mirror("app.py"), mirror_before);
        assert_eq!(f.mirror("new.py"), None);
    });
}

fn rename_and_create(options: serde_json::Value) -> serde_json::Value {
    json!({"operations": [
        {"tool": "rename_symbol", "args": rename_scale(false)},
        {"tool": "create_file", "args": {"file_path": "new.py", "content": "N = 1\n"}}
    ], "options": options})
}

#[test]
fn a_dry_run_batch_reports_every_operation_and_writes_nothing() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let before = f.tree();
        let dry = f
            .ok(
                "batch_execute",
                rename_and_create(json!({"dry_run": true, "parallel": true})),
            )
            .await
            .structured;
        assert_eq!(dry["success"], true, "{dry}");
        assert_eq!(dry["results"][0]["result"]["dry_run"], true);
        assert_eq!(
            dry["results"][1]["result"]["files"][0]["content"],
            "N = 1\n"
        );
        assert_eq!(f.tree(), before);
    });
}

#[test]
fn an_atomic_batch_that_succeeds_keeps_its_writes() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let real = f
            .ok("batch_execute", rename_and_create(json!({"atomic": true})))
            .await
            .structured;
        assert_eq!(real["success"], true, "{real}");
        assert_eq!(f.read("new.py"), "N = 1\n");
        assert!(f.read("app.py").contains("resize"));
    });
}

#[test]
fn apply_workspace_edit_dry_run_then_applied_by_uri_and_path() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let before = f.tree();
        let changes = json!({
            format!("file://{}", f.path("report.py")): [edit(5, 4, 10, "summary")],
            f.path("app.py"): [edit(9, 0, 5, "grand_total")]
        });
        let dry = f
            .ok(
                "apply_workspace_edit",
                json!({"changes": changes, "dry_run": true}),
            )
            .await
            .structured;
        assert_eq!(dry["files_changed"], 2);
        assert_eq!(f.tree(), before);
        f.ok("apply_workspace_edit", json!({"changes": changes}))
            .await;
        assert!(
            f.read("report.py").contains("\ndef summary(x):\n"),
            "{}",
            f.read("report.py")
        );
        assert!(f.read("app.py").ends_with("grand_total = scale(3, 4)\n"));
    });
}

#[test]
fn overlapping_edits_are_refused_and_nothing_is_written() {
    block_on(async {
        let f = Fixture::fresh(PY).await;
        let before = f.tree();
        let overlapping = json!({f.path("app.py"): [edit(0, 0, 4, "a"), edit(0, 2, 6, "b")]});
        let refused = f
            .err("apply_workspace_edit", json!({"changes": overlapping}))
            .await;
        assert!(refused.contains("overlap"), "{refused}");
        assert_eq!(f.tree(), before);
    });
}

/// The old name still written elsewhere (here another symbol of the same name) is listed;
/// `verify` (the default) writes nothing, `verify: false` writes and still lists it.
#[test]
fn leftovers_of_the_old_name_refuse_the_rename_unless_verify_is_off() {
    block_on(async {
        let f = Fixture::from_files(
            "py-leftovers",
            &[
                ("a.py", "def f():\n    return 1\n\n\nf()\n"),
                ("b.py", "def g():\n    f = 2\n    return f\n"),
            ],
        )
        .await;
        let before = f.tree();
        let args = json!({"file_path": "a.py", "symbol_name": "f", "new_name": "h"});
        let out = f.ok("rename_symbol", args.clone()).await;
        assert_eq!(
            (&out.structured["applied"], &out.structured["refused"]),
            (&json!(false), &json!(true)),
            "{}",
            out.text
        );
        assert_eq!(out.structured["leftovers"][0]["path"], f.path("b.py"));
        assert_eq!(out.structured["leftovers"].as_array().unwrap().len(), 2);
        assert!(out.text.contains("nothing was written"), "{}", out.text);
        assert_eq!(f.tree(), before);

        let mut args = args;
        args["verify"] = json!(false);
        let out = f.ok("rename_symbol", args).await;
        assert_eq!(out.structured["applied"], true, "{}", out.text);
        assert!(
            out.text.contains("still appears in 2 place(s)"),
            "{}",
            out.text
        );
        assert_eq!(f.read("a.py"), "def h():\n    return 1\n\n\nh()\n");
        assert_eq!(f.read("b.py"), before["b.py"]);
    });
}

#[test]
fn a_refused_rename_in_a_dry_run_batch_says_dry_run() {
    block_on(async {
        let f = Fixture::from_files(
            "py-batch-refusal",
            &[
                ("a.py", "def f():\n    return 1\n\n\nf()\n"),
                ("b.py", "def g():\n    f = 2\n    return f\n"),
                (
                    "c.py",
                    "class K:\n    def run(self):\n        pass\n\n\ndef run():\n    pass\n",
                ),
            ],
        )
        .await;
        let before = f.tree();
        let out = f
            .ok(
                "batch_execute",
                json!({
                    "operations": [
                        {"tool": "rename_symbol", "args": {"file_path": "a.py", "symbol_name": "f", "new_name": "h"}},
                        {"tool": "rename_symbol", "args": {"file_path": "c.py", "symbol_name": "run", "new_name": "go"}}
                    ],
                    "options": {"dry_run": true}
                }),
            )
            .await;
        let results = out.structured["results"].as_array().unwrap();
        // Refused for leftovers, and ambiguous: neither wrote, and both say it was a dry run.
        assert_eq!(results[0]["result"]["refused"], true, "{}", out.text);
        for r in results {
            assert_eq!(r["result"]["dry_run"], true, "{}", out.text);
            assert_eq!(r["result"]["applied"], false, "{}", out.text);
        }
        assert_eq!(f.tree(), before);
    });
}
