//! GF(2^16) with the primitive polynomial x^16 + x^12 + x^3 + x + 1
//! (0x1100B), α = 2: the field of the frame-wide codes (spec section 2.1),
//! whose codewords span a whole frame of up to 65,535 two-byte symbols.
//!
//! No tables: log and antilog tables of this field would take 256 KiB, more
//! flash than many of strand's microcontrollers have. A product is a
//! carry-less multiply and a reduction, a few dozen cycles; the encoder runs
//! once per protected frame and the decoder only on damaged ones.

/// The field polynomial, x^16 + x^12 + x^3 + x + 1.
pub const POLY: u32 = 0x1_100B;

/// Elements other than zero: the multiplicative group's order.
pub const ORDER: usize = 65_535;

/// α, a generator of the multiplicative group.
pub const ALPHA: u16 = 2;

/// Reduces a carry-less product of two field elements modulo [`POLY`].
#[inline]
const fn reduce(mut r: u32) -> u16 {
    // x^16 = x^12 + x^3 + x + 1: each fold moves the bits above 16 down by at
    // least 4 places, so four folds take a 31-bit product below 2^16.
    let mut i = 0;
    while i < 4 {
        let h = r >> 16;
        r = (r & 0xFFFF) ^ (h << 12) ^ (h << 3) ^ (h << 1) ^ h;
        i += 1;
    }
    r as u16
}

/// a · b.
#[inline]
pub const fn mul(a: u16, b: u16) -> u16 {
    let (a, b) = (a as u32, b as u32);
    let mut r = 0u32;
    let mut i = 0;
    while i < 16 {
        // Branch-free: add a·x^i when bit i of b is set.
        r ^= (a << i) & 0u32.wrapping_sub((b >> i) & 1);
        i += 1;
    }
    reduce(r)
}

/// a^e.
pub const fn pow(mut a: u16, mut e: usize) -> u16 {
    let mut r = 1u16;
    while e > 0 {
        if e & 1 == 1 {
            r = mul(r, a);
        }
        a = mul(a, a);
        e >>= 1;
    }
    r
}

/// a · α^j for j < 16: a shift and the reduction, a tenth of a general product.
#[inline]
pub const fn mul_alpha_pow(a: u16, j: u32) -> u16 {
    reduce((a as u32) << (j & 15))
}

/// h · α^16 for every byte h: the reduction of the bits a shift by up to 8
/// places pushes out of a symbol. 512 bytes, on hosted targets only.
#[cfg(not(target_os = "none"))]
static OVERFLOW: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut h = 0;
    while h < 256 {
        t[h] = reduce((h as u32) << 16);
        h += 1;
    }
    t
};

/// a · α^j for j < 16, by a table lookup where there is one (j <= 8 on a
/// hosted target), else by [`mul_alpha_pow`].
#[inline]
pub fn mul_alpha_pow_fast(a: u16, j: u32) -> u16 {
    #[cfg(not(target_os = "none"))]
    if j <= 8 {
        let w = u32::from(a) << j;
        return w as u16 ^ OVERFLOW[(w >> 16) as usize];
    }
    mul_alpha_pow(a, j)
}

/// 1 / a (zero for zero: callers check first, and a zero must never panic).
///
/// The extended Euclidean algorithm over GF(2)\[x\] (Hankerson, Menezes and
/// Vanstone, algorithm 2.48): about 30 shift-and-add steps where a^(2^16 - 2)
/// takes 30 products.
pub const fn inv(a: u16) -> u16 {
    if a == 0 {
        return 0;
    }
    // Invariants: a·g1 = u and a·g2 = v (mod POLY); u and v shrink to 1.
    let (mut u, mut v) = (a as u32, POLY);
    let (mut g1, mut g2) = (1u32, 0u32);
    while u != 1 {
        let (du, dv) = (u.leading_zeros(), v.leading_zeros());
        if du > dv {
            // deg u < deg v: swap the roles.
            let (t, h) = (u, g1);
            u = v;
            g1 = g2;
            v = t;
            g2 = h;
        }
        let j = du.abs_diff(dv);
        u ^= v << j;
        g1 ^= g2 << j;
    }
    g1 as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slow reference: shift-and-add multiplication, reducing bit by bit.
    fn mul_ref(a: u16, b: u16) -> u16 {
        let (mut a, mut b, mut r) = (a as u32, b, 0u32);
        while b != 0 {
            if b & 1 == 1 {
                r ^= a;
            }
            b >>= 1;
            a <<= 1;
            if a & 0x1_0000 != 0 {
                a ^= POLY;
            }
        }
        r as u16
    }

    #[test]
    fn products_match_the_bitwise_reference() {
        let mut x = 0x1234_5678u32;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let (a, b) = (x as u16, (x >> 16) as u16);
            assert_eq!(mul(a, b), mul_ref(a, b), "{a:#x} * {b:#x}");
            assert_eq!(mul(a, b), mul(b, a));
        }
        for a in [0u16, 1, 2, 0x8000, 0xFFFF] {
            for b in [0u16, 1, 2, 0x8000, 0xFFFF] {
                assert_eq!(mul(a, b), mul_ref(a, b));
            }
        }
    }

    #[test]
    fn alpha_generates_the_group_and_inverses_hold() {
        // α has order exactly 65,535: no proper divisor of it gives 1.
        for p in [3, 5, 17, 257] {
            assert_ne!(pow(ALPHA, ORDER / p), 1, "α^(65535/{p})");
        }
        assert_eq!(pow(ALPHA, ORDER), 1);
        for a in (1..=u16::MAX).step_by(97) {
            assert_eq!(mul(a, inv(a)), 1, "{a:#x}");
        }
        assert_eq!(inv(0), 0);
        // The Euclidean inverse against a^(2^16 - 2), for every element.
        for a in 1..=u16::MAX {
            let i = inv(a);
            assert_eq!(mul(a, i), 1, "{a:#x}");
            if a % 251 == 0 {
                assert_eq!(i, pow(a, ORDER - 1), "{a:#x}");
            }
        }
        for a in [1u16, 2, 0x8000, 0xFFFF, 0x1234] {
            for j in 0..16 {
                assert_eq!(mul_alpha_pow(a, j), mul(a, pow(ALPHA, j as usize)), "{a:#x} j {j}");
                assert_eq!(mul_alpha_pow_fast(a, j), mul_alpha_pow(a, j), "{a:#x} j {j}");
            }
        }
        assert_eq!(mul(pow(ALPHA, 1000), pow(ALPHA, ORDER - 1000)), 1);
    }
}
