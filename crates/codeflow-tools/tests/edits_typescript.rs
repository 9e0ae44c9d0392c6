//! The write tools on the TypeScript fixture, in-process against a real
//! typescript-language-server. Each test writes to its own fresh copy and asserts the tool's
//! structuredContent and the files on the client's disk (and the mirror where it matters).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{Fixture, block_on, changed, edit, edits_of};
use serde_json::json;

const TS: &str = "typescript";

fn edited(f: &Fixture, rels: &[&str]) -> BTreeMap<String, String> {
    rels.iter()
        .map(|r| (f.path(r), "edit".to_owned()))
        .collect()
}

#[test]
fn rename_symbol_rewrites_every_file() {
    block_on(async {
        let f = Fixture::fresh(TS).await;
        let before = f.tree();
        let done = f
            .ok(
                "rename_symbol",
                json!({"file_path": "src/shapes.ts", "symbol_name": "scale", "new_name": "resize"}),
            )
            .await
            .structured;
        let files = changed(&done);
        assert!(
            files.contains_key(&f.path("src/app.ts"))
                && files.contains_key(&f.path("src/shapes.ts")),
            "{done}"
        );
        assert_eq!(
            f.read("src/app.ts"),
            before["src/app.ts"].replace("scale", "resize")
        );
        assert_eq!(
            f.read("src/broken.ts"),
            before["src/broken.ts"].replace("scale", "resize")
        );
        assert!(
            f.read("src/shapes.ts")
                .contains("export function resize(value: number")
        );
    });
}

/// Several symbols match `area` (the interface's and the class's): candidates, no edit.
#[test]
fn an_ambiguous_rename_lists_candidates_and_edits_nothing() {
    block_on(async {
        let f = Fixture::fresh(TS).await;
        let out = f
            .ok(
                "rename_symbol",
                json!({"file_path": "src/shapes.ts", "symbol_name": "area", "new_name": "size"}),
            )
            .await
            .structured;
        assert_eq!(out["applied"], false);
        assert!(out["candidates"].as_array().unwrap().len() >= 2, "{out}");
        assert!(f.read("src/shapes.ts").contains("area(): number;"));
    });
}

#[test]
fn format_document_dry_run_then_applied() {
    block_on(async {
        let f = Fixture::fresh(TS).await;
        let messy = "export const  x={a:1,b:[1,2]};\nexport function f( a:number ){return a}\n";
        f.ok(
            "create_file",
            json!({"file_path": "src/messy.ts", "content": messy}),
        )
        .await;
        let dry = f
            .ok(
                "format_document",
                json!({"file_path": "src/messy.ts", "options": {"tab_size": 2}, "dry_run": true}),
            )
            .await
            .structured;
        assert!(
            !dry["files"][0]["edits"].as_array().unwrap().is_empty(),
            "{dry}"
        );
        assert_eq!(f.read("src/messy.ts"), messy, "a dry run leaves the file");
        f.ok(
            "format_document",
            json!({"file_path": "src/messy.ts", "options": {"tab_size": 2}}),
        )
        .await;
        assert_eq!(
            f.read("src/messy.ts"),
            "export const x = { a: 1, b: [1, 2] };\nexport function f(a: number) { return a }\n"
        );
    });
}

#[test]
fn rename_file_through_will_rename_files() {
    block_on(async {
        let f = Fixture::fresh(TS).await;
        let moved = f
            .ok(
                "rename_file",
                json!({"old_path": "src/shapes.ts", "new_path": "src/geo/shapes.ts"}),
            )
            .await
            .structured;
        assert!(
            moved["imports_updated_by"]
                .to_string()
                .contains("typescript-language-server"),
            "{moved}"
        );
        assert!(
            f.read("src/app.ts").contains("from \"./geo/shapes\""),
            "{}",
            f.read("src/app.ts")
        );
        assert!(f.read("src/broken.ts").contains("from \"./geo/shapes\""));
        assert!(f.exists("src/geo/shapes.ts") && !f.exists("src/shapes.ts"));
        assert_eq!(
            f.mirror("src/geo/shapes.ts"),
            Some(f.read("src/geo/shapes.ts"))
        );
    });
}

/// rename_symbol_strict at `export class Circle` (src/shapes.ts:6:14).
fn rename_circle(dry_run: bool) -> serde_json::Value {
    json!({"file_path": "src/shapes.ts", "line": 6, "character": 14, "new_name": "Disc", "dry_run": dry_run})
}

#[test]
fn a_strict_rename_dry_run_gives_the_exact_edits() {
    block_on(async {
        let f = Fixture::fresh(TS).await;
        let before = f.tree();
        let dry = f
            .ok("rename_symbol_strict", rename_circle(true))
            .await
            .structured;
        assert_eq!(
            (&dry["dry_run"], &dry["applied"]),
            (&json!(true), &json!(false))
        );
        assert_eq!(
            edits_of(&dry, &f.path("src/app.ts")),
            [(1, 10, "Disc".to_owned()), (7, 20, "Disc".to_owned())],
            "the import and the `new Circle(2)`: {dry}"
        );
        assert_eq!(
            edits_of(&dry, &f.path("src/shapes.ts")),
            [(6, 14, "Disc".to_owned())]
        );
        assert_eq!(f.tree(), before, "a dry run writes nothing");
    });
}

#[test]
fn a_strict_rename_writes_both_files_and_the_mirror() {
    block_on(async {
        let f = Fixture::fresh(TS).await;
        let before = f.tree();
        let done = f
            .ok("rename_symbol_strict", rename_circle(false))
            .await
            .structured;
        assert_eq!(done["applied"], true);
        assert_eq!(changed(&done), edited(&f, &["src/app.ts", "src/shapes.ts"]));
        assert_eq!(
            f.read("src/app.ts"),
            before["src/app.ts"].replace("Circle", "Disc")
        );
        assert_eq!(
            f.read("src/shapes.ts"),
            before["src/shapes.ts"].replace("class Circle", "class Disc")
        );
        assert_eq!(f.mirror("src/app.ts"), Some(f.read("src/app.ts")));
    });
}

/// Two files, one named by URI: broken.ts's `"three"` becomes 3 and app.ts gets a first line.
#[test]
fn apply_workspace_edit_on_two_files() {
    block_on(async {
        let f = Fixture::fresh(TS).await;
        let before = f.tree();
        let changes = json!({
            format!("file://{}", f.path("src/broken.ts")): [edit(2, 29, 36, "3")],
            f.path("src/app.ts"): [edit(0, 0, 0, "// shapes\n")],
        });
        let applied = f
            .ok("apply_workspace_edit", json!({"changes": changes}))
            .await
            .structured;
        assert_eq!(applied["files_changed"], 2, "{applied}");
        assert_eq!(
            f.read("src/broken.ts"),
            before["src/broken.ts"].replace("= \"three\";", "= 3;")
        );
        assert!(
            f.read("src/broken.ts")
                .contains("export const count: number = 3;\n")
        );
        assert_eq!(
            f.read("src/app.ts"),
            format!("// shapes\n{}", before["src/app.ts"])
        );
        assert_eq!(f.mirror("src/broken.ts"), Some(f.read("src/broken.ts")));
    });
}

#[test]
fn fix_imports_after_a_move_by_hand() {
    block_on(async {
        let f = Fixture::fresh(TS).await;
        std::fs::create_dir_all(f.root.join("src/lib")).unwrap();
        std::fs::rename(
            f.root.join("src/shapes.ts"),
            f.root.join("src/lib/shapes.ts"),
        )
        .unwrap();
        f.sync().await;
        let fixed = f
            .ok(
                "fix_imports",
                json!({"file_path": "src/lib/shapes.ts", "old_path": "src/shapes.ts"}),
            )
            .await
            .structured;
        assert_eq!(fixed["imports_fixed"], 2, "{fixed}");
        assert_eq!(
            changed(&fixed),
            edited(&f, &["src/app.ts", "src/broken.ts"])
        );
        assert_eq!(
            f.read("src/app.ts").lines().next(),
            Some("import { Circle, Shape, scale } from \"./lib/shapes\";")
        );
        assert!(
            f.read("src/broken.ts")
                .starts_with("import { scale } from \"./lib/shapes\";\n"),
            "{}",
            f.read("src/broken.ts")
        );
    });
}

#[test]
fn rename_directory_through_will_rename_files() {
    block_on(async {
        let f = Fixture::fresh(TS).await;
        let shapes = f.read("src/shapes.ts");
        f.ok(
            "rename_file",
            json!({"old_path": "src/shapes.ts", "new_path": "src/lib/shapes.ts"}),
        )
        .await;
        let dir = f
            .ok(
                "rename_directory",
                json!({"old_path": "src/lib", "new_path": "src/geo"}),
            )
            .await
            .structured;
        assert_eq!(
            dir["moved"],
            json!([{"from": f.path("src/lib/shapes.ts"), "to": f.path("src/geo/shapes.ts")}]),
            "{dir}"
        );
        assert!(
            dir["imports_updated_by"]
                .to_string()
                .contains("typescript-language-server (workspace/willRenameFiles)"),
            "{dir}"
        );
        assert_eq!(changed(&dir)[&f.path("src/geo/shapes.ts")], "rename");
        assert!(!f.exists("src/lib/shapes.ts"));
        assert_eq!(f.read("src/geo/shapes.ts"), shapes);
        assert_eq!(
            f.read("src/app.ts").lines().next(),
            Some("import { Circle, Shape, scale } from \"./geo/shapes\";"),
            "{dir}"
        );
        assert!(
            f.read("src/broken.ts")
                .starts_with("import { scale } from \"./geo/shapes\";\n"),
            "{}",
            f.read("src/broken.ts")
        );
        assert_eq!(
            f.mirror("src/geo/shapes.ts"),
            Some(f.read("src/geo/shapes.ts"))
        );
        assert_eq!(f.mirror("src/lib/shapes.ts"), None);
    });
}

#[test]
fn delete_file_is_refused_while_imported_then_forced() {
    block_on(async {
        let f = Fixture::fresh(TS).await;
        let importers = [
            format!("{}:1", f.path("src/app.ts")),
            format!("{}:1", f.path("src/broken.ts")),
        ];
        let refused = f
            .err("delete_file", json!({"file_path": "src/shapes.ts"}))
            .await;
        assert!(
            importers.iter().all(|i| refused.contains(i.as_str()))
                && refused.contains("2 place(s)"),
            "{refused}"
        );
        assert!(f.exists("src/shapes.ts"));
        let deleted = f
            .ok(
                "delete_file",
                json!({"file_path": "src/shapes.ts", "force": true}),
            )
            .await
            .structured;
        assert_eq!(deleted["importers"], json!(importers), "{deleted}");
        assert_eq!(
            changed(&deleted),
            BTreeMap::from([(f.path("src/shapes.ts"), "delete".to_owned())])
        );
        assert!(!f.exists("src/shapes.ts"));
        assert_eq!(f.mirror("src/shapes.ts"), None);
        assert!(
            f.read("src/app.ts").contains("from \"./shapes\""),
            "importers untouched"
        );
    });
}

/// typescript-language-server sorts the named imports.
#[test]
fn organize_imports_sorts_the_named_imports() {
    block_on(async {
        let f = Fixture::fresh(TS).await;
        let text = "import { scale, Circle } from \"./shapes\";\n\nexport const n = scale(1, 2);\n";
        f.ok(
            "create_file",
            json!({"file_path": "src/messy_imports.ts", "content": text}),
        )
        .await;
        let done = f
            .ok(
                "organize_imports",
                json!({"file_path": "src/messy_imports.ts"}),
            )
            .await
            .structured;
        assert_eq!(done["applied"], true, "{done}");
        assert_eq!(
            f.read("src/messy_imports.ts"),
            "import { Circle, scale } from \"./shapes\";\n\nexport const n = scale(1, 2);\n"
        );
        // Already organized: a success that says so and writes nothing (it used to be an
        // error claiming the server cannot organize imports).
        let again = f
            .ok(
                "organize_imports",
                json!({"file_path": "src/messy_imports.ts"}),
            )
            .await;
        assert!(again.text.contains("already organized"), "{}", again.text);
        assert_eq!(
            f.read("src/messy_imports.ts"),
            "import { Circle, scale } from \"./shapes\";\n\nexport const n = scale(1, 2);\n"
        );
    });
}
