//! A write tool's answer from its edit outcome: the text for the model and the outcome as
//! `structuredContent` (see [`codeflow_workspace::outcome_schema`]).

use codeflow_workspace::EditOutcome;
use codeflow_workspace::after_write::diagnostics_text;

use crate::catalogue::ToolOutput;

/// An edit plan's outcome as a tool's answer.
pub trait EditOutcomeExt {
    /// `text` (followed by the diagnostics after a write, unless it has them already), with the
    /// outcome's JSON as the structured content.
    fn output(&self, text: String) -> ToolOutput;
    /// The usual answer: `unchanged` when no file changed and one is given, else the outcome's
    /// description of `what`.
    fn report(&self, what: &str, unchanged: Option<String>) -> ToolOutput;
}

impl EditOutcomeExt for EditOutcome {
    fn output(&self, mut text: String) -> ToolOutput {
        let diagnostics = diagnostics_text(&self.diagnostics);
        if !diagnostics.is_empty() && !text.contains(&diagnostics) {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&diagnostics);
        }
        ToolOutput {
            text,
            structured: self.to_json(),
        }
    }

    fn report(&self, what: &str, unchanged: Option<String>) -> ToolOutput {
        let text = match unchanged {
            Some(text) if self.files.is_empty() => text,
            _ => self.to_text(what),
        };
        self.output(text)
    }
}
