//! requirements.txt: one requirement per line; comments, options (`-r`, `-e`, `--index-url`)
//! and blank lines are kept as they are. Also the PEP 508 helpers pyproject.toml uses.

use super::line_file::LineFile;
use super::{Change, Edited, Request, unsupported};
use crate::error::ToolError;

/// PEP 503: lowercase, runs of `-`, `_` and `.` become one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// A PEP 508 requirement split into its parts, as byte ranges of the original.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement<'a> {
    pub name: &'a str,
    /// `[extras]` with any spacing before it, or `""`.
    pub extras: &'a str,
    /// The version specifier (or `@ url`), trimmed.
    pub spec: &'a str,
    /// Everything after the specifier: `; marker`, with the spacing before it.
    pub tail: &'a str,
}

/// Reads a requirement; `None` when the text does not start with a package name.
pub fn parse_requirement(s: &str) -> Option<Requirement<'_>> {
    let s = s.trim();
    let name_end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(s.len());
    if name_end == 0 {
        return None;
    }
    let name = &s[..name_end];
    let mut rest_start = name_end;
    let after = &s[name_end..];
    let trimmed = after.trim_start();
    if trimmed.starts_with('[') {
        let close = trimmed.find(']')?;
        rest_start = name_end + (after.len() - trimmed.len()) + close + 1;
    }
    let extras = &s[name_end..rest_start];
    let rest = &s[rest_start..];
    let (spec_part, tail_start) = match rest.find(';') {
        Some(i) => (&rest[..i], i),
        None => (rest, rest.len()),
    };
    let spec = spec_part.trim();
    let tail_start = spec_part.trim_end().len().min(tail_start);
    Some(Requirement {
        name,
        extras,
        spec,
        tail: &rest[tail_start..],
    })
}

/// The specifier for a version argument: a bare version `X` becomes `==X`; one that starts
/// with an operator is kept; empty or `*` means any version.
pub fn specifier(version: &str) -> Result<String, ToolError> {
    let v = version.trim();
    if v.is_empty() || v == "*" {
        return Ok(String::new());
    }
    if v.starts_with('^') {
        return Err(ToolError::InvalidArguments(format!(
            "`{v}` is not a Python version specifier (PEP 440 has no ^); write it like `>=1.2,<2` or `~=1.2`"
        )));
    }
    if v.starts_with(['=', '!', '<', '>', '~', '@']) {
        return Ok(if v.starts_with('@') {
            format!(" {v}")
        } else {
            v.to_owned()
        });
    }
    Ok(format!("=={v}"))
}

/// A new requirement string for `name` at `version`.
pub fn requirement(name: &str, version: &str) -> Result<String, ToolError> {
    Ok(format!("{name}{}", specifier(version)?))
}

/// An existing requirement at a new version, keeping its name spelling, extras and marker.
pub fn with_version(existing: &Requirement<'_>, version: &str) -> Result<String, ToolError> {
    Ok(format!(
        "{}{}{}{}",
        existing.name,
        existing.extras,
        specifier(version)?,
        existing.tail
    ))
}

/// A line's requirement part (without an inline ` #` comment), if it is a requirement line.
fn requirement_part(line: &str) -> Option<(&str, &str)> {
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
        return None;
    }
    // An inline comment starts at whitespace + `#`.
    let cut = line
        .char_indices()
        .find(|&(i, c)| c == '#' && i > 0 && line[..i].ends_with([' ', '\t']))
        .map_or(line.len(), |(i, _)| i);
    let req_trimmed = line[..cut].trim_end();
    let comment_start = req_trimmed.len();
    // URLs and paths are not named requirements.
    if req_trimmed.contains("://") && !req_trimmed.contains('@') {
        return None;
    }
    Some((req_trimmed, &line[comment_start..]))
}

pub fn edit(text: &str, req: &Request) -> Result<Edited, ToolError> {
    if !req.add_dev_dependencies.is_empty() {
        return Err(unsupported(
            "requirements.txt has no dev dependencies; put them in their own file (e.g. requirements-dev.txt) and pass that file with add_dependencies",
        ));
    }
    if req.wants_scripts() {
        return Err(unsupported("requirements.txt has no scripts"));
    }
    if req.update_version.is_some() {
        return Err(unsupported(
            "requirements.txt has no version of its own; update_version works on package.json, Cargo.toml and pyproject.toml",
        ));
    }
    let mut file = LineFile::new(text);
    let lines = &mut file.lines;
    let mut out = Edited::default();
    let section = "requirements";
    // Index of each line's requirement name (normalized).
    let name_of = |line: &str| {
        requirement_part(line)
            .and_then(|(r, _)| parse_requirement(r))
            .map(|r| normalize(r.name))
    };
    for (name, version) in &req.add_dependencies {
        let wanted = normalize(name);
        match lines
            .iter()
            .position(|l| name_of(l).as_deref() == Some(&wanted))
        {
            Some(i) => {
                let line = lines[i].clone();
                let Some((req_text, comment)) = requirement_part(&line) else {
                    continue;
                };
                let Some(parsed) = parse_requirement(req_text) else {
                    continue;
                };
                let indent = &line[..line.len() - line.trim_start().len()];
                let continued = req_text.ends_with('\\');
                let parsed = if continued {
                    parse_requirement(req_text.trim_end_matches('\\')).unwrap_or(parsed)
                } else {
                    parsed
                };
                let new_req = with_version(&parsed, version)?;
                let continuation = if continued { " \\" } else { "" };
                if continued {
                    out.warnings.push(format!(
                        "{name} has --hash lines after it; regenerate them (pip-compile --generate-hashes)"
                    ));
                }
                out.record_set(section, name, &new_req, Some(req_text.trim().to_owned()));
                lines[i] = format!("{indent}{new_req}{continuation}{comment}");
            }
            None => {
                let new_req = requirement(name, version)?;
                out.record_set(section, name, &new_req, None);
                lines.push(new_req);
            }
        }
    }
    for name in &req.remove_dependencies {
        let wanted = normalize(name);
        let mut found = false;
        let mut i = 0;
        while i < lines.len() {
            if name_of(&lines[i]).as_deref() != Some(&wanted) {
                i += 1;
                continue;
            }
            let previous = requirement_part(&lines[i]).map(|(r, _)| r.trim().to_owned());
            out.changes.push(Change::removed(section, name, previous));
            found = true;
            // A line continued with `\` takes its continuation lines with it.
            while lines.get(i).is_some_and(|l| l.trim_end().ends_with('\\')) {
                lines.remove(i);
            }
            if i < lines.len() {
                lines.remove(i);
            }
        }
        if !found {
            out.warnings.push(format!(
                "{name} is not in requirements.txt; nothing removed"
            ));
        }
    }
    file.finish(text, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const REQS: &str = "# Runtime\n--index-url https://pypi.org/simple\nrequests==2.30.0  # HTTP\nFlask_Login>=0.6\nurllib3[socks] ; python_version < \"3.12\"\n-r base.txt\n\nnumpy\n";

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize("Flask_Login"), "flask-login");
        assert_eq!(normalize("zope.interface"), "zope-interface");
        assert_eq!(normalize("A__b-.C"), "a-b-c");
    }

    #[test]
    fn parses_requirements() {
        let r = parse_requirement("urllib3 [socks] >= 1.0 ; python_version < \"3.12\"").unwrap();
        assert_eq!(r.name, "urllib3");
        assert_eq!(r.extras, " [socks]");
        assert_eq!(r.spec, ">= 1.0");
        assert_eq!(r.tail, " ; python_version < \"3.12\"");
    }

    #[test]
    fn add_update_remove_keep_comments_and_other_lines() {
        let mut r = Request::default();
        r.add_dependencies
            .insert("requests".into(), "2.31.0".into());
        r.add_dependencies.insert("urllib3".into(), ">=2".into());
        r.add_dependencies.insert("pydantic".into(), "~=2.6".into());
        r.add_dependencies.insert("rich".into(), "13.7.1".into());
        r.remove_dependencies.push("flask-login".into());
        r.remove_dependencies.push("NumPy".into());
        r.remove_dependencies.push("django".into());
        let out = edit(REQS, &r).unwrap();
        assert_eq!(
            out.content,
            "# Runtime\n--index-url https://pypi.org/simple\nrequests==2.31.0  # HTTP\nurllib3[socks]>=2 ; python_version < \"3.12\"\n-r base.txt\n\npydantic~=2.6\nrich==13.7.1\n"
        );
        assert_eq!(
            out.warnings,
            vec!["django is not in requirements.txt; nothing removed".to_owned()]
        );
        assert_eq!(out.changes.len(), 6);
    }

    #[test]
    fn no_final_newline_crlf_and_continuations() {
        let text = "a==1\r\nb==2 \\\r\n    --hash=sha256:x\r\nc==3";
        let mut r = Request::default();
        r.remove_dependencies.push("b".into());
        r.add_dependencies.insert("d".into(), "4".into());
        let out = edit(text, &r).unwrap();
        assert_eq!(out.content, "a==1\r\nc==3\r\nd==4");
    }

    #[test]
    fn dev_dependencies_scripts_version_and_caret_are_errors() {
        let mut r = Request::default();
        r.add_dev_dependencies.insert("pytest".into(), "8".into());
        assert!(
            edit(REQS, &r)
                .unwrap_err()
                .to_string()
                .contains("no dev dependencies")
        );
        let r = Request {
            update_version: Some("1.0".into()),
            ..Default::default()
        };
        assert!(
            edit(REQS, &r)
                .unwrap_err()
                .to_string()
                .contains("no version")
        );
        let mut r = Request::default();
        r.add_dependencies.insert("x".into(), "^1.0".into());
        assert!(edit(REQS, &r).unwrap_err().to_string().contains("PEP 440"));
    }
}
