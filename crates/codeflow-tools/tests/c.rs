//! The read-only tools on the C fixture, in-process against a real clangd: one short check per
//! behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{call, check, check_err_all, check_text, names, places};
use serde_json::json;

const C: &str = "c";

#[test]
fn definition_of_a_static_function() {
    check(
        C,
        "find_definition",
        json!({"file_path": "main.c", "symbol_name": "report"}),
        json!({"matches": [{"definitions": [{"path": "$ROOT/main.c", "line": 3, "character": 15}]}]}),
    );
}

/// Every file is opened first, so clangd without a background index sees every use.
#[test]
fn references_across_files_without_an_index() {
    let (f, text, s) = call(
        C,
        "find_references",
        json!({"file_path": "shapes.c", "symbol_name": "scale"}),
    );
    let refs = places(&s["references"]);
    for (rel, line, character) in [("shapes.c", 7, 8), ("main.c", 4, 12), ("main.c", 10, 18)] {
        assert!(
            refs.contains(&(f.path(rel), line, character)),
            "{rel}:{line}:{character}: {text}"
        );
    }
}

#[test]
fn document_symbols_with_details() {
    check(
        C,
        "get_document_symbols",
        json!({"file_path": "main.c"}),
        json!({"symbols": [{"name": "report", "detail": "double (double)"}, {"name": "main"}]}),
    );
}

#[test]
fn hover_shows_the_declaration_and_range() {
    let args = json!({"file_path": "main.c", "line": 4, "character": 12});
    check(
        C,
        "get_hover",
        args.clone(),
        json!({"range": {"line": 4, "character": 12, "end_line": 4, "end_character": 17}}),
    );
    check_text(
        C,
        "get_hover",
        args,
        &["double scale(double value, double factor)"],
    );
}

/// Once clangd has analysed the file (diagnostics published): before that it answers with
/// words of the file only (the old scenario asked after several other calls on main.c).
#[test]
fn completions_include_the_functions() {
    call(C, "get_diagnostics", json!({"file_path": "main.c"}));
    let (_, _, s) = call(
        C,
        "get_completions",
        json!({"file_path": "main.c", "line": 9, "character": 17}),
    );
    assert!(
        names(&s["items"], "label")
            .iter()
            .any(|l| l.starts_with("area(")),
        "{s}"
    );
}

#[test]
fn signature_help_labels_the_signature() {
    check(
        C,
        "get_signature_help",
        json!({"file_path": "main.c", "line": 4, "character": 18}),
        json!({"signatures": [{"label": "scale(double value, double factor) -> double"}]}),
    );
}

#[test]
fn diagnostics_name_the_undeclared_identifier() {
    check(
        C,
        "get_diagnostics",
        json!({"file_path": "broken.c"}),
        json!({"errors": 1}),
    );
    check_text(
        C,
        "get_diagnostics",
        json!({"file_path": "broken.c"}),
        &["$ROOT/broken.c:4:12  error: Use of undeclared identifier 'missing_value'"],
    );
}

#[test]
fn code_actions_are_a_list() {
    let (_, _, s) = call(C, "get_code_actions", json!({"file_path": "broken.c"}));
    assert!(s["actions"].is_array(), "{s}");
}

#[test]
fn workspace_symbols_find_the_definition_first() {
    let (f, _, s) = call(C, "search_workspace_symbols", json!({"query": "scale"}));
    assert_eq!(places(&s["symbols"])[0], (f.path("shapes.c"), 7, 8));
}

#[test]
fn incoming_calls_name_both_callers() {
    let (_, _, s) = call(
        C,
        "get_call_hierarchy_incoming_calls",
        json!({"file_path": "shapes.c", "line": 7, "character": 8}),
    );
    let mut callers: Vec<String> = s["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["from"]["name"].as_str().unwrap().to_owned())
        .collect();
    callers.sort();
    assert_eq!(callers, ["main", "report"]);
}

/// This clangd has no outgoing calls: a clear error, not an empty list.
#[test]
fn outgoing_calls_are_a_clear_error() {
    check_err_all(
        C,
        "get_call_hierarchy_outgoing_calls",
        json!({"file_path": "main.c", "line": 7, "character": 5}),
        &["clangd", "callHierarchy/outgoingCalls"],
    );
}

#[test]
fn type_definition_of_a_variable_is_the_struct() {
    check(
        C,
        "find_type_definition",
        json!({"file_path": "main.c", "line": 9, "character": 22}),
        json!({"locations": [{"path": "$ROOT/shapes.h", "line": 4, "character": 8}]}),
    );
}

#[test]
fn dead_code_lists_the_unused_and_not_the_used() {
    let (_, text, s) = call(C, "find_dead_code", json!({}));
    let dead = names(&s["unused"], "name");
    assert!(dead.contains(&"unused_helper".to_owned()), "{text}");
    assert!(
        !dead
            .iter()
            .any(|d| d == "scale" || d == "area" || d == "report"),
        "{text}"
    );
}

#[test]
fn includers_of_a_header_in_order() {
    check(
        C,
        "analyze_imports",
        json!({"file_path": "shapes.h"}),
        json!({"importers": [{"path": "$ROOT/broken.c"}, {"path": "$ROOT/main.c"}, {"path": "$ROOT/shapes.c"}]}),
    );
}

/// Reproduction 2 of issue 10 on brotli 1.2.1's C sources (PyPI's sdist), on a cold clangd
/// (no file opened before): references, callers and workspace symbols cover the project —
/// clangd sees only open files, so the files that mention the name are opened first — and say
/// so (`partial: false`).
#[test]
fn cold_cross_file_answers_on_brotli_are_complete() {
    let brotli = codeflow_e2e::registry::pypi_sdist("brotli", "1.2.1").join("c");
    common::block_on(async {
        let f = common::Fixture::from_dir("brotli", &brotli).await;
        std::fs::write(f.root.join("compile_flags.txt"), "-Iinclude\n").unwrap();
        f.sync().await;

        let out = f
            .ok(
                "find_references",
                json!({"file_path": "dec/huffman.c", "symbol_name": "BrotliBuildHuffmanTable"}),
            )
            .await;
        let refs = places(&out.structured["references"]);
        for (rel, line) in [
            ("dec/huffman.h", 95),
            ("dec/decode.c", 915),
            ("dec/huffman.c", 169),
        ] {
            assert!(
                refs.iter().any(|(p, l, _)| p == &f.path(rel) && *l == line),
                "{rel}:{line} missing: {}",
                out.text
            );
        }
        assert_eq!(out.structured["partial"], false, "{}", out.text);

        let callers = f
            .ok(
                "get_call_hierarchy_incoming_calls",
                json!({"file_path": "dec/huffman.c", "line": 169, "character": 10}),
            )
            .await;
        assert!(
            !callers.structured["calls"].as_array().unwrap().is_empty(),
            "{}",
            callers.text
        );
        assert_eq!(callers.structured["partial"], false, "{}", callers.text);

        let symbols = f
            .ok(
                "search_workspace_symbols",
                json!({"query": "BrotliDecoderDecompressStream"}),
            )
            .await;
        assert!(
            places(&symbols.structured["symbols"])
                .iter()
                .any(|(p, _, _)| p == &f.path("dec/decode.c")),
            "{}",
            symbols.text
        );
        assert_eq!(symbols.structured["partial"], false, "{}", symbols.text);
    });
}

/// When more files mention the name than are opened for one answer, the answer says it is
/// partial, and why, in the text and the structured output.
#[test]
fn references_beyond_what_is_opened_are_marked_partial() {
    common::block_on(async {
        let users: Vec<(String, String)> = (0..205)
            .map(|i| {
                (
                    format!("u{i}.c"),
                    format!("int shared(void);\nint use{i}(void) {{ return shared(); }}\n"),
                )
            })
            .collect();
        let mut files: Vec<(&str, &str)> = users
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        files.push(("shared.c", "int shared(void) { return 1; }\n"));
        let f = common::Fixture::from_files("c-many", &files).await;
        let out = f
            .ok(
                "find_references",
                json!({"file_path": "shared.c", "symbol_name": "shared"}),
            )
            .await;
        assert_eq!(out.structured["partial"], true, "{}", out.text);
        let reason = out.structured["partial_reason"].as_str().unwrap();
        assert!(reason.contains("200 of the 205 files"), "{reason}");
        assert!(out.text.contains("Partial: "), "{}", out.text);
    });
}

/// A CMake-style `build/compile_commands.json` (in an ignored `build/`, naming the client's
/// absolute paths) reaches clangd with the mirror's paths: the header found only through its
/// `-I`, the macro only through its `-D`. Before it exists clangd guesses and fails; once it
/// is synced clangd is restarted onto it.
#[test]
fn a_compilation_database_gives_clangd_the_projects_flags() {
    common::block_on(async {
        let f = common::Fixture::from_files(
            "c-compile-db",
            &[
                (".gitignore", "build/\n"),
                ("private/api.h", "int api_value(void);\n"),
                (
                    "src/api.c",
                    "#include \"api.h\"\nint api_value(void) { return 42; }\n",
                ),
                (
                    "src/main.c",
                    "#include \"api.h\"\n#ifndef FROM_DB\n#error built without the database\n#endif\nint main(void) { return api_value(); }\n",
                ),
            ],
        )
        .await;
        let before = f
            .ok("get_diagnostics", json!({"file_path": "src/main.c"}))
            .await;
        assert!(
            before.text.contains("'api.h' file not found"),
            "{}",
            before.text
        );

        let root = f.root.to_string_lossy().into_owned();
        let entry = |file: &str| {
            json!({
                "directory": format!("{root}/build"),
                "file": format!("{root}/src/{file}"),
                "command": format!("cc -I{root}/private -DFROM_DB -c {root}/src/{file}"),
            })
        };
        std::fs::create_dir_all(f.root.join("build")).unwrap();
        std::fs::write(
            f.root.join("build/compile_commands.json"),
            json!([entry("main.c"), entry("api.c")]).to_string(),
        )
        .unwrap();
        std::fs::write(f.root.join("build/main.o"), b"\x7fELF").unwrap();
        f.sync().await;
        assert!(
            f.mirror("build/compile_commands.json").is_some(),
            "the database is streamed"
        );
        assert!(f.mirror("build/main.o").is_none(), "nothing else of build/");

        let after = f
            .ok("get_diagnostics", json!({"file_path": "src/main.c"}))
            .await;
        assert_eq!(after.structured["errors"], 0, "{}", after.text);
        let def = f
            .ok(
                "find_definition",
                json!({"file_path": "src/main.c", "symbol_name": "api_value"}),
            )
            .await;
        let found = places(&def.structured["matches"][0]["definitions"]);
        assert!(
            found
                .iter()
                .any(|(p, l, _)| *p == f.path("private/api.h") && *l == 1
                    || *p == f.path("src/api.c") && *l == 2),
            "{}",
            def.text
        );
    });
}
