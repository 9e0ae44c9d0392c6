//! One file per tool.

pub mod health_check;
pub mod restart_server;
pub mod test_counter;
pub mod find_definition;
pub mod find_references;
pub mod get_hover;
pub mod get_completions;
pub mod get_signature_help;
pub mod find_implementation;
pub mod find_type_definition;
pub mod get_document_symbols;
pub mod get_diagnostics;
pub mod get_code_actions;
pub mod prepare_call_hierarchy;
pub mod get_call_hierarchy_incoming_calls;
pub mod get_call_hierarchy_outgoing_calls;
pub mod search_workspace_symbols;
pub mod find_dead_code;
pub mod analyze_imports;
