//! Spec section 6.4: round-trip estimation and the retransmission timeout.
//!
//! RFC 6298: SRTT and RTTVAR smoothed with gains 1/8 and 1/4, RTO = SRTT +
//! max(4·RTTVAR, SRTT/2), clamped. Karn's rule is kept by the caller, which samples only
//! frames that were sent once. The link counts a timeout here only while the
//! peer is silent (a lost frame on a noisy line says nothing about the round
//! trip); beyond the first [`GRACE`] such timeouts each doubles the RTO, until
//! a fresh sample or new data acknowledged.

use crate::time::Duration;

/// Timeouts in a row that do not back off the RTO.
pub const GRACE: u32 = 2;

/// Round-trip estimator in microseconds.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    srtt: Option<u64>,
    rttvar: u64,
    backoff: u32,
    initial: u64,
    min: u64,
    max: u64,
    /// A margin of a whole SRTT rather than half (spec 6.8): on a path paced
    /// by its measured rate the round trip includes queues in both
    /// directions that grow and shrink with the other side's frames.
    pub wide: bool,
}

impl RttEstimator {
    /// A fresh estimator using `initial` until the first sample.
    pub fn new(initial: Duration, min: Duration, max: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: 0,
            backoff: 0,
            initial: initial.as_micros(),
            min: min.as_micros(),
            max: max.as_micros(),
            wide: false,
        }
    }

    /// Folds in a round-trip sample from a frame sent exactly once.
    pub fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_micros();
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(s) => {
                self.rttvar = (3 * self.rttvar + s.abs_diff(r)) / 4;
                self.srtt = Some((7 * s + r) / 8);
            }
        }
        self.backoff = 0;
    }

    /// Counts a timeout; past the grace, each doubles the RTO (up to the ceiling).
    pub fn on_timeout(&mut self) {
        self.backoff = (self.backoff + 1).min(16 + GRACE);
    }

    /// Clears the backoff (the peer acknowledged new data).
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// Smoothed RTT, if measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt.map(Duration::from_micros)
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        let base = match self.srtt {
            None => self.initial,
            // RTTVAR collapses on a steady serial line; queueing behind a
            // full driver buffer still jitters, so keep a margin of SRTT/2.
            Some(s) => s + (4 * self.rttvar).max(if self.wide { s } else { s / 2 }).max(1000),
        };
        let backed = base.saturating_mul(1u64 << self.backoff.saturating_sub(GRACE));
        Duration::from_micros(backed.clamp(self.min, self.max.max(self.min)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> RttEstimator {
        RttEstimator::new(Duration::from_secs(1), Duration::from_millis(10), Duration::from_secs(4))
    }

    #[test]
    fn initial_then_converges() {
        let mut e = est();
        assert_eq!(e.rto(), Duration::from_secs(1));
        for _ in 0..50 {
            e.sample(Duration::from_millis(40));
        }
        let rto = e.rto().as_millis();
        assert_eq!(rto, 60, "40 ms + the SRTT/2 jitter margin");
    }

    #[test]
    fn backoff_doubles_and_clamps_then_resets() {
        let mut e = est();
        e.sample(Duration::from_millis(100));
        let base = e.rto();
        for _ in 0..GRACE {
            e.on_timeout();
        }
        assert_eq!(e.rto(), base, "the first timeouts keep the RTO");
        e.on_timeout();
        assert_eq!(e.rto(), base * 2);
        for _ in 0..10 {
            e.on_timeout();
        }
        assert_eq!(e.rto(), Duration::from_secs(4));
        e.sample(Duration::from_millis(100));
        assert!(e.rto() < Duration::from_secs(1));
    }
}
