//! Import statements read from source text, and the project files they name. One lexical
//! reader serves two kinds of caller:
//!
//! - the tools that move and delete files (`delete_file`, `rename_file`, `rename_directory`,
//!   `fix_imports`) when the language server cannot say itself (`workspace/willRenameFiles`):
//!   [`resolve`] is exact on purpose, because what it resolves gets respelled
//!   ([`specifier`], [`rewrite_for_moves`]); only Python, JavaScript/TypeScript and C/C++
//!   quoted includes are rewritten ([`Lang::rewrites_imports`]);
//! - `analyze_imports`, which answers for a whole project without a language server:
//!   [`Analysis::resolve`] adds what a reader wants and a rewriter must not guess (Python
//!   `from pkg import module`, C include directories, Go packages, Rust modules).
//!
//! Read: Python `import m` / `from m import x` (absolute and relative), JavaScript/TypeScript
//! specifiers (`from "./x"`, `import "./x"`, `require("./x")`, `import("./x")`), C/C++
//! `#include "x.h"` and `<x.h>`, Go `import "p"` and `import ( … )`, Rust `mod m;` and
//! `use crate::m`. Aliases in `tsconfig.json` paths are not followed.

use std::collections::{BTreeMap, BTreeSet};

use codeflow_file_stream::RelPath;
use codeflow_lsp_pool::lsp_types::{Position, Range, TextEdit};

use crate::error::ToolError;
use codeflow_workspace::EditPlan;

/// Languages whose imports are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lang {
    /// Python: `import` and `from … import`.
    Python,
    /// JavaScript and TypeScript: `import`, `import()` and `require()`.
    Script,
    /// C and C++: `#include "…"` and `<…>`.
    C,
    /// Go: `import`.
    Go,
    /// Rust: `mod` and `use crate::…`.
    Rust,
}

const SCRIPT_EXTENSIONS: &[&str] = &["ts", "tsx", "d.ts", "js", "jsx", "mjs", "cjs", "mts", "cts"];

impl Lang {
    /// The language of a file, by its extension.
    pub fn of(path: &str) -> Option<Self> {
        let ext = path.rsplit_once('.').map(|(_, e)| e)?;
        match ext {
            "py" | "pyi" => Some(Self::Python),
            "ts" | "tsx" | "js" | "jsx" | "mjs" | "cjs" | "mts" | "cts" => Some(Self::Script),
            "c" | "h" | "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" => Some(Self::C),
            "go" => Some(Self::Go),
            "rs" => Some(Self::Rust),
            _ => None,
        }
    }

    /// Whether the file tools rewrite this language's imports when files move (Go and Rust
    /// imports name packages and modules, not files).
    pub fn rewrites_imports(self) -> bool {
        matches!(self, Self::Python | Self::Script | Self::C)
    }
}

/// One import specifier in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// Byte range of the specifier text (without quotes).
    pub start: usize,
    /// End of that byte range.
    pub end: usize,
    /// The specifier as written.
    pub spec: String,
    /// 0-based line.
    pub line: u32,
    /// A C/C++ `#include <…>`: searched on the include path, never rewritten.
    pub system: bool,
}

/// The import specifiers of a file's text.
pub fn imports(lang: Lang, text: &str) -> Vec<Import> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut in_go_block = false;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let line_no = n as u32;
        match lang {
            Lang::Python => python_line(line, offset, line_no, &mut out),
            Lang::Script => script_line(line, offset, line_no, &mut out),
            Lang::C => c_line(line, offset, line_no, &mut out),
            Lang::Go => go_line(line, offset, line_no, &mut in_go_block, &mut out),
            Lang::Rust => rust_line(line, offset, line_no, &mut out),
        }
        offset += line.len();
    }
    out
}

fn push(out: &mut Vec<Import>, line: &str, offset: usize, line_no: u32, start: usize, end: usize) {
    out.push(Import {
        start: offset + start,
        end: offset + end,
        spec: line[start..end].to_owned(),
        line: line_no,
        system: false,
    });
}

fn python_line(line: &str, offset: usize, line_no: u32, out: &mut Vec<Import>) {
    let indent = line.len() - line.trim_start().len();
    let body = &line[indent..];
    let is_module_char = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    if let Some(rest) = body.strip_prefix("from ") {
        let skip = rest.len() - rest.trim_start().len();
        let start = indent + 5 + skip;
        let len = line[start..]
            .find(|c: char| !is_module_char(c))
            .unwrap_or(line.len() - start);
        if len > 0 && line[start + len..].trim_start().starts_with("import") {
            push(out, line, offset, line_no, start, start + len);
        }
    } else if let Some(rest) = body.strip_prefix("import ") {
        // `import a.b, c as d`
        let mut at = indent + 7;
        for part in rest.split(',') {
            let skip = part.len() - part.trim_start().len();
            let start = at + skip;
            let len = line[start..]
                .find(|c: char| !is_module_char(c))
                .unwrap_or(line.len() - start);
            if len > 0 {
                push(out, line, offset, line_no, start, start + len);
            }
            at += part.len() + 1;
            if part.contains('#') || part.contains('(') {
                break;
            }
        }
    }
}

fn script_line(line: &str, offset: usize, line_no: u32, out: &mut Vec<Import>) {
    for marker in ["from ", "import ", "require(", "import("] {
        let mut search = 0;
        while let Some(found) = line[search..].find(marker) {
            let at = search + found;
            search = at + marker.len();
            // `import` inside a word (e.g. `reimport`) is not an import.
            if at > 0
                && line[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == '.')
            {
                continue;
            }
            let rest = &line[search..];
            let skip = rest.len() - rest.trim_start().len();
            let quote_at = search + skip;
            let Some(quote) = line[quote_at..].chars().next() else {
                continue;
            };
            if !matches!(quote, '"' | '\'' | '`') {
                continue;
            }
            let start = quote_at + 1;
            if let Some(len) = line[start..].find(quote) {
                push(out, line, offset, line_no, start, start + len);
            }
        }
    }
    out.dedup_by(|a, b| a.start == b.start);
}

fn c_line(line: &str, offset: usize, line_no: u32, out: &mut Vec<Import>) {
    let trimmed = line.trim_start();
    let Some(rest) = trimmed.strip_prefix('#') else {
        return;
    };
    let Some(rest) = rest.trim_start().strip_prefix("include") else {
        return;
    };
    let open = rest.len() - rest.trim_start().len();
    let close = match rest[open..].chars().next() {
        Some('"') => '"',
        Some('<') => '>',
        _ => return,
    };
    let start = line.len() - rest.len() + open + 1;
    if let Some(len) = line[start..].find(close).filter(|len| *len > 0) {
        push(out, line, offset, line_no, start, start + len);
        if close == '>' {
            out.last_mut().expect("just pushed").system = true;
        }
    }
}

/// `import "p"`, `import alias "p"`, and the lines of an `import ( … )` block.
fn go_line(line: &str, offset: usize, line_no: u32, in_block: &mut bool, out: &mut Vec<Import>) {
    let body = line.trim();
    let quoted = if *in_block {
        if body.starts_with(')') {
            *in_block = false;
            return;
        }
        true
    } else if body == "import (" {
        *in_block = true;
        false
    } else {
        body.starts_with("import ")
    };
    if !quoted {
        return;
    }
    // The last quoted string of the line is the path (`alias "p"`).
    let Some(close) = line.rfind(['"', '`']) else {
        return;
    };
    let quote = line[close..].chars().next().unwrap_or('"');
    if let Some(open) = line[..close].rfind(quote) {
        push(out, line, offset, line_no, open + 1, close);
    }
}

/// `mod m;` (a module file) and `use crate::m…` (the crate's top-level module `m`).
fn rust_line(line: &str, offset: usize, line_no: u32, out: &mut Vec<Import>) {
    let body = line.trim_start();
    let body = body.strip_prefix("pub ").unwrap_or(body);
    let body = body.strip_prefix("pub(crate) ").unwrap_or(body);
    let at = line.len() - body.len();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    if let Some(rest) = body.strip_prefix("mod ") {
        let Some(name) = rest.trim_end().strip_suffix(';') else {
            return;
        };
        let skip = name.len() - name.trim_start().len();
        let start = at + 4 + skip;
        let len = name.trim().len();
        if len > 0 {
            push(out, line, offset, line_no, start, start + len);
        }
    } else if let Some(rest) = body.strip_prefix("use crate::") {
        let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        push(out, line, offset, line_no, at + 4, at + 11 + len);
    }
}

/// The directory of a relative path (`""` for the root).
fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// `dir/rel` normalised (`.` and `..` resolved); `None` when it leaves the root.
fn join(dir: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// A relative path from directory `from` to file `to`, `./`-prefixed when it does not go up.
fn relative(from: &str, to: &str) -> String {
    let a: Vec<&str> = from.split('/').filter(|s| !s.is_empty()).collect();
    let b: Vec<&str> = to.split('/').filter(|s| !s.is_empty()).collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out: Vec<&str> = vec![".."; a.len() - common];
    out.extend(&b[common..]);
    let joined = out.join("/");
    if joined.starts_with("..") {
        joined
    } else {
        format!("./{joined}")
    }
}

/// The file an import refers to, among `files`; `None` for packages and unknown files.
pub fn resolve(lang: Lang, importer: &str, spec: &str, files: &BTreeSet<String>) -> Option<String> {
    match lang {
        Lang::Python => {
            let module = python_absolute(importer, spec)?;
            python_candidates(&module.replace('.', "/")).find(|c| files.contains(c))
        }
        Lang::Script => {
            if !spec.starts_with("./") && !spec.starts_with("../") && spec != "." && spec != ".." {
                return None;
            }
            let base = join(dir_of(importer), spec)?;
            let stem = base
                .strip_suffix(".js")
                .or_else(|| base.strip_suffix(".jsx"))
                .or_else(|| base.strip_suffix(".mjs"))
                .unwrap_or(&base)
                .to_owned();
            std::iter::once(base.clone())
                .chain(SCRIPT_EXTENSIONS.iter().map(|e| format!("{stem}.{e}")))
                .chain(
                    SCRIPT_EXTENSIONS
                        .iter()
                        .map(|e| format!("{base}/index.{e}")),
                )
                .find(|c| files.contains(c))
        }
        Lang::C => [join(dir_of(importer), spec), join("", spec)]
            .into_iter()
            .flatten()
            .find(|c| files.contains(c)),
        // Packages and modules, not files: see `Analysis::resolve`.
        Lang::Go | Lang::Rust => None,
    }
}

/// The files a Python module path (`pkg/mod`) may be.
fn python_candidates(stem: &str) -> impl Iterator<Item = String> {
    [
        format!("{stem}.py"),
        format!("{stem}.pyi"),
        format!("{stem}/__init__.py"),
    ]
    .into_iter()
}

/// A Python module spec (maybe relative, `..pkg.mod`) as an absolute dotted name.
fn python_absolute(importer: &str, spec: &str) -> Option<String> {
    let dots = spec.len() - spec.trim_start_matches('.').len();
    let name = &spec[dots..];
    if dots == 0 {
        return Some(name.to_owned());
    }
    let mut package: Vec<&str> = dir_of(importer)
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    for _ in 1..dots {
        package.pop()?;
    }
    if !name.is_empty() {
        package.extend(name.split('.'));
    }
    Some(package.join("."))
}

/// The dotted module name of a Python file.
fn python_module(path: &str) -> String {
    let stem = path
        .strip_suffix("/__init__.py")
        .or_else(|| path.strip_suffix(".pyi"))
        .or_else(|| path.strip_suffix(".py"))
        .unwrap_or(path);
    stem.replace('/', ".")
}

/// The specifier `importer` (a file at its new place) should use for `target` (at its new
/// place), in the style of `old_spec`.
pub fn specifier(lang: Lang, importer: &str, target: &str, old_spec: &str) -> String {
    match lang {
        Lang::Python => {
            let module = python_module(target);
            let dots = old_spec.len() - old_spec.trim_start_matches('.').len();
            if dots == 0 {
                return module;
            }
            // Relative: climb from the importer's package to the common package.
            let from: Vec<&str> = dir_of(importer)
                .split('/')
                .filter(|s| !s.is_empty())
                .collect();
            let to: Vec<&str> = module.split('.').collect();
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            format!(
                "{}{}",
                ".".repeat(from.len() - common + 1),
                to[common..].join(".")
            )
        }
        Lang::Script => {
            let mut spec = relative(dir_of(importer), target);
            let had_ext = SCRIPT_EXTENSIONS
                .iter()
                .any(|e| old_spec.ends_with(&format!(".{e}")));
            if !had_ext {
                for e in SCRIPT_EXTENSIONS {
                    if let Some(s) = spec.strip_suffix(&format!(".{e}")) {
                        spec = s.to_owned();
                        break;
                    }
                }
                if let Some(s) = spec.strip_suffix("/index") {
                    spec = s.to_owned();
                }
            } else if old_spec.ends_with(".js") {
                for e in ["ts", "tsx"] {
                    if let Some(s) = spec.strip_suffix(&format!(".{e}")) {
                        spec = format!("{s}.js");
                    }
                }
            }
            spec
        }
        Lang::C => {
            let rel = relative(dir_of(importer), target);
            rel.strip_prefix("./").map_or(rel.clone(), str::to_owned)
        }
        // Not rewritten (`Lang::rewrites_imports`).
        Lang::Go | Lang::Rust => old_spec.to_owned(),
    }
}

/// Files of the project whose imports resolve to `target`: (importer, 1-based line).
pub async fn importers_of(
    plan: &mut EditPlan,
    files: &BTreeSet<String>,
    target: &str,
) -> Result<Vec<(String, u32)>, ToolError> {
    let mut out = Vec::new();
    let Some(target_lang) = Lang::of(target).filter(|l| l.rewrites_imports()) else {
        return Ok(out);
    };
    for file in files {
        let Some(lang) = Lang::of(file) else { continue };
        if lang != target_lang || file == target {
            continue;
        }
        let Some(text) = plan.text_of_rel(file).await? else {
            continue;
        };
        for import in imports(lang, &text).into_iter().filter(|i| !i.system) {
            if resolve(lang, file, &import.spec, files).as_deref() == Some(target) {
                out.push((file.clone(), import.line + 1));
            }
        }
    }
    Ok(out)
}

/// Adds to `plan` the import edits that moving files (`moves`: old → new) needs, in every
/// file of `files` (the project before the move). With `already_moved`, the moved files are
/// at their new paths in the plan; otherwise at their old ones (the move comes after).
/// Languages in `skip` are left alone (their language server already gave the edits).
/// Returns how many imports change.
pub async fn rewrite_for_moves(
    plan: &mut EditPlan,
    files: &BTreeSet<String>,
    moves: &BTreeMap<String, String>,
    already_moved: bool,
    skip: &BTreeSet<Lang>,
) -> Result<usize, ToolError> {
    let mut changed = 0;
    for file in files {
        let Some(lang) = Lang::of(file).filter(|l| l.rewrites_imports() && !skip.contains(l))
        else {
            continue;
        };
        let new_place = moves.get(file).unwrap_or(file);
        let current = if already_moved { new_place } else { file };
        let Some(text) = plan.text_of_rel(current).await? else {
            continue;
        };
        let mut edits = Vec::new();
        for import in imports(lang, &text).into_iter().filter(|i| !i.system) {
            let Some(target) = resolve(lang, file, &import.spec, files) else {
                continue;
            };
            let new_target = moves.get(&target).unwrap_or(&target);
            if new_target == &target && new_place == file {
                continue;
            }
            let spec = specifier(lang, new_place, new_target, &import.spec);
            if spec != import.spec {
                edits.push(TextEdit {
                    range: Range::new(
                        position_at(&text, import.start),
                        position_at(&text, import.end),
                    ),
                    new_text: spec,
                });
            }
        }
        changed += edits.len();
        plan.text_edits_rel(current, edits).await?;
    }
    Ok(changed)
}

/// An import with the project file it names, as `analyze_imports` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImport {
    /// The import as written.
    pub import: Import,
    /// The project file (or, for Go, package directory), relative to the root; `None` for
    /// external modules.
    pub resolved: Option<String>,
}

/// Resolution for reading a project's imports: [`resolve`], plus what a reader wants and a
/// rewriter must not guess.
#[derive(Debug, Clone, Copy)]
pub struct Analysis<'a> {
    /// Every project file, relative.
    pub files: &'a BTreeSet<String>,
    /// The module path from `go.mod`, if any.
    pub go_module: Option<&'a str>,
}

impl Analysis<'_> {
    /// The imports of the file `importer` with content `text`, resolved; none for a language
    /// this module does not read.
    pub fn imports(&self, importer: &str, text: &str) -> Vec<ResolvedImport> {
        let Some(lang) = Lang::of(importer) else {
            return Vec::new();
        };
        imports(lang, text)
            .into_iter()
            .map(|import| ResolvedImport {
                resolved: self.resolve(lang, importer, text, &import),
                import,
            })
            .collect()
    }

    /// The project file (or Go package directory) `import`, read from `importer`'s `text`,
    /// names.
    pub fn resolve(
        &self,
        lang: Lang,
        importer: &str,
        text: &str,
        import: &Import,
    ) -> Option<String> {
        let files = self.files;
        match lang {
            Lang::Python => {
                // Also the importer's own directory, as when it runs as a script — not for a
                // module of a package (its directory has an `__init__.py`): there `import
                // typing` is the standard library's even beside the package's own typing.py.
                let dir = dir_of(importer);
                let init = if dir.is_empty() {
                    "__init__.py".to_owned()
                } else {
                    format!("{dir}/__init__.py")
                };
                let script_dir = !files.contains(&init);
                let python = |spec: &str| {
                    resolve(lang, importer, spec, files).or_else(|| {
                        if !script_dir || spec.starts_with('.') {
                            return None;
                        }
                        let stem = join(dir, &spec.replace('.', "/"))?;
                        python_candidates(&stem).find(|c| files.contains(c))
                    })
                };
                let module = python(&import.spec);
                if module
                    .as_deref()
                    .is_some_and(|r| !r.ends_with("__init__.py"))
                {
                    return module;
                }
                // `from pkg import module` names a module file.
                let rest = text[import.end..].lines().next().unwrap_or("").trim_start();
                let names = rest.strip_prefix("import").map_or("", str::trim);
                let sep = if import.spec.ends_with('.') { "" } else { "." };
                names
                    .trim_matches(['(', ')', ' '])
                    .split(',')
                    .filter(|_| !names.is_empty())
                    .find_map(|name| {
                        let name = name.split(" as ").next().unwrap_or("").trim();
                        python(&format!("{}{sep}{name}", import.spec))
                    })
                    .or(module)
            }
            Lang::Script => resolve(lang, importer, &import.spec, files),
            Lang::C => (!import.system)
                .then(|| resolve(lang, importer, &import.spec, files))
                .flatten()
                .or_else(|| {
                    // Include directories: any project file of that name.
                    let suffix = format!("/{}", import.spec);
                    files.iter().find(|f| f.ends_with(&suffix)).cloned()
                }),
            Lang::Go => self
                .go_module
                .and_then(|m| import.spec.strip_prefix(m))
                .map(|rest| rest.trim_start_matches('/').to_owned())
                .filter(|d| files.iter().any(|f| dir_of(f) == d && f.ends_with(".go"))),
            Lang::Rust => {
                let candidates = if let Some(first) = import.spec.strip_prefix("crate::") {
                    [format!("src/{first}.rs"), format!("src/{first}/mod.rs")]
                } else {
                    let name = &import.spec;
                    let file = importer.rsplit('/').next().unwrap_or(importer);
                    let base = if matches!(file, "lib.rs" | "main.rs" | "mod.rs") {
                        dir_of(importer).to_owned()
                    } else {
                        join(dir_of(importer), file.trim_end_matches(".rs")).unwrap_or_default()
                    };
                    [format!("{base}/{name}.rs"), format!("{base}/{name}/mod.rs")]
                        .map(|c| c.trim_start_matches('/').to_owned())
                };
                candidates.into_iter().find(|c| files.contains(c))
            }
        }
    }
}

/// The LSP position of a byte offset.
fn position_at(text: &str, offset: usize) -> Position {
    codeflow_workspace::LineIndex::new(text).position(offset)
}

/// Helpers for callers that hold relative paths.
pub fn rel(path: &str) -> Result<RelPath, ToolError> {
    RelPath::parse(path).map_err(|e| ToolError::InvalidArguments(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(files: &[&str]) -> BTreeSet<String> {
        files.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn reads_imports() {
        let specs = |lang, text| {
            imports(lang, text)
                .into_iter()
                .filter(|i| !i.system)
                .map(|i| i.spec)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            specs(
                Lang::Python,
                "from pkg.util import helper\nimport os, a.b as c\n  from . import x\n"
            ),
            ["pkg.util", "os", "a.b", "."]
        );
        assert_eq!(
            specs(
                Lang::Script,
                "import { greet } from \"./lib\";\nconst x = require('../y');\nimport './side';\n"
            ),
            ["./lib", "../y", "./side"]
        );
        assert_eq!(
            specs(Lang::C, "#include \"util.h\"\n#include <stdio.h>\n"),
            ["util.h"]
        );
    }

    #[test]
    fn resolves_and_respells() {
        let files = set(&[
            "pkg/__init__.py",
            "pkg/util.py",
            "main.py",
            "src/lib.ts",
            "src/main.ts",
            "util.h",
            "src/a.c",
        ]);
        assert_eq!(
            resolve(Lang::Python, "main.py", "pkg.util", &files).as_deref(),
            Some("pkg/util.py")
        );
        assert_eq!(
            resolve(Lang::Python, "pkg/x.py", ".util", &files).as_deref(),
            Some("pkg/util.py")
        );
        assert_eq!(
            resolve(Lang::Script, "src/main.ts", "./lib", &files).as_deref(),
            Some("src/lib.ts")
        );
        assert_eq!(
            resolve(Lang::C, "src/a.c", "util.h", &files).as_deref(),
            Some("util.h")
        );
        assert_eq!(
            specifier(Lang::Python, "main.py", "core/helpers.py", "pkg.util"),
            "core.helpers"
        );
        assert_eq!(
            specifier(Lang::Python, "pkg/x.py", "pkg/sub/util.py", ".util"),
            ".sub.util"
        );
        assert_eq!(
            specifier(Lang::Script, "src/main.ts", "lib/greet.ts", "./lib"),
            "../lib/greet"
        );
        assert_eq!(
            specifier(Lang::C, "src/a.c", "include/util.h", "util.h"),
            "../include/util.h"
        );
        assert_eq!(
            specifier(Lang::C, "a.c", "inc/util.h", "util.h"),
            "inc/util.h"
        );
    }

    #[test]
    fn resolves_by_language() {
        let files = set(&[
            "pkg/__init__.py",
            "pkg/shapes.py",
            "app.py",
            "src/a.ts",
            "src/b.ts",
            "inc/x.h",
            "m.c",
        ]);
        let analysis = Analysis {
            files: &files,
            go_module: None,
        };
        let py = analysis.imports(
            "app.py",
            "import os\nfrom pkg.shapes import scale\nfrom pkg import shapes\n",
        );
        assert_eq!(py[0].resolved, None);
        assert_eq!(py[1].resolved.as_deref(), Some("pkg/shapes.py"));
        assert_eq!(py[2].resolved.as_deref(), Some("pkg/shapes.py"));
        let ts = analysis.imports(
            "src/b.ts",
            "import { a } from \"./a\";\nimport fs from 'fs';\n",
        );
        assert_eq!(ts[0].resolved.as_deref(), Some("src/a.ts"));
        assert_eq!(ts[1].resolved, None);
        let c = analysis.imports("m.c", "#include \"x.h\"\n#include <stdio.h>\n");
        assert_eq!(c[0].resolved.as_deref(), Some("inc/x.h"));
        assert_eq!(c[1].resolved, None);
    }

    #[test]
    fn a_package_module_does_not_import_its_siblings_by_bare_name() {
        let files = set(&[
            "src/flask/__init__.py",
            "src/flask/app.py",
            "src/flask/typing.py",
            "scripts/run.py",
            "scripts/helpers.py",
        ]);
        let analysis = Analysis {
            files: &files,
            go_module: None,
        };
        let app = analysis.imports(
            "src/flask/app.py",
            "import typing as t\nfrom . import typing as ft\n",
        );
        assert_eq!(app[0].resolved, None, "the standard library's typing");
        assert_eq!(app[1].resolved.as_deref(), Some("src/flask/typing.py"));
        // A script's own directory is on its path.
        let run = analysis.imports("scripts/run.py", "import helpers\n");
        assert_eq!(run[0].resolved.as_deref(), Some("scripts/helpers.py"));
    }

    #[test]
    fn resolves_go_packages_and_rust_modules() {
        let files = set(&[
            "go.mod",
            "shapes/shapes.go",
            "main.go",
            "src/lib.rs",
            "src/shapes.rs",
        ]);
        let analysis = Analysis {
            files: &files,
            go_module: Some("example.com/demo"),
        };
        let go = analysis.imports(
            "main.go",
            "import (\n\t\"fmt\"\n\ts \"example.com/demo/shapes\"\n)\n",
        );
        let go: Vec<_> = go
            .iter()
            .map(|i| (i.import.spec.as_str(), i.resolved.as_deref()))
            .collect();
        assert_eq!(
            go,
            [("fmt", None), ("example.com/demo/shapes", Some("shapes"))]
        );
        let rs = analysis.imports("src/lib.rs", "pub mod shapes;\nuse crate::shapes::scale;\n");
        let rs: Vec<_> = rs
            .iter()
            .map(|i| (i.import.spec.as_str(), i.resolved.as_deref()))
            .collect();
        assert_eq!(
            rs,
            [
                ("shapes", Some("src/shapes.rs")),
                ("crate::shapes", Some("src/shapes.rs"))
            ]
        );
    }
}
