//! `search_for_pattern`: a regular-expression search over the project's files (the mirror),
//! with ripgrep's library crates: `ignore` walks the tree respecting `.gitignore`, `.ignore`
//! and hidden files, `grep-regex` matches, `grep-searcher` reads lines and context.
//!
//! The answer is honest about its size: it stops at `max_results` matches and then says
//! `truncated: true` (the count is "at least"), never a silently incomplete total. On a large
//! project (more than [`PROGRESS_EVERY`] files) the search's progress goes to the project's
//! `search` channel.

use std::path::{Path, PathBuf};

use codeflow_file_stream::RelPath;
use codeflow_session::{Channel, Right};
use futures::FutureExt;
use futures::future::BoxFuture;
use grep_matcher::Matcher;
use grep_regex::RegexMatcherBuilder;
use grep_searcher::{
    BinaryDetection, Searcher, SearcherBuilder, Sink, SinkContext, SinkContextKind, SinkMatch,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalogue::{Tool, ToolOutput};
use crate::context::ToolContext;
use crate::error::{ToolError, parse_args};
use crate::lsp::CoverageMembers;
use crate::lsp::{Coverage, DEFAULT_MAX_RESULTS};
use crate::output::schema_of;

/// The `search_for_pattern` tool (its description is in `description`).
#[derive(Debug)]
pub struct SearchForPattern;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    pattern: String,
    #[serde(default)]
    paths_include_glob: Option<String>,
    #[serde(default)]
    paths_exclude_glob: Option<String>,
    #[serde(default)]
    context_lines: Option<usize>,
    #[serde(default)]
    max_results: Option<usize>,
    #[serde(default)]
    case_insensitive: bool,
}

/// Progress is published on the `search` channel every this many files.
pub const PROGRESS_EVERY: usize = 1000;
/// Longest line text returned (characters).
const MAX_LINE: usize = 300;
/// Most context lines asked for.
const MAX_CONTEXT: usize = 20;

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Output {
    matches: Vec<MatchRow>,
    /// Matching lines returned; with truncated, there are more.
    total: usize,
    /// True when the search stopped at max_results: more lines match.
    truncated: bool,
    files_searched: usize,
    files_matched: usize,
    #[serde(flatten)]
    coverage: CoverageMembers,
}

/// One matching line.
#[derive(Debug, Serialize, JsonSchema)]
struct MatchRow {
    path: String,
    /// 1-based.
    line: u64,
    /// 1-based character where the first match on the line starts.
    character: usize,
    /// The line (at most 300 characters).
    text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    before: Vec<ContextLine>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    after: Vec<ContextLine>,
}

/// A line around a match.
#[derive(Debug, Serialize, JsonSchema)]
struct ContextLine {
    line: u64,
    text: String,
}

impl Tool for SearchForPattern {
    fn name(&self) -> &'static str {
        "search_for_pattern"
    }

    fn description(&self) -> &'static str {
        "Search the project's files for a regular expression (Rust regex syntax, like ripgrep), respecting .gitignore/.ignore and skipping hidden and binary files; optional include/exclude globs and context lines. Returns path:line:character with the line's text; stops at max_results and says so (truncated). Use it for text that is not a symbol (strings, comments, config keys) or to find every place a pattern occurs."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "A regular expression (Rust regex syntax; matched per line)."},
                "paths_include_glob": {"type": "string", "description": "Only files matching this glob (gitignore-style: `*.py` anywhere, `src/**/*.ts` from the root)."},
                "paths_exclude_glob": {"type": "string", "description": "Skip files matching this glob."},
                "context_lines": {"type": "integer", "minimum": 0, "maximum": MAX_CONTEXT, "default": 0, "description": "Lines of context before and after each match."},
                "max_results": {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_RESULTS, "description": "Stop after this many matching lines (the answer then says truncated)."},
                "case_insensitive": {"type": "boolean", "default": false}
            },
            "required": ["pattern"],
            "additionalProperties": false
        })
    }

    fn output_schema(&self) -> Value {
        schema_of::<Output>()
    }

    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            ctx.require(Right::LspQuery)?;
            let args: Args = parse_args(args)?;
            let workspace = ctx.workspace().await?;
            let paths = ctx.caller.paths(&workspace)?;
            let root = workspace.root().to_path_buf();
            // A streamed mirror holds only what the client synced (and nothing else is
            // searched); a shared project's directory is searched as it is.
            let known = (!workspace.mirror.is_shared()).then(|| workspace.mirror.files());
            let registry = ctx.caller.registry();
            let project = ctx.caller.project.clone();
            let session = ctx.caller.id.clone();
            let pattern = args.pattern.clone();
            let publish = move |event: Value| {
                if let Some(registry) = &registry {
                    let mut event = event;
                    event["session"] = json!(session);
                    event["pattern"] = json!(pattern);
                    registry.channels().publish(&project, Channel::Search, event);
                }
            };
            let found = tokio::task::spawn_blocking(move || search(&root, &args, known.as_ref(), &publish))
                .await
                .map_err(|e| ToolError::failed(format!("the search stopped: {e}")))??;
            let mut matches = Vec::new();
            let mut text = Vec::new();
            let mut files = std::collections::BTreeSet::new();
            for m in found.matches {
                let Ok(rel) = RelPath::parse(&m.rel) else {
                    continue;
                };
                let client = paths.to_client(&paths.mirror_path(&rel)).as_str().to_owned();
                files.insert(client.clone());
                for (n, t) in &m.before {
                    text.push(format!("{client}-{n}-  {t}"));
                }
                text.push(format!("{client}:{}:{}  {}", m.line, m.character, m.text));
                for (n, t) in &m.after {
                    text.push(format!("{client}-{n}-  {t}"));
                }
                let lines = |v: Vec<(u64, String)>| {
                    v.into_iter()
                        .map(|(line, text)| ContextLine { line, text })
                        .collect::<Vec<_>>()
                };
                matches.push(MatchRow {
                    path: client,
                    line: m.line,
                    character: m.character,
                    text: m.text,
                    before: lines(m.before),
                    after: lines(m.after),
                });
            }
            let total = matches.len();
            let mut head = if total == 0 {
                format!("No line matches `{}` in {} file(s) searched.", found.pattern, found.files_searched)
            } else {
                format!(
                    "{total} matching line(s) in {} file(s) ({} searched):",
                    files.len(),
                    found.files_searched
                )
            };
            if found.truncated {
                head.push_str(&format!(
                    "\nTruncated: the search stopped at max_results ({total}); more lines match. Narrow the pattern or the globs, or raise max_results."
                ));
            }
            let coverage = if found.unreadable.is_empty() {
                Coverage::default()
            } else {
                let shown: Vec<&str> = found.unreadable.iter().take(5).map(String::as_str).collect();
                Coverage::partial(format!(
                    "{} file(s) could not be read: {}",
                    found.unreadable.len(),
                    shown.join(", ")
                ))
            };
            text.insert(0, head);
            let mut text = text.join("\n");
            coverage.note(&mut text);
            let out = Output {
                matches,
                total,
                truncated: found.truncated,
                files_searched: found.files_searched,
                files_matched: files.len(),
                coverage: coverage.members(),
            };
            ToolOutput::typed(text, &out)
        }
        .boxed()
    }
}

/// One matching line.
#[derive(Debug)]
struct Match {
    rel: String,
    line: u64,
    character: usize,
    text: String,
    before: Vec<(u64, String)>,
    after: Vec<(u64, String)>,
}

#[derive(Debug)]
struct Found {
    pattern: String,
    matches: Vec<Match>,
    truncated: bool,
    files_searched: usize,
    /// Files that could not be read (relative paths).
    unreadable: Vec<String>,
}

fn clip(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches(['\n', '\r']);
    text.chars().take(MAX_LINE).collect()
}

/// Collects one file's matches, their context, and stops at the limit.
struct Collect<'a> {
    rel: &'a str,
    matcher: &'a grep_regex::RegexMatcher,
    out: &'a mut Vec<Match>,
    before: Vec<(u64, String)>,
    limit: usize,
    truncated: bool,
    /// Matches in this file so far (their after-context follows them).
    this_file: usize,
}

impl Sink for Collect<'_> {
    type Error = std::io::Error;

    fn matched(&mut self, _: &Searcher, m: &SinkMatch<'_>) -> Result<bool, Self::Error> {
        if self.out.len() >= self.limit {
            self.truncated = true;
            return Ok(false);
        }
        let bytes = m.bytes();
        let byte = self
            .matcher
            .find(bytes)
            .ok()
            .flatten()
            .map_or(0, |found| found.start());
        let character = String::from_utf8_lossy(&bytes[..byte]).chars().count() + 1;
        self.out.push(Match {
            rel: self.rel.to_owned(),
            line: m.line_number().unwrap_or(0),
            character,
            text: clip(bytes),
            before: std::mem::take(&mut self.before),
            after: Vec::new(),
        });
        self.this_file += 1;
        Ok(true)
    }

    fn context(&mut self, _: &Searcher, c: &SinkContext<'_>) -> Result<bool, Self::Error> {
        let row = (c.line_number().unwrap_or(0), clip(c.bytes()));
        match c.kind() {
            SinkContextKind::After if self.this_file > 0 => {
                if let Some(last) = self.out.last_mut() {
                    last.after.push(row);
                }
            }
            _ => self.before.push(row),
        }
        Ok(true)
    }

    fn context_break(&mut self, _: &Searcher) -> Result<bool, Self::Error> {
        self.before.clear();
        Ok(true)
    }
}

fn search(
    root: &Path,
    args: &Args,
    known: Option<&std::collections::BTreeMap<RelPath, codeflow_file_stream::ContentHash>>,
    publish: &dyn Fn(Value),
) -> Result<Found, ToolError> {
    // The matcher wraps the pattern (`(?:…)`) before parsing it, so its syntax errors would
    // show a pattern the caller did not write, the caret off by the wrapper: parsed alone first.
    regex_syntax::ParserBuilder::new()
        .case_insensitive(args.case_insensitive)
        .build()
        .parse(&args.pattern)
        .map_err(|e| ToolError::InvalidArguments(format!("pattern `{}`: {e}", args.pattern)))?;
    let matcher = RegexMatcherBuilder::new()
        .case_insensitive(args.case_insensitive)
        .line_terminator(Some(b'\n'))
        .build(&args.pattern)
        .map_err(|e| ToolError::InvalidArguments(format!("pattern `{}`: {e}", args.pattern)))?;
    let context = args.context_lines.unwrap_or(0).min(MAX_CONTEXT);
    let mut searcher = SearcherBuilder::new()
        .line_number(true)
        .before_context(context)
        .after_context(context)
        .binary_detection(BinaryDetection::quit(0))
        .build();
    let mut overrides = ignore::overrides::OverrideBuilder::new(root);
    let glob_error =
        |which: &str, e: ignore::Error| ToolError::InvalidArguments(format!("{which}: {e}"));
    // Globs match paths inside the project: one that climbs out of it matches nothing, which
    // would read as "no match" rather than as the mistake it is.
    for (which, glob) in [
        ("paths_include_glob", &args.paths_include_glob),
        ("paths_exclude_glob", &args.paths_exclude_glob),
    ] {
        if let Some(glob) = glob
            && glob.split(['/', '\\']).any(|part| part == "..")
        {
            return Err(ToolError::InvalidArguments(format!(
                "{which}: `{glob}` climbs out of the project with `..`; globs match paths inside it (`src/**/*.ts`, `*.py`)"
            )));
        }
    }
    if let Some(glob) = args
        .paths_include_glob
        .as_deref()
        .filter(|g| !g.trim().is_empty())
    {
        overrides
            .add(glob)
            .map_err(|e| glob_error("paths_include_glob", e))?;
    }
    if let Some(glob) = args
        .paths_exclude_glob
        .as_deref()
        .filter(|g| !g.trim().is_empty())
    {
        overrides
            .add(&format!("!{glob}"))
            .map_err(|e| glob_error("paths_exclude_glob", e))?;
    }
    let overrides = overrides.build().map_err(|e| glob_error("globs", e))?;
    let walker = ignore::WalkBuilder::new(root)
        .require_git(false)
        .overrides(overrides)
        .sort_by_file_path(|a, b| a.cmp(b))
        .build();
    let limit = args.max_results.unwrap_or(DEFAULT_MAX_RESULTS).max(1);
    let mut matches = Vec::new();
    let mut truncated = false;
    let mut files_searched = 0usize;
    let mut unreadable = Vec::new();
    for entry in walker {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Some(rel) = relative(root, entry.path()) else {
            continue;
        };
        if let Some(known) = known
            && !RelPath::parse(&rel).is_ok_and(|r| known.contains_key(&r))
        {
            continue;
        }
        files_searched += 1;
        let mut sink = Collect {
            rel: &rel,
            matcher: &matcher,
            out: &mut matches,
            before: Vec::new(),
            limit,
            truncated: false,
            this_file: 0,
        };
        // An unreadable file (gone since the walk saw it, or not readable) is counted: the
        // answer then says it is partial.
        if searcher
            .search_path(&matcher, entry.path(), &mut sink)
            .is_err()
        {
            unreadable.push(rel.clone());
        }
        if sink.truncated {
            truncated = true;
            break;
        }
        if files_searched.is_multiple_of(PROGRESS_EVERY) {
            publish(
                json!({"kind": "progress", "files_searched": files_searched, "matches": matches.len()}),
            );
        }
    }
    if files_searched >= PROGRESS_EVERY {
        publish(
            json!({"kind": "done", "files_searched": files_searched, "matches": matches.len(), "truncated": truncated}),
        );
    }
    Ok(Found {
        pattern: args.pattern.clone(),
        matches,
        truncated,
        files_searched,
        unreadable,
    })
}

fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel: PathBuf = path.strip_prefix(root).ok()?.to_path_buf();
    let text = rel.to_str()?;
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pattern: &str, max_results: Option<usize>) -> Args {
        Args {
            pattern: pattern.to_owned(),
            paths_include_glob: None,
            paths_exclude_glob: None,
            context_lines: None,
            max_results,
            case_insensitive: false,
        }
    }

    /// A large tree: progress every 1,000 files on the `search` channel, then `done`; a
    /// truncated search says so and counts only what it returned.
    #[test]
    fn progress_on_large_trees_and_honest_truncation() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..2100 {
            let sub = dir.path().join(format!("d{}", i / 100));
            std::fs::create_dir_all(&sub).unwrap();
            std::fs::write(
                sub.join(format!("f{i}.txt")),
                format!("line {i}\nneedle {i}\n"),
            )
            .unwrap();
        }
        let events = std::sync::Mutex::new(Vec::new());
        let publish = |e: Value| events.lock().unwrap().push(e);
        let found = search(dir.path(), &args("needle", Some(5000)), None, &publish).unwrap();
        assert_eq!(
            (found.files_searched, found.matches.len(), found.truncated),
            (2100, 2100, false)
        );
        let events = events.into_inner().unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, vec!["progress", "progress", "done"]);
        assert_eq!(events[1]["files_searched"], 2000);
        let limited = search(dir.path(), &args("needle", Some(10)), None, &|_| {}).unwrap();
        assert_eq!((limited.matches.len(), limited.truncated), (10, true));
        assert!(search(dir.path(), &args("(", None), None, &|_| {}).is_err());
    }

    #[test]
    fn a_glob_that_climbs_out_of_the_project_is_refused_not_matched_against_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "needle\n").unwrap();
        let mut climbing = args("needle", None);
        climbing.paths_include_glob = Some("../**".into());
        let Err(ToolError::InvalidArguments(message)) =
            search(dir.path(), &climbing, None, &|_| {})
        else {
            panic!("`../**` was accepted");
        };
        assert!(message.contains("paths_include_glob"), "{message}");
        let mut inside = args("needle", None);
        inside.paths_include_glob = Some("**/a.txt".into());
        assert_eq!(
            search(dir.path(), &inside, None, &|_| {})
                .unwrap()
                .matches
                .len(),
            1
        );
    }
}
