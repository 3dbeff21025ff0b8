//! Spec sections 2 and 2.1: frames on a byte stream — COBS-encoded, each
//! after a delimiter when the line was idle, and protected by in-frame
//! Reed-Solomon parity when the peer's error reports call for it.

use super::cobs::{self, DeframeError, Deframer, FeedResult, DELIMITER};
use super::Framing;
use crate::endpoint::{Endpoint, Reception};
use crate::fec::{self, Repair, Strength};
use crate::storage::Buf;
use crate::time::Duration;
use crate::time::Instant;
use crate::wire::Frame;

/// Frames on a byte stream: COBS, delimiters, in-frame FEC.
pub struct StreamFraming<'a> {
    deframer: Deframer<'a>,
    /// The raw frame being sent.
    frame: Buf<'a, u8>,
    /// Its protected form.
    protected: Buf<'a, u8>,
    last_tx: Option<Instant>,
    idle_resync: Duration,
}

impl<'a> StreamFraming<'a> {
    /// A framing over the caller's buffers: `accumulator` holds one encoded
    /// frame as it arrives ([`encoded_capacity`](Self::encoded_capacity) of
    /// the largest raw frame), `frame` and `protected` one raw frame each.
    /// After `idle_resync` without sending, a delimiter goes before the next
    /// frame so that line noise in the gap cannot spoil it.
    pub fn new(
        accumulator: Buf<'a, u8>,
        frame: Buf<'a, u8>,
        protected: Buf<'a, u8>,
        idle_resync: Duration,
    ) -> Self {
        StreamFraming { deframer: Deframer::new(accumulator), frame, protected, last_tx: None, idle_resync }
    }

    /// A framing owning its buffers, for raw frames of up to `max_raw` bytes.
    #[cfg(feature = "alloc")]
    pub fn owned(max_raw: usize, idle_resync: Duration) -> StreamFraming<'static> {
        StreamFraming::new(
            Buf::filled(Self::encoded_capacity(max_raw), 0),
            Buf::filled(max_raw, 0),
            Buf::filled(max_raw, 0),
            idle_resync,
        )
    }

    /// The accumulator size for raw frames of up to `max_raw` bytes.
    pub const fn encoded_capacity(max_raw: usize) -> usize {
        ::cobs::max_encoding_length(max_raw)
    }

    /// The largest unit for raw frames of up to `max_raw` bytes: a leading
    /// delimiter, the encoded frame and its delimiter.
    pub const fn unit_capacity(max_raw: usize) -> usize {
        Self::encoded_capacity(max_raw) + 2
    }
}

impl Framing for StreamFraming<'_> {
    fn input(&mut self, ep: &mut Endpoint<'_>, now: Instant, bytes: &[u8]) {
        ep.bytes_received(bytes.len());
        let mut input = bytes;
        loop {
            match self.deframer.feed(input) {
                FeedResult::Consumed => break,
                FeedResult::Frame { frame, rest } => {
                    let total = frame.len();
                    // Without the decoder a protected frame fails its CRC, as
                    // noise would: the HELLO told the peer not to send one.
                    let repair = if cfg!(feature = "fec") {
                        fec::repair(frame, |b| Frame::new_checked(b).is_ok())
                    } else {
                        Repair::Plain
                    };
                    match repair {
                        Repair::Plain => {
                            ep.handle_frame(now, frame, Reception { wire_len: total, corrected: None })
                        }
                        Repair::Repaired { start, len, corrected } => {
                            let rx = Reception { wire_len: total, corrected: Some(corrected as u32) };
                            ep.handle_frame(now, &frame[start..start + len], rx);
                        }
                        Repair::Failed => {
                            // More damage than the parity of a codeword repairs: at least that much.
                            let s = Strength::from_first_byte(frame.first().copied().unwrap_or(0));
                            ep.frame_unrepairable(total, s.corrects() as u32 + 1);
                        }
                    }
                    input = rest;
                }
                FeedResult::Error { error: DeframeError::Overflow | DeframeError::Cobs, rest } => {
                    ep.framing_error();
                    input = rest;
                }
            }
        }
    }

    fn output(&mut self, ep: &mut Endpoint<'_>, now: Instant, out: &mut [u8]) -> Option<usize> {
        if out.len() < self.max_unit() {
            debug_assert!(false, "output buffer smaller than max_unit");
            return None;
        }
        let o = ep.poll_frame(now, &mut self.frame)?;
        let protected = match o.strength {
            Strength::Off => None,
            s if cfg!(feature = "fec") => fec::protect(&self.frame[..o.len], s, &mut self.protected),
            _ => None,
        };
        let bytes = match protected {
            Some(n) => &self.protected[..n],
            None => &self.frame[..o.len],
        };
        let lead = self.last_tx.is_none_or(|t| now.since(t) >= self.idle_resync);
        let at = usize::from(lead);
        if lead {
            out[0] = DELIMITER;
        }
        let n = at + cobs::encode(bytes, &mut out[at..])?;
        ep.frame_sent(now, &o, n, protected.is_some());
        self.last_tx = Some(now);
        Some(n)
    }

    fn max_unit(&self) -> usize {
        Self::unit_capacity(self.frame.len())
    }

    fn reset(&mut self) {
        self.deframer.reset();
    }
}
