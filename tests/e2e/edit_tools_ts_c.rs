//! The write tools on TypeScript (typescript-language-server) and C (clangd) end to end: the
//! real server and relay binaries on temporary copies of `tests/fixtures`. One project per
//! language runs the tools in sequence; every step asserts the tool's structuredContent and
//! the files on the client's disk (and the server's mirror where it matters).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use codeflow_e2e::tools::Project;
use serde_json::{Value, json};

/// path → action of each file a result says it changed.
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

/// The 1-based `(line, character)` starts and new texts of one file's edits in a result.
fn edits_of(structured: &Value, path: &str) -> Vec<(u64, u64, String)> {
    let file = structured["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in {structured}"));
    let mut out: Vec<_> = file["edits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["range"]["start"]["line"].as_u64().unwrap(),
                e["range"]["start"]["character"].as_u64().unwrap(),
                e["new_text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// An LSP (0-based) range replaced by `text`.
fn edit(line: u32, from: u32, to: u32, text: &str) -> Value {
    json!({"range": {"start": {"line": line, "character": from}, "end": {"line": line, "character": to}}, "newText": text})
}

// ---------------------------------------------------------------- TypeScript

#[tokio::test]
async fn typescript_strict_rename_edit_fix_imports_move_directory_and_delete() {
    let p = Project::start_synced("typescript", "edit-ts-c-ts").await;
    let app = p.read("src/app.ts");
    let shapes = p.read("src/shapes.ts");
    let broken = p.read("src/broken.ts");

    // rename_symbol_strict at `export class Circle` (src/shapes.ts:6:14): a dry run first.
    let args =
        json!({"file_path": "src/shapes.ts", "line": 6, "character": 14, "new_name": "Disc"});
    let mut dry_args = args.clone();
    dry_args["dry_run"] = json!(true);
    let (_, dry) = p.ok("rename_symbol_strict", dry_args).await;
    assert_eq!(
        (dry["dry_run"].clone(), dry["applied"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(
        edits_of(&dry, &p.path("src/app.ts")),
        [(1, 10, "Disc".to_owned()), (7, 20, "Disc".to_owned())],
        "the import and the `new Circle(2)`: {dry}"
    );
    assert_eq!(
        edits_of(&dry, &p.path("src/shapes.ts")),
        [(6, 14, "Disc".to_owned())]
    );
    assert_eq!(p.read("src/app.ts"), app, "a dry run writes nothing");
    let (_, done) = p.ok("rename_symbol_strict", args).await;
    assert_eq!(done["applied"], true);
    assert_eq!(
        changed(&done),
        BTreeMap::from([
            (p.path("src/app.ts"), "edit".to_owned()),
            (p.path("src/shapes.ts"), "edit".to_owned()),
        ])
    );
    assert_eq!(p.read("src/app.ts"), app.replace("Circle", "Disc"));
    assert_eq!(
        p.read("src/shapes.ts"),
        shapes.replace("class Circle", "class Disc")
    );
    assert_eq!(p.mirror("src/app.ts"), Some(p.read("src/app.ts")));

    // apply_workspace_edit on two files, one named by URI: broken.ts's `"three"` becomes 3
    // and app.ts gets a first-line comment.
    let changes = json!({
        format!("file://{}", p.path("src/broken.ts")): [edit(2, 29, 36, "3")],
        p.path("src/app.ts"): [edit(0, 0, 0, "// shapes\n")],
    });
    let (_, applied) = p
        .ok("apply_workspace_edit", json!({"changes": changes}))
        .await;
    assert_eq!(applied["files_changed"], 2, "{applied}");
    assert_eq!(
        p.read("src/broken.ts"),
        broken.replace("= \"three\";", "= 3;")
    );
    assert!(
        p.read("src/broken.ts")
            .contains("export const count: number = 3;\n")
    );
    assert_eq!(
        p.read("src/app.ts"),
        format!("// shapes\n{}", app.replace("Circle", "Disc"))
    );
    assert_eq!(p.mirror("src/broken.ts"), Some(p.read("src/broken.ts")));

    // fix_imports after `mv src/shapes.ts src/lib/shapes.ts` on the client's disk.
    std::fs::create_dir_all(p.root.join("src/lib")).unwrap();
    std::fs::rename(
        p.root.join("src/shapes.ts"),
        p.root.join("src/lib/shapes.ts"),
    )
    .unwrap();
    let (_, fixed) = p
        .ok(
            "fix_imports",
            json!({"file_path": "src/lib/shapes.ts", "old_path": "src/shapes.ts"}),
        )
        .await;
    assert_eq!(fixed["imports_fixed"], 2, "{fixed}");
    assert_eq!(
        changed(&fixed),
        BTreeMap::from([
            (p.path("src/app.ts"), "edit".to_owned()),
            (p.path("src/broken.ts"), "edit".to_owned()),
        ])
    );
    assert_eq!(
        p.read("src/app.ts").lines().nth(1),
        Some("import { Disc, Shape, scale } from \"./lib/shapes\";")
    );
    assert!(
        p.read("src/broken.ts")
            .starts_with("import { scale } from \"./lib/shapes\";\n"),
        "{}",
        p.read("src/broken.ts")
    );

    // rename_directory src/lib → src/geo, imports through typescript-language-server.
    let (_, dir) = p
        .ok(
            "rename_directory",
            json!({"old_path": "src/lib", "new_path": "src/geo"}),
        )
        .await;
    assert_eq!(
        dir["moved"],
        json!([{"from": p.path("src/lib/shapes.ts"), "to": p.path("src/geo/shapes.ts")}]),
        "{dir}"
    );
    assert!(
        dir["imports_updated_by"]
            .to_string()
            .contains("typescript-language-server (workspace/willRenameFiles)"),
        "{dir}"
    );
    assert_eq!(changed(&dir)[&p.path("src/geo/shapes.ts")], "rename");
    assert!(!p.root.join("src/lib/shapes.ts").exists());
    assert_eq!(
        p.read("src/geo/shapes.ts"),
        shapes.replace("class Circle", "class Disc")
    );
    assert_eq!(
        p.read("src/app.ts").lines().nth(1),
        Some("import { Disc, Shape, scale } from \"./geo/shapes\";"),
        "{dir}"
    );
    assert!(
        p.read("src/broken.ts")
            .starts_with("import { scale } from \"./geo/shapes\";\n"),
        "{}",
        p.read("src/broken.ts")
    );
    assert_eq!(
        p.mirror("src/geo/shapes.ts"),
        Some(p.read("src/geo/shapes.ts"))
    );
    assert_eq!(p.mirror("src/lib/shapes.ts"), None);

    // delete_file: refused while imported (naming each importer), then forced.
    let refused = p
        .err("delete_file", json!({"file_path": "src/geo/shapes.ts"}))
        .await;
    assert!(
        refused.contains(&format!("{}:2", p.path("src/app.ts")))
            && refused.contains(&format!("{}:1", p.path("src/broken.ts")))
            && refused.contains("2 place(s)"),
        "{refused}"
    );
    assert!(p.root.join("src/geo/shapes.ts").exists());
    let (_, deleted) = p
        .ok(
            "delete_file",
            json!({"file_path": "src/geo/shapes.ts", "force": true}),
        )
        .await;
    assert_eq!(
        deleted["importers"],
        json!([
            format!("{}:2", p.path("src/app.ts")),
            format!("{}:1", p.path("src/broken.ts"))
        ]),
        "{deleted}"
    );
    assert_eq!(
        changed(&deleted),
        BTreeMap::from([(p.path("src/geo/shapes.ts"), "delete".to_owned())])
    );
    assert!(!p.root.join("src/geo/shapes.ts").exists());
    assert_eq!(p.mirror("src/geo/shapes.ts"), None);
    assert!(
        p.read("src/app.ts").contains("from \"./geo/shapes\""),
        "importers untouched"
    );
}

// ---------------------------------------------------------------- C (clangd)

#[tokio::test]
async fn c_cross_file_rename_edit_organize_fix_includes_move_directory_and_delete() {
    let p = Project::start_synced("c", "edit-ts-c-c").await;
    let main_c = p.read("main.c");
    let shapes_c = p.read("shapes.c");
    let shapes_h = p.read("shapes.h");
    let broken_c = p.read("broken.c");

    // rename_symbol of `scale`, declared in shapes.h, defined in shapes.c and called in main.c.
    // clangd runs with --background-index=false and only knows the files open on it; the tool
    // opens the files that mention the name first, so all three are renamed (before that fix,
    // only the file the call named was, and the build broke).
    let (_, done) = p
        .ok(
            "rename_symbol",
            json!({"file_path": "shapes.c", "symbol_name": "scale", "new_name": "rescale"}),
        )
        .await;
    assert_eq!(
        changed(&done),
        BTreeMap::from([
            (p.path("main.c"), "edit".to_owned()),
            (p.path("shapes.c"), "edit".to_owned()),
            (p.path("shapes.h"), "edit".to_owned()),
        ]),
        "{done}"
    );
    assert_eq!(
        edits_of(&done, &p.path("main.c")),
        [
            (4, 12, "rescale".to_owned()),
            (10, 18, "rescale".to_owned())
        ]
    );
    assert_eq!(p.read("main.c"), main_c.replace("scale(", "rescale("));
    assert_eq!(p.read("shapes.c"), shapes_c.replace("scale(", "rescale("));
    assert_eq!(p.read("shapes.h"), shapes_h.replace("scale(", "rescale("));
    assert_eq!(p.read("broken.c"), broken_c, "does not mention it");
    assert_eq!(p.mirror("shapes.h"), Some(p.read("shapes.h")));

    // apply_workspace_edit on two files: a sharper pi, and broken.c's unknown name fixed.
    let changes = json!({
        p.path("shapes.c"): [edit(3, 11, 15, "3.14159")],
        format!("file://{}", p.path("broken.c")): [edit(3, 11, 24, "0")],
    });
    let (_, applied) = p
        .ok("apply_workspace_edit", json!({"changes": changes}))
        .await;
    assert_eq!(applied["files_changed"], 2, "{applied}");
    assert!(
        p.read("shapes.c")
            .contains("\n    return 3.14159 * c->radius * c->radius;\n")
    );
    assert_eq!(p.read("broken.c"), broken_c.replace("missing_value", "0"));
    assert_eq!(p.mirror("broken.c"), Some(p.read("broken.c")));

    // organize_imports: clangd 14 offers no source.organizeImports action.
    let before = p.read("main.c");
    let refused = p
        .err("organize_imports", json!({"file_path": "main.c"}))
        .await;
    assert!(
        refused.contains("clangd") && refused.contains("source.organizeImports"),
        "{refused}"
    );
    assert_eq!(p.read("main.c"), before);

    // fix_imports after `mv shapes.h inc/shapes.h` on the client's disk.
    std::fs::create_dir_all(p.root.join("inc")).unwrap();
    std::fs::rename(p.root.join("shapes.h"), p.root.join("inc/shapes.h")).unwrap();
    let (_, fixed) = p
        .ok(
            "fix_imports",
            json!({"file_path": "inc/shapes.h", "old_path": "shapes.h"}),
        )
        .await;
    assert_eq!(fixed["imports_fixed"], 3, "{fixed}");
    for f in ["main.c", "shapes.c", "broken.c"] {
        assert!(
            p.read(f).starts_with("#include \"inc/shapes.h\"\n"),
            "{f}: {}",
            p.read(f)
        );
    }

    // rename_directory inc → include: CodeFlow rewrites the #includes (clangd has no
    // willRenameFiles).
    let (_, dir) = p
        .ok(
            "rename_directory",
            json!({"old_path": "inc", "new_path": "include"}),
        )
        .await;
    assert_eq!(
        dir["moved"],
        json!([{"from": p.path("inc/shapes.h"), "to": p.path("include/shapes.h")}]),
        "{dir}"
    );
    assert_eq!(dir["imports_updated_by"], json!(["text"]), "{dir}");
    assert!(!p.root.join("inc/shapes.h").exists());
    assert_eq!(
        p.read("include/shapes.h"),
        shapes_h.replace("scale(", "rescale(")
    );
    for f in ["main.c", "shapes.c", "broken.c"] {
        assert!(
            p.read(f).starts_with("#include \"include/shapes.h\"\n"),
            "{f}: {}",
            p.read(f)
        );
        assert_eq!(p.mirror(f), Some(p.read(f)));
    }

    // delete_file: refused while included (naming each includer), then forced.
    let refused = p
        .err("delete_file", json!({"file_path": "include/shapes.h"}))
        .await;
    for f in ["main.c", "shapes.c", "broken.c"] {
        assert!(
            refused.contains(&format!("{}:1", p.path(f))),
            "{f}: {refused}"
        );
    }
    assert!(refused.contains("3 place(s)"), "{refused}");
    assert!(p.root.join("include/shapes.h").exists());
    let (_, deleted) = p
        .ok(
            "delete_file",
            json!({"file_path": "include/shapes.h", "force": true}),
        )
        .await;
    let mut importers: Vec<String> = deleted["importers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    importers.sort();
    assert_eq!(
        importers,
        ["broken.c", "main.c", "shapes.c"].map(|f| format!("{}:1", p.path(f)))
    );
    assert!(!p.root.join("include/shapes.h").exists());
    assert_eq!(p.mirror("include/shapes.h"), None);
}
