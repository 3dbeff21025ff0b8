//! Spec section 3: the frame — a header, a payload and a CRC-32C.
//!
//! ```text
//! 0       1       2       3       4               8       10      12            16
//! +-------+-------+-------+-------+---------------+-------+-------+-------------+---------+-------+
//! |version| type  | flags |channel|  session (BE) |seq(BE)|ack(BE)| counter (BE)| payload |CRC(LE)|
//! +-------+-------+-------+-------+---------------+-------+-------+-------------+---------+-------+
//! ```
//! DATA and ACK frames carry the 16 bytes; HELLO and HELLO_ACK keep the
//! 12-byte header of every version (no counter), so peers of any version
//! read each other's version range (9.2). The counter counts the DATA and
//! ACK frames a session sends, first copies and repeats alike: with the
//! session id it never repeats, the nonce an authenticated mode needs (10.1).

use super::{flags, Error, FrameType, VERSION};
use crc::{Crc, Table, CRC_32_ISCSI};

/// Byte ranges of the header fields, named once and used by every accessor.
mod field {
    pub type Field = core::ops::Range<usize>;
    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const FLAGS: usize = 2;
    pub const CHANNEL: usize = 3;
    pub const SESSION: Field = 4..8;
    pub const SEQ: Field = 8..10;
    pub const ACK: Field = 10..12;
    pub const COUNTER: Field = 12..16;
}

/// Length of the header of HELLO and HELLO_ACK frames (every version's).
pub const HEADER_LEN: usize = 12;
/// Length of the header of DATA and ACK frames: with the frame counter.
pub const SESSION_HEADER_LEN: usize = 16;
/// Length of the CRC-32C trailer.
pub const CRC_LEN: usize = 4;
/// What a DATA or ACK frame costs beyond its payload, before COBS: header
/// and trailer. (A HELLO costs [`HELLO_OVERHEAD`].)
pub const OVERHEAD: usize = SESSION_HEADER_LEN + CRC_LEN;
/// What a HELLO or HELLO_ACK frame costs beyond its payload.
pub const HELLO_OVERHEAD: usize = HEADER_LEN + CRC_LEN;
/// The shortest frame: a HELLO's header and trailer.
pub const MIN_FRAME: usize = HELLO_OVERHEAD;

/// Where the payload starts in a frame of type byte `t`.
const fn payload_start(t: u8) -> usize {
    if t == FrameType::Data as u8 || t == FrameType::Ack as u8 {
        SESSION_HEADER_LEN
    } else {
        HEADER_LEN
    }
}

/// CRC-32C (Castagnoli): detects every error of up to 5 bits in frames of up
/// to 655 bytes and of up to 3 bits in any frame we send (Hamming distance 6 to
/// 5,243 bits, 4 beyond), every burst of up to 32 bits, and random damage with
/// odds of 2^-32 — better than CRC-32/IEEE at these lengths.
/// Slice-by-16 tables: 16 KiB of flash buys several GB/s on a host core.
/// Feature `small-crc`: one 1 KiB table (slice-by-1), for microcontrollers
/// whose flash is tighter than their time (a 2 Mbit/s line needs 0.25 MB/s).
#[cfg(not(feature = "small-crc"))]
static CRC32C: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);
#[cfg(feature = "small-crc")]
static CRC32C: Crc<u32, Table<1>> = Crc::<u32, Table<1>>::new(&CRC_32_ISCSI);

/// CRC-32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    CRC32C.checksum(bytes)
}

/// A read/write view of a frame in a byte buffer (header, payload, CRC).
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking anything; accessors may panic if it is short.
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// Wraps a buffer after checking it is long enough and its CRC matches,
    /// so no accessor can panic and no corrupted frame gets past.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        frame.check_crc()?;
        Ok(frame)
    }

    /// Checks the buffer holds at least a header and a CRC.
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < MIN_FRAME || b.len() < payload_start(b[field::TYPE]) + CRC_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Checks the CRC trailer against the rest of the frame.
    pub fn check_crc(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        let (body, trailer) = b.split_at(b.len() - CRC_LEN);
        let stored = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        if crc32c(body) == stored {
            Ok(())
        } else {
            Err(Error::BadCrc)
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Protocol version byte.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }
    /// Frame type byte (see [`FrameType`]).
    pub fn frame_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// Flags byte (see [`flags`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    /// Logical channel.
    pub fn channel(&self) -> u8 {
        self.buffer.as_ref()[field::CHANNEL]
    }
    /// The sender's session id.
    pub fn session(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::SESSION];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    /// DATA sequence number.
    pub fn seq(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::SEQ];
        u16::from_be_bytes([b[0], b[1]])
    }
    /// Cumulative acknowledgement (valid when the ACK flag is set).
    pub fn ack(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::ACK];
        u16::from_be_bytes([b[0], b[1]])
    }
    /// DATA and ACK: the sender's frame counter of this session (0 for others).
    pub fn counter(&self) -> u32 {
        let b = self.buffer.as_ref();
        if payload_start(b[field::TYPE]) == SESSION_HEADER_LEN {
            let c = &b[field::COUNTER];
            u32::from_be_bytes([c[0], c[1], c[2], c[3]])
        } else {
            0
        }
    }
    /// The header's bytes (associated data of a sealed payload, 10.1).
    pub fn header_bytes(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..payload_start(b[field::TYPE])]
    }
    /// The payload between header and CRC.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[payload_start(b[field::TYPE])..b.len() - CRC_LEN]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    fn set_u8(&mut self, at: usize, v: u8) {
        self.buffer.as_mut()[at] = v;
    }
    /// Sets the version byte.
    pub fn set_version(&mut self, v: u8) {
        self.set_u8(field::VERSION, v)
    }
    /// Sets the frame type byte.
    pub fn set_frame_type(&mut self, v: u8) {
        self.set_u8(field::TYPE, v)
    }
    /// Sets the flags byte.
    pub fn set_flags(&mut self, v: u8) {
        self.set_u8(field::FLAGS, v)
    }
    /// Sets the channel.
    pub fn set_channel(&mut self, v: u8) {
        self.set_u8(field::CHANNEL, v)
    }
    /// Sets the sender's session id.
    pub fn set_session(&mut self, v: u32) {
        self.buffer.as_mut()[field::SESSION].copy_from_slice(&v.to_be_bytes())
    }
    /// Sets the sequence number.
    pub fn set_seq(&mut self, v: u16) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.to_be_bytes())
    }
    /// Sets the cumulative acknowledgement.
    pub fn set_ack(&mut self, v: u16) {
        self.buffer.as_mut()[field::ACK].copy_from_slice(&v.to_be_bytes())
    }
    /// Sets the frame counter (DATA and ACK only).
    pub fn set_counter(&mut self, v: u32) {
        self.buffer.as_mut()[field::COUNTER].copy_from_slice(&v.to_be_bytes())
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let b = self.buffer.as_mut();
        let (start, end) = (payload_start(b[field::TYPE]), b.len() - CRC_LEN);
        &mut b[start..end]
    }
    /// Computes and stores the CRC over everything before the trailer.
    pub fn fill_crc(&mut self) {
        let b = self.buffer.as_mut();
        let n = b.len() - CRC_LEN;
        let crc = crc32c(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The header fields as plain values: the parse/emit half of section 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Frame type.
    pub frame_type: FrameType,
    /// Flags (see [`flags`]).
    pub flags: u8,
    /// Logical channel (DATA only; zero otherwise).
    pub channel: u8,
    /// The sender's session id.
    pub session: u32,
    /// Sequence number (DATA only; zero otherwise).
    pub seq: u16,
    /// Cumulative acknowledgement (meaningful when `flags::ACK` is set).
    pub ack: u16,
    /// DATA and ACK: the sender's frame counter of this session.
    pub counter: u32,
}

impl Header {
    /// Parses a CRC-checked frame. Rejects other versions, unknown types,
    /// undefined flags and the not yet implemented authenticated mode.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Header, Error> {
        if frame.version() != VERSION {
            return Err(Error::UnknownVersion(frame.version()));
        }
        let frame_type = FrameType::from_u8(frame.frame_type())?;
        let f = frame.flags();
        if f & !flags::KNOWN != 0 {
            return Err(Error::Malformed);
        }
        if f & flags::AUTH != 0 {
            return Err(Error::Unsupported);
        }
        Ok(Header {
            frame_type,
            flags: f,
            channel: frame.channel(),
            session: frame.session(),
            seq: frame.seq(),
            ack: frame.ack(),
            counter: frame.counter(),
        })
    }

    /// Header bytes of a frame of this type.
    pub const fn len(&self) -> usize {
        payload_start(self.frame_type as u8)
    }

    /// Whether the header is empty (never).
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Writes the header into `frame` (the CRC is filled separately, after the payload).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_version(VERSION);
        frame.set_frame_type(self.frame_type as u8);
        frame.set_flags(self.flags);
        frame.set_channel(self.channel);
        frame.set_session(self.session);
        frame.set_seq(self.seq);
        frame.set_ack(self.ack);
        if self.len() == SESSION_HEADER_LEN {
            frame.set_counter(self.counter);
        }
    }

    /// Builds a whole frame — header, `payload` and CRC — into `buf`; returns its length.
    /// `buf` must hold [`len`](Self::len) + `payload.len()` + [`CRC_LEN`] bytes.
    pub fn emit_frame(&self, payload: &[u8], buf: &mut [u8]) -> usize {
        let len = self.len() + payload.len() + CRC_LEN;
        let mut frame = Frame::new_unchecked(&mut buf[..len]);
        self.emit(&mut frame);
        frame.payload_mut().copy_from_slice(payload);
        frame.fill_crc();
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            frame_type: FrameType::Data,
            flags: flags::ACK | flags::MORE,
            channel: 1,
            session: 0xdead_beef,
            seq: 0x0102,
            ack: 0x0304,
            counter: 0x0506_0708,
        }
    }

    #[test]
    fn emit_then_parse_round_trips() {
        let mut buf = [0u8; 64];
        let n = sample().emit_frame(b"hello", &mut buf);
        assert_eq!(n, OVERHEAD + 5);
        let frame = Frame::new_checked(&buf[..n]).unwrap();
        assert_eq!(Header::parse(&frame).unwrap(), sample());
        assert_eq!(frame.payload(), b"hello");
    }

    #[test]
    fn crc32c_is_the_standard_castagnoli_crc() {
        // The catalogue check value; tests/spec_examples.rs pins the spec's frames byte for byte.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let mut buf = [0u8; 64];
        let n = sample().emit_frame(b"payload bytes", &mut buf);
        for bit in 0..n * 8 {
            let mut b = buf;
            b[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Frame::new_checked(&b[..n]).err(), Some(Error::BadCrc), "bit {bit}");
        }
    }

    #[test]
    fn short_buffers_are_truncated_not_panics() {
        for n in 0..MIN_FRAME {
            assert_eq!(Frame::new_checked(&[0u8; 32][..n]).err(), Some(Error::Truncated));
        }
        // A DATA frame needs room for its counter.
        let mut b = [0u8; 32];
        b[1] = FrameType::Data as u8;
        for n in MIN_FRAME..OVERHEAD {
            assert_eq!(Frame::new_checked(&b[..n]).err(), Some(Error::Truncated), "{n} bytes");
        }
    }

    #[test]
    fn other_versions_and_types_are_rejected_after_crc() {
        let mut buf = [0u8; 32];
        let n = sample().emit_frame(b"", &mut buf);
        let mut f = Frame::new_unchecked(&mut buf[..n]);
        f.set_version(2);
        f.fill_crc();
        let f = Frame::new_checked(&buf[..n]).unwrap();
        assert_eq!(Header::parse(&f), Err(Error::UnknownVersion(2)));
        let mut f = Frame::new_unchecked(&mut buf[..n]);
        f.set_version(VERSION);
        f.set_frame_type(0x10);
        f.fill_crc();
        let f = Frame::new_checked(&buf[..n]).unwrap();
        assert_eq!(Header::parse(&f), Err(Error::UnknownType(0x10)));
        let mut f = Frame::new_unchecked(&mut buf[..n]);
        f.set_frame_type(FrameType::Data as u8);
        f.set_flags(flags::AUTH);
        f.fill_crc();
        let f = Frame::new_checked(&buf[..n]).unwrap();
        assert_eq!(Header::parse(&f), Err(Error::Unsupported));
    }
}
