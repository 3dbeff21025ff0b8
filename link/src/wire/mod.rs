//! Wire formats, one module per section of `docs/protocol.md`.
//!
//! Each format has two levels, as in smoltcp: a typed view over a byte buffer
//! (`Frame`, `HelloPayload`, `AckPayload`) whose `new_checked` validates the
//! length once so no accessor can panic afterwards, and a plain `Repr` struct
//! with `parse` and `emit` side by side.
//!
//! | spec section            | module            |
//! |-------------------------|-------------------|
//! | 3. Frame (header, CRC)  | [`frame`]         |
//! | 4.1 HELLO / HELLO_ACK   | [`hello`]         |
//! | 4.3 ACK and SACK        | [`ack`]           |

pub mod ack;
pub mod frame;
pub mod hello;

pub use ack::{AckPayload, AckRepr, Written, MAX_SACK_BYTES, MAX_WRITTEN, WRITTEN_LEN};
pub use frame::{
    Frame, Header, CRC_LEN, HEADER_LEN, HELLO_OVERHEAD, MIN_FRAME, OVERHEAD, SESSION_HEADER_LEN,
};
pub use hello::{
    flags as hello_flags, HelloPayload, HelloRepr, HELLO_ADDR_LEN, HELLO_LEN, HELLO_MAX_LEN, MIN_MAX_FRAME,
    MIN_PAYLOAD,
};

/// The frame layout version: the first byte of every frame (spec section 3).
/// It stays 1 while the header keeps its layout; it is also a word of the
/// FEC marker code (`fec`), so it cannot change without moving the markers.
pub const VERSION: u8 = 1;

/// The protocol version this implementation speaks, announced in HELLO
/// (spec sections 4.1, 9.2). Version 2 added the stream reset (RST) and the
/// written-up-to confirmations in ACK frames; version 3 (core 2.0) the frame
/// counter in DATA and ACK headers and node addresses in HELLO. A peer of
/// another version is told apart by its HELLO and refused with a clear error.
pub const PROTOCOL: u8 = 3;

/// Why a byte sequence is not a valid frame or payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the fixed part of its format.
    Truncated,
    /// The CRC-32C trailer does not match the bytes.
    BadCrc,
    /// A well-formed frame of a protocol version we do not speak.
    UnknownVersion(u8),
    /// A frame type this version does not define (or reserves for later).
    UnknownType(u8),
    /// A flag this implementation does not support (the authenticated mode).
    Unsupported,
    /// A field holds a value its format forbids.
    Malformed,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Truncated => f.write_str("frame truncated"),
            Error::BadCrc => f.write_str("CRC mismatch"),
            Error::UnknownVersion(v) => write!(f, "protocol version {v} is not supported"),
            Error::UnknownType(t) => write!(f, "unknown frame type {t:#04x}"),
            Error::Unsupported => f.write_str("unsupported frame flag"),
            Error::Malformed => f.write_str("malformed field"),
        }
    }
}

/// Frame types (spec section 4). Values 0x10-0x1f are reserved for the one-way
/// (diode) frames, 0x20-0xff for later versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    /// Opens a session: carries the sender's session id and limits.
    Hello = 0x01,
    /// Answers a HELLO, echoing the session id it answers.
    HelloAck = 0x02,
    /// Carries a fragment of a packet or of a byte stream.
    Data = 0x03,
    /// Cumulative acknowledgement, receive window and SACK bitmap.
    Ack = 0x04,
}

impl FrameType {
    /// Decodes a type byte.
    pub fn from_u8(v: u8) -> Result<Self, Error> {
        match v {
            0x01 => Ok(FrameType::Hello),
            0x02 => Ok(FrameType::HelloAck),
            0x03 => Ok(FrameType::Data),
            0x04 => Ok(FrameType::Ack),
            other => Err(Error::UnknownType(other)),
        }
    }
}

/// Bits of the header's flags byte (spec section 3.2).
pub mod flags {
    /// The header's `ack` field holds a cumulative acknowledgement.
    pub const ACK: u8 = 0x01;
    /// DATA: more fragments of the same packet follow on this channel.
    pub const MORE: u8 = 0x02;
    /// DATA: end of the byte stream on this channel.
    pub const FIN: u8 = 0x04;
    /// Asks the peer to answer with an ACK at once (keepalive, window probe).
    pub const POLL: u8 = 0x08;
    /// DATA: the sender aborts the byte stream on this channel; the payload
    /// says why (application-defined, at most `MIN_PAYLOAD` bytes). Protocol 2.
    pub const RST: u8 = 0x10;
    /// Reserved: an authentication trailer (key id + tag) precedes the CRC.
    pub const AUTH: u8 = 0x80;
    /// Every flag protocol version 2 defines; the rest must be zero.
    pub const KNOWN: u8 = ACK | MORE | FIN | POLL | RST | AUTH;
}

/// Sequence numbers are 16 bits and wrap; `a` is before `b` when the forward
/// distance from `a` to `b` is less than half the space (RFC 1982 arithmetic).
#[inline]
pub fn seq_lt(a: u16, b: u16) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000
}
