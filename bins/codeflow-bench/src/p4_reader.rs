//! P4's subscriber side: one thread reads every subscriber's socket through one epoll set.
//!
//! The bench shares the two cores with the server it measures, so its own reading must cost as
//! little as possible: one task per subscriber (a wake-up, a WebSocket decoder and a channel send
//! per event) cost about half as much CPU as the server's whole fan-out. Here each readable socket
//! costs one `recvmsg` and a scan of the few hundred bytes of the frame, and arrivals go to the
//! collector in one batch per `epoll_wait`.
//!
//! Two instants are kept per arrival: when this thread read the frame (what a subscriber's
//! program would see; the figure the target is judged on), and when the last bytes of it
//! entered the subscriber's socket (the kernel's receive timestamp, `SO_TIMESTAMPNS`), which
//! leaves out the time the frame waited for this thread: the split between the server's share
//! and the reader's.

use std::io::IoSliceMut;
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use tokio::sync::mpsc;

/// One event seen by one subscriber.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// The event's offset in the channel.
    pub offset: u64,
    /// When the reader had the whole frame.
    pub read_at: Instant,
    /// When its last bytes entered the socket (kernel clock, since the Unix epoch), if the
    /// kernel said.
    pub in_socket: Option<Duration>,
}

/// Batches of arrivals kept for the collector before the reader waits for it.
const BATCHES: usize = 1024;
/// Readiness events taken per `epoll_wait`.
const EVENTS: usize = 1024;

/// One subscriber's socket and the bytes of a frame not yet complete.
struct Subscriber {
    socket: TcpStream,
    pending: Vec<u8>,
    open: bool,
}

/// The reading thread; stops (and closes the sockets) when dropped.
pub struct Reader {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Reader {
    /// Starts reading `sockets` (subscribed WebSocket connections whose handshake and
    /// answers have been read: from here on only server frames arrive). Arrivals come out of
    /// the returned receiver.
    pub fn start(sockets: Vec<TcpStream>) -> Result<(Self, mpsc::Receiver<Vec<Arrival>>)> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("epoll_create")?;
        let mut subscribers = Vec::with_capacity(sockets.len());
        for (i, socket) in sockets.into_iter().enumerate() {
            socket.set_nonblocking(true)?;
            setsockopt(&socket, sockopt::ReceiveTimestampns, &true).context("SO_TIMESTAMPNS")?;
            epoll
                .add(
                    socket.as_fd(),
                    EpollEvent::new(EpollFlags::EPOLLIN, u64::try_from(i)?),
                )
                .context("epoll_ctl")?;
            subscribers.push(Subscriber {
                socket,
                pending: Vec::new(),
                open: true,
            });
        }
        let (tx, rx) = mpsc::channel(BATCHES);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("p4-reader".into())
            .spawn(move || read_all(&epoll, &mut subscribers, &tx, &stopping))?;
        Ok((
            Self {
                stop,
                thread: Some(thread),
            },
            rx,
        ))
    }
}

fn read_all(
    epoll: &Epoll,
    subscribers: &mut [Subscriber],
    arrivals: &mpsc::Sender<Vec<Arrival>>,
    stop: &AtomicBool,
) {
    let mut events = vec![EpollEvent::empty(); EVENTS];
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    while !stop.load(Ordering::Relaxed) {
        let ready = match epoll.wait(&mut events, EpollTimeout::from(100u16)) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("P4: epoll_wait failed: {e}");
                return;
            }
        };
        let mut batch = Vec::new();
        for event in &events[..ready] {
            let Some(sub) = usize::try_from(event.data())
                .ok()
                .and_then(|i| subscribers.get_mut(i))
            else {
                continue;
            };
            read_one(epoll, sub, &mut buf, &mut cmsg, &mut batch);
        }
        if !batch.is_empty() && arrivals.blocking_send(batch).is_err() {
            return;
        }
    }
}

/// Reads what one socket has, recording every event frame completed.
fn read_one(
    epoll: &Epoll,
    sub: &mut Subscriber,
    buf: &mut [u8],
    cmsg: &mut [u8],
    batch: &mut Vec<Arrival>,
) {
    while sub.open {
        let fd = sub.socket.as_raw_fd();
        let mut iov = [IoSliceMut::new(buf)];
        let (n, in_socket) = match recvmsg::<()>(fd, &mut iov, Some(cmsg), MsgFlags::empty()) {
            Ok(msg) => {
                let mut at = None;
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        if let ControlMessageOwned::ScmTimestampns(ts) = c {
                            at = Some(Duration::from(ts));
                        }
                    }
                }
                (msg.bytes, at)
            }
            Err(nix::errno::Errno::EAGAIN) => return,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => (0, None),
        };
        let read_at = Instant::now();
        if n == 0 {
            sub.open = false;
            let _ = epoll.delete(sub.socket.as_fd());
            return;
        }
        sub.pending.extend_from_slice(&buf[..n]);
        let mut used = 0;
        while let Some((payload, len)) = frame(&sub.pending[used..]) {
            if let Some(offset) = crate::p4::event_offset_bytes(payload) {
                batch.push(Arrival {
                    offset,
                    read_at,
                    in_socket,
                });
            }
            used += len;
        }
        sub.pending.drain(..used);
    }
}

/// The payload and whole length of the first complete server frame in `bytes` (server frames
/// are not masked), or `None` while it is incomplete.
fn frame(bytes: &[u8]) -> Option<(&[u8], usize)> {
    let short = usize::from(*bytes.get(1)? & 0x7f);
    let (len, header): (usize, usize) = match short {
        126 => (
            usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])),
            4,
        ),
        127 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(bytes.get(2..10)?);
            (usize::try_from(u64::from_be_bytes(raw)).ok()?, 10)
        }
        n => (n, 2),
    };
    let end = header.checked_add(len)?;
    Some((bytes.get(header..end)?, end))
}

/// The wall clock now, as the kernel's receive timestamps count it.
pub fn wall_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The TCP socket under a subscribed WebSocket, taken off the async runtime.
pub fn into_socket(ws: crate::ws::Ws) -> Result<TcpStream> {
    match ws.into_inner() {
        tokio_tungstenite::MaybeTlsStream::Plain(s) => Ok(s.into_std()?),
        _ => anyhow::bail!("P4 subscribers use plain ws://"),
    }
}

#[cfg(test)]
mod tests {
    use super::frame;

    #[test]
    fn frames_of_each_length_form() {
        assert_eq!(frame(&[0x81, 2, b'h', b'i', 0x81]), Some((&b"hi"[..], 4)));
        assert_eq!(frame(&[0x81, 3, b'h']), None);
        let mut medium = vec![0x81, 126, 0, 200];
        medium.extend(std::iter::repeat_n(b'x', 200));
        assert_eq!(frame(&medium).map(|(p, n)| (p.len(), n)), Some((200, 204)));
        assert_eq!(frame(&medium[..100]), None);
        assert_eq!(frame(&[0x81]), None);
    }
}
