//! The audit log: one structured line per security-relevant event, on the `codeflow::audit`
//! tracing target so operators can ship it apart from the rest (`docs/security.md`).
//!
//! Every line carries `event`, `outcome`, and where known `subject` (the token's `sub`),
//! `project`, `session`, and what was asked.

use crate::auth::AuthError;
use crate::authorize::Forbidden;
use crate::session::Session;

/// The tracing target of audit lines.
pub const TARGET: &str = "codeflow::audit";

/// A handshake, resume or refresh that succeeded.
pub fn authenticated(session: &Session, how: &'static str) {
    let grant = session.grant();
    tracing::info!(
        target: TARGET,
        event = "auth",
        outcome = "ok",
        how,
        subject = %grant.subject,
        project = %session.project,
        session = %session.id,
        rights = %rights_text(&grant),
    );
}

/// A handshake, resume or refresh that was refused.
pub fn auth_failed(how: &'static str, project: Option<&str>, error: &AuthError) {
    tracing::warn!(
        target: TARGET,
        event = "auth",
        outcome = "refused",
        how,
        project = project.unwrap_or(""),
        reason = error.kind(),
        detail = %error,
    );
}

/// A session closed because its token expired.
pub fn expired(session: &Session) {
    tracing::info!(
        target: TARGET,
        event = "auth",
        outcome = "expired",
        subject = %session.grant().subject,
        project = %session.project,
        session = %session.id,
    );
}

/// A request the authorization point refused.
pub fn refused(session: &Session, method: &str, why: &Forbidden) {
    let what = match why {
        Forbidden::MissingRight { what, .. } => what.as_str(),
        Forbidden::OtherProject => method,
    };
    let right = match why {
        Forbidden::MissingRight { right, .. } => right.as_str(),
        Forbidden::OtherProject => "",
    };
    tracing::warn!(
        target: TARGET,
        event = "forbidden",
        outcome = "refused",
        reason = why.kind(),
        subject = %session.grant().subject,
        project = %session.project,
        session = %session.id,
        method,
        what,
        right,
    );
}

/// A project or Claude operation that was allowed (`projects/*`, `claude/*`).
pub fn operation(session: &Session, method: &str) {
    tracing::info!(
        target: TARGET,
        event = "operation",
        outcome = "allowed",
        subject = %session.grant().subject,
        project = %session.project,
        session = %session.id,
        method,
    );
}

/// A write the server asked a client to make to one of its files, and how it ended.
pub fn client_write(session: &Session, method: &str, path: &str, outcome: &str) {
    tracing::info!(
        target: TARGET,
        event = "client_write",
        outcome,
        subject = %session.grant().subject,
        project = %session.project,
        session = %session.id,
        method,
        path,
    );
}

fn rights_text(grant: &crate::auth::Grant) -> String {
    let mut rights: Vec<&str> = grant.rights.iter().map(|r| r.as_str()).collect();
    rights.sort_unstable();
    rights.join(" ")
}
