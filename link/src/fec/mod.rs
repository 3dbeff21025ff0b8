//! In-frame forward error correction (to be specified as spec section 2.1).
//!
//! A protected frame is `[marker][raw frame][parity]`, where the raw frame is
//! the plain frame of section 3 (header, payload, CRC) unchanged, and the
//! parity is Reed-Solomon over GF(2^8) in `n` interleaved codewords: codeword
//! `c` takes raw bytes `c, c+n, c+2n, …` and its parity bytes sit at
//! `L + j·n + c` after the `L` raw bytes, so a burst of errors is spread over
//! all codewords instead of overwhelming one.
//!
//! Because the raw bytes stay in place, a receiver first checks the CRC as it
//! would for a plain frame and runs the decoder only when that fails: clean
//! frames cost nothing extra, the CPU is spent only on damaged ones.
//!
//! The marker says the strength. Its values (and the version byte 0x01 that
//! starts a plain frame) are at Hamming distance 5 or more from each other, so
//! the marker is recovered even with two of its bits flipped. Four bytes at
//! distance 5 are the most 8 bits hold, so with 0x01, 0x3E (light), 0xC6
//! (heavy) and 0xF9 (thin) the marker space is full: a further strength would
//! need a weaker marker or a new frame version.

pub mod gf;
pub mod policy;
pub mod rs;

use rs::Generator;

/// How much parity a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strength {
    /// A plain frame: no marker, no parity.
    Off,
    /// 4 parity bytes per codeword of up to 255: corrects 2 bytes in each (1.6% overhead).
    Thin,
    /// 8 parity bytes per codeword: corrects 4 bytes in each (3.2% overhead).
    Light,
    /// 16 parity bytes per codeword: corrects 8 bytes in each (6.7% overhead).
    Heavy,
}

const THIN: Generator = Generator::new(4);
const LIGHT: Generator = Generator::new(8);
const HEAVY: Generator = Generator::new(16);

impl Strength {
    /// Every strength, weakest first.
    pub const ALL: [Strength; 4] = [Strength::Off, Strength::Thin, Strength::Light, Strength::Heavy];

    /// Parity bytes per codeword.
    pub const fn parity(self) -> usize {
        match self {
            Strength::Off => 0,
            Strength::Thin => 4,
            Strength::Light => 8,
            Strength::Heavy => 16,
        }
    }

    /// The marker byte that starts a protected frame.
    pub const fn marker(self) -> Option<u8> {
        match self {
            Strength::Off => None,
            Strength::Thin => Some(0xF9),
            Strength::Light => Some(0x3E),
            Strength::Heavy => Some(0xC6),
        }
    }

    fn generator(self) -> Option<&'static Generator> {
        match self {
            Strength::Off => None,
            Strength::Thin => Some(&THIN),
            Strength::Light => Some(&LIGHT),
            Strength::Heavy => Some(&HEAVY),
        }
    }

    /// The strength a received first byte stands for: a marker within two bit
    /// flips, else a plain frame.
    pub fn from_first_byte(b: u8) -> Strength {
        for s in Strength::ALL {
            if let Some(m) = s.marker() {
                if (b ^ m).count_ones() <= 2 {
                    return s;
                }
            }
        }
        Strength::Off
    }

    /// The next strength down (`Off` stays `Off`).
    pub const fn weaker(self) -> Strength {
        match self {
            Strength::Off | Strength::Thin => Strength::Off,
            Strength::Light => Strength::Thin,
            Strength::Heavy => Strength::Light,
        }
    }
}

/// Raw bytes per codeword at most.
const fn data_per_codeword(s: Strength) -> usize {
    rs::MAX_CODEWORD - s.parity()
}

/// Number of codewords for `raw_len` bytes.
pub const fn codewords(raw_len: usize, s: Strength) -> usize {
    match s {
        Strength::Off => 0,
        _ => raw_len.div_ceil(data_per_codeword(s)),
    }
}

/// Bytes of a protected frame carrying `raw_len` raw bytes.
pub const fn protected_len(raw_len: usize, s: Strength) -> usize {
    match s {
        Strength::Off => raw_len,
        _ => 1 + raw_len + codewords(raw_len, s) * s.parity(),
    }
}

/// Writes the protected form of `raw` into `out`; returns its length, or
/// `None` if `out` is too small.
pub fn protect(raw: &[u8], s: Strength, out: &mut [u8]) -> Option<usize> {
    let total = protected_len(raw.len(), s);
    let out = out.get_mut(..total)?;
    let (Some(g), Some(marker)) = (s.generator(), s.marker()) else {
        out.copy_from_slice(raw);
        return Some(total);
    };
    let (l, n, nsym) = (raw.len(), codewords(raw.len(), s), s.parity());
    out[0] = marker;
    out[1..1 + l].copy_from_slice(raw);
    let mut par = [0u8; rs::MAX_PARITY];
    for c in 0..n {
        g.encode(raw.iter().skip(c).step_by(n).copied(), &mut par);
        for (j, &p) in par[..nsym].iter().enumerate() {
            out[1 + l + j * n + c] = p;
        }
    }
    Some(total)
}

/// What [`repair`] made of a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// A plain frame (no marker): the caller checks it as usual.
    Plain,
    /// A protected frame whose raw bytes are `buf[start..start + len]`, after
    /// correcting `corrected` bytes (0: it arrived intact).
    Repaired {
        /// Offset of the raw frame in the buffer.
        start: usize,
        /// Its length.
        len: usize,
        /// Bytes corrected.
        corrected: usize,
    },
    /// Damaged beyond what its parity can repair.
    Failed,
}

/// The raw length `L` of a protected frame of `total` bytes: the unique `L`
/// with `1 + L + codewords(L)·parity == total`.
fn raw_len_of(total: usize, s: Strength) -> Option<usize> {
    let body = total.checked_sub(1)?;
    let k = data_per_codeword(s);
    let nsym = s.parity();
    let mut n = body.div_ceil(rs::MAX_CODEWORD).max(1);
    while n * nsym < body {
        let l = body - n * nsym;
        if l.div_ceil(k) == n {
            return Some(l);
        }
        n += 1;
    }
    None
}

/// Repairs a received frame in place. `intact` checks a raw frame's CRC; it
/// is tried first, so the decoder runs only on damaged frames.
pub fn repair(buf: &mut [u8], intact: impl Fn(&[u8]) -> bool) -> Repair {
    let Some(&first) = buf.first() else { return Repair::Failed };
    let s = Strength::from_first_byte(first);
    if s == Strength::Off {
        return Repair::Plain;
    }
    let Some(l) = raw_len_of(buf.len(), s) else { return Repair::Failed };
    let start = 1;
    if intact(&buf[start..start + l]) {
        return Repair::Repaired { start, len: l, corrected: 0 };
    }
    let (n, nsym) = (codewords(l, s), s.parity());
    let mut corrected = 0;
    let mut cw = [0u8; rs::MAX_CODEWORD];
    for c in 0..n {
        // Gather codeword c: its raw bytes, then its parity bytes.
        let mut len = 0;
        let mut i = c;
        while i < l {
            cw[len] = buf[start + i];
            len += 1;
            i += n;
        }
        let data_len = len;
        for j in 0..nsym {
            cw[len] = buf[start + l + j * n + c];
            len += 1;
        }
        match rs::correct(&mut cw[..len], nsym) {
            Ok(0) => {}
            Ok(k) => {
                corrected += k;
                let mut i = c;
                for &b in &cw[..data_len] {
                    buf[start + i] = b;
                    i += n;
                }
            }
            Err(_) => return Repair::Failed,
        }
    }
    if intact(&buf[start..start + l]) {
        Repair::Repaired { start, len: l, corrected }
    } else {
        Repair::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::crc32c;

    /// The first byte of a plain version-1 frame.
    const PLAIN: u8 = crate::wire::VERSION;

    /// A raw frame of `len` bytes with a valid CRC trailer.
    fn raw_frame(len: usize, seed: u8) -> heapless::Vec<u8, 4200> {
        let mut v: heapless::Vec<u8, 4200> =
            (0..len - 4).map(|i| (i as u8).wrapping_mul(seed) ^ 0x5A).collect();
        let crc = crc32c(&v);
        v.extend_from_slice(&crc.to_le_bytes()).unwrap();
        v
    }

    fn crc_ok(b: &[u8]) -> bool {
        b.len() >= 4 && crc32c(&b[..b.len() - 4]).to_le_bytes() == b[b.len() - 4..]
    }

    #[test]
    fn markers_are_far_apart_and_survive_two_flips() {
        let vals = [PLAIN, 0xF9, 0x3E, 0xC6];
        for (i, a) in vals.iter().enumerate() {
            for b in &vals[i + 1..] {
                assert!((a ^ b).count_ones() >= 5, "{a:#x} vs {b:#x}");
            }
        }
        assert_eq!(Strength::ALL.map(|s| s.marker()), [None, Some(0xF9), Some(0x3E), Some(0xC6)]);
        for s in [Strength::Thin, Strength::Light, Strength::Heavy] {
            let m = s.marker().unwrap();
            for x in 0..8 {
                for y in 0..8 {
                    assert_eq!(Strength::from_first_byte(m ^ (1 << x) ^ (1 << y)), s);
                }
            }
        }
        // Every byte: within two flips of a marker it is that strength, else plain.
        for b in 0..=255u8 {
            let near = [Strength::Thin, Strength::Light, Strength::Heavy]
                .into_iter()
                .find(|s| (b ^ s.marker().unwrap()).count_ones() <= 2);
            assert_eq!(Strength::from_first_byte(b), near.unwrap_or(Strength::Off), "{b:#x}");
        }
        for x in 0..8 {
            for y in 0..8 {
                assert_eq!(Strength::from_first_byte(PLAIN ^ (1 << x) ^ (1 << y)), Strength::Off);
            }
        }
    }

    #[test]
    fn weaker_steps_down_to_off() {
        assert_eq!(Strength::Heavy.weaker(), Strength::Light);
        assert_eq!(Strength::Light.weaker(), Strength::Thin);
        assert_eq!(Strength::Thin.weaker(), Strength::Off);
        assert_eq!(Strength::Off.weaker(), Strength::Off);
        for w in Strength::ALL.windows(2) {
            assert!(w[0].parity() < w[1].parity());
        }
    }

    #[test]
    fn raw_length_is_recovered_for_every_size() {
        for s in [Strength::Thin, Strength::Light, Strength::Heavy] {
            for l in 1..5000 {
                assert_eq!(raw_len_of(protected_len(l, s), s), Some(l), "{s:?} {l}");
            }
        }
    }

    #[test]
    fn clean_frames_pass_untouched() {
        let raw = raw_frame(1000, 7);
        for s in [Strength::Thin, Strength::Light, Strength::Heavy] {
            let mut buf = [0u8; 1200];
            let n = protect(&raw, s, &mut buf).unwrap();
            assert_eq!(
                repair(&mut buf[..n], crc_ok),
                Repair::Repaired { start: 1, len: raw.len(), corrected: 0 }
            );
            assert_eq!(&buf[1..1 + raw.len()], &raw[..]);
        }
    }

    #[test]
    fn a_burst_spread_by_interleaving_is_corrected() {
        // 4 KiB frame, Heavy: 17 codewords x 8 correctable = a 136-byte burst.
        let raw = raw_frame(4000, 3);
        let mut buf = [0u8; 4400];
        let n = protect(&raw, Strength::Heavy, &mut buf).unwrap();
        for b in &mut buf[500..636] {
            *b ^= 0xFF;
        }
        match repair(&mut buf[..n], crc_ok) {
            Repair::Repaired { corrected, .. } => assert_eq!(corrected, 136),
            other => panic!("{other:?}"),
        }
        assert_eq!(&buf[1..4001], &raw[..]);
    }

    #[test]
    fn beyond_the_parity_it_fails_and_never_lies() {
        let raw = raw_frame(300, 9);
        let mut buf = [0u8; 400];
        let n = protect(&raw, Strength::Light, &mut buf).unwrap();
        for i in (1..200).step_by(7) {
            buf[i] ^= 0x33;
        }
        assert_eq!(repair(&mut buf[..n], crc_ok), Repair::Failed);
    }

    /// Buffer offsets of codeword `c`'s bytes (data, then parity) in a
    /// protected frame of `l` raw bytes at strength `s`.
    fn members(l: usize, s: Strength, c: usize) -> heapless::Vec<usize, 255> {
        let n = codewords(l, s);
        (c..l).step_by(n).map(|i| 1 + i).chain((0..s.parity()).map(|j| 1 + l + j * n + c)).collect()
    }

    #[test]
    fn thin_repairs_two_bytes_in_every_codeword() {
        // 1,200 raw bytes: 5 codewords of 240 data + 4 parity. Two damaged bytes
        // in each, in the data, the parity, or one of each.
        let raw = raw_frame(1200, 5);
        let s = Strength::Thin;
        let n = codewords(raw.len(), s);
        assert_eq!(n, 5);
        for (first, second) in [(0, 1), (3, 200), (10, 241), (240, 243), (0, 242)] {
            let mut buf = [0u8; 1300];
            let total = protect(&raw, s, &mut buf).unwrap();
            assert_eq!(total, 1 + 1200 + 5 * 4);
            for c in 0..n {
                let m = members(raw.len(), s, c);
                buf[m[first % m.len()]] ^= 0xA7;
                buf[m[second % m.len()]] ^= 0x01;
            }
            match repair(&mut buf[..total], crc_ok) {
                Repair::Repaired { start, len, corrected } => {
                    // Damage in the parity alone leaves the CRC intact: nothing to decode.
                    let decoded = if first < 240 { 2 * n } else { 0 };
                    assert_eq!((start, len, corrected), (1, raw.len(), decoded), "{first} {second}");
                }
                other => panic!("{first} {second}: {other:?}"),
            }
            assert_eq!(&buf[1..1 + raw.len()], &raw[..]);
        }
    }

    #[test]
    fn thin_reports_three_bytes_in_a_codeword_and_never_passes_them() {
        let raw = raw_frame(1200, 11);
        let s = Strength::Thin;
        let n = codewords(raw.len(), s);
        let mut failed = 0;
        for c in 0..n {
            for spread in 1..40 {
                let mut buf = [0u8; 1300];
                let total = protect(&raw, s, &mut buf).unwrap();
                let m = members(raw.len(), s, c);
                // Three distinct bytes of codeword c (spread < half its length).
                for at in [c, c + spread, c + 2 * spread + 1] {
                    buf[m[at % m.len()]] ^= (spread as u8).wrapping_mul(13) | 1;
                }
                // Beyond the parity: the decoder gives up or miscorrects, and
                // the CRC catches a miscorrection. Never the wrong bytes.
                assert_eq!(repair(&mut buf[..total], crc_ok), Repair::Failed, "codeword {c} spread {spread}");
                failed += 1;
            }
        }
        assert_eq!(failed, n * 39);
        // The same three errors spread over three codewords are within the parity.
        let mut buf = [0u8; 1300];
        let total = protect(&raw, s, &mut buf).unwrap();
        for c in 0..3 {
            buf[members(raw.len(), s, c)[c + 4]] ^= 0x55;
        }
        assert!(matches!(repair(&mut buf[..total], crc_ok), Repair::Repaired { corrected: 3, .. }));
    }

    #[test]
    fn thin_gives_up_where_light_still_repairs() {
        // Three or four damaged bytes in one codeword: past Thin, within Light.
        let raw = raw_frame(700, 13);
        for errors in [3, 4] {
            for s in [Strength::Thin, Strength::Light] {
                let mut buf = [0u8; 800];
                let total = protect(&raw, s, &mut buf).unwrap();
                let m = members(raw.len(), s, 1);
                for k in 0..errors {
                    buf[m[k * 50 % m.len()]] ^= 0x80;
                }
                let got = repair(&mut buf[..total], crc_ok);
                if s == Strength::Thin {
                    assert_eq!(got, Repair::Failed, "{errors}");
                } else {
                    assert_eq!(got, Repair::Repaired { start: 1, len: 700, corrected: errors }, "{errors}");
                    assert_eq!(&buf[1..701], &raw[..]);
                }
            }
        }
    }

    #[test]
    fn plain_frames_are_left_to_the_caller() {
        let mut buf = [PLAIN, 1, 2, 3];
        assert_eq!(repair(&mut buf, crc_ok), Repair::Plain);
    }
}
