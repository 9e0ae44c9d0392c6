//! Symbols by name path (`Class/method`): each symbol of a file with the names of the symbols
//! that enclose it, and the lines it spans as an editor would cut them.
//!
//! A symbol's path is its enclosing symbols' names, outermost first, then its own. It comes
//! from the ranges (a symbol encloses another when its range contains the other's), which works
//! the same for a server's nested tree and for a flat list that names only the direct parent
//! (pylsp). A Go method named with its receiver (`(*Tree).newPipeline`) has the path
//! `Tree/newPipeline`.
//!
//! A name path matches a symbol when it is a suffix of the symbol's path (`method` and
//! `Class/method` both match `Class/method`); one starting with `/` must be the whole path.

use codeflow_lsp_pool::lsp_types::{Position, Range};

use crate::error::ToolError;
use crate::lsp::position::line_text;
use crate::lsp::symbols::{FlatSymbol, split_qualified};

/// A symbol with its path.
#[derive(Debug, Clone, PartialEq)]
pub struct PathSymbol {
    /// The symbol as the server gave it.
    pub symbol: FlatSymbol,
    /// Enclosing symbols' names, outermost first, then the symbol's own (bare) name.
    pub path: Vec<String>,
}

impl PathSymbol {
    /// `Class/method`.
    pub fn name_path(&self) -> String {
        self.path.join("/")
    }

    /// How deep it is (0: top level).
    pub fn depth(&self) -> usize {
        self.path.len().saturating_sub(1)
    }
}

fn contains(outer: &Range, inner: &Range) -> bool {
    let le = |a: Position, b: Position| (a.line, a.character) <= (b.line, b.character);
    le(outer.start, inner.start) && le(inner.end, outer.end) && outer != inner
}

/// Every symbol of a file with its path, in the server's order (parents before children).
pub fn with_paths(symbols: &[FlatSymbol]) -> Vec<PathSymbol> {
    let mut out = Vec::with_capacity(symbols.len());
    for s in symbols {
        if s.used_here {
            continue;
        }
        let mut ancestors: Vec<&FlatSymbol> = symbols
            .iter()
            .filter(|o| !o.used_here && contains(&o.range, &s.range))
            .collect();
        // Outermost first: the larger range encloses the smaller.
        ancestors.sort_by_key(|o| {
            (
                o.range.start.line,
                o.range.start.character,
                std::cmp::Reverse((o.range.end.line, o.range.end.character)),
            )
        });
        let mut path: Vec<String> = ancestors.iter().map(|o| enclosing_name(&o.name)).collect();
        if path.is_empty() && !s.container.is_empty() {
            path = s.container.clone();
        }
        let (qualifier, bare) = match s.name.rsplit_once("::") {
            // clangd names an out-of-line member `Circle::area`.
            Some((q, b)) if !q.is_empty() && !b.is_empty() => (Some(q.replace("::", "/")), b),
            _ => split_qualified(&s.name),
        };
        if path.is_empty()
            && let Some(q) = qualifier
        {
            path.push(q);
        }
        path.push(bare.to_owned());
        out.push(PathSymbol {
            symbol: s.clone(),
            path,
        });
    }
    out
}

/// The name an enclosing symbol gives the symbols inside it: rust-analyzer's `impl Circle`,
/// `impl Shape for Circle` and `impl<T> Stack<T>` are `Circle`, `Circle` and `Stack`; a Go
/// receiver-qualified or dotted name its last part.
pub(crate) fn enclosing_name(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("impl") {
        let rest = rest.trim_start();
        // Generic parameters right after `impl`.
        let rest = if rest.starts_with('<') {
            let mut depth = 0usize;
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                match c {
                    '<' => depth += 1,
                    '>' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            rest[end..].trim_start()
        } else {
            rest
        };
        let ty = rest.rsplit_once(" for ").map_or(rest, |(_, ty)| ty);
        let ty = ty.split('<').next().unwrap_or(ty).trim();
        let ty = ty.rsplit("::").next().unwrap_or(ty);
        if !ty.is_empty() && (name.starts_with("impl ") || name.starts_with("impl<")) {
            return ty.to_owned();
        }
    }
    split_qualified(name).1.to_owned()
}

/// The symbols of a file's text at `rel` with their paths, without the names its imports bring
/// in (pylsp lists `from m import Circle` as a class `Circle`).
pub fn document_paths(text: &str, rel: &str, symbols: &[FlatSymbol]) -> Vec<PathSymbol> {
    let python = rel.ends_with(".py") || rel.ends_with(".pyi");
    let index = codeflow_workspace::LineIndex::new(text);
    let declared: Vec<FlatSymbol> = symbols
        .iter()
        .filter(|s| {
            !python
                || !index.line(s.range.start.line).is_some_and(|l| {
                    let l = l.trim_start();
                    l.starts_with("import ") || (l.starts_with("from ") && l.contains(" import "))
                })
        })
        .cloned()
        .collect();
    with_paths(&declared)
}

/// The parts of a name path, and whether it is absolute (`/Class/method`).
pub fn parse(name_path: &str) -> Result<(Vec<&str>, bool), ToolError> {
    let absolute = name_path.starts_with('/');
    let parts: Vec<&str> = name_path
        .trim_matches('/')
        .split('/')
        .map(str::trim)
        .collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ToolError::InvalidArguments(format!(
            "name_path `{name_path}` has an empty part; write it as `Class/method` (or `/Class/method` from the top level)"
        )));
    }
    Ok((parts, absolute))
}

/// Whether `symbol` is named by `parts` (see the module docs); with `substring`, the last part
/// only needs to be contained in the symbol's name.
pub fn matches(symbol: &PathSymbol, parts: &[&str], absolute: bool, substring: bool) -> bool {
    if parts.len() > symbol.path.len() || (absolute && parts.len() != symbol.path.len()) {
        return false;
    }
    let tail = &symbol.path[symbol.path.len() - parts.len()..];
    let last = parts.len() - 1;
    tail.iter().zip(parts).enumerate().all(|(i, (have, want))| {
        if i == last && substring {
            have.to_lowercase().contains(&want.to_lowercase())
        } else {
            have == want
        }
    })
}

/// The one symbol `name_path` names in `file`: an error listing the candidates when several
/// match, or the file's name paths when none does.
pub fn find_one<'a>(
    symbols: &'a [PathSymbol],
    name_path: &str,
    file: &str,
) -> Result<&'a PathSymbol, ToolError> {
    let (parts, absolute) = parse(name_path)?;
    let mut found: Vec<&PathSymbol> = symbols
        .iter()
        .filter(|s| matches(s, &parts, absolute, false))
        .collect();
    found.dedup_by(|a, b| a.symbol.range == b.symbol.range);
    match found.len() {
        1 => Ok(found[0]),
        0 => {
            let mut known: Vec<String> = symbols
                .iter()
                .filter(|s| s.depth() <= 1)
                .map(PathSymbol::name_path)
                .collect();
            known.dedup();
            let shown: Vec<String> = known.iter().take(40).cloned().collect();
            Err(
                ToolError::failed(format!("no symbol `{name_path}` in {file}")).with_suggestion(
                    if shown.is_empty() {
                        "the language server reports no symbols in this file".to_owned()
                    } else {
                        format!("name paths in this file: {}", shown.join(", "))
                    },
                ),
            )
        }
        n => {
            let listed: Vec<String> = found
                .iter()
                .map(|s| {
                    format!(
                        "{} ({}, line {})",
                        s.name_path(),
                        s.symbol.kind_label(),
                        s.symbol.range.start.line + 1
                    )
                })
                .collect();
            Err(ToolError::failed(format!(
                "`{name_path}` names {n} symbols in {file}: {}",
                listed.join("; ")
            ))
            .with_suggestion(
                "give more of the path (`Class/method`, or `/Class/method` from the top level)",
            ))
        }
    }
}

/// Where a symbol stands in its file's text, as an editor cuts it (0-based lines; LSP
/// positions).
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The first line: the symbol's, or its first decorator's (Python `@…` lines above it).
    pub start_line: u32,
    /// Where the symbol starts on that line (UTF-16).
    pub start: Position,
    /// Where it ends (a range ending at the start of a line ends at the end of the line
    /// before).
    pub end: Position,
    /// Only whitespace precedes it on its first line: edits take whole lines.
    pub whole_lines: bool,
    /// The whitespace before it on its first line.
    pub indent: String,
}

/// The span of `symbol` in `text` (a file at `rel`, for language rules such as decorators).
pub fn span(text: &str, rel: &str, symbol: &FlatSymbol) -> Span {
    let mut start = symbol.range.start;
    if rel.ends_with(".py") || rel.ends_with(".pyi") {
        while start.line > 0 {
            let Some(above) = line_text(text, start.line - 1) else {
                break;
            };
            if above.trim_start().starts_with('@') {
                start = Position::new(
                    start.line - 1,
                    codeflow_workspace::utf16_len(&above[..above.len() - above.trim_start().len()]),
                );
            } else {
                break;
            }
        }
    }
    let mut end = symbol.range.end;
    if end.character == 0
        && end.line > start.line
        && let Some(before) = line_text(text, end.line - 1)
    {
        end = Position::new(end.line - 1, codeflow_workspace::utf16_len(before));
    }
    let first = line_text(text, start.line).unwrap_or_default();
    let leading = codeflow_workspace::utf16_slice(first, 0, start.character);
    let whole_lines = leading.chars().all(char::is_whitespace);
    Span {
        start_line: start.line,
        start,
        end,
        whole_lines,
        indent: if whole_lines {
            leading.to_owned()
        } else {
            first
                .chars()
                .take_while(|c| c.is_whitespace())
                .collect::<String>()
        },
    }
}

/// The symbol's text (decorators included).
pub fn body_text(text: &str, span: &Span) -> String {
    let index = codeflow_workspace::LineIndex::new(text);
    let mut out = Vec::new();
    for line0 in span.start_line..=span.end.line {
        let Some(line) = index.line(line0) else {
            break;
        };
        let from = if line0 == span.start_line && !span.whole_lines {
            span.start.character
        } else {
            0
        };
        let to = if line0 == span.end.line {
            span.end.character
        } else {
            codeflow_workspace::utf16_len(line)
        };
        out.push(codeflow_workspace::utf16_slice(line, from, to.max(from)).to_owned());
    }
    out.join("\n")
}

/// `body` as it will stand at a symbol indented by `indent`: without trailing blank lines, and
/// with `indent` before each non-empty line unless the body is indented that way already.
pub fn indent_body(body: &str, indent: &str) -> String {
    let body = body.trim_end_matches(['\n', '\r', ' ', '\t']);
    let body = body.trim_start_matches(['\n', '\r']);
    if indent.is_empty() {
        return body.to_owned();
    }
    let already = body
        .lines()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.starts_with(indent));
    if already {
        return body.to_owned();
    }
    body.lines()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                format!("{indent}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// How many blank lines stand right above line `line0` (at most 2): the spacing a new
/// neighbour gets.
pub fn blank_lines_above(text: &str, line0: u32) -> usize {
    let mut n = 0;
    let mut at = line0;
    while at > 0 && n < 2 {
        at -= 1;
        match line_text(text, at) {
            Some(l) if l.trim().is_empty() => n += 1,
            _ => break,
        }
    }
    n
}

/// A symbol as tools list it (1-based).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct SymbolRow {
    /// Enclosing symbols' names and its own, joined by `/`.
    pub name_path: String,
    /// Its name.
    pub name: String,
    /// Its kind, lowercase.
    pub kind: String,
    /// 1-based line of the name.
    pub line: u32,
    /// 1-based character of the name.
    pub character: u32,
    /// 1-based last line of the symbol.
    pub end_line: u32,
}

/// A symbol as tools list it.
pub fn symbol_row(s: &PathSymbol) -> SymbolRow {
    SymbolRow {
        name_path: s.name_path(),
        name: s.symbol.name.clone(),
        kind: s.symbol.kind_label().to_owned(),
        line: s.symbol.selection_range.start.line + 1,
        character: s.symbol.selection_range.start.character + 1,
        end_line: s.symbol.range.end.line + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codeflow_lsp_pool::lsp_types::SymbolKind;

    fn sym(name: &str, kind: SymbolKind, from: (u32, u32), to: (u32, u32)) -> FlatSymbol {
        let r = Range::new(Position::new(from.0, from.1), Position::new(to.0, to.1));
        FlatSymbol {
            name: name.into(),
            kind,
            detail: None,
            container: vec![],
            range: r,
            selection_range: r,
            used_here: false,
        }
    }

    #[test]
    fn paths_come_from_ranges_and_match_by_suffix() {
        let all = [
            sym("Circle", SymbolKind::CLASS, (0, 0), (5, 0)),
            sym("area", SymbolKind::METHOD, (2, 4), (4, 0)),
            sym("area", SymbolKind::FUNCTION, (6, 0), (7, 0)),
            sym("(*Tree).walk", SymbolKind::METHOD, (8, 0), (9, 0)),
        ];
        let p = with_paths(&all);
        assert_eq!(p[1].name_path(), "Circle/area");
        assert_eq!(p[3].name_path(), "Tree/walk");
        assert!(find_one(&p, "area", "f").is_err(), "two symbols named area");
        assert_eq!(
            find_one(&p, "Circle/area", "f")
                .unwrap()
                .symbol
                .range
                .start
                .line,
            2
        );
        assert_eq!(
            find_one(&p, "/area", "f").unwrap().symbol.range.start.line,
            6
        );
        assert!(find_one(&p, "Tree/walk", "f").is_ok());
        let missing = find_one(&p, "Square", "f").unwrap_err().to_text();
        assert!(missing.contains("Circle/area"), "{missing}");
        assert!(parse("a//b").is_err());
    }

    #[test]
    fn impl_blocks_and_qualified_members_name_their_type() {
        assert_eq!(enclosing_name("impl Circle"), "Circle");
        assert_eq!(enclosing_name("impl Shape for Circle"), "Circle");
        assert_eq!(enclosing_name("impl<T: Clone> Stack<T>"), "Stack");
        assert_eq!(
            enclosing_name("impl<T> From<T> for crate::Wrapper<T>"),
            "Wrapper"
        );
        assert_eq!(enclosing_name("implement"), "implement");
        let all = [
            sym("impl Shape for Circle", SymbolKind::OBJECT, (0, 0), (5, 1)),
            sym("area", SymbolKind::METHOD, (1, 4), (3, 5)),
            sym("Circle::perimeter", SymbolKind::METHOD, (6, 0), (8, 1)),
        ];
        let p = with_paths(&all);
        assert_eq!(p[1].name_path(), "Circle/area");
        assert_eq!(p[2].name_path(), "Circle/perimeter");
        assert_eq!(p[0].name_path(), "impl Shape for Circle");
    }

    #[test]
    fn spans_take_decorators_and_whole_lines() {
        let text = "class A:\n    @property\n    def x(self):\n        return 1\n\ny = 2\n";
        let s = sym("x", SymbolKind::METHOD, (2, 4), (4, 0));
        let span = span(text, "a.py", &s);
        assert_eq!(span.start_line, 1);
        assert!(span.whole_lines);
        assert_eq!(span.indent, "    ");
        assert_eq!(span.end, Position::new(3, 16));
        assert_eq!(
            body_text(text, &span),
            "    @property\n    def x(self):\n        return 1"
        );
        assert_eq!(
            indent_body("def y(self):\n    return 2\n\n", "    "),
            "    def y(self):\n        return 2"
        );
        assert_eq!(
            indent_body("    def y(self):\n", "    "),
            "    def y(self):"
        );
        assert_eq!(blank_lines_above(text, 5), 1);
    }
}
