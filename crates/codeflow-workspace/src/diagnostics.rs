//! One diagnostic as CodeFlow reports it, everywhere: `get_diagnostics` rows and the
//! `diagnostics` channel's events carry the same fields with the same 1-based positions
//! (characters counted as a person counts them, from the document's text when it is known).

use codeflow_lsp_pool::lsp_types::{Diagnostic, DiagnosticSeverity, NumberOrString};
use serde_json::{Value, json};

use crate::text::{LineIndex, from_lsp};

/// `error`, `warning`, `information` or `hint` (a diagnostic without one is an error, as LSP
/// says a client may assume).
pub fn severity_name(s: Option<DiagnosticSeverity>) -> &'static str {
    match s {
        Some(DiagnosticSeverity::WARNING) => "warning",
        Some(DiagnosticSeverity::INFORMATION) => "information",
        Some(DiagnosticSeverity::HINT) => "hint",
        _ => "error",
    }
}

/// The diagnostic's code as text (`E0308`, `2345`).
pub fn code_text(d: &Diagnostic) -> Option<String> {
    d.code.as_ref().map(|c| match c {
        NumberOrString::Number(n) => n.to_string(),
        NumberOrString::String(s) => s.clone(),
    })
}

/// `{severity, message, line, character, end_line, end_character, text?, source?, code?}`:
/// 1-based positions; `text` is the start line's text, trimmed, when the document's `text` is
/// known (without it, columns are UTF-16 units + 1).
pub fn diagnostic_json(text: Option<&str>, d: &Diagnostic) -> Value {
    let index = text.map(LineIndex::new);
    let line = |n: u32| index.as_ref().and_then(|i| i.line(n));
    let start = from_lsp(line(d.range.start.line), d.range.start);
    let end = from_lsp(line(d.range.end.line), d.range.end);
    let mut row = json!({
        "severity": severity_name(d.severity),
        "message": d.message,
        "line": start.line,
        "character": start.character,
        "end_line": end.line,
        "end_character": end.character,
    });
    if let Some(content) = line(d.range.start.line) {
        row["text"] = json!(content.trim());
    }
    if let Some(source) = &d.source {
        row["source"] = json!(source);
    }
    if let Some(code) = code_text(d) {
        row["code"] = json!(code);
    }
    row
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
        let row = diagnostic_json(Some("a𝄞b\n"), &d);
        assert_eq!(
            row,
            json!({"severity": "warning", "message": "m", "line": 1, "character": 3,
                   "end_line": 1, "end_character": 4, "text": "a𝄞b", "source": "lint", "code": "7"})
        );
        assert_eq!(diagnostic_json(None, &d)["character"], 4);
    }
}
