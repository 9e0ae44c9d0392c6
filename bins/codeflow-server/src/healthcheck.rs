//! `codeflow-server healthcheck`: asks a running server's `/healthz` on this machine, for
//! container health checks (the runtime image has no shell tools to do it). Reads the same
//! configuration as the server, so it probes the port and scheme the server listens on.
//! Exit code 0 when the server answers 200 with status `ok`, 1 otherwise.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::Config;

const TIMEOUT: Duration = Duration::from_secs(3);

/// Probes the server and prints one line about it; returns the exit code.
pub fn run(config: &Config) -> i32 {
    let addr = SocketAddr::new(probe_ip(config.bind), config.port);
    let tls = config.tls_cert.is_some();
    match probe(addr, tls) {
        Ok(body) => {
            println!("healthy: {body}");
            0
        }
        Err(e) => {
            eprintln!(
                "unhealthy: {}://{addr}/healthz: {e:#}",
                if tls { "https" } else { "http" }
            );
            1
        }
    }
}

/// A wildcard bind is reached on loopback.
fn probe_ip(bind: IpAddr) -> IpAddr {
    match bind {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

fn probe(addr: SocketAddr, tls: bool) -> anyhow::Result<String> {
    let mut tcp = TcpStream::connect_timeout(&addr, TIMEOUT).context("cannot connect")?;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    tcp.set_write_timeout(Some(TIMEOUT))?;
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: codeflow-server-healthcheck\r\n\r\n"
    );
    let mut raw = Vec::new();
    if tls {
        // The probe checks that the server answers, not who it is (a certificate names a public
        // host, not 127.0.0.1): the transport's "accept any certificate" trust, signatures
        // still checked.
        let config = codeflow_transport::tls::client_config(
            &codeflow_transport::tls::ServerTrust::Insecure,
            None,
        )?
        .context("no TLS client configuration")?;
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let mut session = rustls::ClientConnection::new(config, name)?;
        let mut stream = rustls::Stream::new(&mut session, &mut tcp);
        stream.write_all(request.as_bytes())?;
        read_all(&mut stream, &mut raw)?;
    } else {
        tcp.write_all(request.as_bytes())?;
        read_all(&mut tcp, &mut raw)?;
    }
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1).unwrap_or("");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
    if !text.starts_with("HTTP/") {
        bail!(
            "no HTTP answer{}",
            if tls {
                ""
            } else {
                " (a TLS port? the probe uses TLS when tls_cert is set, as the server does)"
            }
        );
    }
    if status != "200" {
        bail!("answered HTTP {status} instead of 200");
    }
    if !body.contains("\"status\":\"ok\"") {
        bail!("answered without status ok: {body}");
    }
    Ok(body.to_owned())
}

/// Reads to the end; a peer that closes without TLS close_notify after the body is fine.
fn read_all(stream: &mut impl Read, into: &mut Vec<u8>) -> std::io::Result<()> {
    match stream.read_to_end(into) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !into.is_empty() => Ok(()),
        Err(e) => Err(e),
    }
}
