//! Credential checks. Tokens: JWT (HS256 with the secret; EdDSA or RS256 with a public key
//! file; any public key of a JWKS file, selected by `kid`) with the claims of the architecture
//! doc, accepting both CodeFlow's spelling (`projects`, `scope`) and the ancestor's
//! (`projectId`, `permissions`). Besides tokens: SSH-key login ([`crate::ssh_login`]) and
//! client certificates mapped to grants ([`crate::client_cert`]); [`Authenticator::login`]
//! picks among them.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use codeflow_types::ProjectId;

/// A right a token can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Right {
    /// `file:read`: read the project's files through tools.
    FileRead,
    /// `file:write`: write, create, rename and delete files through tools.
    FileWrite,
    /// `lsp:query`: ask the language servers (definitions, references, …).
    LspQuery,
    /// `claude:execute`: start, cancel and inspect Claude runs.
    ClaudeExecute,
    /// `projects:manage`: create, delete, join and post to projects.
    ProjectsManage,
    /// `terminal:open`: open, attach to and close terminals in server-side projects (a shell
    /// on the server: not in the default rights).
    TerminalOpen,
}

impl Right {
    /// Every right, in the order they are listed in tokens.
    pub const ALL: [Right; 6] = [
        Right::FileRead,
        Right::FileWrite,
        Right::LspQuery,
        Right::ClaudeExecute,
        Right::ProjectsManage,
        Right::TerminalOpen,
    ];

    /// The right a scope word names (`lsp:query`, …), if any.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "file:read" => Self::FileRead,
            "file:write" => Self::FileWrite,
            "lsp:query" => Self::LspQuery,
            "claude:execute" => Self::ClaudeExecute,
            "projects:manage" => Self::ProjectsManage,
            "terminal:open" => Self::TerminalOpen,
            _ => return None,
        })
    }

    /// The right's scope word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FileRead => "file:read",
            Self::FileWrite => "file:write",
            Self::LspQuery => "lsp:query",
            Self::ClaudeExecute => "claude:execute",
            Self::ProjectsManage => "projects:manage",
            Self::TerminalOpen => "terminal:open",
        }
    }
}

/// Which projects a grant covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectScope {
    /// Every project (`"*"` in a token).
    All,
    /// These project ids only.
    Only(HashSet<String>),
}

/// What an authenticated (or anonymous) peer may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's `sub`, or `anonymous`.
    pub subject: String,
    /// The projects the grant covers.
    pub projects: ProjectScope,
    /// What it may do in them.
    pub rights: HashSet<Right>,
    /// The token's `exp` (seconds since the Unix epoch); `None` for anonymous access.
    pub expires_at: Option<u64>,
}

impl Grant {
    /// Every right on every project: a server without a secret and without configured
    /// anonymous rights (loopback development).
    pub fn anonymous() -> Self {
        Self::anonymous_with(Right::ALL.into_iter().collect())
    }

    /// Anonymous access with exactly these rights, on every project.
    pub fn anonymous_with(rights: HashSet<Right>) -> Self {
        Self {
            subject: "anonymous".into(),
            projects: ProjectScope::All,
            rights,
            expires_at: None,
        }
    }

    /// Whether the grant covers `project`.
    pub fn allows_project(&self, project: &ProjectId) -> bool {
        self.allows_project_name(project.as_str())
    }

    /// [`Self::allows_project`] for a name that has not been validated (it is only compared).
    pub fn allows_project_name(&self, project: &str) -> bool {
        match &self.projects {
            ProjectScope::All => true,
            ProjectScope::Only(set) => set.contains(project),
        }
    }

    /// Whether the grant includes `right`.
    pub fn has(&self, right: Right) -> bool {
        self.rights.contains(&right)
    }

    /// Same subject, projects and rights: the same credentials for a resume, whatever the
    /// expiry (a refreshed token carries a later one).
    pub fn same_access(&self, other: &Grant) -> bool {
        self.subject == other.subject
            && self.projects == other.projects
            && self.rights == other.rights
    }
}

/// The shortest HS256 secret accepted: 32 bytes (256 bits, the size of the MAC).
pub const MIN_SECRET_BYTES: usize = 32;

/// Authentication settings.
///
/// The rule (`docs/security.md`): with a secret, every client needs a valid token unless
/// `anonymous_rights` is set, and then a client without a token gets exactly those rights.
/// Without a secret no token can be checked: every client is anonymous, with
/// `anonymous_rights` or, when unset, every right (loopback development only; the server
/// refuses a non-loopback address without a secret unless `--insecure`).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// HS256 secret. Without one (and without a public key), tokens cannot be checked.
    pub jwt_secret: Option<String>,
    /// PEM public key, Ed25519 (EdDSA tokens) or RSA (RS256 tokens): tokens may be signed
    /// with its private key, instead of or besides the secret. Such tokens are minted
    /// elsewhere (the server holds no private key).
    pub jwt_public_key_pem: Option<String>,
    /// A JWKS file: tokens whose `kid` names one of its keys are checked with that key
    /// (re-read when the file changes).
    pub jwks_file: Option<std::path::PathBuf>,
    /// Client certificate names mapped to grants (`[[auth.client_certs]]`).
    pub client_certs: Vec<crate::client_cert::CertGrant>,
    /// An `authorized_keys`-style file for SSH-key login (`auth.authorized_keys`).
    pub authorized_keys: Option<std::path::PathBuf>,
    /// Refuse peers without a valid token (needs a secret; the default when one is set).
    pub require_auth: bool,
    /// What a client without a token may do; `None` = nothing when a secret is set, every
    /// right when none is.
    pub anonymous_rights: Option<HashSet<Right>>,
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// The `aud` tokens must carry.
    pub audience: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwt_public_key_pem: None,
            jwks_file: None,
            client_certs: Vec::new(),
            authorized_keys: None,
            require_auth: false,
            anonymous_rights: None,
            issuer: "codeflow".into(),
            audience: "codeflow-clients".into(),
        }
    }
}

impl AuthConfig {
    /// Whether any credential can be checked: a secret, a public key, a JWKS file, authorized
    /// SSH keys or client certificate mappings. With one, clients need a credential unless
    /// `anonymous_rights` is set.
    pub fn has_credentials(&self) -> bool {
        self.jwt_secret.is_some()
            || self.jwt_public_key_pem.is_some()
            || self.jwks_file.is_some()
            || self.authorized_keys.is_some()
            || !self.client_certs.is_empty()
    }

    /// Why these settings cannot run, in words for the operator.
    pub fn check(&self) -> Result<(), String> {
        if let Some(secret) = &self.jwt_secret
            && secret.len() < MIN_SECRET_BYTES
        {
            return Err(format!(
                "the JWT secret is {} bytes; it must be at least {MIN_SECRET_BYTES} (generate one with `openssl rand -base64 48`)",
                secret.len()
            ));
        }
        if let Some(pem) = &self.jwt_public_key_pem
            && public_key(pem).is_none()
        {
            return Err(
                "the JWT public key is not an Ed25519 or RSA public key in PEM form (`openssl pkey -pubout`)".into(),
            );
        }
        if let Some(path) = &self.jwks_file {
            crate::jwks::read(path)?;
        }
        if let Some(path) = &self.authorized_keys {
            crate::ssh_login::check_file(path)?;
        }
        if self.require_auth && !self.has_credentials() {
            return Err(
                "--require-auth needs --jwt-secret (or CODEFLOW_JWT_SECRET) or another credential (jwt_public_key, jwt_jwks_file, auth.authorized_keys, auth.client_certs) to check clients".into(),
            );
        }
        if self.require_auth && self.anonymous_rights.is_some() {
            return Err(
                "--require-auth and anonymous_rights contradict each other: drop one".into(),
            );
        }
        Ok(())
    }
}

/// Why a token was refused. Each case has its own message; all are answered with -32001.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    /// No credential was sent and anonymous access is off.
    #[error("this server requires a token")]
    Missing,
    /// The token's `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// The token's `nbf` is in the future.
    #[error("the token is not valid yet (`nbf` is in the future)")]
    NotYetValid,
    /// The signature does not match the configured key.
    #[error("the token's signature does not match this server's secret")]
    BadSignature,
    /// The token is signed with an algorithm the server does not accept.
    #[error("the token is signed with an algorithm this server does not accept (it accepts {0})")]
    WrongAlgorithm(String),
    /// The token's `aud` is not the configured audience.
    #[error("the token is for another audience (`aud`)")]
    WrongAudience,
    /// The token's `iss` is not the configured issuer.
    #[error("the token is from another issuer (`iss`)")]
    WrongIssuer,
    /// The token is not a well-formed JWT.
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    /// The credential is refused for another reason (said in words).
    #[error("the token is invalid: {0}")]
    Invalid(String),
    /// The credential does not grant this project.
    #[error("the token does not grant project `{0}`")]
    WrongProject(String),
    /// A token was sent to a server that checks none.
    #[error("the server requires auth but has no JWT secret configured")]
    NotConfigured,
    /// The token's `kid` names no key of the JWKS file.
    #[error("the token's key id (`kid`) {0} is not in this server's JWKS")]
    UnknownKey(String),
    /// The SSH-key login was refused (said why).
    #[error("SSH-key login refused: {0}")]
    SshKey(String),
    #[error(
        "the client certificate ({0}) maps to no grant in auth.client_certs, and no token was sent"
    )]
    /// A client certificate that maps to no grant.
    UnmappedCertificate(String),
}

impl AuthError {
    /// A next step for the person holding the token.
    pub fn suggestion(&self) -> &'static str {
        match self {
            Self::Missing => {
                "pass --token, --token-file or --token-command to codeflow-client (or send `Authorization: Bearer <jwt>`); an operator mints one with `codeflow-server token`. Where the server offers them, --ssh-key or a mapped client certificate work instead"
            }
            Self::Expired => {
                "mint a new token (`codeflow-server token`); a live session can swap it with `auth/refresh`"
            }
            Self::NotYetValid => "wait until `nbf`, or check the clocks of both machines",
            Self::BadSignature => {
                "the token was signed with another secret: mint it with this server's `codeflow-server token`"
            }
            Self::WrongAlgorithm(_) => "sign the token with an algorithm the server accepts",
            Self::WrongAudience => {
                "the token's `aud` must be the server's jwt_audience (default `codeflow-clients`)"
            }
            Self::WrongIssuer => {
                "the token's `iss` must be the server's jwt_issuer (default `codeflow`)"
            }
            Self::Malformed(_) => {
                "send the JWT as it was minted: three base64url parts joined by dots"
            }
            Self::Invalid(_) => "mint a new token with `codeflow-server token`",
            Self::WrongProject(_) => {
                "use a token whose `projects` (or `projectId`) includes this project"
            }
            Self::NotConfigured => "the server operator must set --jwt-secret",
            Self::UnknownKey(_) => {
                "sign the token with a key of the server's JWKS and put its `kid` in the token's header"
            }
            Self::SshKey(_) => {
                "ask auth/challenge on the same connection, sign it with a key listed in the server's authorized keys (codeflow-client --ssh-key), and send it in initialize at once"
            }
            Self::UnmappedCertificate(_) => {
                "ask the operator to map the certificate's CN or a SAN in [[auth.client_certs]], or send a token"
            }
        }
    }

    /// A short stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::BadSignature => "bad_signature",
            Self::WrongAlgorithm(_) => "wrong_algorithm",
            Self::WrongAudience => "wrong_audience",
            Self::WrongIssuer => "wrong_issuer",
            Self::Malformed(_) => "malformed",
            Self::Invalid(_) => "invalid",
            Self::WrongProject(_) => "wrong_project",
            Self::NotConfigured => "not_configured",
            Self::UnknownKey(_) => "unknown_key",
            Self::SshKey(_) => "ssh_key",
            Self::UnmappedCertificate(_) => "unmapped_certificate",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
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

/// Reads a PEM public key for tokens: Ed25519 (EdDSA) or RSA (RS256), as `openssl pkey
/// -pubout` writes them.
fn public_key(pem: &str) -> Option<(Algorithm, DecodingKey)> {
    ed25519_public_key(pem).or_else(|| {
        DecodingKey::from_rsa_pem(pem.as_bytes())
            .ok()
            .map(|key| (Algorithm::RS256, key))
    })
}

/// Reads a PEM Ed25519 public key (`-----BEGIN PUBLIC KEY-----`).
fn ed25519_public_key(pem: &str) -> Option<(Algorithm, DecodingKey)> {
    use base64::Engine;
    /// The DER of an Ed25519 SubjectPublicKeyInfo up to the 32 key bytes.
    const ED25519_SPKI_PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN PUBLIC KEY-----")
        .skip(1)
        .take_while(|l| *l != "-----END PUBLIC KEY-----")
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let key = der.strip_prefix(&ED25519_SPKI_PREFIX[..])?;
    (key.len() == 32).then(|| (Algorithm::EdDSA, DecodingKey::from_ed_der(key)))
}

/// Checks tokens against an [`AuthConfig`].
#[derive(Clone)]
pub struct Authenticator {
    config: AuthConfig,
    /// Each accepted algorithm with its key; a token is checked with the key of its `alg`.
    keys: Vec<(Algorithm, DecodingKey)>,
    /// Keys selected by a token's `kid`.
    jwks: Option<std::sync::Arc<crate::jwks::Jwks>>,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("require_auth", &self.config.require_auth)
            .field(
                "algorithms",
                &self.keys.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What `codeflow-server token` puts in a token.
#[derive(Debug, Clone)]
pub struct MintRequest {
    /// The token's `sub`: who it is for (shown in the audit log).
    pub subject: String,
    /// Project ids, or `None` for every project (`"*"`).
    pub projects: Option<Vec<String>>,
    /// The rights it grants.
    pub rights: Vec<Right>,
    /// How long it is valid from now.
    pub ttl: std::time::Duration,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Authenticator {
    /// Checks credentials as `config` says.
    pub fn new(config: AuthConfig) -> Self {
        let mut keys: Vec<(Algorithm, DecodingKey)> = Vec::new();
        if let Some(secret) = config.jwt_secret.as_deref() {
            keys.push((
                Algorithm::HS256,
                DecodingKey::from_secret(secret.as_bytes()),
            ));
        }
        // A key that does not parse was refused by `AuthConfig::check` at start-up.
        if let Some(key) = config.jwt_public_key_pem.as_deref().and_then(public_key) {
            keys.push(key);
        }
        // A file that does not read was refused by `AuthConfig::check` at start-up.
        let jwks = config.jwks_file.clone().and_then(|path| {
            crate::jwks::Jwks::open(path)
                .map_err(|e| tracing::error!("{e}"))
                .ok()
                .map(std::sync::Arc::new)
        });
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_audience(&[config.audience.as_str()]);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_nbf = true;
        // Clocks of different machines drift a little; half a minute either way is forgiven
        // at the handshake. A session is closed when `exp` itself passes.
        validation.leeway = 30;
        Self {
            config,
            keys,
            jwks,
            validation,
        }
    }

    /// Whether a client without a credential is refused.
    pub fn requires_auth(&self) -> bool {
        self.config.require_auth
            || (self.config.has_credentials() && self.config.anonymous_rights.is_none())
    }

    /// Whether SSH-key login is offered (`auth/challenge`).
    pub fn ssh_login_enabled(&self) -> bool {
        self.config.authorized_keys.is_some()
    }

    /// Whether tokens can be checked.
    fn checks_tokens(&self) -> bool {
        !self.keys.is_empty() || self.jwks.is_some()
    }

    /// The grant of a client by the credential it presented: a token (always checked when
    /// present), else an SSH-key login, else a mapped client certificate, else anonymous
    /// access (when allowed). `cert_names` are the names of the verified client certificate.
    pub fn login(
        &self,
        token: Option<&str>,
        ssh: Option<(
            &crate::ssh_login::SshLogin,
            Option<crate::ssh_login::Challenge>,
        )>,
        cert_names: &[String],
    ) -> Result<Grant, AuthError> {
        if token.is_some_and(|t| !t.trim().is_empty()) {
            return self.verify(token);
        }
        if let Some((login, issued)) = ssh {
            let Some(path) = &self.config.authorized_keys else {
                return Err(AuthError::SshKey(
                    "this server has no authorized keys (auth.authorized_keys)".into(),
                ));
            };
            return crate::ssh_login::verify(path, login, issued);
        }
        if !cert_names.is_empty() {
            if let Some(grant) =
                crate::client_cert::grant_for(&self.config.client_certs, cert_names)
            {
                return Ok(grant);
            }
            if self.requires_auth() {
                return Err(AuthError::UnmappedCertificate(cert_names.join(", ")));
            }
        }
        self.anonymous()
    }

    /// [`Self::login`], and the grant must cover `project`.
    pub fn login_for(
        &self,
        token: Option<&str>,
        ssh: Option<(
            &crate::ssh_login::SshLogin,
            Option<crate::ssh_login::Challenge>,
        )>,
        cert_names: &[String],
        project: &ProjectId,
    ) -> Result<Grant, AuthError> {
        let grant = self.login(token, ssh, cert_names)?;
        if grant.allows_project(project) {
            Ok(grant)
        } else {
            Err(AuthError::WrongProject(project.to_string()))
        }
    }

    /// The grant of a client without a token, or why it has none.
    fn anonymous(&self) -> Result<Grant, AuthError> {
        if self.requires_auth() {
            return Err(AuthError::Missing);
        }
        Ok(match &self.config.anonymous_rights {
            Some(rights) => Grant::anonymous_with(rights.clone()),
            None => Grant::anonymous(),
        })
    }

    /// Checks a token, if any. A token that is present is always checked when there is a
    /// secret: a wrong token is an error, not a silent downgrade to anonymous.
    pub fn verify(&self, token: Option<&str>) -> Result<Grant, AuthError> {
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        match token {
            None => self.anonymous(),
            Some(_) if !self.checks_tokens() && self.config.require_auth => {
                Err(AuthError::NotConfigured)
            }
            // Other credentials, but no token key: a token cannot be checked, so it is refused
            // rather than taken for nothing.
            Some(_) if !self.checks_tokens() && self.requires_auth() => Err(AuthError::Invalid(
                "this server checks no tokens (it has no JWT secret or key); log in with an SSH key or a client certificate".into(),
            )),
            // No key: tokens cannot be checked, so they grant what anonymous access does.
            Some(_) if !self.checks_tokens() => self.anonymous(),
            Some(token) => self.decode(token),
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

    /// Signs a token with this server's secret (the operator's `codeflow-server token`).
    pub fn mint(&self, request: &MintRequest) -> Result<String, AuthError> {
        let secret = self
            .config
            .jwt_secret
            .as_deref()
            .ok_or(AuthError::NotConfigured)?;
        let now = now_secs();
        let projects = match &request.projects {
            None => serde_json::json!("*"),
            Some(list) => serde_json::json!(list),
        };
        let scope: Vec<&str> = request.rights.iter().map(|r| r.as_str()).collect();
        let claims = serde_json::json!({
            "sub": request.subject,
            "iss": self.config.issuer,
            "aud": self.config.audience,
            "iat": now,
            "nbf": now,
            "exp": now + request.ttl.as_secs(),
            "projects": projects,
            "scope": scope.join(" "),
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    fn decode(&self, token: &str) -> Result<Grant, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let accepted = || {
            let mut algs: Vec<String> = self.keys.iter().map(|(a, _)| format!("{a:?}")).collect();
            if let Some(jwks) = &self.jwks {
                algs.extend(
                    jwks.algorithms()
                        .iter()
                        .map(|a| format!("{a:?} (JWKS, by kid)")),
                );
            }
            algs.join(", ")
        };
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
                AuthError::WrongAlgorithm(accepted())
            }
            _ => AuthError::Malformed(e.to_string()),
        })?;
        // A `kid` selects a JWKS key (when there is a JWKS); otherwise the `alg` selects one
        // of the configured keys.
        let jwks_key = match (&self.jwks, &header.kid) {
            (Some(jwks), Some(kid)) => Some(
                jwks.find(kid)
                    .ok_or_else(|| AuthError::UnknownKey(format!("`{kid}`")))?,
            ),
            _ => None,
        };
        let (algorithm, key) = match &jwks_key {
            Some(k) if k.algorithm != header.alg => {
                return Err(AuthError::WrongAlgorithm(format!(
                    "{:?} for this kid",
                    k.algorithm
                )));
            }
            Some(k) => (k.algorithm, &k.key),
            None => match self.keys.iter().find(|(a, _)| *a == header.alg) {
                Some((a, k)) => (*a, k),
                None if self.jwks.is_some() && header.kid.is_none() => {
                    return Err(AuthError::UnknownKey(
                        "(none: the token has no `kid`)".into(),
                    ));
                }
                None => return Err(AuthError::WrongAlgorithm(accepted())),
            },
        };
        let mut validation = self.validation.clone();
        validation.algorithms = vec![algorithm];
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::MissingAlgorithm
            | ErrorKind::UnsupportedAlgorithm => AuthError::WrongAlgorithm(accepted()),
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_) => AuthError::Malformed(e.to_string()),
            _ => AuthError::Invalid(e.to_string()),
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
            expires_at: claims.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn auth(anonymous: Option<&[Right]>) -> Authenticator {
        Authenticator::new(AuthConfig {
            jwt_secret: Some(SECRET.into()),
            anonymous_rights: anonymous.map(|r| r.iter().copied().collect()),
            ..AuthConfig::default()
        })
    }

    #[test]
    fn a_secret_means_tokens_unless_anonymous_rights_are_given() {
        assert_eq!(auth(None).verify(None), Err(AuthError::Missing));
        let anon = auth(Some(&[Right::FileRead]))
            .verify(None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(anon.rights, [Right::FileRead].into());
        let open = Authenticator::new(AuthConfig::default())
            .verify(None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(open.rights.len(), Right::ALL.len());
    }

    #[test]
    fn minted_tokens_verify_and_short_secrets_are_refused() {
        let a = auth(None);
        let token = a
            .mint(&MintRequest {
                subject: "ops".into(),
                projects: Some(vec!["p".into()]),
                rights: vec![Right::FileRead, Right::FileWrite],
                ttl: std::time::Duration::from_secs(600),
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let grant = a
            .verify_for(
                Some(&token),
                &ProjectId::parse("p").unwrap_or_else(|e| panic!("{e}")),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(grant.subject, "ops");
        assert!(grant.has(Right::FileWrite) && !grant.has(Right::LspQuery));
        let short = AuthConfig {
            jwt_secret: Some("short".into()),
            ..AuthConfig::default()
        };
        assert!(short.check().is_err_and(|e| e.contains("at least 32")));
    }

    #[test]
    fn a_token_is_always_checked_and_a_mapped_certificate_is_a_credential() {
        let a = Authenticator::new(AuthConfig {
            jwt_secret: Some(SECRET.into()),
            client_certs: vec![crate::client_cert::CertGrant {
                subject: "relay-1".into(),
                projects: Some(vec!["p".into()]),
                rights: [Right::LspQuery].into(),
            }],
            ..AuthConfig::default()
        });
        let names = vec!["relay-1".to_owned()];
        let grant = a
            .login(None, None, &names)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(grant.subject, "cert:relay-1");
        // A bad token next to a mapped certificate is refused, not downgraded.
        assert!(matches!(
            a.login(Some("not.a.jwt"), None, &names),
            Err(AuthError::Malformed(_))
        ));
        // A verified certificate without a mapping is no credential.
        assert_eq!(
            a.login(None, None, &["other".to_owned()]),
            Err(AuthError::UnmappedCertificate("other".into()))
        );
        // A JWKS file with a shared secret in it is refused at start-up.
        let dir = std::env::temp_dir().join(format!("codeflow-jwks-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("jwks.json");
        let _ = std::fs::write(
            &file,
            r#"{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}"#,
        );
        let config = AuthConfig {
            jwks_file: Some(file),
            ..AuthConfig::default()
        };
        assert!(
            config
                .check()
                .is_err_and(|e| e.contains("public keys only"))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
