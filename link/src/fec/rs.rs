//! Reed-Solomon over GF(2^8), one codeword of at most 255 bytes: systematic
//! encoding, and decoding by syndromes, Berlekamp-Massey, Chien search and
//! Forney. Corrects up to `nsym / 2` byte errors anywhere in the codeword and
//! reports anything beyond as uncorrectable (or, rarely, miscorrects — which
//! is why strand checks a CRC after correcting).
//!
//! Written here rather than taken from a crate: the `reed-solomon` crate is
//! unmaintained since 2017, can panic on paths hostile input reaches, and
//! computes syndromes at ~17 MB/s; this decoder faces the wire, is fuzzed, and
//! runs only when a frame's CRC already failed.

use super::gf::{div, exp, exp_neg, exp_sum, log, mul};

/// Most parity bytes per codeword supported.
pub const MAX_PARITY: usize = 32;

/// Longest codeword.
pub const MAX_CODEWORD: usize = 255;

/// The generator polynomial Π (x - α^i), i in 0..nsym, highest degree first.
#[derive(Debug, Clone, Copy)]
pub struct Generator {
    /// log_α of `coef[1..]`: none is zero, so the encoder multiplies by adding logs.
    log_coef: [u8; MAX_PARITY],
    nsym: usize,
}

impl Generator {
    /// The generator for `nsym` parity bytes (at most [`MAX_PARITY`]).
    pub const fn new(nsym: usize) -> Generator {
        assert!(nsym <= MAX_PARITY);
        let mut coef = [0u8; MAX_PARITY + 1];
        coef[0] = 1;
        let mut deg = 0;
        while deg < nsym {
            // Multiply by (x + α^deg): new[k] = old[k] + α^deg · old[k-1] (highest first).
            let root = exp(deg);
            let mut k = deg + 1;
            while k > 0 {
                coef[k] ^= mul(coef[k - 1], root);
                k -= 1;
            }
            deg += 1;
        }
        let mut log_coef = [0u8; MAX_PARITY];
        let mut i = 0;
        while i < nsym {
            log_coef[i] = log(coef[i + 1]);
            i += 1;
        }
        Generator { log_coef, nsym }
    }

    /// Parity bytes per codeword.
    pub fn nsym(&self) -> usize {
        self.nsym
    }

    /// Computes the parity of the data bytes `data` into `parity[..nsym]`.
    pub fn encode(&self, data: impl Iterator<Item = u8>, parity: &mut [u8]) {
        let n = self.nsym;
        let par = &mut parity[..n];
        par.fill(0);
        for d in data {
            let fb = d ^ par.first().copied().unwrap_or(0);
            par.copy_within(1.., 0);
            if let Some(last) = par.last_mut() {
                *last = 0;
            }
            if fb != 0 {
                let lf = log(fb);
                for (p, &lg) in par.iter_mut().zip(&self.log_coef[..n]) {
                    *p ^= exp_sum(lf, lg);
                }
            }
        }
    }
}

/// Why a codeword could not be corrected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uncorrectable;

/// Syndromes S_j = c(α^j); true if any is non-zero.
fn syndromes(cw: &[u8], nsym: usize, s: &mut [u8; MAX_PARITY]) -> bool {
    let mut any = false;
    for (j, sj) in s.iter_mut().enumerate().take(nsym) {
        // Horner with the constant factor α^j: multiplying is adding j to a log.
        let mut acc = 0u8;
        for &c in cw {
            acc = if acc == 0 { c } else { exp_sum(log(acc), j as u8) ^ c };
        }
        *sj = acc;
        any |= acc != 0;
    }
    any
}

/// Evaluates a polynomial given lowest degree first at `x`.
fn eval_low_first(p: &[u8], x: u8) -> u8 {
    p.iter().rev().fold(0u8, |acc, &c| mul(acc, x) ^ c)
}

/// Corrects `cw` (data then `nsym` parity bytes, at most 255) in place.
/// Returns the number of bytes corrected.
pub fn correct(cw: &mut [u8], nsym: usize) -> Result<usize, Uncorrectable> {
    let n = cw.len();
    if nsym == 0 || nsym > MAX_PARITY || n > MAX_CODEWORD || n <= nsym {
        return Err(Uncorrectable);
    }
    let mut s = [0u8; MAX_PARITY];
    if !syndromes(cw, nsym, &mut s) {
        return Ok(0);
    }
    // Berlekamp-Massey: the error locator Λ(x), lowest degree first.
    let mut lambda = [0u8; MAX_PARITY + 1];
    let mut prev = [0u8; MAX_PARITY + 1];
    lambda[0] = 1;
    prev[0] = 1;
    let (mut l, mut m, mut b) = (0usize, 1usize, 1u8);
    for k in 0..nsym {
        let mut d = s[k];
        for i in 1..=l.min(k) {
            d ^= mul(lambda[i], s[k - i]);
        }
        if d == 0 {
            m += 1;
            continue;
        }
        let coef = div(d, b);
        let saved = lambda;
        for i in 0..=MAX_PARITY - m.min(MAX_PARITY) {
            if i + m <= MAX_PARITY {
                lambda[i + m] ^= mul(coef, prev[i]);
            }
        }
        if 2 * l <= k {
            l = k + 1 - l;
            prev = saved;
            b = d;
            m = 1;
        } else {
            m += 1;
        }
    }
    if l == 0 || 2 * l > nsym {
        return Err(Uncorrectable);
    }
    // Chien search: Λ(X^-1) = 0 marks an error at index i, X = α^(n-1-i).
    let mut positions = [0usize; MAX_PARITY / 2];
    let mut found = 0;
    for i in 0..n {
        if eval_low_first(&lambda[..=l], exp_neg(n - 1 - i)) == 0 {
            if found == positions.len() {
                return Err(Uncorrectable);
            }
            positions[found] = i;
            found += 1;
        }
    }
    if found != l {
        return Err(Uncorrectable);
    }
    // Forney: Ω(x) = S(x)Λ(x) mod x^nsym; e = X · Ω(X^-1) / Λ'(X^-1) (first root α^0).
    let mut omega = [0u8; MAX_PARITY];
    for (i, o) in omega.iter_mut().enumerate().take(nsym) {
        let mut acc = 0u8;
        for j in 0..=i.min(l) {
            acc ^= mul(s[i - j], lambda[j]);
        }
        *o = acc;
    }
    for &pos in &positions[..found] {
        let x = exp(n - 1 - pos);
        let x_inv = exp_neg(n - 1 - pos);
        let num = mul(x, eval_low_first(&omega[..nsym], x_inv));
        // Formal derivative: the odd terms, each lowered by one degree.
        let mut den = 0u8;
        let mut xp = 1u8;
        let mut i = 1;
        while i <= l {
            den ^= mul(lambda[i], xp);
            xp = mul(xp, mul(x_inv, x_inv));
            i += 2;
        }
        if den == 0 {
            return Err(Uncorrectable);
        }
        cw[pos] ^= div(num, den);
    }
    // Trust only a result that is a codeword again.
    if syndromes(cw, nsym, &mut s) {
        return Err(Uncorrectable);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codeword(data: &[u8], nsym: usize) -> heapless::Vec<u8, 255> {
        let g = Generator::new(nsym);
        let mut par = [0u8; MAX_PARITY];
        g.encode(data.iter().copied(), &mut par);
        let mut cw = heapless::Vec::new();
        cw.extend_from_slice(data).unwrap();
        cw.extend_from_slice(&par[..nsym]).unwrap();
        cw
    }

    #[test]
    fn encoded_codewords_have_zero_syndromes() {
        for nsym in [2, 4, 8, 16, 32] {
            let data: heapless::Vec<u8, 255> = (0..(255 - nsym)).map(|i| (i * 31 + 7) as u8).collect();
            let mut cw = codeword(&data, nsym);
            assert_eq!(correct(&mut cw, nsym), Ok(0));
        }
    }

    #[test]
    fn corrects_up_to_half_the_parity_anywhere() {
        for nsym in [2usize, 4, 8, 16, 32] {
            for len in [nsym + 1, 40, 255] {
                let data: heapless::Vec<u8, 255> = (0..len - nsym).map(|i| (i * 131 + 5) as u8).collect();
                let clean = codeword(&data, nsym);
                for t in 1..=nsym / 2 {
                    let mut cw = clean.clone();
                    for k in 0..t {
                        let at = (k * 37 + t * 11) % len;
                        cw[at] ^= (k as u8).wrapping_mul(29) | 1;
                    }
                    let damaged = cw.iter().zip(&clean).filter(|(a, b)| a != b).count();
                    assert_eq!(correct(&mut cw, nsym), Ok(damaged), "nsym {nsym} len {len} t {t}");
                    assert_eq!(cw, clean, "nsym {nsym} len {len} t {t}");
                }
            }
        }
    }

    #[test]
    fn too_many_errors_are_reported_not_miscorrected_here() {
        let nsym = 8;
        let data: heapless::Vec<u8, 255> = (0..100).map(|i| i as u8).collect();
        let clean = codeword(&data, nsym);
        let mut cw = clean.clone();
        for k in 0..6 {
            cw[k * 9] ^= 0xA5;
        }
        assert_eq!(correct(&mut cw, nsym), Err(Uncorrectable));
    }

    #[test]
    fn bad_arguments_are_errors() {
        let mut cw = [0u8; 10];
        assert_eq!(correct(&mut cw, 0), Err(Uncorrectable));
        assert_eq!(correct(&mut cw, 10), Err(Uncorrectable));
        assert_eq!(correct(&mut cw, 64), Err(Uncorrectable));
    }
}
