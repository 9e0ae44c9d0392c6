//! Every language of the default server table, in-process against its real language server:
//! the outline of a fixture file (`get_document_symbols`) and a definition asked at a use
//! (`textDocument/definition` through the tools' own document and locator, as
//! `find_definition` asks it), each checked against the fixture.
//!
//! Positions are given by a needle (the `nth` occurrence of a text in a fixture file), so a
//! check reads as "the definition of `scale` used in app.py is the `scale` in shapes.py".
//! One test per language; the servers are those `scripts/install-language-servers.sh`
//! installs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use codeflow_e2e::fs::fixture_dir;
use codeflow_lsp_pool::PoolConfig;
use codeflow_lsp_pool::lsp_types::request::GotoDefinition;
use codeflow_tools::lsp::goto::goto;
use codeflow_tools::lsp::{Document, Locator};
use common::{Fixture, block_on};
use serde_json::{Value, json};

/// The shared copy of fixture `name`, served with room for a cold start on a busy machine
/// (rust-analyzer loading the standard library can take longer than the default 30 s).
fn shared(name: &str) -> Arc<Fixture> {
    static FIXTURES: OnceLock<parking_lot::Mutex<HashMap<String, Arc<Fixture>>>> = OnceLock::new();
    let fixtures = FIXTURES.get_or_init(Default::default);
    if let Some(f) = fixtures.lock().get(name) {
        return f.clone();
    }
    let pool = PoolConfig {
        request_timeout: Duration::from_secs(120),
        readiness_timeout: Duration::from_secs(90),
        initialize_timeout: Duration::from_secs(60),
        ..PoolConfig::default()
    };
    let made = Arc::new(block_on(Fixture::from_dir_with(
        name,
        &fixture_dir(name),
        pool,
    )));
    fixtures
        .lock()
        .entry(name.to_owned())
        .or_insert(made)
        .clone()
}

/// `get_document_symbols` on `file`: (text, structuredContent). Some servers (vim-language-server)
/// parse a document after `didOpen` returns and answer an empty outline until then: an empty
/// one is asked again, for at most 20 s.
fn outline(fixture: &str, file: &str) -> (String, Value) {
    let f = shared(fixture);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = block_on(f.ok("get_document_symbols", json!({"file_path": file})));
        let empty = out.structured["symbols"]
            .as_array()
            .is_none_or(Vec::is_empty);
        if !empty || Instant::now() > deadline {
            return (out.text, out.structured);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The 1-based (line, character) of the `nth` occurrence of `needle` in `file` of `fixture`.
fn at(fixture: &str, file: &str, needle: &str, nth: usize) -> (u32, u32) {
    let f = shared(fixture);
    let text = f.read(file);
    let offset = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{fixture}/{file}: no occurrence {nth} of {needle:?}"))
        .0;
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    (u32::try_from(line).unwrap(), u32::try_from(column).unwrap())
}

/// (path relative to the fixture, line, character) of a place the server answered.
type Target = (String, u32, u32);

/// The definitions of the `nth` `needle` in `file`, as places relative to the fixture root.
fn definition(fixture: &str, file: &str, needle: &str, nth: usize) -> Vec<Target> {
    let f = shared(fixture);
    let (line, character) = at(fixture, file, needle, nth);
    // Servers that index the project in the background (bash-language-server, intelephense)
    // answer an empty list until they have: an empty answer is asked again, for at most 20 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    let places = loop {
        let places = block_on(async {
            let doc = Document::open(&f.ctx, file).await.unwrap();
            let locator = Locator::new(&f.ctx).await.unwrap();
            let position = doc.position(line, character).unwrap();
            goto::<GotoDefinition>(&doc, &locator, position).await
        })
        .unwrap_or_else(|e| {
            panic!(
                "definition in {fixture}/{file} at {needle:?}: {}",
                e.to_text()
            )
        });
        if !places.is_empty() || Instant::now() > deadline {
            break places;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let root = format!("{}/", f.root.display());
    places
        .into_iter()
        .map(|p| {
            let rel = p.path.strip_prefix(&root).unwrap_or(&p.path).to_owned();
            (rel, p.line, p.character)
        })
        .collect()
}

/// The error of asking a definition at the `nth` `needle` in `file`.
fn definition_error(fixture: &str, file: &str, needle: &str, nth: usize) -> String {
    let f = shared(fixture);
    let (line, character) = at(fixture, file, needle, nth);
    block_on(async {
        let doc = Document::open(&f.ctx, file).await.unwrap();
        let locator = Locator::new(&f.ctx).await.unwrap();
        let position = doc.position(line, character).unwrap();
        goto::<GotoDefinition>(&doc, &locator, position).await
    })
    .map(|places| panic!("a definition in {fixture}/{file}: {places:?}"))
    .unwrap_err()
    .to_text()
}

/// Where the `nth` `needle` of `file` is, as a [`Target`].
fn place(fixture: &str, file: &str, needle: &str, nth: usize) -> Target {
    let (line, character) = at(fixture, file, needle, nth);
    (file.to_owned(), line, character)
}

/// Checks that the definition asked at the `nth` `needle` in `file` is exactly `expected`.
fn assert_definition(fixture: &str, file: &str, needle: &str, nth: usize, expected: &[Target]) {
    let got = definition(fixture, file, needle, nth);
    assert_eq!(
        got, expected,
        "{fixture}: definition of {needle:?} (occurrence {nth}) in {file}"
    );
}

/// Checks that the outline of `file` has each of `expected`: (dotted name with its
/// containers, kind, the needle its name is at, which occurrence).
fn assert_outline(fixture: &str, file: &str, expected: &[(&str, &str, &str, usize)]) {
    let (text, s) = outline(fixture, file);
    let rows: Vec<(String, String, String, u32, u32)> = s["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let container = r["container"].as_str().unwrap_or_default();
            let name = r["name"].as_str().unwrap();
            let dotted = if container.is_empty() {
                name.to_owned()
            } else {
                format!("{container}.{name}")
            };
            (
                dotted,
                name.to_owned(),
                r["kind"].as_str().unwrap().to_owned(),
                u32::try_from(r["line"].as_u64().unwrap()).unwrap(),
                u32::try_from(r["character"].as_u64().unwrap()).unwrap(),
            )
        })
        .collect();
    for (name, kind, needle, nth) in expected {
        let (line, character) = at(fixture, file, needle, *nth);
        // Servers that answer flat symbols name containers their own way (html): a symbol
        // is found by its dotted name or, without dots, by its own name.
        let found = rows.iter().any(|(dotted, own, k, l, c)| {
            (dotted == name || (!name.contains('.') && own == name))
                && k == kind
                && (*l, *c) == (line, character)
        });
        assert!(
            found,
            "{fixture}/{file}: {name} ({kind}) at {line}:{character} is not in the outline:\n{text}"
        );
    }
}

#[test]
fn python() {
    assert_outline("python", "app.py", &[("main", "function", "main", 0)]);
    assert_definition(
        "python",
        "app.py",
        "scale",
        1,
        &[place("python", "pkg/shapes.py", "scale", 0)],
    );
}

#[test]
fn typescript() {
    assert_outline(
        "typescript",
        "src/shapes.ts",
        &[
            ("Shape", "interface", "Shape", 0),
            ("Circle", "class", "Circle", 0),
            ("Circle.area", "method", "area", 1),
            ("scale", "function", "scale", 0),
        ],
    );
    assert_definition(
        "typescript",
        "src/app.ts",
        "scale",
        1,
        &[place("typescript", "src/shapes.ts", "scale", 0)],
    );
}

#[test]
fn javascript() {
    assert_outline(
        "javascript",
        "shapes.js",
        &[
            ("Circle", "class", "Circle", 0),
            ("Circle.area", "method", "area", 0),
            ("scale", "function", "scale", 0),
        ],
    );
    // For a JavaScript module that is not open, tsserver answers a call with the import
    // binding (once shapes.js is open too, with the function itself).
    assert_definition(
        "javascript",
        "app.js",
        "scale",
        1,
        &[place("javascript", "app.js", "scale", 0)],
    );
}

#[test]
fn c() {
    assert_outline(
        "c",
        "main.c",
        &[
            ("report", "function", "report", 0),
            ("main", "function", "main", 0),
        ],
    );
    assert_definition(
        "c",
        "main.c",
        "report",
        1,
        &[place("c", "main.c", "report", 0)],
    );
}

#[test]
fn cpp() {
    assert_outline(
        "cpp",
        "shapes.hpp",
        &[
            ("shapes", "namespace", "shapes", 0),
            ("shapes.Circle", "class", "Circle", 0),
            ("shapes.Circle.area", "method", "area", 0),
        ],
    );
    assert_definition(
        "cpp",
        "main.cpp",
        "area",
        0,
        &[place("cpp", "shapes.hpp", "area", 0)],
    );
}

#[test]
fn rust() {
    assert_outline(
        "rust",
        "src/shapes.rs",
        &[
            ("Shape", "interface", "Shape", 0),
            ("Circle", "struct", "Circle", 0),
            ("scale", "function", "scale", 0),
        ],
    );
    assert_definition(
        "rust",
        "src/lib.rs",
        "scale",
        1,
        &[place("rust", "src/shapes.rs", "scale", 0)],
    );
}

#[test]
fn go() {
    assert_outline(
        "go",
        "shapes/shapes.go",
        &[
            ("Circle", "struct", "Circle", 1),
            ("Scale", "function", "Scale(", 0),
        ],
    );
    assert_definition(
        "go",
        "main.go",
        "Scale",
        0,
        &[place("go", "shapes/shapes.go", "Scale(", 0)],
    );
}

#[test]
fn bash() {
    assert_outline("bash", "build.sh", &[("greet", "function", "greet", 0)]);
    assert_definition(
        "bash",
        "build.sh",
        "log_info",
        0,
        &[place("bash", "lib.sh", "log_info", 0)],
    );
}

/// vscode-json-language-server outlines JSON but has no definitions: asking one is a clear
/// error naming the server and the method.
#[test]
fn json() {
    assert_outline(
        "json",
        "shapes.json",
        &[
            ("definitions.point", "module", "\"point\"", 0),
            ("properties.origin", "module", "\"origin\"", 0),
        ],
    );
    let error = definition_error("json", "shapes.json", "#/definitions/point", 0);
    assert!(
        error.contains("vscode-json-language-server") && error.contains("textDocument/definition"),
        "{error}"
    );
}

#[test]
fn yaml() {
    assert_outline(
        "yaml",
        "pipeline.yaml",
        &[
            ("defaults", "module", "defaults", 0),
            ("jobs.build", "module", "build", 0),
            ("jobs.test.script", "string", "script", 1),
        ],
    );
    // An alias's definition is its anchor's node.
    assert_definition(
        "yaml",
        "pipeline.yaml",
        "defaults",
        2,
        &[place("yaml", "pipeline.yaml", "image", 0)],
    );
}

#[test]
fn css() {
    assert_outline(
        "css",
        "style.css",
        &[
            (":root", "class", ":root", 0),
            (".button", "class", ".button", 0),
        ],
    );
    assert_definition(
        "css",
        "style.css",
        "--accent",
        1,
        &[place("css", "style.css", "--accent", 0)],
    );
}

#[test]
fn scss() {
    assert_outline(
        "scss",
        "theme.scss",
        &[
            ("$accent", "variable", "$accent", 0),
            ("rounded", "method", "rounded", 0),
            (".card", "class", ".card", 0),
        ],
    );
    assert_definition(
        "scss",
        "theme.scss",
        "$accent",
        1,
        &[place("scss", "theme.scss", "$accent", 0)],
    );
}

#[test]
fn less() {
    assert_outline(
        "less",
        "theme.less",
        &[
            ("@accent", "variable", "@accent", 0),
            (".card", "class", ".card", 0),
        ],
    );
    assert_definition(
        "less",
        "theme.less",
        "@accent",
        1,
        &[place("less", "theme.less", "@accent", 0)],
    );
}

/// The outline has the elements and the embedded script's functions; a definition inside the
/// script is answered by the server's JavaScript mode.
#[test]
fn html() {
    assert_outline(
        "html",
        "index.html",
        &[
            ("main#app", "field", "<main", 0),
            ("area", "function", "area", 0),
        ],
    );
    assert_definition(
        "html",
        "index.html",
        "area",
        1,
        &[place("html", "index.html", "area", 0)],
    );
}

#[test]
fn svelte() {
    assert_outline(
        "svelte",
        "Counter.svelte",
        &[
            ("script.count", "variable", "count", 0),
            ("script.increment", "function", "increment", 0),
        ],
    );
    assert_definition(
        "svelte",
        "Counter.svelte",
        "increment",
        1,
        &[place("svelte", "Counter.svelte", "increment", 0)],
    );
}

/// `Dockerfile` has no extension: the server claims it by name. A stage used by `--from` is
/// defined by its `AS` name.
#[test]
fn dockerfile() {
    assert_outline(
        "dockerfile",
        "Dockerfile",
        &[
            ("FROM", "function", "FROM", 0),
            ("COPY", "function", "COPY", 0),
        ],
    );
    assert_definition(
        "dockerfile",
        "Dockerfile",
        "build",
        2,
        &[place("dockerfile", "Dockerfile", "build", 0)],
    );
}

#[test]
fn php() {
    assert_outline(
        "php",
        "shapes.php",
        &[
            ("Circle", "class", "Circle", 0),
            ("Circle.area", "method", "area", 0),
            ("describe", "function", "describe", 0),
        ],
    );
    assert_definition(
        "php",
        "main.php",
        "describe",
        0,
        &[place("php", "shapes.php", "function describe", 0)],
    );
}

#[test]
fn vim() {
    assert_outline(
        "vim",
        "plugin.vim",
        &[
            ("s:Scale", "function", "Scale", 0),
            ("ShapesArea", "function", "ShapesArea", 0),
            ("g:shapes_factor", "variable", "shapes_factor", 0),
        ],
    );
    assert_definition(
        "vim",
        "plugin.vim",
        "Scale",
        1,
        &[place("vim", "plugin.vim", "s:Scale", 0)],
    );
}

#[test]
fn fortran() {
    assert_outline(
        "fortran",
        "shapes.f90",
        &[
            ("shapes", "module", "shapes", 0),
            ("shapes.area", "function", "area", 0),
        ],
    );
    assert_definition(
        "fortran",
        "main.f90",
        "area",
        1,
        &[place("fortran", "shapes.f90", "area", 0)],
    );
}

/// The server reads its settings through `workspace/configuration` (the table gives them). A
/// relation's type is defined by its model.
#[test]
fn prisma() {
    assert_outline(
        "prisma",
        "schema.prisma",
        &[
            ("db", "struct", "db", 0),
            ("User", "class", "User", 0),
            ("Post", "class", "Post {", 0),
            ("Role", "enum", "Role", 0),
        ],
    );
    assert_definition(
        "prisma",
        "schema.prisma",
        "User",
        1,
        &[place("prisma", "schema.prisma", "User {", 0)],
    );
}
