//! Choosing the FEC strength (spec section 6.7).
//!
//! Only the receiver knows how many bytes arrive damaged — once FEC repairs
//! them, the sender sees no losses. So the receiver measures its byte-error
//! rate, and how clustered the damage is, and reports both in one byte of
//! every ACK; the sender picks the strength (off, one of the frame-wide codes
//! or one of the interleaved ones) with the best expected efficiency, with a
//! little hysteresis so it does not flap between two nearly equal choices.
//!
//! Clustering matters because the two code families fail differently: a
//! frame-wide code corrects a few damaged symbols anywhere, so a burst that
//! damages several at once uses up its parity; interleaving spreads a burst
//! over many codewords, one byte each.

use super::{codewords, protected_len, Strength};
use crate::math::{exp_neg, ln};

/// The hint byte that means "no estimate yet".
pub const NO_ESTIMATE: u8 = 255;

/// The hint byte that means "no damaged byte seen".
pub const NO_DAMAGE: u8 = 254;

/// Bytes a receiver must have seen before its estimate is reported.
const MIN_BYTES: u64 = 16 * 1024;

/// Damaged frames a receiver must have seen before it reports clustering.
const MIN_DAMAGED_FRAMES: u64 = 8;

/// Largest rate field of a hint: rates below 2^-30.5 are reported as 2^-30.5
/// (a byte error a gigabyte is a clean line), which keeps every hint of
/// cluster class 3 below the two reserved values.
const MAX_RATE_FIELD: u8 = 61;

/// Damaged symbols per error event that each cluster class stands for.
pub const CLUSTER: [f32; 4] = [1.0, 3.0, 6.0, 12.0];

/// What a hint says: the byte-error rate and the mean damaged symbols per
/// error event (1: independent errors; more: bursts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    /// Damaged bytes per byte received.
    pub rate: f32,
    /// Damaged symbols per error event.
    pub cluster: f32,
}

/// Damaged bytes counted over a stretch of received bytes.
#[derive(Debug, Clone, Default)]
struct Tally {
    bytes: u64,
    errors: u64,
    frames: u64,
    damaged_frames: u64,
}

impl Tally {
    fn add(&mut self, bytes: usize, errors: u64, forget_after: u64) {
        self.bytes += bytes as u64;
        self.errors += errors;
        self.frames += 1;
        self.damaged_frames += u64::from(errors > 0);
        if self.bytes > forget_after {
            self.bytes /= 2;
            self.errors /= 2;
            self.frames /= 2;
            self.damaged_frames /= 2;
        }
    }

    /// Whether this tally's damaged bytes per byte exceed `factor` times
    /// `other`'s (cross-multiplied, so no division and no zero to guard).
    fn worse_than(&self, other: &Tally, factor: u64) -> bool {
        u128::from(self.errors) * u128::from(other.bytes)
            > u128::from(factor) * u128::from(other.errors) * u128::from(self.bytes)
    }
}

/// Received bytes the long tally halves at: enough to measure a clean
/// line's rare errors.
const LONG_MEMORY: u64 = 2_000_000;
/// Received bytes the recent tally halves at.
const RECENT_MEMORY: u64 = 32 * 1024;
/// Damaged bytes that make an estimate worth acting on: before the long tally
/// has seen [`MIN_BYTES`], and before the recent tally may overrule it.
const EVIDENCE: u64 = 16;

/// A receiver's running count of damaged bytes: a long tally for a steady
/// estimate, and a recent one that replaces it when the line clearly turned
/// worse. A line that goes from clean to BER 1e-3 would otherwise be reported
/// at the clean stretch's average for megabytes, while frames cut for it die.
#[derive(Debug, Clone, Default)]
pub struct ErrorMeter {
    long: Tally,
    recent: Tally,
}

impl ErrorMeter {
    /// Records a received frame of `bytes` bytes that held at least `errors` damaged bytes.
    pub fn on_frame(&mut self, bytes: usize, errors: u64) {
        if !cfg!(feature = "fec") {
            return;
        }
        self.long.add(bytes, errors, LONG_MEMORY);
        self.recent.add(bytes, errors, RECENT_MEMORY);
        // Sixteen errors at twice the long rate is more than chance (a Poisson
        // count of 8 reaches 16 about once in 100 tries, of 16 reaches 32 far
        // more rarely): the line changed, and the past no longer describes it.
        if self.recent.errors >= EVIDENCE && self.recent.worse_than(&self.long, 2) {
            self.long = self.recent.clone();
        }
    }

    /// Cluster class 0-3: the mean damaged symbols per error event, from how
    /// many frames were damaged against how much damage they held. With
    /// independent errors, damaged frames are 1 - exp(-λ) of all for λ damaged
    /// symbols per frame; fewer damaged frames holding the same damage means
    /// the errors come in clusters of λ / -ln(1 - share damaged).
    fn cluster_class(&self) -> u8 {
        if self.long.damaged_frames < MIN_DAMAGED_FRAMES || self.long.frames == 0 {
            return 0;
        }
        let share = self.long.damaged_frames as f32 / self.long.frames as f32;
        // When most frames are damaged, the share says little about clusters
        // (and the errors are many and scattered enough for interleaving anyway).
        if share > 0.5 {
            return 0;
        }
        let lambda = self.long.errors as f32 / self.long.frames as f32;
        let events = -ln(1.0 - share);
        let m = if events > 0.0 { lambda / events } else { 1.0 };

        // Rounded up: a line mixing scattered errors with bursts averages
        // its clusters down, while its bursts are what break a frame-wide code.
        match m {
            m if m < 1.25 => 0,
            m if m < 3.0 => 1,
            m if m < 6.0 => 2,
            _ => 3,
        }
    }

    /// The ACK hint: cluster class in bits 7-6 and `-2·log2(byte error
    /// rate)`, rounded down and capped at 61, in bits 5-0; [`NO_DAMAGE`] while
    /// no damaged byte was seen, [`NO_ESTIMATE`] before 16 KiB were seen
    /// unless 16 damaged bytes already were.
    pub fn hint(&self) -> u8 {
        if !cfg!(feature = "fec") {
            // Nothing to choose a strength for: the peer sends this node plain frames.
            return NO_ESTIMATE;
        }
        // Sixteen damaged bytes are a usable estimate however few bytes came:
        // on a line at BER 1e-3 waiting for 16 KiB sent the first ones plain,
        // and nearly all of them were lost.
        if self.long.bytes < MIN_BYTES && self.long.errors < EVIDENCE {
            return NO_ESTIMATE;
        }
        // No error seen: report the lowest rate a hint can say. Guessing half
        // an error over the bytes seen (3e-5 at 16 KiB) bought thin parity on
        // clean lines and kept it until a few hundred KiB proved them clean
        // (linkbench, clean 4 MiB: 98.77% instead of 98.90%).
        if self.long.errors == 0 {
            return NO_DAMAGE;
        }
        let rate = self.long.errors as f32 / self.long.bytes as f32;
        let h = -2.0 * ln(rate.min(1.0)) / core::f32::consts::LN_2;
        (self.cluster_class() << 6) | (h as u32).min(u32::from(MAX_RATE_FIELD)) as u8
    }
}

/// What a hint says; `None` for [`NO_ESTIMATE`].
pub fn noise_of_hint(h: u8) -> Option<Noise> {
    let rate_of = |field: u8| exp_neg(-(field as f32) / 2.0 * core::f32::consts::LN_2);
    match h {
        NO_ESTIMATE => None,
        // Below anything a rate field says: plain frames win at any size.
        NO_DAMAGE => Some(Noise { rate: rate_of(127), cluster: 1.0 }),
        _ => Some(Noise { rate: rate_of(h & 0x3F), cluster: CLUSTER[usize::from(h >> 6)] }),
    }
}

/// Probability that a Poisson count with mean `lambda` is at most `t`.
fn poisson_at_most(lambda: f32, t: usize) -> f32 {
    let mut term = exp_neg(-lambda);
    let mut sum = term;
    for k in 1..=t {
        term *= lambda / k as f32;
        sum += term;
    }
    sum.min(1.0)
}

/// Expected share of the line that carries payload, for `payload` bytes per
/// frame protected at strength `s`, on a line with `noise`.
pub fn efficiency(payload: usize, s: Strength, noise: Noise) -> f32 {
    let (rate, m) = (noise.rate, noise.cluster.max(1.0));
    let raw = payload + crate::wire::OVERHEAD;
    let body = protected_len(raw, s);
    // COBS adds a byte per 254 and the delimiter one more.
    let wire = body + body.div_ceil(254) + 1;
    let ok = match s {
        // Clustered errors hit fewer frames: events, not bytes, kill a plain frame.
        Strength::Off => exp_neg(wire as f32 * ln(1.0 - rate.min(0.999)) / m),
        _ => {
            let n = codewords(raw, s).max(1);
            let per_codeword = (body - 1) as f32 / n as f32;
            let p = if s.is_wide() && m > 1.0 {
                // Bursts: only a frame no burst hit is sure to survive. A
                // burst's length has a long tail, and on a line that mixes
                // bursts with scattered errors the measured mean understates
                // the bursts (linkbench, mean BER 1e-5 in ~300-bit bursts:
                // 94.7% of the line with wide codes allowed t / m bursts,
                // 95.9% with this rule, which leaves bursts to interleaving).
                exp_neg(-rate * per_codeword / m)
            } else if s.is_wide() {
                poisson_at_most(rate * per_codeword, s.corrects())
            } else {
                // Interleaving deals a cluster's adjacent bytes out to different
                // codewords: each sees independent errors at the same rate.
                poisson_at_most(rate * per_codeword, s.corrects())
            };
            // What parity cannot mend: a damaged COBS code byte (about one per
            // 128 bytes of random data) desynchronises the rest of the frame, and
            // a byte damaged into 0x00 splits it.
            let framing = exp_neg(-rate * body as f32 * (1.0 / 128.0 + 1.0 / 255.0));
            exp_neg(n as f32 * ln(p.max(1e-30))) * framing
        }
    };
    payload as f32 / wire as f32 * ok
}

/// The payload up to `cap` with the best efficiency at strength `s`:
/// multiples of 64 and `cap` itself are tried. Returns the payload and its
/// efficiency.
pub fn best_payload(s: Strength, cap: usize, noise: Noise) -> (usize, f32) {
    let mut best = (cap, efficiency(cap, s, noise));
    let mut p = 64;
    while p < cap {
        let e = efficiency(p, s, noise);
        if e > best.1 {
            best = (p, e);
        }
        p += 64;
    }
    best
}

/// Picks a strength given `option(s) = (payload, efficiency)` for each one
/// (off, thin, light, heavy): the best of them if it gains more than 1% over
/// the current strength, else the current one. Returns the strength and its
/// payload.
pub fn pick(current: Strength, option: impl Fn(Strength) -> (usize, f32)) -> (Strength, usize) {
    let stay = option(current);
    let (mut best, mut best_opt) = (current, stay);
    for s in Strength::ALL {
        let o = option(s);
        if o.1 > best_opt.1 {
            (best, best_opt) = (s, o);
        }
    }
    if best_opt.1 > stay.1 * 1.01 {
        (best, best_opt.0)
    } else {
        (current, stay.0)
    }
}

/// The strength to use for `payload`-byte frames on a line with `noise`, given the current one.
pub fn choose(payload: usize, noise: Noise, current: Strength) -> Strength {
    pick(current, |s| (payload, efficiency(payload, s, noise))).0
}

/// Independent errors at byte-error rate `rate`.
pub const fn scattered(rate: f32) -> Noise {
    Noise { rate, cluster: 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_follows_a_line_that_turns_noisy() {
        let mut m = ErrorMeter::default();
        for _ in 0..500 {
            m.on_frame(4096, 0);
        }
        assert_eq!(m.hint(), NO_DAMAGE);
        // Then 1 damaged byte in 128 (BER ~1e-3): after 16 KiB the report is
        // within 4x of it, after 64 KiB within 2x, where the 2 MB average of the
        // clean past would say 1 in 4,000 and 1 in 1,000.
        for _ in 0..32 {
            m.on_frame(512, 4);
        }
        let noise = noise_of_hint(m.hint()).unwrap();
        assert!(noise.rate > 1.0 / 512.0, "{noise:?}");
        for _ in 0..96 {
            m.on_frame(512, 4);
        }
        let noise = noise_of_hint(m.hint()).unwrap();
        assert!(noise.rate > 1.0 / 256.0, "{noise:?}");
        // A steady line with the odd unlucky stretch keeps its long estimate.
        let mut steady = ErrorMeter::default();
        for i in 0..2000u64 {
            steady.on_frame(4096, u64::from(i % 100 == 0) + u64::from((1000..1004).contains(&i)));
        }
        let noise = noise_of_hint(steady.hint()).unwrap();
        assert!(noise.rate < 1e-5, "{noise:?}");
    }

    #[test]
    fn hint_round_trips_within_a_half_octave() {
        for rate in [1e-2f32, 1e-3, 1e-4, 1e-6] {
            let mut m = ErrorMeter::default();
            m.on_frame(1_000_000, (rate * 1e6) as u64);
            let back = noise_of_hint(m.hint()).unwrap().rate;
            // Rounding the hint down reports at most a half octave more noise: conservative.
            assert!(back >= rate * 0.99 && back < rate * 1.42, "{rate} -> {} -> {back}", m.hint());
        }
        assert_eq!(ErrorMeter::default().hint(), NO_ESTIMATE);
        // A very noisy start is reported before 16 KiB.
        let mut noisy = ErrorMeter::default();
        for _ in 0..15 {
            noisy.on_frame(300, 1);
        }
        assert_eq!(noisy.hint(), NO_ESTIMATE);
        noisy.on_frame(300, 1);
        assert!(noise_of_hint(noisy.hint()).unwrap().rate > 1.0 / 512.0);
        // Enough bytes and no error: the lowest rate, which keeps frames plain.
        let mut clean = ErrorMeter::default();
        clean.on_frame(16 * 1024, 0);
        assert_eq!(clean.hint(), 254);
        assert_eq!(choose(4063, noise_of_hint(clean.hint()).unwrap(), Strength::Off), Strength::Off);
        assert_eq!(choose(3968, noise_of_hint(clean.hint()).unwrap(), Strength::Thin), Strength::Off);
        clean.on_frame(1000, 1);
        assert!(clean.hint() < 40);
        assert_eq!(noise_of_hint(NO_ESTIMATE), None);
    }

    #[test]
    fn clean_lines_stay_plain_noisy_lines_get_parity() {
        // Byte error rates for bit-error rates of ~1e-7, 1e-5, 1e-4 and 1e-3 (10 bits a byte).
        assert_eq!(choose(4063, scattered(1e-6), Strength::Off), Strength::Off);
        assert_ne!(choose(4063, scattered(1e-3), Strength::Off), Strength::Off);
        assert_eq!(choose(4063, scattered(1e-2), Strength::Off), Strength::Heavy);
        // At the best payload the model expects what the benchmark then measures:
        // BER 1e-4 (bytes 1e-3) above 90% of the line, BER 1e-3 (bytes 1e-2) above 75%.
        assert!(best_payload(Strength::Light, 3900, scattered(1e-3)).1 > 0.90);
        assert!(best_payload(Strength::Heavy, 3900, scattered(1e-2)).1 > 0.75);
        // COBS damage makes long frames a poor bet on a very noisy line.
        assert!(best_payload(Strength::Heavy, 3900, scattered(1e-2)).0 < 2048);
    }

    #[test]
    fn frame_wide_parity_for_scattered_errors() {
        // BER 1e-6 and 1e-5 (bytes 1e-5 and 1e-4) with 4 KiB frames: a few
        // damaged symbols per frame, which one frame-wide codeword corrects
        // with 8 or 16 bytes of parity, where the interleaved thin code spends
        // 68 on 17 codewords.
        let cap = 4063;
        for (rate, want) in [(1e-5, Strength::Wide2), (1e-4, Strength::Wide4)] {
            let best = best_payload(want, cap, scattered(rate));
            assert!(best.0 >= 3900 && best.1 > 0.98, "{rate}: {best:?}");
            assert!(best.1 > best_payload(Strength::Thin, cap, scattered(rate)).1 * 1.01, "{rate}");
            assert!(best.1 > best_payload(Strength::Off, cap, scattered(rate)).1 * 1.01, "{rate}");
            for current in Strength::ALL {
                let (got, size) = pick(current, |s| best_payload(s, cap, scattered(rate)));
                // From a neighbour within 1% it may stay put; never on a worse family.
                assert!(got.is_wide(), "{rate} from {current:?}: {got:?}");
                assert!(
                    best_payload(got, cap, scattered(rate)).1 * 1.01 >= best.1,
                    "{rate} from {current:?}"
                );
                assert!(size >= 2048, "{rate} from {current:?}: {size}");
            }
            assert_eq!(pick(Strength::Off, |s| best_payload(s, cap, scattered(rate))).0, want, "{rate}");
        }
        // BER 1e-3 (bytes 1e-2): dozens of errors in a frame; the interleaved
        // heavy code with shorter frames wins, and two corrections per
        // codeword are far too few.
        assert_eq!(pick(Strength::Wide2, |s| best_payload(s, cap, scattered(1e-2))).0, Strength::Heavy);
        assert!(
            best_payload(Strength::Thin, cap, scattered(1e-2)).1
                < best_payload(Strength::Light, cap, scattered(1e-2)).1
        );
    }

    #[test]
    fn clustering_is_measured_and_reported() {
        // Independent errors: 4 KiB frames with Poisson(0.4) damaged bytes each.
        let mut scattered_meter = ErrorMeter::default();
        let mut bursty = ErrorMeter::default();
        let mut x = 0x2545_F491u32;
        for i in 0..400u64 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // P(0) = 0.67, P(1) = 0.27, P(2) = 0.05, P(3) = 0.01: mean ~0.4.
            let k = match x % 1000 {
                0..=669 => 0,
                670..=937 => 1,
                938..=991 => 2,
                _ => 3,
            };
            scattered_meter.on_frame(4096, k);
            // The same damage in bursts of 4: one frame in ten, 4 bytes each.
            bursty.on_frame(4096, if i % 10 == 0 { 4 } else { 0 });
        }
        let (a, b) = (noise_of_hint(scattered_meter.hint()).unwrap(), noise_of_hint(bursty.hint()).unwrap());
        assert_eq!(a.cluster, 1.0, "{a:?}");
        // Clusters of 4, reported rounded up to the class of 3-6.
        assert_eq!(b.cluster, 6.0, "{b:?}");
        assert!((a.rate / b.rate - 1.0).abs() < 0.5, "{a:?} {b:?}");
        // Too few damaged frames to judge: independent.
        let mut few = ErrorMeter::default();
        few.on_frame(100_000, 0);
        few.on_frame(4096, 20);
        assert_eq!(noise_of_hint(few.hint()).unwrap().cluster, 1.0);
        // Every hint of every class stays clear of the two reserved values.
        for c in 0..4u8 {
            for r in 0..=MAX_RATE_FIELD {
                let h = (c << 6) | r;
                assert!(h != NO_ESTIMATE && h != NO_DAMAGE);
                assert_eq!(noise_of_hint(h).unwrap().cluster, CLUSTER[usize::from(c)]);
            }
        }
    }

    #[test]
    fn bursts_keep_the_interleaved_codes() {
        // Mean byte-error rate 1e-4 (BER 1e-5) either scattered or in
        // clusters: a frame-wide code for the first, an interleaved one for
        // the second (it deals a cluster's adjacent bytes out over its codewords).
        let cap = 4063;
        let choice = |noise| pick(Strength::Off, |s| best_payload(s, cap, noise)).0;
        assert!(matches!(choice(scattered(1e-4)), Strength::Wide2 | Strength::Wide4));
        for cluster in &CLUSTER[1..] {
            for rate in [1e-5, 1e-4, 1e-3] {
                let bursts = Noise { rate, cluster: *cluster };
                let got = choice(bursts);
                assert!(!got.is_wide(), "{bursts:?}: {got:?}");
            }
        }
        let bursts = Noise { rate: 1e-4, cluster: 3.0 };
        // Clustering spares plain frames: fewer of them are hit.
        assert!(efficiency(cap, Strength::Off, bursts) > efficiency(cap, Strength::Off, scattered(1e-4)));
    }

    #[test]
    fn pick_takes_the_best_option_not_the_first_that_beats_the_current() {
        let opts = |s: Strength| match s {
            Strength::Off => (100, 0.900),
            Strength::Thin => (200, 0.910),
            Strength::Light => (300, 0.918),
            Strength::Heavy => (400, 0.800),
            _ => (500, 0.5),
        };
        assert_eq!(pick(Strength::Off, opts), (Strength::Light, 300));
        // Within 1% of the current one: stay, with the current one's payload.
        assert_eq!(pick(Strength::Thin, opts), (Strength::Thin, 200));
        assert_eq!(pick(Strength::Heavy, opts), (Strength::Light, 300));
    }

    #[test]
    fn hysteresis_keeps_a_near_equal_choice() {
        let r = 2e-4;
        let a = efficiency(4000, Strength::Off, scattered(r));
        let b = efficiency(4000, Strength::Light, scattered(r));
        let pick = choose(4000, scattered(r), Strength::Off);
        if b < a * 1.01 {
            assert_eq!(pick, Strength::Off);
        }
    }
}
