//! Pacing for `strand diode-tx`: nothing comes back to slow a diode sender,
//! so it must not send faster than the path carries (a UDP path drops the
//! excess; a serial port's buffers fill).
//!
//! A virtual clock: each batch is due when the previous one's bytes have
//! drained at the rate. The thread sleeps until then (with a 1 µs timer slack
//! instead of Linux's default 50 µs), and idle time earns at most
//! [`MAX_CREDIT`] of burst, so the path never sees more than a batch or two
//! back to back.

use std::time::{Duration, Instant};

/// Most time the pacer may run ahead after an idle spell.
pub const MAX_CREDIT: Duration = Duration::from_millis(2);

/// Paces bytes to a rate.
#[derive(Debug)]
pub struct Pacer {
    bytes_per_s: f64,
    next: Instant,
    /// Time the line stood idle because the caller was late by more than
    /// [`MAX_CREDIT`] (descheduled, waiting for the file): never made up.
    lost: Duration,
}

impl Pacer {
    /// A pacer for `bytes_per_s`; the calling thread gets a fine timer slack.
    pub fn new(bytes_per_s: f64) -> Pacer {
        // Sleeps of a few hundred µs need better than the default 50 µs slack.
        let _ = nix::sys::prctl::set_timerslack(1_000);
        Pacer { bytes_per_s, next: Instant::now(), lost: Duration::ZERO }
    }

    /// Blocks until `bytes` may go, then accounts for them.
    pub fn take(&mut self, bytes: usize) {
        let now = Instant::now();
        if self.next + MAX_CREDIT < now {
            self.lost += now - MAX_CREDIT - self.next;
            self.next = now - MAX_CREDIT;
        }
        if self.next > now {
            std::thread::sleep(self.next - now);
        }
        self.next += Duration::from_secs_f64(bytes as f64 / self.bytes_per_s);
    }

    /// Time lost so far to a caller later than the credit allows.
    pub fn lost(&self) -> Duration {
        self.lost
    }

    /// Frames of `frame` bytes to send per batch: about half a millisecond's
    /// worth, at least one, at most `max`.
    pub fn batch(&self, frame: usize, max: usize) -> usize {
        ((self.bytes_per_s * 0.0005 / frame.max(1) as f64) as usize).clamp(1, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_kept_over_time() {
        // 20 MB/s for 0.1 s: 2 MB in batches of 16 KB. Loose bounds: this only
        // checks the arithmetic, the benchmark measures the precision.
        let mut p = Pacer::new(20e6);
        let start = Instant::now();
        for _ in 0..125 {
            p.take(16_000);
        }
        let t = start.elapsed().as_secs_f64();
        assert!((0.09..0.5).contains(&t), "{t}");
        assert_eq!(p.batch(1430, 64), 6);
        assert_eq!(Pacer::new(20_000.0).batch(1000, 64), 1);
    }
}
