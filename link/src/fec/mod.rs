//! In-frame forward error correction (spec section 2.1).
//!
//! A protected frame is `[marker][raw frame][parity]`, where the raw frame is
//! the plain frame of section 3 (header, payload, CRC) unchanged. Because the
//! raw bytes stay in place, a receiver first checks the CRC as it would for a
//! plain frame and runs the decoder only when that fails: clean frames cost
//! nothing extra, the CPU is spent only on damaged ones.
//!
//! Two families of Reed-Solomon codes, chosen per frame (section 6.7):
//!
//! * **Interleaved** (thin, light, heavy): GF(2^8) in `n` codewords of up to
//!   255 bytes. Codeword `c` takes raw bytes `c, c+n, c+2n, …` and its parity
//!   bytes sit at `L + j·n + c` after the `L` raw bytes, so a burst of errors
//!   is spread over all codewords. Parity grows with the frame: 4, 8 or 16
//!   bytes per 251, 247 or 239.
//! * **Frame-wide** (wide2, wide4, wide8): GF(2^16), one codeword whose
//!   symbols are the frame's byte pairs. 8, 16 or 32 parity bytes per frame
//!   whatever its size, correcting 2, 4 or 8 damaged symbols anywhere in it.
//!   On a line with scattered errors a 4 KiB frame rarely holds more than a
//!   few, and locating them in one long codeword costs far less parity than
//!   giving each 255-byte piece its own.
//!
//! The marker says the code. Its values and the version byte 0x01 that starts
//! a plain frame are the words of a code of minimum distance 4 (a translate of
//! the extended Hamming code), so one flipped bit is corrected and two are
//! detected (the frame is dropped). That leaves 8 of its 16 values for codes
//! not defined yet.

#[cfg(not(target_os = "none"))]
mod fast;
pub mod gf;
pub mod gf16;
pub mod policy;
pub mod rs;

use rs::{Codeword, Generator, Gf256, Gf65536};

/// Longest interleaved codeword, parity included: the GF(2^8) code's limit.
const INTERLEAVED_CODEWORD: usize = 255;

/// How much parity a frame carries, and in which code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strength {
    /// A plain frame: no marker, no parity.
    #[default]
    Off,
    /// Interleaved, 4 parity bytes per codeword of up to 255: corrects 2 bytes in each (1.6% overhead).
    Thin,
    /// Interleaved, 8 parity bytes per codeword: corrects 4 bytes in each (3.2% overhead).
    Light,
    /// Interleaved, 16 parity bytes per codeword: corrects 8 bytes in each (6.7% overhead).
    Heavy,
    /// Frame-wide, 4 parity symbols (8 bytes): corrects 2 symbols anywhere in the frame.
    Wide2,
    /// Frame-wide, 8 parity symbols (16 bytes): corrects 4 symbols.
    Wide4,
    /// Frame-wide, 16 parity symbols (32 bytes): corrects 8 symbols.
    Wide8,
}

/// The code behind a strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Plain,
    /// GF(2^8), this many parity bytes per interleaved codeword.
    Interleaved(usize),
    /// GF(2^16), this many parity symbols in the one codeword.
    Wide(usize),
}

impl Strength {
    /// Every strength, by parity on a 4 KiB frame, least first.
    pub const ALL: [Strength; 7] = [
        Strength::Off,
        Strength::Wide2,
        Strength::Wide4,
        Strength::Wide8,
        Strength::Thin,
        Strength::Light,
        Strength::Heavy,
    ];

    /// The code every frame, however long, must have room for. A full-size
    /// frame cut on a clean line may meet BER 1e-3 before it is acknowledged:
    /// on an 8N1 line that damages 1 byte in 100, and heavy parity carries a
    /// 4 KiB frame across such a line 97 times in 100, light parity about 6
    /// times (plain, never). The room costs a clean line 0.09% of its rate
    /// (linkbench, 4 MiB: 98.81% against 98.90%).
    pub const ROOM: Strength = Strength::Heavy;

    const fn code(self) -> Code {
        match self {
            Strength::Off => Code::Plain,
            Strength::Thin => Code::Interleaved(4),
            Strength::Light => Code::Interleaved(8),
            Strength::Heavy => Code::Interleaved(16),
            Strength::Wide2 => Code::Wide(4),
            Strength::Wide4 => Code::Wide(8),
            Strength::Wide8 => Code::Wide(16),
        }
    }

    /// Parity symbols per codeword (bytes for the interleaved codes, byte
    /// pairs for the frame-wide ones).
    pub const fn parity(self) -> usize {
        match self.code() {
            Code::Plain => 0,
            Code::Interleaved(p) | Code::Wide(p) => p,
        }
    }

    /// Damaged symbols each codeword corrects.
    pub const fn corrects(self) -> usize {
        self.parity() / 2
    }

    /// True for the frame-wide GF(2^16) codes.
    pub const fn is_wide(self) -> bool {
        matches!(self.code(), Code::Wide(_))
    }

    /// The marker byte that starts a protected frame.
    pub const fn marker(self) -> Option<u8> {
        match self {
            Strength::Off => None,
            Strength::Thin => Some(0x2C),
            Strength::Light => Some(0x4A),
            Strength::Heavy => Some(0x98),
            Strength::Wide2 => Some(0x67),
            Strength::Wide4 => Some(0xAB),
            Strength::Wide8 => Some(0xCD),
        }
    }

    /// The strength a received first byte stands for: a marker within one
    /// bit flip, else a plain frame (whose own checks then decide).
    pub fn from_first_byte(b: u8) -> Strength {
        Strength::ALL
            .into_iter()
            .find(|s| s.marker().is_some_and(|m| (b ^ m).count_ones() <= 1))
            .unwrap_or(Strength::Off)
    }

    /// The strength's name in options and reports: off, thin, light, heavy, wide2, wide4, wide8.
    pub const fn name(self) -> &'static str {
        match self {
            Strength::Off => "off",
            Strength::Thin => "thin",
            Strength::Light => "light",
            Strength::Heavy => "heavy",
            Strength::Wide2 => "wide2",
            Strength::Wide4 => "wide4",
            Strength::Wide8 => "wide8",
        }
    }

    /// The strength called `name` (see [`Strength::name`]).
    pub fn from_name(name: &str) -> Option<Strength> {
        Strength::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The next strength down in the same family (`Off` stays `Off`): what a
    /// frame falls back to when its parity would not fit the peer's limit.
    pub const fn weaker(self) -> Strength {
        match self {
            Strength::Off | Strength::Thin | Strength::Wide2 => Strength::Off,
            Strength::Light => Strength::Thin,
            Strength::Heavy => Strength::Light,
            Strength::Wide4 => Strength::Wide2,
            Strength::Wide8 => Strength::Wide4,
        }
    }
}

/// Number of codewords for `raw_len` bytes.
pub const fn codewords(raw_len: usize, s: Strength) -> usize {
    match s.code() {
        Code::Plain => 0,
        Code::Interleaved(p) => raw_len.div_ceil(INTERLEAVED_CODEWORD - p),
        Code::Wide(_) => 1,
    }
}

/// Bytes of a protected frame carrying `raw_len` raw bytes.
pub const fn protected_len(raw_len: usize, s: Strength) -> usize {
    match s.code() {
        Code::Plain => raw_len,
        Code::Interleaved(p) => 1 + raw_len + codewords(raw_len, s) * p,
        Code::Wide(p) => 1 + raw_len + 2 * p,
    }
}

/// The symbols of a frame-wide codeword: byte pairs, high byte first, the
/// last one padded with an implied zero when the raw frame's length is odd.
fn wide_symbols(raw: &[u8]) -> impl Iterator<Item = u16> + '_ {
    raw.chunks(2).map(|c| u16::from(c[0]) << 8 | u16::from(c.get(1).copied().unwrap_or(0)))
}

/// Writes the protected form of `raw` into `out`; returns its length, or
/// `None` if `out` is too small.
pub fn protect(raw: &[u8], s: Strength, out: &mut [u8]) -> Option<usize> {
    let total = protected_len(raw.len(), s);
    let out = out.get_mut(..total)?;
    let l = raw.len();
    match (s.code(), s.marker()) {
        (Code::Interleaved(nsym), Some(marker)) => {
            out[0] = marker;
            out[1..1 + l].copy_from_slice(raw);
            let n = codewords(l, s);
            #[cfg(not(target_os = "none"))]
            if fast::protect_interleaved(raw, nsym, n, &mut out[1 + l..]) {
                return Some(total);
            }
            parity_interleaved(raw, nsym, n, &mut out[1 + l..]);
        }
        (Code::Wide(nsym), Some(marker)) => {
            out[0] = marker;
            out[1..1 + l].copy_from_slice(raw);
            #[cfg(not(target_os = "none"))]
            if fast::protect_wide(raw, nsym, &mut out[1 + l..]) {
                return Some(total);
            }
            parity_wide(raw, nsym, &mut out[1 + l..]);
        }
        _ => out.copy_from_slice(raw),
    }
    Some(total)
}

/// The interleaved parity of `raw` (`n` codewords) by the generic encoder:
/// byte `j` of codeword `c` at `parity[j·n + c]`. A microcontroller's path
/// (no tables), and the reference the table-driven one is tested against.
fn parity_interleaved(raw: &[u8], nsym: usize, n: usize, parity: &mut [u8]) {
    let g = Generator::<Gf256>::new(nsym);
    let mut par = [0u8; rs::MAX_PARITY];
    for c in 0..n {
        g.encode(raw.iter().skip(c).step_by(n).copied(), &mut par);
        for (j, &p) in par[..nsym].iter().enumerate() {
            parity[j * n + c] = p;
        }
    }
}

/// The frame-wide parity of `raw` by the generic encoder, high byte first.
fn parity_wide(raw: &[u8], nsym: usize, parity: &mut [u8]) {
    let g = Generator::<Gf65536>::new(nsym);
    let mut par = [0u16; rs::MAX_PARITY];
    g.encode(wide_symbols(raw), &mut par);
    for (j, p) in par[..nsym].iter().enumerate() {
        parity[2 * j..2 * j + 2].copy_from_slice(&p.to_be_bytes());
    }
}

/// What [`repair`] made of a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// A plain frame (no marker): the caller checks it as usual.
    Plain,
    /// A protected frame whose raw bytes are `buf[start..start + len]`, after
    /// correcting `corrected` symbols (0: it arrived intact).
    Repaired {
        /// Offset of the raw frame in the buffer.
        start: usize,
        /// Its length.
        len: usize,
        /// Symbols corrected (bytes, or byte pairs in a frame-wide code).
        corrected: usize,
    },
    /// Damaged beyond what its parity can repair.
    Failed,
}

/// The raw length `L` of a protected frame of `total` bytes: the unique `L`
/// with `protected_len(L) == total`.
fn raw_len_of(total: usize, s: Strength) -> Option<usize> {
    let body = total.checked_sub(1)?;
    match s.code() {
        Code::Plain => Some(total),
        Code::Wide(nsym) => body.checked_sub(2 * nsym).filter(|&l| l > 0),
        Code::Interleaved(nsym) => {
            let k = INTERLEAVED_CODEWORD - nsym;
            let mut n = body.div_ceil(INTERLEAVED_CODEWORD).max(1);
            while n * nsym < body {
                let l = body - n * nsym;
                if l.div_ceil(k) == n {
                    return Some(l);
                }
                n += 1;
            }
            None
        }
    }
}

/// Interleaved codeword `c` of a protected frame, read and fixed where it lies.
struct Interleaved<'a> {
    /// The frame after its marker: `l` raw bytes, then the parity.
    body: &'a mut [u8],
    l: usize,
    n: usize,
    c: usize,
    data: usize,
    nsym: usize,
}

impl Interleaved<'_> {
    fn offset(&self, i: usize) -> usize {
        if i < self.data {
            self.c + i * self.n
        } else {
            self.l + (i - self.data) * self.n + self.c
        }
    }
}

impl Codeword<u8> for Interleaved<'_> {
    fn symbols(&self) -> usize {
        self.data + self.nsym
    }
    fn get(&self, i: usize) -> u8 {
        self.body[self.offset(i)]
    }
    fn fix(&mut self, i: usize, e: u8) -> bool {
        let at = self.offset(i);
        self.body[at] ^= e;
        true
    }
}

/// The one codeword of a frame-wide code, over the frame after its marker.
struct Wide<'a> {
    body: &'a mut [u8],
    l: usize,
    nsym: usize,
}

impl Wide<'_> {
    fn data(&self) -> usize {
        self.l.div_ceil(2)
    }
    /// Offsets of symbol i's high and low bytes (the low one absent for the pad).
    fn offsets(&self, i: usize) -> (usize, Option<usize>) {
        if i < self.data() {
            (2 * i, (2 * i + 1 < self.l).then_some(2 * i + 1))
        } else {
            let at = self.l + 2 * (i - self.data());
            (at, Some(at + 1))
        }
    }
}

impl Codeword<u16> for Wide<'_> {
    fn symbols(&self) -> usize {
        self.data() + self.nsym
    }
    fn get(&self, i: usize) -> u16 {
        let (hi, lo) = self.offsets(i);
        u16::from(self.body[hi]) << 8 | lo.map_or(0, |lo| u16::from(self.body[lo]))
    }
    fn fix(&mut self, i: usize, e: u16) -> bool {
        let (hi, lo) = self.offsets(i);
        let [eh, el] = e.to_be_bytes();
        self.body[hi] ^= eh;
        match lo {
            Some(lo) => self.body[lo] ^= el,
            // An error in the implied zero: not a word of this code.
            None if el != 0 => return false,
            None => {}
        }
        true
    }
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
    let corrected = match s.code() {
        Code::Plain => return Repair::Plain,
        _ => correct_frame(&mut buf[start..], l, s),
    };
    match corrected {
        Ok(corrected) if intact(&buf[start..start + l]) => Repair::Repaired { start, len: l, corrected },
        _ => Repair::Failed,
    }
}

/// Corrects every codeword of a protected frame in place (`body`: the raw
/// bytes then the parity), by table where there are tables.
fn correct_frame(body: &mut [u8], l: usize, s: Strength) -> Result<usize, rs::Uncorrectable> {
    match s.code() {
        Code::Wide(nsym) => {
            #[cfg(not(target_os = "none"))]
            if let Some(corrected) = fast::repair_wide(body, l, nsym) {
                return corrected;
            }
            correct_wide(body, l, nsym)
        }
        Code::Interleaved(nsym) => {
            let n = codewords(l, s);
            #[cfg(not(target_os = "none"))]
            if let Some(corrected) = fast::repair_interleaved(body, l, n, nsym) {
                return corrected;
            }
            correct_interleaved(body, l, n, nsym)
        }
        Code::Plain => Ok(0),
    }
}

/// Corrects the frame-wide codeword by the generic decoder (syndromes by
/// Horner's rule over the symbols where they lie).
fn correct_wide(body: &mut [u8], l: usize, nsym: usize) -> Result<usize, rs::Uncorrectable> {
    rs::correct::<Gf65536, _>(&mut Wide { body, l, nsym }, nsym)
}

/// Corrects each interleaved codeword by the generic decoder.
fn correct_interleaved(body: &mut [u8], l: usize, n: usize, nsym: usize) -> Result<usize, rs::Uncorrectable> {
    (0..n).try_fold(0, |sum, c| {
        let data = (l - c).div_ceil(n);
        rs::correct::<Gf256, _>(&mut Interleaved { body: &mut *body, l, n, c, data, nsym }, nsym)
            .map(|k| sum + k)
    })
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

    /// Every strength that protects.
    const PROTECTED: [Strength; 6] =
        [Strength::Thin, Strength::Light, Strength::Heavy, Strength::Wide2, Strength::Wide4, Strength::Wide8];

    #[test]
    fn markers_are_far_apart_and_survive_one_flip() {
        let vals: heapless::Vec<u8, 8> =
            core::iter::once(PLAIN).chain(PROTECTED.iter().map(|s| s.marker().unwrap())).collect();
        for (i, a) in vals.iter().enumerate() {
            for b in &vals[i + 1..] {
                assert!((a ^ b).count_ones() >= 4, "{a:#x} vs {b:#x}");
            }
        }
        for s in PROTECTED {
            let m = s.marker().unwrap();
            assert_eq!(Strength::from_first_byte(m), s);
            for x in 0..8 {
                assert_eq!(Strength::from_first_byte(m ^ (1 << x)), s);
                for y in (0..8).filter(|&y| y != x) {
                    // Two flips: detected, never taken for another code.
                    assert_eq!(Strength::from_first_byte(m ^ (1 << x) ^ (1 << y)), Strength::Off);
                }
            }
        }
        // Every byte: within one flip of a marker it is that strength, else plain.
        for b in 0..=255u8 {
            let near = PROTECTED.into_iter().find(|s| (b ^ s.marker().unwrap()).count_ones() <= 1);
            assert_eq!(Strength::from_first_byte(b), near.unwrap_or(Strength::Off), "{b:#x}");
        }
        for x in 0..8 {
            assert_eq!(Strength::from_first_byte(PLAIN ^ (1 << x)), Strength::Off);
        }
    }

    #[test]
    fn weaker_steps_down_to_off_within_a_family() {
        for s in Strength::ALL {
            let w = s.weaker();
            assert!(w == Strength::Off || w.is_wide() == s.is_wide(), "{s:?}");
            if s != Strength::Off {
                assert!(w.parity() < s.parity(), "{s:?}");
            }
        }
        assert_eq!(Strength::Heavy.weaker().weaker().weaker(), Strength::Off);
        assert_eq!(Strength::Wide8.weaker().weaker().weaker(), Strength::Off);
        // ALL runs from the least parity on a 4 KiB frame to the most.
        for w in Strength::ALL.windows(2) {
            assert!(protected_len(4000, w[0]) < protected_len(4000, w[1]), "{w:?}");
        }
    }

    #[test]
    fn raw_length_is_recovered_for_every_size() {
        for s in PROTECTED {
            for l in 1..5000 {
                assert_eq!(raw_len_of(protected_len(l, s), s), Some(l), "{s:?} {l}");
            }
        }
    }

    #[test]
    fn clean_frames_pass_untouched() {
        let raw = raw_frame(1000, 7);
        for s in PROTECTED {
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
    fn wide_frame_layout_is_pinned() {
        // Raw bytes 01 02 03: symbols 0x0102 and 0x0300 (padded); wide2's four
        // parity symbols follow high byte first (spec section 2.1's example).
        let mut buf = [0u8; 16];
        let n = protect(&[1, 2, 3], Strength::Wide2, &mut buf).unwrap();
        assert_eq!(n, 1 + 3 + 8);
        assert_eq!(buf[..n], [0x67, 1, 2, 3, 0x72, 0xC6, 0x02, 0x9F, 0x45, 0xC6, 0x37, 0x9D]);
    }

    #[test]
    fn wide_corrects_symbols_anywhere_and_a_burst_within_them() {
        let raw = raw_frame(4001, 17);
        for s in [Strength::Wide2, Strength::Wide4, Strength::Wide8] {
            let t = s.corrects();
            let mut buf = [0u8; 4100];
            let n = protect(&raw, s, &mut buf).unwrap();
            assert_eq!(n, 1 + 4001 + 4 * t);
            // t symbols: the first, the odd last data byte, parity, and spread ones.
            let mut at = [1usize, 4001, 4002 + 2 * t, 1000, 1001, 2501, 3333, 4003];
            at[..t].sort_unstable();
            let mut d = buf;
            for (k, &i) in at[..t].iter().enumerate() {
                d[i] ^= 0x11 + k as u8;
            }
            let hit = at[..t].iter().map(|&i| (i - 1) / 2).collect::<heapless::Vec<usize, 8>>();
            assert!(hit.windows(2).all(|w| w[0] != w[1]), "{s:?}: {hit:?} are distinct symbols");
            assert_eq!(repair(&mut d[..n], crc_ok), Repair::Repaired { start: 1, len: 4001, corrected: t });
            assert_eq!(&d[1..4002], &raw[..]);
            // A burst of 2t - 1 bytes starting on a symbol boundary covers t symbols.
            let mut d = buf;
            for b in &mut d[101..101 + 2 * t - 1] {
                *b ^= 0xFF;
            }
            assert_eq!(repair(&mut d[..n], crc_ok), Repair::Repaired { start: 1, len: 4001, corrected: t });
            // One symbol more is beyond the code, and never passed on.
            let mut d = buf;
            for b in &mut d[101..101 + 2 * t + 1] {
                *b ^= 0xFF;
            }
            assert_eq!(repair(&mut d[..n], crc_ok), Repair::Failed, "{s:?}");
        }
    }

    #[test]
    fn wide_refuses_a_correction_in_the_implied_pad() {
        // Parity of the same 3 bytes but with the pad byte set to 1: to the
        // decoder, the nearest codeword differs from what came in by a nonzero
        // pad, which was never sent. With a damaged data byte as well (so the
        // CRC fast path does not apply), both are located; the frame must fail.
        let raw = raw_frame(301, 23);
        let mut buf = [0u8; 400];
        let n = protect(&raw, Strength::Wide4, &mut buf).unwrap();
        let mut padded = raw.clone();
        padded.push(1).unwrap();
        let mut other = [0u8; 400];
        protect(&padded, Strength::Wide4, &mut other).unwrap();
        // The 302-byte frame's parity starts one byte later.
        buf[1 + 301..n].copy_from_slice(&other[1 + 302..1 + 302 + 16]);
        buf[10] ^= 0x40;
        assert_eq!(repair(&mut buf[..n], crc_ok), Repair::Failed);
    }

    #[test]
    fn table_driven_and_generic_paths_agree() {
        // Hosted targets encode and find syndromes by table (fast.rs), a
        // microcontroller by the generic code: same parity, same repairs,
        // same failures, byte for byte.
        extern crate std;
        use std::vec::Vec;
        let mut x = 0x2545_F491u32;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as usize
        };
        for s in PROTECTED {
            // 9,000 bytes: more interleaved codewords than one register group.
            for l in [1usize, 2, 3, 17, 250, 251, 252, 1000, 4001, 9000] {
                let raw: Vec<u8> = (0..l).map(|_| rnd() as u8).collect();
                let total = protected_len(l, s);
                let mut fast = std::vec![0u8; total];
                protect(&raw, s, &mut fast).unwrap();
                let mut generic = fast.clone();
                let n = codewords(l, s);
                match s.code() {
                    Code::Interleaved(nsym) => parity_interleaved(&raw, nsym, n, &mut generic[1 + l..]),
                    Code::Wide(nsym) => parity_wide(&raw, nsym, &mut generic[1 + l..]),
                    Code::Plain => unreachable!(),
                }
                assert_eq!(fast, generic, "{s:?} {l}");
                for _ in 0..30 {
                    let mut a = fast.clone();
                    let damaged = rnd() % (n * (s.corrects() + 2) + 2);
                    for _ in 0..damaged {
                        a[1 + rnd() % (total - 1)] ^= rnd() as u8 | 1;
                    }
                    let mut b = a.clone();
                    let (got, want) = match s.code() {
                        Code::Interleaved(nsym) => (
                            super::fast::repair_interleaved(&mut a[1..], l, n, nsym).unwrap(),
                            correct_interleaved(&mut b[1..], l, n, nsym),
                        ),
                        Code::Wide(nsym) => (
                            super::fast::repair_wide(&mut a[1..], l, nsym).unwrap(),
                            correct_wide(&mut b[1..], l, nsym),
                        ),
                        Code::Plain => unreachable!(),
                    };
                    assert_eq!(got, want, "{s:?} {l}");
                    assert_eq!(a, b, "{s:?} {l}");
                    // Beyond the parity a decoder may miscorrect (the CRC
                    // catches it); within it, never.
                    if damaged <= s.corrects() {
                        assert_eq!(&a[1..1 + l], &raw[..], "{s:?} {l}");
                    }
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
