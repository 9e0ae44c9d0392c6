//! Import statements by language (Python, TypeScript/JavaScript, C/C++, Go, Rust), read from
//! a file's text and resolved against the project's files. Textual on purpose: it needs no
//! language server, answers for a whole project at once, and is what `analyze_imports` (and a
//! refusal to delete an imported file) needs.

use std::collections::BTreeSet;

/// One import statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// As written (`pkg.shapes`, `./shapes`, `shapes.h`).
    pub specifier: String,
    /// 0-based line.
    pub line: u32,
    /// The project file (or, for Go, package directory) it names, relative to the root.
    pub resolved: Option<String>,
}

fn ext(rel: &str) -> &str {
    rel.rsplit_once('.').map_or("", |(_, e)| e)
}

fn dir(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(d, _)| d)
}

fn join(base: &str, rest: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    for c in rest.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Quoted strings in a line (either quote).
fn quoted(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find(['"', '\'']) {
        let q = rest.as_bytes()[i] as char;
        let after = &rest[i + 1..];
        let Some(j) = after.find(q) else { break };
        out.push(after[..j].to_owned());
        rest = &after[j + 1..];
    }
    out
}

/// Whether the importer language of `rel` is one this module reads.
pub fn is_supported(rel: &str) -> bool {
    matches!(
        ext(rel),
        "py" | "pyi"
            | "ts"
            | "tsx"
            | "js"
            | "jsx"
            | "mjs"
            | "cjs"
            | "c"
            | "h"
            | "cc"
            | "cpp"
            | "cxx"
            | "hpp"
            | "go"
            | "rs"
    )
}

/// Same language family (who can import whom).
pub fn same_family(a: &str, b: &str) -> bool {
    fn family(e: &str) -> u8 {
        match e {
            "py" | "pyi" => 1,
            "ts" | "tsx" | "js" | "jsx" | "mjs" | "cjs" => 2,
            "c" | "h" | "cc" | "cpp" | "cxx" | "hpp" => 3,
            "go" => 4,
            "rs" => 5,
            _ => 0,
        }
    }
    let (fa, fb) = (family(ext(a)), family(ext(b)));
    fa != 0 && fa == fb
}

/// The imports of the file `rel` with content `text`, resolved against `files` (every project
/// file, relative). `go_module` is the module path from `go.mod`, if any.
pub fn imports(
    rel: &str,
    text: &str,
    files: &BTreeSet<String>,
    go_module: Option<&str>,
) -> Vec<Import> {
    let mut out = Vec::new();
    let mut in_go_block = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let mut push = |spec: String, resolved: Option<String>| {
            out.push(Import {
                specifier: spec,
                line: n,
                resolved,
            });
        };
        match ext(rel) {
            "py" | "pyi" => {
                if let Some(rest) = line.strip_prefix("import ") {
                    for m in rest.split(',') {
                        let m = m.split(" as ").next().unwrap_or("").trim();
                        if !m.is_empty() {
                            push(m.to_owned(), resolve_py(rel, m, files));
                        }
                    }
                } else if let Some((module, names)) = line
                    .strip_prefix("from ")
                    .and_then(|rest| rest.split_once(" import "))
                {
                    {
                        let module = module.trim();
                        let mut resolved = resolve_py(rel, module, files);
                        if resolved.is_none()
                            || resolved
                                .as_deref()
                                .is_some_and(|r| r.ends_with("__init__.py"))
                        {
                            // `from pkg import mod` names a module file.
                            for name in names.trim_matches(['(', ')', ' ']).split(',') {
                                let name = name.split(" as ").next().unwrap_or("").trim();
                                let sep = if module.ends_with('.') { "" } else { "." };
                                if let Some(r) =
                                    resolve_py(rel, &format!("{module}{sep}{name}"), files)
                                {
                                    resolved = Some(r);
                                    break;
                                }
                            }
                        }
                        push(module.to_owned(), resolved);
                    }
                }
            }
            "ts" | "tsx" | "js" | "jsx" | "mjs" | "cjs" => {
                let is_import = line.starts_with("import ")
                    || line.starts_with("import\"")
                    || (line.starts_with("export ") && line.contains(" from "))
                    || line.contains("require(")
                    || line.contains("import(")
                    || line.starts_with("} from ");
                if is_import && let Some(spec) = quoted(line).pop() {
                    let resolved = resolve_ts(rel, &spec, files);
                    push(spec, resolved);
                }
            }
            "c" | "h" | "cc" | "cpp" | "cxx" | "hpp" => {
                if let Some(rest) = line.strip_prefix('#').map(str::trim_start)
                    && let Some(rest) = rest.strip_prefix("include")
                {
                    let rest = rest.trim();
                    let spec = rest
                        .trim_start_matches(['"', '<'])
                        .split(['"', '>'])
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    if !spec.is_empty() {
                        let resolved = resolve_c(rel, &spec, rest.starts_with('"'), files);
                        push(spec, resolved);
                    }
                }
            }
            "go" => {
                let spec = if in_go_block {
                    if line.starts_with(')') {
                        in_go_block = false;
                        None
                    } else {
                        quoted(line).pop()
                    }
                } else if line == "import (" {
                    in_go_block = true;
                    None
                } else if line.starts_with("import ") {
                    quoted(line).pop()
                } else {
                    None
                };
                if let Some(spec) = spec {
                    let resolved = go_module
                        .and_then(|m| spec.strip_prefix(m))
                        .map(|rest| rest.trim_start_matches('/').to_owned())
                        .filter(|d| files.iter().any(|f| dir(f) == d && f.ends_with(".go")));
                    push(spec, resolved);
                }
            }
            "rs" => {
                let l = line
                    .trim_start_matches("pub ")
                    .trim_start_matches("pub(crate) ");
                if let Some(name) = l.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                    let name = name.trim();
                    let stem = rel.rsplit('/').next().unwrap_or(rel);
                    let base = if matches!(stem, "lib.rs" | "main.rs" | "mod.rs") {
                        dir(rel).to_owned()
                    } else {
                        join(dir(rel), stem.trim_end_matches(".rs")).unwrap_or_default()
                    };
                    let resolved = [format!("{base}/{name}.rs"), format!("{base}/{name}/mod.rs")]
                        .into_iter()
                        .map(|c| c.trim_start_matches('/').to_owned())
                        .find(|c| files.contains(c));
                    push(name.to_owned(), resolved);
                } else if let Some(path) = l.strip_prefix("use crate::") {
                    let first = path
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or("");
                    let resolved = [format!("src/{first}.rs"), format!("src/{first}/mod.rs")]
                        .into_iter()
                        .find(|c| files.contains(c));
                    push(format!("crate::{first}"), resolved);
                }
            }
            _ => {}
        }
    }
    out
}

fn resolve_py(rel: &str, module: &str, files: &BTreeSet<String>) -> Option<String> {
    let dots = module.chars().take_while(|c| *c == '.').count();
    let name = module[dots..].replace('.', "/");
    let bases: Vec<String> = if dots > 0 {
        let mut base = dir(rel).to_owned();
        for _ in 1..dots {
            base = dir(&base).to_owned();
        }
        vec![base]
    } else {
        vec![String::new(), dir(rel).to_owned()]
    };
    for base in bases {
        let stem = join(&base, &name)?;
        for c in [
            format!("{stem}.py"),
            format!("{stem}.pyi"),
            format!("{stem}/__init__.py"),
        ] {
            let c = c.trim_start_matches('/').to_owned();
            if files.contains(&c) {
                return Some(c);
            }
        }
    }
    None
}

fn resolve_ts(rel: &str, spec: &str, files: &BTreeSet<String>) -> Option<String> {
    if !spec.starts_with('.') {
        return None;
    }
    let p = join(dir(rel), spec)?;
    let stem = p
        .strip_suffix(".js")
        .filter(|s| files.contains(&format!("{s}.ts")) || files.contains(&format!("{s}.tsx")))
        .unwrap_or(&p);
    [
        "",
        ".ts",
        ".tsx",
        ".d.ts",
        ".js",
        ".jsx",
        ".mjs",
        ".cjs",
        "/index.ts",
        "/index.tsx",
        "/index.js",
    ]
    .iter()
    .map(|e| format!("{stem}{e}"))
    .find(|c| files.contains(c))
}

fn resolve_c(rel: &str, spec: &str, local: bool, files: &BTreeSet<String>) -> Option<String> {
    if local {
        if let Some(c) = join(dir(rel), spec).filter(|c| files.contains(c)) {
            return Some(c);
        }
        if files.contains(spec) {
            return Some(spec.to_owned());
        }
    }
    let suffix = format!("/{spec}");
    files.iter().find(|f| f.ends_with(&suffix)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(files: &[&str]) -> BTreeSet<String> {
        files.iter().map(|s| (*s).to_owned()).collect()
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
        let py = imports(
            "app.py",
            "import os\nfrom pkg.shapes import scale\nfrom pkg import shapes\n",
            &files,
            None,
        );
        assert_eq!(py[0].resolved, None);
        assert_eq!(py[1].resolved.as_deref(), Some("pkg/shapes.py"));
        assert_eq!(py[2].resolved.as_deref(), Some("pkg/shapes.py"));
        let ts = imports(
            "src/b.ts",
            "import { a } from \"./a\";\nimport fs from 'fs';\n",
            &files,
            None,
        );
        assert_eq!(ts[0].resolved.as_deref(), Some("src/a.ts"));
        assert_eq!(ts[1].resolved, None);
        let c = imports(
            "m.c",
            "#include \"x.h\"\n#include <stdio.h>\n",
            &files,
            None,
        );
        assert_eq!(c[0].resolved.as_deref(), Some("inc/x.h"));
        assert_eq!(c[1].resolved, None);
    }
}
