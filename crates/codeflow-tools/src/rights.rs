//! The right each tool needs: the table the session's authorization point consults through
//! [`codeflow_session::SessionService::tool_rights`]. Read tools need `lsp:query`; write tools
//! `file:write`, or only `lsp:query` for a dry run (which writes nothing).

use codeflow_session::Right;
use serde_json::Value;

use crate::catalogue::Catalogue;

/// Tools that need no right (they report on the service or the session itself).
const OPEN: &[&str] = &["health_check", "test_counter"];

/// Tools that read the project through its language servers or files.
const READ: &[&str] = &[
    "analyze_imports",
    "find_dead_code",
    "find_definition",
    "find_implementation",
    "find_references",
    "find_symbol",
    "find_type_definition",
    "get_call_hierarchy_incoming_calls",
    "get_call_hierarchy_outgoing_calls",
    "get_code_actions",
    "get_completions",
    "get_diagnostics",
    "get_document_symbols",
    "get_hover",
    "get_signature_help",
    "get_symbols_overview",
    "prepare_call_hierarchy",
    "preview_edit",
    "restart_server",
    "search_for_pattern",
    "search_workspace_symbols",
];

/// Tools that write the client's files (unless `dry_run`).
const WRITE: &[&str] = &[
    "apply_workspace_edit",
    "create_file",
    "delete_file",
    "fix_imports",
    "format_document",
    "insert_after_symbol",
    "insert_before_symbol",
    "organize_imports",
    "rename_directory",
    "rename_file",
    "rename_symbol",
    "rename_symbol_strict",
    "replace_symbol_body",
    "safe_delete_symbol",
    "update_dependencies",
];

const BATCH: &str = "batch_execute";

/// Whether a tool only reads (MCP's `readOnlyHint`): running it twice does no harm, so a
/// client may send it again after losing the session that ran it. The read tools and
/// `health_check`; not `restart_server` (it restarts a language server) nor `test_counter`
/// (it counts its calls).
pub fn read_only(name: &str) -> bool {
    name == "health_check" || (READ.contains(&name) && name != "restart_server")
}

fn dry_run(arguments: Option<&Value>) -> bool {
    arguments
        .and_then(|a| a.get("dry_run"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The rights a call of `name` with `arguments` needs. An unknown tool needs nothing (the
/// service answers "unknown tool"); a known tool missing from the table needs every right.
pub fn tool_rights(catalogue: &Catalogue, name: &str, arguments: Option<&Value>) -> Vec<Right> {
    let Some(tool) = catalogue.get(name) else {
        return Vec::new();
    };
    rights_of(catalogue, tool.name(), arguments, dry_run(arguments))
}

fn rights_of(
    catalogue: &Catalogue,
    name: &str,
    arguments: Option<&Value>,
    batch_dry_run: bool,
) -> Vec<Right> {
    if OPEN.contains(&name) {
        Vec::new()
    } else if READ.contains(&name) {
        vec![Right::LspQuery]
    } else if WRITE.contains(&name) {
        if batch_dry_run || dry_run(arguments) {
            vec![Right::LspQuery]
        } else {
            vec![Right::FileWrite]
        }
    } else if name == BATCH {
        batch_rights(catalogue, arguments)
    } else {
        Right::ALL.to_vec()
    }
}

/// A batch needs what each of its operations needs; arguments it cannot read need every
/// right that a batch could use (the tool then refuses them anyway).
fn batch_rights(catalogue: &Catalogue, arguments: Option<&Value>) -> Vec<Right> {
    let Some(operations) = arguments
        .and_then(|a| a.get("operations"))
        .and_then(Value::as_array)
    else {
        return vec![Right::LspQuery, Right::FileWrite];
    };
    let batch_dry_run = arguments
        .and_then(|a| a.get("options"))
        .is_some_and(|o| dry_run(Some(o)));
    let mut rights = Vec::new();
    for operation in operations {
        let Some(tool) = operation
            .get("tool")
            .and_then(Value::as_str)
            .and_then(|t| catalogue.get(t))
        else {
            continue;
        };
        let needed = if tool.name() == BATCH {
            Right::ALL.to_vec()
        } else {
            rights_of(catalogue, tool.name(), operation.get("args"), batch_dry_run)
        };
        for right in needed {
            if !rights.contains(&right) {
                rights.push(right);
            }
        }
    }
    rights
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_tool_has_its_rights_in_the_table() {
        let mut catalogue = Catalogue::standard();
        catalogue.add_test_tools();
        for tool in catalogue.iter() {
            let name = tool.name();
            assert!(
                OPEN.contains(&name)
                    || READ.contains(&name)
                    || WRITE.contains(&name)
                    || name == BATCH,
                "{name} is missing from rights.rs"
            );
        }
    }

    #[test]
    fn writes_reads_dry_runs_and_batches() {
        let c = Catalogue::standard();
        assert_eq!(
            tool_rights(&c, "find_definition", None),
            vec![Right::LspQuery]
        );
        assert_eq!(
            tool_rights(&c, "rename_file", Some(&json!({}))),
            vec![Right::FileWrite]
        );
        assert_eq!(
            tool_rights(&c, "rename_file", Some(&json!({"dry_run": true}))),
            vec![Right::LspQuery]
        );
        assert_eq!(
            tool_rights(&c, "update_package_json", None),
            vec![Right::FileWrite]
        );
        assert!(tool_rights(&c, "health_check", None).is_empty());
        assert!(tool_rights(&c, "no_such_tool", None).is_empty());
        let batch = json!({"operations": [
            {"tool": "find_definition", "args": {}},
            {"tool": "create_file", "args": {}}
        ]});
        let rights = tool_rights(&c, "batch_execute", Some(&batch));
        assert!(rights.contains(&Right::FileWrite) && rights.contains(&Right::LspQuery));
        let dry = json!({"operations": [{"tool": "create_file"}], "options": {"dry_run": true}});
        assert_eq!(
            tool_rights(&c, "batch_execute", Some(&dry)),
            vec![Right::LspQuery]
        );
    }
}
