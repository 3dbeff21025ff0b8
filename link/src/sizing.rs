//! Spec section 6.6: choosing the DATA payload size from measured frame loss.
//!
//! With a per-byte error probability `e` and a per-frame overhead of `H` bytes,
//! the efficiency of a payload `P` is `P/(P+H) · (1-e)^(P+H)`, maximal where
//! `P·(P+H) = H/e`. The sizer measures the frame loss ratio `p` at the sizes
//! it used, turns it into errors per frame `λ = -ln(1-p)` (a lost frame may
//! hold several errors) and so into `e = λ / frame bytes`, then solves for `P`.

/// Per-frame overhead on the wire: header, CRC, delimiter, ~1 COBS byte, and
/// the share of the reverse ACK traffic that the frame costs its sender
/// (nothing on a full-duplex line; the constant covers the first four).
pub const FRAME_COST: u64 = (crate::wire::OVERHEAD + 2) as u64;

/// Payload used until the line has been measured: ~3 ms of a 115,200 bit/s
/// line, and small enough that a frame gets through one time in two even at a
/// bit-error rate of 3e-4. It doubles once frames of the current size are
/// acknowledged without loss, so a clean line reaches 4 KiB frames in four
/// round trips.
pub const INITIAL_PAYLOAD: u16 = 256;

/// Frames whose fate is known before a loss estimate is trusted.
const MIN_FRAMES: u64 = 8;

/// Frames that must be acknowledged at one size before it may double.
const GROW_AFTER: u64 = 4;

/// Loss-driven payload size policy.
#[derive(Debug, Clone)]
pub struct Sizer {
    /// Wire bytes of DATA frames sent, first transmissions and repeats (decayed).
    bytes: u64,
    /// DATA frames sent (decayed alongside `bytes`).
    frames: u64,
    /// Frames acknowledged (decayed).
    delivered: u64,
    /// Frames judged lost (decayed).
    losses: u64,
    /// Frames of the current size acknowledged since the size last changed.
    delivered_at_size: u64,
    min: u16,
    max: u16,
    current: u16,
    /// Adaptation off: always the maximum.
    fixed: bool,
}

use crate::math::ln;

impl Sizer {
    /// A sizer between `min` and `max`, starting at [`INITIAL_PAYLOAD`].
    pub fn new(min: u16, max: u16) -> Self {
        let min = min.min(max);
        Sizer {
            bytes: 0,
            frames: 0,
            delivered: 0,
            losses: 0,
            delivered_at_size: 0,
            min,
            max,
            current: INITIAL_PAYLOAD.clamp(min, max),
            fixed: false,
        }
    }

    /// A sizer that always answers `max` (adaptation switched off).
    pub fn fixed(max: u16) -> Self {
        Sizer { current: max, fixed: true, ..Sizer::new(max, max) }
    }

    /// The payload size to use for the next fragment.
    pub fn current(&self) -> u16 {
        self.current
    }

    /// The upper bound: the largest size the sizer may move to.
    pub fn max(&self) -> u16 {
        self.max
    }

    /// Changes the bounds (after the handshake, or when the driver asks).
    pub fn set_bounds(&mut self, min: u16, max: u16) {
        self.min = min.min(max);
        self.max = max;
        self.current = if self.fixed { max } else { self.current.clamp(self.min, self.max) };
    }

    /// Records a DATA frame of `payload` bytes sent (first time or again).
    pub fn on_sent(&mut self, payload: usize) {
        self.bytes += payload as u64 + FRAME_COST;
        self.frames += 1;
        // Decay so the estimate follows a line whose noise changes.
        if self.frames > 256 {
            self.bytes /= 2;
            self.frames /= 2;
            self.delivered /= 2;
            self.losses /= 2;
        }
    }

    /// Records `n` DATA frames acknowledged, `full` of them carrying at least
    /// the current payload size. Only those justify growing: acks that arrive
    /// just after a change are for frames sent at the old size.
    pub fn on_delivered(&mut self, n: u32, full: u32) {
        self.delivered += u64::from(n);
        self.delivered_at_size += u64::from(full);
        self.update();
    }

    /// Records `n` DATA frames judged lost.
    pub fn on_lost(&mut self, n: u32) {
        self.losses += u64::from(n);
        self.update();
    }

    /// Takes back `n` losses: frames judged lost whose first copy arrived after
    /// all (a spurious retransmission), so they say nothing about frame size.
    pub fn on_not_lost(&mut self, n: u32) {
        self.losses = self.losses.saturating_sub(u64::from(n));
    }

    fn update(&mut self) {
        if self.fixed || !cfg!(feature = "adaptive") {
            return;
        }
        let resolved = self.delivered + self.losses;
        // Few samples: keep the current size rather than chase noise.
        if resolved < MIN_FRAMES || self.frames == 0 {
            return;
        }
        let best = if self.losses == 0 {
            u64::from(self.max)
        } else {
            let p = (self.losses as f32 / resolved as f32).min(0.99);
            let errors_per_frame = -ln(1.0 - p);
            let frame_bytes = self.bytes as f32 / self.frames as f32;
            let bytes_per_error = (frame_bytes / errors_per_frame) as u64;
            let h = FRAME_COST;
            // Positive root of P² + H·P − H/e = 0.
            ((h * h).saturating_add(4 * h * bytes_per_error).isqrt() - h) / 2
        };
        let best = best.clamp(u64::from(self.min), u64::from(self.max)) as u16;
        let next = if best < self.current {
            best
        } else if best > self.current && self.delivered_at_size >= GROW_AFTER {
            // Grow by at most a doubling per clean run: losses at the new size
            // show up before much data is committed to frames that big.
            best.min(self.current.saturating_mul(2))
        } else {
            self.current
        };
        if next != self.current {
            self.current = next;
            self.delivered_at_size = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_line_grows_to_max_by_doubling_on_acknowledged_frames() {
        let mut s = Sizer::new(64, 4000);
        assert_eq!(s.current(), INITIAL_PAYLOAD);
        for _ in 0..100 {
            s.on_sent(256);
        }
        assert_eq!(s.current(), 256, "sending alone proves nothing");
        for _ in 0..20 {
            s.on_delivered(1, 0);
        }
        assert_eq!(s.current(), 256, "acks of smaller frames prove nothing about this size");
        let mut sizes = heapless::Vec::<u16, 8>::new();
        while s.current() < 4000 {
            for _ in 0..GROW_AFTER {
                s.on_sent(s.current() as usize);
                s.on_delivered(1, 1);
            }
            sizes.push(s.current()).unwrap();
        }
        assert_eq!(&sizes[..], &[512, 1024, 2048, 4000]);
    }

    #[test]
    fn very_noisy_line_reaches_small_frames_quickly() {
        // Two frames in three lost at 274 bytes: ~250 bytes per error, optimum ~58.
        let mut s = Sizer::new(48, 4000);
        for i in 0..40 {
            s.on_sent(256);
            if i % 3 != 0 {
                s.on_lost(1);
            } else {
                s.on_delivered(1, 1);
            }
        }
        let p = s.current();
        assert!((50..70).contains(&p), "payload {p}");
    }

    #[test]
    fn noisy_line_shrinks_to_the_optimum() {
        // One error per 12,000 bytes (bit-error rate 1e-5): the optimum payload is
        // about sqrt(frame cost × 12,000), ~510 bytes with a 22-byte frame cost.
        let optimum = ((FRAME_COST * 12_000) as f64).sqrt() as u16;
        let mut s = Sizer::new(64, 4000);
        for i in 0..20_000u64 {
            s.on_sent(500);
            if i % 24 == 0 {
                s.on_lost(1);
            } else {
                s.on_delivered(1, 1);
            }
        }
        let p = s.current();
        assert!(p.abs_diff(optimum) <= optimum / 8, "payload {p}, optimum {optimum}");
    }
}
