//! Pool behaviour with real pylsp: sharing, isolation, crash + replay, idle shutdown, and
//! broken servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use codeflow_lsp_pool::lsp_types::request::GotoDefinition;
use codeflow_lsp_pool::{
    LspError, LspPool, PoolConfig, ProjectKey, ServerConfig, ServerState, metrics as names,
};
use common::*;
use parking_lot::Mutex;

// ---- a tiny metrics recorder: counters summed by name across labels --------------------------

#[derive(Default)]
struct Counters(Mutex<HashMap<String, Arc<AtomicU64>>>);

impl Counters {
    fn cell(&self, name: &str) -> Arc<AtomicU64> {
        Arc::clone(self.0.lock().entry(name.to_owned()).or_default())
    }
    fn get(&self, name: &str) -> u64 {
        self.cell(name).load(Ordering::SeqCst)
    }
}

struct Recorder(&'static Counters);

impl metrics::Recorder for Recorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.0.cell(key.name()))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        // Count observations so the test can see latencies were recorded.
        let _ = key;
        metrics::Histogram::noop()
    }
}

fn counters() -> &'static Counters {
    static COUNTERS: OnceLock<&'static Counters> = OnceLock::new();
    COUNTERS.get_or_init(|| {
        let c: &'static Counters = Box::leak(Box::default());
        metrics::set_global_recorder(Recorder(c)).expect("one recorder per test binary");
        c
    })
}

// ---- helpers ---------------------------------------------------------------------------------

async fn add_definition(
    server: &codeflow_lsp_pool::ServerHandle,
    uri: &codeflow_lsp_pool::lsp_types::Url,
    text: &str,
) -> Vec<(String, u32, u32)> {
    let pos = position_of(text, "add", 1);
    def_locations(
        server
            .request::<GotoDefinition>(definition_params(uri, pos))
            .await
            .expect("definition"),
    )
}

/// What `scripted.py` reports when asked for a hover on `file`: the requests it saw cancelled,
/// the client's answers to its requests, the watched-file events it heard.
async fn scripted_report(
    server: &codeflow_lsp_pool::ServerHandle,
    file: &str,
) -> serde_json::Value {
    use codeflow_lsp_pool::lsp_types::request::HoverRequest;
    use codeflow_lsp_pool::lsp_types::{
        HoverContents, HoverParams, TextDocumentIdentifier, TextDocumentPositionParams,
    };
    let hover = HoverParams {
        text_document_position_params: TextDocumentPositionParams::new(
            TextDocumentIdentifier::new(server.uri_for(file).expect("uri")),
            Default::default(),
        ),
        work_done_progress_params: Default::default(),
    };
    let report = server
        .request::<HoverRequest>(hover)
        .await
        .expect("hover")
        .expect("some hover");
    let HoverContents::Markup(markup) = report.contents else {
        panic!("markup expected")
    };
    serde_json::from_str(&markup.value).expect("json report")
}

fn script_server(script: &str, ext: &str) -> ServerConfig {
    let path = fixtures().join("servers").join(script);
    let mut s = ServerConfig::new("python3", &[ext]);
    s.args = vec![path.to_string_lossy().into_owned()];
    s
}

// ---- tests -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_share_a_process_and_projects_do_not() {
    let a = project("python");
    let b = project("python");
    let pool = LspPool::new(config());
    let lease1 = pool.lease(ProjectKey::new(
        codeflow_types::ProjectId::parse("a").expect("project id"),
        a.path(),
    ));
    let lease2 = pool.lease(ProjectKey::new(
        codeflow_types::ProjectId::parse("a").expect("project id"),
        a.path(),
    ));
    let s1 = lease1.server_for_file("app.py").await.expect("start");
    let s2 = lease2.server_for_file("mathlib.py").await.expect("shared");
    assert_eq!(s1.pid(), s2.pid());
    assert!(s1.pid().is_some());
    let lease_b = pool.lease(ProjectKey::new(
        codeflow_types::ProjectId::parse("b").expect("project id"),
        b.path(),
    ));
    let sb = lease_b.server_for_file("app.py").await.expect("start b");
    assert_ne!(s1.pid(), sb.pid());

    // Exactly one pylsp child per project, running in that project's directory.
    assert_eq!(children_in("pylsp", a.path()), vec![s1.pid().unwrap()]);
    assert_eq!(children_in("pylsp", b.path()), vec![sb.pid().unwrap()]);
    let expected = [s1.pid().unwrap(), sb.pid().unwrap()];

    // Each server is rooted at its own project.
    let status = pool.status();
    assert_eq!(status.len(), 2);
    let root_of = |p: &str| status.iter().find(|s| s.project == p).unwrap().root.clone();
    assert_eq!(root_of("a"), std::fs::canonicalize(a.path()).unwrap());
    assert_eq!(root_of("b"), std::fs::canonicalize(b.path()).unwrap());

    // Both sessions get answers from the shared server.
    let (uri, text) = open(&s1, lease1.root(), "app.py");
    assert_eq!(
        add_definition(&s2, &uri, &text).await,
        vec![t("mathlib.py", 0, 4)]
    );

    pool.shutdown().await;
    for pid in expected {
        assert!(
            eventually(Duration::from_secs(5), || !alive(pid)).await,
            "pid {pid} survived shutdown"
        );
    }
    assert!(matches!(
        lease1.server_for_file("app.py").await,
        Err(LspError::PoolShutDown)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_50_requests_in_flight_all_answered_once() {
    let counters = counters();
    let crashes_before = counters.get(names::CRASHES);
    let restarts_before = counters.get(names::RESTARTS);

    let dir = project("python");
    let pool = LspPool::new(config());
    let lease = pool.lease(ProjectKey::new(
        codeflow_types::ProjectId::parse("crash").expect("project id"),
        dir.path(),
    ));
    let server = lease.server_for_file("app.py").await.expect("start");
    let (uri, text) = open(&server, lease.root(), "app.py");
    // Warm up so the requests below are answered fast by a healthy server.
    assert_eq!(
        add_definition(&server, &uri, &text).await,
        vec![t("mathlib.py", 0, 4)]
    );
    let old_pid = server.pid().expect("pid");

    let answered = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (server, uri, text, answered) = (
            server.clone(),
            uri.clone(),
            text.clone(),
            Arc::clone(&answered),
        );
        tasks.spawn(async move {
            let got = add_definition(&server, &uri, &text).await;
            answered.fetch_add(1, Ordering::SeqCst);
            got
        });
    }
    // Let the requests reach the server, then kill it.
    tokio::time::sleep(Duration::from_millis(30)).await;
    std::process::Command::new("kill")
        .args(["-9", &old_pid.to_string()])
        .status()
        .expect("kill");

    let mut results = 0;
    while let Some(joined) = tasks.join_next().await {
        assert_eq!(joined.expect("task"), vec![t("mathlib.py", 0, 4)]);
        results += 1;
    }
    assert_eq!(results, 50);
    assert_eq!(
        answered.load(Ordering::SeqCst),
        50,
        "each request answered exactly once"
    );

    let status = server.status();
    assert_eq!(status.state, ServerState::Running);
    assert_eq!(status.crashes, 1);
    assert_eq!(status.restarts, 1);
    assert_eq!(status.starts, 2);
    assert_eq!(
        status.open_documents, 1,
        "documents re-opened after restart"
    );
    assert_ne!(status.pid, Some(old_pid));
    assert!(counters.get(names::CRASHES) > crashes_before);
    assert!(counters.get(names::RESTARTS) > restarts_before);
    assert!(!alive(old_pid));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_server_stops_and_next_request_starts_a_new_one() {
    let dir = project("python");
    let pool = LspPool::new(PoolConfig {
        idle_timeout: Duration::from_millis(300),
        ..config()
    });
    let key = ProjectKey::new(
        codeflow_types::ProjectId::parse("idle").expect("project id"),
        dir.path(),
    );
    let lease = pool.lease(key.clone());
    let server = lease.server_for_file("app.py").await.expect("start");
    let (uri, text) = open(&server, lease.root(), "app.py");
    assert_eq!(
        add_definition(&server, &uri, &text).await,
        vec![t("mathlib.py", 0, 4)]
    );
    let pid = server.pid().expect("pid");

    // Leased: stays up well past the idle timeout.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(server.status().state, ServerState::Running);

    drop(lease);
    assert!(
        eventually(Duration::from_secs(5), || server.status().state
            == ServerState::Stopped)
        .await,
        "idle server was not stopped: {:?}",
        server.status()
    );
    assert!(eventually(Duration::from_secs(2), || !alive(pid)).await);

    let lease = pool.lease(key);
    let server = lease
        .server_for_file("app.py")
        .await
        .expect("restart on use");
    let new_pid = server.pid().expect("pid");
    assert_ne!(new_pid, pid);
    let (uri, text) = open(&server, lease.root(), "app.py");
    assert_eq!(
        add_definition(&server, &uri, &text).await,
        vec![t("mathlib.py", 0, 4)]
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_servers_give_clear_errors_and_the_pool_stays_healthy() {
    let dir = project("python");
    let mut cfg = config();
    let mut silent = script_server("never_initializes.py", "silent");
    silent.initialize_timeout = Some(Duration::from_millis(1500));
    cfg.servers.insert("silent".into(), silent);
    cfg.servers
        .insert("quitter".into(), script_server("exits_at_once.py", "quit"));
    cfg.servers
        .insert("garbage".into(), script_server("garbage.py", "junk"));
    let mut missing = ServerConfig::new("codeflow-no-such-language-server", &["nope"]);
    missing.install_hint = Some("pip install no-such-server".into());
    cfg.servers.insert("missing".into(), missing);
    let pool = LspPool::new(cfg);
    let lease = pool.lease(ProjectKey::new(
        codeflow_types::ProjectId::parse("broken").expect("project id"),
        dir.path(),
    ));

    let err = lease
        .server_for_file("a.silent")
        .await
        .expect_err("never initializes");
    assert!(
        matches!(&err, LspError::StartFailed { server, reason } if server == "silent" && reason.contains("no answer to initialize")),
        "{err}"
    );
    let err = lease.server_for_file("a.quit").await.expect_err("exits");
    assert!(
        matches!(&err, LspError::StartFailed { server, reason }
            if server == "quitter" && reason.contains("exited") && reason.contains("cannot load configuration")),
        "{err}"
    );
    let err = lease.server_for_file("a.junk").await.expect_err("garbage");
    assert!(
        matches!(&err, LspError::StartFailed { server, reason } if server == "garbage" && reason.contains("LSP")),
        "{err}"
    );
    let err = lease.server_for_file("a.nope").await.expect_err("missing");
    assert!(
        matches!(&err, LspError::NotInstalled { server, hint, .. } if server == "missing" && hint.contains("pip install")),
        "{err}"
    );
    assert!(
        err.to_string().contains("missing")
            && err.to_string().contains("pip install no-such-server")
    );
    assert!(matches!(
        lease.server_for_file("a.unknownext").await,
        Err(LspError::NoServerForFile { .. })
    ));

    // The failures are reported in status, leave no process behind, and fail fast on reuse.
    let status = lease.status();
    for id in ["silent", "quitter", "garbage"] {
        let s = status
            .iter()
            .find(|s| s.server_id == id)
            .expect("status entry");
        assert_eq!(s.state, ServerState::Failed, "{s:?}");
        assert!(s.pid.is_none());
        assert!(s.last_error.is_some());
    }
    assert!(children_matching("never_initializes.py").is_empty());
    assert!(children_matching("garbage.py").is_empty());
    let started = std::time::Instant::now();
    assert!(lease.server_for_file("b.silent").await.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "failure is sticky, not retried per call"
    );

    // The pool still serves real work.
    let server = lease
        .server_for_file("app.py")
        .await
        .expect("pylsp still starts");
    let (uri, text) = open(&server, lease.root(), "app.py");
    assert_eq!(
        add_definition(&server, &uri, &text).await,
        vec![t("mathlib.py", 0, 4)]
    );

    // restart_server retries a failed server (and it fails the same way, clearly).
    let err = pool
        .restart_project("broken", Some(&["quit".to_owned()]))
        .await
        .expect_err("still broken");
    assert!(matches!(err, LspError::StartFailed { .. }), "{err}");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_document_sync_and_diagnostics() {
    let dir = project("python");
    let pool = LspPool::new(config());
    let lease = pool.lease(ProjectKey::new(
        codeflow_types::ProjectId::parse("sync").expect("project id"),
        dir.path(),
    ));
    let server = lease.server_for_file("app.py").await.expect("start");
    let (uri, text) = open(&server, lease.root(), "app.py");
    assert_eq!(
        server
            .sync_document("app.py", text.clone())
            .expect("same text"),
        1
    );
    let broken = format!("{text}\ndef broken(:\n");
    assert_eq!(server.sync_document("app.py", broken).expect("change"), 2);
    let report = server.diagnostics("app.py").await.expect("diagnostics");
    // pylsp without optional linters reports no problems, but it must be about version 2.
    assert!(report.fresh, "{report:?}");
    assert_eq!(report.version, Some(2), "{report:?}");

    // Back to valid code: the line numbers still match the fixture.
    assert_eq!(server.change("app.py", text.clone()).expect("change"), 3);
    let old_pid = server.pid();
    let restarted = pool
        .restart_project("sync", Some(&[".py".to_owned()]))
        .await
        .expect("restart");
    assert_eq!(restarted, vec!["pylsp".to_owned()]);
    assert_ne!(server.pid(), old_pid);
    assert_eq!(server.status().open_documents, 1);
    assert_eq!(
        add_definition(&server, &uri, &text).await,
        vec![t("mathlib.py", 0, 4)]
    );
    server.close("app.py").expect("close");
    assert!(matches!(
        server.close("app.py"),
        Err(LspError::DocumentNotOpen { .. })
    ));
    assert!(
        server
            .capabilities()
            .await
            .expect("caps")
            .definition_provider
            .is_some()
    );
    pool.shutdown().await;
}

struct ApproveAll;

impl codeflow_lsp_pool::ApplyEditHandler for ApproveAll {
    fn apply_edit(
        &self,
        ctx: codeflow_lsp_pool::ApplyEditContext,
        _params: codeflow_lsp_pool::lsp_types::ApplyWorkspaceEditParams,
    ) -> futures::future::BoxFuture<'static, codeflow_lsp_pool::lsp_types::ApplyWorkspaceEditResponse>
    {
        Box::pin(async move {
            codeflow_lsp_pool::lsp_types::ApplyWorkspaceEditResponse {
                applied: true,
                failure_reason: Some(format!("{}/{}", ctx.project, ctx.server_id)),
                failed_change: None,
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_requests_are_answered_and_dropped_requests_cancelled() {
    use codeflow_lsp_pool::lsp_types::WorkspaceSymbolParams;
    use codeflow_lsp_pool::lsp_types::request::{References, WorkspaceSymbolRequest};

    let dir = project("python");
    let mut cfg = PoolConfig {
        request_timeout: Duration::from_millis(400),
        ..config()
    };
    let mut scripted = script_server("scripted.py", "fake");
    scripted.settings = Some(serde_json::json!({"fake": {"level": 7}}));
    cfg.servers.insert("scripted".into(), scripted);
    let pool = LspPool::new(cfg);
    pool.set_apply_edit_handler(Some(Arc::new(ApproveAll)));
    let lease = pool.lease(ProjectKey::new(
        codeflow_types::ProjectId::parse("proto").expect("project id"),
        dir.path(),
    ));
    let server = lease.server_for_file("x.fake").await.expect("start");

    // Timed out: answered with Timeout, and the server is told to cancel.
    let symbol = WorkspaceSymbolParams {
        query: "q".into(),
        work_done_progress_params: Default::default(),
        partial_result_params: Default::default(),
    };
    let err = server
        .request::<WorkspaceSymbolRequest>(symbol.clone())
        .await
        .expect_err("never answered");
    assert!(matches!(err, LspError::Timeout { .. }), "{err}");
    // Dropped by the caller: also cancelled.
    let dropped = tokio::time::timeout(
        Duration::from_millis(100),
        server.request::<WorkspaceSymbolRequest>(symbol),
    )
    .await;
    assert!(dropped.is_err());

    let uri = server.uri_for("x.fake").expect("uri");
    let report = scripted_report(&server, "x.fake").await;
    // The unknown notification and the malformed $/progress did not end the connection, and
    // the two abandoned requests were cancelled (ids 1 and 2: 0 was initialize).
    assert_eq!(report["cancelled"], serde_json::json!([1, 2]), "{report}");
    let answers = &report["answers"];
    assert_eq!(
        answers["workspace/configuration"],
        serde_json::json!([7, null]),
        "{report}"
    );
    assert_eq!(
        answers["window/workDoneProgress/create"],
        serde_json::Value::Null
    );
    assert_eq!(
        answers["client/registerCapability"],
        serde_json::Value::Null
    );
    assert_eq!(
        answers["window/showMessageRequest"],
        serde_json::Value::Null
    );
    assert_eq!(answers["workspace/applyEdit"]["applied"], true, "{report}");
    assert_eq!(
        answers["workspace/applyEdit"]["failureReason"],
        "proto/scripted"
    );

    // Not offered statically, but registered dynamically: allowed. Never offered: refused.
    let refs = server
        .request::<References>(references_params(&uri, Default::default()))
        .await;
    assert!(
        matches!(refs, Err(LspError::ServerError { code: -32601, .. })),
        "{refs:?}"
    );
    let def = server
        .request::<GotoDefinition>(definition_params(&uri, Default::default()))
        .await;
    assert!(
        matches!(&def, Err(LspError::CapabilityMissing { capability, .. }) if capability == "definitionProvider"),
        "{def:?}"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_gives_up_and_reports_it() {
    use codeflow_lsp_pool::lsp_types::request::HoverRequest;
    use codeflow_lsp_pool::lsp_types::{
        HoverParams, TextDocumentIdentifier, TextDocumentPositionParams,
    };

    let dir = project("python");
    let mut cfg = PoolConfig {
        max_crashes: 3,
        restart_backoff: Duration::from_millis(20),
        ..config()
    };
    let mut crasher = script_server("scripted.py", "crash");
    crasher
        .env
        .insert("SCRIPTED_CRASH_AFTER_INIT".into(), "1".into());
    cfg.servers.insert("crasher".into(), crasher);
    let pool = LspPool::new(cfg);
    let lease = pool.lease(ProjectKey::new(
        codeflow_types::ProjectId::parse("loop").expect("project id"),
        dir.path(),
    ));
    let outcome = match lease.server_for_file("x.crash").await {
        Err(e) => Err(e),
        Ok(server) => {
            let uri = server.uri_for("x.crash").expect("uri");
            server
                .request::<HoverRequest>(HoverParams {
                    text_document_position_params: TextDocumentPositionParams::new(
                        TextDocumentIdentifier::new(uri),
                        Default::default(),
                    ),
                    work_done_progress_params: Default::default(),
                })
                .await
                .map(|_| ())
        }
    };
    assert!(
        matches!(&outcome, Err(LspError::GaveUp { server, crashes: 3, .. }) if server == "crasher"),
        "{outcome:?}"
    );
    let status = lease.status();
    let s = status
        .iter()
        .find(|s| s.server_id == "crasher")
        .expect("status");
    assert_eq!(s.state, ServerState::Failed);
    assert_eq!(s.crashes, 3);
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("gave up")),
        "{s:?}"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_interrupted_by_a_crash_is_not_run_twice() {
    use codeflow_lsp_pool::lsp_types::request::{ExecuteCommand, HoverRequest};
    use codeflow_lsp_pool::lsp_types::{
        ExecuteCommandParams, HoverParams, TextDocumentIdentifier, TextDocumentPositionParams,
    };

    let dir = project("python");
    let log = dir.path().join("commands.log");
    let mut cfg = PoolConfig {
        restart_backoff: Duration::from_millis(20),
        ..config()
    };
    let mut actor = script_server("scripted.py", "act");
    actor
        .env
        .insert("SCRIPTED_LOG".into(), log.to_string_lossy().into_owned());
    cfg.servers.insert("actor".into(), actor);
    let pool = LspPool::new(cfg);
    let lease = pool.lease(ProjectKey::new(
        codeflow_types::ProjectId::parse("acts").expect("project id"),
        dir.path(),
    ));
    let server = lease.server_for_file("x.act").await.expect("start");

    // The server acts, then dies before answering: the caller hears so, and the command is
    // not sent to the restarted instance (it would act a second time).
    let outcome = server
        .request::<ExecuteCommand>(ExecuteCommandParams {
            command: "act".into(),
            arguments: vec![],
            work_done_progress_params: Default::default(),
        })
        .await;
    assert!(
        matches!(&outcome, Err(LspError::Interrupted { method, .. }) if method == "workspace/executeCommand"),
        "{outcome:?}"
    );
    assert_eq!(std::fs::read_to_string(&log).expect("log"), "act\n");

    // A question is still answered, by the restarted instance.
    let uri = server.uri_for("x.act").expect("uri");
    let hover = server
        .request::<HoverRequest>(HoverParams {
            text_document_position_params: TextDocumentPositionParams::new(
                TextDocumentIdentifier::new(uri),
                Default::default(),
            ),
            work_done_progress_params: Default::default(),
        })
        .await;
    assert!(hover.is_ok(), "{hover:?}");
    assert_eq!(server.status().restarts, 1);
    assert_eq!(std::fs::read_to_string(&log).expect("log"), "act\n");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_preferred_for_an_operation_answers_it_and_a_missing_one_falls_back() {
    use codeflow_lsp_pool::Operation;
    let dir = project("python");
    let mut cfg = config();
    // The default table prefers basedpyright for Python references; a missing preferred
    // server falls back to the main server.
    let mut missing = ServerConfig::new("codeflow-no-such-language-server", &["py"]);
    missing.preferred_for = vec![Operation::Rename];
    cfg.servers.insert("missing-rename".into(), missing);
    let pool = LspPool::new(cfg);
    let lease = pool.lease(ProjectKey::new(
        codeflow_types::ProjectId::parse("preferred").expect("project id"),
        dir.path(),
    ));
    let main = lease.server_for_file("app.py").await.expect("main server");
    assert_eq!(main.server_id(), "pylsp");
    let references = lease
        .server_for_operation("app.py", Operation::References)
        .await
        .expect("references server");
    assert_eq!(references.server_id(), "basedpyright");
    let rename = lease
        .server_for_operation("app.py", Operation::Rename)
        .await
        .expect("falls back");
    assert_eq!(rename.server_id(), "pylsp");
    // Operations nobody is preferred for go to the main server.
    let hover = lease
        .server_for_operation("app.py", Operation::Definition)
        .await
        .expect("main");
    assert_eq!(hover.server_id(), "pylsp");
    pool.shutdown().await;
}

/// Prestarting asks which server a file would get without starting it: the main server for a
/// programming language, nothing for data formats (`prestart = false`) or unclaimed files, and
/// a user's table can turn prestarting off for any server.
#[tokio::test]
async fn prestartable_servers_are_the_main_servers_of_programming_languages() {
    let dir = project("python");
    let mut cfg = config();
    let mut quiet_go = ServerConfig::new("gopls", &["go"]);
    quiet_go.prestart = false;
    cfg.servers.insert("gopls".into(), quiet_go);
    let pool = LspPool::new(cfg);
    let lease = pool.lease(ProjectKey::new(
        codeflow_types::ProjectId::parse("prestart").expect("project id"),
        dir.path(),
    ));
    assert_eq!(
        lease.prestartable_server("app.py").as_deref(),
        Some("pylsp")
    );
    assert_eq!(
        lease.prestartable_server("src/index.ts").as_deref(),
        Some("typescript-language-server")
    );
    for data in ["package.json", "ci/build.yaml", "ci/build.yml", "notes.txt"] {
        assert_eq!(lease.prestartable_server(data), None, "{data}");
    }
    assert_eq!(
        lease.prestartable_server("main.go"),
        None,
        "turned off by the user"
    );
    assert!(pool.status().is_empty(), "nothing was started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_events_for_a_starting_server_wait_for_it_not_the_caller() {
    use codeflow_lsp_pool::lsp_types::notification::DidChangeWatchedFiles;
    use codeflow_lsp_pool::lsp_types::{DidChangeWatchedFilesParams, FileChangeType, FileEvent};

    let dir = project("python");
    let mut cfg = config();
    let mut slow = script_server("scripted.py", "slow");
    slow.env.insert("SCRIPTED_INIT_DELAY".into(), "1.5".into());
    cfg.servers.insert("slow".into(), slow);
    let pool = LspPool::new(cfg);
    let lease = Arc::new(pool.lease(ProjectKey::new(
        codeflow_types::ProjectId::parse("slow-start").expect("project id"),
        dir.path(),
    )));
    // The server starts in the background (as a prestart does) and takes 1.5 s to initialize.
    let starting = {
        let lease = Arc::clone(&lease);
        tokio::spawn(async move { lease.server_by_id("slow").await })
    };
    let server = loop {
        if let Some(s) = lease.running_servers().into_iter().next() {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let event = |name: &str, typ| FileEvent {
        uri: server.uri_for(name).expect("uri"),
        typ,
    };
    let sent = std::time::Instant::now();
    for (name, typ) in [
        ("a.slow", FileChangeType::CREATED),
        ("b.slow", FileChangeType::CHANGED),
        ("a.slow", FileChangeType::DELETED),
    ] {
        server.notify_soon::<DidChangeWatchedFiles>(DidChangeWatchedFilesParams {
            changes: vec![event(name, typ)],
        });
    }
    assert!(
        sent.elapsed() < Duration::from_millis(500),
        "notify_soon waited for the start: {:?}",
        sent.elapsed()
    );
    assert_eq!(server.status().state, ServerState::Starting);

    starting.await.expect("task").expect("started");
    let report = scripted_report(&server, "x.slow").await;
    let names: Vec<String> = report["watched"]
        .as_array()
        .expect("watched")
        .iter()
        .map(|u| u.as_str().unwrap().rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["a.slow", "b.slow", "a.slow"],
        "delivered once it ran, in order"
    );
}
