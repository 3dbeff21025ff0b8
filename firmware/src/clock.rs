//! Time for a tickless node: a free-running hardware counter read when needed
//! (no periodic tick), extended to 64 bits, and a one-shot alarm for the next
//! deadline. The board owns the registers; the arithmetic is here, testable
//! on the host.

use strand_link::Instant;

/// The node's monotonic clock and wake-up alarm.
pub trait Clock {
    /// The current time.
    fn now(&mut self) -> Instant;
    /// Arms the one-shot alarm to fire (an interrupt that ends the idle wait)
    /// at `at`, or not at all for `None`. A board may fire early (its timer's
    /// range is limited; see [`MAX_SLEEP_US`]) but never late.
    fn set_alarm(&mut self, at: Option<Instant>);
}

/// Longest the node sleeps without looking at its clock, in microseconds.
/// Waking this often (even with no deadline) lets [`Extender`] see every
/// wrap of a 32-bit counter: at 25 MHz one wraps every 171 s.
pub const MAX_SLEEP_US: u64 = 10_000_000;

/// Turns readings of a wrapping 32-bit up-counter into a 64-bit count,
/// provided it is read at least once per wrap.
#[derive(Debug, Default, Clone)]
pub struct Extender {
    last: u32,
    high: u64,
}

impl Extender {
    /// A 64-bit count from a 32-bit reading.
    pub fn extend(&mut self, reading: u32) -> u64 {
        if reading < self.last {
            self.high += 1 << 32;
        }
        self.last = reading;
        self.high | u64::from(reading)
    }
}

/// Microseconds in `ticks` of a `hz` clock, without overflow for any `u64`.
pub fn ticks_to_micros(ticks: u64, hz: u32) -> u64 {
    let hz = u64::from(hz.max(1));
    (ticks / hz) * 1_000_000 + (ticks % hz) * 1_000_000 / hz
}

/// Ticks of a `hz` clock in `us` microseconds, rounded up (an alarm set from
/// it never fires before the deadline), saturating.
pub fn micros_to_ticks(us: u64, hz: u32) -> u64 {
    let hz = u64::from(hz.max(1));
    (us / 1_000_000).saturating_mul(hz).saturating_add(((us % 1_000_000) * hz).div_ceil(1_000_000))
}

/// How long to sleep from `now` until `deadline` (none: [`MAX_SLEEP_US`]),
/// capped at `MAX_SLEEP_US`, in microseconds; 0 if it has passed.
pub fn sleep_micros(now: Instant, deadline: Option<Instant>) -> u64 {
    match deadline {
        Some(d) => d.as_micros().saturating_sub(now.as_micros()).min(MAX_SLEEP_US),
        None => MAX_SLEEP_US,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extender_carries_each_wrap() {
        let mut e = Extender::default();
        assert_eq!(e.extend(10), 10);
        assert_eq!(e.extend(u32::MAX), u64::from(u32::MAX));
        assert_eq!(e.extend(5), (1 << 32) + 5);
        assert_eq!(e.extend(5), (1 << 32) + 5);
        assert_eq!(e.extend(3), (2 << 32) + 3);
    }

    #[test]
    fn tick_conversions_round_the_safe_way() {
        assert_eq!(ticks_to_micros(25_000_000, 25_000_000), 1_000_000);
        assert_eq!(ticks_to_micros(24, 25_000_000), 0);
        assert_eq!(ticks_to_micros(u64::MAX, 25_000_000), u64::MAX / 25);
        assert_eq!(micros_to_ticks(1, 25_000_000), 25);
        assert_eq!(micros_to_ticks(1, 32_768), 1, "never an alarm before the deadline");
        assert_eq!(micros_to_ticks(u64::MAX, 25_000_000), u64::MAX);
        assert_eq!(sleep_micros(Instant::from_micros(5), Some(Instant::from_micros(3))), 0);
        assert_eq!(sleep_micros(Instant::ZERO, None), MAX_SLEEP_US);
        assert_eq!(sleep_micros(Instant::ZERO, Some(Instant::from_millis(60_000))), MAX_SLEEP_US);
    }
}
