//! Real projects from the package registries at pinned versions, for the tests that reproduce
//! what users saw on real code (issue 10): downloaded once with the registries' own clients
//! (`pip download`, `npm pack`), unpacked under `$CODEFLOW_TEST_CACHE` (default
//! `~/.cache/codeflow-tests`) and reused by later runs. Tests copy them before serving them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The cache directory.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CODEFLOW_TEST_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache").join("codeflow-tests")
}

fn run(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `dir` made by `make` (into a temporary sibling, renamed into place when complete, so a
/// failed or concurrent download never leaves half a project).
fn cached(dir: PathBuf, make: impl FnOnce(&Path)) -> PathBuf {
    if dir.exists() {
        return dir;
    }
    let parent = dir.parent().expect("cache dir");
    std::fs::create_dir_all(parent).unwrap();
    let work = tempfile::tempdir_in(parent).unwrap();
    make(work.path());
    let made = work.path().join("project");
    assert!(made.is_dir(), "nothing unpacked for {}", dir.display());
    // Another test may have finished first; theirs is as good.
    let _ = std::fs::rename(&made, &dir);
    dir
}

/// The single directory a tarball unpacked to.
fn unpack(tarball: &Path, into: &Path) {
    let unpacked = into.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    run(
        Command::new("tar")
            .arg("xzf")
            .arg(tarball)
            .arg("-C")
            .arg(&unpacked),
        "tar",
    );
    let top: Vec<_> = std::fs::read_dir(&unpacked)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let root = match top.as_slice() {
        [only] if only.is_dir() => only.clone(),
        _ => unpacked,
    };
    std::fs::rename(root, into.join("project")).unwrap();
}

/// The source distribution of PyPI package `name` at `version`, unpacked: its root directory.
pub fn pypi_sdist(name: &str, version: &str) -> PathBuf {
    cached(cache_dir().join(format!("pypi-{name}-{version}")), |work| {
        run(
            Command::new("python3")
                .args(["-m", "pip", "download", "--quiet", "--no-deps"])
                .args(["--no-binary", ":all:"])
                .arg(format!("{name}=={version}"))
                .arg("-d")
                .arg(work),
            "pip download",
        );
        let tarball = std::fs::read_dir(work)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
            .expect("pip downloaded no .tar.gz");
        unpack(&tarball, work);
    })
}

/// npm package `name` at `version` (`npm pack`), unpacked: its root directory.
pub fn npm_package(name: &str, version: &str) -> PathBuf {
    let safe = name.replace(['/', '@'], "_");
    cached(cache_dir().join(format!("npm-{safe}-{version}")), |work| {
        run(
            Command::new("npm")
                .args(["pack", "--silent", "--pack-destination"])
                .arg(work)
                .arg(format!("{name}@{version}")),
            "npm pack",
        );
        let tarball = std::fs::read_dir(work)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "tgz"))
            .expect("npm pack made no .tgz");
        unpack(&tarball, work);
    })
}

/// A package of Go's standard library (`text/template/parse`) from the installed Go.
pub fn go_std_package(path: &str) -> PathBuf {
    let out = Command::new("go")
        .args(["env", "GOROOT"])
        .output()
        .expect("go env GOROOT");
    let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let dir = root.join("src").join(path);
    assert!(dir.is_dir(), "{} is missing", dir.display());
    dir
}
