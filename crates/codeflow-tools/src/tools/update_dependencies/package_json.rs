//! package.json: `dependencies`, `devDependencies`, `scripts`, `version`, edited in the text so
//! key order, indentation and the final newline stay exactly as they were.

use super::{Change, Edited, Request};
use crate::error::ToolError;

/// Sections a removed dependency is looked for in.
const DEPENDENCY_SECTIONS: [&str; 4] = [
    "dependencies",
    "devDependencies",
    "peerDependencies",
    "optionalDependencies",
];

pub fn edit(text: &str, req: &Request) -> Result<Edited, ToolError> {
    let parsed: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ToolError::failed(format!("package.json is not valid JSON: {e}")))?;
    if !parsed.is_object() {
        return Err(ToolError::failed(
            "package.json does not hold a JSON object at its top level",
        ));
    }
    let mut doc = JsonDoc {
        text: text.to_owned(),
    };
    let mut out = Edited::default();
    for (section, entries) in [
        ("dependencies", &req.add_dependencies),
        ("devDependencies", &req.add_dev_dependencies),
        ("scripts", &req.add_scripts),
    ] {
        for (name, value) in entries {
            let previous = doc.set(section, name, value)?;
            out.record_set(section, name, value, previous);
        }
    }
    for name in &req.remove_dependencies {
        let mut found = false;
        for section in DEPENDENCY_SECTIONS {
            if let Some(previous) = doc.remove(section, name)? {
                out.changes
                    .push(Change::removed(section, name, Some(previous)));
                found = true;
            }
        }
        if !found {
            out.warnings.push(format!(
                "{name} is not a dependency in package.json; nothing removed"
            ));
        }
    }
    for name in &req.remove_scripts {
        match doc.remove("scripts", name)? {
            Some(previous) => out
                .changes
                .push(Change::removed("scripts", name, Some(previous))),
            None => out.warnings.push(format!(
                "package.json has no script {name}; nothing removed"
            )),
        }
    }
    if let Some(version) = &req.update_version {
        let previous = doc.set_top("version", &json_string(version), Place::After("name"))?;
        let previous = previous.map(|raw| decode_string(&raw));
        out.record_set("version", "version", version, previous);
    }
    out.content = doc.text;
    Ok(out)
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// A raw JSON value's text; strings decoded.
fn decode_string(raw: &str) -> String {
    serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_owned())
}

/// Where a new member goes.
#[derive(Debug, Clone, Copy)]
enum Place<'a> {
    /// In key order when the existing keys are sorted, else at the end.
    Sorted,
    /// After that key if present, else at the end.
    After(&'a str),
    /// Before that key if present, else at the end.
    Before(&'a str),
    End,
}

/// One `"key": value` of an object, as byte offsets into the text.
#[derive(Debug, Clone)]
struct Member {
    key: String,
    key_start: usize,
    value_start: usize,
    value_end: usize,
}

#[derive(Debug, Clone)]
struct Object {
    /// Offset of `{`.
    open: usize,
    /// Offset of `}`.
    close: usize,
    members: Vec<Member>,
}

struct JsonDoc {
    text: String,
}

impl JsonDoc {
    fn top(&self) -> Result<Object, ToolError> {
        let bytes = self.text.as_bytes();
        let start = skip_ws(bytes, 0);
        parse_object(&self.text, start)
    }

    /// The object at a top-level key, if present (an error if that key holds something else).
    fn section(&self, section: &str) -> Result<Option<Object>, ToolError> {
        let top = self.top()?;
        let Some(m) = top.members.iter().find(|m| m.key == section) else {
            return Ok(None);
        };
        if self.text.as_bytes().get(m.value_start) != Some(&b'{') {
            return Err(ToolError::failed(format!(
                "package.json's \"{section}\" is not an object"
            )));
        }
        parse_object(&self.text, m.value_start).map(Some)
    }

    /// Sets `section.name` to the string `value`; returns the previous value (decoded).
    fn set(&mut self, section: &str, name: &str, value: &str) -> Result<Option<String>, ToolError> {
        let obj = match self.section(section)? {
            Some(obj) => obj,
            None => {
                let place = match section {
                    "dependencies" => Place::Before("devDependencies"),
                    "devDependencies" => Place::After("dependencies"),
                    _ => Place::End,
                };
                self.set_top(section, "{}", place)?;
                self.section(section)?
                    .ok_or_else(|| ToolError::failed("package.json: lost a new section"))?
            }
        };
        let place = if section == "scripts" {
            Place::End
        } else {
            Place::Sorted
        };
        let previous = self.set_in(&obj, name, &json_string(value), place);
        Ok(previous.map(|raw| decode_string(&raw)))
    }

    /// Sets a top-level member to raw JSON; returns the previous raw value.
    fn set_top(
        &mut self,
        key: &str,
        raw: &str,
        place: Place<'_>,
    ) -> Result<Option<String>, ToolError> {
        let top = self.top()?;
        Ok(self.set_in(&top, key, raw, place))
    }

    /// Removes `section.name`; returns its previous value (decoded), `None` if absent.
    fn remove(&mut self, section: &str, name: &str) -> Result<Option<String>, ToolError> {
        let Some(obj) = self.section(section)? else {
            return Ok(None);
        };
        let Some(i) = obj.members.iter().position(|m| m.key == name) else {
            return Ok(None);
        };
        let m = &obj.members[i];
        let previous = decode_string(&self.text[m.value_start..m.value_end]);
        let (start, end) = if obj.members.len() == 1 {
            (obj.open + 1, obj.close)
        } else if i + 1 == obj.members.len() {
            (obj.members[i - 1].value_end, m.value_end)
        } else {
            (m.key_start, obj.members[i + 1].key_start)
        };
        self.text.replace_range(start..end, "");
        Ok(Some(previous))
    }

    /// Sets `key` in `obj` to raw JSON text, keeping everything else.
    fn set_in(&mut self, obj: &Object, key: &str, raw: &str, place: Place<'_>) -> Option<String> {
        if let Some(m) = obj.members.iter().find(|m| m.key == key) {
            let previous = self.text[m.value_start..m.value_end].to_owned();
            if previous != raw {
                self.text.replace_range(m.value_start..m.value_end, raw);
            }
            return Some(previous);
        }
        let colon = self.key_value_separator();
        let member = format!("{}{colon}{raw}", json_string(key));
        if obj.members.is_empty() {
            let (inner, closing) = self.indents_inside(obj);
            let insert = match inner {
                Some(inner) => format!("\n{inner}{member}\n{closing}"),
                None => member,
            };
            self.text.replace_range(obj.open + 1..obj.close, &insert);
            return None;
        }
        let keys: Vec<&str> = obj.members.iter().map(|m| m.key.as_str()).collect();
        let index = match place {
            Place::Sorted if keys.windows(2).all(|w| w[0] <= w[1]) => {
                keys.iter().position(|k| *k > key).unwrap_or(keys.len())
            }
            Place::After(k) => keys
                .iter()
                .position(|x| *x == k)
                .map_or(keys.len(), |i| i + 1),
            Place::Before(k) => keys.iter().position(|x| *x == k).unwrap_or(keys.len()),
            Place::Sorted | Place::End => keys.len(),
        };
        if index == 0 {
            let first = &obj.members[0];
            let sep = &self.text[obj.open + 1..first.key_start];
            let insert = format!("{member},{sep}");
            self.text.insert_str(first.key_start, &insert);
        } else {
            let prev = &obj.members[index - 1];
            let before_key = if index - 1 == 0 {
                obj.open + 1
            } else {
                // After the comma that follows the member before `prev`.
                let b = self.text.as_bytes();
                let mut i = obj.members[index - 2].value_end;
                while i < prev.key_start && b[i] != b',' {
                    i += 1;
                }
                i + 1
            };
            let sep = self.text[before_key..prev.key_start].to_owned();
            let insert = format!(",{sep}{member}");
            self.text.insert_str(prev.value_end, &insert);
        }
        None
    }

    /// `": "` or `":"`, as the file writes it.
    fn key_value_separator(&self) -> String {
        let Ok(top) = self.top() else {
            return ": ".into();
        };
        let Some(m) = top.members.first() else {
            return ": ".into();
        };
        let b = self.text.as_bytes();
        let mut key_end = m.key_start;
        if let Ok(end) = scan_string(b, m.key_start) {
            key_end = end;
        }
        let between = &self.text[key_end..m.value_start];
        if between.contains('\n') || between.trim() != ":" {
            ": ".into()
        } else {
            between.into()
        }
    }

    /// For an empty object: the indentation of its members and of its closing brace, or
    /// `None` when the file is written on one line.
    fn indents_inside(&self, obj: &Object) -> (Option<String>, String) {
        let top = match self.top() {
            Ok(t) => t,
            Err(_) => return (None, String::new()),
        };
        let top_sep = top
            .members
            .first()
            .map(|m| self.text[top.open + 1..m.key_start].to_owned());
        let unit = match &top_sep {
            Some(sep) if sep.contains('\n') => sep.rsplit('\n').next().unwrap_or("  ").to_owned(),
            Some(_) => return (None, String::new()),
            None => "  ".to_owned(),
        };
        let line_start = self.text[..obj.open].rfind('\n').map_or(0, |i| i + 1);
        let closing: String = self.text[line_start..obj.open]
            .chars()
            .take_while(|c| *c == ' ' || *c == '\t')
            .collect();
        (Some(format!("{closing}{unit}")), closing)
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

fn malformed() -> ToolError {
    ToolError::failed("package.json could not be read as a JSON object")
}

/// `i` at `"`; returns the offset after the closing quote.
fn scan_string(b: &[u8], mut i: usize) -> Result<usize, ToolError> {
    if b.get(i) != Some(&b'"') {
        return Err(malformed());
    }
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(malformed())
}

/// Returns the offset after the value starting at `i`.
fn scan_value(b: &[u8], i: usize) -> Result<usize, ToolError> {
    match b.get(i) {
        Some(b'"') => scan_string(b, i),
        Some(open @ (b'{' | b'[')) => {
            let close = if *open == b'{' { b'}' } else { b']' };
            let mut j = skip_ws(b, i + 1);
            if b.get(j) == Some(&close) {
                return Ok(j + 1);
            }
            loop {
                if *open == b'{' {
                    j = scan_string(b, j)?;
                    j = skip_ws(b, j);
                    if b.get(j) != Some(&b':') {
                        return Err(malformed());
                    }
                    j = skip_ws(b, j + 1);
                }
                j = scan_value(b, j)?;
                j = skip_ws(b, j);
                match b.get(j) {
                    Some(b',') => j = skip_ws(b, j + 1),
                    Some(c) if *c == close => return Ok(j + 1),
                    _ => return Err(malformed()),
                }
            }
        }
        Some(_) => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            if j == i { Err(malformed()) } else { Ok(j) }
        }
        None => Err(malformed()),
    }
}

fn parse_object(text: &str, open: usize) -> Result<Object, ToolError> {
    let b = text.as_bytes();
    if b.get(open) != Some(&b'{') {
        return Err(malformed());
    }
    let mut members = Vec::new();
    let mut j = skip_ws(b, open + 1);
    if b.get(j) == Some(&b'}') {
        return Ok(Object {
            open,
            close: j,
            members,
        });
    }
    loop {
        let key_start = j;
        let key_end = scan_string(b, j)?;
        let key = decode_string(&text[key_start..key_end]);
        j = skip_ws(b, key_end);
        if b.get(j) != Some(&b':') {
            return Err(malformed());
        }
        let value_start = skip_ws(b, j + 1);
        let value_end = scan_value(b, value_start)?;
        members.push(Member {
            key,
            key_start,
            value_start,
            value_end,
        });
        j = skip_ws(b, value_end);
        match b.get(j) {
            Some(b',') => j = skip_ws(b, j + 1),
            Some(b'}') => {
                return Ok(Object {
                    open,
                    close: j,
                    members,
                });
            }
            _ => return Err(malformed()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tools::update_dependencies::Action;

    fn req() -> Request {
        Request::default()
    }

    const PKG: &str = r#"{
  "name": "demo",
  "version": "1.0.0",
  "scripts": {
    "build": "tsc",
    "test": "jest"
  },
  "dependencies": {
    "express": "^4.18.0",
    "lodash": "^4.17.21"
  },
  "devDependencies": {
    "jest": "^29.0.0"
  }
}
"#;

    #[test]
    fn adds_updates_removes_keeping_order_indent_and_newline() {
        let mut r = req();
        r.add_dependencies.insert("axios".into(), "^1.6.0".into());
        r.add_dependencies.insert("zod".into(), "^3.22.0".into());
        r.add_dependencies
            .insert("lodash".into(), "^4.17.22".into());
        r.add_dev_dependencies
            .insert("typescript".into(), "^5.4.0".into());
        r.remove_dependencies.push("express".into());
        r.add_scripts.insert("lint".into(), "eslint .".into());
        r.remove_scripts.push("build".into());
        r.update_version = Some("1.1.0".into());
        let out = edit(PKG, &r).unwrap();
        assert_eq!(
            out.content,
            r#"{
  "name": "demo",
  "version": "1.1.0",
  "scripts": {
    "test": "jest",
    "lint": "eslint ."
  },
  "dependencies": {
    "axios": "^1.6.0",
    "lodash": "^4.17.22",
    "zod": "^3.22.0"
  },
  "devDependencies": {
    "jest": "^29.0.0",
    "typescript": "^5.4.0"
  }
}
"#
        );
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        let lodash = out.changes.iter().find(|c| c.name == "lodash").unwrap();
        assert_eq!(lodash.action, Action::Updated);
        assert_eq!(lodash.previous.as_deref(), Some("^4.17.21"));
        let express = out.changes.iter().find(|c| c.name == "express").unwrap();
        assert_eq!(express.action, Action::Removed);
        let version = out.changes.iter().find(|c| c.section == "version").unwrap();
        assert_eq!(version.previous.as_deref(), Some("1.0.0"));
    }

    #[test]
    fn creates_missing_sections_with_tab_indentation_and_no_final_newline() {
        let text = "{\n\t\"name\": \"demo\",\n\t\"dependencies\": {}\n}";
        let mut r = req();
        r.add_dependencies.insert("react".into(), "^18.2.0".into());
        r.add_dev_dependencies
            .insert("vite".into(), "^5.0.0".into());
        r.update_version = Some("0.1.0".into());
        let out = edit(text, &r).unwrap();
        assert_eq!(
            out.content,
            "{\n\t\"name\": \"demo\",\n\t\"version\": \"0.1.0\",\n\t\"dependencies\": {\n\t\t\"react\": \"^18.2.0\"\n\t},\n\t\"devDependencies\": {\n\t\t\"vite\": \"^5.0.0\"\n\t}\n}"
        );
    }

    #[test]
    fn unsorted_sections_append_and_removing_the_last_entry_leaves_an_empty_object() {
        let text = "{\n    \"dependencies\": {\n        \"b\": \"1\",\n        \"a\": \"1\"\n    },\n    \"scripts\": {\n        \"x\": \"y\"\n    }\n}\n";
        let mut r = req();
        r.add_dependencies.insert("c".into(), "2".into());
        r.remove_scripts.push("x".into());
        r.remove_scripts.push("missing".into());
        r.remove_dependencies.push("nope".into());
        let out = edit(text, &r).unwrap();
        assert_eq!(
            out.content,
            "{\n    \"dependencies\": {\n        \"b\": \"1\",\n        \"a\": \"1\",\n        \"c\": \"2\"\n    },\n    \"scripts\": {}\n}\n"
        );
        assert_eq!(out.warnings.len(), 2, "{:?}", out.warnings);
        assert!(out.warnings[0].contains("nope"));
        assert!(out.warnings[1].contains("missing"));
    }

    #[test]
    fn removes_first_middle_and_from_dev_dependencies() {
        let text = "{\"dependencies\": {\"a\": \"1\", \"b\": \"2\", \"c\": \"3\"}, \"devDependencies\": {\"a\": \"1\"}}";
        let mut r = req();
        r.remove_dependencies.push("a".into());
        r.remove_dependencies.push("b".into());
        let out = edit(text, &r).unwrap();
        assert_eq!(
            out.content,
            "{\"dependencies\": {\"c\": \"3\"}, \"devDependencies\": {}}"
        );
        assert_eq!(out.changes.len(), 3);
    }

    #[test]
    fn compact_file_gets_compact_sections_and_strings_are_escaped() {
        let text = r#"{"name":"x"}"#;
        let mut r = req();
        r.add_scripts
            .insert("say".into(), r#"echo "hi" \ bye"#.into());
        let out = edit(text, &r).unwrap();
        assert_eq!(
            out.content,
            r#"{"name":"x","scripts":{"say":"echo \"hi\" \\ bye"}}"#
        );
    }

    #[test]
    fn invalid_json_is_a_clear_error() {
        let err = edit("{\"name\": ", &req()).unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }
}
