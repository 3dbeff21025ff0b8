//! Spec section 2: COBS framing on the byte stream — the encoder and the
//! accumulator that finds frames in arbitrary chunks of a line (postcard's
//! `CobsAccumulator` idea), over the caller's buffer.
//!
//! Each frame is COBS-encoded (so it holds no 0x00) and followed by a 0x00
//! delimiter. A receiver that sees garbage, a dropped byte or a truncated frame
//! loses at most the frames around it: the next delimiter resynchronises it.
//! Empty frames (consecutive delimiters) are ignored, which lets a sender put a
//! delimiter *before* a frame after an idle gap to flush line noise.

use crate::storage::Buf;

/// The frame delimiter.
pub const DELIMITER: u8 = 0x00;

/// Bytes on the wire for a raw frame of `len` bytes: COBS overhead plus delimiter.
pub const fn wire_len(len: usize) -> usize {
    cobs::max_encoding_length(len) + 1
}

/// Largest raw frame whose COBS encoding fits in `cap` bytes (delimiter excluded).
pub const fn max_raw_for_encoded(cap: usize) -> usize {
    cap - cap.div_ceil(254)
}

/// COBS-encodes `raw` into `out` and appends the delimiter. Returns the number
/// of bytes written, or `None` if `out` is too small.
pub fn encode(raw: &[u8], out: &mut [u8]) -> Option<usize> {
    let n = cobs::try_encode(raw, out).ok()?;
    *out.get_mut(n)? = DELIMITER;
    Some(n + 1)
}

/// Why bytes between two delimiters were discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeframeError {
    /// More than the accumulator's capacity arrived without a delimiter.
    Overflow,
    /// The bytes are not valid COBS.
    Cobs,
}

/// What one call to [`Deframer::feed`] found.
#[derive(Debug)]
pub enum FeedResult<'f, 'i> {
    /// All input was consumed without completing a frame.
    Consumed,
    /// A frame was decoded; `rest` is the input after its delimiter.
    Frame {
        /// The decoded (raw) frame, still to be CRC-checked; mutable so a
        /// protected frame can be repaired in place.
        frame: &'f mut [u8],
        /// Unconsumed input.
        rest: &'i [u8],
    },
    /// Bytes up to a delimiter were discarded.
    Error {
        /// Why they were discarded.
        error: DeframeError,
        /// Unconsumed input.
        rest: &'i [u8],
    },
}

/// Accumulates line bytes and yields decoded frames, with no allocation.
/// Its buffer's length is the largest COBS-encoded frame accepted,
/// delimiter excluded.
#[derive(Debug)]
pub struct Deframer<'a> {
    buf: Buf<'a, u8>,
    len: usize,
    /// Set once a frame overflowed; bytes are skipped until the next delimiter.
    overflowed: bool,
}

impl<'a> Deframer<'a> {
    /// An empty accumulator over `buf`.
    pub fn new(buf: impl Into<Buf<'a, u8>>) -> Self {
        Deframer { buf: buf.into(), len: 0, overflowed: false }
    }

    /// An accumulator that owns a buffer for encoded frames of up to `n` bytes.
    #[cfg(feature = "alloc")]
    pub fn with_capacity(n: usize) -> Deframer<'static> {
        Deframer::new(Buf::filled(n, 0))
    }

    /// Forgets a partial frame (e.g. after the line was reopened).
    pub fn reset(&mut self) {
        self.len = 0;
        self.overflowed = false;
    }

    /// Feeds bytes; returns at the first complete frame or error, or when all
    /// input is consumed. Call again with `rest` until `Consumed`.
    pub fn feed<'f, 'i>(&'f mut self, mut input: &'i [u8]) -> FeedResult<'f, 'i> {
        // A loop, not recursion, over empty frames: a run of delimiters is
        // attacker-controlled and must not grow the stack (fatal on an MCU).
        let (len, rest) = loop {
            // Bulk copy up to the delimiter: far faster than a byte-wise state machine.
            let Some(end) = memchr::memchr(DELIMITER, input) else {
                self.take(input);
                return FeedResult::Consumed;
            };
            self.take(&input[..end]);
            let rest = &input[end + 1..];
            let len = core::mem::replace(&mut self.len, 0);
            if core::mem::replace(&mut self.overflowed, false) {
                return FeedResult::Error { error: DeframeError::Overflow, rest };
            }
            if len > 0 {
                break (len, rest);
            }
            // Back-to-back delimiters: an empty frame, nothing to report.
            input = rest;
        };
        match cobs::decode_in_place(&mut self.buf[..len]) {
            Ok(n) => FeedResult::Frame { frame: &mut self.buf[..n], rest },
            Err(_) => FeedResult::Error { error: DeframeError::Cobs, rest },
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        if self.overflowed {
            return;
        }
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.overflowed = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;

    fn deframer() -> Deframer<'static> {
        Deframer::new(std::vec![0u8; 64].leak() as &mut [u8])
    }

    fn frames_of(d: &mut Deframer<'_>, mut input: &[u8]) -> ([u8; 256], usize, usize) {
        // Concatenate decoded frames into a flat buffer with 0xEE separators; count errors.
        let mut out = [0u8; 256];
        let (mut n, mut errors) = (0, 0);
        loop {
            match d.feed(input) {
                FeedResult::Consumed => return (out, n, errors),
                FeedResult::Frame { frame, rest } => {
                    out[n..n + frame.len()].copy_from_slice(frame);
                    n += frame.len();
                    out[n] = 0xEE;
                    n += 1;
                    input = rest;
                }
                FeedResult::Error { rest, .. } => {
                    errors += 1;
                    input = rest;
                }
            }
        }
    }

    #[test]
    fn round_trip_with_zeros_and_split_input() {
        let raw = [1u8, 0, 2, 0, 0, 3];
        let mut wire = [0u8; 16];
        let n = encode(&raw, &mut wire).unwrap();
        assert!(!wire[..n - 1].contains(&0));
        let mut d = deframer();
        let (_, n1, _) = frames_of(&mut d, &wire[..3]);
        assert_eq!(n1, 0);
        let (out, n2, e) = frames_of(&mut d, &wire[3..n]);
        assert_eq!((&out[..n2], e), (&[1u8, 0, 2, 0, 0, 3, 0xEE][..], 0));
    }

    #[test]
    fn resynchronises_after_garbage_and_overflow() {
        let mut wire = [0u8; 200];
        let mut at = 0;
        wire[at..at + 3].copy_from_slice(&[9, 9, 9]); // garbage
        at += 3;
        wire[at] = 0;
        at += 1;
        at += encode(b"ok", &mut wire[at..]).unwrap();
        wire[at..at + 100].fill(7); // longer than the 64-byte accumulator
        at += 100;
        wire[at] = 0;
        at += 1;
        at += encode(b"yes", &mut wire[at..]).unwrap();
        let mut d = deframer();
        let (out, n, errors) = frames_of(&mut d, &wire[..at]);
        assert_eq!(&out[..n], b"ok\xEEyes\xEE");
        assert_eq!(errors, 2);
    }

    #[test]
    fn a_long_run_of_delimiters_is_skipped_without_recursion() {
        // One stack frame per empty frame would overflow long before 4 MiB.
        let mut wire = std::vec![0u8; 4 << 20];
        let at = wire.len() - 8;
        let n = encode(b"end", &mut wire[at..]).unwrap();
        wire.truncate(at + n);
        let mut d = deframer();
        match d.feed(&wire) {
            FeedResult::Frame { frame, rest } => assert_eq!((&frame[..], rest.len()), (&b"end"[..], 0)),
            other => panic!("expected the frame after the delimiters, got {other:?}"),
        }
    }

    #[test]
    fn max_raw_fits() {
        for cap in [16usize, 253, 254, 255, 256, 1024, 4096] {
            let raw = max_raw_for_encoded(cap);
            assert!(cobs::max_encoding_length(raw) <= cap, "cap {cap}");
        }
    }
}
