//! Shared by the tool tests: a fixture project copied to a temporary directory, served by the
//! real server through the real relay, and the helpers that read tool results.

use std::path::PathBuf;

use serde_json::Value;

pub use crate::results::{names, places};

use crate::fs::fixture;
use crate::{Relay, Server};

/// A temporary copy of `tests/fixtures/<fixture>` served as one project.
pub struct Project {
    pub relay: Relay,
    pub server: Server,
    /// The client's root: the copy, canonical.
    pub root: PathBuf,
    /// The project's name.
    pub name: String,
    _dir: tempfile::TempDir,
}

impl Project {
    /// Copies `tests/fixtures/<fixture>` and serves it as `project`.
    pub async fn start(fixture_name: &str, project: &str) -> Self {
        let (dir, root) = fixture(fixture_name);
        let server = Server::start().await;
        let relay = Relay::spawn(&server.url(), project, &root, &[]);
        relay.initialize().await;
        Self {
            relay,
            server,
            root,
            name: project.to_owned(),
            _dir: dir,
        }
    }

    /// A project `project` made of `files` (relative path, content) in a temporary directory,
    /// served and synced.
    pub async fn from_files(project: &str, files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for (rel, text) in files {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let server = Server::start().await;
        let relay = Relay::spawn(&server.url(), project, &root, &[]);
        relay.initialize().await;
        relay.settle().await;
        Self {
            relay,
            server,
            root,
            name: project.to_owned(),
            _dir: dir,
        }
    }

    /// [`Project::start`], then one tool call, which waits until the relay's sync is in the
    /// mirror.
    pub async fn start_synced(fixture_name: &str, project: &str) -> Self {
        let p = Self::start(fixture_name, project).await;
        p.relay.settle().await;
        p
    }

    /// The client's absolute path of a fixture file.
    pub fn path(&self, rel: &str) -> String {
        self.root.join(rel).to_string_lossy().into_owned()
    }

    /// A file on the client's disk.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel))
            .unwrap_or_else(|e| panic!("{rel} on the client: {e}"))
    }

    /// A file in the server's mirror of the project, if it is there.
    pub fn mirror(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.server.mirror_dir(&self.name).join(rel)).ok()
    }

    /// The raw result of a tool call.
    pub async fn tool(&self, name: &str, args: Value) -> Value {
        self.relay.tool(name, args).await
    }

    /// Calls a tool that must succeed: (text, structuredContent). Checks that nothing names
    /// the server's mirror.
    pub async fn ok(&self, tool: &str, args: Value) -> (String, Value) {
        let result = self.relay.tool(tool, args.clone()).await;
        assert_eq!(result["isError"], false, "{tool} {args} failed: {result}");
        let text = result["content"][0]["text"].as_str().unwrap().to_owned();
        let structured = result["structuredContent"].clone();
        assert!(
            structured.is_object(),
            "{tool}: no structuredContent: {result}"
        );
        self.assert_no_mirror(&result);
        (text, structured)
    }

    /// Calls a tool that must fail; returns its message.
    pub async fn err(&self, tool: &str, args: Value) -> String {
        let result = self.relay.tool(tool, args.clone()).await;
        assert_eq!(
            result["isError"], true,
            "{tool} {args} should fail: {result}"
        );
        self.assert_no_mirror(&result);
        result["content"][0]["text"].as_str().unwrap().to_owned()
    }

    fn assert_no_mirror(&self, result: &Value) {
        let mirrors = self.server.data_dir.path().canonicalize().unwrap();
        let s = result.to_string();
        assert!(
            !s.contains(mirrors.to_string_lossy().as_ref()),
            "a result names the server's mirror: {s}"
        );
    }
}
