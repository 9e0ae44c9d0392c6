//! A write tool's answer from its edit outcome: the text for the model and the outcome as
//! `structuredContent` (see [`codeflow_workspace::outcome_schema`]).

use codeflow_workspace::EditOutcome;

use crate::catalogue::ToolOutput;

/// An edit plan's outcome as a tool's answer.
pub trait EditOutcomeExt {
    /// `text`, with the outcome's JSON as the structured content.
    fn output(&self, text: String) -> ToolOutput;
    /// The usual answer: `unchanged` when no file changed and one is given, else the outcome's
    /// description of `what`.
    fn report(&self, what: &str, unchanged: Option<String>) -> ToolOutput;
}

impl EditOutcomeExt for EditOutcome {
    fn output(&self, text: String) -> ToolOutput {
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
