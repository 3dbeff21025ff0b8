//! Meshtastic's 16-byte over-the-air header (firmware `RadioInterface.h`,
//! `PacketHeader`), which managed flooding reads and rewrites at every hop:
//!
//! | bytes | field | |
//! |---|---|---|
//! | 0..4 | `to` | destination, `0xffffffff` = broadcast (little endian) |
//! | 4..8 | `from` | originator |
//! | 8..12 | `id` | packet id, unique per originator |
//! | 12 | `flags` | bits 0-2 hop limit, 3 want-ack, 4 via MQTT, 5-7 hop start |
//! | 13 | `channel` | Meshtastic: the channel hash; here the port: 0 text, 1 routing (ACK) |
//! | 14 | `next_hop` | last byte of the next hop (0: flood) |
//! | 15 | `relay_node` | last byte of the node that sent this copy |
//!
//! The payload is not encrypted in the model; only its length matters on air.
//! Meshtastic puts the port inside the encrypted payload; the model keeps it in
//! the channel byte so the header stays 16 bytes and the airtime exact.

use super::super::protocol::NodeId;

/// Length of the header.
pub const HEADER_LEN: usize = 16;

/// Byte ranges of the header fields.
mod field {
    use core::ops::Range;
    pub const TO: Range<usize> = 0..4;
    pub const FROM: Range<usize> = 4..8;
    pub const ID: Range<usize> = 8..12;
    pub const FLAGS: usize = 12;
    pub const CHANNEL: usize = 13;
    pub const NEXT_HOP: usize = 14;
    pub const RELAY: usize = 15;
}

const HOP_LIMIT_MASK: u8 = 0x07;
const WANT_ACK: u8 = 0x08;
const HOP_START_SHIFT: u8 = 5;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// An application message.
    Text,
    /// A routing message: an ACK, whose payload is the low 16 bits of the acknowledged id.
    Routing,
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Destination.
    pub to: NodeId,
    /// Originator.
    pub from: NodeId,
    /// Packet id.
    pub id: u32,
    /// Hops this copy may still be relayed (0..=7).
    pub hop_limit: u8,
    /// Hop limit the originator set: `hop_start - hop_limit` hops were taken.
    pub hop_start: u8,
    /// The originator wants an acknowledgement.
    pub want_ack: bool,
    /// Payload type.
    pub port: Port,
    /// Last byte of the node that transmitted this copy.
    pub relay: u8,
}

fn u32_at(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[r]);
    u32::from_le_bytes(w)
}

impl Header {
    /// Parses the header; `None` if the frame is too short or the port unknown.
    pub fn parse(frame: &[u8]) -> Option<(Header, &[u8])> {
        if frame.len() < HEADER_LEN {
            return None;
        }
        let flags = frame[field::FLAGS];
        let port = match frame[field::CHANNEL] {
            0 => Port::Text,
            1 => Port::Routing,
            _ => return None,
        };
        let h = Header {
            to: u32_at(frame, field::TO),
            from: u32_at(frame, field::FROM),
            id: u32_at(frame, field::ID),
            hop_limit: flags & HOP_LIMIT_MASK,
            hop_start: flags >> HOP_START_SHIFT,
            want_ack: flags & WANT_ACK != 0,
            port,
            relay: frame[field::RELAY],
        };
        Some((h, &frame[HEADER_LEN..]))
    }

    /// Writes the header and `payload` into `buf`, returning the frame length;
    /// `None` if `buf` is too small.
    pub fn emit(&self, payload: &[u8], buf: &mut [u8]) -> Option<usize> {
        let len = HEADER_LEN + payload.len();
        if buf.len() < len {
            return None;
        }
        buf[field::TO].copy_from_slice(&self.to.to_le_bytes());
        buf[field::FROM].copy_from_slice(&self.from.to_le_bytes());
        buf[field::ID].copy_from_slice(&self.id.to_le_bytes());
        buf[field::FLAGS] = (self.hop_limit & HOP_LIMIT_MASK)
            | if self.want_ack { WANT_ACK } else { 0 }
            | (self.hop_start & HOP_LIMIT_MASK) << HOP_START_SHIFT;
        buf[field::CHANNEL] = match self.port {
            Port::Text => 0,
            Port::Routing => 1,
        };
        buf[field::NEXT_HOP] = 0;
        buf[field::RELAY] = self.relay;
        buf[HEADER_LEN..len].copy_from_slice(payload);
        Some(len)
    }

    /// The frame as a vector.
    pub fn to_frame(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0; HEADER_LEN + payload.len()];
        self.emit(payload, &mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_packs_flags_like_meshtastic() {
        let h = Header {
            to: 0xffff_ffff,
            from: 7,
            id: 0x0102_0304,
            hop_limit: 2,
            hop_start: 3,
            want_ack: true,
            port: Port::Routing,
            relay: 9,
        };
        let f = h.to_frame(&[0xaa, 0xbb]);
        assert_eq!(f.len(), 18);
        assert_eq!(&f[0..4], &[0xff; 4]);
        assert_eq!(&f[8..12], &[4, 3, 2, 1]);
        assert_eq!(f[12], (3 << 5) | 0x08 | 2, "hop start 3, want ack, hop limit 2");
        let (back, payload) = Header::parse(&f).unwrap();
        assert_eq!(back, h);
        assert_eq!(payload, &[0xaa, 0xbb]);
    }

    #[test]
    fn short_frames_and_unknown_ports_are_ignored() {
        assert!(Header::parse(&[0; 15]).is_none());
        let mut f = [0u8; 16];
        f[13] = 7;
        assert!(Header::parse(&f).is_none());
        assert!(Header::parse(&[0; 16]).is_some());
    }
}
