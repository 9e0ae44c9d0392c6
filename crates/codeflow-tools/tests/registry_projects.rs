//! Behaviours found by using the tools on real projects from the package registries (google/uuid,
//! zod, semver, attrs), each reduced to a few files, in-process against the real language
//! servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{block_on, changed, places};
use serde_json::json;

/// google/uuid: renaming `Parse` failed whole ("gopls answered textDocument/definition with
/// error 0: no identifier found") because another file writes `time.Parse` inside a string,
/// where the check for uses the server missed asked gopls for a definition.
#[test]
fn a_go_rename_is_not_failed_by_the_old_name_inside_a_string() {
    block_on(async {
        let f = common::Fixture::from_files(
            "go-rename-string",
            &[
                ("go.mod", "module example.com/m\n\ngo 1.19\n"),
                (
                    "parse.go",
                    "package m\n\n// Parse counts s.\nfunc Parse(s string) int { return len(s) }\n\nfunc use() int { return Parse(\"x\") }\n",
                ),
                (
                    "clock.go",
                    "package m\n\nimport (\n\t\"fmt\"\n\t\"time\"\n)\n\nfunc clock() {\n\tt, err := time.Parse(time.RFC3339, \"\")\n\tfmt.Println(\"time.Parse failed\", t, err)\n}\n",
                ),
            ],
        )
        .await;
        let out = f
            .ok(
                "rename_symbol",
                json!({"file_path": "parse.go", "symbol_name": "Parse", "new_name": "Count", "dry_run": true, "verify": false}),
            )
            .await;
        let files = changed(&out.structured);
        assert!(
            files.keys().any(|p| p.ends_with("parse.go")),
            "{}",
            out.text
        );
        assert!(
            !files.keys().any(|p| p.ends_with("clock.go")),
            "time.Parse is not ours: {}",
            out.text
        );
    });
}

/// attrs: its pyproject.toml limits pyright to one file (`[tool.pyright] include`), and
/// basedpyright then reported the uses of `evolve` in its own module only, though two other
/// modules import it; the files that write the name are opened and asked again.
#[test]
fn python_references_outside_pyright_include_are_found() {
    block_on(async {
        let f = common::Fixture::from_files(
            "py-include",
            &[
                (
                    "pyproject.toml",
                    "[project]\nname = \"m\"\nversion = \"0\"\n\n[tool.pyright]\ninclude = [\"examples/only.py\"]\n",
                ),
                ("examples/only.py", "X = 1\n"),
                ("src/m/__init__.py", "from m._make import evolve\n\n__all__ = [\"evolve\"]\n"),
                (
                    "src/m/_make.py",
                    "def evolve(inst, **changes):\n    return inst\n\n\ndef again(inst):\n    return evolve(inst)\n",
                ),
                (
                    "src/m/_funcs.py",
                    "from ._make import evolve\n\n\ndef copy(inst):\n    return evolve(inst)\n",
                ),
            ],
        )
        .await;
        let out = f
            .ok(
                "find_references",
                json!({"file_path": "src/m/_make.py", "symbol_name": "evolve"}),
            )
            .await;
        let found = places(&out.structured["references"]);
        for file in ["src/m/__init__.py", "src/m/_funcs.py"] {
            assert!(
                found.iter().any(|p| p.0.ends_with(file)),
                "{file} not reported: {}",
                out.text
            );
        }
        assert_eq!(out.structured["partial"], json!(false), "{}", out.text);
    });
}

/// immer (npm): renaming `isDraftable` was refused for 45 "leftovers": the package's compiled
/// `dist/` copies, and the entry point's `export { canDraft as isDraftable }` that
/// typescript-language-server writes on purpose to keep the public name. Neither breaks the code.
#[test]
fn a_typescript_rename_ignores_build_output_and_the_aliases_it_writes() {
    block_on(async {
        let f = common::Fixture::from_files(
            "ts-rename-dist",
            &[
                (
                    "tsconfig.json",
                    "{\"compilerOptions\": {\"strict\": true}, \"include\": [\"src\"]}\n",
                ),
                (
                    "src/common.ts",
                    "export function isDraftable(value: unknown): boolean {\n  return typeof value === \"object\"\n}\n",
                ),
                ("src/internal.ts", "export * from \"./common\"\n"),
                ("src/index.ts", "export { isDraftable } from \"./internal\"\n"),
                (
                    "src/proxy.ts",
                    "import { isDraftable } from \"./internal\"\n\nexport const api = { isDraftable }\nexport const ok = isDraftable({})\n",
                ),
                (
                    "dist/index.js",
                    "function isDraftable(value) {\n  return typeof value === \"object\"\n}\nexports.isDraftable = isDraftable\n",
                ),
            ],
        )
        .await;
        let out = f
            .ok(
                "rename_symbol",
                json!({"file_path": "src/common.ts", "symbol_name": "isDraftable", "new_name": "canDraft"}),
            )
            .await;
        assert_eq!(out.structured["applied"], json!(true), "{}", out.text);
        assert_eq!(out.structured["leftovers"], json!([]), "{}", out.text);
        assert_eq!(out.structured["leftovers_total"], json!(0), "{}", out.text);
        let read = |rel: &str| std::fs::read_to_string(f.root.join(rel)).unwrap();
        assert!(read("src/common.ts").contains("function canDraft("));
        assert!(
            read("src/proxy.ts").contains("canDraft({})"),
            "{}",
            read("src/proxy.ts")
        );
        // The public name is kept by the alias, the build output is not touched.
        assert!(
            read("src/index.ts").contains("canDraft as isDraftable"),
            "{}",
            read("src/index.ts")
        );
        assert!(read("dist/index.js").contains("function isDraftable("));
    });
}

/// A rename refused for more places than are listed says how many there are: the count was
/// that of the list, cut at 50.
#[test]
fn a_refused_rename_counts_every_leftover_not_only_the_listed_ones() {
    block_on(async {
        // Another object's attribute of the same name: code the rename leaves alone.
        let others: String = (0..60).map(|i| format!("v{i} = other.compute\n")).collect();
        let source = format!(
            "import types\n\n\ndef compute():\n    return 1\n\n\nother = types.SimpleNamespace()\n{others}x = compute()\n"
        );
        let f =
            common::Fixture::from_files("py-many-leftovers", &[("m.py", source.as_str())]).await;
        let out = f
            .ok(
                "rename_symbol",
                json!({"file_path": "m.py", "symbol_name": "compute", "new_name": "evaluate", "dry_run": true}),
            )
            .await;
        assert_eq!(out.structured["refused"], json!(true), "{}", out.text);
        assert_eq!(out.structured["leftovers_total"], json!(60), "{}", out.text);
        assert_eq!(
            out.structured["leftovers"].as_array().map(Vec::len),
            Some(50),
            "{}",
            out.text
        );
        assert!(out.text.contains("in 60 place(s)"), "{}", out.text);
        assert!(out.text.contains("(the first 50 listed)"), "{}", out.text);
    });
}

/// ujson (PyPI sdist): its `.gitignore` (GitHub's Python template) names `lib/`, where its C
/// sources are. An sdist is no git repository, so nothing says they are tracked and the relay
/// streams none of them (in a git checkout it streams the tracked ones: `tests/e2e/files.rs`);
/// a question about `lib/ultrajson.h` was answered "not found … check the path". The error now
/// says the file is ignored.
#[test]
fn a_file_left_out_by_gitignore_is_said_to_be_ignored_not_missing() {
    block_on(async {
        let f = common::Fixture::from_files(
            "gitignored-lib",
            &[
                (".gitignore", "build/\nlib/\n"),
                ("lib/core.py", "def core():\n    return 1\n"),
                ("app.py", "def main():\n    return 2\n"),
            ],
        )
        .await;
        assert!(f.mirror("lib/core.py").is_none(), "lib/ is ignored");
        let ignored = f
            .err("get_document_symbols", json!({"file_path": "lib/core.py"}))
            .await;
        assert!(
            ignored.contains("the relay does not stream this file")
                && ignored.contains(".gitignore"),
            "{ignored}"
        );
        let missing = f
            .err("get_document_symbols", json!({"file_path": "nope.py"}))
            .await;
        assert!(missing.contains("check the path"), "{missing}");
        assert!(!missing.contains(".gitignore"), "{missing}");
    });
}

/// A symlink in the tree that leads out of the project is never streamed (the relay's jail
/// refuses it); a question about it was answered "not found … check the path". The error now
/// gives the relay's reason.
#[test]
fn a_symlink_out_of_the_project_is_said_to_lead_out() {
    block_on(async {
        let f = common::Fixture::from_files("symlink-out", &[("app.py", "X = 1\n")]).await;
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.py"), "S = 2\n").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.py"),
            std::path::Path::new(&f.path("linked.py")),
        )
        .unwrap();
        let refused = f
            .err("get_document_symbols", json!({"file_path": "linked.py"}))
            .await;
        assert!(
            refused.contains("the relay does not stream this file")
                && refused.contains("leads out of the project root"),
            "{refused}"
        );
        assert!(!refused.contains("S = 2"), "{refused}");
        // A file that is simply absent keeps the plain advice.
        let missing = f
            .err("get_document_symbols", json!({"file_path": "nope.py"}))
            .await;
        assert!(missing.contains("check the path"), "{missing}");
    });
}

/// immer (npm, with a tsconfig): the first `search_workspace_symbols` on a project, typescript-
/// language-server just started, found `isDraftable` only as an import in the file the tool had
/// opened (`src/core/current.ts`), not its definition in `src/utils/common.ts`; the same
/// question a moment later found both. The server is now let finish loading the project first.
#[test]
fn the_first_typescript_workspace_symbol_search_sees_the_whole_project() {
    block_on(async {
        let f = common::Fixture::from_files(
            "ts-first-workspace-symbols",
            &[
                (
                    "tsconfig.json",
                    "{\"compilerOptions\": {\"strict\": true}, \"include\": [\"src\"]}\n",
                ),
                (
                    "src/core/current.ts",
                    "import { isDraftable } from \"../internal\"\n\nexport function current(value: unknown): unknown {\n  return isDraftable(value) ? value : null\n}\n",
                ),
                (
                    "src/internal.ts",
                    "export * from \"./utils/common\"\nexport * from \"./core/current\"\n",
                ),
                (
                    "src/utils/common.ts",
                    "export function isDraftable(value: unknown): boolean {\n  return typeof value === \"object\"\n}\n",
                ),
            ],
        )
        .await;
        let out = f
            .ok("search_workspace_symbols", json!({"query": "isDraftable"}))
            .await;
        let found = places(&out.structured["symbols"]);
        assert!(
            found.iter().any(|p| p.0.ends_with("src/utils/common.ts")),
            "the definition is missing: {}",
            out.text
        );
    });
}

/// google/uuid: renaming `Parse` was refused for "leftovers" that were all comments and strings
/// (`// see Parse for required string format`, a panic message). Those do not break the code:
/// they are listed apart as mentions, and the rename goes ahead.
#[test]
fn comments_and_strings_are_mentions_not_leftovers() {
    block_on(async {
        let source = "def compute():\n    \"\"\"compute returns one.\"\"\"\n    return 1\n\n\n# compute is used below\nx = compute()\nmessage = \"compute failed\"\n";
        let f = common::Fixture::from_files("py-mentions", &[("m.py", source)]).await;
        let out = f
            .ok(
                "rename_symbol",
                json!({"file_path": "m.py", "symbol_name": "compute", "new_name": "evaluate", "dry_run": true}),
            )
            .await;
        assert_eq!(out.structured["refused"], json!(null), "{}", out.text);
        assert_eq!(out.structured["leftovers_total"], json!(0), "{}", out.text);
        assert_eq!(out.structured["mentions_total"], json!(3), "{}", out.text);
        let lines: Vec<u64> = out.structured["mentions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["line"].as_u64().unwrap())
            .collect();
        assert_eq!(lines, [2, 6, 8], "{}", out.text);
        assert!(
            out.text.contains("comment(s) or string literal(s)"),
            "{}",
            out.text
        );
    });
}
