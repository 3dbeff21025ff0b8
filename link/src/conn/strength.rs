//! How large and how protected a connection's frames are: the FEC strength
//! that follows the peer's error reports (spec 6.7), the payload caps that
//! follow from it and from the handshake (5.5), and the measured path on a
//! link of unknown rate (6.8).

use super::Connection;
use crate::fec::{self, policy, Strength};
use crate::time::Duration;
use crate::time::Instant;
use crate::wire::OVERHEAD;

impl Connection<'_> {
    pub(crate) fn apply_payload_bounds(&mut self) {
        let cap = self.config.max_payload.min(self.payload_cap(self.strength)).min(self.rate_cap());
        self.sizer.set_bounds(self.config.min_payload.min(cap), cap);
    }

    /// Whether the path is paced by its measured rate (spec 6.8): its rate is
    /// not known. (A line of known rate is paced by that rate: there a low
    /// measured rate is as likely an application with little to send, and
    /// pacing by it would keep it low.)
    pub(crate) fn rate_limited(&self) -> bool {
        cfg!(feature = "adaptive") && self.config.line_rate == 0
    }

    /// Payload bytes new frames may add to what is in flight: the driver's
    /// bound (`max_in_flight_bytes`) and, on a rate-limited path, about two
    /// rate-round-trip products (spec 6.8). 0: no bound.
    pub(crate) fn in_flight_cap(&self) -> usize {
        let fixed = self.config.max_in_flight_bytes as usize;
        if !self.rate_limited() {
            return fixed;
        }
        let window = self.pacer.window(usize::from(self.sizer.current()));
        if fixed == 0 {
            window
        } else {
            fixed.min(window)
        }
    }

    /// The payload cap from the measured rate: [`crate::pacer::FRAME_TIME`]
    /// of it on a rate-limited path, never below 256 bytes.
    fn rate_cap(&self) -> u16 {
        match self.rate_cap {
            0 => u16::MAX,
            c => c,
        }
    }

    /// Takes in what an acknowledgement measured of the path (spec 6.8).
    pub(crate) fn on_path_sample(
        &mut self,
        now: Instant,
        rate: Option<(u64, Duration)>,
        rtt: Option<Duration>,
    ) {
        if !cfg!(feature = "adaptive") {
            return;
        }
        if let Some((bytes, interval)) = rate {
            self.pacer.on_rate_sample(now, bytes, interval);
        }
        if let Some(rtt) = rtt {
            self.pacer.on_rtt(now, rtt);
        }
        self.tx.progress_restarts_timers = self.rate_limited();
        self.rtt.wide = self.rate_limited();
        let cap = match self.pacer.frame_cap() {
            Some(c) if self.rate_limited() => c.clamp(256, u64::from(u16::MAX)) as u16,
            _ => 0,
        };
        // Re-bound the sizer only when the cap moved by a quarter.
        if cap.abs_diff(self.rate_cap) > self.rate_cap / 4 {
            self.rate_cap = cap;
            if self.strength == Strength::Off {
                self.apply_payload_bounds();
            }
        }
    }

    /// The largest payload whose frame, protected at `s`, fits the peer's
    /// limit, and fits it at [`Strength::ROOM`] too: a fragment keeps the size
    /// it was cut at until it is acknowledged, so one cut plain on a clean line
    /// must still take real protection if the line turns bad (a plain 4 KiB
    /// frame almost never crosses a line at BER 1e-3).
    fn payload_cap(&self, s: Strength) -> u16 {
        let limit = usize::from(self.negotiated_payload) + OVERHEAD;
        let mut p = self.negotiated_payload;
        while p > 1
            && [s, Strength::ROOM].iter().any(|&s| fec::protected_len(usize::from(p) + OVERHEAD, s) > limit)
        {
            p -= 1;
        }
        p
    }

    /// Whether frames to this peer may be protected: in-frame FEC is built
    /// in and configured, and the peer did not say it cannot decode it.
    pub(crate) fn sends_fec(&self) -> bool {
        cfg!(feature = "fec") && self.config.fec && !self.peer_no_fec
    }

    /// Follows the peer's error report: the strength with the best expected
    /// share of the line, each strength judged at its best payload size.
    pub(crate) fn choose_strength(&mut self, noise: policy::Noise) {
        if !self.sends_fec() {
            return;
        }
        let (pick, size) =
            policy::pick(self.strength, |s| policy::best_payload(s, usize::from(self.payload_cap(s)), noise));
        self.strength = pick;
        if pick == Strength::Off {
            // Plain frames: the loss-driven sizer finds the size.
            self.apply_payload_bounds();
        } else {
            // With parity the sender sees no losses to steer by; the model does.
            let p = (size as u16).min(self.config.max_payload).min(self.rate_cap()).max(1);
            self.sizer.set_bounds(p, p);
        }
    }

    /// The strength to protect a raw frame of `raw_len` bytes with (built
    /// from send slot `slot`, if a DATA frame): the current one, unless the
    /// frame was cut longer than frames are cut now (then the strength best
    /// for its length) or was lost twice already (then the strongest); either
    /// only among the strengths that fit the peer's limit (spec 6.7).
    pub(crate) fn frame_strength(&self, raw_len: usize, slot: Option<usize>) -> Strength {
        if !self.sends_fec() {
            return Strength::Off;
        }
        let limit = usize::from(self.negotiated_payload) + OVERHEAD;
        let fits = |s: Strength| s == Strength::Off || fec::protected_len(raw_len, s) <= limit;
        let payload = raw_len.saturating_sub(OVERHEAD);
        // A fragment cut longer than frames are cut now (the line has turned
        // worse since) gets the strength best for its own length: the one
        // chosen for today's shorter frames may never carry it across. Only
        // such frames need the report decoded.
        let longer = payload > usize::from(self.sizer.current());
        let noise = if longer { policy::noise_of_hint(self.last_hint) } else { None };
        let s = match noise {
            Some(noise) => {
                let option =
                    |s| (payload, if fits(s) { policy::efficiency(payload, s, noise) } else { -1.0 });
                policy::pick(self.strength, option).0
            }
            None => {
                let mut s = self.strength;
                while !fits(s) {
                    s = s.weaker();
                }
                s
            }
        };
        // A frame lost twice already met more noise than the peer's report
        // says (the report lags when the line turns worse, and frames that die
        // whole tell the receiver little): its further copies get the strongest
        // code that fits (sim test `line_turning_bad_mid_transfer_still_delivers`:
        // 73-75% of the line after the turn; 61-70% without escalating, 71-72%
        // stepping up one code per loss).
        let repeats = slot.map_or(0, |slot| self.tx.repeats(slot));
        if repeats >= 2 {
            Strength::ALL.iter().rev().copied().find(|&x| fits(x)).unwrap_or(s)
        } else {
            s
        }
    }

    /// Counts a frame sent protected.
    pub(crate) fn count_protected(&mut self) {
        self.stats.fec_frames_tx += 1;
    }
}
