//! go.mod: `require` directives, single-line or in a `require ( … )` block; every other line
//! (and each entry's `// indirect` comment) is kept.

use super::line_file::LineFile;
use super::{Change, Edited, Request, unsupported};
use crate::error::ToolError;

/// One required module: which line, its path and version.
#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    /// Inside a `require ( … )` block (which starts at this line), or a one-line `require`.
    block: Option<usize>,
    module: String,
    version: String,
}

/// The requirement in a line's text (without the `require` keyword for one-liners).
fn split_entry(s: &str) -> Option<(String, String)> {
    let code = s.split("//").next().unwrap_or("");
    let mut parts = code.split_whitespace();
    let module = parts.next()?.trim_matches('"').to_owned();
    let version = parts.next()?.to_owned();
    Some((module, version))
}

fn scan(lines: &[String]) -> (Vec<Entry>, Vec<(usize, usize)>) {
    let mut entries = Vec::new();
    let mut blocks = Vec::new();
    let mut open: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if let Some(start) = open {
            if t.starts_with(')') {
                blocks.push((start, i));
                open = None;
            } else if !t.is_empty()
                && !t.starts_with("//")
                && let Some((module, version)) = split_entry(t)
            {
                entries.push(Entry {
                    line: i,
                    block: Some(start),
                    module,
                    version,
                });
            }
            continue;
        }
        if let Some(rest) = t.strip_prefix("require") {
            let rest = rest.trim_start();
            if rest.starts_with('(') {
                open = Some(i);
            } else if t.len() > "require".len()
                && t["require".len()..].starts_with([' ', '\t'])
                && let Some((module, version)) = split_entry(rest)
            {
                entries.push(Entry {
                    line: i,
                    block: None,
                    module,
                    version,
                });
            }
        }
    }
    (entries, blocks)
}

/// Go versions are `vX.Y.Z`; a bare `X.Y.Z` gets its `v`.
fn go_version(version: &str) -> Result<String, ToolError> {
    let v = version.trim();
    if v.is_empty() || v.contains(char::is_whitespace) {
        return Err(ToolError::InvalidArguments(format!(
            "`{version}` is not a Go module version (like v1.2.3)"
        )));
    }
    Ok(if v.starts_with(|c: char| c.is_ascii_digit()) {
        format!("v{v}")
    } else {
        v.to_owned()
    })
}

/// Removes lines `start..=end`, and a blank line that would then double another.
fn remove_lines(lines: &mut Vec<String>, start: usize, end: usize) {
    lines.drain(start..=end);
    let blank = |l: &String| l.trim().is_empty();
    if start > 0 && blank(&lines[start - 1]) && lines.get(start).is_none_or(blank) {
        lines.remove(start - 1);
    }
}

pub fn edit(text: &str, req: &Request) -> Result<Edited, ToolError> {
    if !req.add_dev_dependencies.is_empty() {
        return Err(unsupported(
            "go.mod has no dev dependencies; Go has one require list (test-only modules go in it too): use add_dependencies",
        ));
    }
    if req.wants_scripts() {
        return Err(unsupported("go.mod has no scripts"));
    }
    if req.update_version.is_some() {
        return Err(unsupported(
            "go.mod has no version of its own: a Go module's version is its VCS tag (git tag vX.Y.Z)",
        ));
    }
    let mut file = LineFile::new(text);
    let lines = &mut file.lines;
    let mut out = Edited::default();
    let section = "require";
    for (module, version) in &req.add_dependencies {
        let version = go_version(version)?;
        let (entries, blocks) = scan(lines);
        if let Some(e) = entries.iter().find(|e| e.module == *module) {
            let line = &lines[e.line];
            // Replace the version token after the module path, keeping the rest.
            let module_at = line.find(module.as_str()).unwrap_or(0);
            let after_module = module_at + module.len();
            let rest = &line[after_module..];
            if let Some(v_at) = rest.find(e.version.as_str()) {
                let start = after_module + v_at;
                let new_line = format!(
                    "{}{}{}",
                    &line[..start],
                    version,
                    &line[start + e.version.len()..]
                );
                lines[e.line] = new_line;
            }
            out.record_set(section, module, &version, Some(e.version.clone()));
            continue;
        }
        out.record_set(section, module, &version, None);
        // Into the first block (the direct requirements, by go mod tidy's convention), in
        // order when it is sorted.
        if let Some(&(start, end)) = blocks.first() {
            let in_block: Vec<&Entry> = entries.iter().filter(|e| e.block == Some(start)).collect();
            let indent = in_block.first().map_or_else(
                || "\t".to_owned(),
                |e| {
                    let l = &lines[e.line];
                    l[..l.len() - l.trim_start().len()].to_owned()
                },
            );
            let sorted = in_block.windows(2).all(|w| w[0].module <= w[1].module);
            let at = if sorted {
                in_block
                    .iter()
                    .find(|e| e.module > *module)
                    .map_or(end, |e| e.line)
            } else {
                end
            };
            lines.insert(at, format!("{indent}{module} {version}"));
        } else if let Some(last) = entries.last() {
            lines.insert(last.line + 1, format!("require {module} {version}"));
        } else {
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push(format!("require {module} {version}"));
        }
    }
    for module in &req.remove_dependencies {
        let (entries, blocks) = scan(lines);
        let Some(e) = entries.iter().find(|e| e.module == *module) else {
            out.warnings.push(format!(
                "{module} is not required in go.mod; nothing removed"
            ));
            continue;
        };
        out.changes
            .push(Change::removed(section, module, Some(e.version.clone())));
        let emptied_block = e.block.and_then(|start| {
            let others = entries
                .iter()
                .filter(|o| o.block == Some(start) && o.line != e.line)
                .count();
            (others == 0).then(|| blocks.iter().find(|(s, _)| *s == start).copied())?
        });
        match emptied_block {
            Some((start, end)) => remove_lines(lines, start, end),
            None => remove_lines(lines, e.line, e.line),
        }
    }
    file.finish(text, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOMOD: &str = "module example.com/demo\n\ngo 1.22\n\nrequire (\n\tgithub.com/google/uuid v1.5.0\n\tgolang.org/x/sync v0.6.0 // pinned\n)\n\nrequire (\n\tgolang.org/x/sys v0.15.0 // indirect\n)\n";

    #[test]
    fn add_update_remove_in_blocks() {
        let mut r = Request::default();
        r.add_dependencies
            .insert("github.com/spf13/cobra".into(), "1.8.0".into());
        r.add_dependencies
            .insert("golang.org/x/sync".into(), "v0.7.0".into());
        r.add_dependencies
            .insert("golang.org/x/sys".into(), "v0.16.0".into());
        r.remove_dependencies.push("github.com/google/uuid".into());
        r.remove_dependencies.push("example.com/absent".into());
        let out = edit(GOMOD, &r).unwrap();
        assert_eq!(
            out.content,
            "module example.com/demo\n\ngo 1.22\n\nrequire (\n\tgithub.com/spf13/cobra v1.8.0\n\tgolang.org/x/sync v0.7.0 // pinned\n)\n\nrequire (\n\tgolang.org/x/sys v0.16.0 // indirect\n)\n"
        );
        assert_eq!(
            out.warnings,
            vec!["example.com/absent is not required in go.mod; nothing removed".to_owned()]
        );
        assert_eq!(out.changes.len(), 4);
    }

    #[test]
    fn single_line_requires_and_emptied_blocks() {
        let text = "module m\n\ngo 1.21\n\nrequire a.com/x v1.0.0\n\nrequire (\n\tb.com/y v0.1.0 // indirect\n)\n";
        let mut r = Request::default();
        r.add_dependencies.insert("c.com/z".into(), "v2.0.0".into());
        r.remove_dependencies.push("b.com/y".into());
        let out = edit(text, &r).unwrap();
        assert_eq!(
            out.content,
            "module m\n\ngo 1.21\n\nrequire a.com/x v1.0.0\n\nrequire (\n\tc.com/z v2.0.0\n)\n"
        );
        let mut r = Request::default();
        r.remove_dependencies.push("a.com/x".into());
        r.remove_dependencies.push("b.com/y".into());
        let out = edit(text, &r).unwrap();
        assert_eq!(out.content, "module m\n\ngo 1.21\n");
    }

    #[test]
    fn first_require_and_errors() {
        let mut r = Request::default();
        r.add_dependencies.insert("a.com/x".into(), "v1.0.0".into());
        let out = edit("module m\n\ngo 1.22\n", &r).unwrap();
        assert_eq!(
            out.content,
            "module m\n\ngo 1.22\n\nrequire a.com/x v1.0.0\n"
        );

        let r = Request {
            update_version: Some("v2.0.0".into()),
            ..Default::default()
        };
        assert!(edit(GOMOD, &r).unwrap_err().to_string().contains("VCS tag"));
        let mut r = Request::default();
        r.add_scripts.insert("x".into(), "y".into());
        assert!(
            edit(GOMOD, &r)
                .unwrap_err()
                .to_string()
                .contains("go.mod has no scripts")
        );
    }
}
