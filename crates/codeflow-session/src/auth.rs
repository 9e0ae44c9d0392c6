//! Token checks: JWT (HS256 by default) with the claims of the architecture doc, accepting both
//! CodeFlow's spelling (`projects`, `scope`) and the ancestor's (`projectId`, `permissions`).

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use codeflow_types::ProjectId;

/// A right a token can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Right {
    FileRead,
    FileWrite,
    LspQuery,
    ClaudeExecute,
    ProjectsManage,
}

impl Right {
    pub const ALL: [Right; 5] = [
        Right::FileRead,
        Right::FileWrite,
        Right::LspQuery,
        Right::ClaudeExecute,
        Right::ProjectsManage,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "file:read" => Self::FileRead,
            "file:write" => Self::FileWrite,
            "lsp:query" => Self::LspQuery,
            "claude:execute" => Self::ClaudeExecute,
            "projects:manage" => Self::ProjectsManage,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FileRead => "file:read",
            Self::FileWrite => "file:write",
            Self::LspQuery => "lsp:query",
            Self::ClaudeExecute => "claude:execute",
            Self::ProjectsManage => "projects:manage",
        }
    }
}

/// Which projects a grant covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectScope {
    All,
    Only(HashSet<String>),
}

/// What an authenticated (or anonymous, when auth is off) peer may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's `sub`, or `anonymous`.
    pub subject: String,
    pub projects: ProjectScope,
    pub rights: HashSet<Right>,
}

impl Grant {
    /// Everything, for servers that run without authentication.
    pub fn anonymous() -> Self {
        Self {
            subject: "anonymous".into(),
            projects: ProjectScope::All,
            rights: Right::ALL.into_iter().collect(),
        }
    }

    pub fn allows_project(&self, project: &ProjectId) -> bool {
        match &self.projects {
            ProjectScope::All => true,
            ProjectScope::Only(set) => set.contains(project.as_str()),
        }
    }

    pub fn has(&self, right: Right) -> bool {
        self.rights.contains(&right)
    }
}

/// Authentication settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// HS256 secret. Without one, tokens cannot be checked.
    pub jwt_secret: Option<String>,
    /// Refuse peers without a valid token.
    pub require_auth: bool,
    pub issuer: String,
    pub audience: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            require_auth: false,
            issuer: "codeflow".into(),
            audience: "codeflow-clients".into(),
        }
    }
}

/// Why a token was refused. Messages say what to do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    #[error("this server requires a token")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid: {0}")]
    Invalid(String),
    #[error("the token does not grant project `{0}`")]
    WrongProject(String),
    #[error("the server requires auth but has no JWT secret configured")]
    NotConfigured,
}

impl AuthError {
    /// A next step for the person holding the token.
    pub fn suggestion(&self) -> &'static str {
        match self {
            Self::Missing => {
                "pass --token (or CODEFLOW_TOKEN) to codeflow-client, or send `Authorization: Bearer <jwt>`"
            }
            Self::Expired => "mint a new token; `exp` has passed",
            Self::Invalid(_) => {
                "check the token was signed with the server's secret and names issuer `codeflow` and audience `codeflow-clients` (or the configured ones)"
            }
            Self::WrongProject(_) => {
                "use a token whose `projects` (or `projectId`) includes this project"
            }
            Self::NotConfigured => "the server operator must set --jwt-secret",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    projects: Option<ProjectsClaim>,
    #[serde(default, rename = "projectId")]
    project_id: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    permissions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ProjectsClaim {
    Star(String),
    List(Vec<String>),
}

/// Checks tokens against an [`AuthConfig`].
#[derive(Clone)]
pub struct Authenticator {
    config: AuthConfig,
    key: Option<DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("require_auth", &self.config.require_auth)
            .field("has_secret", &self.key.is_some())
            .finish()
    }
}

impl Authenticator {
    pub fn new(config: AuthConfig) -> Self {
        let key = config
            .jwt_secret
            .as_deref()
            .map(|s| DecodingKey::from_secret(s.as_bytes()));
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_audience(&[config.audience.as_str()]);
        validation.set_required_spec_claims(&["exp"]);
        Self {
            config,
            key,
            validation,
        }
    }

    pub fn requires_auth(&self) -> bool {
        self.config.require_auth
    }

    /// Checks a token, if any. A token that is present is always checked, even when auth is
    /// optional: a wrong token is an error, not a silent downgrade to anonymous.
    pub fn verify(&self, token: Option<&str>) -> Result<Grant, AuthError> {
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        match (token, &self.key) {
            (None, _) if self.config.require_auth => Err(AuthError::Missing),
            (None, _) => Ok(Grant::anonymous()),
            (Some(_), None) if self.config.require_auth => Err(AuthError::NotConfigured),
            // No secret and auth optional: tokens cannot be checked, so they grant nothing more
            // than anonymous access does.
            (Some(_), None) => Ok(Grant::anonymous()),
            (Some(token), Some(key)) => self.decode(token, key),
        }
    }

    /// Checks a token and that it grants `project`.
    pub fn verify_for(&self, token: Option<&str>, project: &ProjectId) -> Result<Grant, AuthError> {
        let grant = self.verify(token)?;
        if grant.allows_project(project) {
            Ok(grant)
        } else {
            Err(AuthError::WrongProject(project.to_string()))
        }
    }

    fn decode(&self, token: &str, key: &DecodingKey) -> Result<Grant, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    _ => AuthError::Invalid(e.to_string()),
                }
            })?;
        let claims = data.claims;
        let projects = match (claims.projects, claims.project_id) {
            (Some(ProjectsClaim::Star(s)), _) if s == "*" => ProjectScope::All,
            (Some(ProjectsClaim::Star(s)), _) => ProjectScope::Only([s].into()),
            (Some(ProjectsClaim::List(l)), _) => ProjectScope::Only(l.into_iter().collect()),
            (None, Some(p)) => ProjectScope::Only([p].into()),
            (None, None) => {
                return Err(AuthError::Invalid(
                    "it names no project (`projects` or `projectId`)".into(),
                ));
            }
        };
        let mut rights: HashSet<Right> = HashSet::new();
        let named: Vec<String> = match (claims.scope, claims.permissions) {
            (Some(scope), _) => scope.split_whitespace().map(str::to_owned).collect(),
            (None, Some(p)) => p,
            // A token that names no rights gets read and query rights: enough to use the tools,
            // not to write or run Claude.
            (None, None) => vec!["file:read".into(), "lsp:query".into()],
        };
        for r in &named {
            if let Some(right) = Right::parse(r) {
                rights.insert(right);
            }
        }
        Ok(Grant {
            subject: claims.sub.unwrap_or_else(|| "unnamed".into()),
            projects,
            rights,
        })
    }
}
