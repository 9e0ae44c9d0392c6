//! Readers for the deploy files (`Dockerfile`, `docker-compose.yml`) and for what the binaries
//! really accept, so tests can check that the two agree without a container engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// One instruction: its keyword (upper case) and the rest of the line, continuations joined.
#[derive(Debug, Clone)]
pub struct Instruction {
    pub keyword: String,
    pub args: String,
}

/// A build stage: `FROM base [AS name]` and what follows it.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: Option<String>,
    pub base: String,
    pub instructions: Vec<Instruction>,
}

/// A parsed Dockerfile: global `ARG`s and the stages in order.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub args: BTreeMap<String, String>,
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    pub fn load() -> Self {
        let text = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
        Self::parse(&text)
    }

    /// Comment lines go (also inside continuations, as Docker does); `\` joins lines.
    pub fn parse(text: &str) -> Self {
        let mut logical = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
                continue;
            }
            if let Some(head) = trimmed.strip_suffix('\\') {
                current.push_str(head.trim());
                current.push(' ');
            } else {
                current.push_str(trimmed);
                if !current.trim().is_empty() {
                    logical.push(current.trim().to_owned());
                }
                current.clear();
            }
        }
        let mut args = BTreeMap::new();
        let mut stages: Vec<Stage> = Vec::new();
        for line in logical {
            let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
            let keyword = keyword.to_ascii_uppercase();
            let rest = rest.trim().to_owned();
            if keyword == "FROM" {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let name = match words.as_slice() {
                    [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                        Some((*name).to_owned())
                    }
                    _ => None,
                };
                stages.push(Stage {
                    name,
                    base: words.first().copied().unwrap_or_default().to_owned(),
                    instructions: Vec::new(),
                });
            } else if let Some(stage) = stages.last_mut() {
                stage.instructions.push(Instruction {
                    keyword,
                    args: rest,
                });
            } else if keyword == "ARG" {
                let (k, v) = rest.split_once('=').unwrap_or((&rest, ""));
                args.insert(k.to_owned(), v.trim_matches('"').to_owned());
            }
        }
        Self { args, stages }
    }

    pub fn stage(&self, name: &str) -> &Stage {
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("the Dockerfile has no stage `{name}`"))
    }

    pub fn has_stage(&self, name: &str) -> bool {
        self.stages.iter().any(|s| s.name.as_deref() == Some(name))
    }

    /// The stage and the stages it is built `FROM`, nearest first.
    pub fn lineage<'a>(&'a self, name: &str) -> Vec<&'a Stage> {
        let mut chain = vec![self.stage(name)];
        while let Some(parent) = chain
            .last()
            .filter(|s| self.has_stage(&s.base))
            .map(|s| self.stage(&s.base))
        {
            chain.push(parent);
        }
        chain
    }

    /// The last instruction with this keyword in the stage or its parents.
    pub fn effective(&self, stage: &str, keyword: &str) -> Option<String> {
        self.lineage(stage).into_iter().find_map(|s| {
            s.instructions
                .iter()
                .rev()
                .find(|i| i.keyword == keyword)
                .map(|i| i.args.clone())
        })
    }

    /// Every instruction with this keyword in the stage and its parents, oldest first.
    pub fn all(&self, stage: &str, keyword: &str) -> Vec<String> {
        let mut out = Vec::new();
        for s in self.lineage(stage).into_iter().rev() {
            for i in &s.instructions {
                if i.keyword == keyword {
                    out.push(i.args.clone());
                }
            }
        }
        out
    }

    /// The image's environment: every `ENV KEY=VALUE` of the stage and its parents.
    pub fn env(&self, stage: &str) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for line in self.all(stage, "ENV") {
            for pair in line.split_whitespace() {
                let (k, v) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("ENV without `=` in {line:?}: use KEY=VALUE"));
                env.insert(k.to_owned(), v.trim_matches('"').to_owned());
            }
        }
        env
    }
}

/// A JSON exec form (`["a", "b"]`) as its words; `None` for the shell form.
pub fn exec_form(args: &str) -> Option<Vec<String>> {
    let json: Value = serde_json::from_str(args.trim()).ok()?;
    json.as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// `docker-compose.yml` as JSON.
pub fn compose() -> Value {
    let text = std::fs::read_to_string(repo_root().join("docker-compose.yml"))
        .expect("docker-compose.yml");
    serde_norway::from_str(&text).expect("docker-compose.yml is valid YAML")
}

/// A service's `environment`, in either of compose's two spellings.
pub fn service_environment(service: &Value) -> BTreeMap<String, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match service.get("environment") {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), scalar(v))).collect(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// A service's `env_file` entries (short or long syntax), as repository paths.
pub fn service_env_files(service: &Value) -> Vec<PathBuf> {
    let entries = match service.get("env_file") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|e| {
                e.as_str()
                    .or_else(|| e.get("path").and_then(Value::as_str))
                    .map(str::to_owned)
            })
            .collect(),
        _ => Vec::new(),
    };
    entries.into_iter().map(|e| repo_root().join(e)).collect()
}

/// `KEY=VALUE` lines of an env file (comments and blanks skipped).
pub fn read_env_file(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{}: {l:?} is not KEY=VALUE", path.display()));
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

/// The example that ships for an env file the operator creates (`x.env` → `x.env.example`).
pub fn env_file_example(path: &Path) -> PathBuf {
    let mut name = path.file_name().expect("file name").to_os_string();
    name.push(".example");
    path.with_file_name(name)
}

/// A service's `volumes` in short syntax: (source, target).
pub fn service_volumes(service: &Value) -> Vec<(String, String)> {
    service
        .get("volumes")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|v| match v {
                    Value::String(s) => {
                        let mut parts = s.splitn(3, ':');
                        Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
                    }
                    Value::Object(o) => Some((
                        o.get("source")?.as_str()?.to_owned(),
                        o.get("target")?.as_str()?.to_owned(),
                    )),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A service's published ports: (host port, container port).
pub fn service_ports(service: &Value) -> Vec<(u16, u16)> {
    service
        .get("ports")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|p| {
                    let text = match p {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        _ => return None,
                    };
                    let parts: Vec<&str> = text.rsplitn(3, ':').collect();
                    let container = parts.first()?.split('/').next()?.parse().ok()?;
                    let host = parts.get(1)?.parse().ok()?;
                    Some((host, container))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The environment variables a binary reads, from its `--help` (`[env: NAME=…]`).
pub fn help_env_names(binary: &Path) -> BTreeSet<String> {
    let out = std::process::Command::new(binary)
        .arg("--help")
        .output()
        .expect("--help runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.match_indices("[env: ")
        .map(|(i, m)| {
            text[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// The subcommands a binary lists in its `--help`.
pub fn help_subcommands(binary: &Path) -> BTreeSet<String> {
    let out = std::process::Command::new(binary)
        .arg("--help")
        .output()
        .expect("--help runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .map(|block| {
            block
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every key of the server's `Config` (read from its definition), as the `CODEFLOW_*`
/// environment names the server reads for them.
pub fn server_env_names() -> BTreeSet<String> {
    let source = std::fs::read_to_string(repo_root().join("bins/codeflow-server/src/config.rs"))
        .expect("config.rs");
    let body = source
        .split("pub struct Config {")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .expect("config.rs defines `pub struct Config`");
    let mut names: BTreeSet<String> = body
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.trim().to_owned()))
        .map(|k| format!("CODEFLOW_{}", k.to_ascii_uppercase()))
        .collect();
    // Read by clap (`--config`) rather than figment.
    names.insert("CODEFLOW_CONFIG".into());
    names
}
