//! One diagnostic as CodeFlow reports it, everywhere: `get_diagnostics` rows and the
//! `diagnostics` channel's events carry the same fields with the same 1-based positions
//! (characters counted as a person counts them, from the document's text when it is known).

use crate::server_text::{Scrubber, ServerText};
use crate::text::{LineIndex, from_lsp};
use codeflow_lsp_pool::lsp_types::{Diagnostic, DiagnosticSeverity, NumberOrString};

/// How bad a diagnostic is (a diagnostic without a severity is an error, as LSP says a client
/// may assume).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// An error.
    Error,
    /// A warning.
    Warning,
    /// Information.
    Information,
    /// A hint.
    Hint,
}

impl Severity {
    /// The severity of an LSP diagnostic.
    pub fn of(s: Option<DiagnosticSeverity>) -> Self {
        match s {
            Some(DiagnosticSeverity::WARNING) => Self::Warning,
            Some(DiagnosticSeverity::INFORMATION) => Self::Information,
            Some(DiagnosticSeverity::HINT) => Self::Hint,
            _ => Self::Error,
        }
    }

    /// `error`, `warning`, `information` or `hint`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Information => "information",
            Self::Hint => "hint",
        }
    }
}

/// `error`, `warning`, `information` or `hint` (a diagnostic without one is an error, as LSP
/// says a client may assume).
pub fn severity_name(s: Option<DiagnosticSeverity>) -> &'static str {
    Severity::of(s).name()
}

/// The diagnostic's code as text (`E0308`, `2345`).
pub fn code_text(d: &Diagnostic) -> Option<String> {
    d.code.as_ref().map(|c| match c {
        NumberOrString::Number(n) => n.to_string(),
        NumberOrString::String(s) => s.clone(),
    })
}

/// One diagnostic as tools and channels report it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct DiagnosticRow {
    /// How bad it is.
    pub severity: Severity,
    /// What the language server says (scrubbed of the mirror).
    pub message: ServerText,
    /// 1-based line of the start.
    pub line: u32,
    /// 1-based character of the start.
    pub character: u32,
    /// 1-based line of the end.
    pub end_line: u32,
    /// 1-based character of the end.
    pub end_character: u32,
    /// The start line's text, trimmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// What reported it (`Pyflakes`, `ts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The diagnostic's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// One diagnostic as a row: 1-based positions; `text` is the start line's text, trimmed, when
/// the document's `text` is known (without it, columns are UTF-16 units + 1). The message is
/// scrubbed of the mirror with `scrubber`.
pub fn diagnostic_row(text: Option<&str>, d: &Diagnostic, scrubber: &Scrubber) -> DiagnosticRow {
    let index = text.map(LineIndex::new);
    let line = |n: u32| index.as_ref().and_then(|i| i.line(n));
    let start = from_lsp(line(d.range.start.line), d.range.start);
    let end = from_lsp(line(d.range.end.line), d.range.end);
    DiagnosticRow {
        severity: Severity::of(d.severity),
        message: scrubber.text(&d.message),
        line: start.line,
        character: start.character,
        end_line: end.line,
        end_character: end.character,
        text: line(d.range.start.line).map(|content| content.trim().to_owned()),
        source: d.source.clone(),
        code: code_text(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codeflow_lsp_pool::lsp_types::{Position, Range};

    #[test]
    fn positions_are_one_based_characters() {
        let d = Diagnostic {
            range: Range::new(Position::new(0, 3), Position::new(0, 4)),
            severity: Some(DiagnosticSeverity::WARNING),
            code: Some(NumberOrString::Number(7)),
            source: Some("lint".into()),
            message: "m".into(),
            ..Default::default()
        };
        let none = Scrubber::new(std::path::Path::new("/m"), "/c");
        let row = serde_json::to_value(diagnostic_row(Some("a𝄞b\n"), &d, &none)).ok();
        assert_eq!(
            row,
            Some(
                serde_json::json!({"severity": "warning", "message": "m", "line": 1, "character": 3,
                   "end_line": 1, "end_character": 4, "text": "a𝄞b", "source": "lint", "code": "7"})
            )
        );
        assert_eq!(diagnostic_row(None, &d, &none).character, 4);
    }
}
