//! One direction of an emulated serial line: serialisation at a bit rate with
//! a bounded transmit buffer, latency, bit errors (independent or
//! Gilbert–Elliott bursts), dropped, duplicated and inserted bytes, runs of
//! lost bytes (truncated frames), scheduled outages, or a cut wire.

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use std::collections::VecDeque;
use std::time::Duration;

/// Two-state burst-error model (per bit): a good state with the line's base
/// BER and a bad state with `ber_bad`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Probability per bit of entering the bad state.
    pub p_enter_bad: f64,
    /// Probability per bit of leaving it (mean burst length is 1/p bits).
    pub p_leave_bad: f64,
    /// Bit-error rate inside a burst.
    pub ber_bad: f64,
}

impl GilbertElliott {
    /// Long-run mean BER given the good-state BER.
    pub fn mean_ber(&self, ber_good: f64) -> f64 {
        let bad = self.p_enter_bad / (self.p_enter_bad + self.p_leave_bad);
        bad * self.ber_bad + (1.0 - bad) * ber_good
    }
}

/// Impairments and timing of one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct LineConfig {
    /// Signalling rate in bit/s (2,000,000 for a fast FTDI adapter).
    pub bit_rate: u64,
    /// Bits on the wire per byte: 10 for 8N1.
    pub bits_per_byte: u32,
    /// One-way delay added after serialisation (USB latency timer, propagation).
    pub latency: Duration,
    /// Bytes a writer may queue ahead of the wire (UART FIFO + driver buffer).
    pub buffer: usize,
    /// Independent bit-error rate (all bits of the character, start/stop included).
    pub ber: f64,
    /// Burst errors on top of `ber`.
    pub burst: Option<GilbertElliott>,
    /// Probability per byte that it vanishes.
    pub drop_rate: f64,
    /// Probability per byte that it arrives twice.
    pub dup_rate: f64,
    /// Probability per byte that a random byte is inserted before it.
    pub insert_rate: f64,
    /// Probability per byte that a run of 1..=64 bytes is lost from here on.
    pub truncate_rate: f64,
    /// Windows of line time `[start, end)` during which every byte is lost.
    pub outages: Vec<(Duration, Duration)>,
    /// The wire is cut: nothing ever arrives (one-way links).
    pub cut: bool,
}

impl LineConfig {
    /// A clean line at `bit_rate`, 8N1, with the given one-way latency and a 4 KiB buffer.
    pub fn clean(bit_rate: u64, latency: Duration) -> Self {
        LineConfig {
            bit_rate,
            bits_per_byte: 10,
            latency,
            buffer: 4096,
            ber: 0.0,
            burst: None,
            drop_rate: 0.0,
            dup_rate: 0.0,
            insert_rate: 0.0,
            truncate_rate: 0.0,
            outages: Vec::new(),
            cut: false,
        }
    }

    /// The same line with independent bit errors at `ber`.
    pub fn with_ber(mut self, ber: f64) -> Self {
        self.ber = ber;
        self
    }

    /// Payload bytes per second the line carries at most.
    pub fn byte_rate(&self) -> f64 {
        self.bit_rate as f64 / f64::from(self.bits_per_byte)
    }
}

/// What a direction did to the bytes written into it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineCounters {
    /// Bytes written by the sender.
    pub written: u64,
    /// Bytes handed to the receiver.
    pub delivered: u64,
    /// Bit errors injected.
    pub bit_errors: u64,
    /// Bytes dropped (drops, truncation runs, outages, cut wire).
    pub dropped: u64,
    /// Bytes duplicated.
    pub duplicated: u64,
    /// Random bytes inserted.
    pub inserted: u64,
}

/// Samples the number of trials before the next success of probability `p`.
fn geometric(rng: &mut Pcg64Mcg, p: f64) -> u64 {
    if p <= 0.0 {
        return u64::MAX;
    }
    if p >= 1.0 {
        return 0;
    }
    let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    (u.ln() / (1.0 - p).ln()).floor().min(u64::MAX as f64 / 2.0) as u64
}

/// One direction of the line. Times are nanoseconds of simulated time.
#[derive(Debug)]
pub struct Direction {
    cfg: LineConfig,
    rng: Pcg64Mcg,
    bad: bool,
    bits_to_switch: u64,
    bits_to_error: u64,
    /// Start of the current busy period and bytes serialised since.
    epoch_ns: u64,
    epoch_bytes: u64,
    busy_until_ns: u64,
    drop_run: usize,
    queue: VecDeque<(u64, Vec<u8>)>,
    /// What was done to the bytes.
    pub counters: LineCounters,
}

impl Direction {
    /// A direction with its own random stream.
    pub fn new(cfg: LineConfig, seed: u64) -> Self {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let bits_to_switch = cfg.burst.map_or(u64::MAX, |g| geometric(&mut rng, g.p_enter_bad));
        let bits_to_error = geometric(&mut rng, cfg.ber);
        Direction {
            cfg,
            rng,
            bad: false,
            bits_to_switch,
            bits_to_error,
            epoch_ns: 0,
            epoch_bytes: 0,
            busy_until_ns: 0,
            drop_run: 0,
            queue: VecDeque::new(),
            counters: LineCounters::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LineConfig {
        &self.cfg
    }

    /// Replaces the outages: (start, end) from the start of the run.
    pub fn set_outages(&mut self, outages: Vec<(Duration, Duration)>) {
        self.cfg.outages = outages;
    }

    /// Changes the bit-error rate from now on: a line that turns noisy (or
    /// quiet) mid-run.
    pub fn set_ber(&mut self, ber: f64) {
        self.cfg.ber = ber;
        self.bits_to_error = geometric(&mut self.rng, ber);
    }

    fn byte_end_ns(&self, bytes: u64) -> u64 {
        let bits = u128::from(bytes) * u128::from(self.cfg.bits_per_byte);
        self.epoch_ns + (bits * 1_000_000_000).div_ceil(u128::from(self.cfg.bit_rate)) as u64
    }

    /// Bytes written but not yet on the wire at `now_ns`.
    pub fn backlog(&self, now_ns: u64) -> usize {
        if now_ns >= self.busy_until_ns {
            return 0;
        }
        let left_ns = u128::from(self.busy_until_ns - now_ns);
        (left_ns * u128::from(self.cfg.bit_rate)).div_ceil(1_000_000_000 * u128::from(self.cfg.bits_per_byte))
            as usize
    }

    /// Bytes that can be written now without exceeding the buffer.
    pub fn writable(&self, now_ns: u64) -> usize {
        self.cfg.buffer.saturating_sub(self.backlog(now_ns))
    }

    /// When `need` bytes will be writable.
    pub fn writable_at(&self, need: usize) -> u64 {
        let keep = self.cfg.buffer.saturating_sub(need) as u64;
        let ns_per = u64::from(self.cfg.bits_per_byte) * 1_000_000_000 / self.cfg.bit_rate;
        self.busy_until_ns.saturating_sub(keep * ns_per)
    }

    /// Writes bytes at `now_ns`: they are serialised after whatever is queued.
    pub fn write(&mut self, now_ns: u64, bytes: &[u8]) {
        self.counters.written += bytes.len() as u64;
        if now_ns >= self.busy_until_ns {
            self.epoch_ns = now_ns;
            self.epoch_bytes = 0;
        }
        let first = self.epoch_bytes;
        self.epoch_bytes += bytes.len() as u64;
        self.busy_until_ns = self.byte_end_ns(self.epoch_bytes);
        let arrive = self.busy_until_ns + self.cfg.latency.as_nanos() as u64;
        if self.cfg.cut {
            self.counters.dropped += bytes.len() as u64;
            return;
        }
        let mut out = Vec::with_capacity(bytes.len() + 8);
        for (i, &b) in bytes.iter().enumerate() {
            let t = self.byte_end_ns(first + i as u64);
            if self.cfg.outages.iter().any(|&(s, e)| (s.as_nanos() as u64..e.as_nanos() as u64).contains(&t))
            {
                self.counters.dropped += 1;
                continue;
            }
            if self.drop_run > 0 {
                self.drop_run -= 1;
                self.counters.dropped += 1;
                continue;
            }
            if self.cfg.truncate_rate > 0.0 && self.rng.random_bool(self.cfg.truncate_rate) {
                self.drop_run = self.rng.random_range(0..64);
                self.counters.dropped += 1;
                continue;
            }
            if self.cfg.drop_rate > 0.0 && self.rng.random_bool(self.cfg.drop_rate) {
                self.counters.dropped += 1;
                continue;
            }
            if self.cfg.insert_rate > 0.0 && self.rng.random_bool(self.cfg.insert_rate) {
                out.push(self.rng.random());
                self.counters.inserted += 1;
            }
            let c = self.corrupt(b);
            out.push(c);
            if self.cfg.dup_rate > 0.0 && self.rng.random_bool(self.cfg.dup_rate) {
                out.push(c);
                self.counters.duplicated += 1;
            }
        }
        self.queue.push_back((arrive, out));
    }

    /// Applies bit errors to one character (start bit, 8 data bits, stop bits).
    /// `bits_to_error` counts clean bits before the next error (geometric, so
    /// memoryless), `bits_to_switch` bits before the burst state flips.
    fn corrupt(&mut self, mut byte: u8) -> u8 {
        let bits = u64::from(self.cfg.bits_per_byte);
        if self.bits_to_switch == u64::MAX && self.bits_to_error >= bits {
            if self.bits_to_error != u64::MAX {
                self.bits_to_error -= bits;
            }
            return byte;
        }
        for pos in 0..bits {
            if self.bits_to_switch != u64::MAX {
                if self.bits_to_switch == 0 {
                    self.bad = !self.bad;
                    let g = self.cfg.burst.expect("a switch time implies a burst model");
                    let p = if self.bad { g.p_leave_bad } else { g.p_enter_bad };
                    self.bits_to_switch = geometric(&mut self.rng, p);
                    let ber = self.current_ber();
                    self.bits_to_error = geometric(&mut self.rng, ber);
                }
                self.bits_to_switch = self.bits_to_switch.saturating_sub(1);
            }
            match self.bits_to_error {
                0 => {
                    self.counters.bit_errors += 1;
                    byte = match pos {
                        1..=8 => byte ^ (1 << (pos - 1)),
                        // A hit start or stop bit makes the UART sample garbage.
                        _ => self.rng.random(),
                    };
                    let ber = self.current_ber();
                    self.bits_to_error = geometric(&mut self.rng, ber);
                }
                u64::MAX => {}
                _ => self.bits_to_error -= 1,
            }
        }
        byte
    }

    fn current_ber(&self) -> f64 {
        match (self.bad, self.cfg.burst) {
            (true, Some(g)) => g.ber_bad,
            _ => self.cfg.ber,
        }
    }

    /// Bytes that arrived by `now_ns`.
    pub fn read(&mut self, now_ns: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while self.queue.front().is_some_and(|(t, _)| *t <= now_ns) {
            let (_, bytes) = self.queue.pop_front().expect("checked");
            out.extend_from_slice(&bytes);
        }
        self.counters.delivered += out.len() as u64;
        out
    }

    /// When the next bytes arrive.
    pub fn next_arrival(&self) -> Option<u64> {
        self.queue.front().map(|(t, _)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_at_the_line_rate_with_latency() {
        let mut d = Direction::new(LineConfig::clean(2_000_000, Duration::from_millis(1)), 1);
        d.write(0, &[1u8; 1000]);
        // 1000 bytes x 10 bits at 2 Mbit/s = 5 ms, plus 1 ms latency.
        assert_eq!(d.next_arrival(), Some(6_000_000));
        assert_eq!(d.backlog(2_500_000), 500);
        assert!(d.read(5_999_999).is_empty());
        assert_eq!(d.read(6_000_000).len(), 1000);
    }

    #[test]
    fn bit_error_rate_is_as_configured() {
        let mut d = Direction::new(LineConfig::clean(2_000_000, Duration::ZERO).with_ber(1e-3), 7);
        d.write(0, &vec![0u8; 1_000_000]);
        let bits = 10_000_000.0;
        let rate = d.counters.bit_errors as f64 / bits;
        assert!((0.9e-3..1.1e-3).contains(&rate), "rate {rate}");
    }

    #[test]
    fn bursts_cluster_errors() {
        let ge = GilbertElliott { p_enter_bad: 1e-5, p_leave_bad: 1e-2, ber_bad: 0.1 };
        let mut cfg = LineConfig::clean(2_000_000, Duration::ZERO);
        cfg.burst = Some(ge);
        let mut d = Direction::new(cfg, 3);
        let n = 2_000_000usize;
        d.write(0, &vec![0u8; n]);
        let got = d.read(u64::MAX);
        let bad_bytes = got.iter().filter(|&&b| b != 0).count();
        let mean = ge.mean_ber(0.0) * n as f64 * 10.0;
        let errors = d.counters.bit_errors as f64;
        assert!(errors > mean * 0.6 && errors < mean * 1.4, "errors {errors} mean {mean}");
        assert!((bad_bytes as f64) < errors, "errors cluster in bytes");
    }

    #[test]
    fn same_seed_same_damage() {
        let cfg = LineConfig {
            drop_rate: 0.01,
            dup_rate: 0.01,
            insert_rate: 0.01,
            ..LineConfig::clean(115_200, Duration::ZERO).with_ber(1e-3)
        };
        let run = |seed| {
            let mut d = Direction::new(cfg.clone(), seed);
            d.write(0, &[0x55; 5000]);
            d.read(u64::MAX)
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }
}
