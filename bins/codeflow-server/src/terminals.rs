//! `terminals/*` on `/ws`: a session makes, lists, attaches to and closes terminals of
//! server-side projects; each create or attach hands out a single-use ticket for the
//! terminal's own socket, `/ws/terminal/{id}` (`terminal_socket.rs`).
//!
//! Terminals open in the directory of a project made with `projects/create`. A streamed
//! project's files live in a client container (the server holds only a mirror that language
//! servers read and relays overwrite): a terminal there is refused, with what to do instead.

use std::sync::Arc;

use codeflow_session::{Grant, MethodFamily, MethodReply, ProjectId, Right, Session};
use codeflow_terminal::{NewTerminal, TerminalError, Terminals, Tickets};
use codeflow_transport::{ErrorObject, codes};
use futures::future::BoxFuture;
use serde_json::{Value, json};

/// What a ticket carries to the terminal's socket: who asked for it.
#[derive(Debug, Clone)]
pub struct TicketGrant {
    /// The asking session's grant (subject, projects, rights).
    pub grant: Grant,
    /// The project the terminal runs in.
    pub project: String,
}

/// The tickets of terminal sockets.
pub type TerminalTickets = Tickets<TicketGrant>;

/// Widest and tallest terminal accepted.
const MAX_SIDE: u16 = 1000;
/// Longest `command`, in bytes.
const MAX_COMMAND: usize = 64 * 1024;

/// `terminals/*`.
pub struct TerminalMethods {
    terminals: Terminals,
    tickets: Arc<TerminalTickets>,
    executor: Arc<codeflow_claude_executor::Executor>,
}

impl TerminalMethods {
    pub fn new(
        terminals: Terminals,
        tickets: Arc<TerminalTickets>,
        executor: Arc<codeflow_claude_executor::Executor>,
    ) -> Arc<Self> {
        Arc::new(Self {
            terminals,
            tickets,
            executor,
        })
    }
}

fn error(code: i64, reason: &str, message: impl Into<String>, suggestion: &str) -> ErrorObject {
    let mut e = ErrorObject::new(code, message).with_suggestion(suggestion);
    if let Some(Value::Object(data)) = &mut e.data {
        data.insert("reason".into(), reason.into());
    }
    e
}

fn invalid(message: impl Into<String>) -> ErrorObject {
    error(
        codes::INVALID_PARAMS,
        "invalid_params",
        message,
        "see docs/protocol.md, \"Terminals\"",
    )
}

fn from_terminal(e: TerminalError) -> ErrorObject {
    match &e {
        TerminalError::NotFound(_) => error(
            codes::INVALID_PARAMS,
            "not_found",
            e.to_string(),
            "terminals/list names the project's terminals; terminals/create makes a new one",
        ),
        TerminalError::Limit { what, .. } => {
            let mut err = error(
                codes::LIMIT_EXCEEDED,
                "limit",
                format!("too many terminals {e}"),
                "close one with terminals/close, or ask the operator to raise terminal.max_per_project / terminal.max_total",
            );
            if let Some(Value::Object(data)) = &mut err.data {
                let limit = if *what == "in this project" {
                    "terminals_per_project"
                } else {
                    "terminals"
                };
                data.insert("limit".into(), limit.into());
            }
            err
        }
        TerminalError::Spawn(_) => error(
            codes::INTERNAL_ERROR,
            "internal",
            e.to_string(),
            "check the server's terminal.shell setting and its log",
        ),
        TerminalError::ShuttingDown => error(
            codes::INVALID_REQUEST,
            "conflict",
            e.to_string(),
            "reconnect when the server is back",
        ),
    }
}

/// The project a request names (`project`), or the session's own.
fn project_param(session: &Session, params: &Value) -> Result<ProjectId, ErrorObject> {
    match params.get("project") {
        None | Some(Value::Null) => Ok(session.project.clone()),
        Some(Value::String(p)) => {
            ProjectId::parse(p).map_err(|e| invalid(format!("`project`: {e}")))
        }
        Some(_) => Err(invalid("`project` must be a project id")),
    }
}

fn side(params: &Value, name: &str, default: u16) -> Result<u16, ErrorObject> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| (1..=MAX_SIDE).contains(n))
            .ok_or_else(|| invalid(format!("`{name}` must be a number from 1 to {MAX_SIDE}"))),
    }
}

fn id_param(params: &Value) -> Result<String, ErrorObject> {
    params
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| invalid("`id` (a terminal id from terminals/create) is required"))
}

impl TerminalMethods {
    /// The terminal `id`, if the session's grant covers its project; one that does not is
    /// "not found", like one that does not exist.
    fn visible(
        &self,
        session: &Session,
        id: &str,
    ) -> Result<Arc<codeflow_terminal::Terminal>, ErrorObject> {
        let terminal = self.terminals.get(id).map_err(from_terminal)?;
        if !session.grant().allows_project_name(terminal.project()) {
            return Err(from_terminal(TerminalError::NotFound(id.to_owned())));
        }
        Ok(terminal)
    }

    fn ticket(&self, session: &Session, terminal: &codeflow_terminal::Terminal) -> Value {
        let ticket = self.tickets.issue(
            terminal.id(),
            TicketGrant {
                grant: session.grant(),
                project: terminal.project().to_owned(),
            },
        );
        let info = terminal.info();
        json!({
            "id": terminal.id(),
            "url": format!("/ws/terminal/{}?ticket={}", terminal.id(), ticket.secret),
            "ticket": ticket.secret,
            "expiresAt": ticket.expires_at,
            "project": info.project,
            "command": info.command,
            "cols": info.cols,
            "rows": info.rows,
        })
    }

    fn create(&self, session: &Session, params: &Value) -> Result<Value, ErrorObject> {
        let project = project_param(session, params)?;
        let cols = side(params, "cols", 80)?;
        let rows = side(params, "rows", 24)?;
        let command = match params.get("command") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) if c.len() > MAX_COMMAND || c.contains('\0') => {
                return Err(invalid(format!(
                    "`command` must be at most {MAX_COMMAND} bytes, without NUL"
                )));
            }
            Some(Value::String(c)) if c.trim().is_empty() => None,
            Some(Value::String(c)) => Some(c.clone()),
            Some(_) => return Err(invalid("`command` must be a string")),
        };
        let dir = match self.executor.project_dir(project.as_str()) {
            None => {
                return Err(error(
                    codes::INVALID_PARAMS,
                    "not_found",
                    format!("no project `{project}` on this server"),
                    "terminals open in projects made with projects/create; projects/list names them",
                ));
            }
            // A streamed project has no directory on the server (the executor keeps it empty).
            Some(dir) if dir.as_os_str().is_empty() => {
                return Err(error(
                    codes::INVALID_REQUEST,
                    "streamed",
                    format!(
                        "project `{project}` is streamed: its files live in a client container, and the server's mirror of them is not a place to run commands"
                    ),
                    "open a shell in the container itself, or make a server-side project with projects/create (without `streamed`)",
                ));
            }
            Some(dir) => dir,
        };
        let terminal = self
            .terminals
            .create(&NewTerminal {
                project: project.as_str().to_owned(),
                dir,
                command,
                cols,
                rows,
            })
            .map_err(from_terminal)?;
        Ok(self.ticket(session, &terminal))
    }
}

impl MethodFamily for TerminalMethods {
    fn serves(&self, method: &str) -> bool {
        matches!(
            method,
            "terminals/create" | "terminals/attach" | "terminals/list" | "terminals/close"
        )
    }

    fn handle(
        &self,
        session: Arc<Session>,
        method: String,
        params: Option<Value>,
    ) -> BoxFuture<'static, Result<MethodReply, ErrorObject>> {
        let params = params.unwrap_or(Value::Null);
        // The session layer checked `terminal:open` and that a named project is granted.
        let outcome = if !session.has(Right::TerminalOpen) {
            Err(error(
                codes::FORBIDDEN,
                "forbidden",
                "this token lacks the `terminal:open` right",
                "use a token whose scope includes terminal:open",
            ))
        } else {
            match method.as_str() {
                "terminals/create" => self.create(&session, &params),
                "terminals/attach" => id_param(&params)
                    .and_then(|id| self.visible(&session, &id))
                    .map(|t| self.ticket(&session, &t)),
                "terminals/list" => project_param(&session, &params)
                    .map(|p| json!({"terminals": self.terminals.list(p.as_str())})),
                "terminals/close" => id_param(&params).and_then(|id| {
                    self.visible(&session, &id)?;
                    self.terminals.close(&id).map_err(from_terminal)?;
                    Ok(json!({"id": id, "closed": true}))
                }),
                other => Err(ErrorObject::new(
                    codes::METHOD_NOT_FOUND,
                    format!("unknown method {other}"),
                )),
            }
        };
        Box::pin(async move { outcome.map(MethodReply::Result) })
    }
}
