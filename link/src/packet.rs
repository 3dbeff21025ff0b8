//! Spec section 8.2: packets from fragments, on the receiving side.
//!
//! A packet sent on a channel arrives as fragments: every one but the last
//! has MORE set ([`Delivery::more`]). [`Reassembly`] puts one channel's
//! fragments back together in a buffer of a fixed size, so every user of a
//! packet channel — host transfers, the forwarder's control channel, the
//! simulator, firmware — does it the same way, and no peer can make a
//! receiver allocate without end by never clearing MORE: a packet longer than
//! the buffer is dropped whole and reported.

use crate::conn::rx::Delivery;
use crate::storage::Buf;

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

/// What a fragment completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Reassembled<'b> {
    /// More fragments of the packet are to come.
    Partial,
    /// The packet is complete: its bytes, valid until the next fragment.
    Packet(&'b [u8]),
    /// The packet was longer than the buffer and has been dropped; `len` is
    /// how long it was.
    TooLong {
        /// The dropped packet's length in bytes.
        len: usize,
    },
}

/// The reassembly of one channel's packets into a buffer of a fixed size.
#[derive(Debug)]
pub struct Reassembly<'a> {
    buf: Buf<'a, u8>,
    /// Largest packet taken: the buffer's length, or (owned) the limit it may
    /// grow to.
    limit: usize,
    /// Bytes of the packet so far (counted on, not stored, once too long).
    len: usize,
    /// The last fragment completed a packet: start afresh with the next.
    done: bool,
}

impl<'a> Reassembly<'a> {
    /// Reassembles into `buf`: packets up to its length are taken.
    pub fn new(buf: &'a mut [u8]) -> Self {
        let limit = buf.len();
        Reassembly { buf: Buf::Borrowed(buf), limit, len: 0, done: false }
    }

    /// Takes the next fragment of this channel, as [`Connection::recv`]
    /// delivered it.
    ///
    /// [`Connection::recv`]: crate::Connection::recv
    pub fn push(&mut self, d: &Delivery, fragment: &[u8]) -> Reassembled<'_> {
        if core::mem::take(&mut self.done) || d.restart {
            // A restart: the old session's partial packet will never be completed.
            self.len = 0;
        }
        let len = self.len + fragment.len();
        if len <= self.limit {
            self.store(fragment);
        }
        self.len = len;
        if d.more {
            return Reassembled::Partial;
        }
        self.done = true;
        if len > self.limit {
            Reassembled::TooLong { len }
        } else {
            Reassembled::Packet(&self.buf[..len])
        }
    }

    /// Whether part of a packet is waiting for its other fragments.
    pub fn is_partial(&self) -> bool {
        !self.done && self.len > 0
    }

    /// Forgets any partial packet.
    pub fn clear(&mut self) {
        self.len = 0;
        self.done = false;
    }

    fn store(&mut self, fragment: &[u8]) {
        match &mut self.buf {
            Buf::Borrowed(b) => b[self.len..self.len + fragment.len()].copy_from_slice(fragment),
            #[cfg(feature = "alloc")]
            Buf::Owned(v) => {
                v.truncate(self.len);
                v.extend_from_slice(fragment);
            }
        }
    }
}

#[cfg(feature = "alloc")]
impl Reassembly<'static> {
    /// Reassembles into memory of its own, grown as packets need it, up to
    /// `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Reassembly { buf: Buf::Owned(Vec::new()), limit, len: 0, done: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(more: bool, restart: bool) -> Delivery {
        Delivery { channel: 1, more, fin: false, reset: false, restart }
    }

    #[test]
    fn fragments_make_packets_in_both_memories() {
        let mut mem = [0u8; 8];
        let mut a = Reassembly::new(&mut mem);
        let mut b = Reassembly::with_limit(8);
        for r in [&mut a, &mut b] {
            assert_eq!(r.push(&frag(true, false), b"abc"), Reassembled::Partial);
            assert!(r.is_partial());
            assert_eq!(r.push(&frag(false, false), b"de"), Reassembled::Packet(b"abcde"));
            assert!(!r.is_partial());
            assert_eq!(r.push(&frag(false, false), b"xy"), Reassembled::Packet(b"xy"));
            assert_eq!(r.push(&frag(false, false), b""), Reassembled::Packet(b""));
        }
    }

    #[test]
    fn too_long_packets_are_dropped_whole_and_the_next_one_arrives() {
        let mut b = Reassembly::with_limit(4);
        for _ in 0..1000 {
            assert_eq!(b.push(&frag(true, false), b"endless"), Reassembled::Partial);
        }
        assert_eq!(b.push(&frag(false, false), b"!"), Reassembled::TooLong { len: 7001 });
        assert_eq!(b.push(&frag(false, false), b"ok"), Reassembled::Packet(b"ok"));
        let Buf::Owned(v) = &b.buf else { unreachable!() };
        assert!(v.capacity() <= 8, "memory stays bounded: {}", v.capacity());
        let mut mem = [0u8; 4];
        let mut a = Reassembly::new(&mut mem);
        assert_eq!(a.push(&frag(false, false), b"12345"), Reassembled::TooLong { len: 5 });
        assert_eq!(a.push(&frag(false, false), b"1234"), Reassembled::Packet(b"1234"));
    }

    #[test]
    fn a_restart_drops_the_old_sessions_partial_packet() {
        let mut b = Reassembly::with_limit(64);
        assert_eq!(b.push(&frag(true, false), b"old "), Reassembled::Partial);
        assert_eq!(b.push(&frag(false, true), b"new"), Reassembled::Packet(b"new"));
    }
}
