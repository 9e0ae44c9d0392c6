//! Reading the `initialize` (or legacy `reconnect`) request: CodeFlow's own fields out, MCP's
//! fields through, protocol version capped.

use codeflow_transport::{ErrorObject, codes};
use serde_json::{Map, Value, json};

use codeflow_types::{ClientRoot, ProjectId};

/// The newest MCP version CodeFlow negotiates on a WebSocket session. The stateless 2026-07-28
/// revision forbids the server→client requests that file streaming needs.
pub const MAX_PROTOCOL_VERSION: &str = "2025-11-25";

/// Fields CodeFlow adds to MCP's `initialize` params; they never reach the MCP service.
const CODEFLOW_FIELDS: &[&str] = &["project", "projectRoot", "token", "sessionId", "auth"];

/// What a client asked for in its handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The project the client works on.
    pub project: ProjectId,
    /// The project's root in the client's filesystem.
    pub root: ClientRoot,
    /// The token sent in the params (the header's is checked too).
    pub token: Option<String>,
    /// An SSH-key login (`auth.sshKey`).
    pub ssh_login: Option<crate::ssh_login::SshLogin>,
    /// Set when the client wants to resume an earlier session.
    pub resume: Option<String>,
    /// The client serves `client/*` file requests.
    pub file_stream: bool,
    /// MCP's `initialize` params, cleaned for the MCP service.
    pub mcp_params: Value,
}

/// A `reconnect` request: resume only.
#[derive(Debug, Clone)]
pub struct Reconnect {
    /// The session to resume.
    pub session_id: String,
    /// The token sent with it.
    pub token: Option<String>,
}

fn invalid(message: impl Into<String>, suggestion: &str) -> ErrorObject {
    ErrorObject::new(codes::INVALID_PARAMS, message).with_suggestion(suggestion)
}

fn string_field<'a>(
    params: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, ErrorObject> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(
            format!("`{name}` must be a string"),
            "see docs/protocol.md, Handshake",
        )),
    }
}

impl Handshake {
    /// Reads `initialize`'s params, or says what is wrong with them.
    pub fn parse(params: Option<Value>) -> Result<Self, ErrorObject> {
        let mut params = match params {
            Some(Value::Object(p)) => p,
            None => Map::new(),
            Some(_) => {
                return Err(invalid(
                    "initialize params must be an object",
                    "send {\"project\": …, \"projectRoot\": …, …}",
                ));
            }
        };
        let project = string_field(&params, "project")?.ok_or_else(|| {
            invalid(
                "initialize needs `project`: the id of the project this client works on",
                "add \"project\": \"my-project\" to the initialize params (codeflow-client sends it from --project)",
            )
        })?;
        let project = ProjectId::parse(project)
            .map_err(|e| invalid(e.to_string(), "pick an id like `my-project` or `app.v2`"))?;
        let root = string_field(&params, "projectRoot")?.ok_or_else(|| {
            invalid(
                "initialize needs `projectRoot`: the client's absolute path of the project",
                "add \"projectRoot\": \"/workspace/app\" (codeflow-client sends it from --root)",
            )
        })?;
        let root = ClientRoot::parse(root).map_err(|e| {
            invalid(
                e.to_string(),
                "send the absolute directory, e.g. /workspace/app",
            )
        })?;
        let token = string_field(&params, "token")?.map(str::to_owned);
        let ssh_login = ssh_login(&params)?;
        let resume = string_field(&params, "sessionId")?.map(str::to_owned);
        let file_stream = params
            .get("capabilities")
            .and_then(|c| c.pointer("/experimental/codeflow/fileStream"))
            .and_then(Value::as_bool)
            .unwrap_or(false);

        for field in CODEFLOW_FIELDS {
            params.remove(*field);
        }
        cap_protocol_version(&mut params);
        params.entry("capabilities").or_insert_with(|| json!({}));
        params
            .entry("clientInfo")
            .or_insert_with(|| json!({"name": "legacy-client", "version": "0"}));
        Ok(Self {
            project,
            root,
            token,
            ssh_login,
            resume,
            file_stream,
            mcp_params: Value::Object(params),
        })
    }
}

/// `auth: {sshKey: {publicKey, challenge, signature}}`, when present.
fn ssh_login(
    params: &Map<String, Value>,
) -> Result<Option<crate::ssh_login::SshLogin>, ErrorObject> {
    let hint = "send auth: {\"sshKey\": {\"publicKey\": \"ssh-ed25519 AAAA…\", \"challenge\": …, \"signature\": \"-----BEGIN SSH SIGNATURE-----…\"}}";
    let ssh = match params.get("auth") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(auth)) => match auth.get("sshKey") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(ssh)) => ssh,
            Some(_) => return Err(invalid("`auth.sshKey` must be an object", hint)),
        },
        Some(_) => return Err(invalid("`auth` must be an object", hint)),
    };
    let field = |name: &str| match ssh.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(invalid(
            format!("`auth.sshKey.{name}` must be a string"),
            hint,
        )),
    };
    Ok(Some(crate::ssh_login::SshLogin {
        public_key: field("publicKey")?,
        challenge: field("challenge")?,
        signature: field("signature")?,
    }))
}

impl Reconnect {
    /// Reads `reconnect`'s params, or says what is wrong with them.
    pub fn parse(params: Option<Value>) -> Result<Self, ErrorObject> {
        let params = match params {
            Some(Value::Object(p)) => p,
            _ => Map::new(),
        };
        let session_id = string_field(&params, "sessionId")?
            .ok_or_else(|| {
                invalid(
                    "reconnect needs `sessionId`",
                    "send the sessionId the initialize result gave you",
                )
            })?
            .to_owned();
        Ok(Self {
            session_id,
            token: string_field(&params, "token")?.map(str::to_owned),
        })
    }
}

/// Caps the requested MCP version at [`MAX_PROTOCOL_VERSION`]; fills in a missing one (legacy
/// clients send none).
fn cap_protocol_version(params: &mut Map<String, Value>) {
    let requested = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .map(str::to_owned);
    // ISO dates compare correctly as strings.
    let version = match requested {
        Some(v) if v.as_str() <= MAX_PROTOCOL_VERSION => v,
        _ => MAX_PROTOCOL_VERSION.to_owned(),
    };
    params.insert("protocolVersion".into(), Value::String(version));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_codeflow_fields_and_caps_version() {
        let h = Handshake::parse(Some(json!({
            "project": "demo", "projectRoot": "/app", "token": "t",
            "protocolVersion": "2026-07-28",
            "capabilities": {"experimental": {"codeflow": {"fileStream": true}}},
            "clientInfo": {"name": "x", "version": "1"}
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.project.as_str(), "demo");
        assert_eq!(h.root.as_str(), "/app");
        assert_eq!(h.token.as_deref(), Some("t"));
        assert!(h.file_stream);
        assert_eq!(h.mcp_params["protocolVersion"], MAX_PROTOCOL_VERSION);
        assert!(h.mcp_params.get("project").is_none());
        assert!(h.mcp_params.get("token").is_none());
    }

    #[test]
    fn keeps_older_versions_and_fills_legacy_gaps() {
        let h = Handshake::parse(Some(
            json!({"project": "p", "projectRoot": "/a", "protocolVersion": "2024-11-05"}),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.mcp_params["protocolVersion"], "2024-11-05");
        assert!(h.mcp_params["clientInfo"].is_object());
        assert!(!h.file_stream);
    }

    #[test]
    fn clear_errors() {
        let err = |p: Value| {
            Handshake::parse(Some(p))
                .err()
                .map(|e| e.message)
                .unwrap_or_default()
        };
        assert!(err(json!({"projectRoot": "/a"})).contains("needs `project`"));
        assert!(err(json!({"project": "../x", "projectRoot": "/a"})).contains("invalid"));
        assert!(err(json!({"project": "p"})).contains("projectRoot"));
        assert!(err(json!({"project": "p", "projectRoot": "rel"})).contains("absolute"));
        assert!(err(json!({"project": 3, "projectRoot": "/a"})).contains("must be a string"));
    }
}
