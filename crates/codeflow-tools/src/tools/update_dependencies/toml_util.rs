//! Format-preserving helpers over `toml_edit` shared by the Cargo.toml and pyproject.toml
//! editors.

use toml_edit::{Array, DocumentMut, Item, Table, Value};

use super::{Change, Edited};
use crate::error::ToolError;

pub fn parse(text: &str, file: &str) -> Result<DocumentMut, ToolError> {
    text.parse::<DocumentMut>()
        .map_err(|e| ToolError::failed(format!("{file} is not valid TOML: {e}")))
}

/// The table at a dotted path, if every step is a (non-inline) table.
pub fn table<'a>(doc: &'a DocumentMut, path: &[&str]) -> Option<&'a Table> {
    let mut t = doc.as_table();
    for key in path {
        t = t.get(key)?.as_table()?;
    }
    Some(t)
}

pub fn table_mut<'a>(doc: &'a mut DocumentMut, path: &[&str]) -> Option<&'a mut Table> {
    let mut t = doc.as_table_mut();
    for key in path {
        t = t.get_mut(key)?.as_table_mut()?;
    }
    Some(t)
}

/// The table at a dotted path, created (intermediate tables implicit, the last one a
/// `[header]` at the end of the file, after a blank line) when missing.
pub fn ensure_table<'a>(
    doc: &'a mut DocumentMut,
    path: &[&str],
    file: &str,
) -> Result<&'a mut Table, ToolError> {
    let mut t = doc.as_table_mut();
    for (i, key) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        if !t.contains_key(key) {
            let mut new = Table::new();
            if last {
                new.decor_mut().set_prefix("\n");
            } else {
                new.set_implicit(true);
            }
            t.insert(key, Item::Table(new));
        }
        t = t.get_mut(key).and_then(Item::as_table_mut).ok_or_else(|| {
            ToolError::failed(format!("{file}: [{}] is not a table", path[..=i].join(".")))
        })?;
    }
    Ok(t)
}

/// Replaces a value, keeping the decor (spacing, trailing comment) of the old one.
pub fn replace_value(slot: &mut Value, new: impl Into<Value>) {
    let decor = slot.decor().clone();
    let mut new: Value = new.into();
    *new.decor_mut() = decor;
    *slot = new;
}

/// The string of a raw decor part (`""` when absent).
fn raw(r: Option<&toml_edit::RawString>) -> String {
    r.and_then(|r| r.as_str()).unwrap_or("").to_owned()
}

/// The text before the first newline (what trails the previous line), and the rest.
fn split_first_line(s: &str) -> (&str, &str) {
    match s.find('\n') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

/// Inserts a string into an array at `index`, spaced like its neighbours (one per line in a
/// multi-line array).
pub fn array_insert(array: &mut Array, index: usize, s: &str) {
    let prefixes: Vec<String> = array.iter().map(|v| raw(v.decor().prefix())).collect();
    let multiline = prefixes.iter().any(|p| p.contains('\n'));
    // The spacing between elements, without any comment a neighbour carries.
    let between = if multiline {
        let sample = prefixes
            .iter()
            .rev()
            .find(|p| p.contains('\n'))
            .cloned()
            .unwrap_or_default();
        let indent = sample.rsplit('\n').next().unwrap_or("").to_owned();
        format!("\n{indent}")
    } else {
        " ".to_owned()
    };
    let mut value = Value::from(s);
    value.decor_mut().set_suffix("");
    if array.is_empty() {
        value.decor_mut().set_prefix("");
    } else if index == 0 {
        value.decor_mut().set_prefix(prefixes[0].clone());
        if let Some(first) = array.get_mut(0) {
            first.decor_mut().set_prefix(between);
        }
    } else if multiline {
        // A comment trailing the element before stays on its line.
        let after = if index < array.len() {
            prefixes[index].clone()
        } else {
            raw(Some(array.trailing()))
        };
        let (trailing_comment, rest) = split_first_line(&after);
        value
            .decor_mut()
            .set_prefix(format!("{trailing_comment}{between}"));
        let rest = rest.to_owned();
        if index < array.len() {
            if let Some(next) = array.get_mut(index) {
                next.decor_mut().set_prefix(rest);
            }
        } else {
            array.set_trailing(rest);
        }
    } else {
        value.decor_mut().set_prefix(between);
    }
    array.insert_formatted(index, value);
}

/// Removes the element at `index`: its own comment lines go with it, a comment trailing the
/// line before it stays.
pub fn array_remove(array: &mut Array, index: usize) {
    let removed_prefix = array
        .get(index)
        .map(|v| raw(v.decor().prefix()))
        .unwrap_or_default();
    let (keep, _) = split_first_line(&removed_prefix);
    let keep = keep.to_owned();
    array.remove(index);
    if array.is_empty() {
        array.set_trailing("");
        array.set_trailing_comma(false);
        return;
    }
    if let Some(next) = array.get_mut(index) {
        let next_prefix = raw(next.decor().prefix());
        let (_, rest) = split_first_line(&next_prefix);
        next.decor_mut().set_prefix(format!("{keep}{rest}"));
    } else if removed_prefix.contains('\n') {
        let trailing = raw(Some(array.trailing()));
        let (_, rest) = split_first_line(&trailing);
        let rest = if trailing.contains('\n') {
            rest.to_owned()
        } else {
            trailing
        };
        array.set_trailing(format!("{keep}{rest}"));
    }
}

/// Whether the names are in ascending order.
pub fn is_sorted<S: AsRef<str>>(names: &[S]) -> bool {
    names.windows(2).all(|w| w[0].as_ref() <= w[1].as_ref())
}

/// The key naming a package in a dependency table: exact, else equal after `norm`.
pub fn find_key(t: &Table, name: &str, norm: fn(&str) -> String) -> Option<String> {
    if t.contains_key(name) {
        return Some(name.to_owned());
    }
    t.iter()
        .map(|(k, _)| k)
        .find(|k| norm(k) == norm(name))
        .map(str::to_owned)
}

/// A dependency entry's version for reports: the string, or its `version` key.
pub fn describe(item: &Item) -> Option<String> {
    match item {
        Item::Value(Value::String(s)) => Some(s.value().clone()),
        Item::Value(Value::InlineTable(t)) => {
            t.get("version").and_then(|v| v.as_str()).map(str::to_owned)
        }
        Item::Table(t) => t.get("version").and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    }
}

/// Sets `name = "version"` in a dependency table (`[dependencies]`, Poetry's
/// `[tool.poetry.dependencies]`): a string is replaced, a table's `version` key set; new
/// entries go in key order when the table is sorted, else at its end.
#[allow(clippy::too_many_arguments)]
pub fn set_table_dependency(
    doc: &mut DocumentMut,
    path: &[&str],
    section: &str,
    name: &str,
    version: &str,
    out: &mut Edited,
    file: &str,
    norm: fn(&str) -> String,
) -> Result<(), ToolError> {
    let t = ensure_table(doc, path, file)?;
    let Some(key) = find_key(t, name, norm) else {
        let sorted = {
            let keys: Vec<&str> = t
                .iter()
                .filter(|(_, item)| item.is_value())
                .map(|(k, _)| k)
                .collect();
            !keys.is_empty() && is_sorted(&keys)
        };
        t.insert(name, toml_edit::value(version));
        if sorted {
            t.sort_values();
        }
        out.record_set(section, name, version, None);
        return Ok(());
    };
    let inherited = |has: bool| {
        if has {
            Err(super::unsupported(format!(
                "{key} in [{section}] comes from the workspace (workspace = true); change its version in the workspace's [workspace.dependencies]"
            )))
        } else {
            Ok(())
        }
    };
    let previous = match t.get_mut(&key) {
        Some(Item::Value(v @ Value::String(_))) => {
            let previous = v.as_str().map(str::to_owned);
            replace_value(v, version);
            previous
        }
        Some(Item::Value(Value::InlineTable(it))) => {
            inherited(it.contains_key("workspace"))?;
            let previous = it
                .get("version")
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            match it.get_mut("version") {
                Some(v) => replace_value(v, version),
                None => {
                    it.insert("version", Value::from(version));
                }
            }
            previous
        }
        Some(Item::Table(tt)) => {
            inherited(tt.contains_key("workspace"))?;
            let previous = tt
                .get("version")
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            match tt.get_mut("version") {
                Some(Item::Value(v)) => replace_value(v, version),
                _ => {
                    tt.insert("version", toml_edit::value(version));
                }
            }
            previous
        }
        _ => {
            return Err(ToolError::failed(format!(
                "{file}: {key} in [{section}] is neither a version string nor a table"
            )));
        }
    };
    out.record_set(section, &key, version, previous);
    Ok(())
}

/// Removes the dependency `name` (matched through `norm`) from the table at `path`, recording
/// the change; whether it was there.
pub fn remove_table_dependency(
    doc: &mut DocumentMut,
    path: &[&str],
    name: &str,
    norm: fn(&str) -> String,
    out: &mut Edited,
) -> bool {
    let Some(t) = table_mut(doc, path) else {
        return false;
    };
    let Some(key) = find_key(t, name, norm) else {
        return false;
    };
    let previous = t.remove(&key).as_ref().and_then(describe);
    out.changes
        .push(Change::removed(&path.join("."), &key, previous));
    true
}
