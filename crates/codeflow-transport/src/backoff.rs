//! Reconnect delays: exponential with full jitter, so many relays that lost the same server do
//! not all come back in the same instant.

use std::time::Duration;

/// Exponential backoff with full jitter between `base` and `cap`.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The first attempt's ceiling.
    pub base: Duration,
    /// The largest ceiling: `base` doubles per attempt up to this.
    pub cap: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 0.5 s doubling up to 20 s, as the relay's reconnect contract says.
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(20))
    }
}

impl Backoff {
    /// A backoff at its first attempt.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The ceiling for the current attempt: `min(cap, base * 2^attempt)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next delay, uniformly random in `[0, ceiling]`; advances the attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(rand::random::<f64>())
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_stays_within_it() {
        let mut b = Backoff::default();
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(b.ceiling());
            assert!(b.next_delay() <= b.cap);
        }
        assert_eq!(ceilings[0], Duration::from_millis(500));
        assert_eq!(ceilings[1], Duration::from_secs(1));
        assert_eq!(ceilings[9], Duration::from_secs(20));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(500));
    }
}
