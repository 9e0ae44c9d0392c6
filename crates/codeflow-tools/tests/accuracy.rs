//! The accuracy table of `docs/benchmarks.md`: for each language, `find_references` on a cold
//! server against a grep-checked truth (every line of the project's files of that language
//! that writes the name as a whole word), on 5 symbols of a real project fetched from its
//! registry. Run by hand (`cargo test -p codeflow-tools --test accuracy -- --ignored
//! --nocapture`); it prints the table rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use codeflow_lsp_pool::{PoolConfig, ServerConfig};
use serde_json::json;

/// (file, line) of every whole-word occurrence of `name` in files under `root/under` ending in
/// one of `exts`.
fn truth(root: &Path, under: &str, exts: &[&str], name: &str) -> BTreeSet<(String, u64)> {
    let mut out = BTreeSet::new();
    for (rel, text) in common::tree(root) {
        if !rel.starts_with(under) || !exts.iter().any(|e| rel.ends_with(e)) {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let is_word = |c: char| c.is_alphanumeric() || c == '_';
            if line.match_indices(name).any(|(at, _)| {
                !line[..at].chars().next_back().is_some_and(is_word)
                    && !line[at + name.len()..].chars().next().is_some_and(is_word)
            }) {
                out.insert((root.join(&rel).to_string_lossy().into_owned(), i as u64 + 1));
            }
        }
    }
    out
}

fn measure(
    project: &str,
    dir: &Path,
    pool: PoolConfig,
    extra: &[(&str, &str)],
    under: &str,
    exts: &[&str],
    symbols: &[(&str, &str)],
) {
    common::block_on(async {
        let f = common::Fixture::from_dir_with(project, dir, pool).await;
        for (rel, text) in extra {
            std::fs::write(f.root.join(rel), text).unwrap();
        }
        f.sync().await;
        for (file, name) in symbols {
            let want = truth(&f.root, under, exts, name);
            let out = f
                .call(
                    "find_references",
                    json!({"file_path": file, "symbol_name": name, "max_results": 10000}),
                )
                .await;
            let (found, partial) = match out {
                Ok(out) => {
                    let got: BTreeSet<(String, u64)> =
                        common::places(&out.structured["references"])
                            .into_iter()
                            .map(|(p, l, _)| (p, l))
                            .collect();
                    (
                        got.intersection(&want).count(),
                        out.structured["partial"] == true,
                    )
                }
                Err(_) => (0, false),
            };
            eprintln!(
                "| {project} | `{name}` | {found} / {} |{}",
                want.len(),
                if partial { " partial" } else { "" }
            );
        }
    });
}

#[test]
#[ignore = "measurement for docs/benchmarks.md"]
fn references_against_grep() {
    let flask = codeflow_e2e::registry::pypi_sdist("flask", "3.0.3");
    measure(
        "flask",
        &flask,
        PoolConfig::default(),
        &[],
        "src/",
        &[".py"],
        &[
            ("src/flask/helpers.py", "get_load_dotenv"),
            ("src/flask/helpers.py", "get_debug_flag"),
            ("src/flask/helpers.py", "stream_with_context"),
            ("src/flask/helpers.py", "send_from_directory"),
            ("src/flask/helpers.py", "get_root_path"),
        ],
    );
    let brotli = codeflow_e2e::registry::pypi_sdist("brotli", "1.2.1").join("c");
    measure(
        "brotli",
        &brotli,
        PoolConfig::default(),
        &[("compile_flags.txt", "-Iinclude\n")],
        "",
        &[".c", ".h"],
        &[
            ("dec/huffman.c", "BrotliBuildHuffmanTable"),
            ("dec/huffman.c", "BrotliBuildCodeLengthsHuffmanTable"),
            ("dec/decode.c", "BrotliDecoderDecompressStream"),
            ("dec/decode.c", "BrotliDecoderCreateInstance"),
            ("enc/encode.c", "BrotliEncoderCompress"),
        ],
    );
    let query_core = codeflow_e2e::registry::npm_package("@tanstack/query-core", "5.108.4");
    measure(
        "query-core",
        &query_core,
        PoolConfig::default(),
        &[(
            "tsconfig.json",
            r#"{"compilerOptions": {"target": "es2020", "module": "esnext", "moduleResolution": "bundler", "strict": true}, "include": ["src"]}"#,
        )],
        "src/",
        &[".ts"],
        &[
            ("src/utils.ts", "hashKey"),
            ("src/utils.ts", "partialMatchKey"),
            ("src/utils.ts", "replaceEqualDeep"),
            ("src/utils.ts", "functionalUpdate"),
            ("src/utils.ts", "noop"),
        ],
    );
    let parse = codeflow_e2e::registry::go_std_package("text/template/parse");
    measure(
        "go-parse",
        &parse,
        PoolConfig::default(),
        &[("go.mod", "module example.com/parse\n\ngo 1.19\n")],
        "",
        &[".go"],
        &[
            ("node.go", "newPipeline"),
            ("node.go", "newList"),
            ("node.go", "newText"),
            ("node.go", "newIf"),
            ("node.go", "newAction"),
        ],
    );
}

/// The same flask symbols through other Python servers (pylsp turned off), to choose the
/// Python default by measured answers: `basedpyright-langserver` and `jedi-language-server`
/// (`pip install basedpyright jedi-language-server`).
#[test]
#[ignore = "measurement for docs/benchmarks.md"]
fn python_servers_against_grep() {
    let flask = codeflow_e2e::registry::pypi_sdist("flask", "3.0.3");
    for (id, command, args) in [
        ("basedpyright", "basedpyright-langserver", vec!["--stdio"]),
        ("jedi-language-server", "jedi-language-server", vec![]),
    ] {
        let mut pool = PoolConfig::default();
        let mut off = ServerConfig::new("pylsp", &["py"]);
        off.enabled = false;
        pool.servers.insert("pylsp".to_owned(), off);
        pool.servers.insert(
            id.to_owned(),
            ServerConfig::new(command, &["py", "pyi"]).with_args(&args),
        );
        eprintln!("{id}:");
        measure(
            "flask",
            &flask,
            pool,
            &[],
            "src/",
            &[".py"],
            &[
                ("src/flask/helpers.py", "get_load_dotenv"),
                ("src/flask/helpers.py", "get_debug_flag"),
                ("src/flask/helpers.py", "stream_with_context"),
                ("src/flask/helpers.py", "send_from_directory"),
                ("src/flask/helpers.py", "get_root_path"),
            ],
        );
    }
}
