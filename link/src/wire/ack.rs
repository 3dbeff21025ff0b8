//! Spec section 4.3: the ACK payload — receive limit, SACK bitmap, error
//! report and written-up-to confirmations.
//!
//! The cumulative acknowledgement (the next sequence number expected in order)
//! travels in the header's `ack` field.
//!
//! ```text
//! 0           2          3                3+s    4+s       5+s
//! +-----------+----------+----------------+------+---------+---------------------+
//! | limit(BE) | sack_len | sack (s bytes) | hint | n_wrote | n x written record  |
//! +-----------+----------+----------------+------+---------+---------------------+
//!   written record: channel (1) | written (4, BE)
//! ```
//! `limit`: the peer may send sequence numbers before `limit` (absolute, so a
//! piggybacked ack never shrinks it). Bit `i` of the bitmap (byte `i / 8`,
//! least significant bit first) set means frame `ack + 1 + i` has arrived.
//! `hint` is the sender's measured byte-error rate (section 6.7). A written
//! record says how many stream bytes of `channel` (plus one per end of
//! stream) the ACK's sender has written to their destination this session,
//! modulo 2^32 (section 8.3). The fields after the bitmap may be absent: an
//! ACK that ends after the bitmap has no estimate and no records.

use super::Error;

/// The longest SACK bitmap: 256 frames beyond the cumulative ack.
pub const MAX_SACK_BYTES: usize = 32;

/// Most written records one ACK carries.
pub const MAX_WRITTEN: usize = 16;

/// Bytes of one written record.
pub const WRITTEN_LEN: usize = 5;

/// A written-up-to confirmation (spec 8.3): `written` stream bytes (and ends
/// of stream) of `channel` have reached their destination at the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written {
    /// The channel.
    pub channel: u8,
    /// Cumulative count this session, modulo 2^32.
    pub written: u32,
}

/// A view of an ACK payload.
#[derive(Debug, Clone)]
pub struct AckPayload<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AckPayload<T> {
    /// Wraps a payload after checking that the bitmap and records it announces
    /// are present.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < 3 {
            return Err(Error::Truncated);
        }
        let n = b[2] as usize;
        if n > MAX_SACK_BYTES {
            return Err(Error::Malformed);
        }
        if b.len() < 3 + n {
            return Err(Error::Truncated);
        }
        if let Some(&count) = b.get(4 + n) {
            if usize::from(count) > MAX_WRITTEN {
                return Err(Error::Malformed);
            }
            if b.len() < 5 + n + usize::from(count) * WRITTEN_LEN {
                return Err(Error::Truncated);
            }
        }
        Ok(AckPayload { buffer })
    }
    /// First sequence number the peer may not send yet.
    pub fn limit(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[0], b[1]])
    }
    /// The SACK bitmap.
    pub fn sack(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[3..3 + b[2] as usize]
    }

    /// The error-rate hint, if present.
    pub fn hint(&self) -> Option<u8> {
        let b = self.buffer.as_ref();
        b.get(3 + b[2] as usize).copied()
    }

    /// The written records (none if absent).
    pub fn written(&self) -> impl Iterator<Item = Written> + '_ {
        let b = self.buffer.as_ref();
        let at = 4 + b[2] as usize;
        let count = b.get(at).map_or(0, |&c| usize::from(c));
        b.get(at + 1..at + 1 + count * WRITTEN_LEN)
            .unwrap_or(&[])
            .chunks_exact(WRITTEN_LEN)
            .map(|r| Written { channel: r[0], written: u32::from_be_bytes([r[1], r[2], r[3], r[4]]) })
    }
}

/// ACK payload fields as values; the bitmap and records are held inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRepr {
    /// Receive limit (absolute sequence number).
    pub limit: u16,
    /// Number of meaningful bitmap bytes.
    pub sack_len: u8,
    /// SACK bitmap.
    pub sack: [u8; MAX_SACK_BYTES],
    /// Error-rate hint; [`crate::fec::policy::NO_ESTIMATE`] when there is none.
    pub hint: u8,
    /// Number of meaningful written records.
    pub written_len: u8,
    /// Written-up-to confirmations.
    pub written: [Written; MAX_WRITTEN],
}

impl AckRepr {
    /// An ACK with a limit, no SACK bits, no estimate and no records.
    pub const fn new(limit: u16) -> Self {
        AckRepr {
            limit,
            sack_len: 0,
            sack: [0; MAX_SACK_BYTES],
            hint: crate::fec::policy::NO_ESTIMATE,
            written_len: 0,
            written: [Written { channel: 0, written: 0 }; MAX_WRITTEN],
        }
    }

    /// Parses a checked payload.
    pub fn parse<T: AsRef<[u8]>>(p: &AckPayload<T>) -> Self {
        let src = p.sack();
        let mut r = AckRepr::new(p.limit());
        r.sack[..src.len()].copy_from_slice(src);
        r.sack_len = src.len() as u8;
        r.hint = p.hint().unwrap_or(crate::fec::policy::NO_ESTIMATE);
        for (slot, w) in r.written.iter_mut().zip(p.written()) {
            *slot = w;
            r.written_len += 1;
        }
        r
    }

    /// Whether frame `ack + 1 + i` is marked as received.
    pub fn sacked(&self, i: usize) -> bool {
        i < self.sack_len as usize * 8 && self.sack[i / 8] & (1 << (i % 8)) != 0
    }

    /// The written records.
    pub fn written(&self) -> &[Written] {
        &self.written[..usize::from(self.written_len)]
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn len(&self) -> usize {
        let tail = if self.written_len > 0 {
            2 + usize::from(self.written_len) * WRITTEN_LEN
        } else {
            usize::from(self.hint != crate::fec::policy::NO_ESTIMATE)
        };
        3 + self.sack_len as usize + tail
    }

    /// Whether the payload would be empty (never: limit and length are always present).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the payload into `buf` (at least [`len`](Self::len) bytes);
    /// returns its length. The hint is sent when known or when records follow.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let n = self.sack_len as usize;
        buf[..2].copy_from_slice(&self.limit.to_be_bytes());
        buf[2] = self.sack_len;
        buf[3..3 + n].copy_from_slice(&self.sack[..n]);
        let mut at = 3 + n;
        if self.hint == crate::fec::policy::NO_ESTIMATE && self.written_len == 0 {
            return at;
        }
        buf[at] = self.hint;
        at += 1;
        if self.written_len == 0 {
            return at;
        }
        buf[at] = self.written_len;
        at += 1;
        for w in self.written() {
            buf[at] = w.channel;
            buf[at + 1..at + WRITTEN_LEN].copy_from_slice(&w.written.to_be_bytes());
            at += WRITTEN_LEN;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bits() {
        let mut r = AckRepr::new(300);
        r.sack[0] = 0b0000_0101;
        r.sack[1] = 0b1000_0000;
        r.sack_len = 2;
        r.hint = 27;
        let mut b = [0u8; 128];
        let n = r.emit(&mut b);
        assert_eq!((n, r.len()), (6, 6));
        let p = AckRepr::parse(&AckPayload::new_checked(&b[..n]).unwrap());
        assert_eq!(p, r);
        let set: heapless::Vec<usize, 8> = (0..40).filter(|&i| p.sacked(i)).collect();
        assert_eq!(&set[..], &[0, 2, 15]);
    }

    #[test]
    fn written_records_round_trip_with_or_without_an_estimate() {
        for hint in [27, crate::fec::policy::NO_ESTIMATE] {
            let mut r = AckRepr::new(9);
            r.hint = hint;
            r.written[0] = Written { channel: 1, written: 0x0102_0304 };
            r.written[1] = Written { channel: 200, written: u32::MAX };
            r.written_len = 2;
            let mut b = [0u8; 128];
            let n = r.emit(&mut b);
            assert_eq!(n, 3 + 2 + 2 * WRITTEN_LEN);
            assert_eq!(n, r.len());
            assert_eq!(AckRepr::parse(&AckPayload::new_checked(&b[..n]).unwrap()), r);
        }
    }

    #[test]
    fn bad_lengths_are_errors() {
        assert_eq!(AckPayload::new_checked(&[0u8, 1][..]).err(), Some(Error::Truncated));
        assert_eq!(AckPayload::new_checked(&[0u8, 1, 2, 0][..]).err(), Some(Error::Truncated));
        assert_eq!(AckPayload::new_checked(&[0u8, 1, 33][..]).err(), Some(Error::Malformed));
        // One record announced, four of its five bytes present.
        assert_eq!(
            AckPayload::new_checked(&[0u8, 1, 0, 254, 1, 7, 0, 0, 0][..]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(AckPayload::new_checked(&[0u8, 1, 0, 254, 17][..]).err(), Some(Error::Malformed));
    }
}
