//! Import statements read from source text, for the tools that move and delete files
//! (`delete_file`, `rename_file`, `rename_directory`, `fix_imports`) when the language server
//! cannot say itself (`workspace/willRenameFiles`).
//!
//! Deliberately small and lexical: Python `import m` / `from m import x` (absolute and
//! relative), JavaScript/TypeScript relative specifiers (`from "./x"`, `import "./x"`,
//! `require("./x")`, `import("./x")`), C/C++ `#include "x.h"`. Package imports, aliases in
//! `tsconfig.json` paths and include directories other than the includer's and the project
//! root are not followed.

use std::collections::{BTreeMap, BTreeSet};

use codeflow_file_stream::RelPath;
use codeflow_lsp_pool::lsp_types::{Position, Range, TextEdit};

use crate::edits::EditPlan;
use crate::error::ToolError;

/// Languages whose imports are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lang {
    Python,
    Script,
    C,
}

const SCRIPT_EXTENSIONS: &[&str] = &["ts", "tsx", "d.ts", "js", "jsx", "mjs", "cjs", "mts", "cts"];

impl Lang {
    pub fn of(path: &str) -> Option<Self> {
        let ext = path.rsplit_once('.').map(|(_, e)| e)?;
        match ext {
            "py" | "pyi" => Some(Self::Python),
            "ts" | "tsx" | "js" | "jsx" | "mjs" | "cjs" | "mts" | "cts" => Some(Self::Script),
            "c" | "h" | "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" => Some(Self::C),
            _ => None,
        }
    }
}

/// One import specifier in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// Byte range of the specifier text (without quotes).
    pub start: usize,
    pub end: usize,
    pub spec: String,
    /// 0-based line.
    pub line: u32,
}

/// The import specifiers of a file's text.
pub fn imports(lang: Lang, text: &str) -> Vec<Import> {
    let mut out = Vec::new();
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let line_no = n as u32;
        match lang {
            Lang::Python => python_line(line, offset, line_no, &mut out),
            Lang::Script => script_line(line, offset, line_no, &mut out),
            Lang::C => c_line(line, offset, line_no, &mut out),
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
    let Some(q) = rest.find('"') else { return };
    let start = line.len() - rest.len() + q + 1;
    if let Some(len) = line[start..].find('"') {
        push(out, line, offset, line_no, start, start + len);
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
            let base = module.replace('.', "/");
            [
                format!("{base}.py"),
                format!("{base}.pyi"),
                format!("{base}/__init__.py"),
            ]
            .into_iter()
            .find(|c| files.contains(c))
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
    }
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
    }
}

/// Files of the project whose imports resolve to `target`: (importer, 1-based line).
pub async fn importers_of(
    plan: &mut EditPlan,
    files: &BTreeSet<String>,
    target: &str,
) -> Result<Vec<(String, u32)>, ToolError> {
    let mut out = Vec::new();
    let Some(target_lang) = Lang::of(target) else {
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
        for import in imports(lang, &text) {
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
        let Some(lang) = Lang::of(file).filter(|l| !skip.contains(l)) else {
            continue;
        };
        let new_place = moves.get(file).unwrap_or(file);
        let current = if already_moved { new_place } else { file };
        let Some(text) = plan.text_of_rel(current).await? else {
            continue;
        };
        let mut edits = Vec::new();
        for import in imports(lang, &text) {
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

/// The LSP position of a byte offset.
fn position_at(text: &str, offset: usize) -> Position {
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    Position::new(line, before[start..].encode_utf16().count() as u32)
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
}
