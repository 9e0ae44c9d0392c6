//! SSH-key login: a client proves it holds a key listed in an `authorized_keys`-style file by
//! signing a challenge the server issued on the same connection (SSHSIG, namespace
//! `codeflow`). Each key's options name its projects and rights:
//!
//! ```text
//! codeflow-projects="web,api",codeflow-scope="file:read lsp:query" ssh-ed25519 AAAA… alice@laptop
//! ```
//!
//! A challenge is random, issued by `auth/challenge` before `initialize`, bound to its
//! connection, good for [`CHALLENGE_TTL`] and for one `initialize` only (used or not).
//! The file is read at each login, so an edit takes effect for the next one.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use ssh_key::{AuthorizedKeys, HashAlg, PublicKey, SshSig};

use crate::auth::{AuthError, Grant, ProjectScope, Right};

/// The SSHSIG namespace a login signature must carry.
pub const NAMESPACE: &str = "codeflow";
/// How long an issued challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(60);
/// The `authorized_keys` option naming a key's projects (`"*"` for all).
pub const PROJECTS_OPTION: &str = "codeflow-projects";
/// The `authorized_keys` option naming a key's rights (default `file:read lsp:query`).
pub const SCOPE_OPTION: &str = "codeflow-scope";

/// A challenge issued to one connection.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// The random challenge, as sent.
    pub value: String,
    /// When it was issued (it expires after a minute).
    pub issued: Instant,
}

impl Challenge {
    /// A fresh random challenge (256 bits from the OS's generator, through two v4 UUIDs'
    /// 122 random bits each, plus the time).
    pub fn new() -> Self {
        let value = format!(
            "codeflow-login:{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        Self {
            value,
            issued: Instant::now(),
        }
    }
}

impl Default for Challenge {
    fn default() -> Self {
        Self::new()
    }
}

/// What a client sends in `initialize`'s `auth.sshKey`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshLogin {
    /// The public key in OpenSSH form (`ssh-ed25519 AAAA… comment`).
    pub public_key: String,
    /// The challenge it signed.
    pub challenge: String,
    /// The SSHSIG signature in PEM form (`-----BEGIN SSH SIGNATURE-----`).
    pub signature: String,
}

fn refused(why: impl Into<String>) -> AuthError {
    AuthError::SshKey(why.into())
}

/// Checks a login against the challenge this connection was issued (taken: one use) and the
/// authorized keys file; the grant names the key by its comment (or fingerprint).
pub fn verify(
    authorized_keys: &Path,
    login: &SshLogin,
    issued: Option<Challenge>,
) -> Result<Grant, AuthError> {
    let issued = issued.ok_or_else(|| {
        refused("no challenge was issued on this connection (or it was used already): send auth/challenge first, on the same connection")
    })?;
    if issued.value != login.challenge {
        return Err(refused(
            "the signed challenge is not the one issued on this connection (a replay, or from another connection)",
        ));
    }
    if issued.issued.elapsed() > CHALLENGE_TTL {
        return Err(refused(format!(
            "the challenge expired ({} s to answer it)",
            CHALLENGE_TTL.as_secs()
        )));
    }
    let key = PublicKey::from_openssh(login.public_key.trim())
        .map_err(|e| refused(format!("`publicKey` is not an OpenSSH public key: {e}")))?;
    let signature = SshSig::from_pem(login.signature.trim())
        .map_err(|e| refused(format!("`signature` is not an SSH signature (PEM): {e}")))?;
    key.verify(NAMESPACE, login.challenge.as_bytes(), &signature)
        .map_err(|e| refused(format!("the signature does not verify with that key: {e}")))?;
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let entries = AuthorizedKeys::read_file(authorized_keys).map_err(|e| {
        tracing::error!(file = %authorized_keys.display(), error = %e, "cannot read authorized_keys");
        refused("the server cannot read its authorized keys")
    })?;
    let entry = entries
        .iter()
        .find(|e| e.public_key().key_data() == key.key_data())
        .ok_or_else(|| {
            refused(format!(
                "key {fingerprint} is not in this server's authorized keys"
            ))
        })?;
    let listed = entry.public_key();
    let who = if listed.comment().is_empty() {
        fingerprint.clone()
    } else {
        listed.comment().to_owned()
    };
    let options = KeyOptions::parse(entry.config_opts().iter()).map_err(|e| {
        refused(format!(
            "the authorized keys entry of {who} is invalid: {e}"
        ))
    })?;
    Ok(Grant {
        subject: format!("ssh:{who}"),
        projects: options.projects,
        rights: options.rights,
        expires_at: None,
    })
}

/// A key's CodeFlow options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOptions {
    /// The projects the key may work on (`codeflow-projects`).
    pub projects: ProjectScope,
    /// What it may do (`codeflow-scope`).
    pub rights: HashSet<Right>,
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

impl KeyOptions {
    /// Reads `codeflow-projects` and `codeflow-scope` among an entry's options (others, such
    /// as OpenSSH's own, are ignored). Without `codeflow-projects` a key grants no project.
    pub fn parse<'a>(options: impl Iterator<Item = &'a str>) -> Result<Self, String> {
        let mut projects = ProjectScope::Only(HashSet::new());
        let mut rights: HashSet<Right> = [Right::FileRead, Right::LspQuery].into();
        for option in options {
            let (name, value) = option.split_once('=').unwrap_or((option, ""));
            let value = unquote(value);
            let words = || value.split([',', ' ']).filter(|w| !w.is_empty());
            match name {
                PROJECTS_OPTION if value.trim() == "*" => projects = ProjectScope::All,
                PROJECTS_OPTION => {
                    projects = ProjectScope::Only(words().map(str::to_owned).collect());
                }
                SCOPE_OPTION => {
                    rights = words()
                        .map(|w| Right::parse(w).ok_or_else(|| format!("unknown right `{w}`")))
                        .collect::<Result<_, _>>()?;
                }
                _ => {}
            }
        }
        Ok(Self { projects, rights })
    }
}

/// Checks an authorized keys file at start-up: it reads, and every CodeFlow option parses.
pub fn check_file(path: &Path) -> Result<usize, String> {
    let entries = AuthorizedKeys::read_file(path)
        .map_err(|e| format!("cannot read authorized_keys {}: {e}", path.display()))?;
    for entry in &entries {
        KeyOptions::parse(entry.config_opts().iter()).map_err(|e| {
            format!(
                "{}: the entry of `{}`: {e}",
                path.display(),
                entry.public_key().comment()
            )
        })?;
    }
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_name_projects_and_rights() {
        let o = KeyOptions::parse(
            [
                "no-pty",
                "codeflow-projects=\"a,b\"",
                "codeflow-scope=\"lsp:query,file:write\"",
            ]
            .into_iter(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            o.projects,
            ProjectScope::Only(["a".into(), "b".into()].into())
        );
        assert_eq!(o.rights, [Right::LspQuery, Right::FileWrite].into());
        let none = KeyOptions::parse(std::iter::empty()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(none.projects, ProjectScope::Only(HashSet::new()));
        assert!(KeyOptions::parse(["codeflow-scope=\"root\""].into_iter()).is_err());
        let all = KeyOptions::parse(["codeflow-projects=\"*\""].into_iter())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.projects, ProjectScope::All);
    }
}
