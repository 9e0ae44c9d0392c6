//! The one authorization point: every message a client sends after the handshake is checked
//! here against its session's grant before anything acts on it.
//!
//! - A method that names a project (`project` or `projectId` in its params or in a tool's
//!   arguments) other than the session's is refused with the same words whether that project
//!   exists or not (R6). Only `projects/*` and `claude/*` (server-side projects and their
//!   runs) may name another project, and only one the token covers.
//! - Each method family needs a right; `tools/call` asks the service which rights the tool
//!   needs ([`crate::SessionService::tool_rights`]), so this crate never names a tool.
//!
//! A refusal is JSON-RPC -32003 with the missing right and a suggestion in `data`.

use codeflow_transport::{ErrorObject, codes};
use serde_json::{Value, json};

use crate::auth::{Grant, Right};
use crate::service::SessionService;
use codeflow_types::ProjectId;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Forbidden {
    /// The grant lacks `right`, which `what` needs.
    MissingRight {
        /// The right that is missing.
        right: Right,
        /// What needs it (a method, or a tool's name).
        what: String,
    },
    /// The request names a project other than the session's.
    OtherProject,
}

impl Forbidden {
    /// The JSON-RPC error the client gets.
    pub fn to_error(&self) -> ErrorObject {
        match self {
            Self::MissingRight { right, what } => ErrorObject {
                code: codes::FORBIDDEN,
                message: format!(
                    "`{what}` needs the `{}` right, which this session's token does not grant",
                    right.as_str()
                ),
                data: Some(json!({
                    "right": right.as_str(),
                    "suggestion": format!(
                        "ask the operator for a token whose scope includes `{}` (codeflow-server token --scope …), then reconnect or send auth/refresh",
                        right.as_str()
                    ),
                })),
            },
            Self::OtherProject => ErrorObject::new(
                codes::FORBIDDEN,
                "a session acts only on its own project",
            )
            .with_suggestion("leave out `project`, or open a session for that project with a token that grants it"),
        }
    }

    /// A short stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MissingRight { .. } => "missing_right",
            Self::OtherProject => "other_project",
        }
    }
}

/// The rights a method needs, tools aside.
fn method_rights(method: &str) -> &'static [Right] {
    match method {
        "server/syncManifest" | "server/syncBegin" | "server/fileChanged" | "server/gitState" => {
            &[Right::FileRead]
        }
        "channels/subscribe" | "channels/unsubscribe" => &[Right::FileRead],
        "files/beginTransfer" => &[Right::FileRead],
        "channels/publish" => &[Right::FileWrite],
        m if m.starts_with("projects/") => &[Right::ProjectsManage],
        m if m.starts_with("claude/") => &[Right::ClaudeExecute],
        m if m.starts_with("terminals/") => &[Right::TerminalOpen],
        _ => &[],
    }
}

/// Project names a message carries: in its params, and in a tool call's arguments.
fn named_projects(params: Option<&Value>) -> impl Iterator<Item = &Value> {
    let arguments = params.and_then(|p| p.get("arguments"));
    [params, arguments]
        .into_iter()
        .flatten()
        .flat_map(|v| [v.get("project"), v.get("projectId")])
        .flatten()
}

/// Checks one client request or notification of a session on `project` holding `grant`.
pub fn authorize(
    grant: &Grant,
    project: &ProjectId,
    service: &dyn SessionService,
    method: &str,
    params: Option<&Value>,
) -> Result<(), Forbidden> {
    for named in named_projects(params) {
        let same = named.as_str() == Some(project.as_str());
        // Projects, Claude runs and terminals live on the server, not in the session's tree:
        // those families may name any project the token grants (R6: "unless its token names
        // B").
        let server_side = method.starts_with("projects/")
            || method.starts_with("claude/")
            || method.starts_with("terminals/");
        let allowed =
            same || (server_side && named.as_str().is_some_and(|n| grant.allows_project_name(n)));
        if !allowed {
            return Err(Forbidden::OtherProject);
        }
    }
    let (what, needed) = if method == "tools/call" {
        let tool = params
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let arguments = params.and_then(|p| p.get("arguments"));
        (tool.to_owned(), service.tool_rights(tool, arguments))
    } else {
        (method.to_owned(), method_rights(method).to_vec())
    };
    match needed.into_iter().find(|r| !grant.has(*r)) {
        Some(right) => Err(Forbidden::MissingRight { right, what }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    struct Tools;
    impl SessionService for Tools {
        fn start(
            &self,
            _: std::sync::Arc<crate::Session>,
        ) -> std::sync::Arc<dyn crate::SessionHandler> {
            struct Nothing;
            impl crate::SessionHandler for Nothing {
                fn deliver(&self, _: codeflow_transport::Message) -> crate::Delivery<'_> {
                    Box::pin(async {})
                }
            }
            std::sync::Arc::new(Nothing)
        }
        fn tool_rights(&self, tool: &str, _: Option<&Value>) -> Vec<Right> {
            match tool {
                "write" => vec![Right::FileWrite],
                _ => vec![Right::LspQuery],
            }
        }
    }

    fn grant(rights: &[Right], projects: &[&str]) -> Grant {
        Grant {
            subject: "t".into(),
            projects: crate::ProjectScope::Only(projects.iter().map(|p| (*p).to_owned()).collect()),
            rights: rights.iter().copied().collect::<HashSet<_>>(),
            expires_at: None,
        }
    }

    #[test]
    fn rights_per_family_and_projects() {
        let a = ProjectId::parse("a").unwrap_or_else(|e| panic!("{e}"));
        let reader = grant(&[Right::FileRead, Right::LspQuery], &["a", "b"]);
        let call = |g: &Grant, m: &str, p: Value| authorize(g, &a, &Tools, m, Some(&p));
        assert!(call(&reader, "tools/call", json!({"name": "read"})).is_ok());
        assert_eq!(
            call(&reader, "tools/call", json!({"name": "write"})).map_err(|e| e.kind()),
            Err("missing_right")
        );
        let e = call(&reader, "projects/list", json!({}))
            .err()
            .map(|e| e.to_error());
        assert_eq!(e.as_ref().map(|e| e.code), Some(codes::FORBIDDEN));
        assert_eq!(
            e.and_then(|e| e.data).map(|d| d["right"].clone()),
            Some(json!("projects:manage"))
        );
        assert!(call(&reader, "claude/run", json!({})).is_err());
        assert!(call(&reader, "ping", json!({})).is_ok());
        // Another project: refused the same way, existing or not, even when the token covers
        // it — outside `projects/*`.
        let other = call(
            &reader,
            "channels/subscribe",
            json!({"channel": "files", "project": "b"}),
        );
        let unknown = call(
            &reader,
            "channels/subscribe",
            json!({"channel": "files", "project": "zz"}),
        );
        assert_eq!(other, Err(Forbidden::OtherProject));
        assert_eq!(other, unknown);
        assert_eq!(
            call(
                &reader,
                "tools/call",
                json!({"name": "read", "arguments": {"project": "b"}})
            ),
            Err(Forbidden::OtherProject)
        );
        let manager = grant(&[Right::ProjectsManage], &["a", "b"]);
        assert!(call(&manager, "projects/status", json!({"project": "b"})).is_ok());
        let runner = grant(&[Right::ClaudeExecute], &["a", "b"]);
        assert!(call(&runner, "claude/execute", json!({"project": "b"})).is_ok());
        assert_eq!(
            call(&runner, "claude/execute", json!({"project": "zz"})),
            Err(Forbidden::OtherProject)
        );
        assert_eq!(
            call(&manager, "projects/status", json!({"project": "zz"})),
            Err(Forbidden::OtherProject)
        );
    }
}
