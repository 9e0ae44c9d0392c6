//! The names of a client certificate the TLS layer verified (mutual TLS): its subject's CN
//! and its subject alternative names, which `[[auth.client_certs]]` maps to grants.

use std::sync::Arc;

use axum_server::tls::TlsInfo;
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::der::asn1::{Ia5StringRef, ObjectIdentifier, PrintableStringRef, Utf8StringRef};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// commonName (RFC 4519).
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// The CN(s) and SANs (DNS names, e-mail addresses, URIs, IP addresses) of the connection's
/// leaf client certificate; empty without one (or without TLS).
pub fn names(info: Option<&Arc<TlsInfo>>) -> Vec<String> {
    let Some(leaf) = info.and_then(|i| i.peer_certificates.first()) else {
        return Vec::new();
    };
    match Certificate::from_der(leaf) {
        Ok(cert) => names_of(&cert),
        Err(e) => {
            // rustls accepted it, so this is unexpected; the client just gets no name.
            tracing::warn!(error = %e, "cannot read the client certificate's names");
            Vec::new()
        }
    }
}

fn names_of(cert: &Certificate) -> Vec<String> {
    let mut names = Vec::new();
    for rdn in cert.tbs_certificate.subject.0.iter() {
        for attribute in rdn.0.iter() {
            if attribute.oid != COMMON_NAME {
                continue;
            }
            let value = &attribute.value;
            let text = value
                .decode_as::<Utf8StringRef<'_>>()
                .map(|s| s.as_str().to_owned())
                .or_else(|_| {
                    value
                        .decode_as::<PrintableStringRef<'_>>()
                        .map(|s| s.as_str().to_owned())
                })
                .or_else(|_| {
                    value
                        .decode_as::<Ia5StringRef<'_>>()
                        .map(|s| s.as_str().to_owned())
                });
            if let Ok(text) = text {
                names.push(text);
            }
        }
    }
    if let Ok(Some((_, san))) = cert.tbs_certificate.get::<SubjectAltName>() {
        for name in san.0 {
            match name {
                GeneralName::DnsName(n)
                | GeneralName::Rfc822Name(n)
                | GeneralName::UniformResourceIdentifier(n) => names.push(n.as_str().to_owned()),
                GeneralName::IpAddress(bytes) => {
                    let b = bytes.as_bytes();
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(b).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(b).ok().map(std::net::IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    names.dedup();
    names
}
