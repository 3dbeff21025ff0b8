//! Spec section 13.5: the two erasure codes, behind one pair of functions.
//!
//! A frame that fails its CRC is an erasure: it is simply not there. Both
//! codes are MDS — any `k` distinct symbols of a block (source or repair, in
//! any mix) rebuild its `k` source symbols — so a receiver needs exactly as
//! many frames as the block has source symbols, whichever ones arrive.
//!
//! * [`CodeId::Gf8`]: `reed-solomon-erasure` (systematic Vandermonde over
//!   GF(2^8)). Repair symbol `j` is row `k + j` of the encoding matrix, which
//!   does not depend on how many repair rows exist, so any subset decodes.
//! * [`CodeId::Gf16`]: `reed-solomon-simd` (Leopard-RS over GF(2^16), O(n log n)).
//!   Its repair symbols depend on `R`, which is why `R` is in every frame.

use super::layout::Layout;
use super::wire::CodeId;
use alloc::vec;
use alloc::vec::Vec;

/// Why a block could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeError {
    /// The block does not exist in this layout, or the layout is invalid.
    BadBlock,
    /// Fewer distinct symbols than the block's source symbols.
    NotEnough,
    /// A symbol has the wrong length or an out-of-range id.
    BadSymbol,
    /// The codec refused (should not happen with a valid layout).
    Codec,
}

impl core::fmt::Display for CodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CodeError::BadBlock => "no such block",
            CodeError::NotEnough => "not enough symbols to decode",
            CodeError::BadSymbol => "bad symbol",
            CodeError::Codec => "erasure codec error",
        })
    }
}

/// One block's source symbols and all of its repair symbols, ready to send.
#[derive(Debug, Clone)]
pub struct EncodedBlock {
    k: usize,
    t: usize,
    /// `k` source symbols then `R` repair symbols, `t` bytes each.
    symbols: Vec<u8>,
}

impl EncodedBlock {
    /// Encodes block `block` of an object laid out by `layout`; `source` is
    /// the block's bytes (shorter than `k·T` only for the last block, whose
    /// tail is zero-padded).
    pub fn new(layout: &Layout, block: u16, source: &[u8]) -> Result<EncodedBlock, CodeError> {
        Codec::default().encode(layout, block, source)
    }

    /// Source symbols in the block.
    pub fn source_symbols(&self) -> usize {
        self.k
    }

    /// Symbol `esi` (source if `< k`, else repair), or `None` past the end.
    pub fn symbol(&self, esi: u16) -> Option<&[u8]> {
        let at = usize::from(esi) * self.t;
        self.symbols.get(at..at + self.t)
    }
}

/// Rebuilds block `block`'s bytes (padding removed) from any `k` distinct
/// symbols `(esi, bytes)`; extra and duplicate symbols are ignored.
pub fn decode_block<'s>(
    layout: &Layout,
    block: u16,
    symbols: impl IntoIterator<Item = (u16, &'s [u8])>,
) -> Result<Vec<u8>, CodeError> {
    Codec::default().decode(layout, block, symbols)
}

/// The codecs with their set-up kept between blocks: the GF(2^8) encoding
/// matrix (built and inverted per `(k, R)`, milliseconds each time) and the
/// GF(2^16) encoder and decoder work space (megabytes per block). A sender
/// or receiver keeps one and reuses it for every block.
#[derive(Default)]
pub struct Codec {
    gf8: Option<((usize, usize), reed_solomon_erasure::galois_8::ReedSolomon)>,
    gf16_enc: Option<reed_solomon_simd::ReedSolomonEncoder>,
    gf16_dec: Option<reed_solomon_simd::ReedSolomonDecoder>,
}

impl core::fmt::Debug for Codec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Codec").field("gf8", &self.gf8.as_ref().map(|g| g.0)).finish_non_exhaustive()
    }
}

impl Codec {
    fn gf8(&mut self, k: usize, r: usize) -> Result<&reed_solomon_erasure::galois_8::ReedSolomon, CodeError> {
        if self.gf8.as_ref().is_none_or(|g| g.0 != (k, r)) {
            let rs = reed_solomon_erasure::galois_8::ReedSolomon::new(k, r).map_err(|_| CodeError::Codec)?;
            self.gf8 = Some(((k, r), rs));
        }
        self.gf8.as_ref().map(|g| &g.1).ok_or(CodeError::Codec)
    }

    fn gf16_encoder(
        &mut self,
        k: usize,
        r: usize,
        t: usize,
    ) -> Result<&mut reed_solomon_simd::ReedSolomonEncoder, CodeError> {
        match &mut self.gf16_enc {
            Some(e) => e.reset(k, r, t).map_err(|_| CodeError::Codec)?,
            slot => {
                *slot =
                    Some(reed_solomon_simd::ReedSolomonEncoder::new(k, r, t).map_err(|_| CodeError::Codec)?)
            }
        }
        self.gf16_enc.as_mut().ok_or(CodeError::Codec)
    }

    fn gf16_decoder(
        &mut self,
        k: usize,
        r: usize,
        t: usize,
    ) -> Result<&mut reed_solomon_simd::ReedSolomonDecoder, CodeError> {
        match &mut self.gf16_dec {
            Some(d) => d.reset(k, r, t).map_err(|_| CodeError::Codec)?,
            slot => {
                *slot =
                    Some(reed_solomon_simd::ReedSolomonDecoder::new(k, r, t).map_err(|_| CodeError::Codec)?)
            }
        }
        self.gf16_dec.as_mut().ok_or(CodeError::Codec)
    }

    /// Encodes block `block` (see [`EncodedBlock::new`]).
    pub fn encode(&mut self, layout: &Layout, block: u16, source: &[u8]) -> Result<EncodedBlock, CodeError> {
        let k = layout.block_symbols(block).ok_or(CodeError::BadBlock)? as usize;
        let t = usize::from(layout.symbol_size);
        let repair = self.encode_repair(layout, block, source)?;
        let mut symbols = Vec::with_capacity(k * t + repair.len());
        symbols.extend_from_slice(source);
        symbols.resize(k * t, 0);
        symbols.extend_from_slice(&repair);
        Ok(EncodedBlock { k, t, symbols })
    }

    /// The `R` repair symbols of block `block` (`R·T` bytes, symbol `j` at
    /// `j·T`), from the block's bytes. The source symbols are the bytes
    /// themselves, so a sender can send them before (or while) this runs.
    pub fn encode_repair(
        &mut self,
        layout: &Layout,
        block: u16,
        source: &[u8],
    ) -> Result<Vec<u8>, CodeError> {
        let k = layout.block_symbols(block).ok_or(CodeError::BadBlock)? as usize;
        let r = usize::from(layout.repair);
        let t = usize::from(layout.symbol_size);
        if !layout.valid() || source.len() > k * t || source.len() as u64 != layout.block_bytes(block) {
            return Err(CodeError::BadBlock);
        }
        // Only the last block is short; the codec wants whole symbols.
        let padded;
        let src: &[u8] = if source.len() == k * t {
            source
        } else {
            let mut v = vec![0u8; k * t];
            v[..source.len()].copy_from_slice(source);
            padded = v;
            &padded
        };
        let mut rep = vec![0u8; r * t];
        match layout.code {
            CodeId::Gf8 => {
                let rs = self.gf8(k, r)?;
                let data: Vec<&[u8]> = src.chunks(t).collect();
                let mut parity: Vec<&mut [u8]> = rep.chunks_mut(t).collect();
                rs.encode_sep(&data, &mut parity).map_err(|_| CodeError::Codec)?;
            }
            CodeId::Gf16 => {
                let enc = self.gf16_encoder(k, r, t)?;
                for s in src.chunks(t) {
                    enc.add_original_shard(s).map_err(|_| CodeError::Codec)?;
                }
                let out = enc.encode().map_err(|_| CodeError::Codec)?;
                for (dst, s) in rep.chunks_mut(t).zip(out.recovery_iter()) {
                    dst.copy_from_slice(s);
                }
            }
        }
        Ok(rep)
    }

    /// Rebuilds a block from any `k` distinct symbols (see [`decode_block`]).
    pub fn decode<'s>(
        &mut self,
        layout: &Layout,
        block: u16,
        symbols: impl IntoIterator<Item = (u16, &'s [u8])>,
    ) -> Result<Vec<u8>, CodeError> {
        let k = layout.block_symbols(block).ok_or(CodeError::BadBlock)? as usize;
        let r = usize::from(layout.repair);
        let t = usize::from(layout.symbol_size);
        if !layout.valid() {
            return Err(CodeError::BadBlock);
        }
        // The first k distinct symbols, by id.
        let mut have = vec![false; k + r];
        let mut chosen: Vec<(usize, &[u8])> = Vec::with_capacity(k);
        for (esi, data) in symbols {
            let esi = usize::from(esi);
            if esi >= k + r || data.len() != t {
                return Err(CodeError::BadSymbol);
            }
            if have[esi] || chosen.len() == k {
                continue;
            }
            have[esi] = true;
            chosen.push((esi, data));
        }
        if chosen.len() < k {
            return Err(CodeError::NotEnough);
        }
        // Source symbols held, by id: copied once, straight into the output.
        let mut source: Vec<Option<&[u8]>> = vec![None; k];
        for &(esi, data) in chosen.iter().filter(|(e, _)| *e < k) {
            source[esi] = Some(data);
        }
        let mut out = Vec::with_capacity(k * t);
        if source.iter().all(Option::is_some) {
            source.iter().flatten().for_each(|s| out.extend_from_slice(s));
        } else {
            match layout.code {
                CodeId::Gf8 => {
                    // Small blocks (<= 256 symbols): the codec wants a slot per symbol id.
                    let mut buf = vec![0u8; (k + r) * t];
                    for &(esi, data) in &chosen {
                        buf[esi * t..(esi + 1) * t].copy_from_slice(data);
                    }
                    let rs = self.gf8(k, r)?;
                    let mut slots: Vec<(&mut [u8], bool)> =
                        buf.chunks_mut(t).zip(have.iter().copied()).collect();
                    rs.reconstruct_data(&mut slots).map_err(|_| CodeError::Codec)?;
                    out.extend_from_slice(&buf[..k * t]);
                }
                CodeId::Gf16 => {
                    // Large blocks: hand the codec the symbols held, no scratch copy of the block.
                    let dec = self.gf16_decoder(k, r, t)?;
                    for &(esi, data) in &chosen {
                        if esi < k {
                            dec.add_original_shard(esi, data).map_err(|_| CodeError::Codec)?;
                        } else {
                            dec.add_recovery_shard(esi - k, data).map_err(|_| CodeError::Codec)?;
                        }
                    }
                    let result = dec.decode().map_err(|_| CodeError::Codec)?;
                    for (i, s) in source.iter().enumerate() {
                        let s = s.or_else(|| result.restored_original(i)).ok_or(CodeError::Codec)?;
                        out.extend_from_slice(s);
                    }
                }
            }
        }
        out.truncate(layout.block_bytes(block) as usize);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn object(size: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// Encodes every block, drops a pattern of symbols, decodes from the rest.
    fn round_trip(size: usize, t: u16, keep: impl Fn(u16, u16, usize) -> bool) {
        let data = object(size, size as u32);
        let l = Layout::choose(size as u64, t).unwrap();
        for b in 0..l.blocks() as u16 {
            let off = l.block_offset(b) as usize;
            let src = &data[off..off + l.block_bytes(b) as usize];
            let enc = EncodedBlock::new(&l, b, src).unwrap();
            let k = enc.source_symbols();
            let total = k + usize::from(l.repair);
            let kept: Vec<(u16, &[u8])> =
                (0..total as u16).filter(|&e| keep(b, e, k)).map(|e| (e, enc.symbol(e).unwrap())).collect();
            assert_eq!(decode_block(&l, b, kept).unwrap(), src, "{l:?} block {b}");
        }
    }

    #[test]
    fn gf8_decodes_from_any_k_symbols() {
        // Only repair symbols; only source; every other one; the last k.
        round_trip(1000, 8, |_, e, k| usize::from(e) >= k);
        round_trip(1000, 8, |_, e, k| usize::from(e) < k);
        round_trip(1001, 8, |_, e, _| e % 2 == 1);
        round_trip(100, 2, |_, e, k| usize::from(e) >= 256 - k);
    }

    #[test]
    fn gf16_decodes_from_any_k_symbols() {
        // The last k ids (half source, all repair); two in three; half of each.
        round_trip(300_000, 64, |_, e, k| usize::from(e) >= k / 2);
        round_trip(300_000, 64, |b, e, _| (usize::from(e) + usize::from(b)) % 3 != 0);
        round_trip(200_001, 1024, |_, e, k| usize::from(e) < k / 2 || usize::from(e) >= k);
    }

    #[test]
    fn too_few_symbols_is_an_error_not_garbage() {
        let l = Layout::choose(1000, 8).unwrap();
        let enc = EncodedBlock::new(&l, 0, &object(1000, 1000)).unwrap();
        let some: Vec<(u16, &[u8])> = (0..124u16).map(|e| (e, enc.symbol(e).unwrap())).collect();
        assert_eq!(decode_block(&l, 0, some), Err(CodeError::NotEnough));
        let dup: Vec<(u16, &[u8])> = (0..200).map(|_| (3u16, enc.symbol(3).unwrap())).collect();
        assert_eq!(decode_block(&l, 0, dup), Err(CodeError::NotEnough));
        assert_eq!(decode_block(&l, 0, [(0u16, &[0u8; 7][..])]), Err(CodeError::BadSymbol));
    }

    #[test]
    fn gf8_repair_rows_do_not_depend_on_the_repair_count() {
        // The spec relies on it (13.5): a sender may compute fewer rows.
        let data = object(640, 3);
        let make = |r: usize| {
            let rs = reed_solomon_erasure::galois_8::ReedSolomon::new(10, r).unwrap();
            let src: Vec<&[u8]> = data.chunks(64).collect();
            let mut par = vec![vec![0u8; 64]; r];
            let mut refs: Vec<&mut [u8]> = par.iter_mut().map(|p| &mut p[..]).collect();
            rs.encode_sep(&src, &mut refs).unwrap();
            par
        };
        assert_eq!(make(3)[..], make(246)[..3]);
    }

    #[test]
    fn codes_are_pinned_by_test_vectors() {
        // Guards the wire compatibility of both crates across upgrades:
        // BLAKE3 of all symbols of a fixed block.
        for (size, t, want) in [(1000usize, 8u16, "GF8"), (300_000, 64, "GF16")] {
            let l = Layout::choose(size as u64, t).unwrap();
            let enc = EncodedBlock::new(&l, 0, &object(size, 7)[..l.block_bytes(0) as usize]).unwrap();
            let h = blake3::hash(&enc.symbols);
            let hex: alloc::string::String =
                h.as_bytes()[..8].iter().map(|b| alloc::format!("{b:02x}")).collect();
            assert_eq!(hex, pinned(want), "{want} vector changed: {hex}");
        }
    }

    fn pinned(which: &str) -> &'static str {
        match which {
            "GF8" => "5e9406c5a6e24be5",
            _ => "e537f68e742e8e29",
        }
    }
}
