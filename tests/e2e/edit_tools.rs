//! The write tools end to end: the real server and relay binaries, real language servers, on
//! temporary copies of `tests/fixtures`. Every test asserts what the tool returned AND what the
//! client's disk (the relay's root) and the server's mirror hold afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use codeflow_e2e::Relay;
use codeflow_e2e::tools::{Project, fixture};
use serde_json::{Value, json};

/// Every file under a root: relative path → content.
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The structured result of a successful call.
fn ok(result: &Value) -> Value {
    assert_eq!(result["isError"], false, "tool failed: {result}");
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(!text.is_empty(), "no text content: {result}");
    result["structuredContent"].clone()
}

/// The text of a failed call.
fn err(result: &Value) -> String {
    assert_eq!(result["isError"], true, "tool should have failed: {result}");
    result["content"][0]["text"].as_str().unwrap().to_owned()
}

/// The paths a result says it changed, with their actions.
fn changed(structured: &Value) -> BTreeMap<String, String> {
    structured["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- Python (pylsp)

#[tokio::test]
async fn python_rename_dry_run_create_delete_and_move() {
    let p = Project::start_synced("python", "edit-py").await;
    let before = tree(&p.root);

    // Dry run: the exact edits, nothing changed.
    let dry = ok(&p
        .tool(
            "rename_symbol",
            json!({"file_path": "pkg/shapes.py", "symbol_name": "scale", "new_name": "resize", "dry_run": true}),
        )
        .await);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["applied"], false);
    let files = changed(&dry);
    for f in ["app.py", "report.py", "pkg/shapes.py"] {
        assert_eq!(
            files.get(&p.path(f)).map(String::as_str),
            Some("edit"),
            "{dry}"
        );
    }
    let shapes_edits = dry["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == p.path("pkg/shapes.py"))
        .unwrap()["edits"]
        .clone();
    // pylsp (jedi) answers with whole-file replacements: 1-based range from 1:1.
    assert!(
        shapes_edits
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["new_text"]
                .as_str()
                .unwrap()
                .contains("\ndef resize(value, factor):\n")
                && e["range"]["start"] == json!({"line": 1, "character": 1})),
        "{shapes_edits}"
    );
    assert_eq!(tree(&p.root), before, "a dry run changes nothing");

    // The rename: every file on the client's disk, and the mirror.
    let done = ok(&p
        .tool(
            "rename_symbol",
            json!({"file_path": "pkg/shapes.py", "symbol_name": "scale", "new_name": "resize"}),
        )
        .await);
    assert_eq!(done["applied"], true);
    assert_eq!(
        p.read("app.py"),
        before["app.py"].replace("scale", "resize"),
        "app.py on the client"
    );
    assert_eq!(
        p.read("report.py"),
        before["report.py"].replace("scale", "resize")
    );
    assert_eq!(
        p.read("pkg/shapes.py"),
        before["pkg/shapes.py"].replace("def scale", "def resize")
    );
    assert_eq!(p.mirror("report.py"), Some(p.read("report.py")));
    // The language server sees the new text: the old name is gone.
    let again = p
        .tool(
            "rename_symbol",
            json!({"file_path": "pkg/shapes.py", "symbol_name": "scale", "new_name": "x"}),
        )
        .await;
    assert!(
        again["isError"] == true || again["structuredContent"]["applied"] == false,
        "{again}"
    );

    // Strict rename at a position (line 4, `class Circle`).
    let strict = ok(&p
        .tool(
            "rename_symbol_strict",
            json!({"file_path": p.path("pkg/shapes.py"), "line": 4, "character": 8, "new_name": "Disc"}),
        )
        .await);
    assert!(changed(&strict).contains_key(&p.path("app.py")), "{strict}");
    assert!(
        p.read("app.py")
            .starts_with("from pkg.shapes import Disc, resize\n")
    );
    assert!(p.read("pkg/shapes.py").contains("class Disc:"));

    // create_file: on disk and in the mirror; refuses to overwrite.
    let created = ok(&p
        .tool(
            "create_file",
            json!({"file_path": "pkg/extra.py", "content": "from pkg.shapes import resize\n\nTEN = resize(5, 2)\n"}),
        )
        .await);
    assert_eq!(changed(&created)[&p.path("pkg/extra.py")], "create");
    assert_eq!(
        p.read("pkg/extra.py"),
        "from pkg.shapes import resize\n\nTEN = resize(5, 2)\n"
    );
    assert_eq!(p.mirror("pkg/extra.py"), Some(p.read("pkg/extra.py")));
    let again = err(&p
        .tool("create_file", json!({"file_path": "pkg/extra.py"}))
        .await);
    assert!(again.contains("already exists"), "{again}");
    ok(&p
        .tool(
            "create_file",
            json!({"file_path": "pkg/extra.py", "content": "X = 1\n", "overwrite": true}),
        )
        .await);
    assert_eq!(p.read("pkg/extra.py"), "X = 1\n");

    // delete_file: refused while imported, forced, and plain.
    let refused = err(&p
        .tool("delete_file", json!({"file_path": "pkg/shapes.py"}))
        .await);
    assert!(
        refused.contains(&format!("{}:1", p.path("app.py")))
            && refused.contains(&format!("{}:3", p.path("report.py"))),
        "names the importers: {refused}"
    );
    assert!(p.root.join("pkg/shapes.py").exists());
    ok(&p
        .tool("delete_file", json!({"file_path": "pkg/extra.py"}))
        .await);
    assert!(!p.root.join("pkg/extra.py").exists());
    assert_eq!(p.mirror("pkg/extra.py"), None, "gone from the mirror too");

    // fix_imports after a move done by hand (mv on the client's disk).
    std::fs::rename(p.root.join("pkg/shapes.py"), p.root.join("geo.py")).unwrap();
    let fixed = ok(&p
        .tool(
            "fix_imports",
            json!({"file_path": "geo.py", "old_path": "pkg/shapes.py"}),
        )
        .await);
    assert_eq!(fixed["imports_fixed"], 2, "{fixed}");
    assert!(
        p.read("app.py")
            .starts_with("from geo import Disc, resize\n"),
        "{}",
        p.read("app.py")
    );
    assert!(p.read("report.py").contains("\nfrom geo import resize\n"));

    // rename_file: pylsp has no willRenameFiles, so CodeFlow rewrites the imports.
    let moved = ok(&p
        .tool(
            "rename_file",
            json!({"old_path": "geo.py", "new_path": "pkg/geometry.py"}),
        )
        .await);
    assert_eq!(
        changed(&moved)[&p.path("pkg/geometry.py")],
        "rename",
        "{moved}"
    );
    assert_eq!(moved["imports_updated_by"], json!(["text"]));
    assert!(!p.root.join("geo.py").exists());
    assert!(p.read("pkg/geometry.py").contains("class Disc:"));
    assert!(
        p.read("app.py")
            .starts_with("from pkg.geometry import Disc, resize\n"),
        "{}",
        p.read("app.py")
    );
    assert!(
        p.read("report.py")
            .contains("\nfrom pkg.geometry import resize\n")
    );
    assert_eq!(p.mirror("geo.py"), None, "the mirror follows");
    assert_eq!(p.mirror("pkg/geometry.py"), Some(p.read("pkg/geometry.py")));

    // rename_directory: the package moves, its importers follow.
    ok(&p
        .tool(
            "create_file",
            json!({"file_path": "use_geo.py", "content": "from pkg.geometry import Disc\n"}),
        )
        .await);
    let dir = ok(&p
        .tool(
            "rename_directory",
            json!({"old_path": "pkg", "new_path": "lib"}),
        )
        .await);
    assert_eq!(
        dir["moved"].as_array().unwrap().len(),
        2,
        "__init__.py and geometry.py: {dir}"
    );
    assert!(p.root.join("lib/geometry.py").exists() && !p.root.join("pkg/geometry.py").exists());
    assert_eq!(p.read("use_geo.py"), "from lib.geometry import Disc\n");
    assert!(
        p.read("app.py")
            .starts_with("from lib.geometry import Disc, resize\n")
    );
    assert_eq!(p.mirror("lib/geometry.py"), Some(p.read("lib/geometry.py")));
}

// ---------------------------------------------------------------- TypeScript

#[tokio::test]
async fn typescript_rename_format_and_move_with_will_rename_files() {
    let p = Project::start_synced("typescript", "edit-ts").await;
    let before = tree(&p.root);

    let done = ok(&p
        .tool(
            "rename_symbol",
            json!({"file_path": "src/shapes.ts", "symbol_name": "scale", "new_name": "resize"}),
        )
        .await);
    let files = changed(&done);
    assert!(
        files.contains_key(&p.path("src/app.ts")) && files.contains_key(&p.path("src/shapes.ts")),
        "{done}"
    );
    assert_eq!(
        p.read("src/app.ts"),
        before["src/app.ts"].replace("scale", "resize")
    );
    assert_eq!(
        p.read("src/broken.ts"),
        before["src/broken.ts"].replace("scale", "resize")
    );
    assert!(
        p.read("src/shapes.ts")
            .contains("export function resize(value: number")
    );

    // Several symbols match `area` (the interface's and the class's): candidates, no edit.
    let ambiguous = ok(&p
        .tool(
            "rename_symbol",
            json!({"file_path": "src/shapes.ts", "symbol_name": "area", "new_name": "size"}),
        )
        .await);
    assert_eq!(ambiguous["applied"], false);
    assert!(
        ambiguous["candidates"].as_array().unwrap().len() >= 2,
        "{ambiguous}"
    );
    assert!(p.read("src/shapes.ts").contains("area(): number;"));

    // format_document.
    ok(&p
        .tool(
            "create_file",
            json!({"file_path": "src/messy.ts", "content": "export const  x={a:1,b:[1,2]};\nexport function f( a:number ){return a}\n"}),
        )
        .await);
    let dry = ok(&p
        .tool(
            "format_document",
            json!({"file_path": "src/messy.ts", "options": {"tab_size": 2}, "dry_run": true}),
        )
        .await);
    assert!(
        !dry["files"][0]["edits"].as_array().unwrap().is_empty(),
        "{dry}"
    );
    assert!(
        p.read("src/messy.ts").starts_with("export const  x={"),
        "dry run left the file"
    );
    ok(&p
        .tool(
            "format_document",
            json!({"file_path": "src/messy.ts", "options": {"tab_size": 2}}),
        )
        .await);
    assert_eq!(
        p.read("src/messy.ts"),
        "export const x = { a: 1, b: [1, 2] };\nexport function f(a: number) { return a }\n"
    );

    // rename_file through typescript-language-server's willRenameFiles.
    let moved = ok(&p
        .tool(
            "rename_file",
            json!({"old_path": "src/shapes.ts", "new_path": "src/geo/shapes.ts"}),
        )
        .await);
    assert!(
        moved["imports_updated_by"]
            .to_string()
            .contains("typescript-language-server"),
        "{moved}"
    );
    assert!(
        p.read("src/app.ts").contains("from \"./geo/shapes\""),
        "{}",
        p.read("src/app.ts")
    );
    assert!(p.read("src/broken.ts").contains("from \"./geo/shapes\""));
    assert!(p.root.join("src/geo/shapes.ts").exists() && !p.root.join("src/shapes.ts").exists());
    assert_eq!(
        p.mirror("src/geo/shapes.ts"),
        Some(p.read("src/geo/shapes.ts"))
    );
}

// ---------------------------------------------------------------- C (clangd)

#[tokio::test]
async fn c_rename_format_and_move_header() {
    let p = Project::start_synced("c", "edit-c").await;
    let before = tree(&p.root);

    // `report` (main.c line 3) is file-local: clangd renames it without an index.
    let done = ok(&p
        .tool(
            "rename_symbol_strict",
            json!({"file_path": "main.c", "line": 3, "character": 15, "new_name": "summary"}),
        )
        .await);
    assert_eq!(changed(&done)[&p.path("main.c")], "edit");
    assert_eq!(
        p.read("main.c"),
        before["main.c"].replace("report", "summary")
    );

    ok(&p
        .tool(
            "create_file",
            json!({"file_path": "messy.c", "content": "int   f(int a){return a+1;}\n"}),
        )
        .await);
    ok(&p
        .tool("format_document", json!({"file_path": "messy.c"}))
        .await);
    assert_eq!(p.read("messy.c"), "int f(int a) { return a + 1; }\n");

    // Moving the header rewrites every #include of it.
    let moved = ok(&p
        .tool(
            "rename_file",
            json!({"old_path": "shapes.h", "new_path": "include/shapes.h"}),
        )
        .await);
    assert_eq!(moved["imports_updated_by"], json!(["text"]), "{moved}");
    for f in ["main.c", "shapes.c", "broken.c"] {
        assert!(
            p.read(f).starts_with("#include \"include/shapes.h\"\n"),
            "{f}: {}",
            p.read(f)
        );
    }
    assert_eq!(p.read("include/shapes.h"), before["shapes.h"]);
}

// ---------------------------------------------------------------- conflicts and batches

/// A real conflict, made deterministic: a second container with the same project id syncs a
/// different `app.py` into the shared mirror. The first container's disk did not change, so
/// its watcher reports nothing and its next tool computes the edit from the mirror's (other)
/// content; the write-back then finds a hash on disk the edit was not based on and writes
/// nothing.
#[tokio::test]
async fn a_conflicting_edit_is_refused_and_nothing_changes() {
    let p = Project::start_synced("python", "conflict").await;
    let before = tree(&p.root);
    let (_other_dir, other_root) = fixture("python");
    let edited = "import os\n\nfrom pkg.shapes import scale\n\n# edited in another container\ndef report(x):\n    return scale(x, 10)\n";
    std::fs::write(other_root.join("report.py"), edited).unwrap();
    let other = Relay::spawn(&p.server.url(), "conflict", &other_root, &[]);
    other.initialize().await;
    ok(&other.tool("health_check", json!({})).await);
    assert_eq!(p.mirror("report.py").as_deref(), Some(edited));

    let edit = |path: &str, text: &str| json!({path: [{"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "newText": text}]});
    // app.py (written first) is current; report.py is not.
    let mut changes = edit(&p.path("app.py"), "# first\n");
    changes[p.path("report.py")] = edit("x", "# second\n")["x"].clone();
    let refused = err(&p
        .tool("apply_workspace_edit", json!({"changes": changes}))
        .await);
    assert!(
        refused.contains("conflict") && refused.contains(&p.path("report.py")),
        "{refused}"
    );
    assert_eq!(
        tree(&p.root),
        before,
        "nothing was written, app.py included"
    );

    // A rename computed from the stale mirror is refused the same way.
    let refused = err(&p
        .tool(
            "rename_symbol",
            json!({"file_path": "pkg/shapes.py", "symbol_name": "scale", "new_name": "resize"}),
        )
        .await);
    assert!(refused.contains("conflict"), "{refused}");
    assert_eq!(tree(&p.root), before);
}

#[tokio::test]
async fn an_atomic_batch_whose_third_operation_fails_leaves_every_file_as_it_was() {
    let p = Project::start_synced("python", "batch").await;
    let before = tree(&p.root);
    let mirror_before = p.mirror("app.py");
    let bad_edit = json!({p.path("report.py"): [{"range": {"start": {"line": 99, "character": 0}, "end": {"line": 99, "character": 1}}, "newText": "x"}]});
    let result = ok(&p
        .tool(
            "batch_execute",
            json!({
                "operations": [
                    {"id": "rename", "tool": "rename_symbol", "args": {"file_path": "pkg/shapes.py", "symbol_name": "scale", "new_name": "resize"}},
                    {"id": "create", "tool": "create_file", "args": {"file_path": "new.py", "content": "N = 1\n"}},
                    {"id": "bad", "tool": "apply_workspace_edit", "args": {"changes": bad_edit}},
                    {"id": "never", "tool": "create_file", "args": {"file_path": "never.py"}}
                ],
                "options": {"atomic": true}
            }),
        )
        .await);
    assert_eq!(result["success"], false, "{result}");
    assert_eq!(result["rolled_back"], true);
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
    assert_eq!(tree(&p.root), before, "every file as it was");
    assert_eq!(p.mirror("app.py"), mirror_before);
    assert_eq!(p.mirror("new.py"), None);

    // Non-atomic dry run: every operation reports, nothing is written.
    let dry = ok(&p
        .tool(
            "batch_execute",
            json!({
                "operations": [
                    {"tool": "rename_symbol", "args": {"file_path": "pkg/shapes.py", "symbol_name": "scale", "new_name": "resize"}},
                    {"tool": "create_file", "args": {"file_path": "new.py", "content": "N = 1\n"}}
                ],
                "options": {"dry_run": true, "parallel": true}
            }),
        )
        .await);
    assert_eq!(dry["success"], true, "{dry}");
    assert_eq!(dry["results"][0]["result"]["dry_run"], true);
    assert_eq!(
        dry["results"][1]["result"]["files"][0]["content"],
        "N = 1\n"
    );
    assert_eq!(tree(&p.root), before);

    // The same batch for real keeps its writes.
    let real = ok(&p
        .tool(
            "batch_execute",
            json!({"operations": [
                {"tool": "rename_symbol", "args": {"file_path": "pkg/shapes.py", "symbol_name": "scale", "new_name": "resize"}},
                {"tool": "create_file", "args": {"file_path": "new.py", "content": "N = 1\n"}}
            ], "options": {"atomic": true}}),
        )
        .await);
    assert_eq!(real["success"], true, "{real}");
    assert_eq!(p.read("new.py"), "N = 1\n");
    assert!(p.read("app.py").contains("resize"));
}

#[tokio::test]
async fn apply_workspace_edit_validates_and_applies_all_or_nothing() {
    let p = Project::start_synced("python", "awe").await;
    let before = tree(&p.root);
    let uri = format!("file://{}", p.path("report.py"));
    let changes = json!({
        uri.clone(): [{"range": {"start": {"line": 5, "character": 4}, "end": {"line": 5, "character": 10}}, "newText": "summary"}],
        p.path("app.py"): [{"range": {"start": {"line": 9, "character": 0}, "end": {"line": 9, "character": 5}}, "newText": "grand_total"}]
    });
    let dry = ok(&p
        .tool(
            "apply_workspace_edit",
            json!({"changes": changes, "dry_run": true}),
        )
        .await);
    assert_eq!(dry["files_changed"], 2);
    assert_eq!(tree(&p.root), before);
    ok(&p
        .tool("apply_workspace_edit", json!({"changes": changes}))
        .await);
    assert!(
        p.read("report.py").contains("\ndef summary(x):\n"),
        "{}",
        p.read("report.py")
    );
    assert!(p.read("app.py").ends_with("grand_total = scale(3, 4)\n"));
    // Overlapping edits: refused, nothing written.
    let now = tree(&p.root);
    let overlapping = json!({p.path("app.py"): [
        {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 4}}, "newText": "a"},
        {"range": {"start": {"line": 0, "character": 2}, "end": {"line": 0, "character": 6}}, "newText": "b"}
    ]});
    let refused = err(&p
        .tool("apply_workspace_edit", json!({"changes": overlapping}))
        .await);
    assert!(refused.contains("overlap"), "{refused}");
    assert_eq!(tree(&p.root), now);
}

#[tokio::test]
async fn organize_imports_in_typescript_and_a_clear_error_elsewhere() {
    let p = Project::start_synced("typescript", "organize-ts").await;
    ok(&p
        .tool(
            "create_file",
            json!({"file_path": "src/messy_imports.ts", "content": "import { scale, Circle } from \"./shapes\";\n\nexport const n = scale(1, 2);\n"}),
        )
        .await);
    let done = ok(&p
        .tool(
            "organize_imports",
            json!({"file_path": "src/messy_imports.ts"}),
        )
        .await);
    assert_eq!(done["applied"], true, "{done}");
    // typescript-language-server sorts the named imports.
    assert_eq!(
        p.read("src/messy_imports.ts"),
        "import { Circle, scale } from \"./shapes\";\n\nexport const n = scale(1, 2);\n"
    );

    let py = Project::start_synced("python", "organize-py").await;
    let refused = err(&py
        .tool("organize_imports", json!({"file_path": "report.py"}))
        .await);
    assert!(
        refused.contains("pylsp") && refused.contains("organizeImports"),
        "{refused}"
    );
}
