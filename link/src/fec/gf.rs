//! GF(2^8) arithmetic with the primitive polynomial x^8 + x^4 + x^3 + x^2 + 1
//! (0x11D, the one of CCSDS-era Reed-Solomon codes and most libraries), α = 2.
//! Log and antilog tables are built at compile time: 768 bytes of flash.

/// α^i for i in 0..512 (doubled so `exp(log a + log b)` needs no reduction).
const EXP: [u8; 512] = {
    let mut t = [0u8; 512];
    let mut x: u16 = 1;
    let mut i = 0;
    while i < 255 {
        t[i] = x as u8;
        t[i + 255] = x as u8;
        x <<= 1;
        if x & 0x100 != 0 {
            x ^= 0x11D;
        }
        i += 1;
    }
    t[510] = t[0];
    t[511] = t[1];
    t
};

/// log_α(a) for a != 0; entry 0 is unused.
const LOG: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 255 {
        t[EXP[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// α^i.
#[inline]
pub const fn exp(i: usize) -> u8 {
    EXP[i % 255]
}

/// a · b.
#[inline]
pub const fn mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        0
    } else {
        EXP[LOG[a as usize] as usize + LOG[b as usize] as usize]
    }
}

/// log_α(a) for a != 0 (0 for a == 0: callers check zero first).
#[inline]
pub const fn log(a: u8) -> u8 {
    LOG[a as usize]
}

/// α^(la + lb) for logarithms `la`, `lb` < 255: a product whose factors'
/// logarithms are already known, with no zero checks (the hot loops' form).
#[inline]
pub const fn exp_sum(la: u8, lb: u8) -> u8 {
    EXP[la as usize + lb as usize]
}

/// a / b; `b` must not be zero (the callers guarantee it; zero gives zero, never a panic).
#[inline]
pub fn div(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        0
    } else {
        EXP[LOG[a as usize] as usize + 255 - LOG[b as usize] as usize]
    }
}

/// h · α^8 for every byte h: the reduction of the bits a shift by up to 8
/// places pushes out of a byte. 256 bytes, on hosted targets only: a
/// microcontroller keeps its flash and takes the logarithm path.
#[cfg(not(target_os = "none"))]
static OVERFLOW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut h = 0;
    while h < 256 {
        t[h] = mul(h as u8, 0x1D);
        h += 1;
    }
    t
};

/// a · α^j, for j < 255: the step of Horner's rule for syndrome j and of
/// term j of the Chien search.
#[inline]
pub fn mul_alpha_pow(a: u8, j: usize) -> u8 {
    #[cfg(not(target_os = "none"))]
    if j <= 8 {
        // a · x^j, then the bits above x^7 folded back in one lookup.
        let w = u32::from(a) << j;
        return w as u8 ^ OVERFLOW[(w >> 8) as usize];
    }
    if a == 0 {
        0
    } else {
        EXP[LOG[a as usize] as usize + j % 255]
    }
}

/// α^-i.
#[inline]
pub fn exp_neg(i: usize) -> u8 {
    EXP[(255 - i % 255) % 255]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_axioms_hold() {
        for a in 0..=255u8 {
            assert_eq!(mul(a, 1), a);
            assert_eq!(mul(a, 0), 0);
            if a != 0 {
                assert_eq!(mul(a, div(1, a)), 1, "inverse of {a}");
                assert_eq!(div(a, a), 1);
            }
            for b in [1u8, 2, 3, 0x53, 0xCA, 0xFF] {
                assert_eq!(mul(a, b), mul(b, a));
                if b != 0 {
                    assert_eq!(div(mul(a, b), b), a);
                }
            }
        }
        // α generates the whole multiplicative group.
        let mut seen = [false; 256];
        for i in 0..255 {
            assert!(!seen[exp(i) as usize]);
            seen[exp(i) as usize] = true;
        }
        assert_eq!(mul(exp(7), exp_neg(7)), 1);
        for a in 0..=255u8 {
            for j in 0..=40 {
                assert_eq!(mul_alpha_pow(a, j), mul(a, exp(j)), "{a} j {j}");
            }
        }
    }
}
