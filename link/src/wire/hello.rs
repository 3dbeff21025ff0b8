//! Spec section 4.1: the HELLO and HELLO_ACK payload.
//!
//! ```text
//! 0           1           2             4          6                   10
//! +-----------+-----------+-------------+----------+-------------------+
//! |min_version|max_version|max_frame(BE)|window(BE)| echo session (BE) |
//! +-----------+-----------+-------------+----------+-------------------+
//! ```
//! Every protocol version keeps these ten bytes, so two peers of different
//! versions can always tell each other which versions they speak. Four more
//! may follow: the sender's and the addressee's node address (BE), on a
//! medium shared by several nodes; absent (or zero) on a point-to-point line.
//! Then one byte of flags, absent when zero: what the sender cannot do
//! ([`flags::NO_FEC`]: a node built without the in-frame FEC decoder).

use super::Error;

mod field {
    pub const MIN_VERSION: usize = 0;
    pub const MAX_VERSION: usize = 1;
    pub const MAX_FRAME: core::ops::Range<usize> = 2..4;
    pub const WINDOW: core::ops::Range<usize> = 4..6;
    pub const ECHO: core::ops::Range<usize> = 6..10;
    pub const SRC: core::ops::Range<usize> = 10..12;
    pub const DST: core::ops::Range<usize> = 12..14;
    pub const FLAGS: usize = 14;
}

/// The HELLO flags (offset 14): what the sender of the HELLO lacks. Zero
/// (or absent) is a full endpoint, so a later flag never changes what an
/// older peer is sent.
pub mod flags {
    /// Built without the in-frame FEC decoder (spec 6.7): send it plain
    /// frames only.
    pub const NO_FEC: u8 = 0x01;
}

/// Length of the HELLO payload every version keeps.
pub const HELLO_LEN: usize = 10;

/// Length of the HELLO payload with node addresses.
pub const HELLO_ADDR_LEN: usize = 14;

/// Length of the HELLO payload with node addresses and flags.
pub const HELLO_MAX_LEN: usize = 15;

/// Every endpoint accepts DATA payloads of at least this many bytes, so
/// fragments cut before the handshake fit any peer.
pub const MIN_PAYLOAD: u16 = 64;

/// The smallest `max_frame` a HELLO may advertise: a DATA frame's header,
/// [`MIN_PAYLOAD`] and CRC.
pub const MIN_MAX_FRAME: u16 = super::OVERHEAD as u16 + MIN_PAYLOAD;

/// A view of a HELLO / HELLO_ACK payload.
#[derive(Debug, Clone)]
pub struct HelloPayload<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> HelloPayload<T> {
    /// Wraps a payload after checking its length (longer payloads are accepted:
    /// later versions may append fields).
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HELLO_LEN {
            return Err(Error::Truncated);
        }
        Ok(HelloPayload { buffer })
    }
    /// Oldest version the sender speaks.
    pub fn min_version(&self) -> u8 {
        self.buffer.as_ref()[field::MIN_VERSION]
    }
    /// Newest version the sender speaks.
    pub fn max_version(&self) -> u8 {
        self.buffer.as_ref()[field::MAX_VERSION]
    }
    /// Largest frame (header + payload + CRC, before COBS) the sender accepts.
    pub fn max_frame(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::MAX_FRAME];
        u16::from_be_bytes([b[0], b[1]])
    }
    /// The sender's receive window, in frames.
    pub fn window(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::WINDOW];
        u16::from_be_bytes([b[0], b[1]])
    }
    /// HELLO_ACK: the session id of the HELLO being answered. HELLO: zero.
    pub fn echo(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::ECHO];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    /// The sender's node address (0 if absent).
    pub fn src(&self) -> u16 {
        self.buffer.as_ref().get(field::SRC).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    }
    /// The addressee's node address (0 if absent: whoever hears it).
    pub fn dst(&self) -> u16 {
        self.buffer.as_ref().get(field::DST).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    }
    /// What the sender lacks ([`flags`]; 0 if absent).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref().get(field::FLAGS).copied().unwrap_or(0)
    }
}

/// HELLO fields as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloRepr {
    /// Oldest version spoken.
    pub min_version: u8,
    /// Newest version spoken.
    pub max_version: u8,
    /// Largest frame accepted, before COBS.
    pub max_frame: u16,
    /// Receive window in frames.
    pub window: u16,
    /// Echoed session id (HELLO_ACK) or zero (HELLO).
    pub echo: u32,
    /// The sender's node address (0: none, a point-to-point line).
    pub src: u16,
    /// The addressee's node address (0: whoever hears it).
    pub dst: u16,
    /// What the sender lacks ([`flags`]).
    pub flags: u8,
}

impl HelloRepr {
    /// Parses a checked payload. A frame limit below [`MIN_MAX_FRAME`], a window
    /// of half the sequence space or more, or an empty version range is malformed.
    /// A window of zero is valid: the peer holds undelivered data and will open
    /// its window with an ACK.
    pub fn parse<T: AsRef<[u8]>>(p: &HelloPayload<T>) -> Result<Self, Error> {
        let repr = HelloRepr {
            min_version: p.min_version(),
            max_version: p.max_version(),
            max_frame: p.max_frame(),
            window: p.window(),
            echo: p.echo(),
            src: p.src(),
            dst: p.dst(),
            flags: p.flags(),
        };
        if repr.window >= 0x8000 || repr.max_frame < MIN_MAX_FRAME || repr.min_version > repr.max_version {
            return Err(Error::Malformed);
        }
        Ok(repr)
    }

    /// Bytes [`emit`](Self::emit) writes: the addresses only when there are
    /// any or flags follow, the flags only when there are any.
    pub fn len(&self) -> usize {
        if self.flags != 0 {
            HELLO_MAX_LEN
        } else if self.src == 0 && self.dst == 0 {
            HELLO_LEN
        } else {
            HELLO_ADDR_LEN
        }
    }

    /// Whether the payload would be empty (never).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the payload into the first [`len`](Self::len) bytes of `buf`;
    /// returns that length.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let n = self.len();
        let b = &mut buf[..n];
        b[field::MIN_VERSION] = self.min_version;
        b[field::MAX_VERSION] = self.max_version;
        b[field::MAX_FRAME].copy_from_slice(&self.max_frame.to_be_bytes());
        b[field::WINDOW].copy_from_slice(&self.window.to_be_bytes());
        b[field::ECHO].copy_from_slice(&self.echo.to_be_bytes());
        if n >= HELLO_ADDR_LEN {
            b[field::SRC].copy_from_slice(&self.src.to_be_bytes());
            b[field::DST].copy_from_slice(&self.dst.to_be_bytes());
        }
        if n == HELLO_MAX_LEN {
            b[field::FLAGS] = self.flags;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validation() {
        let r = HelloRepr {
            min_version: 1,
            max_version: 1,
            max_frame: 4079,
            window: 128,
            echo: 7,
            src: 0,
            dst: 0,
            flags: 0,
        };
        let mut b = [0u8; HELLO_LEN];
        r.emit(&mut b);
        assert_eq!(HelloRepr::parse(&HelloPayload::new_checked(&b[..]).unwrap()), Ok(r));
        assert_eq!(HelloPayload::new_checked(&b[..9]).err(), Some(Error::Truncated));
        for bad in [HelloRepr { window: 0x8000, ..r }, HelloRepr { max_frame: MIN_MAX_FRAME - 1, ..r }] {
            bad.emit(&mut b);
            assert_eq!(HelloRepr::parse(&HelloPayload::new_checked(&b[..]).unwrap()), Err(Error::Malformed));
        }
        let closed = HelloRepr { window: 0, ..r };
        closed.emit(&mut b);
        assert_eq!(HelloRepr::parse(&HelloPayload::new_checked(&b[..]).unwrap()), Ok(closed));
    }

    #[test]
    fn addresses_follow_the_kept_ten_bytes_only_when_there_are_any() {
        let r = HelloRepr {
            min_version: 2,
            max_version: 2,
            max_frame: 253,
            window: 8,
            echo: 0,
            src: 7,
            dst: 0x0102,
            flags: 0,
        };
        let mut b = [0u8; HELLO_ADDR_LEN];
        assert_eq!(r.emit(&mut b), HELLO_ADDR_LEN);
        assert_eq!(&b[10..], &[0, 7, 1, 2]);
        assert_eq!(HelloRepr::parse(&HelloPayload::new_checked(&b[..]).unwrap()), Ok(r));
        // A peer that sends only the kept ten bytes has no addresses.
        let p = HelloRepr::parse(&HelloPayload::new_checked(&b[..HELLO_LEN]).unwrap()).unwrap();
        assert_eq!((p.src, p.dst), (0, 0));
    }

    #[test]
    fn flags_follow_the_addresses_only_when_there_are_any() {
        let r = HelloRepr {
            min_version: 3,
            max_version: 3,
            max_frame: 276,
            window: 8,
            echo: 0,
            src: 0,
            dst: 0,
            flags: flags::NO_FEC,
        };
        let mut b = [0xaau8; HELLO_MAX_LEN];
        assert_eq!(r.emit(&mut b), HELLO_MAX_LEN);
        assert_eq!(&b[10..], &[0, 0, 0, 0, flags::NO_FEC], "zero addresses, then the flags");
        assert_eq!(HelloRepr::parse(&HelloPayload::new_checked(&b[..]).unwrap()), Ok(r));
        // Without them (an older peer, or a full one) the sender lacks nothing.
        let p = HelloRepr::parse(&HelloPayload::new_checked(&b[..HELLO_ADDR_LEN]).unwrap()).unwrap();
        assert_eq!(p.flags, 0);
        assert_eq!(HelloRepr { flags: 0, ..r }.len(), HELLO_LEN);
    }
}
