//! Locations from a language server (URIs in the mirror) → the client's paths, with the line's
//! text, rendered as `path:line:character  text`.
//!
//! Everything a language server says names the mirror. [`Locator`] is the one place that turns
//! it back: URIs inside the mirror become the session's client paths, files outside it (a
//! system header, a typeshed stub) keep their server-side path, and free text (hover, messages)
//! becomes a [`ServerText`], scrubbed of the mirror root where it is made.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use codeflow_file_stream::{MirrorPath, RelPath};
use codeflow_lsp_pool::lsp_types::{GotoDefinitionResponse, Location, LocationLink, Range, Url};
use schemars::JsonSchema;
use serde::Serialize;

use crate::context::ToolContext;
use crate::error::ToolError;
use crate::lsp::position::{line_text, range_from_lsp};
use codeflow_workspace::{ProjectWorkspace, Scrubber, ServerText};

/// One location as tools return it: the client's path, 1-based start and end, and the text of
/// the start line (trimmed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Place {
    /// The file, as the client knows it (or a path outside the project).
    pub path: String,
    /// 1-based line of the start.
    pub line: u32,
    /// 1-based character of the start.
    pub character: u32,
    /// 1-based line of the end.
    pub end_line: u32,
    /// 1-based character of the end (exclusive).
    pub end_character: u32,
    /// The start line's text, trimmed.
    pub text: String,
}

/// A symbol at a place: the place's members, the symbol's `name` and its `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SymbolPlace {
    /// Where it is.
    #[serde(flatten)]
    pub place: Place,
    /// Its name.
    pub name: String,
    /// Its kind, lowercase.
    pub kind: String,
}

impl Place {
    /// `path:line:character  text`.
    pub fn render(&self) -> String {
        if self.text.is_empty() {
            format!("{}:{}:{}", self.path, self.line, self.character)
        } else {
            format!(
                "{}:{}:{}  {}",
                self.path, self.line, self.character, self.text
            )
        }
    }

    /// This place as the place of symbol `name` of `kind`.
    pub fn symbol(self, name: &str, kind: &str) -> SymbolPlace {
        SymbolPlace {
            place: self,
            name: name.to_owned(),
            kind: kind.to_owned(),
        }
    }
}

/// Renders places one per line.
pub fn render_places(places: &[Place]) -> String {
    places
        .iter()
        .map(Place::render)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where a URI from a language server points.
#[derive(Debug, Clone)]
pub enum FileRef {
    /// A file of the project: its client path and mirror path.
    Project {
        /// The caller's path.
        client: String,
        /// The mirror's path.
        mirror: MirrorPath,
    },
    /// A file outside the project on the server's disk (library sources, system headers).
    Outside(PathBuf),
}

/// Translates a language server's answers for one tool call, caching file texts.
pub struct Locator {
    workspace: Arc<ProjectWorkspace>,
    ctx: ToolContext,
    client_root: String,
    scrubber: Scrubber,
    texts: tokio::sync::Mutex<HashMap<PathBuf, Option<Arc<str>>>>,
}

impl std::fmt::Debug for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locator")
            .field("client_root", &self.client_root)
            .finish_non_exhaustive()
    }
}

impl Locator {
    /// A locator for `ctx`'s caller.
    pub async fn new(ctx: &ToolContext) -> Result<Self, ToolError> {
        let workspace = ctx.workspace().await?;
        let root = workspace.mirror.paths().mirror_path(&RelPath::root());
        let client_root = ctx.client_path(&workspace, &root);
        let scrubber = ctx.caller.scrubber(&workspace);
        Ok(Self {
            workspace,
            ctx: ctx.clone(),
            client_root,
            scrubber,
            texts: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The caller's project workspace.
    pub fn workspace(&self) -> &Arc<ProjectWorkspace> {
        &self.workspace
    }

    /// The client's project root.
    pub fn client_root(&self) -> &str {
        &self.client_root
    }

    /// Where `uri` points; `None` for URIs that are not files.
    pub fn file(&self, uri: &Url) -> Option<FileRef> {
        let path = uri.to_file_path().ok()?;
        Some(self.file_at(&path))
    }

    /// Where a server-side path points.
    pub fn file_at(&self, path: &Path) -> FileRef {
        match self.workspace.mirror.paths().parse_mirror(path) {
            Ok(mirror) => FileRef::Project {
                client: self.ctx.client_path(&self.workspace, &mirror),
                mirror,
            },
            Err(_) => FileRef::Outside(path.to_owned()),
        }
    }

    /// The path to show for `uri`: the client's path for project files, else the server-side
    /// path (never one inside the mirror).
    pub fn display_path(&self, uri: &Url) -> String {
        match self.file(uri) {
            Some(FileRef::Project { client, .. }) => client,
            Some(FileRef::Outside(path)) => self.scrub(&path.to_string_lossy()),
            None => self.scrub(uri.as_str()),
        }
    }

    /// The client path of a mirror path.
    pub fn client_path(&self, mirror: &MirrorPath) -> String {
        self.ctx.client_path(&self.workspace, mirror)
    }

    /// The text of the file behind `uri` (from the mirror for project files), cached for this
    /// call. `None` when it cannot be read.
    pub async fn text(&self, uri: &Url) -> Option<Arc<str>> {
        let path = uri.to_file_path().ok()?;
        let mut texts = self.texts.lock().await;
        if let Some(cached) = texts.get(&path) {
            return cached.clone();
        }
        let text: Option<Arc<str>> = match self.file_at(&path) {
            FileRef::Project { mirror, .. } => self
                .workspace
                .mirror
                .read(&mirror)
                .await
                .ok()
                .map(|b| Arc::from(String::from_utf8_lossy(&b).as_ref())),
            FileRef::Outside(p) => tokio::fs::read_to_string(&p).await.ok().map(Arc::from),
        };
        texts.insert(path, text.clone());
        text
    }

    /// A place for `range` in `uri`.
    pub async fn place(&self, uri: &Url, range: Range) -> Place {
        let text = self.text(uri).await;
        let (start, end) = range_from_lsp(text.as_deref(), range);
        let line = text
            .as_deref()
            .and_then(|t| line_text(t, range.start.line))
            .map(|l| l.trim().to_owned())
            .unwrap_or_default();
        Place {
            path: self.display_path(uri),
            line: start.line,
            character: start.character,
            end_line: end.line,
            end_character: end.character,
            text: line,
        }
    }

    /// Where `location` is, in the caller's paths, with its line's text.
    pub async fn location(&self, location: &Location) -> Place {
        self.place(&location.uri, location.range).await
    }

    /// A link's target (its selection range: the name, not the whole body).
    pub async fn link(&self, link: &LocationLink) -> Place {
        self.place(&link.target_uri, link.target_selection_range)
            .await
    }

    /// Every location of a definition-style answer, deduplicated, in the server's order.
    pub async fn definition(&self, response: Option<GotoDefinitionResponse>) -> Vec<Place> {
        let mut places = Vec::new();
        match response {
            None => {}
            Some(GotoDefinitionResponse::Scalar(l)) => places.push(self.location(&l).await),
            Some(GotoDefinitionResponse::Array(ls)) => {
                for l in &ls {
                    places.push(self.location(l).await);
                }
            }
            Some(GotoDefinitionResponse::Link(links)) => {
                for l in &links {
                    places.push(self.link(l).await);
                }
            }
        }
        dedup(places)
    }

    /// Every location of a list, deduplicated.
    pub async fn locations(&self, locations: &[Location]) -> Vec<Place> {
        let mut places = Vec::with_capacity(locations.len());
        for l in locations {
            places.push(self.location(l).await);
        }
        dedup(places)
    }

    /// Free text a language server wrote (hover, messages, titles), scrubbed of the mirror
    /// (see [`codeflow_workspace::server_text`]).
    pub fn server_text(&self, text: &str) -> ServerText {
        self.scrubber.text(text)
    }

    /// `text` scrubbed of the mirror, for a server-side path or URI shown as it is.
    pub fn scrub(&self, text: &str) -> String {
        self.scrubber.scrub(text)
    }

    /// The scrubber of this call's server-written text.
    pub fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }
}

/// Drops repeated places, keeping the first of each.
pub fn dedup(places: Vec<Place>) -> Vec<Place> {
    let mut seen = std::collections::HashSet::new();
    places
        .into_iter()
        .filter(|p| seen.insert((p.path.clone(), p.line, p.character)))
        .collect()
}
