//! Time as the caller passes it in: the core never reads a clock.
//!
//! Both types count microseconds in a `u64`, like smoltcp's: a timer is one
//! 64-bit add and compare. `core::time::Duration` (seconds and nanoseconds)
//! costs a 64-bit division or a 128-bit product at every conversion, and a
//! connection converts at every timer: 4.3 KB of a Cortex-M0's flash
//! (docs/performance.md, "Firmware"). Conversions to and from
//! `core::time::Duration` (`From`) are there for the host's clocks.

use core::fmt;
use core::ops::{Add, AddAssign, Div, Mul, Sub};

/// A point in time, in microseconds since an epoch the caller chooses
/// (process start, boot). Only differences matter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant(0);

    /// An instant `us` microseconds after the epoch.
    pub const fn from_micros(us: u64) -> Self {
        Instant(us)
    }

    /// An instant `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms * 1000)
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, or zero if `earlier` is later.
    pub const fn since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.0))
    }
}

impl Add<core::time::Duration> for Instant {
    type Output = Instant;
    fn add(self, d: core::time::Duration) -> Instant {
        self + Duration::from(d)
    }
}

/// A span of time in microseconds (up to about 584,000 years).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Duration {
    /// No time.
    pub const ZERO: Duration = Duration(0);
    /// The longest span.
    pub const MAX: Duration = Duration(u64::MAX);

    /// `s` seconds (saturating).
    pub const fn from_secs(s: u64) -> Self {
        Duration(s.saturating_mul(1_000_000))
    }

    /// `ms` milliseconds (saturating).
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms.saturating_mul(1000))
    }

    /// `us` microseconds.
    pub const fn from_micros(us: u64) -> Self {
        Duration(us)
    }

    /// Whole microseconds.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Whole milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1000
    }

    /// Whole seconds.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Seconds as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// Whether this is no time.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self - other`, or zero if `other` is longer.
    pub const fn saturating_sub(self, other: Duration) -> Duration {
        Duration(self.0.saturating_sub(other.0))
    }

    /// `self - other`, or `None` if `other` is longer.
    pub const fn checked_sub(self, other: Duration) -> Option<Duration> {
        match self.0.checked_sub(other.0) {
            Some(d) => Some(Duration(d)),
            None => None,
        }
    }

    /// How long `bytes` take at `rate` bytes per second (not 0), in whole
    /// microseconds, exactly: `bytes * 10^6 / rate` (`bytes` and `rate` at
    /// most 2^32 - 1 and 2^31). In 32-bit divisions only
    /// (a Cortex-M0 then needs no 64-bit divider: 0.9 KB of flash): the whole
    /// microseconds per byte, then the fraction's share in runs of bytes
    /// whose product fits 32 bits, carrying the remainder.
    pub const fn on_the_wire(bytes: usize, rate: u32) -> Duration {
        // No line is faster than 2^31 B/s (17 Gbit/s); the bound keeps `run` >= 1.
        let rate = if rate > 1 << 31 { 1 << 31 } else { rate };
        let (q, r) = (1_000_000 / rate, 1_000_000 % rate);
        let bytes = if bytes > u32::MAX as usize { u32::MAX } else { bytes as u32 };
        let mut us = bytes as u64 * q as u64;
        // run * r + carry < 2^32: carry < rate, and r < rate.
        if let Some(run) = (u32::MAX - rate).checked_div(r) {
            let (mut left, mut carry) = (bytes, 0u32);
            while left > 0 {
                let n = if left < run { left } else { run };
                let t = n * r + carry;
                us += (t / rate) as u64;
                carry = t % rate;
                left -= n;
            }
        }
        Duration(us)
    }

    /// `self * n`, at most [`Duration::MAX`].
    pub const fn saturating_mul(self, n: u32) -> Duration {
        Duration(self.0.saturating_mul(n as u64))
    }
}

impl From<core::time::Duration> for Duration {
    /// Whole microseconds, at most [`Duration::MAX`].
    fn from(d: core::time::Duration) -> Self {
        Duration(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}

impl From<Duration> for core::time::Duration {
    fn from(d: Duration) -> Self {
        core::time::Duration::from_micros(d.0)
    }
}

impl fmt::Debug for Duration {
    /// As `core::time::Duration` shows itself: `1.5s`, `20ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&core::time::Duration::from(*self), f)
    }
}

impl Add for Duration {
    type Output = Duration;
    /// Saturating: a deadline this far out is never.
    fn add(self, o: Duration) -> Duration {
        Duration(self.0.saturating_add(o.0))
    }
}

impl AddAssign for Duration {
    fn add_assign(&mut self, o: Duration) {
        *self = *self + o;
    }
}

impl Sub for Duration {
    type Output = Duration;
    /// Saturating at zero.
    fn sub(self, o: Duration) -> Duration {
        self.saturating_sub(o)
    }
}

impl Mul<u32> for Duration {
    type Output = Duration;
    /// Saturating.
    fn mul(self, n: u32) -> Duration {
        self.saturating_mul(n)
    }
}

impl Mul<Duration> for u32 {
    type Output = Duration;
    fn mul(self, d: Duration) -> Duration {
        d * self
    }
}

impl Div<u32> for Duration {
    type Output = Duration;
    fn div(self, n: u32) -> Duration {
        Duration(self.0 / u64::from(n))
    }
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_ways_and_saturates() {
        let d = Duration::from_millis(1500);
        assert_eq!(core::time::Duration::from(d), core::time::Duration::from_millis(1500));
        assert_eq!(Duration::from(core::time::Duration::from_nanos(2_999)), Duration::from_micros(2));
        assert_eq!(Duration::from(core::time::Duration::MAX), Duration::MAX);
        assert_eq!(Duration::from_secs(u64::MAX), Duration::MAX);
        assert_eq!(Duration::from_millis(5) - Duration::from_millis(7), Duration::ZERO);
        assert_eq!(Instant::from_millis(1) + Duration::MAX, Instant::from_micros(u64::MAX));
        assert_eq!(Instant::from_millis(1).since(Instant::from_millis(3)), Duration::ZERO);
        assert_eq!(format!("{:?}", Duration::from_millis(20)), "20ms");
    }

    #[test]
    fn time_on_the_wire_is_exact() {
        let cases = [(276usize, 200_000u32), (4096, 11_520), (65_535, 250), (1, 1), (9000, 37_500_000)];
        let edges = [(70_000, 999_999), (3, 4_000_000_000), (65_535, u32::MAX), (usize::MAX, 7)];
        for (bytes, rate) in cases.into_iter().chain(edges) {
            let (b, r) = (bytes.min(u32::MAX as usize) as u64, u64::from(rate.min(1 << 31)));
            let exact = b * 1_000_000 / r;
            assert_eq!(Duration::on_the_wire(bytes, rate).as_micros(), exact, "{bytes} B at {rate} B/s");
        }
    }
}
