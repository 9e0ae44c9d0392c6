//! Which socket a request came on, so that a terminal's socket can be taken off the main
//! runtime after its upgrade: the listener records each connection's file descriptor number
//! and peer (`ConnectInfo<SocketFd>`), and [`SocketFd::take`] gets a descriptor of that socket
//! of our own with `pidfd_getfd` on this very process (no `unsafe`: the number is never
//! trusted as a descriptor, the kernel resolves it, and the copy is checked to be connected to
//! the same peer). Where the kernel or a seccomp profile refuses, the caller keeps the
//! connection where it is.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::OnceLock;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;

/// A connection's descriptor number and peer, recorded when it was accepted.
#[derive(Debug, Clone, Copy)]
pub struct SocketFd {
    fd: i32,
    peer: SocketAddr,
}

impl Connected<IncomingStream<'_, TcpListener>> for SocketFd {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Self {
            fd: stream.io().as_fd().as_raw_fd(),
            peer: *stream.remote_addr(),
        }
    }
}

/// This process's pidfd, opened once (`None` where pidfds are not available).
fn own_pidfd() -> Option<&'static OwnedFd> {
    static PIDFD: OnceLock<Option<OwnedFd>> = OnceLock::new();
    PIDFD
        .get_or_init(|| {
            rustix::process::pidfd_open(
                rustix::process::getpid(),
                rustix::process::PidfdFlags::empty(),
            )
            .ok()
        })
        .as_ref()
}

impl SocketFd {
    /// A descriptor of our own for the connection's socket (close-on-exec, the same open
    /// socket), when it can be had and is still connected to the recorded peer.
    pub fn take(&self) -> Option<std::net::TcpStream> {
        let pidfd = own_pidfd()?;
        let fd =
            rustix::process::pidfd_getfd(pidfd, self.fd, rustix::process::PidfdGetfdFlags::empty())
                .ok()?;
        let stream = std::net::TcpStream::from(fd);
        (stream.peer_addr().ok()? == self.peer).then_some(stream)
    }
}
