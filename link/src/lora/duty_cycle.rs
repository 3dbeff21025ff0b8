//! Duty-cycle accounting over a rolling window (ETSI EN 300 220: at most x% of
//! any one hour on air, per sub-band).
//!
//! A [`DutyCycle`] keeps a log of this radio's transmissions and answers three
//! questions: how much airtime the window ending now holds ([`DutyCycle::used`]),
//! whether a frame of a given airtime may start now without any window ever
//! exceeding the limit ([`DutyCycle::allows`]), and when the earliest such start
//! is ([`DutyCycle::earliest`]).
//!
//! Why the check is "the window ending at the frame's end": windows that end
//! during the frame hold less of it but at most as much more of the past, so the
//! window ending with the frame is the fullest one the frame belongs to.
//!
//! The log holds `N` transmissions. When it is full the two oldest are merged
//! into one span that remembers its total airtime; a merged span counts
//! `min(airtime, overlap)` in a window, which is never less than the truth, so a
//! small log refuses a little early but never lets a limit be broken.

use core::time::Duration;

use heapless::Deque;

use crate::time::Instant;

/// One hour: the ETSI observation window.
pub const HOUR: Duration = Duration::from_secs(3600);

/// Parts per million that mean "no limit" (100%).
pub const NO_LIMIT_PPM: u32 = 1_000_000;

/// A transmission (or several merged) in the log, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u64,
    end: u64,
    /// Airtime inside `start..end`: `end - start` unless spans were merged.
    airtime: u64,
}

impl Span {
    /// Airtime this span can contribute to the window `(lo, hi]`, never less than the truth.
    fn within(&self, lo: i128, hi: i128) -> u64 {
        let overlap = (self.end as i128).min(hi) - (self.start as i128).max(lo);
        if overlap <= 0 {
            0
        } else {
            (overlap as u64).min(self.airtime)
        }
    }
}

/// Rolling-window duty-cycle accounting for one sub-band of one radio.
#[derive(Debug, Clone)]
pub struct DutyCycle<const N: usize> {
    window_us: u64,
    limit_us: u64,
    log: Deque<Span, N>,
}

/// Microseconds in `d`, rounded up: a frame's airtime is never undercounted.
fn micros_ceil(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1000).min(u64::MAX as u128) as u64
}

impl<const N: usize> DutyCycle<N> {
    /// At most `ratio_ppm` parts per million of any `window` on air.
    pub fn new(ratio_ppm: u32, window: Duration) -> Self {
        const { assert!(N >= 2, "the log needs room to merge two spans") };
        let window_us = micros_ceil(window);
        let limit_us =
            (window_us as u128 * ratio_ppm.min(NO_LIMIT_PPM) as u128 / NO_LIMIT_PPM as u128) as u64;
        DutyCycle { window_us, limit_us, log: Deque::new() }
    }

    /// At most `ratio_ppm` parts per million of any hour (10,000 = 1%).
    pub fn per_hour(ratio_ppm: u32) -> Self {
        Self::new(ratio_ppm, HOUR)
    }

    /// Airtime allowed in one window.
    pub fn limit(&self) -> Duration {
        Duration::from_micros(self.limit_us)
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        Duration::from_micros(self.window_us)
    }

    /// Airtime on air in the window `(now - window, now]`.
    pub fn used(&self, now: Instant) -> Duration {
        let hi = now.as_micros() as i128;
        Duration::from_micros(self.sum_within(hi - self.window_us as i128, hi))
    }

    /// Whether a frame of `airtime` may start at `now`: the window ending with
    /// it stays within the limit.
    pub fn allows(&self, now: Instant, airtime: Duration) -> bool {
        let a = micros_ceil(airtime);
        let end = now.as_micros() as i128 + a as i128;
        a <= self.limit_us && self.sum_within(end - self.window_us as i128, end) + a <= self.limit_us
    }

    /// The earliest instant at or after `now` at which a frame of `airtime` may
    /// start, or `None` if it is longer than a whole window's allowance.
    pub fn earliest(&self, now: Instant, airtime: Duration) -> Option<Instant> {
        let a = micros_ceil(airtime);
        if a > self.limit_us {
            return None;
        }
        if self.allows(now, airtime) {
            return Some(now);
        }
        // The window's left edge L = start + a - window must pass enough old airtime that
        // what remains after L fits in budget B. Past span i (the first whose successors
        // alone fit), remaining(L) = (end_i - L) + tail_i, so L = end_i - (B - tail_i).
        let budget = self.limit_us - a;
        let mut tail: u64 = self.log.iter().map(|s| s.airtime).sum();
        for span in self.log.iter() {
            tail -= span.airtime;
            if tail <= budget {
                let left = span.end as i128 - (budget - tail) as i128;
                let start = left + self.window_us as i128 - a as i128;
                return Some(Instant::from_micros(start.max(now.as_micros() as i128) as u64));
            }
        }
        Some(now) // unreachable: the last span's tail is 0, within any budget
    }

    /// Records a transmission of `airtime` starting at `start`. Transmissions of
    /// one radio do not overlap; a start before the last end is moved to it (which
    /// only ever counts the airtime later, never less).
    pub fn record(&mut self, start: Instant, airtime: Duration) {
        let a = micros_ceil(airtime);
        let mut s = start.as_micros();
        if let Some(last) = self.log.back() {
            s = s.max(last.end);
        }
        // Spans that ended a window ago can never count again (time only moves forward).
        while self.log.front().is_some_and(|f| f.end + self.window_us <= s) {
            self.log.pop_front();
        }
        if self.log.is_full() {
            if let (Some(a0), Some(a1)) = (self.log.pop_front(), self.log.pop_front()) {
                let merged = Span { start: a0.start, end: a1.end, airtime: a0.airtime + a1.airtime };
                // Two were just removed, so there is room.
                let _ = self.log.push_front(merged);
            }
        }
        let _ = self.log.push_back(Span { start: s, end: s + a, airtime: a });
    }

    fn sum_within(&self, lo: i128, hi: i128) -> u64 {
        self.log.iter().map(|s| s.within(lo, hi)).sum()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    const S: u64 = 1_000_000;

    fn at(s: f64) -> Instant {
        Instant::from_micros((s * 1e6).round() as u64)
    }

    fn secs(s: f64) -> Duration {
        Duration::from_micros((s * 1e6).round() as u64)
    }

    /// 1% of an hour = 36 s, filled by 36 one-second frames at 0..36 s.
    fn full_one_percent() -> DutyCycle<64> {
        let mut dc = DutyCycle::<64>::per_hour(10_000);
        assert_eq!(dc.limit(), Duration::from_secs(36));
        for i in 0..36 {
            dc.record(Instant::from_micros(i * S), Duration::from_secs(1));
        }
        dc
    }

    #[test]
    fn a_full_window_refuses_until_old_airtime_slides_out() {
        let dc = full_one_percent();
        assert_eq!(dc.used(at(36.0)), Duration::from_secs(36));
        assert!(!dc.allows(at(36.0), Duration::from_millis(1)));
        assert!(!dc.allows(at(3599.0), secs(1.0)));
        // A 1 s frame at 3600 s: its window (1 s, 3601 s] holds frames 1..36 (35 s) + 1 s.
        assert!(dc.allows(at(3600.0), secs(1.0)));
        assert_eq!(dc.earliest(at(36.0), secs(1.0)), Some(at(3600.0)));
        // Half a frame has to wait for half of the first frame to leave: (0.5, 3600.5].
        assert_eq!(dc.earliest(at(36.0), secs(0.5)), Some(at(3600.0)));
        // Two seconds need the first two frames gone.
        assert_eq!(dc.earliest(at(100.0), secs(2.0)), Some(at(3600.0)));
        // 2.5 s at 3599.9: (2.4, 3602.4] holds 0.6 + 33 s of old frames, 0.1 s too many.
        assert!(!dc.allows(at(3599.9), secs(2.5)));
        assert_eq!(dc.earliest(at(100.0), secs(2.5)), Some(at(3600.0)));
    }

    #[test]
    fn the_window_rolls_continuously() {
        let dc = full_one_percent();
        assert_eq!(dc.used(at(3600.0)), Duration::from_secs(36));
        assert_eq!(dc.used(at(3600.5)), secs(35.5));
        assert_eq!(dc.used(at(3620.0)), secs(16.0));
        assert_eq!(dc.used(at(3636.0)), Duration::ZERO);
    }

    #[test]
    fn ten_percent_sub_band_takes_ten_times_as_much() {
        let mut dc = DutyCycle::<1024>::per_hour(100_000);
        let frame = Duration::from_micros(681_984); // LongFast, 56 bytes
        let mut now = Instant::ZERO;
        let mut sent = 0;
        while dc.allows(now, frame) {
            dc.record(now, frame);
            sent += 1;
            now = now + frame;
        }
        // 360 s / 0.681984 s = 527.9: 527 frames back to back, then the 528th would break it.
        assert_eq!(sent, 527);
        assert_eq!(dc.used(now), Duration::from_micros(527 * 681_984));
        // It fits once the first frame's start has slid out far enough: the window ending at
        // its end holds 526 whole frames + the rest of the first + itself = exactly 360 s.
        let spare = 360_000_000 - 527 * 681_984; // us of allowance left after 527 frames
        let expect = Instant::from_micros(3_600_000_000 - spare);
        assert_eq!(dc.earliest(now, frame), Some(expect));
        dc.record(expect, frame);
        assert_eq!(dc.used(expect + frame), dc.limit());
    }

    #[test]
    fn a_frame_longer_than_the_allowance_never_fits() {
        let dc = DutyCycle::<8>::new(1_000, Duration::from_secs(100)); // 0.1% of 100 s = 100 ms
        assert!(dc.allows(Instant::ZERO, Duration::from_millis(100)));
        assert!(!dc.allows(Instant::ZERO, Duration::from_millis(101)));
        assert_eq!(dc.earliest(Instant::ZERO, Duration::from_millis(101)), None);
    }

    /// Exact rolling-window sum over an unbounded log, for comparison.
    fn exact_used(log: &[(u64, u64)], lo: i128, hi: i128) -> u64 {
        log.iter().map(|&(s, a)| (((s + a) as i128).min(hi) - (s as i128).max(lo)).max(0) as u64).sum()
    }

    #[test]
    fn a_small_log_is_conservative_never_permissive() {
        // Irregular frames into a 4-entry log, checked against the exact sum at every step.
        let mut small = DutyCycle::<4>::new(50_000, Duration::from_secs(60)); // 3 s per minute
        let mut exact: std::vec::Vec<(u64, u64)> = std::vec::Vec::new();
        let mut x: u64 = 12345;
        let mut now = 0u64;
        for _ in 0..400 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let gap = (x >> 33) % 4_000_000;
            let air = 50_000 + (x >> 20) % 400_000;
            now += gap;
            let t = Instant::from_micros(now);
            let w = 60 * S as i128;
            let exact_before = exact_used(&exact, now as i128 + air as i128 - w, now as i128 + air as i128);
            let exact_allows = exact_before + air <= 3 * S;
            let small_allows = small.allows(t, Duration::from_micros(air));
            assert!(
                !small_allows || exact_allows,
                "the merged log allowed what the exact one refuses at {now}"
            );
            assert!(small.used(t).as_micros() as u64 >= exact_used(&exact, now as i128 - w, now as i128));
            if small_allows {
                small.record(t, Duration::from_micros(air));
                exact.push((now, air));
                now += air;
            }
        }
        // And it still sends: the merged log is not refusing everything.
        assert!(exact.len() > 100, "only {} frames sent", exact.len());
    }

    #[test]
    fn earliest_is_the_first_allowed_instant() {
        // Against a brute-force search on a millisecond grid.
        let mut dc = DutyCycle::<16>::new(20_000, Duration::from_secs(10)); // 200 ms per 10 s
        for (s, a) in [(0, 50), (1000, 80), (2500, 60)] {
            dc.record(Instant::from_millis(s), Duration::from_millis(a));
        }
        for (now, air) in [(3000, 30), (3000, 50), (3000, 120), (9000, 200), (5000, 10)] {
            let got = dc.earliest(Instant::from_millis(now), Duration::from_millis(air)).unwrap();
            let brute = (now..)
                .map(Instant::from_millis)
                .find(|&t| dc.allows(t, Duration::from_millis(air)))
                .unwrap();
            assert_eq!(got, brute, "now {now} ms, airtime {air} ms");
        }
    }
}
