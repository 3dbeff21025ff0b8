//! Cutting packets and byte streams into the pool (spec 8.1, 8.2): queueing,
//! topping a fragment up from the ones that continue it, splitting one at
//! its first transmission, ending and resetting streams.

use super::{bit_set, SendBuffer, SendError, State, QUEUE_AHEAD};
use crate::event::PacketId;
use crate::wire::flags;

impl SendBuffer<'_> {
    /// Queues a packet split into fragments of at most `payload` bytes.
    pub fn queue_packet(
        &mut self,
        channel: u8,
        priority: u8,
        data: &[u8],
        payload: usize,
    ) -> Result<PacketId, SendError> {
        let payload = payload.clamp(1, self.n);
        let frags = data.len().div_ceil(payload).max(1);
        if frags > self.w() {
            return Err(SendError::TooLarge);
        }
        if frags > self.free || self.queued_on(channel) >= QUEUE_AHEAD {
            return Err(SendError::WouldBlock);
        }
        let packet = self.next_packet;
        self.next_packet = self.next_packet.wrapping_add(1);
        let mut head = 0;
        for k in 0..frags {
            let chunk = &data[(k * payload).min(data.len())..((k + 1) * payload).min(data.len())];
            let i = self.alloc().expect("counted free slots");
            if k == 0 {
                head = i;
            }
            let more = if k + 1 < frags { flags::MORE } else { 0 };
            self.fill(i, channel, priority, more, false, packet, head, chunk);
        }
        self.slots[head].pending = frags as u16;
        Ok(packet)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn fill(
        &mut self,
        i: usize,
        channel: u8,
        priority: u8,
        flags: u8,
        stream: bool,
        packet: PacketId,
        head: usize,
        chunk: &[u8],
    ) {
        let order = self.next_order;
        self.next_order = self.next_order.wrapping_add(1);
        let s = &mut self.slots[i];
        s.state = State::Queued;
        s.channel = channel;
        s.priority = priority;
        s.flags = flags;
        s.stream = stream;
        s.packet = packet;
        s.head = head as u16;
        s.pending = 1;
        s.order = order;
        s.len = chunk.len() as u16;
        self.bytes_mut(i)[..chunk.len()].copy_from_slice(chunk);
        self.queued += 1;
    }

    /// Unsent fragments of `channel`.
    pub(super) fn queued_on(&self, channel: u8) -> usize {
        self.slots.iter().filter(|s| s.state == State::Queued && s.channel == channel).count()
    }

    /// Unsent bytes of `channel`.
    pub(super) fn queued_bytes_on(&self, channel: u8) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state == State::Queued && s.channel == channel)
            .map(|s| usize::from(s.len))
            .sum()
    }

    /// Whether a channel other than `channel` has fragments queued or in flight.
    pub(super) fn others_busy(&self, channel: u8) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s.state, State::Queued | State::InFlight(_)) && s.channel != channel)
    }

    /// The queued fragment that continues fragment `i`: the next of the same
    /// packet, or the next of the same unfinished stream.
    pub(super) fn continuation(&self, i: usize) -> Option<usize> {
        let s = &self.slots[i];
        let last =
            if s.stream { s.flags & (flags::FIN | flags::RST) != 0 } else { s.flags & flags::MORE == 0 };
        if last {
            return None;
        }
        let age = s.order.wrapping_sub(self.next_order);
        self.slots
            .iter()
            .enumerate()
            .filter(|(j, t)| {
                *j != i
                    && t.state == State::Queued
                    && t.flags & flags::RST == 0
                    && t.channel == s.channel
                    && t.stream == s.stream
                    && (s.stream || t.packet == s.packet)
                    && t.order.wrapping_sub(self.next_order) > age
            })
            .min_by_key(|(_, t)| t.order.wrapping_sub(self.next_order))
            .map(|(j, _)| j)
    }

    /// Tops queued fragment `i` up to `size` bytes from the fragments that
    /// continue it, so a cut mid-packet leaves no short frame behind.
    pub(super) fn fill_to(&mut self, i: usize, size: usize) {
        while usize::from(self.slots[i].len) < size {
            let Some(j) = self.continuation(i) else { return };
            let (have, more) = (usize::from(self.slots[i].len), usize::from(self.slots[j].len));
            let take = (size - have).min(more);
            self.move_bytes(j, 0, i, have, take);
            self.move_bytes(j, take, j, 0, more - take);
            self.slots[i].len += take as u16;
            self.slots[j].len -= take as u16;
            if self.slots[j].len == 0 {
                // All of `j` moved (or it was an empty FIN): `i` now ends where `j` ended.
                self.slots[i].flags = self.slots[j].flags;
                let (stream, head) = (self.slots[j].stream, usize::from(self.slots[j].head));
                self.release(j);
                if !stream {
                    self.slots[head].pending -= 1;
                }
            }
        }
    }

    /// Cuts queued fragment `i` after `at` bytes; the rest moves to free slot
    /// `j`, which takes `i`'s place in the queue (same channel, priority and
    /// age) and its flags (MORE, FIN), while `i` now says more follows.
    pub(super) fn split(&mut self, i: usize, j: usize, at: usize) {
        let len = usize::from(self.slots[i].len);
        self.move_bytes(i, at, j, 0, len - at);
        let (mut a, mut b) = (self.slots[i], self.slots[j]);
        b.len = (len - at) as u16;
        b.state = State::Queued;
        b.channel = a.channel;
        b.priority = a.priority;
        b.flags = a.flags;
        b.stream = a.stream;
        b.order = a.order;
        b.pending = 1;
        a.len = at as u16;
        if a.stream {
            // A stream fragment is its own unit: the FIN moves to the rest.
            let packet = self.next_packet;
            self.next_packet = self.next_packet.wrapping_add(1);
            b.packet = packet;
            b.head = j as u16;
            a.flags &= !flags::FIN;
        } else {
            b.packet = a.packet;
            b.head = a.head;
            a.flags = flags::MORE;
        }
        self.slots[i] = a;
        self.slots[j] = b;
        if !a.stream {
            self.slots[usize::from(a.head)].pending += 1;
        }
        self.queued += 1;
    }

    /// The newest queued stream slot of `channel`, if any.
    pub(super) fn stream_tail(&self, channel: u8) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state == State::Queued && s.stream && s.channel == channel)
            .max_by_key(|(_, s)| s.order.wrapping_sub(self.next_order))
            .map(|(i, _)| i)
    }

    /// Appends stream bytes, topping up the newest queued fragment first, in
    /// fragments of at most `payload` bytes, while `channel` holds fewer than
    /// `ahead` unsent bytes (and [`QUEUE_AHEAD`] fragments). Returns how many
    /// bytes were taken.
    pub fn write_stream(
        &mut self,
        channel: u8,
        priority: u8,
        data: &[u8],
        payload: usize,
        ahead: usize,
    ) -> usize {
        let payload = payload.clamp(1, self.n);
        let mut room = ahead.saturating_sub(self.queued_bytes_on(channel));
        let mut taken = 0;
        if let Some(i) = self.stream_tail(channel) {
            let s = self.slots[i];
            if s.flags & (flags::FIN | flags::RST) == 0 {
                let add = payload.saturating_sub(s.len as usize).min(data.len()).min(room);
                let at = s.len as usize;
                self.bytes_mut(i)[at..at + add].copy_from_slice(&data[..add]);
                self.slots[i].len += add as u16;
                taken = add;
                room -= add;
            } else {
                return 0;
            }
        }
        let mut frags = self.queued_on(channel);
        while taken < data.len() && frags < QUEUE_AHEAD && room > 0 {
            let Some(i) = self.alloc() else { break };
            frags += 1;
            let n = payload.min(data.len() - taken).min(room);
            room -= n;
            let packet = self.next_packet;
            self.next_packet = self.next_packet.wrapping_add(1);
            self.fill(i, channel, priority, 0, true, packet, i, &data[taken..taken + n]);
            taken += n;
        }
        if taken > 0 {
            bit_set(&mut self.stream_used, channel);
        }
        taken
    }

    /// Marks the end of the stream on `channel`: `None` if the pool is full,
    /// else whether a new end was marked (false: it already was).
    pub fn finish_stream(&mut self, channel: u8, priority: u8) -> Option<bool> {
        if let Some(i) = self.stream_tail(channel) {
            let s = &mut self.slots[i];
            let added = s.flags & (flags::FIN | flags::RST) == 0;
            if added {
                s.flags |= flags::FIN;
            }
            return Some(added);
        }
        let i = self.alloc()?;
        let packet = self.next_packet;
        self.next_packet = self.next_packet.wrapping_add(1);
        self.fill(i, channel, priority, flags::FIN, true, packet, i, &[]);
        bit_set(&mut self.stream_used, channel);
        Some(true)
    }

    /// Aborts the stream on `channel`: its unsent bytes are dropped and a
    /// fragment with RST and `reason` as payload is queued in their place
    /// (spec 8.3). Fragments already sent are still completed, so the peer
    /// sees every byte it may have been told of, then the reset. False if
    /// the pool is full.
    pub fn abort_stream(&mut self, channel: u8, priority: u8, reason: &[u8]) -> bool {
        for i in 0..self.w() {
            let s = &self.slots[i];
            if s.state == State::Queued && s.stream && s.channel == channel {
                self.release(i);
            }
        }
        let Some(i) = self.alloc() else { return false };
        let packet = self.next_packet;
        self.next_packet = self.next_packet.wrapping_add(1);
        self.fill(i, channel, priority, flags::RST, true, packet, i, reason);
        bit_set(&mut self.stream_used, channel);
        true
    }
}
