//! pyproject.toml: PEP 621 (`[project] dependencies`, `[project.optional-dependencies] dev`
//! or `[dependency-groups] dev`, `[project] version`, `[project.scripts]`) or Poetry
//! (`[tool.poetry.dependencies]`, `[tool.poetry.group.dev.dependencies]`, ...), edited through
//! `toml_edit` so comments and formatting survive.

use toml_edit::{Array, DocumentMut, Item, Value};

use super::requirements::{normalize, parse_requirement, requirement, with_version};
use super::toml_util::{
    array_insert, array_remove, ensure_table, is_sorted, parse, remove_table_dependency,
    replace_value, set_table_dependency, table, table_mut,
};
use super::{Change, Edited, Request, unsupported};
use crate::error::ToolError;

const FILE: &str = "pyproject.toml";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Flavour {
    Pep621,
    Poetry,
}

fn flavour(doc: &DocumentMut) -> Result<Flavour, ToolError> {
    let project = table(doc, &["project"]);
    let poetry_deps = table(doc, &["tool", "poetry", "dependencies"]).is_some();
    let project_deps = project.is_some_and(|p| p.contains_key("dependencies"));
    if poetry_deps && !project_deps {
        return Ok(Flavour::Poetry);
    }
    if project.is_some() {
        return Ok(Flavour::Pep621);
    }
    if table(doc, &["tool", "poetry"]).is_some() {
        return Ok(Flavour::Poetry);
    }
    Err(ToolError::failed(
        "pyproject.toml has neither a [project] table (PEP 621) nor [tool.poetry]; add [project] with name and version first",
    ))
}

pub fn edit(text: &str, req: &Request) -> Result<Edited, ToolError> {
    let mut doc = parse(text, FILE)?;
    let flavour = flavour(&doc)?;
    let mut out = Edited::default();
    match flavour {
        Flavour::Pep621 => pep621(&mut doc, req, &mut out)?,
        Flavour::Poetry => poetry(&mut doc, req, &mut out)?,
    }
    // Scripts: console-script entry points.
    let scripts_path: &[&str] = match flavour {
        Flavour::Pep621 => &["project", "scripts"],
        Flavour::Poetry => &["tool", "poetry", "scripts"],
    };
    let scripts_name = scripts_path.join(".");
    for (name, command) in &req.add_scripts {
        let t = ensure_table(&mut doc, scripts_path, FILE)?;
        let previous = match t.get_mut(name) {
            Some(Item::Value(v)) => {
                let previous = v.as_str().map(str::to_owned);
                replace_value(v, command.as_str());
                previous
            }
            _ => {
                t.insert(name, toml_edit::value(command.as_str()));
                None
            }
        };
        out.record_set(&scripts_name, name, command, previous);
    }
    for name in &req.remove_scripts {
        let removed = table_mut(&mut doc, scripts_path).and_then(|t| t.remove(name));
        match removed {
            Some(item) => out.changes.push(Change::removed(
                &scripts_name,
                name,
                item.as_str().map(str::to_owned),
            )),
            None => out.warnings.push(format!(
                "pyproject.toml has no script {name} in [{scripts_name}]; nothing removed"
            )),
        }
    }
    if let Some(version) = &req.update_version {
        set_version(&mut doc, flavour, version, &mut out)?;
    }
    out.content = doc.to_string();
    Ok(out)
}

fn set_version(
    doc: &mut DocumentMut,
    flavour: Flavour,
    version: &str,
    out: &mut Edited,
) -> Result<(), ToolError> {
    let project_has_version = table(doc, &["project"]).is_some_and(|p| p.contains_key("version"));
    let path: &[&str] = if flavour == Flavour::Poetry && !project_has_version {
        &["tool", "poetry"]
    } else {
        &["project"]
    };
    let t = table_mut(doc, path)
        .ok_or_else(|| ToolError::failed(format!("pyproject.toml has no [{}]", path.join("."))))?;
    let dynamic = t
        .get("dynamic")
        .and_then(Item::as_array)
        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some("version")));
    if dynamic {
        return Err(unsupported(
            "this project's version is dynamic (listed in [project] dynamic, set by the build backend, e.g. from a git tag or __version__); change it where the backend reads it",
        ));
    }
    let previous = match t.get_mut("version") {
        Some(Item::Value(v)) => {
            let previous = v.as_str().map(str::to_owned);
            replace_value(v, version);
            previous
        }
        _ => {
            t.insert("version", toml_edit::value(version));
            None
        }
    };
    out.record_set(
        &format!("{}.version", path.join(".")),
        "version",
        version,
        previous,
    );
    Ok(())
}

/// The array at `path.key`, created empty when missing.
fn ensure_array<'a>(
    doc: &'a mut DocumentMut,
    path: &[&str],
    key: &str,
) -> Result<&'a mut Array, ToolError> {
    let t = ensure_table(doc, path, FILE)?;
    let item = t
        .entry(key)
        .or_insert_with(|| toml_edit::value(Array::new()));
    item.as_array_mut().ok_or_else(|| {
        ToolError::failed(format!(
            "pyproject.toml: {}.{key} is not an array",
            path.join(".")
        ))
    })
}

/// Adds or updates a requirement in a PEP 508 array.
fn set_requirement(
    array: &mut Array,
    section: &str,
    name: &str,
    version: &str,
    out: &mut Edited,
) -> Result<(), ToolError> {
    let wanted = normalize(name);
    let names: Vec<Option<String>> = array
        .iter()
        .map(|v| {
            v.as_str()
                .and_then(parse_requirement)
                .map(|r| normalize(r.name))
        })
        .collect();
    if let Some(i) = names.iter().position(|n| n.as_deref() == Some(&wanted)) {
        let Some(slot) = array.get_mut(i) else {
            return Ok(());
        };
        let old = slot.as_str().unwrap_or_default().to_owned();
        let Some(parsed) = parse_requirement(&old) else {
            return Ok(());
        };
        let new = with_version(&parsed, version)?;
        if new != old {
            replace_value(slot, new.as_str());
        }
        out.record_set(section, name, &new, Some(old));
        return Ok(());
    }
    let new = requirement(name, version)?;
    let known: Vec<String> = names.iter().flatten().cloned().collect();
    let index = if known.len() == names.len() && !known.is_empty() && is_sorted(&known) {
        known
            .iter()
            .position(|n| *n > wanted)
            .unwrap_or(known.len())
    } else {
        array.len()
    };
    array_insert(array, index, &new);
    out.record_set(section, name, &new, None);
    Ok(())
}

fn pep621(doc: &mut DocumentMut, req: &Request, out: &mut Edited) -> Result<(), ToolError> {
    for (name, version) in &req.add_dependencies {
        let array = ensure_array(doc, &["project"], "dependencies")?;
        set_requirement(array, "project.dependencies", name, version, out)?;
    }
    if !req.add_dev_dependencies.is_empty() {
        let optional_dev = table(doc, &["project", "optional-dependencies"])
            .is_some_and(|t| t.contains_key("dev"));
        let (path, section): (&[&str], &str) = if optional_dev {
            (
                &["project", "optional-dependencies"],
                "project.optional-dependencies.dev",
            )
        } else {
            (&["dependency-groups"], "dependency-groups.dev")
        };
        for (name, version) in &req.add_dev_dependencies {
            let array = ensure_array(doc, path, "dev")?;
            set_requirement(array, section, name, version, out)?;
        }
    }
    for name in &req.remove_dependencies {
        let wanted = normalize(name);
        let mut found = false;
        let mut arrays: Vec<(Vec<&str>, String)> = vec![(vec!["project"], "dependencies".into())];
        for group_path in [
            &["project", "optional-dependencies"][..],
            &["dependency-groups"],
        ] {
            if let Some(t) = table(doc, group_path) {
                for (group, _) in t.iter() {
                    arrays.push((group_path.to_vec(), group.to_owned()));
                }
            }
        }
        for (path, key) in arrays {
            let Some(array) = table_mut(doc, &path)
                .and_then(|t| t.get_mut(&key))
                .and_then(Item::as_array_mut)
            else {
                continue;
            };
            let section = format!("{}.{key}", path.join("."));
            loop {
                let position = array.iter().position(|v| {
                    v.as_str()
                        .and_then(parse_requirement)
                        .is_some_and(|r| normalize(r.name) == wanted)
                });
                let Some(i) = position else {
                    break;
                };
                let previous = array.get(i).and_then(Value::as_str).map(str::to_owned);
                array_remove(array, i);
                out.changes.push(Change::removed(&section, name, previous));
                found = true;
            }
        }
        if !found {
            out.warnings.push(format!(
                "{name} is not a dependency in pyproject.toml; nothing removed"
            ));
        }
    }
    Ok(())
}

fn poetry(doc: &mut DocumentMut, req: &Request, out: &mut Edited) -> Result<(), ToolError> {
    let deps = ["tool", "poetry", "dependencies"];
    for (name, version) in &req.add_dependencies {
        set_table_dependency(
            doc,
            &deps,
            "tool.poetry.dependencies",
            name,
            version,
            out,
            FILE,
            normalize,
        )?;
    }
    let dev: &[&str] = if table(doc, &["tool", "poetry", "dev-dependencies"]).is_some()
        && table(doc, &["tool", "poetry", "group", "dev", "dependencies"]).is_none()
    {
        &["tool", "poetry", "dev-dependencies"]
    } else {
        &["tool", "poetry", "group", "dev", "dependencies"]
    };
    let dev_name = dev.join(".");
    for (name, version) in &req.add_dev_dependencies {
        set_table_dependency(doc, dev, &dev_name, name, version, out, FILE, normalize)?;
    }
    for name in &req.remove_dependencies {
        let mut tables: Vec<Vec<String>> = vec![
            deps.iter().map(|s| (*s).to_owned()).collect(),
            vec!["tool".into(), "poetry".into(), "dev-dependencies".into()],
        ];
        if let Some(groups) = table(doc, &["tool", "poetry", "group"]) {
            for (group, _) in groups.iter() {
                tables.push(vec![
                    "tool".into(),
                    "poetry".into(),
                    "group".into(),
                    group.to_owned(),
                    "dependencies".into(),
                ]);
            }
        }
        let mut found = false;
        for path in tables {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            found |= remove_table_dependency(doc, &path, name, normalize, out);
        }
        if !found {
            out.warnings.push(format!(
                "{name} is not a dependency in pyproject.toml; nothing removed"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PEP621: &str = r#"[project]
name = "demo"
version = "0.1.0" # keep this comment
dependencies = [
    "httpx>=0.27",  # async HTTP
    # Data
    "pandas==2.1.0",
    "Requests[socks]==2.30.0; python_version >= '3.9'",
]

[project.optional-dependencies]
dev = ["pytest>=8"]

[tool.ruff]
line-length = 100
"#;

    #[test]
    fn pep621_add_update_remove_keep_comments() {
        let mut r = Request::default();
        r.add_dependencies.insert("numpy".into(), "1.26.4".into());
        r.add_dependencies
            .insert("requests".into(), ">=2.31".into());
        r.add_dev_dependencies.insert("ruff".into(), "0.4.0".into());
        r.remove_dependencies.push("Pandas".into());
        r.add_scripts.insert("demo".into(), "demo.cli:main".into());
        r.update_version = Some("0.2.0".into());
        let out = edit(PEP621, &r).unwrap();
        assert_eq!(
            out.content,
            r#"[project]
name = "demo"
version = "0.2.0" # keep this comment
dependencies = [
    "httpx>=0.27",  # async HTTP
    "numpy==1.26.4",
    "Requests[socks]>=2.31; python_version >= '3.9'",
]

[project.optional-dependencies]
dev = ["pytest>=8", "ruff==0.4.0"]

[project.scripts]
demo = "demo.cli:main"

[tool.ruff]
line-length = 100
"#
        );
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        let requests = out.changes.iter().find(|c| c.name == "requests").unwrap();
        assert_eq!(
            requests.previous.as_deref(),
            Some("Requests[socks]==2.30.0; python_version >= '3.9'")
        );
    }

    #[test]
    fn pep621_dependency_groups_and_sorted_insert() {
        let text = "[project]\nname = \"x\"\nversion = \"1\"\ndependencies = [\"aiohttp\", \"zope.interface\"]\n";
        let mut r = Request::default();
        r.add_dependencies.insert("flask".into(), "3.0.0".into());
        r.add_dev_dependencies.insert("pytest".into(), ">=8".into());
        r.remove_dependencies.push("zope_interface".into());
        r.remove_dependencies.push("nothere".into());
        let out = edit(text, &r).unwrap();
        assert_eq!(
            out.content,
            "[project]\nname = \"x\"\nversion = \"1\"\ndependencies = [\"aiohttp\", \"flask==3.0.0\"]\n\n[dependency-groups]\ndev = [\"pytest>=8\"]\n"
        );
        assert_eq!(
            out.warnings,
            vec!["nothere is not a dependency in pyproject.toml; nothing removed".to_owned()]
        );
    }

    #[test]
    fn dynamic_version_is_an_error() {
        let text = "[project]\nname = \"x\"\ndynamic = [\"version\"]\n";
        let r = Request {
            update_version: Some("1.0".into()),
            ..Default::default()
        };
        assert!(edit(text, &r).unwrap_err().to_string().contains("dynamic"));
    }

    #[test]
    fn poetry_tables() {
        let text = r#"[tool.poetry]
name = "demo"
version = "0.1.0"

[tool.poetry.dependencies]
python = "^3.10"
requests = { version = "^2.30", extras = ["socks"] } # http
old-lib = "1.0"

[build-system]
requires = ["poetry-core"]
"#;
        let mut r = Request::default();
        r.add_dependencies.insert("requests".into(), "^2.31".into());
        r.add_dependencies.insert("rich".into(), "^13.0".into());
        r.add_dev_dependencies
            .insert("pytest".into(), "^8.0".into());
        r.remove_dependencies.push("Old_Lib".into());
        r.update_version = Some("0.2.0".into());
        let out = edit(text, &r).unwrap();
        assert_eq!(
            out.content,
            r#"[tool.poetry]
name = "demo"
version = "0.2.0"

[tool.poetry.dependencies]
python = "^3.10"
requests = { version = "^2.31", extras = ["socks"] } # http
rich = "^13.0"

[tool.poetry.group.dev.dependencies]
pytest = "^8.0"

[build-system]
requires = ["poetry-core"]
"#
        );
    }
}
