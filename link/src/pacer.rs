//! Spec section 6.8: pacing by what the path delivers.
//!
//! A link told its line rate paces by it (6.3). A path whose rate nobody
//! knows (TCP, stdio, a pipe) or that is slower than it was told (ser2net in
//! front of a slow UART, QEMU's UART) has buffers — socket buffers of
//! megabytes — that fill long before anything is lost: frames then wait for
//! seconds, every timer fires, and each retransmission queues behind the
//! last. So the sender measures the path as BBR does: the delivery rate (bytes
//! acknowledged per second, the windowed maximum) and the shortest round trip,
//! and keeps about two of their products in flight. The buffers stay nearly
//! empty, round trips stay honest, and the rate found also caps frame length.

use crate::time::Duration;
use crate::time::Instant;

/// Window of the shortest round trip.
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// Window of the delivery rate's maximum: several round trips of a slow path.
const RATE_WINDOW: Duration = Duration::from_secs(2);
/// Data in flight, in delivery-rate x shortest-round-trip products: enough to
/// find more rate when there is more (cwnd-limited samples double each round
/// trip), little enough that a path's buffers hold at most about one such product.
const GAIN: u64 = 2;
/// Longest frame time on a path paced by its measured rate.
pub const FRAME_TIME: Duration = Duration::from_millis(100);
/// Frames in flight before anything was measured (TCP's initial window):
/// enough that a lossy start still brings back SACKs to recover by (two gave
/// 51% of a 2 Mbit/s line at BER 1e-3 in linkbench, ten 75%), few enough that
/// a slow path's buffers hold only a second of them at 10,000 B/s.
const INITIAL_FRAMES: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    at: Instant,
    value: u64,
}

/// A windowed extremum (the running maximum or minimum of the last `window`),
/// kept with three samples: the best, and the best of the later quarter and
/// half windows, which take over when the best ages out (K. Nichols' filter,
/// also in Linux's `minmax`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Windowed {
    s: [Sample; 3],
    max: bool,
    set: bool,
}

impl Windowed {
    const fn new(max: bool) -> Self {
        Windowed { s: [Sample { at: Instant::ZERO, value: 0 }; 3], max, set: false }
    }

    fn better(&self, a: u64, b: u64) -> bool {
        if self.max {
            a >= b
        } else {
            a <= b
        }
    }

    fn get(&self) -> Option<u64> {
        self.set.then_some(self.s[0].value)
    }

    fn update(&mut self, window: Duration, at: Instant, value: u64) {
        let new = Sample { at, value };
        if !self.set || self.better(value, self.s[0].value) || at.since(self.s[2].at) > window {
            self.s = [new; 3];
            self.set = true;
            return;
        }
        if self.better(value, self.s[1].value) {
            self.s[1] = new;
            self.s[2] = new;
        } else if self.better(value, self.s[2].value) {
            self.s[2] = new;
        }
        let age = at.since(self.s[0].at);
        if age > window {
            // The best aged out: the later ones move up.
            self.s = [self.s[1], self.s[2], new];
            if at.since(self.s[0].at) > window {
                self.s = [self.s[1], self.s[2], new];
            }
        } else if self.s[1].at == self.s[0].at && age > window / 4 {
            self.s[1] = new;
            self.s[2] = new;
        } else if self.s[2].at == self.s[1].at && age > window / 2 {
            self.s[2] = new;
        }
    }
}

/// The path's delivery rate and shortest round trip, and what follows from them.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    rate: Windowed,
    min_rtt: Windowed,
}

impl Pacer {
    pub const fn new() -> Self {
        Pacer { rate: Windowed::new(true), min_rtt: Windowed::new(false) }
    }

    /// A delivery-rate sample: `bytes` were acknowledged over `interval`.
    pub fn on_rate_sample(&mut self, now: Instant, bytes: u64, interval: Duration) {
        let us = interval.as_micros();
        if us < 1000 || bytes == 0 {
            return; // too short to mean anything
        }
        self.rate.update(RATE_WINDOW, now, bytes * 1_000_000 / us);
    }

    /// A round-trip sample.
    pub fn on_rtt(&mut self, now: Instant, rtt: Duration) {
        self.min_rtt.update(MIN_RTT_WINDOW, now, rtt.as_micros());
    }

    /// The delivery rate in bytes per second, once measured.
    pub fn rate(&self) -> Option<u64> {
        self.rate.get()
    }

    /// Bytes to keep in flight with frames of `frame` bytes: twice the
    /// rate-round-trip product plus two frames (a frame is acknowledged only
    /// whole), or a few frames before anything was measured.
    pub fn window(&self, frame: usize) -> usize {
        match (self.rate.get(), self.min_rtt.get()) {
            (Some(rate), Some(rtt)) => {
                let bdp = rate.saturating_mul(rtt) / 1_000_000;
                (GAIN.saturating_mul(bdp) as usize).saturating_add(2 * frame)
            }
            _ => INITIAL_FRAMES * frame,
        }
    }

    /// The longest payload worth sending at the measured rate ([`FRAME_TIME`]).
    pub fn frame_cap(&self) -> Option<u64> {
        self.rate.get().map(|r| r * FRAME_TIME.as_millis() / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn windowed_max_forgets_an_old_peak() {
        let mut w = Windowed::new(true);
        let win = Duration::from_millis(100);
        w.update(win, ms(0), 50);
        w.update(win, ms(10), 10);
        assert_eq!(w.get(), Some(50));
        w.update(win, ms(60), 20);
        w.update(win, ms(90), 15);
        assert_eq!(w.get(), Some(50), "still in the window");
        w.update(win, ms(120), 5);
        assert_eq!(w.get(), Some(20), "the peak aged out; the best later sample takes over");
        w.update(win, ms(400), 1);
        assert_eq!(w.get(), Some(1), "everything aged out");
    }

    #[test]
    fn windowed_min_keeps_the_shortest() {
        let mut w = Windowed::new(false);
        let win = Duration::from_secs(10);
        for (t, v) in [(0, 30), (100, 20), (200, 40), (300, 25)] {
            w.update(win, ms(t), v);
        }
        assert_eq!(w.get(), Some(20));
    }

    #[test]
    fn window_is_twice_the_product_plus_two_frames() {
        let mut p = Pacer::new();
        assert_eq!(p.window(256), 10 * 256, "nothing measured yet");
        // 10,000 B/s, 40 ms shortest round trip: 400 bytes in the pipe.
        p.on_rate_sample(ms(50), 500, Duration::from_millis(50));
        p.on_rtt(ms(50), Duration::from_millis(40));
        assert_eq!(p.rate(), Some(10_000));
        assert_eq!(p.window(256), 800 + 512);
        assert_eq!(p.frame_cap(), Some(1000));
    }
}
