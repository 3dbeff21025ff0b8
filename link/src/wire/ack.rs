//! Spec section 4.3: the ACK payload — receive limit and SACK bitmap.
//!
//! The cumulative acknowledgement (the next sequence number expected in order)
//! travels in the header's `ack` field.
//!
//! ```text
//! 0           2          3
//! +-----------+----------+------------------------------+
//! | limit(BE) | sack_len | sack bitmap (sack_len bytes) |
//! +-----------+----------+------------------------------+
//! ```
//! `limit`: the peer may send sequence numbers before `limit` (absolute, so a
//! piggybacked ack never shrinks it). Bit `i` of the bitmap (byte `i / 8`,
//! least significant bit first) set means frame `ack + 1 + i` has arrived.
//! An optional last byte after the bitmap is the sender's measured byte-error
//! rate as `-2·log2(rate)` (section 6.7); absent means no estimate.

use super::Error;

/// The longest SACK bitmap: 256 frames beyond the cumulative ack.
pub const MAX_SACK_BYTES: usize = 32;

/// A view of an ACK payload.
#[derive(Debug, Clone)]
pub struct AckPayload<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AckPayload<T> {
    /// Wraps a payload after checking that the bitmap it announces is present.
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
}

/// ACK payload fields as values; the bitmap is held inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRepr {
    /// Receive limit (absolute sequence number).
    pub limit: u16,
    /// Number of meaningful bitmap bytes.
    pub sack_len: u8,
    /// SACK bitmap.
    pub sack: [u8; MAX_SACK_BYTES],
    /// Error-rate hint; [`crate::fec::policy::NO_ESTIMATE`] is not sent.
    pub hint: u8,
}

impl AckRepr {
    /// Parses a checked payload.
    pub fn parse<T: AsRef<[u8]>>(p: &AckPayload<T>) -> Self {
        let src = p.sack();
        let mut sack = [0u8; MAX_SACK_BYTES];
        sack[..src.len()].copy_from_slice(src);
        let hint = p.hint().unwrap_or(crate::fec::policy::NO_ESTIMATE);
        AckRepr { limit: p.limit(), sack_len: src.len() as u8, sack, hint }
    }

    /// Whether frame `ack + 1 + i` is marked as received.
    pub fn sacked(&self, i: usize) -> bool {
        i < self.sack_len as usize * 8 && self.sack[i / 8] & (1 << (i % 8)) != 0
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn len(&self) -> usize {
        3 + self.sack_len as usize + usize::from(self.hint != crate::fec::policy::NO_ESTIMATE)
    }

    /// Whether the payload would be empty (never: limit and length are always present).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the payload into `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let n = self.sack_len as usize;
        buf[..2].copy_from_slice(&self.limit.to_be_bytes());
        buf[2] = self.sack_len;
        buf[3..3 + n].copy_from_slice(&self.sack[..n]);
        if self.hint == crate::fec::policy::NO_ESTIMATE {
            return 3 + n;
        }
        buf[3 + n] = self.hint;
        4 + n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bits() {
        let mut sack = [0u8; MAX_SACK_BYTES];
        sack[0] = 0b0000_0101;
        sack[1] = 0b1000_0000;
        let r = AckRepr { limit: 300, sack_len: 2, sack, hint: 27 };
        let mut b = [0u8; 64];
        let n = r.emit(&mut b);
        assert_eq!(n, 6);
        let p = AckRepr::parse(&AckPayload::new_checked(&b[..n]).unwrap());
        assert_eq!(p, r);
        let set: heapless::Vec<usize, 8> = (0..40).filter(|&i| p.sacked(i)).collect();
        assert_eq!(&set[..], &[0, 2, 15]);
    }

    #[test]
    fn bad_lengths_are_errors() {
        assert_eq!(AckPayload::new_checked(&[0u8, 1][..]).err(), Some(Error::Truncated));
        assert_eq!(AckPayload::new_checked(&[0u8, 1, 2, 0][..]).err(), Some(Error::Truncated));
        assert_eq!(AckPayload::new_checked(&[0u8, 1, 33][..]).err(), Some(Error::Malformed));
    }
}
