//! Helpers shared by the integration tests: fixture projects in temp dirs, positions by
//! needle, and small request builders.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use codeflow_lsp_pool::lsp_types::{
    GotoDefinitionParams, GotoDefinitionResponse, Location, Position, ReferenceContext,
    ReferenceParams, TextDocumentIdentifier, TextDocumentPositionParams, Url,
};
use codeflow_lsp_pool::{PoolConfig, ServerHandle};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Copy `tests/fixtures/<name>` into a fresh temp dir (servers may write caches; the repo
/// stays clean, and each test gets its own root).
pub fn project(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("lsp-pool-{name}-"))
        .tempdir()
        .expect("temp dir");
    copy_dir(&fixtures().join(name), dir.path());
    dir
}

/// Copy the repository's shared fixture `tests/fixtures/<name>` (one small project per
/// language of the default table) into a fresh temp dir.
pub fn shared_project(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("lsp-pool-{name}-"))
        .tempdir()
        .expect("temp dir");
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    copy_dir(&shared.join(name), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

pub fn config() -> PoolConfig {
    PoolConfig {
        request_timeout: Duration::from_secs(60),
        readiness_timeout: Duration::from_secs(30),
        initialize_timeout: Duration::from_secs(30),
        ..PoolConfig::default()
    }
}

/// 0-based position of the `nth` (0-based) occurrence of `needle` in `text`, plus `offset`
/// characters.
pub fn position_of(text: &str, needle: &str, nth: usize) -> Position {
    let byte = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} #{nth} not in text"))
        .0;
    let before = &text[..byte];
    let line = before.matches('\n').count();
    let col = before
        .rsplit('\n')
        .next()
        .unwrap_or("")
        .encode_utf16()
        .count();
    Position::new(line as u32, col as u32)
}

/// Open `rel` (read from the project) in the server, return its URI and text.
pub fn open(server: &ServerHandle, root: &Path, rel: &str) -> (Url, String) {
    let text = std::fs::read_to_string(root.join(rel)).expect("fixture file");
    server.open(rel, text.clone()).expect("open");
    (server.uri_for(rel).expect("uri"), text)
}

pub fn definition_params(uri: &Url, pos: Position) -> GotoDefinitionParams {
    GotoDefinitionParams {
        text_document_position_params: TextDocumentPositionParams::new(
            TextDocumentIdentifier::new(uri.clone()),
            pos,
        ),
        work_done_progress_params: Default::default(),
        partial_result_params: Default::default(),
    }
}

pub fn references_params(uri: &Url, pos: Position) -> ReferenceParams {
    ReferenceParams {
        text_document_position: TextDocumentPositionParams::new(
            TextDocumentIdentifier::new(uri.clone()),
            pos,
        ),
        work_done_progress_params: Default::default(),
        partial_result_params: Default::default(),
        context: ReferenceContext {
            include_declaration: true,
        },
    }
}

/// Flatten a definition answer to (file name, line, character) triples, sorted.
pub fn def_locations(resp: Option<GotoDefinitionResponse>) -> Vec<(String, u32, u32)> {
    let locs: Vec<Location> = match resp {
        None => Vec::new(),
        Some(GotoDefinitionResponse::Scalar(l)) => vec![l],
        Some(GotoDefinitionResponse::Array(v)) => v,
        Some(GotoDefinitionResponse::Link(links)) => links
            .into_iter()
            .map(|l| Location::new(l.target_uri, l.target_selection_range))
            .collect(),
    };
    triples(locs)
}

pub fn triples(locs: Vec<Location>) -> Vec<(String, u32, u32)> {
    let mut out: Vec<_> = locs
        .into_iter()
        .map(|l| {
            let name = l
                .uri
                .path_segments()
                .and_then(|mut s| s.next_back().map(str::to_owned))
                .unwrap_or_default();
            (name, l.range.start.line, l.range.start.character)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

pub fn t(name: &str, line: u32, col: u32) -> (String, u32, u32) {
    (name.to_owned(), line, col)
}

/// Is a process with this pid alive (and not a zombie)?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Child processes of this test process whose command line contains `needle` and whose
/// working directory is `cwd` (tests in one binary run in parallel and share the parent).
pub fn children_in(needle: &str, cwd: &Path) -> Vec<u32> {
    let cwd = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    children_matching(needle)
        .into_iter()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd"))
                .ok()
                .as_deref()
                == Some(cwd.as_path())
        })
        .collect()
}

/// Child processes of this test process whose command line contains `needle`.
pub fn children_matching(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let (Some(state), Some(ppid)) = (fields.first(), fields.get(1)) else {
            continue;
        };
        if *state == "Z" || ppid.parse::<u32>().ok() != Some(me) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// Poll `cond` every 20 ms until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}
