//! The little floating-point math the policies need, without libm (core has
//! no `ln` or `exp`): enough precision to choose frame sizes and FEC strength.

/// Natural logarithm for `x` in (0, 1]: scale into [0.5, 1], then the atanh
/// series, which converges fast there.
pub(crate) fn ln(x: f32) -> f32 {
    if x <= 0.0 {
        return f32::NEG_INFINITY;
    }
    let (mut m, mut k) = (x, 0);
    while m < 0.5 {
        m *= 2.0;
        k += 1;
    }
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let series = z * (1.0 + z2 * (1.0 / 3.0 + z2 * (1.0 / 5.0 + z2 * (1.0 / 7.0 + z2 / 9.0))));
    2.0 * series - k as f32 * core::f32::consts::LN_2
}

/// e^x for x <= 0: halve until small, Taylor, square back.
pub(crate) fn exp_neg(x: f32) -> f32 {
    if x >= 0.0 {
        return 1.0;
    }
    if x < -80.0 {
        return 0.0;
    }
    let (mut y, mut k) = (x, 0);
    while y < -0.125 {
        y /= 2.0;
        k += 1;
    }
    let mut r = 1.0 + y * (1.0 + y / 2.0 * (1.0 + y / 3.0 * (1.0 + y / 4.0 * (1.0 + y / 5.0))));
    for _ in 0..k {
        r *= r;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_enough() {
        for (x, want) in [(1.0f32, 0.0f32), (0.25, -1.386_294), (0.01, -4.605_17), (0.9, -0.105_361)] {
            assert!((ln(x) - want).abs() < 1e-4, "ln({x}) = {}", ln(x));
        }
        for (x, want) in [(0.0f32, 1.0f32), (-1.0, 0.367_879), (-0.01, 0.990_05), (-10.0, 4.54e-5)] {
            assert!(((exp_neg(x) - want) / want).abs() < 1e-3, "exp({x}) = {}", exp_neg(x));
        }
    }
}
