//! Table-driven encoding, syndromes and Chien search, for hosted targets:
//! `fec/mod.rs` and `rs.rs` take this path where `target_os` is not `none`
//! (the codes of spec 2.1 are unchanged; tests check both paths agree).
//!
//! * **Encoder.** A codeword's parity symbols live in one integer, a
//!   *register*: symbol 0 (the highest degree) on top, so the encoder's
//!   shift is one shift of an integer, and one table lookup gives the
//!   product of the feedback symbol with every generator coefficient at once
//!   (a CRC's slice-by-1 over GF(2^8) or GF(2^16) symbols). The interleaved
//!   codewords are encoded together in one pass over the frame, row by row.
//! * **Syndromes.** The remainder of the received word divided by the
//!   generator is the parity recomputed from the received data plus the
//!   received parity; the generator vanishes at the roots, so the remainder
//!   has the received word's syndromes. A clean codeword costs one encoder
//!   pass; a damaged one nsym² products by powers of α, in vector lanes.
//! * **Chien search.** GF(2^8): Λ at eight positions per step, by lookups
//!   ([`BLOCK`], [`AHEAD`]). GF(2^16): the terms in eight 16-bit lanes that
//!   the vector unit multiplies by α^j at once, two halves of the codeword
//!   searched side by side.
//!
//! The tables depend only on the codes, so they are built at compile time:
//! 7 KiB of encoder tables for the interleaved codes, 28 KiB for the
//! frame-wide ones, 18 KiB for the GF(2^8) Chien search. A microcontroller
//! build has none of them (`.rodata` unchanged) and runs the generic code in
//! `rs.rs`.

use super::rs::{self, Gf256, Gf65536, Uncorrectable, MAX_PARITY};
use super::{gf, gf16, Interleaved, Wide};
use core::ops::{BitXor, BitXorAssign};

/// The parity symbols of a codeword packed into an integer, symbol 0 on top,
/// big-endian as they go on the wire in a frame-wide code.
pub(crate) trait Reg: Copy + Eq + BitXor<Output = Self> + BitXorAssign {
    /// All zero.
    const ZERO: Self;
    /// Width in bytes.
    const BYTES: usize;
    /// Shifted toward the top by `bits`, the top `bits` dropped.
    fn shl(self, bits: u32) -> Self;
    /// The top `bits` bits.
    fn top(self, bits: u32) -> u32;
    /// Byte `i`, counted from the top.
    fn byte(self, i: usize) -> u8;
    /// The register whose big-endian bytes are `b[..BYTES]`.
    fn from_be(b: &[u8]) -> Self;
}

macro_rules! int_reg {
    ($t:ty) => {
        impl Reg for $t {
            const ZERO: Self = 0;
            const BYTES: usize = core::mem::size_of::<$t>();
            #[inline(always)]
            fn shl(self, bits: u32) -> Self {
                self << bits
            }
            #[inline(always)]
            fn top(self, bits: u32) -> u32 {
                (self >> (<$t>::BITS - bits)) as u32
            }
            #[inline(always)]
            fn byte(self, i: usize) -> u8 {
                self.to_be_bytes()[i]
            }
            #[inline(always)]
            fn from_be(b: &[u8]) -> Self {
                let mut a = [0u8; core::mem::size_of::<$t>()];
                a.copy_from_slice(&b[..Self::BYTES]);
                <$t>::from_be_bytes(a)
            }
        }
    };
}
int_reg!(u32);
int_reg!(u64);
int_reg!(u128);

/// A 256-bit register: wide8's 16 symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct U256 {
    hi: u128,
    lo: u128,
}

impl BitXor for U256 {
    type Output = U256;
    #[inline(always)]
    fn bitxor(self, o: U256) -> U256 {
        U256 { hi: self.hi ^ o.hi, lo: self.lo ^ o.lo }
    }
}

impl BitXorAssign for U256 {
    #[inline(always)]
    fn bitxor_assign(&mut self, o: U256) {
        *self = *self ^ o;
    }
}

impl Reg for U256 {
    const ZERO: Self = U256 { hi: 0, lo: 0 };
    const BYTES: usize = 32;
    #[inline(always)]
    fn shl(self, bits: u32) -> Self {
        U256 { hi: self.hi << bits | self.lo >> (128 - bits), lo: self.lo << bits }
    }
    #[inline(always)]
    fn top(self, bits: u32) -> u32 {
        (self.hi >> (128 - bits)) as u32
    }
    #[inline(always)]
    fn byte(self, i: usize) -> u8 {
        if i < 16 {
            self.hi.to_be_bytes()[i]
        } else {
            self.lo.to_be_bytes()[i - 16]
        }
    }
    #[inline(always)]
    fn from_be(b: &[u8]) -> Self {
        U256 { hi: <u128 as Reg>::from_be(&b[..16]), lo: <u128 as Reg>::from_be(&b[16..32]) }
    }
}

/// The generator's coefficients below the leading 1, highest degree first,
/// over GF(2^8) (`wide` false) or GF(2^16): [`rs::Generator`] at compile time.
const fn generator(p: usize, wide: bool) -> [u16; 16] {
    const fn mul(a: u16, b: u16, wide: bool) -> u16 {
        if wide {
            gf16::mul(a, b)
        } else {
            gf::mul(a as u8, b as u8) as u16
        }
    }
    let mut full = [0u16; 17];
    full[0] = 1;
    let mut root = 1u16;
    let mut deg = 0;
    while deg < p {
        let mut k = deg + 1;
        while k >= 1 {
            full[k] ^= mul(full[k - 1], root, wide);
            k -= 1;
        }
        root = mul(root, 2, wide);
        deg += 1;
    }
    let mut coef = [0u16; 16];
    let mut i = 0;
    while i < p {
        coef[i] = full[i + 1];
        i += 1;
    }
    coef
}

/// Big-endian bytes of the register `x · g` for the code with `p` parity
/// symbols and generator `g`, `x` a GF(2^8) element, or in GF(2^16) `x << shift` (0 or 8: the
/// low-byte and high-byte tables).
const fn row(x: usize, g: &[u16; 16], p: usize, wide: bool, shift: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut j = 0;
    while j < p {
        if wide {
            let v = gf16::mul((x as u16) << shift, g[j]);
            out[2 * j] = (v >> 8) as u8;
            out[2 * j + 1] = v as u8;
        } else {
            out[j] = gf::mul(x as u8, g[j] as u8);
        }
        j += 1;
    }
    out
}

macro_rules! table {
    ($t:ty, $p:expr, $wide:expr, $shift:expr) => {{
        let g = generator($p, $wide);
        let mut t = [0 as $t; 256];
        let mut x = 0;
        while x < 256 {
            let r = row(x, &g, $p, $wide, $shift);
            let mut b = [0u8; core::mem::size_of::<$t>()];
            let mut i = 0;
            while i < b.len() {
                b[i] = r[i];
                i += 1;
            }
            t[x] = <$t>::from_be_bytes(b);
            x += 1;
        }
        t
    }};
}

static THIN: [u32; 256] = table!(u32, 4, false, 0);
static LIGHT: [u64; 256] = table!(u64, 8, false, 0);
static HEAVY: [u128; 256] = table!(u128, 16, false, 0);
static WIDE2: [[u64; 256]; 2] = [table!(u64, 4, true, 0), table!(u64, 4, true, 8)];
static WIDE4: [[u128; 256]; 2] = [table!(u128, 8, true, 0), table!(u128, 8, true, 8)];
static WIDE8: [[U256; 256]; 2] = {
    let g = generator(16, true);
    let mut t = [[U256::ZERO; 256]; 2];
    let mut half = 0;
    while half < 2 {
        let mut x = 0;
        while x < 256 {
            let r = row(x, &g, 16, true, 8 * half as u32);
            let (mut hi, mut lo) = ([0u8; 16], [0u8; 16]);
            let mut i = 0;
            while i < 16 {
                hi[i] = r[i];
                lo[i] = r[16 + i];
                i += 1;
            }
            t[half][x] = U256 { hi: u128::from_be_bytes(hi), lo: u128::from_be_bytes(lo) };
            x += 1;
        }
        half += 1;
    }
    t
};

/// Most interleaved codewords whose registers are kept at once; a longer
/// frame takes several passes.
const GROUP: usize = 32;

/// The registers of codewords `c0..c0 + regs.len()` of the interleaved
/// frame `raw` (`n` codewords: byte `i` belongs to codeword `i mod n`), in
/// one pass over it, row by row.
#[inline(always)]
fn registers8<R: Reg>(table: &[R; 256], raw: &[u8], n: usize, c0: usize, regs: &mut [R]) {
    regs.fill(R::ZERO);
    for row in raw.chunks(n) {
        let Some(part) = row.get(c0..) else { break };
        for (r, &b) in regs.iter_mut().zip(part) {
            let fb = (r.top(8) ^ u32::from(b)) as u8;
            *r = r.shl(8) ^ table[usize::from(fb)];
        }
    }
}

/// The register of the frame-wide codeword over `raw` (byte pairs, high
/// byte first, an odd last byte padded with zero).
#[inline(always)]
fn register16<R: Reg>(tables: &[[R; 256]; 2], raw: &[u8]) -> R {
    let [lo, hi] = tables;
    let step = |r: R, d: u32| {
        let fb = r.top(16) ^ d;
        r.shl(16) ^ lo[(fb & 0xFF) as usize] ^ hi[((fb >> 8) & 0xFF) as usize]
    };
    let mut pairs = raw.chunks_exact(2);
    let mut r = R::ZERO;
    for p in &mut pairs {
        r = step(r, u32::from(p[0]) << 8 | u32::from(p[1]));
    }
    if let [b] = pairs.remainder() {
        r = step(r, u32::from(*b) << 8);
    }
    r
}

/// Writes the parity of the interleaved frame `raw` (`n` codewords of `p`
/// parity bytes, `R` exactly `p` bytes wide): byte `j` of codeword `c` at
/// `parity[j·n + c]`.
fn parity8<R: Reg>(table: &[R; 256], raw: &[u8], n: usize, parity: &mut [u8]) {
    let mut regs = [R::ZERO; GROUP];
    let mut c0 = 0;
    while c0 < n {
        let regs = &mut regs[..(n - c0).min(GROUP)];
        registers8(table, raw, n, c0, regs);
        for (c, r) in (c0..).zip(regs.iter()) {
            for j in 0..R::BYTES {
                parity[j * n + c] = r.byte(j);
            }
        }
        c0 += regs.len();
    }
}

/// Writes the parity of an interleaved frame with `nsym` parity bytes per
/// codeword; false for an `nsym` without tables.
pub(super) fn protect_interleaved(raw: &[u8], nsym: usize, n: usize, parity: &mut [u8]) -> bool {
    match nsym {
        4 => parity8(&THIN, raw, n, parity),
        8 => parity8(&LIGHT, raw, n, parity),
        16 => parity8(&HEAVY, raw, n, parity),
        _ => return false,
    }
    true
}

/// Writes the parity of a frame-wide codeword with `nsym` parity symbols
/// (`2·nsym` bytes, high byte first); false for an `nsym` without tables.
pub(super) fn protect_wide(raw: &[u8], nsym: usize, parity: &mut [u8]) -> bool {
    fn put<R: Reg>(r: R, parity: &mut [u8]) {
        for (i, p) in parity[..R::BYTES].iter_mut().enumerate() {
            *p = r.byte(i);
        }
    }
    match nsym {
        4 => put(register16(&WIDE2, raw), parity),
        8 => put(register16(&WIDE4, raw), parity),
        16 => put(register16(&WIDE8, raw), parity),
        _ => return false,
    }
    true
}

/// Syndromes S_j = rem(α^j) of a remainder register of `nsym` symbols of
/// `F`, each from Horner's rule over the remainder's nsym symbols.
#[inline(always)]
fn syndromes_of<E: Copy + Default + BitXor<Output = E>>(
    rem: &[E],
    s: &mut [E; MAX_PARITY],
    mul_alpha_pow: impl Fn(E, usize) -> E,
) {
    for (j, sj) in s[..rem.len()].iter_mut().enumerate() {
        *sj = rem.iter().fold(E::default(), |acc, &r| mul_alpha_pow(acc, j) ^ r);
    }
}

/// [`syndromes_of`] over GF(2^8) for up to 16 remainder bytes, the
/// syndromes in lanes: S_0..S_7 in one vector (lane j times α^j per step),
/// S_8..S_15 in another (times α^(j-8), then α^8).
fn syndromes8(rem: &[u8], s: &mut [u8; MAX_PARITY]) {
    // Hidden from the optimiser for the reason given in `chien`.
    let (low, eighth) = core::hint::black_box(([1, 2, 4, 8, 16, 32, 64, 128], [256; 8]));
    let (mut a, mut b): (Lanes, Lanes) = ([0; 8], [0; 8]);
    let high = rem.len() > 8;
    for &r in rem {
        Gf256::step(&mut a, &low);
        a.iter_mut().for_each(|a| *a ^= u16::from(r));
        if high {
            Gf256::step(&mut b, &low);
            Gf256::step(&mut b, &eighth);
            b.iter_mut().for_each(|b| *b ^= u16::from(r));
        }
    }
    for (s, &v) in s.iter_mut().zip(a.iter().chain(&b)).take(rem.len()) {
        *s = v as u8;
    }
}

fn repair8<R: Reg>(table: &[R; 256], body: &mut [u8], l: usize, n: usize) -> Result<usize, Uncorrectable> {
    let nsym = R::BYTES;
    let mut regs = [R::ZERO; GROUP];
    let mut total = 0;
    let mut c0 = 0;
    while c0 < n {
        let regs = &mut regs[..(n - c0).min(GROUP)];
        registers8(table, &body[..l], n, c0, regs);
        for (c, &r) in (c0..).zip(regs.iter()) {
            let mut received = [0u8; 32];
            for (j, q) in received[..nsym].iter_mut().enumerate() {
                *q = body[l + j * n + c];
            }
            let rem = r ^ R::from_be(&received);
            if rem == R::ZERO {
                continue;
            }
            let mut sym = [0u8; 16];
            for (j, v) in sym[..nsym].iter_mut().enumerate() {
                *v = rem.byte(j);
            }
            let mut s = [0u8; MAX_PARITY];
            syndromes8(&sym[..nsym], &mut s);
            let data = (l - c).div_ceil(n);
            let mut cw = Interleaved { body: &mut *body, l, n, c, data, nsym };
            total += rs::solve::<Gf256, _>(&mut cw, nsym, &s)?;
        }
        c0 += regs.len();
    }
    Ok(total)
}

fn repair16<R: Reg>(tables: &[[R; 256]; 2], body: &mut [u8], l: usize) -> Result<usize, Uncorrectable> {
    let nsym = R::BYTES / 2;
    let rem = register16(tables, &body[..l]) ^ R::from_be(&body[l..]);
    if rem == R::ZERO {
        return Ok(0);
    }
    let mut sym = [0u16; 16];
    for (j, v) in sym[..nsym].iter_mut().enumerate() {
        *v = u16::from(rem.byte(2 * j)) << 8 | u16::from(rem.byte(2 * j + 1));
    }
    let mut s = [0u16; MAX_PARITY];
    syndromes_of(&sym[..nsym], &mut s, |a, j| gf16::mul_alpha_pow_fast(a, j as u32));
    rs::solve::<Gf65536, _>(&mut Wide { body, l, nsym }, nsym, &s)
}

/// Corrects the codewords of an interleaved frame in place (`body`: the raw
/// bytes then the parity); the symbols corrected, or `None` for an `nsym`
/// without tables.
pub(super) fn repair_interleaved(
    body: &mut [u8],
    l: usize,
    n: usize,
    nsym: usize,
) -> Option<Result<usize, Uncorrectable>> {
    Some(match nsym {
        4 => repair8(&THIN, body, l, n),
        8 => repair8(&LIGHT, body, l, n),
        16 => repair8(&HEAVY, body, l, n),
        _ => return None,
    })
}

/// Corrects the frame-wide codeword in place (`body`: the raw bytes then
/// the parity); `None` for an `nsym` without tables.
pub(super) fn repair_wide(body: &mut [u8], l: usize, nsym: usize) -> Option<Result<usize, Uncorrectable>> {
    Some(match nsym {
        4 => repair16(&WIDE2, body, l),
        8 => repair16(&WIDE4, body, l),
        16 => repair16(&WIDE8, body, l),
        _ => return None,
    })
}

/// The Chien search's terms j = 1..=8 of Λ(X^-1), term j in lane j - 1
/// (zero above the degree): eight 16-bit lanes that a host's vector unit
/// updates at once (SSE2's `pmullw` and `pmulhuw` take the per-lane shifts).
type Lanes = [u16; 8];

/// 2^j for the term in each lane: the shift that multiplies it by α^j.
const SHIFT: Lanes = [2, 4, 8, 16, 32, 64, 128, 256];

/// A field whose elements fit a lane, and the Chien step on its lanes.
pub(super) trait LaneField: rs::Field {
    fn to_lane(a: Self::E) -> u16;
    fn from_lane(a: u16) -> Self::E;
    /// Term j (lane j - 1) times α^j, for every lane; `k` is [`SHIFT`].
    fn step(t: &mut Lanes, k: &Lanes);
}

impl LaneField for Gf256 {
    fn to_lane(a: u8) -> u16 {
        u16::from(a)
    }
    fn from_lane(a: u16) -> u8 {
        a as u8
    }
    #[inline(always)]
    fn step(t: &mut Lanes, k: &Lanes) {
        for (t, &k) in t.iter_mut().zip(k) {
            // t · x^j (at most 16 bits: t < 2^8, j <= 8), then the bits above
            // x^7 folded back twice by x^8 = x^4 + x^3 + x^2 + 1.
            let w = t.wrapping_mul(k);
            let h = w >> 8;
            let r = h ^ h << 2 ^ h << 3 ^ h << 4;
            let h = r >> 8;
            *t = (w ^ r) & 0xFF ^ h ^ h << 2 ^ h << 3 ^ h << 4;
        }
    }
}

impl LaneField for Gf65536 {
    fn to_lane(a: u16) -> u16 {
        a
    }
    fn from_lane(a: u16) -> u16 {
        a
    }
    #[inline(always)]
    fn step(t: &mut Lanes, k: &Lanes) {
        for (t, &k) in t.iter_mut().zip(k) {
            // t · x^j: the low 16 bits, and the j bits shifted out (t's high
            // byte times 2^j, its high byte: j <= 8, so all in 16 bits),
            // folded back twice by x^16 = x^12 + x^3 + x + 1.
            let lo = t.wrapping_mul(k);
            let h = (*t >> 8).wrapping_mul(k) >> 8;
            let g = h >> 4;
            *t = lo ^ h ^ h << 1 ^ h << 3 ^ h << 12 ^ g ^ g << 1 ^ g << 3 ^ g << 12;
        }
    }
}

/// Λ at eight positions from one term: `BLOCK[j - 1][v]` holds in byte k
/// the value v·α^(j·k), term j's part of Λ(X^-1) k positions on from where
/// it is v. Term by term, Λ at eight positions is the XOR of eight lookups.
/// 16 KiB.
static BLOCK: [[u64; 256]; 8] = {
    let mut t = [[0u64; 256]; 8];
    let mut j = 1;
    while j <= 8 {
        let mut v = 0;
        while v < 256 {
            let mut k = 0;
            while k < 8 {
                t[j - 1][v] |= (gf::mul(v as u8, gf::exp(j * k)) as u64) << (8 * k);
                k += 1;
            }
            v += 1;
        }
        j += 1;
    }
    t
};

/// Term j eight positions on: `AHEAD[j - 1][v]` = v·α^(8j). 2 KiB.
static AHEAD: [[u8; 256]; 8] = {
    let mut t = [[0u8; 256]; 8];
    let mut j = 1;
    while j <= 8 {
        let mut v = 0;
        while v < 256 {
            t[j - 1][v] = gf::mul(v as u8, gf::exp(8 * j));
            v += 1;
        }
        j += 1;
    }
    t
};

/// [`rs::Field::chien`] over GF(2^8) for a locator of degree at most 8,
/// eight positions per step by [`BLOCK`] and [`AHEAD`]: a damaged heavy
/// codeword's search costs ~70 lookups instead of 255 × 8 products.
pub(super) fn chien8(lambda: &[u8], n: usize, first: u8, roots: &mut [(usize, u8)]) -> usize {
    let l = lambda.len() - 1;
    let log_first = usize::from(gf::log(first));
    // X^-1 at index i: first · α^i.
    let x_inv = |i: usize| gf::exp(log_first + i);
    if l == 1 {
        // Λ(x) = λ0 + λ1·x: X = λ1 / λ0, at index n - 1 - log X.
        let (Some(root), &[l0, l1]) = (roots.first_mut(), lambda) else { return 0 };
        if l0 == 0 || l1 == 0 {
            return 0;
        }
        let log_x = (usize::from(gf::log(l1)) + 255 - usize::from(gf::log(l0))) % 255;
        if log_x >= n {
            return 0;
        }
        let i = n - 1 - log_x;
        *root = (i, x_inv(i));
        return 1;
    }
    let mut t = [0u8; 8];
    let mut x = first;
    for (t, &c) in t.iter_mut().zip(&lambda[1..]) {
        *t = gf::mul(c, x);
        x = gf::mul(x, first);
    }
    let t = &mut t[..l];
    let l0 = u64::from(lambda[0]) * 0x0101_0101_0101_0101;
    let mut found = 0;
    for i in (0..n).step_by(8) {
        let mut v = l0;
        for ((t, block), ahead) in t.iter_mut().zip(&BLOCK).zip(&AHEAD) {
            v ^= block[usize::from(*t)];
            *t = ahead[usize::from(*t)];
        }
        // A byte that is zero gets its top bit set, exactly (no borrows
        // between bytes); bytes past the codeword are masked off.
        const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
        let mut zero = !((v & LOW7).wrapping_add(LOW7) | v | LOW7);
        if n - i < 8 {
            zero &= (1u64 << (8 * (n - i))) - 1;
        }
        while zero != 0 {
            let at = i + zero.trailing_zeros() as usize / 8;
            zero &= zero - 1;
            let Some(root) = roots.get_mut(found) else { return found };
            *root = (at, x_inv(at));
            found += 1;
            if found == roots.len() {
                return found;
            }
        }
    }
    found
}

/// [`rs::Field::chien`] over GF(2^16) for a locator of degree at most 8.
/// One damaged symbol, the usual case on the lines the frame-wide codes are
/// chosen for, needs no search: Λ(x) = λ0 + λ1·x has its root at
/// X = λ1 / λ0 = α^e, the error at index n - 1 - e, and e is a discrete
/// logarithm below n, found by baby-step giant-step in about 2√n products
/// where the search takes n/2 steps of eight lanes.
pub(super) fn chien16(lambda: &[u16], n: usize, first: u16, roots: &mut [(usize, u16)]) -> usize {
    let (&[l0, l1], Some(root)) = (lambda, roots.first_mut()) else {
        return chien::<Gf65536>(lambda, n, first, roots);
    };
    if l0 == 0 || l1 == 0 || n > gf16::ORDER {
        return 0;
    }
    let x = gf16::mul(l1, gf16::inv(l0));
    // e = a·m + b, b < m: the baby steps α^b, sorted, then x·α^(-m·a).
    let m = (1..=256).find(|&m| m * m >= n).unwrap_or(256);
    let mut baby = [(0u16, 0u16); 256];
    let mut p = 1u16;
    for (b, slot) in baby[..m].iter_mut().enumerate() {
        *slot = (p, b as u16);
        p = gf16::mul_alpha_pow(p, 1);
    }
    let baby = &mut baby[..m];
    baby.sort_unstable();
    let giant = gf16::pow(gf16::ALPHA, gf16::ORDER - m);
    let mut y = x;
    for a in 0..n.div_ceil(m) {
        if let Ok(k) = baby.binary_search_by_key(&y, |&(v, _)| v) {
            let e = a * m + usize::from(baby[k].1);
            if e >= n {
                return 0;
            }
            *root = (n - 1 - e, gf16::inv(x));
            return 1;
        }
        y = gf16::mul(y, giant);
    }
    0
}

/// [`rs::Field::chien`] for a locator of degree at most 8 (every code of
/// spec 2.1), all terms in one vector of lanes.
pub(super) fn chien<F: LaneField>(
    lambda: &[F::E],
    n: usize,
    first: F::E,
    roots: &mut [(usize, F::E)],
) -> usize {
    // Two searches at once, over the first and the second half of the
    // indexes: each step is a chain of dependent vector operations, and two
    // independent chains keep the vector unit busy (measured: 1.5x).
    let half = n.div_ceil(2);
    let terms = |x0: F::E| {
        let mut t: Lanes = [0; 8];
        let mut x = x0;
        for (t, &c) in t.iter_mut().zip(&lambda[1..]) {
            *t = F::to_lane(F::mul(c, x));
            x = F::mul(x, x0);
        }
        t
    };
    let mut t = [terms(first), terms(F::mul(first, F::pow(F::ALPHA, half)))];
    let (l0, l1) = (F::to_lane(lambda[0]), lambda.get(1).copied().unwrap_or(F::ZERO));
    let l1_inv = F::inv(l1);
    // Multipliers the optimiser does not see: knowing them, it unpicks the
    // vector into eight scalar lanes (measured: the GF(2^16) search ran at
    // half speed).
    let k = core::hint::black_box(SHIFT);
    // Roots found in each half, in index order.
    let mut found = [[(0usize, F::ZERO); 8]; 2];
    let mut count = [0usize; 2];
    let want = roots.len().min(8);
    for i in 0..half {
        for (h, t) in t.iter().enumerate() {
            let at = i + h * half;
            if t.iter().fold(l0, |a, &v| a ^ v) == 0 && at < n {
                // X^-1 from term 1 = λ1 · X^-1, without a running product.
                let x_inv = if l1 == F::ZERO {
                    F::mul(first, F::pow(F::ALPHA, at))
                } else {
                    F::mul(F::from_lane(t[0]), l1_inv)
                };
                if let Some(root) = found[h].get_mut(count[h]) {
                    *root = (at, x_inv);
                    count[h] += 1;
                }
            }
        }
        if count[0] + count[1] >= want {
            break;
        }
        for t in &mut t {
            F::step(t, &k);
        }
    }
    let all = found[0][..count[0]].iter().chain(&found[1][..count[1]]);
    let mut n_out = 0;
    for (out, &root) in roots.iter_mut().zip(all) {
        *out = root;
        n_out += 1;
    }
    n_out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fec::rs::{Field, Generator};

    fn check_generator<F: Field>(wide: bool)
    where
        F::E: Into<u16>,
    {
        for p in [4, 8, 16] {
            let g = Generator::<F>::new(p);
            let runtime: heapless::Vec<u16, 16> = g.coefficients().iter().map(|&c| c.into()).collect();
            assert_eq!(&generator(p, wide)[..p], &runtime[..], "wide {wide} p {p}");
        }
    }

    #[test]
    fn compile_time_generators_match_the_runtime_ones() {
        check_generator::<Gf256>(false);
        check_generator::<Gf65536>(true);
    }

    type Chien<E> = fn(&[E], usize, E, &mut [(usize, E)]) -> usize;

    /// `fast` against the generic search on random locators of degree 1-8.
    fn check_chien<F: rs::Field>(rnd: &mut impl FnMut() -> u16, fast: Chien<F::E>) {
        for _ in 0..2000 {
            let l = 1 + usize::from(rnd()) % 8;
            let n = l + 1 + usize::from(rnd()) % (F::MAX_CODEWORD.min(3000) - l);
            // A locator with roots at some indexes below n and perhaps beyond.
            let mut lambda = [F::ZERO; 9];
            lambda[0] = F::ONE;
            for k in 0..l {
                let at = usize::from(rnd()) % (n + 20).min(F::MAX_CODEWORD);
                let x = F::pow(F::ALPHA, (n - 1 + F::MAX_CODEWORD - at) % F::MAX_CODEWORD);
                // Λ(x) *= (1 + X·x)
                for d in (1..=k + 1).rev() {
                    let carry = F::mul(lambda[d - 1], x);
                    lambda[d] ^= carry;
                }
            }
            if rnd() % 4 == 0 {
                lambda[1] = F::ZERO; // the path without λ1
            }
            let first = F::pow(F::ALPHA, F::MAX_CODEWORD - (n - 1));
            let (mut want, mut got) = ([(0, F::ZERO); 8], [(0, F::ZERO); 8]);
            let w = rs::chien::<F>(&lambda[..=l], n, first, &mut want[..l]);
            let g = fast(&lambda[..=l], n, first, &mut got[..l]);
            assert_eq!((g, &got[..g]), (w, &want[..w]), "{lambda:?} n {n}");
        }
    }

    #[test]
    fn lane_chien_search_matches_the_generic_one() {
        let mut x = 0x9E37_79B9u32;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u16
        };
        check_chien::<Gf256>(&mut rnd, chien::<Gf256>);
        check_chien::<Gf256>(&mut rnd, chien8);
        check_chien::<Gf65536>(&mut rnd, chien::<Gf65536>);
        check_chien::<Gf65536>(&mut rnd, chien16);
    }

    #[test]
    fn a_single_root_is_found_by_its_logarithm_anywhere() {
        for n in [2usize, 3, 100, 2004, 4097, 65_534, 65_535] {
            let first = gf16::pow(gf16::ALPHA, gf16::ORDER - (n - 1));
            for e in [0usize, 1, 255, 256, 257, n - 2, n - 1, n, n + 1, 65_534] {
                // Λ(x) = λ0 · (1 + α^e · x), λ0 arbitrary.
                let l0 = 0x1234u16;
                let lambda = [l0, gf16::mul(l0, gf16::pow(gf16::ALPHA, e))];
                let (mut want, mut got) = ([(0, 0u16)], [(0, 0u16)]);
                let w = rs::chien::<Gf65536>(&lambda, n, first, &mut want);
                let g = chien16(&lambda, n, first, &mut got);
                assert_eq!((g, &got[..g]), (w, &want[..w]), "n {n} e {e}");
                assert_eq!(g, usize::from(e % gf16::ORDER < n), "n {n} e {e}");
            }
        }
    }

    #[test]
    fn lane_syndromes_match_horner() {
        let mut x = 0x1234_5678u32;
        for nsym in [4, 8, 16] {
            for _ in 0..500 {
                let rem: heapless::Vec<u8, 16> = (0..nsym)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                let (mut got, mut want) = ([0u8; MAX_PARITY], [0u8; MAX_PARITY]);
                syndromes8(&rem, &mut got);
                syndromes_of(&rem, &mut want, gf::mul_alpha_pow);
                assert_eq!(got, want, "{rem:?}");
            }
        }
    }

    #[test]
    fn u256_shifts_across_its_halves() {
        let r = U256 { hi: 1, lo: 0xABCD << 112 };
        let s = r.shl(16);
        assert_eq!((s.hi, s.lo), (0x1_ABCD, 0));
        assert_eq!(U256 { hi: 0xBEEF << 112, lo: 0 }.top(16), 0xBEEF);
        let mut b = [0u8; 32];
        b[15] = 7;
        b[31] = 9;
        let r = U256::from_be(&b);
        assert_eq!((r.hi, r.lo, r.byte(15), r.byte(31)), (7, 9, 7, 9));
    }
}
