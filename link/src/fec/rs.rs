//! Reed-Solomon codes, one implementation for both of strand's fields:
//! GF(2^8) for the interleaved codes (codewords of up to 255 bytes) and
//! GF(2^16) for the frame-wide codes (one codeword of two-byte symbols over a
//! whole frame). Systematic encoding, and decoding by syndromes,
//! Berlekamp-Massey, Chien search and Forney. Corrects up to `nsym / 2`
//! symbol errors anywhere in a codeword and reports anything beyond as
//! uncorrectable (or, rarely, miscorrects — which is why strand checks a CRC
//! after correcting).
//!
//! Written here rather than taken from a crate: the `reed-solomon` crate is
//! unmaintained since 2017, has no GF(2^16), can panic on paths hostile input
//! reaches, and computes syndromes at ~17 MB/s; this decoder faces the wire,
//! is fuzzed, and runs only when a frame's CRC already failed.
//!
//! This is the generic code, and all of it on a microcontroller. On a hosted
//! target `fast.rs` takes over the encoder, the syndromes and the Chien
//! search of strand's six codes with tables built at compile time (50 KiB
//! of them), and [`solve`] does the rest for both.
//!
//! The decoder reads and fixes symbols through [`Codeword`], so an interleaved
//! codeword is decoded where it lies in the frame (every n-th byte) and a
//! frame-wide one straight from the frame's bytes, with no copy and no
//! frame-sized buffer on a microcontroller's stack.

use super::{gf, gf16};
use core::fmt::Debug;
use core::ops::{BitXor, BitXorAssign};

/// Most parity symbols per codeword supported.
pub const MAX_PARITY: usize = 32;

/// A finite field of characteristic 2 that codes are built over.
pub trait Field {
    /// An element.
    type E: Copy + Eq + Debug + BitXor<Output = Self::E> + BitXorAssign;
    /// 0.
    const ZERO: Self::E;
    /// 1.
    const ONE: Self::E;
    /// The primitive element whose powers are the generator's roots.
    const ALPHA: Self::E;
    /// Longest codeword: the order of the multiplicative group.
    const MAX_CODEWORD: usize;
    /// a · b.
    fn mul(a: Self::E, b: Self::E) -> Self::E;
    /// 1 / a (zero for zero).
    fn inv(a: Self::E) -> Self::E;
    /// a^e.
    fn pow(a: Self::E, e: usize) -> Self::E;
    /// a · α^j for j <= [`MAX_PARITY`]: the step of Horner's rule for
    /// syndrome j and of term j of the Chien search, which both fields do
    /// faster than a general product.
    fn mul_alpha_pow(a: Self::E, j: usize) -> Self::E {
        Self::mul(a, Self::pow(Self::ALPHA, j))
    }
    /// The Chien search (see [`solve`]): writes to `roots` the indexes
    /// `i < n` where Λ(X^-1) = 0, X = α^(n-1-i), lowest first, each with its
    /// X^-1, and stops at the `l`-th; returns how many it found. `lambda` is
    /// Λ, lowest degree first, of degree `l` (`lambda.len() == l + 1`), and
    /// `first` is α^-(n-1).
    fn chien(lambda: &[Self::E], n: usize, first: Self::E, roots: &mut [(usize, Self::E)]) -> usize {
        chien::<Self>(lambda, n, first, roots)
    }
    /// The encoder's step: `par[i] = par[i + 1] + k · coef[i]` (the last
    /// with a zero shifted in), in one pass and without a memmove.
    fn shift_scale_add(par: &mut [Self::E], coef: &[Self::E], k: Self::E) {
        let n = par.len().min(coef.len());
        for i in 0..n {
            let next = if i + 1 < n { par[i + 1] } else { Self::ZERO };
            par[i] = next ^ Self::mul(k, coef[i]);
        }
    }
}

/// GF(2^8), polynomial 0x11D, α = 2 ([`gf`]).
#[derive(Debug, Clone, Copy)]
pub struct Gf256;

impl Field for Gf256 {
    type E = u8;
    const ZERO: u8 = 0;
    const ONE: u8 = 1;
    const ALPHA: u8 = 2;
    const MAX_CODEWORD: usize = 255;
    fn mul(a: u8, b: u8) -> u8 {
        gf::mul(a, b)
    }
    fn inv(a: u8) -> u8 {
        gf::div(1, a)
    }
    fn pow(a: u8, e: usize) -> u8 {
        match (a, e) {
            (_, 0) => 1,
            (0, _) => 0,
            _ => gf::exp(gf::log(a) as usize * (e % 255)),
        }
    }
    #[inline]
    fn mul_alpha_pow(a: u8, j: usize) -> u8 {
        gf::mul_alpha_pow(a, j)
    }
    fn chien(lambda: &[u8], n: usize, first: u8, roots: &mut [(usize, u8)]) -> usize {
        #[cfg(not(target_os = "none"))]
        if lambda.len() <= 9 {
            return super::fast::chien8(lambda, n, first, roots);
        }
        chien::<Self>(lambda, n, first, roots)
    }
    fn shift_scale_add(par: &mut [u8], coef: &[u8], k: u8) {
        let n = par.len().min(coef.len());
        if k == 0 {
            for i in 0..n {
                par[i] = if i + 1 < n { par[i + 1] } else { 0 };
            }
            return;
        }
        let lk = gf::log(k);
        for i in 0..n {
            let next = if i + 1 < n { par[i + 1] } else { 0 };
            let c = coef[i];
            par[i] = next ^ if c == 0 { 0 } else { gf::exp_sum(lk, gf::log(c)) };
        }
    }
}

/// GF(2^16), polynomial 0x1100B, α = 2 ([`gf16`]).
#[derive(Debug, Clone, Copy)]
pub struct Gf65536;

impl Field for Gf65536 {
    type E = u16;
    const ZERO: u16 = 0;
    const ONE: u16 = 1;
    const ALPHA: u16 = gf16::ALPHA;
    const MAX_CODEWORD: usize = gf16::ORDER;
    fn mul(a: u16, b: u16) -> u16 {
        gf16::mul(a, b)
    }
    fn inv(a: u16) -> u16 {
        gf16::inv(a)
    }
    fn pow(a: u16, e: usize) -> u16 {
        gf16::pow(a, e)
    }
    #[inline]
    fn mul_alpha_pow(a: u16, j: usize) -> u16 {
        if j < 16 {
            gf16::mul_alpha_pow_fast(a, j as u32)
        } else {
            gf16::mul(a, gf16::pow(gf16::ALPHA, j))
        }
    }
    fn chien(lambda: &[u16], n: usize, first: u16, roots: &mut [(usize, u16)]) -> usize {
        #[cfg(not(target_os = "none"))]
        if lambda.len() <= 9 {
            return super::fast::chien16(lambda, n, first, roots);
        }
        chien::<Self>(lambda, n, first, roots)
    }
}

/// The generator polynomial Π (x - α^i), i in 0..nsym, of a field.
#[derive(Debug, Clone, Copy)]
pub struct Generator<F: Field> {
    /// Coefficients below the leading 1, highest degree first.
    coef: [F::E; MAX_PARITY],
    nsym: usize,
}

impl<F: Field> Generator<F> {
    /// The generator for `nsym` parity symbols (at most [`MAX_PARITY`]; more is clamped).
    pub fn new(nsym: usize) -> Self {
        let nsym = nsym.min(MAX_PARITY);
        let mut full = [F::ZERO; MAX_PARITY + 1];
        full[0] = F::ONE;
        let mut root = F::ONE;
        for deg in 0..nsym {
            // Multiply by (x + α^deg): new[k] = old[k] + α^deg · old[k-1] (highest first).
            for k in (1..=deg + 1).rev() {
                let carry = F::mul(full[k - 1], root);
                full[k] ^= carry;
            }
            root = F::mul(root, F::ALPHA);
        }
        let mut coef = [F::ZERO; MAX_PARITY];
        coef[..nsym].copy_from_slice(&full[1..=nsym]);
        Generator { coef, nsym }
    }

    /// Parity symbols per codeword.
    pub fn nsym(&self) -> usize {
        self.nsym
    }

    /// The coefficients below the leading 1, highest degree first.
    pub fn coefficients(&self) -> &[F::E] {
        &self.coef[..self.nsym]
    }

    /// Computes the parity of the data symbols `data` into `parity[..nsym]`.
    pub fn encode(&self, data: impl Iterator<Item = F::E>, parity: &mut [F::E]) {
        let n = self.nsym;
        let par = &mut parity[..n];
        par.fill(F::ZERO);
        if n == 0 {
            return;
        }
        let mut top = F::ZERO;
        for d in data {
            F::shift_scale_add(par, &self.coef[..n], d ^ top);
            top = par[0];
        }
    }
}

/// A codeword as the decoder sees it: data symbols then parity symbols,
/// wherever they lie in memory.
pub trait Codeword<E> {
    /// Symbols in the codeword, parity included.
    fn symbols(&self) -> usize;
    /// Symbol `i`.
    fn get(&self, i: usize) -> E;
    /// Adds the error value `e` to symbol `i`; false if symbol `i` cannot
    /// take it (part of it is an implied zero), which makes the codeword
    /// uncorrectable.
    fn fix(&mut self, i: usize, e: E) -> bool;
}

impl<E: Copy + BitXorAssign> Codeword<E> for [E] {
    fn symbols(&self) -> usize {
        self.len()
    }
    fn get(&self, i: usize) -> E {
        self[i]
    }
    fn fix(&mut self, i: usize, e: E) -> bool {
        self[i] ^= e;
        true
    }
}

/// Why a codeword could not be corrected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uncorrectable;

/// Syndromes S_j = c(α^j), by Horner's rule for every syndrome at once in
/// one pass over the symbols.
fn syndromes<F: Field, C: Codeword<F::E> + ?Sized>(cw: &C, nsym: usize, s: &mut [F::E; MAX_PARITY]) {
    s[..nsym].fill(F::ZERO);
    for i in 0..cw.symbols() {
        let c = cw.get(i);
        for (j, sj) in s[..nsym].iter_mut().enumerate() {
            *sj = F::mul_alpha_pow(*sj, j) ^ c;
        }
    }
}

/// The Chien search of [`Field::chien`], for any field and degree.
pub fn chien<F: Field + ?Sized>(
    lambda: &[F::E],
    n: usize,
    first: F::E,
    roots: &mut [(usize, F::E)],
) -> usize {
    let l = lambda.len() - 1;
    let mut term = [F::ZERO; MAX_PARITY + 1];
    let mut x = F::ONE;
    for (t, &c) in term.iter_mut().zip(lambda) {
        *t = F::mul(c, x);
        x = F::mul(x, first);
    }
    let mut found = 0;
    let mut x_inv = first;
    for i in 0..n {
        let sum = term[1..=l].iter().fold(term[0], |acc, &t| acc ^ t);
        if sum == F::ZERO {
            let Some(root) = roots.get_mut(found) else { break };
            *root = (i, x_inv);
            found += 1;
            if found == roots.len() {
                break;
            }
        }
        for (j, t) in term[1..=l].iter_mut().enumerate() {
            *t = F::mul_alpha_pow(*t, j + 1);
        }
        x_inv = F::mul_alpha_pow(x_inv, 1);
    }
    found
}

/// Evaluates a polynomial given lowest degree first at `x`.
fn eval_low_first<F: Field>(p: &[F::E], x: F::E) -> F::E {
    p.iter().rev().fold(F::ZERO, |acc, &c| F::mul(acc, x) ^ c)
}

/// Corrects the codeword `cw` (data then `nsym` parity symbols) in place.
/// Returns the number of symbols corrected. On an error `cw` may hold partial
/// corrections: its frame is dropped anyway.
pub fn correct<F: Field, C: Codeword<F::E> + ?Sized>(
    cw: &mut C,
    nsym: usize,
) -> Result<usize, Uncorrectable> {
    let n = cw.symbols();
    if nsym == 0 || nsym > MAX_PARITY || n > F::MAX_CODEWORD || n <= nsym {
        return Err(Uncorrectable);
    }
    let mut s = [F::ZERO; MAX_PARITY];
    syndromes::<F, C>(cw, nsym, &mut s);
    solve::<F, C>(cw, nsym, &s)
}

/// Corrects the codeword `cw` given its syndromes `s[..nsym]` (S_j = c(α^j),
/// however they were computed): Berlekamp-Massey, Chien search, Forney.
/// Returns the number of symbols corrected; on an error `cw` may hold
/// partial corrections.
pub(crate) fn solve<F: Field, C: Codeword<F::E> + ?Sized>(
    cw: &mut C,
    nsym: usize,
    s: &[F::E; MAX_PARITY],
) -> Result<usize, Uncorrectable> {
    let n = cw.symbols();
    if nsym == 0 || nsym > MAX_PARITY || n > F::MAX_CODEWORD || n <= nsym {
        return Err(Uncorrectable);
    }
    if s[..nsym].iter().all(|&x| x == F::ZERO) {
        return Ok(0);
    }
    // Berlekamp-Massey: the error locator Λ(x), lowest degree first. `prev`
    // is the locator before the last length change, of degree at most `lp`;
    // 1 / b, its discrepancy's inverse, is computed once per length change.
    let mut lambda = [F::ZERO; MAX_PARITY + 1];
    let mut prev = [F::ZERO; MAX_PARITY + 1];
    lambda[0] = F::ONE;
    prev[0] = F::ONE;
    let (mut l, mut lp, mut m, mut b_inv) = (0usize, 0usize, 1usize, F::ONE);
    for k in 0..nsym {
        let mut d = s[k];
        for i in 1..=l.min(k) {
            d ^= F::mul(lambda[i], s[k - i]);
        }
        if d == F::ZERO {
            m += 1;
            continue;
        }
        let coef = F::mul(d, b_inv);
        let saved = (2 * l <= k).then_some(lambda);
        // Λ(x) -= coef · x^m · prev(x): degree at most max(l, lp + m).
        for (i, &p) in prev[..=lp].iter().enumerate() {
            if let Some(t) = lambda.get_mut(i + m) {
                *t ^= F::mul(coef, p);
            }
        }
        if let Some(saved) = saved {
            (lp, l) = (l, k + 1 - l);
            prev = saved;
            b_inv = F::inv(d);
            m = 1;
        } else {
            m += 1;
        }
    }
    if l == 0 || 2 * l > nsym {
        return Err(Uncorrectable);
    }
    // Chien search: Λ(X^-1) = 0 marks an error at index i, X = α^(n-1-i).
    // X^-1 grows by a factor α from one index to the next, so term j of
    // Λ(X^-1) grows by α^j: l products by a power of α per index, no general
    // products. A polynomial of degree l has at most l roots: the search ends
    // at the l-th.
    let first = F::pow(F::ALPHA, F::MAX_CODEWORD - (n - 1)); // α^-(n-1)
                                                             // (index, X^-1) of each error found.
    let mut roots = [(0usize, F::ZERO); MAX_PARITY / 2];
    let found = F::chien(&lambda[..=l], n, first, &mut roots[..l]);
    if found != l {
        return Err(Uncorrectable);
    }
    // Forney: Ω(x) = S(x)Λ(x) mod x^nsym, e = X · Ω(X^-1) / Λ'(X^-1) (first
    // root α^0). With l distinct roots found, Λ generates all nsym syndromes
    // and Ω has degree below l: its first l terms are all of it.
    let mut omega = [F::ZERO; MAX_PARITY / 2];
    for (i, o) in omega.iter_mut().enumerate().take(l) {
        let mut acc = F::ZERO;
        for j in 0..=i {
            acc ^= F::mul(s[i - j], lambda[j]);
        }
        *o = acc;
    }
    // Per error, (e_k · X_k^j, X_k): the check below steps j up from 0.
    let mut fixes = [(F::ZERO, F::ZERO); MAX_PARITY / 2];
    for (&(pos, x_inv), fix) in roots[..found].iter().zip(&mut fixes) {
        let num = eval_low_first::<F>(&omega[..l], x_inv);
        // Formal derivative: the odd terms, each lowered by one degree.
        let x_inv2 = F::mul(x_inv, x_inv);
        let (mut den, mut xp) = (F::ZERO, F::ONE);
        for i in (1..=l).step_by(2) {
            den ^= F::mul(lambda[i], xp);
            xp = F::mul(xp, x_inv2);
        }
        // X · Ω(X^-1) / Λ'(X^-1) = Ω(X^-1) / (X^-1 · Λ'(X^-1)).
        let den = F::mul(den, x_inv);
        if den == F::ZERO {
            return Err(Uncorrectable);
        }
        let e = F::mul(num, F::inv(den));
        if !cw.fix(pos, e) {
            return Err(Uncorrectable);
        }
        *fix = (e, F::inv(x_inv));
    }
    // Trust only a result that is a codeword again: the corrections must
    // account for every syndrome, S_j = Σ e_k · X_k^j (what recomputing the
    // syndromes of the corrected codeword would check, without a second pass
    // over it).
    for &sj in &s[..nsym] {
        let mut acc = sj;
        for (term, x) in &mut fixes[..found] {
            acc ^= *term;
            *term = F::mul(*term, *x);
        }
        if acc != F::ZERO {
            return Err(Uncorrectable);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codeword<F: Field>(data: &[F::E], nsym: usize) -> std::vec::Vec<F::E> {
        let g = Generator::<F>::new(nsym);
        let mut par = [F::ZERO; MAX_PARITY];
        g.encode(data.iter().copied(), &mut par);
        let mut cw = data.to_vec();
        cw.extend_from_slice(&par[..nsym]);
        cw
    }

    extern crate std;

    #[test]
    fn encoded_codewords_have_zero_syndromes() {
        for nsym in [2, 4, 8, 16, 32] {
            let data: std::vec::Vec<u8> = (0..(255 - nsym)).map(|i| (i * 31 + 7) as u8).collect();
            let mut cw = codeword::<Gf256>(&data, nsym);
            assert_eq!(correct::<Gf256, _>(&mut cw[..], nsym), Ok(0));
            let wide: std::vec::Vec<u16> = (0..3000).map(|i| (i * 40_503 + 7) as u16).collect();
            let mut cw = codeword::<Gf65536>(&wide, nsym);
            assert_eq!(correct::<Gf65536, _>(&mut cw[..], nsym), Ok(0));
        }
    }

    /// Damages `t` distinct symbols of `clean` and checks the decoder restores it.
    fn damage_and_correct<F: Field>(clean: &[F::E], nsym: usize, t: usize, flip: impl Fn(usize) -> F::E) {
        let len = clean.len();
        let mut cw = clean.to_vec();
        for k in 0..t {
            let at = (k * 37 + t * 11) % len;
            cw[at] ^= flip(k);
        }
        let damaged = cw.iter().zip(clean).filter(|(a, b)| a != b).count();
        assert_eq!(correct::<F, _>(&mut cw[..], nsym), Ok(damaged), "nsym {nsym} len {len} t {t}");
        assert_eq!(&cw[..], clean, "nsym {nsym} len {len} t {t}");
    }

    #[test]
    fn corrects_up_to_half_the_parity_anywhere() {
        for nsym in [2usize, 4, 8, 16, 32] {
            for len in [nsym + 1, 40, 255] {
                let data: std::vec::Vec<u8> = (0..len - nsym).map(|i| (i * 131 + 5) as u8).collect();
                let clean = codeword::<Gf256>(&data, nsym);
                for t in 1..=nsym / 2 {
                    damage_and_correct::<Gf256>(&clean, nsym, t, |k| (k as u8).wrapping_mul(29) | 1);
                }
            }
            for len in [nsym + 1, 300, 2100] {
                let data: std::vec::Vec<u16> = (0..len - nsym).map(|i| (i * 2_654_435_761) as u16).collect();
                let clean = codeword::<Gf65536>(&data, nsym);
                for t in 1..=nsym / 2 {
                    damage_and_correct::<Gf65536>(&clean, nsym, t, |k| (k as u16).wrapping_mul(0x9E37) | 1);
                }
            }
        }
    }

    #[test]
    fn too_many_errors_are_reported_not_miscorrected_here() {
        let nsym = 8;
        let data: std::vec::Vec<u8> = (0..100).map(|i| i as u8).collect();
        let mut cw = codeword::<Gf256>(&data, nsym);
        for k in 0..6 {
            cw[k * 9] ^= 0xA5;
        }
        assert_eq!(correct::<Gf256, _>(&mut cw[..], nsym), Err(Uncorrectable));
        let data: std::vec::Vec<u16> = (0..2000).map(|i| i as u16).collect();
        let mut cw = codeword::<Gf65536>(&data, nsym);
        for k in 0..6 {
            cw[k * 300] ^= 0xA5C3;
        }
        assert_eq!(correct::<Gf65536, _>(&mut cw[..], nsym), Err(Uncorrectable));
    }

    #[test]
    fn bad_arguments_are_errors() {
        let mut cw = [0u8; 10];
        assert_eq!(correct::<Gf256, _>(&mut cw[..], 0), Err(Uncorrectable));
        assert_eq!(correct::<Gf256, _>(&mut cw[..], 10), Err(Uncorrectable));
        assert_eq!(correct::<Gf256, _>(&mut cw[..], 64), Err(Uncorrectable));
        let mut long = std::vec![0u8; 256];
        assert_eq!(correct::<Gf256, _>(&mut long[..], 4), Err(Uncorrectable));
    }

    #[test]
    fn wide_generator_is_pinned() {
        // Π (x - α^i), i < 4, over GF(2^16), and the parity of 1, 2, 3:
        // computed independently by long division (spec section 2.1).
        let g = Generator::<Gf65536>::new(4);
        assert_eq!(g.coef[..4], [0x000F, 0x0036, 0x0078, 0x0040]);
        let mut par = [0u16; MAX_PARITY];
        g.encode([1u16, 2, 3].into_iter(), &mut par);
        assert_eq!(par[..4], [0x03AC, 0x0B3C, 0x1710, 0x1F80]);
        let mut cw = std::vec![1u16, 2, 3];
        cw.extend_from_slice(&par[..4]);
        assert_eq!(correct::<Gf65536, _>(&mut cw[..], 4), Ok(0));
    }
}
