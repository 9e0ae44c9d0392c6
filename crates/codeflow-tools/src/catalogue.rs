//! The tool abstraction and the catalogue that holds every tool by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::context::ToolContext;
use crate::error::ToolError;

/// What a tool returns: text for the model and `structuredContent` matching its output schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// The answer for the agent, in words.
    pub text: String,
    /// The same answer for programs (`structuredContent`), as `output_schema` says.
    pub structured: Value,
}

/// A tool's answer with `structuredContent` already serialised to JSON text (see
/// [`Tool::answer_at_once`]).
#[derive(Debug)]
pub struct ToolOutputText {
    /// The answer for the agent, in words.
    pub text: String,
    /// `structuredContent`, as JSON text.
    pub structured: Box<RawValue>,
}

/// One MCP tool.
pub trait Tool: Send + Sync + 'static {
    /// The tool's name in `tools/list` and `tools/call`.
    fn name(&self) -> &'static str;
    /// One sentence for a model: what the tool does and when to use it.
    fn description(&self) -> &'static str;
    /// JSON Schema of the arguments.
    fn input_schema(&self) -> Value;
    /// JSON Schema of `structuredContent`.
    fn output_schema(&self) -> Value;
    /// Runs the tool for `ctx`'s caller with `args` (already checked against `input_schema` by the tool itself).
    fn call<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>>;
    /// Whether the tool answers from the server's memory: it never waits on a language server,
    /// a client request, the disk or another task, and has no effect but its answer. Such a
    /// call is first tried on the session's routing task (as `ping` is answered) and only goes
    /// to a task of its own when that try has to wait; the try is then dropped and the call
    /// started afresh, so it must be free to run twice.
    fn answers_from_memory(&self) -> bool {
        false
    }
    /// For a tool that [answers from memory](Self::answers_from_memory): its answer now, with
    /// `structuredContent` serialised straight to JSON text from the tool's output type (once,
    /// never built as a `Value`: the routing task then writes the answer's frame around it),
    /// or `None` when it would have to wait (the call then runs through [`Self::call`]). The
    /// default is `None`.
    fn answer_at_once(
        &self,
        _ctx: &ToolContext,
        _args: &Value,
    ) -> Option<Result<ToolOutputText, ToolError>> {
        None
    }
}

/// Every tool, by name.
#[derive(Clone, Default)]
pub struct Catalogue {
    tools: BTreeMap<&'static str, Arc<dyn Tool>>,
    aliases: BTreeMap<&'static str, &'static str>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl Catalogue {
    /// The full catalogue CodeFlow serves.
    pub fn standard() -> Self {
        let mut catalogue = Self::default();
        catalogue.add(crate::tools::health_check::HealthCheck);
        catalogue.add(crate::tools::restart_server::RestartServer);
        catalogue.add(crate::tools::analyze_imports::AnalyzeImports);
        catalogue.add(crate::tools::find_dead_code::FindDeadCode);
        catalogue.add(crate::tools::search_workspace_symbols::SearchWorkspaceSymbols);
        catalogue.add(crate::tools::get_document_symbols::GetDocumentSymbols);
        catalogue.add(crate::tools::get_diagnostics::GetDiagnostics);
        catalogue.add(crate::tools::get_code_actions::GetCodeActions);
        catalogue.add(crate::tools::prepare_call_hierarchy::PrepareCallHierarchy);
        catalogue
            .add(crate::tools::get_call_hierarchy_incoming_calls::GetCallHierarchyIncomingCalls);
        catalogue
            .add(crate::tools::get_call_hierarchy_outgoing_calls::GetCallHierarchyOutgoingCalls);
        catalogue.add(crate::tools::find_definition::FindDefinition);
        catalogue.add(crate::tools::find_references::FindReferences);
        catalogue.add(crate::tools::get_hover::GetHover);
        catalogue.add(crate::tools::get_completions::GetCompletions);
        catalogue.add(crate::tools::get_signature_help::GetSignatureHelp);
        catalogue.add(crate::tools::find_implementation::FindImplementation);
        catalogue.add(crate::tools::find_type_definition::FindTypeDefinition);
        catalogue.add(crate::tools::rename_symbol::RenameSymbol);
        catalogue.add(crate::tools::rename_symbol_strict::RenameSymbolStrict);
        catalogue.add(crate::tools::format_document::FormatDocument);
        catalogue.add(crate::tools::apply_workspace_edit::ApplyWorkspaceEdit);
        catalogue.add(crate::tools::create_file::CreateFile);
        catalogue.add(crate::tools::delete_file::DeleteFile);
        catalogue.add(crate::tools::rename_file::RenameFile);
        catalogue.add(crate::tools::rename_directory::RenameDirectory);
        catalogue.add(crate::tools::fix_imports::FixImports);
        catalogue.add(crate::tools::organize_imports::OrganizeImports);
        catalogue.add(crate::tools::update_dependencies::UpdateDependencies);
        for tool in crate::tools::symbol_edits::ALL {
            catalogue.add(tool);
        }
        catalogue.add(crate::tools::safe_delete_symbol::SafeDeleteSymbol);
        catalogue.add(crate::tools::search_for_pattern::SearchForPattern);
        catalogue.add(crate::tools::find_symbol::FindSymbol);
        catalogue.add(crate::tools::get_symbols_overview::GetSymbolsOverview);
        catalogue.alias("update_package_json", "update_dependencies");
        // A preview runs the write tools registered before it.
        let tools = catalogue.clone();
        catalogue.add(crate::tools::preview_edit::PreviewEdit::over(tools));
        // Last: a batch runs the tools registered before it.
        let tools = catalogue.clone();
        catalogue.add(crate::tools::batch_execute::BatchExecute::over(tools));
        catalogue
    }

    /// The test-only tools (`test_counter`), which a server adds when it runs with
    /// `CODEFLOW_TEST_TOOLS=true`.
    pub fn add_test_tools(&mut self) {
        self.add(crate::tools::test_counter::TestCounter::default());
    }

    /// Adds a tool (a second one with the same name replaces the first).
    pub fn add(&mut self, tool: impl Tool) {
        self.tools.insert(tool.name(), Arc::new(tool));
    }

    /// Makes `alias` call the tool `name` (names kept from the ancestors).
    pub fn alias(&mut self, alias: &'static str, name: &'static str) {
        self.aliases.insert(alias, name);
    }

    /// The tool of this name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        let name = self.aliases.get(name).copied().unwrap_or(name);
        self.tools.get(name)
    }

    /// Every tool, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Tool>> {
        self.tools.values()
    }

    /// How many tools there are.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }
}
