//! The tools through the real binaries: what only the relay and server show. The tools'
//! behaviour is tested in-process (`crates/codeflow-tools/tests`); here, one call per language
//! through relay + server naming the client's paths (never the server's mirror), a write that
//! lands on the client's disk and in the mirror through `client/writeFile`, a conflict made by
//! a second container sharing the mirror, the legacy WebSocket form, and `tools/list`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use codeflow_e2e::fs::fixture;
use codeflow_e2e::tools::{Project, places};
use codeflow_e2e::{Relay, Ws, procs};
use serde_json::json;
use std::time::Duration;

/// `find_definition` of `symbol` in `file` (relative to the relay's root) through relay and
/// server: the first definition, as the client's path.
async fn definition(fixture: &str, file: &str, symbol: &str) -> (Project, (String, u64, u64)) {
    let p = Project::start(fixture, &format!("e2e-{fixture}")).await;
    let (text, s) = p
        .ok(
            "find_definition",
            json!({"file_path": file, "symbol_name": symbol}),
        )
        .await;
    let found = places(&s["matches"][0]["definitions"]);
    assert_eq!(found.len(), 1, "{text}");
    (p, found[0].clone())
}

#[tokio::test]
async fn python_through_relay_and_server() {
    let (p, found) = definition("python", "app.py", "scale").await;
    assert_eq!(found, (p.path("pkg/shapes.py"), 14, 5));
    // An absolute client path in, the line text out.
    let (text, _) = p
        .ok(
            "find_definition",
            json!({"file_path": p.path("app.py"), "symbol_name": "scale"}),
        )
        .await;
    assert!(
        text.contains(&format!(
            "{}:14:5  def scale(value, factor):",
            p.path("pkg/shapes.py")
        )),
        "{text}"
    );
}

#[tokio::test]
async fn typescript_through_relay_and_server() {
    let (p, found) = definition("typescript", "src/app.ts", "describe").await;
    assert_eq!(found, (p.path("src/app.ts"), 3, 17));
}

#[tokio::test]
async fn c_through_relay_and_server() {
    let (p, found) = definition("c", "main.c", "report").await;
    assert_eq!(found, (p.path("main.c"), 3, 15));
}

#[tokio::test]
async fn rust_through_relay_and_server() {
    let (p, found) = definition("rust", "src/shapes.rs", "scale").await;
    assert_eq!(found, (p.path("src/shapes.rs"), 15, 8));
}

#[tokio::test]
async fn go_through_relay_and_server() {
    let (p, found) = definition("go", "main.go", "main").await;
    assert_eq!(found, (p.path("main.go"), 9, 6));
}

/// The server writes through the relay (`client/writeFile`): the client's disk and the mirror
/// both hold the result.
#[tokio::test]
async fn a_rename_through_relay_and_server_writes_the_client_and_the_mirror() {
    let p = Project::start_synced("python", "e2e-write").await;
    let before = p.read("report.py");
    let (_, done) = p
        .ok(
            "rename_symbol",
            json!({"file_path": "pkg/shapes.py", "symbol_name": "scale", "new_name": "resize"}),
        )
        .await;
    assert_eq!(done["applied"], true);
    assert_eq!(p.read("report.py"), before.replace("scale", "resize"));
    assert_eq!(p.mirror("report.py"), Some(p.read("report.py")));
}

/// A symbol-level write through the binaries: the edit lands on the client's disk and in the
/// mirror through `client/writeFile`, and the answer carries the file's diagnostics after the
/// change, in the client's paths.
#[tokio::test]
async fn a_symbol_edit_through_relay_and_server_answers_with_the_diagnostics() {
    let p = Project::start_synced("python", "e2e-symbol").await;
    let (text, done) = p
        .ok(
            "replace_symbol_body",
            json!({"file_path": "pkg/shapes.py", "name_path": "scale",
                   "body": "def scale(value, factor):\n    return value * factor * undefined_name"}),
        )
        .await;
    assert_eq!(done["applied"], true, "{text}");
    assert!(
        p.read("pkg/shapes.py")
            .contains("def scale(value, factor):\n    return value * factor * undefined_name\n"),
        "{text}"
    );
    assert_eq!(p.mirror("pkg/shapes.py"), Some(p.read("pkg/shapes.py")));
    let diagnostics = &done["diagnostics"][0];
    assert_eq!(diagnostics["path"], p.path("pkg/shapes.py"), "{text}");
    assert!(
        diagnostics["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["message"].as_str().unwrap().contains("undefined_name")),
        "{text}"
    );
}

/// A real conflict, made deterministic: a second container with the same project id syncs a
/// different `report.py` into the shared mirror. The first container's disk did not change, so
/// its watcher reports nothing and its next tool computes the edit from the mirror's (other)
/// content; the write-back then finds a hash on disk the edit was not based on and writes
/// nothing.
#[tokio::test]
async fn an_edit_planned_on_another_containers_content_is_refused() {
    let p = Project::start_synced("python", "conflict").await;
    let before = codeflow_e2e::tree(&p.root);
    let (_other_dir, other_root) = fixture("python");
    let edited = "import os\n\nfrom pkg.shapes import scale\n\n# edited in another container\ndef report(x):\n    return scale(x, 10)\n";
    std::fs::write(other_root.join("report.py"), edited).unwrap();
    let other = Relay::spawn(&p.server.url(), "conflict", &other_root, &[]);
    other.initialize().await;
    assert_eq!(
        other.tool("health_check", json!({})).await["isError"],
        false
    );
    assert_eq!(p.mirror("report.py").as_deref(), Some(edited));

    let edit = |text: &str| json!([{"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "newText": text}]);
    // app.py (written first) is current; report.py is not.
    let changes =
        json!({p.path("app.py"): edit("# first\n"), p.path("report.py"): edit("# second\n")});
    let refused = p
        .err("apply_workspace_edit", json!({"changes": changes}))
        .await;
    assert!(
        refused.contains("conflict") && refused.contains(&p.path("report.py")),
        "{refused}"
    );
    assert_eq!(
        codeflow_e2e::tree(&p.root),
        before,
        "nothing was written, app.py included"
    );
}

/// The legacy form (tool name as the JSON-RPC method, no `jsonrpc`) reaches the same tool.
#[tokio::test]
async fn the_legacy_websocket_form_reaches_the_tool() {
    let p = Project::start_synced("python", "tools-py").await;
    let mut ws = Ws::connect(&p.server.url()).await;
    ws.send_json(json!({"method": "initialize", "project": "tools-py", "projectRoot": p.root.to_string_lossy()}))
        .await;
    let init = ws.json().await;
    assert!(init["result"]["sessionId"].is_string(), "{init}");
    ws.send_json(json!({"id": 7, "method": "find_definition", "params": {"file_path": "app.py", "symbol_name": "scale"}}))
        .await;
    let reply = ws.json().await;
    assert_eq!(
        (&reply["jsonrpc"], &reply["id"]),
        (&json!("2.0"), &json!(7))
    );
    let defs = places(&reply["result"]["structuredContent"]["matches"][0]["definitions"]);
    assert!(defs.contains(&(p.path("pkg/shapes.py"), 14, 5)), "{reply}");
    ws.close().await;
}

/// Every tool is listed through the relay with its output schema (`update_dependencies`'s
/// names its changes).
#[tokio::test]
async fn tools_list_through_the_relay_carries_output_schemas() {
    let p = Project::start("python", "e2e-list").await;
    let list = p.relay.call("tools/list", json!({})).await;
    let tools = list["result"]["tools"].as_array().unwrap();
    assert!(
        tools.iter().all(|t| t["outputSchema"]["type"] == "object"),
        "{list}"
    );
    let deps = tools
        .iter()
        .find(|t| t["name"] == "update_dependencies")
        .unwrap_or_else(|| panic!("update_dependencies not listed: {list}"));
    assert!(deps["outputSchema"]["properties"]["changes"].is_object());
}

/// The language servers a killed server started die with it (they are tethered to its life),
/// helpers included: typescript-language-server's tsserver.
#[tokio::test]
async fn language_servers_die_with_a_killed_server() {
    let mut p = Project::start("typescript", "e2e-tethered").await;
    p.ok(
        "find_definition",
        json!({"file_path": "src/app.ts", "symbol_name": "describe"}),
    )
    .await;
    let server = p.server.pid();
    let started = procs::children(server);
    let servers: Vec<u32> = started
        .iter()
        .copied()
        .filter(|c| procs::command_line(*c).contains("typescript-language-server"))
        .collect();
    assert_eq!(servers.len(), 1, "children: {started:?}");
    let members = procs::group(servers[0]);
    assert!(
        members
            .iter()
            .any(|m| procs::command_line(*m).contains("tsserver")),
        "the group of {} holds tsserver: {members:?}",
        servers[0]
    );

    p.server.child.start_kill().unwrap();
    let _ = p.server.child.wait().await;
    let left = || {
        members
            .iter()
            .copied()
            .filter(|m| procs::alive(*m))
            .collect::<Vec<u32>>()
    };
    let gone =
        codeflow_e2e::eventually(Duration::from_secs(10), || async { left().is_empty() }).await;
    assert!(gone, "outlived the killed server: {:?}", left());
}
