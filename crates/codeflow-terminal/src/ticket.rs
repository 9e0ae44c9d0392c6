//! Tickets: single-use, short-lived permissions to open one terminal's socket, for clients
//! that cannot send an `Authorization` header on a WebSocket upgrade (browsers). A ticket is
//! bound to whatever the server stores with it (the session's subject, project and rights).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use parking_lot::Mutex;

/// Most tickets waiting at once; older ones are forgotten first.
const MAX_TICKETS: usize = 4096;

/// A ticket as handed to its client.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The secret to put in `?ticket=`.
    pub secret: String,
    /// When it stops being accepted, in ms since the Unix epoch.
    pub expires_at: u64,
}

/// Why a ticket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Never issued, or used already.
    #[error("the ticket is unknown or was used already (a ticket opens one socket)")]
    Unknown,
    /// Issued, but too long ago.
    #[error("the ticket has expired")]
    Expired,
    /// Issued for another terminal.
    #[error("the ticket is for another terminal")]
    OtherTerminal,
}

struct Waiting<B> {
    terminal: String,
    binding: B,
    expires: Instant,
}

/// Tickets waiting for their upgrade.
pub struct Tickets<B> {
    ttl: Duration,
    waiting: Mutex<HashMap<String, Waiting<B>>>,
}

impl<B> Tickets<B> {
    /// Tickets that live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            waiting: Mutex::default(),
        }
    }

    /// A new ticket for `terminal`, carrying `binding`.
    pub fn issue(&self, terminal: &str, binding: B) -> Ticket {
        let bytes: [u8; 32] = rand::random();
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let mut waiting = self.waiting.lock();
        waiting.retain(|_, w| w.expires > now);
        if waiting.len() >= MAX_TICKETS
            && let Some(oldest) = waiting
                .iter()
                .min_by_key(|(_, w)| w.expires)
                .map(|(k, _)| k.clone())
        {
            waiting.remove(&oldest);
        }
        waiting.insert(
            secret.clone(),
            Waiting {
                terminal: terminal.to_owned(),
                binding,
                expires: now + self.ttl,
            },
        );
        let expires_at = SystemTime::now()
            .checked_add(self.ttl)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        Ticket { secret, expires_at }
    }

    /// Takes the ticket (whatever the outcome: a ticket is tried once) and returns its
    /// binding when it is valid for `terminal`.
    pub fn redeem(&self, secret: &str, terminal: &str) -> Result<B, TicketError> {
        let w = self
            .waiting
            .lock()
            .remove(secret)
            .ok_or(TicketError::Unknown)?;
        if w.expires <= Instant::now() {
            return Err(TicketError::Expired);
        }
        if w.terminal != terminal {
            return Err(TicketError::OtherTerminal);
        }
        Ok(w.binding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_opens_one_socket_of_its_terminal() {
        let tickets = Tickets::new(Duration::from_secs(60));
        let t = tickets.issue("a", 7);
        assert_eq!(tickets.redeem(&t.secret, "a"), Ok(7));
        assert_eq!(tickets.redeem(&t.secret, "a"), Err(TicketError::Unknown));
        let t = tickets.issue("a", 8);
        assert_eq!(
            tickets.redeem(&t.secret, "b"),
            Err(TicketError::OtherTerminal)
        );
        assert_eq!(tickets.redeem(&t.secret, "a"), Err(TicketError::Unknown));
        let short = Tickets::new(Duration::ZERO);
        let t = short.issue("a", 1);
        assert_eq!(short.redeem(&t.secret, "a"), Err(TicketError::Expired));
    }
}
