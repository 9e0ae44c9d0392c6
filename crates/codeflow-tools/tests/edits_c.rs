//! The write tools on the C fixture, in-process against a real clangd. Each test writes to its
//! own fresh copy and asserts the tool's structuredContent and the files on the client's disk
//! (and the mirror where it matters).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{Fixture, block_on, changed, edit, edits_of};
use serde_json::json;

const C: &str = "c";
const INCLUDERS: [&str; 3] = ["main.c", "shapes.c", "broken.c"];

/// `report` (main.c line 3) is file-local: clangd renames it without an index.
#[test]
fn a_strict_rename_of_a_static_function() {
    block_on(async {
        let f = Fixture::fresh(C).await;
        let before = f.read("main.c");
        let done = f
            .ok(
                "rename_symbol_strict",
                json!({"file_path": "main.c", "line": 3, "character": 15, "new_name": "summary"}),
            )
            .await
            .structured;
        assert_eq!(changed(&done)[&f.path("main.c")], "edit");
        assert_eq!(f.read("main.c"), before.replace("report", "summary"));
    });
}

/// `scale` is declared in shapes.h, defined in shapes.c and called in main.c. clangd runs
/// with --background-index=false and only knows the files open on it; the tool opens the files
/// that mention the name first, so all three are renamed.
#[test]
fn a_cross_file_rename_without_an_index() {
    block_on(async {
        let f = Fixture::fresh(C).await;
        let before = f.tree();
        let done = f
            .ok(
                "rename_symbol",
                json!({"file_path": "shapes.c", "symbol_name": "scale", "new_name": "rescale"}),
            )
            .await
            .structured;
        let expected: BTreeMap<String, String> = ["main.c", "shapes.c", "shapes.h"]
            .iter()
            .map(|r| (f.path(r), "edit".to_owned()))
            .collect();
        assert_eq!(changed(&done), expected, "{done}");
        assert_eq!(
            edits_of(&done, &f.path("main.c")),
            [
                (4, 12, "rescale".to_owned()),
                (10, 18, "rescale".to_owned())
            ]
        );
        for rel in ["main.c", "shapes.c", "shapes.h"] {
            assert_eq!(
                f.read(rel),
                before[rel].replace("scale(", "rescale("),
                "{rel}"
            );
        }
        assert_eq!(
            f.read("broken.c"),
            before["broken.c"],
            "does not mention it"
        );
        assert_eq!(f.mirror("shapes.h"), Some(f.read("shapes.h")));
    });
}

#[test]
fn format_document_with_clang_format() {
    block_on(async {
        let f = Fixture::fresh(C).await;
        f.ok(
            "create_file",
            json!({"file_path": "messy.c", "content": "int   f(int a){return a+1;}\n"}),
        )
        .await;
        f.ok("format_document", json!({"file_path": "messy.c"}))
            .await;
        assert_eq!(f.read("messy.c"), "int f(int a) { return a + 1; }\n");
    });
}

/// A sharper pi, and broken.c's unknown name fixed (one file named by URI).
#[test]
fn apply_workspace_edit_on_two_files() {
    block_on(async {
        let f = Fixture::fresh(C).await;
        let broken = f.read("broken.c");
        let changes = json!({
            f.path("shapes.c"): [edit(3, 11, 15, "3.14159")],
            format!("file://{}", f.path("broken.c")): [edit(3, 11, 24, "0")],
        });
        let applied = f
            .ok("apply_workspace_edit", json!({"changes": changes}))
            .await
            .structured;
        assert_eq!(applied["files_changed"], 2, "{applied}");
        assert!(
            f.read("shapes.c")
                .contains("\n    return 3.14159 * c->radius * c->radius;\n")
        );
        assert_eq!(f.read("broken.c"), broken.replace("missing_value", "0"));
        assert_eq!(f.mirror("broken.c"), Some(f.read("broken.c")));
    });
}

/// clangd 14 offers no source.organizeImports action.
#[test]
fn organize_imports_is_a_clear_error_on_clangd() {
    block_on(async {
        let f = Fixture::fresh(C).await;
        let before = f.read("main.c");
        let refused = f
            .err("organize_imports", json!({"file_path": "main.c"}))
            .await;
        assert!(
            refused.contains("clangd") && refused.contains("source.organizeImports"),
            "{refused}"
        );
        assert_eq!(f.read("main.c"), before);
    });
}

#[test]
fn rename_file_of_a_header_rewrites_every_include() {
    block_on(async {
        let f = Fixture::fresh(C).await;
        let header = f.read("shapes.h");
        let moved = f
            .ok(
                "rename_file",
                json!({"old_path": "shapes.h", "new_path": "include/shapes.h"}),
            )
            .await
            .structured;
        assert_eq!(moved["imports_updated_by"], json!(["text"]), "{moved}");
        for rel in INCLUDERS {
            assert!(
                f.read(rel).starts_with("#include \"include/shapes.h\"\n"),
                "{rel}: {}",
                f.read(rel)
            );
        }
        assert_eq!(f.read("include/shapes.h"), header);
    });
}

#[test]
fn fix_imports_after_a_header_moved_by_hand() {
    block_on(async {
        let f = Fixture::fresh(C).await;
        std::fs::create_dir_all(f.root.join("inc")).unwrap();
        std::fs::rename(f.root.join("shapes.h"), f.root.join("inc/shapes.h")).unwrap();
        f.sync().await;
        let fixed = f
            .ok(
                "fix_imports",
                json!({"file_path": "inc/shapes.h", "old_path": "shapes.h"}),
            )
            .await
            .structured;
        assert_eq!(fixed["imports_fixed"], 3, "{fixed}");
        for rel in INCLUDERS {
            assert!(
                f.read(rel).starts_with("#include \"inc/shapes.h\"\n"),
                "{rel}: {}",
                f.read(rel)
            );
        }
    });
}

/// clangd has no willRenameFiles: CodeFlow rewrites the #includes.
#[test]
fn rename_directory_rewrites_the_includes() {
    block_on(async {
        let f = Fixture::fresh(C).await;
        let header = f.read("shapes.h");
        f.ok(
            "rename_file",
            json!({"old_path": "shapes.h", "new_path": "inc/shapes.h"}),
        )
        .await;
        let dir = f
            .ok(
                "rename_directory",
                json!({"old_path": "inc", "new_path": "include"}),
            )
            .await
            .structured;
        assert_eq!(
            dir["moved"],
            json!([{"from": f.path("inc/shapes.h"), "to": f.path("include/shapes.h")}]),
            "{dir}"
        );
        assert_eq!(dir["imports_updated_by"], json!(["text"]), "{dir}");
        assert!(!f.exists("inc/shapes.h"));
        assert_eq!(f.read("include/shapes.h"), header);
        for rel in INCLUDERS {
            assert!(
                f.read(rel).starts_with("#include \"include/shapes.h\"\n"),
                "{rel}: {}",
                f.read(rel)
            );
            assert_eq!(f.mirror(rel), Some(f.read(rel)));
        }
    });
}

#[test]
fn delete_file_is_refused_while_included_then_forced() {
    block_on(async {
        let f = Fixture::fresh(C).await;
        let refused = f.err("delete_file", json!({"file_path": "shapes.h"})).await;
        for rel in INCLUDERS {
            assert!(
                refused.contains(&format!("{}:1", f.path(rel))),
                "{rel}: {refused}"
            );
        }
        assert!(refused.contains("3 place(s)"), "{refused}");
        assert!(f.exists("shapes.h"));
        let deleted = f
            .ok(
                "delete_file",
                json!({"file_path": "shapes.h", "force": true}),
            )
            .await
            .structured;
        let mut importers: Vec<String> =
            serde_json::from_value(deleted["importers"].clone()).unwrap();
        importers.sort();
        assert_eq!(
            importers,
            ["broken.c", "main.c", "shapes.c"].map(|r| format!("{}:1", f.path(r)))
        );
        assert!(!f.exists("shapes.h"));
        assert_eq!(f.mirror("shapes.h"), None);
    });
}
