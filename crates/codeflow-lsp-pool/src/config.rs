//! Pool configuration: the language-server table and the pool's timing knobs.
//!
//! Everything here deserializes with serde (the server binary reads it from its TOML config
//! through figment) and every field has a default, so `PoolConfig::default()` is a working pool
//! with the default servers (`shared/design/tools.md`, grown to the README's languages table).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Settings for the whole pool.
///
/// Durations accept a number of seconds (`60`, `0.5`) or a string with a unit
/// (`"60s"`, `"500ms"`, `"2m"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Servers added to, or replacing (same id), the default table.
    pub servers: BTreeMap<String, ServerConfig>,
    /// Start from an empty table instead of the defaults (only `servers` is used).
    pub replace_default_servers: bool,
    /// Stop a project's servers this long after its last lease is dropped and no request is
    /// pending.
    #[serde(with = "duration_serde")]
    pub idle_timeout: Duration,
    /// Upper bound on one request, including waiting for a restart and replay.
    #[serde(with = "duration_serde")]
    pub request_timeout: Duration,
    /// How long a request waits for a server's indexing (`$/progress`) to finish before it is
    /// sent anyway.
    #[serde(with = "duration_serde")]
    pub readiness_timeout: Duration,
    /// How long `diagnostics` waits for pushed diagnostics describing the current version.
    #[serde(with = "duration_serde")]
    pub diagnostics_timeout: Duration,
    /// How long a server may take to answer `initialize`.
    #[serde(with = "duration_serde")]
    pub initialize_timeout: Duration,
    /// How long `shutdown`, and then the process exit, may take before the process group is
    /// killed.
    #[serde(with = "duration_serde")]
    pub shutdown_timeout: Duration,
    /// Give up restarting a server after this many crashes within `crash_window`.
    pub max_crashes: u32,
    /// The window for `max_crashes`. A server that gave up is retried on first use once this
    /// long has passed (or at once by `restart_project`).
    #[serde(with = "duration_serde")]
    pub crash_window: Duration,
    /// First delay before a restart; doubles per consecutive crash up to `restart_backoff_max`.
    #[serde(with = "duration_serde")]
    pub restart_backoff: Duration,
    /// Largest delay before a restart.
    #[serde(with = "duration_serde")]
    pub restart_backoff_max: Duration,
    /// Requests in flight to one server at once; further callers wait for a slot (back
    /// pressure, not rejection), still bounded by `request_timeout`.
    pub max_in_flight_per_server: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            servers: BTreeMap::new(),
            replace_default_servers: false,
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            readiness_timeout: Duration::from_secs(20),
            diagnostics_timeout: Duration::from_secs(5),
            initialize_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(2),
            max_crashes: 5,
            crash_window: Duration::from_secs(60),
            restart_backoff: Duration::from_millis(100),
            restart_backoff_max: Duration::from_secs(5),
            max_in_flight_per_server: 256,
        }
    }
}

impl PoolConfig {
    /// The effective server table: the defaults (unless replaced) overlaid with `servers`.
    #[must_use]
    pub fn effective_servers(&self) -> BTreeMap<String, ServerConfig> {
        let mut table = if self.replace_default_servers {
            BTreeMap::new()
        } else {
            default_servers()
        };
        for (id, server) in &self.servers {
            table.insert(id.clone(), server.clone());
        }
        table.retain(|_, s| s.enabled);
        table
    }
}

/// One language server: how to start it and which files it serves.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Program to run: a name looked up on `PATH`, or a path.
    pub command: String,
    /// Arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// File extensions (without the dot) this server handles.
    pub extensions: Vec<String>,
    /// Whole file names this server handles whatever their extension (`Dockerfile`,
    /// `Containerfile`); compared exactly.
    #[serde(default, alias = "fileNames")]
    pub filenames: Vec<String>,
    /// Language label for metrics and status (`python`, `typescript`, …).
    #[serde(default)]
    pub language: Option<String>,
    /// `languageId` sent in `didOpen`; by default derived from the file extension.
    #[serde(default)]
    pub language_id: Option<String>,
    /// `initializationOptions` sent with `initialize`.
    #[serde(
        default,
        rename = "initialization_options",
        alias = "initializationOptions"
    )]
    pub initialization_options: Option<Value>,
    /// Settings returned for `workspace/configuration` (looked up by section, dotted path).
    #[serde(default)]
    pub settings: Option<Value>,
    /// Files whose presence in the project root makes this server preferred when several
    /// servers claim the same extension. Empty: always eligible.
    #[serde(default, alias = "rootMarkers")]
    pub root_markers: Vec<String>,
    /// What to tell a person when the command is missing.
    #[serde(default)]
    pub install_hint: Option<String>,
    /// The server reports readiness with rust-analyzer's `experimental/serverStatus`
    /// (`quiescent`); requests wait for it as well as for `$/progress` to end.
    #[serde(default)]
    pub wait_for_quiescence: bool,
    /// Requests wait (bounded by `readiness_timeout`) until the server has logged a message
    /// containing this text (`window/logMessage`): for servers that answer empty until they
    /// have found the project's files and say so only in their log (basedpyright: "source
    /// file").
    #[serde(default)]
    pub ready_after_log: Option<String>,
    /// The server parses a document after `didOpen`/`didChange` returns and answers empty
    /// until it has (vim-language-server): a request naming an open document waits, bounded by
    /// `diagnostics_timeout`, until the server has published diagnostics for its version.
    #[serde(default)]
    pub ready_after_diagnostics: bool,
    /// After the first diagnostics pushed for a document's new version, later pushes are
    /// awaited until none comes for this long (tsserver publishes a version's syntax errors,
    /// then its semantic ones). Unset: the caller's default (CodeFlow: 500 ms). Zero for
    /// servers that publish a version's diagnostics in one push (clangd, pylsp), so a write's
    /// diagnostics come back as soon as they are known.
    #[serde(default, with = "option_duration_serde")]
    pub diagnostics_settle: Option<Duration>,
    /// Overrides the pool's `initialize_timeout` for this server (slow indexers, tests).
    #[serde(default, with = "option_duration_serde")]
    pub initialize_timeout: Option<Duration>,
    /// Set false to remove a default server.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Operations this server answers for its extensions in place of the language's main
    /// server (the one without this list), because its answers there are more complete: e.g.
    /// basedpyright for Python references and renames beside pylsp. A server with a list is
    /// asked only for those operations, and its pushed diagnostics are kept off the
    /// `diagnostics` channel unless the list names `diagnostics`. Empty: a main server.
    #[serde(default, alias = "preferredFor")]
    pub preferred_for: Vec<Operation>,
    /// May this server be started ahead of the first request, when its files are among a
    /// project's most common after a sync (`prestart_language_servers`)? Off for data formats
    /// (JSON, YAML), which are numerous in most projects but rarely what an agent asks about:
    /// prestarting them would take the places of the project's programming languages.
    #[serde(default = "yes")]
    pub prestart: bool,
    /// The argument, written just before a directory, that points this server at a
    /// project's compilation database (clangd: `--compile-commands-dir=`). The pool's owner
    /// keeps such a directory per project (CodeFlow: a copy of the project's
    /// `compile_commands.json` with the mirror's paths, or no directory when the project has
    /// none, so the server looks for `compile_flags.txt` as usual); unset: not passed.
    #[serde(default)]
    pub compilation_database_arg: Option<String>,
}

/// What a tool asks a language server for, to pick the server that answers it best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    /// `textDocument/references`.
    References,
    /// `textDocument/rename` (and `prepareRename`).
    Rename,
    /// `textDocument/prepareCallHierarchy` and the incoming/outgoing calls.
    CallHierarchy,
    /// `textDocument/implementation`.
    Implementation,
    /// `textDocument/typeDefinition`.
    TypeDefinition,
    /// `textDocument/definition`.
    Definition,
    /// `workspace/symbol`.
    WorkspaceSymbols,
    /// Pushed or pulled diagnostics.
    Diagnostics,
}

impl Operation {
    /// The name used in configuration.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Operation::References => "references",
            Operation::Rename => "rename",
            Operation::CallHierarchy => "callHierarchy",
            Operation::Implementation => "implementation",
            Operation::TypeDefinition => "typeDefinition",
            Operation::Definition => "definition",
            Operation::WorkspaceSymbols => "workspaceSymbols",
            Operation::Diagnostics => "diagnostics",
        }
    }
}

fn yes() -> bool {
    true
}

impl ServerConfig {
    /// A server with the given command and extensions; other fields default.
    #[must_use]
    pub fn new(command: impl Into<String>, extensions: &[&str]) -> Self {
        Self {
            command: command.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
            filenames: Vec::new(),
            language: None,
            language_id: None,
            initialization_options: None,
            settings: None,
            root_markers: Vec::new(),
            install_hint: None,
            wait_for_quiescence: false,
            ready_after_log: None,
            ready_after_diagnostics: false,
            initialize_timeout: None,
            enabled: true,
            preferred_for: Vec::new(),
            prestart: true,
            compilation_database_arg: None,
            diagnostics_settle: None,
        }
    }

    /// Builder: set arguments.
    #[must_use]
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    fn with_diagnostics_settle(mut self, settle: Duration) -> Self {
        self.diagnostics_settle = Some(settle);
        self
    }

    fn with_compilation_database_arg(mut self, arg: &str) -> Self {
        self.compilation_database_arg = Some(arg.to_owned());
        self
    }

    fn with_language(mut self, language: &str) -> Self {
        self.language = Some(language.to_owned());
        self
    }

    fn with_hint(mut self, hint: &str) -> Self {
        self.install_hint = Some(hint.to_owned());
        self
    }

    /// Is this a main server (asked for everything about its files), rather than one preferred
    /// for a few operations only?
    #[must_use]
    pub fn is_main(&self) -> bool {
        self.preferred_for.is_empty()
    }

    /// Does this server publish the diagnostics of its files?
    #[must_use]
    pub fn publishes_diagnostics(&self) -> bool {
        self.is_main() || self.preferred_for.contains(&Operation::Diagnostics)
    }

    fn with_filenames(mut self, names: &[&str]) -> Self {
        self.filenames = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    fn ready_after_diagnostics(mut self) -> Self {
        self.ready_after_diagnostics = true;
        self
    }

    fn ready_after_log(mut self, text: &str) -> Self {
        self.ready_after_log = Some(text.to_owned());
        self
    }

    fn not_prestarted(mut self) -> Self {
        self.prestart = false;
        self
    }

    fn with_language_id(mut self, id: &str) -> Self {
        self.language_id = Some(id.to_owned());
        self
    }

    /// Does this server claim files with extension `ext` (no dot, any case)?
    #[must_use]
    pub fn handles_extension(&self, ext: &str) -> bool {
        let ext = ext.trim_start_matches('.');
        self.extensions
            .iter()
            .any(|e| e.trim_start_matches('.').eq_ignore_ascii_case(ext))
    }

    /// Does this server claim the file `path`: by its whole name (`filenames`) or its
    /// extension?
    #[must_use]
    pub fn handles_path(&self, path: &Path) -> bool {
        let by_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| self.filenames.iter().any(|f| f == n));
        by_name
            || path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| self.handles_extension(e))
    }

    /// Is this server preferred for a project at `root` (some root marker exists there)?
    pub(crate) fn markers_match(&self, root: &Path) -> bool {
        self.root_markers.iter().any(|m| root.join(m).exists())
    }

    /// The language label used in metrics and status.
    #[must_use]
    pub fn language_label(&self, server_id: &str) -> String {
        self.language
            .clone()
            .unwrap_or_else(|| server_id.to_owned())
    }

    /// The `languageId` for a file with this extension.
    #[must_use]
    pub fn language_id_for(&self, ext: &str) -> String {
        if let Some(id) = &self.language_id {
            return id.clone();
        }
        default_language_id(ext)
    }
}

/// The `languageId` LSP expects for common extensions; unknown ones pass through.
#[must_use]
pub fn default_language_id(ext: &str) -> String {
    let ext = ext.trim_start_matches('.').to_ascii_lowercase();
    let id = match ext.as_str() {
        "py" | "pyi" => "python",
        "ts" | "mts" | "cts" => "typescript",
        "tsx" => "typescriptreact",
        "js" | "mjs" | "cjs" => "javascript",
        "jsx" => "javascriptreact",
        "c" | "h" => "c",
        "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" => "cpp",
        "rs" => "rust",
        "go" => "go",
        "sh" | "bash" => "shellscript",
        "yml" => "yaml",
        "htm" => "html",
        "f" | "for" | "f77" | "f90" | "f95" | "f03" | "f08" => "fortran",
        other => return other.to_owned(),
    };
    id.to_owned()
}

/// The default server table (`shared/design/tools.md` and the README's languages table).
#[must_use]
pub fn default_servers() -> BTreeMap<String, ServerConfig> {
    let mut t = BTreeMap::new();
    let mut pylsp = ServerConfig::new("pylsp", &["py", "pyi"])
        .with_language("python")
        // One push per version, once its linters ran (measured: one, 0.5 s after the
        // change, its debounce).
        .with_diagnostics_settle(Duration::ZERO)
        .with_hint("pip install \"python-lsp-server[pyflakes]\"");
    // Imported names are not the file's symbols: pylsp lists them by default (`module email`
    // …), and they crowd a file's outline past the tools' limit (`http/client.py` of the
    // standard library: its own functions cut off after the imports and fields). A name a file
    // only imports is still found by name, where the file uses it.
    pylsp.initialization_options = Some(serde_json::json!({
        "pylsp": {"plugins": {"jedi_symbols": {"include_import_symbols": false}}}
    }));
    t.insert("pylsp".to_owned(), pylsp);
    // Measured on flask (docs/benchmarks.md, "Accuracy"): pylsp's jedi misses uses of a name in
    // the package's other modules (1 of 5, 1 of 8, 1 of 3 references found); basedpyright found
    // every one. pylsp keeps everything else (its pyflakes diagnostics, formatting, symbols).
    let mut basedpyright = ServerConfig::new("basedpyright-langserver", &["py", "pyi"])
        .with_args(&["--stdio"])
        .with_language("python")
        .with_hint("pip install basedpyright");
    basedpyright.preferred_for = vec![
        Operation::References,
        Operation::Rename,
        Operation::CallHierarchy,
        Operation::Implementation,
        Operation::TypeDefinition,
        Operation::WorkspaceSymbols,
    ];
    // It answers empty until it has found the project's files, which it says only in its log
    // ("Found 12 source files", "No source files found").
    basedpyright.ready_after_log = Some("source file".to_owned());
    // Its type checking is not asked for: keep the analysis to what the answers need.
    basedpyright.settings = Some(serde_json::json!({
        "basedpyright": {"analysis": {"typeCheckingMode": "off", "diagnosticMode": "openFilesOnly"}}
    }));
    t.insert("basedpyright".to_owned(), basedpyright);
    t.insert(
        "typescript-language-server".to_owned(),
        ServerConfig::new(
            "typescript-language-server",
            &["ts", "tsx", "js", "jsx", "mjs", "cjs", "mts", "cts"],
        )
        .with_args(&["--stdio"])
        .with_language("typescript")
        // TypeScript 7 never answers through typescript-language-server: pin 6.
        .with_hint("npm install -g typescript-language-server typescript@6"),
    );
    t.insert(
        "clangd".to_owned(),
        ServerConfig::new(
            "clangd",
            &["c", "h", "cc", "cpp", "cxx", "hpp", "hh", "hxx"],
        )
        // Background indexing writes `.cache/` into the project (the mirror): keep it off.
        .with_args(&["--background-index=false"])
        .with_language("c")
        .with_compilation_database_arg("--compile-commands-dir=")
        // One push per version, once the file's AST is built (measured: one, ~60 ms after).
        .with_diagnostics_settle(Duration::ZERO)
        .with_hint("apt-get install -y clangd"),
    );
    let mut ra = ServerConfig::new("rust-analyzer", &["rs"])
        .with_language("rust")
        .with_hint("rustup component add rust-analyzer rust-src");
    // rust-analyzer answers empty results while indexing; its serverStatus says when it is done.
    ra.wait_for_quiescence = true;
    t.insert("rust-analyzer".to_owned(), ra);
    t.insert(
        "gopls".to_owned(),
        ServerConfig::new("gopls", &["go"])
            .with_language("go")
            .with_hint("apt-get install -y golang-go gopls"),
    );
    t.insert(
        "bash-language-server".to_owned(),
        ServerConfig::new("bash-language-server", &["sh", "bash"])
            .with_args(&["start"])
            .with_language("shell")
            .with_hint("npm install -g bash-language-server@5.8.1")
            // It finds the project's scripts in the background and answers cross-file
            // questions empty until it logs that the analysis is done.
            .ready_after_log("BackgroundAnalysis: Completed"),
    );
    add_web_servers(&mut t);
    add_other_servers(&mut t);
    t
}

/// `vscode-langservers-extracted` (JSON, CSS/SCSS/Less, HTML), YAML, Prisma, Svelte: servers
/// from npm.
fn add_web_servers(t: &mut BTreeMap<String, ServerConfig>) {
    const EXTRACTED: &str = "npm install -g vscode-langservers-extracted@4.10.0";
    t.insert(
        "vscode-json-language-server".to_owned(),
        ServerConfig::new("vscode-json-language-server", &["json", "jsonc"])
            .with_args(&["--stdio"])
            .with_language("json")
            .with_hint(EXTRACTED)
            .not_prestarted(),
    );
    t.insert(
        "vscode-css-language-server".to_owned(),
        ServerConfig::new("vscode-css-language-server", &["css", "scss", "less"])
            .with_args(&["--stdio"])
            .with_language("css")
            .with_hint(EXTRACTED),
    );
    t.insert(
        "vscode-html-language-server".to_owned(),
        ServerConfig::new("vscode-html-language-server", &["html", "htm"])
            .with_args(&["--stdio"])
            .with_language("html")
            .with_hint(EXTRACTED),
    );
    t.insert(
        "yaml-language-server".to_owned(),
        ServerConfig::new("yaml-language-server", &["yaml", "yml"])
            .with_args(&["--stdio"])
            .with_language("yaml")
            .not_prestarted()
            // 2.x needs Node 22.
            .with_hint("npm install -g yaml-language-server@1.25.0"),
    );
    let mut prisma = ServerConfig::new("prisma-language-server", &["prisma"])
        .with_args(&["--stdio"])
        .with_language("prisma")
        .with_hint("npm install -g @prisma/language-server@31.12.10");
    // It reads `prisma.*` through workspace/configuration and fails on a null answer.
    prisma.settings = Some(serde_json::json!({"prisma": {"enableDiagnostics": true}}));
    t.insert("prisma-language-server".to_owned(), prisma);
    t.insert(
        "svelteserver".to_owned(),
        ServerConfig::new("svelteserver", &["svelte"])
            .with_args(&["--stdio"])
            .with_language("svelte")
            .with_hint("npm install -g svelte-language-server@0.18.4"),
    );
}

/// Dockerfile, PHP, Vim script (npm) and Fortran (PyPI).
fn add_other_servers(t: &mut BTreeMap<String, ServerConfig>) {
    t.insert(
        "docker-langserver".to_owned(),
        ServerConfig::new("docker-langserver", &["dockerfile", "containerfile"])
            .with_filenames(&["Dockerfile", "Containerfile"])
            .with_args(&["--stdio"])
            .with_language("dockerfile")
            // `Dockerfile` has no extension to derive the languageId from.
            .with_language_id("dockerfile")
            .with_hint("npm install -g dockerfile-language-server-nodejs@0.15.0"),
    );
    t.insert(
        "intelephense".to_owned(),
        ServerConfig::new("intelephense", &["php", "phtml"])
            .with_args(&["--stdio"])
            .with_language("php")
            .with_hint("npm install -g intelephense@1.18.5"),
    );
    t.insert(
        "vim-language-server".to_owned(),
        ServerConfig::new("vim-language-server", &["vim"])
            .with_filenames(&[".vimrc", "_vimrc"])
            .with_args(&["--stdio"])
            .with_language("vim")
            .with_hint("npm install -g vim-language-server@2.3.1")
            .ready_after_diagnostics(),
    );
    t.insert(
        "fortls".to_owned(),
        ServerConfig::new("fortls", &["f90", "f95", "f03", "f08", "f", "for", "f77"])
            .with_language("fortran")
            .with_hint("pip install fortls==3.2.2"),
    );
}

/// Durations as seconds (number) or a string with a unit.
mod duration_serde {
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(f64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Duration::try_from_secs_f64(s).map_err(D::Error::custom),
            Raw::Text(t) => super::parse_duration(&t).map_err(D::Error::custom),
        }
    }
}

/// `Option<Duration>` in the same forms as `duration_serde`.
mod option_duration_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    #[derive(Deserialize)]
    struct Wrap(#[serde(with = "super::duration_serde")] Duration);

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

/// Parse `"500ms"`, `"60s"`, `"2m"`, `"1h"` or a bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. \"60s\" or \"500ms\""))?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("invalid duration unit {other:?} in {text:?}")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn config_overrides_and_adds_servers() {
        let json = serde_json::json!({
            "idle_timeout": "5s",
            "request_timeout": 10,
            "servers": {
                "pylsp": { "command": "/opt/pylsp", "extensions": ["py"], "args": ["-v"] },
                "bash-language-server": { "command": "x", "extensions": [], "enabled": false },
                "zls": { "command": "zls", "extensions": ["zig"],
                         "initializationOptions": {"a": 1}, "rootMarkers": ["build.zig"] }
            }
        });
        let cfg: PoolConfig = serde_json::from_value(json).expect("valid config");
        assert_eq!(cfg.idle_timeout, Duration::from_secs(5));
        assert_eq!(cfg.request_timeout, Duration::from_secs(10));
        let table = cfg.effective_servers();
        assert_eq!(table["pylsp"].command, "/opt/pylsp");
        assert!(!table.contains_key("bash-language-server"));
        assert_eq!(table["zls"].root_markers, vec!["build.zig".to_owned()]);
        assert!(table["zls"].initialization_options.is_some());
        assert!(table.contains_key("clangd"));
    }

    #[test]
    fn files_by_name_or_extension() {
        let table = default_servers();
        let docker = &table["docker-langserver"];
        assert!(docker.handles_path(Path::new("sub/Dockerfile")));
        assert!(docker.handles_path(Path::new("build.dockerfile")));
        assert!(!docker.handles_path(Path::new("Dockerfile.txt")));
        assert_eq!(docker.language_id_for(""), "dockerfile");
        assert!(table["vim-language-server"].handles_path(Path::new(".vimrc")));
        assert!(table["fortls"].handles_path(Path::new("main.F90")));
        assert!(!table["pylsp"].handles_path(Path::new("Makefile")));
        let languages: std::collections::BTreeSet<String> =
            table.iter().map(|(id, s)| s.language_label(id)).collect();
        assert!(languages.len() >= 14, "{languages:?}");
    }

    #[test]
    fn language_ids() {
        assert_eq!(default_language_id("tsx"), "typescriptreact");
        assert_eq!(default_language_id(".PY"), "python");
        assert_eq!(default_language_id("zig"), "zig");
    }
}
