//! Spec section 13.5: how an object is cut into symbols and blocks, and how
//! much repair a block gets.
//!
//! An object of `size` bytes is `K = ceil(size / T)` source symbols of `T`
//! bytes (the last one zero-padded). They are split into `Z = ceil(K / block_max)`
//! blocks whose sizes differ by at most one symbol (the first `K mod Z` blocks
//! have one more), so no block is much weaker than another. Each block has
//! `R` repair symbols available; the sender chooses how many it sends.

use super::wire::{CodeId, MAX_OBJECT_SIZE, MAX_SYMBOL};
use crate::math::{exp_neg, ln};

/// Objects of up to this many symbols use the GF(2^8) code in one block: it
/// leaves at least 128 fresh repair symbols (a full extra round) and is cheap
/// enough for a microcontroller.
pub const GF8_MAX_K: u64 = 128;
/// Source symbols per block for larger objects (GF(2^16)): large enough that
/// the carousel's overhead is close to 1/(1-p) (13.8), small enough that a
/// block of 1 KiB symbols is 4 MiB in memory.
pub const GF16_BLOCK: u64 = 4096;
/// Most blocks an object may have (the block field is 16 bits).
pub const MAX_BLOCKS: u64 = 1 << 16;
/// GF(2^16) limit on source and on repair symbols per block.
pub const GF16_MAX: u64 = 32768;

/// The code parameters of one object, carried in every SYMBOL frame (13.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    /// The erasure code.
    pub code: CodeId,
    /// Object size in bytes (at least 1 in a SYMBOL frame).
    pub size: u64,
    /// Bytes per symbol: even, 2..=8192.
    pub symbol_size: u16,
    /// Most source symbols in a block; fixes the partition.
    pub block_max: u16,
    /// Repair symbols available per block (`R`).
    pub repair: u16,
}

impl Layout {
    /// The default layout for an object of `size` bytes cut into symbols of
    /// `symbol_size` bytes: GF(2^8) with `R = 256 - K` for small objects,
    /// else GF(2^16) with blocks of about [`GF16_BLOCK`] symbols and
    /// `R = ceil(k/2)`: a pass and a half of distinct symbols per block (a
    /// receiver losing up to a third of the frames completes before any
    /// repeats), and Leopard-RS's work grows with `k + R` (`diodebench`
    /// decode: about 520 MB/s at `R = k/2`, 420 at `k`, 215 at `2k`; docs/performance.md). The
    /// sender raises `R` when a first pass asks for more repair.
    /// `None` if the symbol size is odd or out of range, or the object too big.
    pub fn choose(size: u64, symbol_size: u16) -> Option<Layout> {
        let t = u64::from(symbol_size);
        if t < 2 || t % 2 != 0 || t > MAX_SYMBOL as u64 || size > MAX_OBJECT_SIZE {
            return None;
        }
        let k = size.div_ceil(t);
        let layout = if k <= GF8_MAX_K {
            let k = k.max(1);
            Layout { code: CodeId::Gf8, size, symbol_size, block_max: k as u16, repair: (256 - k) as u16 }
        } else {
            let blocks = k.div_ceil(GF16_BLOCK).max(k.div_ceil(GF16_MAX));
            if blocks > MAX_BLOCKS {
                return None;
            }
            let kl = k.div_ceil(blocks);
            let repair = kl.div_ceil(2).min(GF16_MAX);
            Layout { code: CodeId::Gf16, size, symbol_size, block_max: kl as u16, repair: repair as u16 }
        };
        Some(layout)
    }

    /// True if the fields describe a decodable object (13.2's checks).
    pub fn valid(&self) -> bool {
        let t = u64::from(self.symbol_size);
        if self.size == 0 || self.size > MAX_OBJECT_SIZE || t < 2 || t % 2 != 0 || t > MAX_SYMBOL as u64 {
            return false;
        }
        if self.block_max == 0 || self.repair == 0 || self.blocks() > MAX_BLOCKS {
            return false;
        }
        let kl = self.source_symbols().div_ceil(self.blocks());
        let r = u64::from(self.repair);
        match self.code {
            CodeId::Gf8 => kl + r <= 256,
            CodeId::Gf16 => kl <= GF16_MAX && r <= GF16_MAX,
        }
    }

    /// `K`: source symbols in the object.
    pub fn source_symbols(&self) -> u64 {
        self.size.div_ceil(u64::from(self.symbol_size.max(1)))
    }

    /// `Z`: blocks in the object (0 for an empty object).
    pub fn blocks(&self) -> u64 {
        self.source_symbols().div_ceil(u64::from(self.block_max.max(1)))
    }

    /// Source symbols in block `b`, or `None` if there is no such block.
    pub fn block_symbols(&self, b: u16) -> Option<u32> {
        let (k, z, b) = (self.source_symbols(), self.blocks(), u64::from(b));
        if b >= z {
            return None;
        }
        let (small, long_blocks) = (k / z, k % z);
        Some((small + u64::from(b < long_blocks)) as u32)
    }

    /// Repair symbols available in block `b` (`R`), or `None` if there is no such block.
    pub fn block_repair(&self, b: u16) -> Option<u16> {
        self.block_symbols(b).map(|_| self.repair)
    }

    /// Index of block `b`'s first source symbol within the object.
    pub fn block_start(&self, b: u16) -> u64 {
        let (k, z, b) = (self.source_symbols(), self.blocks().max(1), u64::from(b));
        let (small, long_blocks) = (k / z, k % z);
        b * small + b.min(long_blocks)
    }

    /// Byte offset of block `b`'s first source symbol within the object.
    pub fn block_offset(&self, b: u16) -> u64 {
        self.block_start(b) * u64::from(self.symbol_size)
    }

    /// Bytes of the object that block `b` carries (the last block's padding excluded).
    pub fn block_bytes(&self, b: u16) -> u64 {
        let Some(k) = self.block_symbols(b) else { return 0 };
        let start = self.block_offset(b);
        (u64::from(k) * u64::from(self.symbol_size)).min(self.size - start)
    }
}

/// Repair symbols to send with a block of `k` source symbols so that a line
/// losing a share `loss` of frames at random still delivers `k` of them with
/// probability at least `1 - fail` (13.8, one-pass mode).
///
/// Uses the Chernoff bound `P[Bin(n, q) < k] <= exp(-n·D((k-1)/n ‖ q))`,
/// which never underestimates the risk, so the target holds for every block
/// size; it costs a few symbols more than the exact tail.
pub fn repair_for_loss(k: u32, loss: f32, fail: f32) -> u32 {
    if loss <= 0.0 || k == 0 {
        return 0;
    }
    let loss = loss.min(0.95);
    let q = 1.0 - loss;
    let tail = |n: u32| -> f32 {
        let a = (k - 1) as f32 / n as f32;
        if a >= q {
            return 1.0;
        }
        let d = if a > 0.0 { a * ln_any(a / q) } else { 0.0 } + (1.0 - a) * ln_any((1.0 - a) / loss);
        exp_neg(-(n as f32) * d)
    };
    // The bound only falls as n grows: binary search the least n that meets it.
    let (mut lo, mut hi) = (k, k.saturating_mul(64).max(k + 64));
    if tail(hi) > fail {
        return hi - k;
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if tail(mid) <= fail {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo - k
}

/// ln for any positive `x` (the core's `ln` covers (0, 1]).
fn ln_any(x: f32) -> f32 {
    if x > 1.0 {
        -ln(1.0 / x)
    } else {
        ln(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_covers_every_symbol_once_with_balanced_blocks() {
        for (size, t) in [
            (1u64, 2u16),
            (1000, 8),
            (128 * 1024, 1024),
            (129 * 1024, 1024),
            (100 << 20, 1400),
            (7 << 30, 1024),
        ] {
            let l = Layout::choose(size, t).unwrap();
            assert!(l.valid(), "{l:?}");
            let mut next = 0u64;
            let (mut lo, mut hi) = (u32::MAX, 0);
            for b in 0..l.blocks() as u16 {
                assert_eq!(l.block_start(b), next);
                let k = l.block_symbols(b).unwrap();
                assert!(k <= u32::from(l.block_max));
                next += u64::from(k);
                lo = lo.min(k);
                hi = hi.max(k);
            }
            assert_eq!(next, l.source_symbols());
            assert!(hi - lo <= 1, "{l:?}");
            assert_eq!(l.block_symbols(l.blocks() as u16), None);
            let total: u64 = (0..l.blocks() as u16).map(|b| l.block_bytes(b)).sum();
            assert_eq!(total, size);
        }
    }

    #[test]
    fn small_objects_use_gf8_large_ones_gf16() {
        let small = Layout::choose(128 * 1024, 1024).unwrap();
        assert_eq!((small.code, small.block_max, small.repair), (CodeId::Gf8, 128, 128));
        let big = Layout::choose(100 << 20, 1024).unwrap();
        assert_eq!(big.code, CodeId::Gf16);
        assert_eq!(big.blocks(), 25);
        assert_eq!(big.repair, big.block_max.div_ceil(2));
        assert_eq!(Layout::choose(10, 3), None);
        assert_eq!(Layout::choose(10, 8194), None);
    }

    #[test]
    fn one_pass_repair_meets_its_target_exactly_enough() {
        // Exact binomial check of the Chernoff choice for a few sizes.
        for (k, p) in [(1u32, 0.1f32), (10, 0.05), (128, 0.2), (1024, 0.01), (4096, 0.2)] {
            let r = repair_for_loss(k, p, 1e-4);
            let n = k + r;
            let fail = binom_cdf_below(n, 1.0 - f64::from(p), k);
            assert!(fail <= 1.000_01e-4, "k {k} p {p} r {r} fail {fail}");
            // And not wildly more than needed: one fewer symbol per ~2% of k is still near the target.
            let leaner = k + r - r / 4 - 1;
            assert!(binom_cdf_below(leaner, 1.0 - f64::from(p), k) > 1e-5 || r < 4, "k {k} p {p} r {r}");
        }
        assert_eq!(repair_for_loss(100, 0.0, 1e-4), 0);
    }

    /// P[Bin(n, q) < k], exactly, in f64 (std is available to tests).
    fn binom_cdf_below(n: u32, q: f64, k: u32) -> f64 {
        let mut lp = f64::from(n) * (1.0 - q).ln(); // log P[X = 0]
        let mut sum = 0.0;
        for j in 0..k {
            sum += lp.exp();
            lp += (f64::from(n - j) / f64::from(j + 1)).ln() + q.ln() - (1.0 - q).ln();
        }
        sum
    }
}
