//! Files on disk, for every test that needs a fixture or compares trees: the end-to-end tests
//! here and the in-process tool tests of `codeflow-tools` (a dev-dependency on this crate).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Copies the directory `from` (recursively) to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `tests/fixtures/<name>`.
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A temporary copy of `tests/fixtures/<name>`: the directory and its canonical path.
pub fn fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir(name), dir.path());
    let root = dir.path().canonicalize().unwrap();
    (dir, root)
}

/// Every file under `root`, skipping nothing: relative path (with `/`) → its text, or
/// `blake3:<hex>` of a file that is not UTF-8, or `-> <target>` of a symbolic link. Empty
/// when `root` does not exist.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            let rel = || {
                path.strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/")
            };
            if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel(), format!("-> {}", target.display()));
            } else if kind.is_dir() {
                walk(base, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                let content = String::from_utf8(bytes)
                    .unwrap_or_else(|e| format!("blake3:{}", blake3::hash(e.as_bytes()).to_hex()));
                out.insert(rel(), content);
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

/// Runs `git args` in `dir` (with an author and committer set) and panics with git's message
/// when it fails.
pub fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
