//! `docs/architecture.md`'s code map checked against the source tree: every module file of a
//! crate or binary is named in that crate's entry, so the map cannot silently fall behind.
//!
//! A file counts as named when its file name (`goto.rs`) or its path below `src/`
//! (`lsp/goto.rs`) appears in the entry of its crate (`- **`crates/NAME`** — …`, up to the next
//! entry). `lib.rs`, `main.rs` and `mod.rs` stand for their crate or directory. Two families are
//! named by a rule the entry states instead of one by one: `codeflow-tools`' `tools/` (one file
//! per tool, named after the tool) and the bench's `pN.rs` (one file per target).

use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `tests/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The code map's entry of `member` (`crates/codeflow-types`): its bullet up to the next one.
pub fn entry<'a>(doc: &'a str, member: &str) -> Option<&'a str> {
    let head = format!("- **`{member}`**");
    let start = doc.find(&head)?;
    let rest = &doc[start + head.len()..];
    let end = rest.find("\n- **").unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Whether a file stands for its directory or is named by a rule of its entry.
fn named_by_rule(member: &str, relative: &str) -> bool {
    let name = relative.rsplit('/').next().unwrap_or(relative);
    if matches!(name, "lib.rs" | "main.rs" | "mod.rs") {
        return true;
    }
    if member == "crates/codeflow-tools" && relative.starts_with("tools/") {
        return true;
    }
    member == "bins/codeflow-bench"
        && name
            .strip_prefix('p')
            .and_then(|n| n.strip_suffix(".rs"))
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// The `.rs` files below `dir`, as paths relative to it with `/` separators.
fn sources(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(dir).expect("below its directory");
                found.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    found
}

/// The members whose `src/` the map must cover, and the files it misses, as
/// `member/src/relative`.
pub fn missing(doc: &str, root: &Path) -> Vec<String> {
    let mut members = Vec::new();
    for group in ["crates", "bins"] {
        let Ok(entries) = std::fs::read_dir(root.join(group)) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.path().join("src").is_dir() {
                members.push(format!("{group}/{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    members.sort();
    let mut missing = Vec::new();
    for member in members {
        let Some(text) = entry(doc, &member) else {
            missing.push(format!("{member} (no entry)"));
            continue;
        };
        for relative in sources(&root.join(&member).join("src")) {
            let name = relative.rsplit('/').next().unwrap_or(&relative);
            let mentioned = |s: &str| text.contains(&format!("`{s}`")) || text.contains(s);
            if !named_by_rule(&member, &relative) && !mentioned(name) && !mentioned(&relative) {
                missing.push(format!("{member}/src/{relative}"));
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_map_names_every_module() {
        let root = root();
        let doc = std::fs::read_to_string(root.join("docs/architecture.md")).expect("the doc");
        let missing = missing(&doc, &root);
        assert!(
            missing.is_empty(),
            "docs/architecture.md's code map does not name these modules (add each to its \
             crate's entry):\n  {}",
            missing.join("\n  ")
        );
    }

    #[test]
    fn an_entry_ends_at_the_next_one() {
        let doc = "- **`crates/a`** — `x.rs`\n  `y.rs`\n- **`crates/b`** — `z.rs`\n";
        assert_eq!(entry(doc, "crates/a"), Some(" — `x.rs`\n  `y.rs`"));
        assert_eq!(entry(doc, "crates/b"), Some(" — `z.rs`\n"));
        assert_eq!(entry(doc, "crates/c"), None);
    }

    #[test]
    fn rules_name_the_tool_files_and_the_bench_targets() {
        assert!(named_by_rule("crates/codeflow-tools", "tools/get_hover.rs"));
        assert!(named_by_rule("bins/codeflow-bench", "p10.rs"));
        assert!(!named_by_rule("bins/codeflow-bench", "procs.rs"));
        assert!(named_by_rule("crates/x", "watcher/mod.rs"));
        assert!(!named_by_rule("crates/x", "tools/y.rs"));
    }
}
