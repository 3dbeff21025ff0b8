//! Spec section 13.1: diode frames on a byte stream (a TX-only serial wire,
//! or a file burnt to a medium) and on datagrams.
//!
//! On a byte stream each raw frame is optionally protected by in-frame FEC at
//! a strength fixed by the sender (section 2.1: with no way back there is no
//! error report to adapt to), COBS-encoded and delimited by 0x00 (section 2).
//! On a datagram link a datagram is exactly one raw frame.

use super::wire::MAX_FRAME;
use crate::fec::{self, Repair, Strength};
use crate::framing::{self, Deframer, FeedResult, DELIMITER};
use alloc::vec;
use alloc::vec::Vec;

/// Accumulator size of a stream decoder: a heavily protected [`MAX_FRAME`]
/// after COBS, with room to spare.
pub const STREAM_CAPACITY: usize = 10240;

/// Appends one raw frame to `out` as stream bytes: a delimiter first when
/// `leading` (after an idle gap, or at the start of a stream, so noise or a
/// reader joining mid-frame costs at most one frame), then
/// COBS(protected frame) and the closing delimiter.
pub fn encode_frame(raw: &[u8], strength: Strength, leading: bool, out: &mut Vec<u8>) {
    let protected_len = fec::protected_len(raw.len(), strength);
    let mut protected = vec![0u8; protected_len];
    let n = fec::protect(raw, strength, &mut protected).unwrap_or(0);
    protected.truncate(n);
    if leading {
        out.push(DELIMITER);
    }
    let start = out.len();
    out.resize(start + framing::wire_len(n), 0);
    let written = framing::encode(&protected, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
}

/// Counters of a [`StreamDecoder`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Bytes between delimiters that were not valid COBS or were too long.
    pub framing_errors: u64,
    /// Protected frames the parity repaired.
    pub fec_repaired: u64,
    /// Bytes the parity corrected.
    pub fec_corrected: u64,
    /// Protected frames beyond repair.
    pub fec_failed: u64,
}

/// Turns stream bytes back into raw frames (still to be checked by
/// [`super::wire::parse`]); never panics, whatever the bytes.
pub struct StreamDecoder {
    deframer: Deframer<'static>,
    stats: StreamStats,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        StreamDecoder { deframer: Deframer::with_capacity(STREAM_CAPACITY), stats: StreamStats::default() }
    }
}

impl core::fmt::Debug for StreamDecoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamDecoder").field("stats", &self.stats).finish()
    }
}

impl StreamDecoder {
    /// Counters so far.
    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// Feeds bytes; calls `on_frame` with each raw frame found (repaired if
    /// it was protected and damaged within the parity's reach).
    pub fn feed(&mut self, mut input: &[u8], mut on_frame: impl FnMut(&[u8])) {
        loop {
            match self.deframer.feed(input) {
                FeedResult::Consumed => return,
                FeedResult::Error { rest, .. } => {
                    self.stats.framing_errors += 1;
                    input = rest;
                }
                FeedResult::Frame { frame, rest } => {
                    input = rest;
                    // A diode frame's CRC trailer covers every byte before it.
                    let intact = |b: &[u8]| b.len() <= MAX_FRAME && super::wire::crc_ok(b);
                    match fec::repair(frame, intact) {
                        Repair::Plain => on_frame(frame),
                        Repair::Repaired { start, len, corrected } => {
                            if corrected > 0 {
                                self.stats.fec_repaired += 1;
                                self.stats.fec_corrected += corrected as u64;
                            }
                            on_frame(&frame[start..start + len]);
                        }
                        Repair::Failed => self.stats.fec_failed += 1,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_the_stream_with_damage_repaired() {
        let raws: Vec<Vec<u8>> = (0..5u8).map(|i| diode_frame(i, 300 + usize::from(i) * 100)).collect();
        for strength in [Strength::Off, Strength::Light, Strength::Heavy] {
            let mut stream = Vec::new();
            for (i, r) in raws.iter().enumerate() {
                encode_frame(r, strength, i == 0, &mut stream);
            }
            if strength != Strength::Off {
                // Two damaged bytes in the middle of the third frame: within any parity.
                let mid = stream.len() / 2;
                stream[mid] ^= 0x10;
                stream[mid + 7] ^= 0x01;
                // Keep the COBS structure intact: never damage into a zero.
                assert!(stream[mid] != 0 && stream[mid + 7] != 0);
            }
            let mut got = Vec::new();
            let mut d = StreamDecoder::default();
            for chunk in stream.chunks(77) {
                d.feed(chunk, |f| got.push(f.to_vec()));
            }
            if strength == Strength::Off {
                assert_eq!(got, raws);
            } else {
                // COBS code bytes may have been hit; every frame that came out is intact.
                assert!(got.len() >= 4, "{strength:?}: {}", got.len());
                assert!(got.iter().all(|g| raws.contains(g)));
            }
        }
    }

    fn diode_frame(tag: u8, len: usize) -> Vec<u8> {
        let mut f: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(tag | 1)).collect();
        let n = f.len() - 4;
        let crc = crate::wire::frame::crc32c(&f[..n]);
        f[n..].copy_from_slice(&crc.to_le_bytes());
        f
    }
}
