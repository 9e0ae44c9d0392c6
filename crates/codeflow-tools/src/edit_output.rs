//! A write tool's answer from its edit outcome: the text for the model and the outcome as
//! `structuredContent` ([`codeflow_workspace::OutcomeOutput`], with the tool's own members
//! beside it through [`OutcomeWith`]).

use codeflow_workspace::after_write::diagnostics_text;
use codeflow_workspace::{EditOutcome, OutcomeOutput};
use schemars::JsonSchema;
use serde::Serialize;

use crate::catalogue::ToolOutput;
use crate::error::ToolError;

/// An edit outcome and a tool's own members (`X`, a struct) in one object.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OutcomeWith<X> {
    /// The edit outcome's members.
    #[serde(flatten)]
    pub outcome: OutcomeOutput,
    /// The tool's members.
    #[serde(flatten)]
    pub with: X,
}

/// An edit plan's outcome as a tool's answer.
pub trait EditOutcomeExt {
    /// `text` followed by the diagnostics after a write, unless it has them already.
    fn with_diagnostics(&self, text: String) -> String;
    /// `text` (see [`EditOutcomeExt::with_diagnostics`]), with the outcome as the structured
    /// content.
    fn output(&self, text: String) -> Result<ToolOutput, ToolError>;
    /// [`EditOutcomeExt::output`] with the tool's own members `with` beside the outcome's.
    fn output_with<X: Serialize>(&self, text: String, with: X) -> Result<ToolOutput, ToolError>;
    /// The outcome with the tool's own members `with` beside it (text left to the tool).
    fn with<X>(&self, with: X) -> OutcomeWith<X>;
    /// The usual text: `unchanged` when no file changed and one is given, else the outcome's
    /// description of `what`.
    fn report_text(&self, what: &str, unchanged: Option<String>) -> String;
    /// The usual answer (text of [`EditOutcomeExt::report_text`]).
    fn report(&self, what: &str, unchanged: Option<String>) -> Result<ToolOutput, ToolError> {
        self.output(self.report_text(what, unchanged))
    }
}

impl EditOutcomeExt for EditOutcome {
    fn with_diagnostics(&self, mut text: String) -> String {
        let diagnostics = diagnostics_text(&self.diagnostics);
        if !diagnostics.is_empty() && !text.contains(&diagnostics) {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&diagnostics);
        }
        text
    }

    fn output(&self, text: String) -> Result<ToolOutput, ToolError> {
        ToolOutput::typed(self.with_diagnostics(text), &self.to_output())
    }

    fn output_with<X: Serialize>(&self, text: String, with: X) -> Result<ToolOutput, ToolError> {
        ToolOutput::typed(self.with_diagnostics(text), &self.with(with))
    }

    fn with<X>(&self, with: X) -> OutcomeWith<X> {
        OutcomeWith {
            outcome: self.to_output(),
            with,
        }
    }

    fn report_text(&self, what: &str, unchanged: Option<String>) -> String {
        match unchanged {
            Some(text) if self.files.is_empty() => text,
            _ => self.to_text(what),
        }
    }
}
