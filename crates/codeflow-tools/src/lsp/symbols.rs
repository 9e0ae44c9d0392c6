//! Symbols by name: the file's `documentSymbol` tree flattened, exact name matches before
//! substring matches, an optional kind filter (a lowercase LSP kind name; an unknown one
//! gives a warning and searches every kind). The position of a symbol is its
//! `selectionRange.start` (the name, not the start of its body).

use codeflow_lsp_pool::ServerHandle;
use codeflow_lsp_pool::lsp_types::request::DocumentSymbolRequest;
use codeflow_lsp_pool::lsp_types::{
    DocumentSymbol, DocumentSymbolParams, DocumentSymbolResponse, Range, SymbolKind,
    TextDocumentIdentifier, Url,
};

use crate::error::ToolError;

/// One symbol of a file, out of its tree.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatSymbol {
    /// The symbol's name.
    pub name: String,
    /// Its LSP kind.
    pub kind: SymbolKind,
    /// The server's detail (a signature, a type), if any.
    pub detail: Option<String>,
    /// The enclosing symbols' names, outermost first.
    pub container: Vec<String>,
    /// The whole symbol (body included).
    pub range: Range,
    /// The name; its start is the position tools ask about.
    pub selection_range: Range,
    /// Not declared in the file: the name where the file uses it (found in the file's text),
    /// so the server is asked about what it refers to there.
    pub used_here: bool,
}

impl FlatSymbol {
    /// The lowercase kind name tools show (`reference` for a name the file only uses).
    pub fn kind_label(&self) -> &'static str {
        if self.used_here {
            "reference"
        } else {
            kind_name(self.kind)
        }
    }
}

/// What a name lookup found.
#[derive(Debug, Clone, Default)]
pub struct SymbolMatches {
    /// The symbols found.
    pub symbols: Vec<FlatSymbol>,
    /// True when no name matched exactly and these are substring matches.
    pub substring: bool,
    /// Things the caller should tell the model (an unknown kind).
    pub warnings: Vec<String>,
}

/// Every LSP symbol kind by its lowercase name.
const KINDS: &[(&str, SymbolKind)] = &[
    ("file", SymbolKind::FILE),
    ("module", SymbolKind::MODULE),
    ("namespace", SymbolKind::NAMESPACE),
    ("package", SymbolKind::PACKAGE),
    ("class", SymbolKind::CLASS),
    ("method", SymbolKind::METHOD),
    ("property", SymbolKind::PROPERTY),
    ("field", SymbolKind::FIELD),
    ("constructor", SymbolKind::CONSTRUCTOR),
    ("enum", SymbolKind::ENUM),
    ("interface", SymbolKind::INTERFACE),
    ("function", SymbolKind::FUNCTION),
    ("variable", SymbolKind::VARIABLE),
    ("constant", SymbolKind::CONSTANT),
    ("string", SymbolKind::STRING),
    ("number", SymbolKind::NUMBER),
    ("boolean", SymbolKind::BOOLEAN),
    ("array", SymbolKind::ARRAY),
    ("object", SymbolKind::OBJECT),
    ("key", SymbolKind::KEY),
    ("null", SymbolKind::NULL),
    ("enum_member", SymbolKind::ENUM_MEMBER),
    ("struct", SymbolKind::STRUCT),
    ("event", SymbolKind::EVENT),
    ("operator", SymbolKind::OPERATOR),
    ("type_parameter", SymbolKind::TYPE_PARAMETER),
];

/// The lowercase name of a kind (`function`, `enum_member`, …).
pub fn kind_name(kind: SymbolKind) -> &'static str {
    KINDS
        .iter()
        .find(|(_, k)| *k == kind)
        .map_or("unknown", |(n, _)| n)
}

/// The kind named `name` (case-insensitive; `enummember` and `enum-member` also work).
pub fn kind_from_name(name: &str) -> Option<SymbolKind> {
    let wanted: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    KINDS
        .iter()
        .find(|(n, _)| n.replace('_', "") == wanted)
        .map(|(_, k)| *k)
}

/// The names accepted for `symbol_kind`, for schemas and messages.
pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|(n, _)| *n).collect()
}

/// The tree (or flat list) flattened, parents before children.
pub fn flatten(response: Option<DocumentSymbolResponse>) -> Vec<FlatSymbol> {
    fn walk(symbol: DocumentSymbol, container: &mut Vec<String>, out: &mut Vec<FlatSymbol>) {
        out.push(FlatSymbol {
            name: symbol.name.clone(),
            kind: symbol.kind,
            detail: symbol.detail.clone().filter(|d| !d.is_empty()),
            container: container.clone(),
            range: symbol.range,
            selection_range: symbol.selection_range,
            used_here: false,
        });
        container.push(symbol.name);
        let mut children = symbol.children.unwrap_or_default();
        in_source_order(&mut children, |c| c.range);
        for child in children {
            walk(child, container, out);
        }
        container.pop();
    }
    let mut out = Vec::new();
    match response {
        None => {}
        Some(DocumentSymbolResponse::Nested(mut symbols)) => {
            in_source_order(&mut symbols, |s| s.range);
            for s in symbols {
                walk(s, &mut Vec::new(), &mut out);
            }
        }
        Some(DocumentSymbolResponse::Flat(mut symbols)) => {
            in_source_order(&mut symbols, |s| s.location.range);
            for s in symbols {
                out.push(FlatSymbol {
                    name: s.name,
                    kind: s.kind,
                    detail: None,
                    container: s.container_name.into_iter().collect(),
                    range: s.location.range,
                    selection_range: s.location.range,
                    used_here: false,
                });
            }
        }
    }
    out
}

/// Symbols in the order the file declares them: typescript-language-server lists a file's
/// symbols (and each one's members) by name, so an outline cut at `max_results` kept the
/// alphabetically first rather than the first in the file.
fn in_source_order<T>(symbols: &mut [T], range: impl Fn(&T) -> Range) {
    symbols.sort_by_key(|s| {
        let r = range(s);
        (r.start.line, r.start.character)
    });
}

/// A flat `SymbolInformation` has only the whole symbol's range (pylsp's starts at `def`);
/// point its selection at the name itself, the first whole-word occurrence in the range, so
/// requests at `selectionRange.start` land on the name.
pub fn refine_selection(text: &str, symbol: &mut FlatSymbol) {
    if symbol.selection_range != symbol.range {
        return;
    }
    let name = symbol
        .name
        .rsplit(['.', ':'])
        .next()
        .unwrap_or(&symbol.name);
    if name.is_empty() {
        return;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let first = symbol.range.start.line;
    let last = symbol.range.end.line.max(first).min(first + 50);
    for line0 in first..=last {
        let Some(line) = crate::lsp::position::line_text(text, line0) else {
            return;
        };
        let from_utf16 = if line0 == first {
            symbol.range.start.character
        } else {
            0
        };
        let mut units = 0u32;
        for (byte, c) in line.char_indices() {
            if units >= from_utf16
                && line[byte..].starts_with(name)
                && !line[..byte].chars().next_back().is_some_and(is_word)
                && !line[byte + name.len()..]
                    .chars()
                    .next()
                    .is_some_and(is_word)
            {
                let width = codeflow_workspace::utf16_len(name);
                symbol.selection_range = Range::new(
                    codeflow_lsp_pool::lsp_types::Position::new(line0, units),
                    codeflow_lsp_pool::lsp_types::Position::new(line0, units + width),
                );
                return;
            }
            units += c.len_utf16() as u32;
        }
    }
}

/// Asks `server` for the document's symbols, flattened.
pub async fn document_symbols(
    server: &ServerHandle,
    uri: &Url,
) -> Result<Vec<FlatSymbol>, ToolError> {
    let response = server
        .request::<DocumentSymbolRequest>(DocumentSymbolParams {
            text_document: TextDocumentIdentifier::new(uri.clone()),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
        })
        .await
        .map_err(crate::lsp::lsp_error)?;
    Ok(flatten(response))
}

/// Symbols named `name`: exact matches if any, else those whose name contains `name`; of
/// kind `kind` when given and known.
pub fn find_by_name(symbols: &[FlatSymbol], name: &str, kind: Option<&str>) -> SymbolMatches {
    let mut warnings = Vec::new();
    let kind = match kind.map(str::trim).filter(|k| !k.is_empty()) {
        None => None,
        Some(k) => match kind_from_name(k) {
            Some(kind) => Some(kind),
            None => {
                warnings.push(format!(
                    "unknown symbol_kind `{k}`; searched all kinds (known: {})",
                    kind_names().join(", ")
                ));
                None
            }
        },
    };
    let of_kind = |s: &&FlatSymbol| kind.is_none_or(|k| s.kind == k);
    let mut exact: Vec<FlatSymbol> = symbols
        .iter()
        .filter(of_kind)
        .filter(|s| s.name == name)
        .cloned()
        .collect();
    if exact.is_empty() {
        // `newPipeline` for Go's `(*Tree).newPipeline`, `Tree.newPipeline` for either; Rust's
        // and C++'s `Error::new` as `Error.new`.
        let dotted = name.replace("::", ".");
        exact = symbols
            .iter()
            .filter(of_kind)
            .filter(|s| same_name(s, &dotted))
            .cloned()
            .collect();
    }
    if !exact.is_empty() {
        return SymbolMatches {
            symbols: exact,
            substring: false,
            warnings,
        };
    }
    let lower = name.to_lowercase();
    let partial = symbols
        .iter()
        .filter(of_kind)
        .filter(|s| !name.is_empty() && s.name.to_lowercase().contains(&lower))
        .cloned()
        .collect();
    SymbolMatches {
        symbols: partial,
        substring: true,
        warnings,
    }
}

/// `(*Tree).newPipeline`, `Tree.newPipeline` → (`Some("Tree")`, `newPipeline`); a plain name →
/// (`None`, it).
pub(crate) fn split_qualified(name: &str) -> (Option<String>, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 && i + 1 < name.len() => {
            let qualifier: String = name[..i]
                .chars()
                .filter(|c| !matches!(c, '(' | ')' | '*' | '&' | ' '))
                .collect();
            (Some(qualifier), &name[i + 1..])
        }
        _ => (None, name),
    }
}

/// Whether `symbol` is the one `wanted` names, allowing for qualification: a bare name matches
/// a receiver- or class-qualified symbol (`newPipeline` ~ `(*Tree).newPipeline`), and a
/// qualified name matches a symbol whose own qualifier, or enclosing symbol, agrees
/// (`Tree.newPipeline` ~ `(*Tree).newPipeline`, or `newPipeline` inside `Tree`).
fn same_name(symbol: &FlatSymbol, wanted: &str) -> bool {
    let (own_qualifier, own) = split_qualified(&symbol.name);
    let (wanted_qualifier, bare) = split_qualified(wanted);
    if own != bare || bare.is_empty() {
        return false;
    }
    let Some(wanted_qualifier) = wanted_qualifier else {
        return true;
    };
    let qualifier = own_qualifier.or_else(|| {
        (!symbol.container.is_empty()).then(|| {
            // rust-analyzer's `impl Error` / `impl FromStr for Version` name their type.
            symbol
                .container
                .iter()
                .map(|c| crate::lsp::name_path::enclosing_name(c))
                .collect::<Vec<_>>()
                .join(".")
                .chars()
                .filter(|c| !matches!(c, '(' | ')' | '*' | '&' | ' '))
                .collect()
        })
    });
    qualifier.is_some_and(|q| q == wanted_qualifier || q.ends_with(&format!(".{wanted_qualifier}")))
}

/// Where the file uses `name` (its bare form, as a whole word), for a name its outline does
/// not declare: the use the server is asked about. A call (`name(`) or member access
/// (`name.`) outside an import line is preferred, then any use outside an import line, then
/// any; lines that are comments are skipped.
/// A qualified name (`driver.Value`, `z.string`) prefers a use written with its qualifier
/// (the position is then on the bare name) over the bare name alone elsewhere (a method
/// `Value` declared in the file is not the package's `driver.Value`).
pub fn find_use(text: &str, name: &str) -> Option<Range> {
    let dotted = name.replace("::", ".");
    let (qualifier, bare) = split_qualified(&dotted);
    // The qualifier as written before the name: `driver.`, `ErrorKind::` (`(*Tree).walk` has
    // none a use would write, so its bare name is looked for as before).
    let written = name
        .rfind("::")
        .map(|i| &name[..i + 2])
        .or_else(|| name.rfind('.').map(|i| &name[..=i]))
        .filter(|q| {
            qualifier.is_some()
                && q.chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '.' | ':'))
        });
    if bare.is_empty()
        || !bare
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
    {
        return None;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    // (rank, line, utf-16 column): lower rank is better.
    let mut best: Option<(u8, u32, u32)> = None;
    // The quotes of the Python docstring (or other triple-quoted string) the line is in.
    let mut in_triple: Option<&str> = None;
    for (line0, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(quote) = in_triple {
            if line.contains(quote) {
                in_triple = None;
            }
            continue;
        }
        if let Some(quote) = ["\"\"\"", "'''"]
            .into_iter()
            .find(|q| line.matches(q).count() % 2 == 1)
        {
            in_triple = Some(quote);
        }
        if ["//", "#", "/*", "*", "--", "\"\"\"", "'''"]
            .iter()
            .any(|c| trimmed.starts_with(c))
            && !trimmed.starts_with("#include")
        {
            continue;
        }
        let import_line = [
            "import ", "from ", "export {", "#include", "use ", "require(",
        ]
        .iter()
        .any(|k| trimmed.starts_with(k))
            || trimmed.contains(" require(");
        let mut units = 0u32;
        for (byte, c) in line.char_indices() {
            if line[byte..].starts_with(bare)
                && !line[..byte].chars().next_back().is_some_and(is_word)
                && !line[byte + bare.len()..]
                    .chars()
                    .next()
                    .is_some_and(is_word)
            {
                let after = line[byte + bare.len()..].trim_start();
                let unqualified = written.is_some_and(|q| {
                    !line[..byte].ends_with(q)
                        || line[..byte - q.len()]
                            .chars()
                            .next_back()
                            .is_some_and(is_word)
                });
                let rank = match (
                    import_line,
                    after.starts_with('(') || after.starts_with('.'),
                ) {
                    (false, true) => 0,
                    (false, false) => 1,
                    (true, _) => 2,
                } + if unqualified { 3 } else { 0 };
                if best.is_none_or(|(r, _, _)| rank < r) {
                    best = Some((rank, line0 as u32, units));
                }
                if rank == 0 {
                    break;
                }
            }
            units += c.len_utf16() as u32;
        }
        if best.is_some_and(|(r, _, _)| r == 0) {
            break;
        }
    }
    let (_, line, column) = best?;
    let width = codeflow_workspace::utf16_len(bare);
    Some(Range::new(
        codeflow_lsp_pool::lsp_types::Position::new(line, column),
        codeflow_lsp_pool::lsp_types::Position::new(line, column + width),
    ))
}

/// Most names an error for a name that matched nothing lists.
const NAMES_LISTED: usize = 30;

/// The error for a name that matched nothing, listing what the file does have: names like the
/// one asked for first, then the file's top-level declarations, then the rest (nested ones,
/// names only used here), each group alphabetical; and how many were left out.
pub fn not_found(name: &str, kind: Option<&str>, file: &str, symbols: &[FlatSymbol]) -> ToolError {
    let wanted = name
        .rsplit(['.', ':'])
        .next()
        .unwrap_or(name)
        .to_lowercase();
    // (group, distance): names like the one asked for first, nearest first.
    let rank = |s: &FlatSymbol| {
        let lower = s.name.to_lowercase();
        let bare = lower.rsplit(['.', ':', ')', ' ']).next().unwrap_or(&lower);
        let distance = strsim::damerau_levenshtein(bare, &wanted);
        if !wanted.is_empty()
            && (lower.contains(&wanted)
                || wanted.contains(bare)
                // A typo: a letter or two off (`Prase` for `Parse`).
                || distance <= wanted.chars().count().min(8) / 4)
        {
            (0, distance)
        } else if s.container.is_empty() && !s.used_here {
            (1, 0)
        } else {
            (2, 0)
        }
    };
    let mut names: Vec<((u8, usize), &str)> =
        symbols.iter().map(|s| (rank(s), s.name.as_str())).collect();
    names.sort_unstable();
    // One entry per name, at its best rank.
    let mut seen = std::collections::HashSet::new();
    names.retain(|(_, n)| seen.insert(*n));
    let mut shown = names
        .iter()
        .take(NAMES_LISTED)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > NAMES_LISTED {
        shown.push_str(&format!(" … and {} more", names.len() - NAMES_LISTED));
    }
    let kind = kind.map(|k| format!(" of kind `{k}`")).unwrap_or_default();
    ToolError::failed(format!("no symbol named `{name}`{kind} in {file}"))
        .with_suggestion(if names.is_empty() {
            "the language server reports no symbols in this file; check the path, or use search_workspace_symbols".to_owned()
        } else {
            format!("symbols in this file: {shown}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use codeflow_lsp_pool::lsp_types::Position;

    fn sym(name: &str, kind: SymbolKind) -> FlatSymbol {
        let r = Range::new(Position::new(0, 0), Position::new(0, 1));
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
    fn exact_before_substring_and_kinds() {
        let all = [
            sym("add", SymbolKind::FUNCTION),
            sym("add_all", SymbolKind::FUNCTION),
            sym("Adder", SymbolKind::CLASS),
        ];
        let m = find_by_name(&all, "add", None);
        assert_eq!(m.symbols.len(), 1);
        assert!(!m.substring);
        let m = find_by_name(&all, "add", Some("class"));
        assert!(m.substring);
        assert_eq!(m.symbols[0].name, "Adder");
        let m = find_by_name(&all, "add", Some("gizmo"));
        assert_eq!(m.symbols.len(), 1);
        assert_eq!(m.warnings.len(), 1);
        assert_eq!(kind_from_name("EnumMember"), Some(SymbolKind::ENUM_MEMBER));
        assert_eq!(kind_name(SymbolKind::TYPE_PARAMETER), "type_parameter");
    }

    #[test]
    fn receiver_qualified_names_match_their_method() {
        let mut inner = sym("newPipeline", SymbolKind::METHOD);
        inner.container = vec!["Tree".into()];
        let all = [
            sym("(*Tree).newPipeline", SymbolKind::METHOD),
            sym("(Circle).Area", SymbolKind::METHOD),
            sym("Scale", SymbolKind::FUNCTION),
        ];
        for wanted in ["newPipeline", "(*Tree).newPipeline", "Tree.newPipeline"] {
            let m = find_by_name(&all, wanted, None);
            assert_eq!(m.symbols.len(), 1, "{wanted}");
            assert!(!m.substring, "{wanted}");
            assert_eq!(m.symbols[0].name, "(*Tree).newPipeline");
        }
        assert!(
            find_by_name(&all, "Other.newPipeline", None)
                .symbols
                .is_empty()
        );
        let m = find_by_name(std::slice::from_ref(&inner), "Tree.newPipeline", None);
        assert_eq!(m.symbols.len(), 1);
        assert!(!m.substring);
    }

    #[test]
    fn a_use_is_found_in_the_text() {
        let text = "import { hashKey } from './utils'\n// hashKey here\nconst k = hashKey(x)\n";
        let r = find_use(text, "hashKey").unwrap();
        assert_eq!(
            (r.start.line, r.start.character, r.end.character),
            (2, 10, 17)
        );
        assert_eq!(
            find_use("import { a } from 'b'\n", "a").unwrap().start.line,
            0
        );
        assert!(find_use("const hashKeys = 1\n", "hashKey").is_none());
        assert!(find_use("x\n", "a b").is_none());
        // Words of a docstring are not uses.
        let text = "def assoc(inst):\n    \"\"\"\n    Unlike `evolve` it copies.\n    \"\"\"\n    return evolve(inst)\n";
        let r = find_use(text, "evolve").unwrap();
        assert_eq!((r.start.line, r.start.character), (4, 11));
        assert!(find_use("def f():\n    '''\n    see evolve\n    '''\n", "evolve").is_none());
    }

    #[test]
    fn a_qualified_use_is_preferred_to_the_bare_name() {
        // Go: the method `Value` is declared first; `driver.Value` is the package's type.
        let text = "func (u UUID) Value() (driver.Value, error) {\n\treturn xdriver.Value(1)\n}\n";
        let r = find_use(text, "driver.Value").unwrap();
        assert_eq!(
            (r.start.line, r.start.character, r.end.character),
            (0, 30, 35)
        );
        // Without a qualified use, the bare name is still found.
        let r = find_use("func f() { Value(1) }\n", "driver.Value").unwrap();
        assert_eq!((r.start.line, r.start.character), (0, 11));
        // A receiver-qualified Go method keeps looking for its bare name.
        let r = find_use("t.walk(x)\n", "(*Tree).walk").unwrap();
        assert_eq!((r.start.line, r.start.character), (0, 2));
        // Rust paths: the variant where it is written with its enum.
        let text = "fn new(kind: ErrorKind) {}\nErr(Error::new(ErrorKind::Empty))\n";
        let r = find_use(text, "ErrorKind::Empty").unwrap();
        assert_eq!(
            (r.start.line, r.start.character, r.end.character),
            (1, 26, 31)
        );
        let r = find_use(text, "Error::new").unwrap();
        assert_eq!((r.start.line, r.start.character), (1, 11));
    }

    #[test]
    fn an_outline_listed_by_name_is_put_in_source_order() {
        #[allow(deprecated)]
        let node = |name: &str, line: u32, children: Vec<DocumentSymbol>| DocumentSymbol {
            name: name.into(),
            detail: None,
            kind: SymbolKind::FUNCTION,
            tags: None,
            deprecated: None,
            range: Range::new(Position::new(line, 0), Position::new(line + 5, 0)),
            selection_range: Range::new(Position::new(line, 0), Position::new(line, 1)),
            children: Some(children),
        };
        let tree = vec![
            node("allKeys", 40, vec![]),
            node("Zed", 2, vec![node("b", 4, vec![]), node("a", 3, vec![])]),
        ];
        let names: Vec<String> = flatten(Some(DocumentSymbolResponse::Nested(tree)))
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["Zed", "a", "b", "allKeys"]);
    }

    #[test]
    fn rust_paths_match_methods_of_impl_blocks() {
        let mut new = sym("new", SymbolKind::FUNCTION);
        new.container = vec!["impl Error".into()];
        let mut parse = sym("parse", SymbolKind::FUNCTION);
        parse.container = vec!["impl FromStr for Version".into()];
        let all = [sym("impl Error", SymbolKind::OBJECT), new, parse];
        let m = find_by_name(&all, "Error::new", None);
        assert_eq!(m.symbols.len(), 1);
        assert!(!m.substring);
        assert_eq!(m.symbols[0].name, "new");
        let m = find_by_name(&all, "Version::parse", None);
        assert_eq!(m.symbols.len(), 1);
        assert_eq!(m.symbols[0].name, "parse");
        assert!(find_by_name(&all, "Other::new", None).symbols.is_empty());
    }

    #[test]
    fn a_missing_name_lists_similar_names_then_declarations_and_counts_the_rest() {
        let mut symbols = vec![
            sym("zeta", SymbolKind::FUNCTION),
            sym("parse_args", SymbolKind::FUNCTION),
            sym("Alpha", SymbolKind::CLASS),
        ];
        let mut local = sym("aaa_local", SymbolKind::VARIABLE);
        local.container = vec!["zeta".into()];
        symbols.push(local);
        for i in 0..40 {
            let mut nested = sym(&format!("n{i:02}"), SymbolKind::VARIABLE);
            nested.container = vec!["Alpha".into()];
            symbols.push(nested);
        }
        let error = not_found("Parse", None, "app.py", &symbols).to_text();
        assert!(
            error.contains("symbols in this file: parse_args, Alpha, zeta, aaa_local, n00,"),
            "{error}"
        );
        assert!(error.ends_with(" … and 14 more"), "{error}");
        // A typo lists the name it missed first.
        symbols.push(sym("Parse", SymbolKind::FUNCTION));
        let error = not_found("Prase", None, "app.py", &symbols).to_text();
        assert!(
            error.contains("symbols in this file: Parse, Alpha,"),
            "{error}"
        );
        let error = not_found("parse_arsg", None, "app.py", &symbols).to_text();
        assert!(
            error.contains("symbols in this file: parse_args, Parse, Alpha,"),
            "{error}"
        );
    }
}
