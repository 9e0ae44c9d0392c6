//! Commands and configuration blocks read out of the project's Markdown (README.md, docs/*.md)
//! so tests run them as written: code blocks by language, single command lines split without a
//! shell, the documents' placeholders made concrete, and an MCP server entry (`command`,
//! `args`, `env`) started as a relay.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

use crate::deploy::repo_root;
use crate::{Relay, binary};

/// The fenced blocks of `language` (```` ```sh ````, ```` ```json ````…) in a document of the
/// repository, each as its text.
pub fn blocks(document: &str, language: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join(document)).unwrap();
    let mut out = Vec::new();
    // None: outside a block; Some(None): in another language's; Some(Some(text)): in ours.
    let mut state: Option<Option<String>> = None;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            state = match state.take() {
                Some(Some(block)) => {
                    out.push(block);
                    None
                }
                Some(None) => None,
                None if line.trim() == format!("```{language}") => Some(Some(String::new())),
                None => Some(None),
            };
            continue;
        }
        if let Some(Some(block)) = state.as_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    out
}

/// The command lines of a document's ```` ```sh ```` blocks (comments and blank lines
/// dropped; a trailing `\` joins the next line).
pub fn shell_lines(document: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join(document)).unwrap();
    let mut lines = Vec::new();
    let mut inside = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside && line.trim() == "```sh";
            continue;
        }
        let line = line.trim();
        if !inside || line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => {
                pending.push_str(start.trim_end());
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                lines.push(std::mem::take(&mut pending));
            }
        }
    }
    lines
}

/// The one line of `lines` that starts with `prefix`.
pub fn line_starting(lines: &[String], prefix: &str) -> String {
    let found: Vec<&String> = lines.iter().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "one line starts with {prefix:?}: {found:?}");
    found[0].clone()
}

/// The documents' placeholders made concrete: `HOST` → `127.0.0.1`, port `3000` → `port`,
/// `/workspace/my-app` → `root`.
pub fn substitute(line: &str, port: u16, root: &Path) -> String {
    line.replace("HOST", "127.0.0.1")
        .replace(":3000", &format!(":{port}"))
        .replace("/workspace/my-app", &root.to_string_lossy())
}

/// A command line as (environment, program, arguments); documented lines need no quoting.
pub fn split(line: &str) -> (Vec<(String, String)>, String, Vec<String>) {
    assert!(
        !line.contains(['"', '\'', '$', '`', '|', ';']),
        "a documented command needs no shell: {line}"
    );
    let mut words = line.split_whitespace().map(str::to_owned).peekable();
    let mut env = Vec::new();
    while let Some(word) = words.next_if(|w| w.contains('=') && !w.starts_with('-')) {
        let (k, v) = word.split_once('=').unwrap();
        env.push((k.to_owned(), v.to_owned()));
    }
    let program = words.next().expect("a program");
    (env, program, words.collect())
}

/// `PATH` with the built binaries first, as after `cargo install`.
pub fn path_with_binaries() -> String {
    let dir = binary("codeflow-client").parent().unwrap().to_path_buf();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A project directory `<tmp>/<name>` holding `app.py` (a `greet` function): the temporary
/// directory and the project's canonical path.
pub fn python_project(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(name);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("app.py"),
        "def greet(name):\n    return 'hi ' + name\n",
    )
    .unwrap();
    let root = root.canonicalize().unwrap();
    (dir, root)
}

/// Starts the relay an MCP client configuration entry (`{"command", "args", "env"}`)
/// describes, as the client would: `${VAR}` in `env` values expanded by `expand`, every
/// string passed through `fix` (the document's placeholders).
pub fn spawn_entry(
    entry: &Value,
    fix: &dyn Fn(&str) -> String,
    expand: &dyn Fn(&str) -> String,
) -> Relay {
    let program = entry["command"].as_str().expect("command");
    assert_eq!(program, "codeflow-client", "{entry}");
    let args: Vec<String> = entry["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| fix(a.as_str().expect("string args")))
        .collect();
    let mut command = tokio::process::Command::new(binary(program));
    command.args(&args).env_remove("CODEFLOW_TOKEN");
    if let Some(env) = entry.get("env").and_then(Value::as_object) {
        for (key, value) in env {
            let value = fix(value.as_str().expect("string env values"));
            let value = match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
                Some(name) => expand(name),
                None => value,
            };
            command.env(key, value);
        }
    }
    let child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    Relay::from_child(child)
}
