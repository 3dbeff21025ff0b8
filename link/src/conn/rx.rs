//! Spec section 6 (receiver side): the reorder ring, duplicate suppression,
//! in-order delivery, SACK generation and the advertised receive limit.
//!
//! Frames are held in a ring of `W` slots until the application takes them,
//! so the advertised limit (oldest undelivered + W) is also the flow control:
//! an application that stops reading closes the window.
//!
//! Positions in the ring are the wire sequence number plus an offset. After a
//! peer restart the new session's sequence 0 is placed right after what the
//! old session left undelivered, so acknowledged data is still handed over
//! exactly once.

use crate::storage::Buf;
use crate::wire::{flags, AckRepr, MAX_SACK_BYTES};

/// One fragment handed to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The channel it arrived on.
    pub channel: u8,
    /// More fragments of the same packet follow on this channel.
    pub more: bool,
    /// The byte stream on this channel ends here.
    pub fin: bool,
    /// The peer aborted the byte stream on this channel (spec 8.3); the
    /// payload says why. Nothing more of that stream will come.
    pub reset: bool,
    /// The first fragment on this channel from a new peer session (the peer
    /// restarted): drop any partial packet or stream state of this channel,
    /// its rest will never come.
    pub restart: bool,
}

/// What became of an arriving DATA frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accept {
    /// Stored; `in_order` if it was the next one expected.
    New { in_order: bool },
    /// Already held or delivered.
    Duplicate,
    /// Beyond what we advertised.
    OutOfWindow,
}

/// One slot of the receive ring: a fragment's metadata (its bytes live in
/// the arena). Public so a caller can provide the memory.
#[derive(Debug, Clone, Copy)]
pub struct RxSlot {
    present: bool,
    channel: u8,
    flags: u8,
    len: u16,
}

impl RxSlot {
    /// An empty slot, to fill the caller's array with.
    pub const EMPTY: Self = RxSlot { present: false, channel: 0, flags: 0, len: 0 };
}

/// The receiving half of the ARQ.
pub(crate) struct RecvBuffer<'a> {
    slots: Buf<'a, RxSlot>,
    /// The slots' payloads, `n` bytes each.
    data: Buf<'a, u8>,
    n: usize,
    /// Ring position = sequence number + offset.
    offset: u16,
    /// Next position to hand to the application.
    deliver: u16,
    /// First position not yet received (everything before it is in order).
    next: u16,
    /// One past the highest position received.
    highest: u16,
    /// Channels that have delivered a fragment of the current session (256 bits).
    seen: [u32; 8],
    /// Whether a session change happened (the first session needs no marks).
    rebased: bool,
}

impl<'a> RecvBuffer<'a> {
    /// A ring over the caller's memory: `slots` (W of them, a power of two)
    /// and `data` (W times the largest payload), initialised here.
    pub fn new(mut slots: Buf<'a, RxSlot>, data: Buf<'a, u8>) -> Self {
        slots.fill(RxSlot::EMPTY);
        let n = data.len() / slots.len().max(1);
        RecvBuffer {
            slots,
            data,
            n,
            offset: 0,
            deliver: 0,
            next: 0,
            highest: 0,
            seen: [0; 8],
            rebased: false,
        }
    }

    fn w(&self) -> usize {
        self.slots.len()
    }

    /// Slots in the ring: the window.
    pub fn window(&self) -> usize {
        self.w()
    }

    /// Largest payload one slot holds.
    pub fn slot_size(&self) -> usize {
        self.n
    }

    /// Stores a DATA frame.
    pub fn on_data(&mut self, seq: u16, channel: u8, fl: u8, payload: &[u8]) -> Accept {
        let (w, n) = (self.w(), self.n);
        let pos = seq.wrapping_add(self.offset);
        if pos.wrapping_sub(self.deliver) as usize >= w || payload.len() > n {
            let behind = self.next.wrapping_sub(pos);
            return if behind != 0 && behind <= 0x8000 { Accept::Duplicate } else { Accept::OutOfWindow };
        }
        let at = pos as usize % w;
        let slot = &mut self.slots[at];
        if slot.present || pos.wrapping_sub(self.deliver) < self.next.wrapping_sub(self.deliver) {
            return Accept::Duplicate;
        }
        slot.present = true;
        slot.channel = channel;
        slot.flags = fl & (flags::MORE | flags::FIN | flags::RST);
        slot.len = payload.len() as u16;
        self.data[at * n..at * n + payload.len()].copy_from_slice(payload);
        if pos.wrapping_sub(self.deliver) >= self.highest.wrapping_sub(self.deliver) {
            self.highest = pos.wrapping_add(1);
        }
        let in_order = pos == self.next;
        while self.next.wrapping_sub(self.deliver) < w as u16 && self.slots[self.next as usize % w].present {
            if self.next == self.highest {
                break;
            }
            self.next = self.next.wrapping_add(1);
        }
        Accept::New { in_order }
    }

    /// Cumulative ack: the next sequence number expected.
    pub fn cum_ack(&self) -> u16 {
        self.next.wrapping_sub(self.offset)
    }

    /// The receive limit to advertise.
    pub fn limit(&self) -> u16 {
        self.deliver.wrapping_add(self.w() as u16).wrapping_sub(self.offset)
    }

    /// Frames received beyond a hole.
    pub fn has_gap(&self) -> bool {
        self.highest != self.next
    }

    /// In-order frames the application has not taken yet.
    pub fn ready(&self) -> usize {
        self.next.wrapping_sub(self.deliver) as usize
    }

    /// The SACK bitmap for frames after the cumulative ack.
    pub fn sack(&self) -> AckRepr {
        let mut ack = AckRepr::new(self.limit());
        let mut len = 0;
        let span = self.highest.wrapping_sub(self.next) as usize;
        for k in 0..span.saturating_sub(1).min(MAX_SACK_BYTES * 8) {
            let pos = self.next.wrapping_add(1 + k as u16);
            if self.slots[pos as usize % self.w()].present {
                ack.sack[k / 8] |= 1 << (k % 8);
                len = k / 8 + 1;
            }
        }
        ack.sack_len = len as u8;
        ack
    }

    /// The channel of the next in-order fragment, without taking it.
    pub fn peek_channel(&self) -> Option<u8> {
        (self.deliver != self.next).then(|| self.slots[self.deliver as usize % self.w()].channel)
    }

    /// Hands the next in-order fragment to `f` and frees its slot.
    pub fn recv<R>(&mut self, f: impl FnOnce(Delivery, &[u8]) -> R) -> Option<R> {
        if self.deliver == self.next {
            return None;
        }
        let pos = self.deliver;
        let (w, n) = (self.w(), self.n);
        let at = pos as usize % w;
        let slot = &mut self.slots[at];
        slot.present = false;
        self.deliver = self.deliver.wrapping_add(1);
        let ch = slot.channel;
        // Positions at or after `offset` belong to the current session.
        let current = pos.wrapping_sub(self.offset) < 0x8000;
        let bit = 1u32 << (ch % 32);
        let restart = self.rebased && current && self.seen[ch as usize / 32] & bit == 0;
        if current {
            self.seen[ch as usize / 32] |= bit;
        }
        let d = Delivery {
            channel: ch,
            more: slot.flags & flags::MORE != 0,
            fin: slot.flags & flags::FIN != 0,
            reset: slot.flags & flags::RST != 0,
            restart,
        };
        let len = slot.len as usize;
        Some(f(d, &self.data[at * n..at * n + len]))
    }

    /// A new peer session begins: drop frames held beyond a hole (never
    /// acknowledged cumulatively), keep in-order ones for the application, and
    /// map the new sequence 0 to the next free position.
    pub fn rebase(&mut self) {
        let mut pos = self.next;
        while pos != self.highest {
            let at = pos as usize % self.w();
            self.slots[at].present = false;
            pos = pos.wrapping_add(1);
        }
        self.highest = self.next;
        self.offset = self.next;
        self.seen = [0; 8];
        self.rebased = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;

    type Ring = RecvBuffer<'static>;

    /// A ring of 8 slots of 16 bytes, in leaked test memory.
    fn ring() -> Ring {
        let slots: &'static mut [RxSlot] = std::vec![RxSlot::EMPTY; 8].leak();
        let data: &'static mut [u8] = std::vec![0u8; 8 * 16].leak();
        RecvBuffer::new(Buf::Borrowed(slots), Buf::Borrowed(data))
    }

    fn take(b: &mut Ring) -> Option<(u8, heapless::Vec<u8, 16>)> {
        b.recv(|d, p| (d.channel, heapless::Vec::from_slice(p).unwrap()))
    }

    #[test]
    fn reorders_suppresses_duplicates_and_sacks() {
        let mut b = ring();
        assert_eq!(b.on_data(1, 1, 0, b"b"), Accept::New { in_order: false });
        assert_eq!(b.on_data(3, 1, 0, b"d"), Accept::New { in_order: false });
        assert_eq!(b.cum_ack(), 0);
        let s = b.sack();
        assert!(s.sacked(0) && !s.sacked(1) && s.sacked(2));
        assert!(take(&mut b).is_none());
        assert_eq!(b.on_data(0, 1, 0, b"a"), Accept::New { in_order: true });
        assert_eq!(b.cum_ack(), 2);
        assert_eq!(b.on_data(1, 1, 0, b"b"), Accept::Duplicate);
        assert_eq!(take(&mut b).unwrap().1, b"a");
        assert_eq!(take(&mut b).unwrap().1, b"b");
        assert!(take(&mut b).is_none());
        assert_eq!(b.on_data(0, 1, 0, b"a"), Accept::Duplicate, "already delivered");
    }

    #[test]
    fn window_closes_when_application_does_not_read() {
        let mut b = ring();
        for s in 0..8 {
            assert_eq!(b.on_data(s, 1, 0, b"x"), Accept::New { in_order: true });
        }
        assert_eq!(b.limit(), 8);
        assert_eq!(b.on_data(8, 1, 0, b"x"), Accept::OutOfWindow);
        take(&mut b);
        assert_eq!(b.limit(), 9);
        assert_eq!(b.on_data(8, 1, 0, b"x"), Accept::New { in_order: true });
    }

    #[test]
    fn wraps_around_the_sequence_space() {
        let mut b = ring();
        for s in 0..70_000u32 {
            assert_eq!(b.on_data(s as u16, 0, 0, b"w"), Accept::New { in_order: true }, "seq {s}");
            assert!(take(&mut b).is_some());
        }
    }

    #[test]
    fn rebase_keeps_in_order_data_and_drops_the_rest() {
        let mut b = ring();
        b.on_data(0, 1, 0, b"old0");
        b.on_data(2, 1, 0, b"old2");
        b.rebase();
        assert_eq!(b.cum_ack(), 0);
        assert!(!b.has_gap());
        assert_eq!(b.on_data(0, 2, 0, b"new0"), Accept::New { in_order: true });
        assert_eq!(b.on_data(1, 2, 0, b"new1"), Accept::New { in_order: true });
        let flags = |b: &mut Ring| b.recv(|d, _| d.restart).unwrap();
        assert!(!flags(&mut b), "old0 is from the old session");
        assert!(flags(&mut b), "new0 opens the new session on channel 2");
        assert!(!flags(&mut b), "new1 continues it");
        assert!(take(&mut b).is_none());
    }
}
