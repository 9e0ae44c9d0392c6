//! Client certificates as credentials: with mutual TLS (`tls_client_ca`) the TLS layer has
//! already checked the certificate's chain; its names (the subject's CN and the subject
//! alternative names) are looked up in `[[auth.client_certs]]`, and a match is a grant.
//!
//! A verified certificate that matches no entry is no credential of its own: the client
//! then needs a token (or gets `anonymous_rights` when those are set), and the refusal says
//! which certificate name was not mapped.

use std::collections::HashSet;

use crate::auth::{Grant, ProjectScope, Right};

/// One `[[auth.client_certs]]` entry: a certificate name and what it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertGrant {
    /// Matched exactly against the certificate's CN and each of its SANs (DNS name, e-mail,
    /// URI, IP address).
    pub subject: String,
    /// Project ids, or `None` for every project.
    pub projects: Option<Vec<String>>,
    /// The rights it grants.
    pub rights: HashSet<Right>,
}

/// The grant of the first entry one of `names` matches.
pub fn grant_for(entries: &[CertGrant], names: &[String]) -> Option<Grant> {
    let (entry, name) = entries
        .iter()
        .find_map(|e| names.iter().find(|n| **n == e.subject).map(|n| (e, n)))?;
    Some(Grant {
        subject: format!("cert:{name}"),
        projects: match &entry.projects {
            None => ProjectScope::All,
            Some(list) => ProjectScope::Only(list.iter().cloned().collect()),
        },
        rights: entry.rights.clone(),
        expires_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_name_grants() {
        let entries = vec![CertGrant {
            subject: "relay-7.example".into(),
            projects: Some(vec!["web".into()]),
            rights: [Right::LspQuery].into(),
        }];
        let names = vec!["someone".to_owned(), "relay-7.example".to_owned()];
        let grant = grant_for(&entries, &names).unwrap_or_else(|| panic!("no grant"));
        assert_eq!(grant.subject, "cert:relay-7.example");
        assert!(grant.allows_project_name("web") && !grant.allows_project_name("api"));
        assert!(grant_for(&entries, &["other".to_owned()]).is_none());
    }
}
