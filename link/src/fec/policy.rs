//! Choosing the FEC strength (to be specified as spec section 6.7).
//!
//! Only the receiver knows how many bytes arrive damaged — once FEC repairs
//! them, the sender sees no losses. So the receiver measures its byte-error
//! rate and reports it in every ACK as one byte, `-2·log2(rate)` (255: not
//! measured yet); the sender picks the strength (off, thin, light or heavy)
//! with the best expected efficiency at that rate, with a little hysteresis so
//! it does not flap between two nearly equal choices.

use super::{codewords, protected_len, Strength};
use crate::math::{exp_neg, ln};

/// The hint byte that means "no estimate yet".
pub const NO_ESTIMATE: u8 = 255;

/// Bytes a receiver must have seen before its estimate is reported.
const MIN_BYTES: u64 = 16 * 1024;

/// A receiver's running count of damaged bytes (decayed).
#[derive(Debug, Clone, Default)]
pub struct ErrorMeter {
    bytes: u64,
    errors: u64,
}

impl ErrorMeter {
    /// Records a received frame of `bytes` bytes that held at least `errors` damaged bytes.
    pub fn on_frame(&mut self, bytes: usize, errors: u64) {
        self.bytes += bytes as u64;
        self.errors += errors;
        // Forget slowly, so the estimate follows a line whose noise changes.
        if self.bytes > 2_000_000 {
            self.bytes /= 2;
            self.errors /= 2;
        }
    }

    /// The ACK hint: `-2·log2(byte error rate)`, rounded down (254 while no
    /// damaged byte was seen), or [`NO_ESTIMATE`] before 16 KiB were seen.
    pub fn hint(&self) -> u8 {
        if self.bytes < MIN_BYTES {
            return NO_ESTIMATE;
        }
        // No error seen: report the lowest rate a hint can say. Guessing half
        // an error over the bytes seen (3e-5 at 16 KiB) bought thin parity on
        // clean lines and kept it until a few hundred KiB proved them clean
        // (linkbench, clean 4 MiB: 98.77% instead of 98.90%).
        if self.errors == 0 {
            return NO_ESTIMATE - 1;
        }
        let rate = self.errors as f32 / self.bytes as f32;
        let h = -2.0 * ln(rate.min(1.0)) / core::f32::consts::LN_2;
        (h as u32).min(254) as u8
    }
}

/// The byte-error rate a hint stands for.
pub fn rate_of_hint(h: u8) -> Option<f32> {
    (h != NO_ESTIMATE).then(|| exp_neg(-(h as f32) / 2.0 * core::f32::consts::LN_2))
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
/// frame protected at strength `s`, at byte-error rate `rate`.
pub fn efficiency(payload: usize, s: Strength, rate: f32) -> f32 {
    let raw = payload + crate::wire::OVERHEAD;
    let body = protected_len(raw, s);
    // COBS adds a byte per 254 and the delimiter one more.
    let wire = body + body.div_ceil(254) + 1;
    let ok = match s {
        Strength::Off => exp_neg(wire as f32 * ln(1.0 - rate.min(0.999))),
        _ => {
            let n = codewords(raw, s).max(1);
            let per_codeword = (body - 1) as f32 / n as f32;
            let p = poisson_at_most(rate * per_codeword, s.parity() / 2);
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
pub fn best_payload(s: Strength, cap: usize, rate: f32) -> (usize, f32) {
    let mut best = (cap, efficiency(cap, s, rate));
    let mut p = 64;
    while p < cap {
        let e = efficiency(p, s, rate);
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

/// The strength to use for `payload`-byte frames at `rate`, given the current one.
pub fn choose(payload: usize, rate: f32, current: Strength) -> Strength {
    pick(current, |s| (payload, efficiency(payload, s, rate))).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_round_trips_within_a_half_octave() {
        for rate in [1e-2f32, 1e-3, 1e-4, 1e-6] {
            let mut m = ErrorMeter::default();
            m.on_frame(1_000_000, (rate * 1e6) as u64);
            let back = rate_of_hint(m.hint()).unwrap();
            // Rounding the hint down reports at most a half octave more noise: conservative.
            assert!(back >= rate * 0.99 && back < rate * 1.42, "{rate} -> {} -> {back}", m.hint());
        }
        assert_eq!(ErrorMeter::default().hint(), NO_ESTIMATE);
        // Enough bytes and no error: the lowest rate, which keeps frames plain.
        let mut clean = ErrorMeter::default();
        clean.on_frame(16 * 1024, 0);
        assert_eq!(clean.hint(), 254);
        assert_eq!(choose(4063, rate_of_hint(clean.hint()).unwrap(), Strength::Off), Strength::Off);
        assert_eq!(choose(3968, rate_of_hint(clean.hint()).unwrap(), Strength::Thin), Strength::Off);
        clean.on_frame(1000, 1);
        assert!(clean.hint() < 40);
        assert_eq!(rate_of_hint(NO_ESTIMATE), None);
    }

    #[test]
    fn clean_lines_stay_plain_noisy_lines_get_parity() {
        // Byte error rates for bit-error rates of ~1e-7, 1e-5, 1e-4 and 1e-3 (10 bits a byte).
        assert_eq!(choose(4063, 1e-6, Strength::Off), Strength::Off);
        assert_ne!(choose(4063, 1e-3, Strength::Off), Strength::Off);
        assert_eq!(choose(4063, 1e-2, Strength::Off), Strength::Heavy);
        // At the best payload the model expects what the benchmark then measures:
        // BER 1e-4 (bytes 1e-3) above 90% of the line, BER 1e-3 (bytes 1e-2) above 75%.
        assert!(best_payload(Strength::Light, 3900, 1e-3).1 > 0.90);
        assert!(best_payload(Strength::Heavy, 3900, 1e-2).1 > 0.75);
        // COBS damage makes long frames a poor bet on a very noisy line.
        assert!(best_payload(Strength::Heavy, 3900, 1e-2).0 < 2048);
    }

    #[test]
    fn thin_parity_for_ber_1e5() {
        // BER 1e-5 (bytes 1e-4) with 4 KiB frames: two corrections per codeword
        // keep nearly every frame, at half the parity of light.
        let (cap, rate) = (4063, 1e-4);
        let thin = best_payload(Strength::Thin, cap, rate);
        assert!(thin.0 >= 3900 && thin.1 > 0.965, "{thin:?}");
        assert!(thin.1 > best_payload(Strength::Light, cap, rate).1 * 1.01);
        assert!(thin.1 > best_payload(Strength::Off, cap, rate).1 * 1.05);
        for current in Strength::ALL {
            assert_eq!(
                pick(current, |s| best_payload(s, cap, rate)),
                (Strength::Thin, thin.0),
                "{current:?}"
            );
        }
        // BER 1e-3 (bytes 1e-2): two corrections per codeword are far too few.
        assert_eq!(pick(Strength::Thin, |s| best_payload(s, cap, 1e-2)).0, Strength::Heavy);
        assert!(best_payload(Strength::Thin, cap, 1e-2).1 < best_payload(Strength::Light, cap, 1e-2).1);
    }

    #[test]
    fn pick_takes_the_best_option_not_the_first_that_beats_the_current() {
        let opts = |s: Strength| match s {
            Strength::Off => (100, 0.900),
            Strength::Thin => (200, 0.910),
            Strength::Light => (300, 0.918),
            Strength::Heavy => (400, 0.800),
        };
        assert_eq!(pick(Strength::Off, opts), (Strength::Light, 300));
        // Within 1% of the current one: stay, with the current one's payload.
        assert_eq!(pick(Strength::Thin, opts), (Strength::Thin, 200));
        assert_eq!(pick(Strength::Heavy, opts), (Strength::Light, 300));
    }

    #[test]
    fn hysteresis_keeps_a_near_equal_choice() {
        let r = 2e-4;
        let a = efficiency(4000, Strength::Off, r);
        let b = efficiency(4000, Strength::Light, r);
        let pick = choose(4000, r, Strength::Off);
        if b < a * 1.01 {
            assert_eq!(pick, Strength::Off);
        }
    }
}
