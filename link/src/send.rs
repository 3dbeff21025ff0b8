//! Spec section 6 (sender side): the transmit pool, sequence numbers,
//! SACK processing, loss detection and retransmission timers.
//!
//! The pool holds `W` fragment slots. A packet is split into fragments when it
//! is queued; a fragment gets its sequence number only when first sent, which
//! lets a higher-priority channel overtake bulk data still waiting in the pool.
//! Sequence numbers in flight always lie within `W` of the oldest unacknowledged
//! one, so `seq % W` indexes them (W is a power of two, so this holds across the
//! 16-bit wrap).

use crate::event::{Event, PacketId};
use crate::time::Instant;
use crate::wire::{flags, seq_lt, AckRepr};
use core::time::Duration;

const NONE: u16 = u16::MAX;

/// Unsent fragments a channel may hold. Data beyond this stays with the
/// application: queued bytes wait ahead of other channels' data of the same
/// priority (FIFO), so a channel must not bank much of it.
pub const QUEUE_AHEAD: usize = 4;

/// How long frames stay at the shared size ([`Cut::shared`]) after the line was
/// last shared by two channels: a typing user's next keystroke comes within it,
/// so an interactive session keeps short frames while a bulk one runs beside it.
pub const SHARED_HOLD: Duration = Duration::from_secs(1);

/// The payload sizes new fragments are cut to at their first transmission.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cut {
    /// While one channel has the line to itself.
    pub alone: usize,
    /// While another channel has data queued or in flight, or had within
    /// [`SHARED_HOLD`]: a frame on the line delays the other channel's next
    /// packet by its own length, so it is kept short.
    pub shared: usize,
}

/// Why [`Link::send`](crate::Link::send) refused a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Not enough free slots right now; retry after acknowledgements arrive.
    WouldBlock,
    /// The packet needs more fragments than the whole pool holds.
    TooLarge,
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SendError::WouldBlock => f.write_str("send window full, retry after acknowledgements"),
            SendError::TooLarge => f.write_str("packet larger than the link's send window"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InFlight {
    seq: u16,
    /// When the latest copy left (or, with the line rate unknown, was handed
    /// to the driver): the retransmission timer and RTT samples count from here.
    sent_at: Instant,
    /// The same for the first copy: a spurious retransmission's sample.
    first_sent: Instant,
    /// When the second frame sent after this one left: its acknowledgement,
    /// or the one between, also acknowledges this frame, so the timer waits
    /// for them too (only with a known line rate; spec 6.3).
    covered_until: Instant,
    /// Position in the order of all transmissions (first or repeated).
    tx_order: u32,
    /// `tx_order` of the first transmission. An acknowledgement of a frame
    /// sent more than once may be for any copy; crediting it to the first
    /// keeps the loss detector from declaring every frame sent in between lost.
    first_tx: u32,
    retransmits: u16,
    /// Bytes the peer had acknowledged when this copy left, and when the
    /// last of them was acknowledged: its acknowledgement then gives a
    /// delivery-rate sample (spec 6.8).
    prior_delivered: u64,
    prior_at: Instant,
    /// Judged lost; waiting to be sent again.
    needs_tx: bool,
    /// Reported received by SACK; kept until the cumulative ack passes it, so
    /// `Acked` always means "received in order".
    sacked: bool,
}

impl InFlight {
    /// When the retransmission timer of this frame fires. `progress` is when
    /// the peer last acknowledged something new, if that restarts timers: on
    /// a path of unknown rate a frame behind others in a queue is not late
    /// while the ones ahead of it are still being acknowledged (spec 6.8).
    fn expiry(&self, rto: Duration, progress: Option<Instant>) -> Instant {
        self.sent_at.max(self.covered_until).max(progress.unwrap_or(Instant::ZERO)) + rto
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Acked,
    Unconfirmed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Queued,
    InFlight(InFlight),
    /// A packet's head slot once its fate is known, until it is reported.
    Done(Outcome),
}

#[derive(Debug, Clone)]
struct Slot<const N: usize> {
    state: State,
    channel: u8,
    priority: u8,
    /// MORE / FIN as they go on the wire.
    flags: u8,
    /// Byte-stream fragment: freed silently when acknowledged.
    stream: bool,
    packet: PacketId,
    /// Index of the packet's first fragment, which carries the bookkeeping.
    head: u16,
    /// Head only: fragments not yet acknowledged.
    pending: u16,
    /// Queue order, for FIFO within a priority.
    order: u32,
    len: u16,
    data: [u8; N],
}

impl<const N: usize> Slot<N> {
    const EMPTY: Self = Slot {
        state: State::Free,
        channel: 0,
        priority: 0,
        flags: 0,
        stream: false,
        packet: 0,
        head: 0,
        pending: 0,
        order: 0,
        len: 0,
        data: [0; N],
    };
}

/// A DATA frame chosen for transmission.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pick {
    pub slot: usize,
    pub seq: u16,
    pub retransmission: bool,
}

/// What an ACK changed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AckOutcome {
    /// A round-trip sample from a frame sent only once (Karn's rule).
    pub rtt: Option<Duration>,
    /// Frames newly judged lost by SACK evidence.
    pub lost: u32,
    /// Frames newly acknowledged (cumulatively or selectively).
    pub acked: u32,
    /// Of those, frames carrying at least the `full` payload passed to `on_ack`:
    /// the evidence that frames of the current size get through.
    pub acked_full: u32,
    /// Whether the cumulative ack advanced.
    pub advanced: bool,
    /// Acknowledged frames whose acknowledgement came too soon to be for their
    /// latest copy: an earlier copy arrived, so they were retransmitted for nothing.
    pub spurious: u32,
    /// A delivery-rate sample: bytes acknowledged over an interval (spec 6.8).
    pub rate_sample: Option<(u64, Duration)>,
}

/// The sending half of the ARQ.
pub(crate) struct SendBuffer<const W: usize, const N: usize> {
    slots: [Slot<N>; W],
    by_seq: [u16; W],
    next_seq: u16,
    una: u16,
    next_order: u32,
    next_packet: PacketId,
    tx_counter: u32,
    highest_acked_tx: u32,
    free: usize,
    queued: usize,
    /// Bytes of frames sent and neither acknowledged nor selectively acknowledged.
    in_flight_bytes: usize,
    /// Of those, bytes of frames judged lost and not yet sent again: they are
    /// no longer in the path (spec 6.8 counts what is).
    lost_bytes: usize,
    /// Shortest RTT sample of a DATA frame: no acknowledgement of a copy can
    /// arrive sooner after it left, so one that does is for an earlier copy.
    min_rtt: Option<Duration>,
    /// Channel of the last fragment sent for the first time.
    last_channel: Option<u8>,
    /// Until when fragments are cut to the shared size.
    shared_until: Option<Instant>,
    /// Channels that carried stream data this session (a 256-bit set).
    stream_used: [u32; 8],
    /// Channels whose stream was cut by a session change, to report.
    stream_aborted: [u32; 8],
    /// Payload bytes acknowledged this session, and when the last were.
    delivered: u64,
    delivered_at: Instant,
    /// When the peer last acknowledged something new.
    progress: Instant,
    /// Whether acknowledgements restart retransmission timers (spec 6.8).
    pub progress_restarts_timers: bool,
}

/// Two distinct elements of `v`, both mutable.
fn pair_mut<T>(v: &mut [T], i: usize, j: usize) -> (&mut T, &mut T) {
    if i < j {
        let (l, r) = v.split_at_mut(j);
        (&mut l[i], &mut r[0])
    } else {
        let (l, r) = v.split_at_mut(i);
        (&mut r[0], &mut l[j])
    }
}

fn bit_set(set: &mut [u32; 8], ch: u8) {
    set[ch as usize / 32] |= 1 << (ch % 32);
}

impl<const W: usize, const N: usize> SendBuffer<W, N> {
    pub fn new() -> Self {
        SendBuffer {
            slots: [const { Slot::EMPTY }; W],
            by_seq: [NONE; W],
            next_seq: 0,
            una: 0,
            next_order: 0,
            next_packet: 0,
            tx_counter: 0,
            highest_acked_tx: 0,
            free: W,
            queued: 0,
            in_flight_bytes: 0,
            lost_bytes: 0,
            min_rtt: None,
            last_channel: None,
            shared_until: None,
            stream_used: [0; 8],
            stream_aborted: [0; 8],
            delivered: 0,
            delivered_at: Instant::ZERO,
            progress: Instant::ZERO,
            progress_restarts_timers: false,
        }
    }

    /// When timers count from, beyond each frame's departure.
    fn progress(&self) -> Option<Instant> {
        self.progress_restarts_timers.then_some(self.progress)
    }

    /// Free slots.
    pub fn free(&self) -> usize {
        self.free
    }

    /// Frames sent and not yet cumulatively acknowledged.
    pub fn in_flight(&self) -> u16 {
        self.next_seq.wrapping_sub(self.una)
    }

    /// Whether the line counts as shared between channels now (fragments are
    /// cut to the shared size; spec 6.6).
    pub fn is_shared(&self, now: Instant) -> bool {
        self.shared_until.is_some_and(|t| now < t)
    }

    /// Whether fragments wait for their first transmission.
    pub fn has_queued(&self) -> bool {
        self.queued > 0
    }

    /// Nothing queued, in flight or waiting to be reported.
    pub fn is_idle(&self) -> bool {
        self.free == W
    }

    fn alloc(&mut self) -> Option<usize> {
        let i = self.slots.iter().position(|s| s.state == State::Free)?;
        self.free -= 1;
        Some(i)
    }

    fn release(&mut self, i: usize) {
        if self.slots[i].state == State::Queued {
            self.queued -= 1;
        }
        self.slots[i].state = State::Free;
        self.free += 1;
    }

    /// Queues a packet split into fragments of at most `payload` bytes.
    pub fn queue_packet(
        &mut self,
        channel: u8,
        priority: u8,
        data: &[u8],
        payload: usize,
    ) -> Result<PacketId, SendError> {
        let payload = payload.clamp(1, N);
        let frags = data.len().div_ceil(payload).max(1);
        if frags > W {
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
    fn fill(
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
        s.data[..chunk.len()].copy_from_slice(chunk);
        self.queued += 1;
    }

    /// Unsent fragments of `channel`.
    fn queued_on(&self, channel: u8) -> usize {
        self.slots.iter().filter(|s| s.state == State::Queued && s.channel == channel).count()
    }

    /// Unsent bytes of `channel`.
    fn queued_bytes_on(&self, channel: u8) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state == State::Queued && s.channel == channel)
            .map(|s| usize::from(s.len))
            .sum()
    }

    /// Whether a channel other than `channel` has fragments queued or in flight.
    fn others_busy(&self, channel: u8) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s.state, State::Queued | State::InFlight(_)) && s.channel != channel)
    }

    /// The queued fragment that continues fragment `i`: the next of the same
    /// packet, or the next of the same unfinished stream.
    fn continuation(&self, i: usize) -> Option<usize> {
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
    fn fill_to(&mut self, i: usize, size: usize) {
        while usize::from(self.slots[i].len) < size {
            let Some(j) = self.continuation(i) else { return };
            let (a, b) = pair_mut(&mut self.slots, i, j);
            let (have, more) = (usize::from(a.len), usize::from(b.len));
            let take = (size - have).min(more);
            a.data[have..have + take].copy_from_slice(&b.data[..take]);
            b.data.copy_within(take..more, 0);
            a.len += take as u16;
            b.len -= take as u16;
            if b.len == 0 {
                // All of `j` moved (or it was an empty FIN): `i` now ends where `j` ended.
                a.flags = b.flags;
                let (stream, head) = (b.stream, usize::from(b.head));
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
    fn split(&mut self, i: usize, j: usize, at: usize) {
        let (a, b) = pair_mut(&mut self.slots, i, j);
        let len = usize::from(a.len);
        b.data[..len - at].copy_from_slice(&a.data[at..len]);
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
            let h = usize::from(a.head);
            self.slots[h].pending += 1;
        }
        self.queued += 1;
    }

    /// The newest queued stream slot of `channel`, if any.
    fn stream_tail(&self, channel: u8) -> Option<usize> {
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
        let payload = payload.clamp(1, N);
        let mut room = ahead.saturating_sub(self.queued_bytes_on(channel));
        let mut taken = 0;
        if let Some(i) = self.stream_tail(channel) {
            let s = &mut self.slots[i];
            if s.flags & (flags::FIN | flags::RST) == 0 {
                let add = payload.saturating_sub(s.len as usize).min(data.len()).min(room);
                let at = s.len as usize;
                s.data[at..at + add].copy_from_slice(&data[..add]);
                s.len += add as u16;
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
        for i in 0..W {
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

    /// Payload and wire fields of a slot.
    pub fn frame_of(&self, i: usize) -> (u8, u8, &[u8]) {
        let s = &self.slots[i];
        (s.channel, s.flags, &s.data[..s.len as usize])
    }

    /// Chooses the next DATA frame — a lost frame first (oldest first), else the
    /// most urgent queued fragment if the window allows, cut to the size `cut`
    /// gives — and records it as sent at `now`.
    pub fn pick(&mut self, now: Instant, peer_limit: u16, max_bytes: usize, cut: Cut) -> Option<Pick> {
        let pick = self.choose(now, peer_limit, max_bytes, cut)?;
        if self.in_flight_bytes == 0 {
            // Nothing in flight: an idle gap must not count as delivery time.
            self.delivered_at = now;
        }
        if !pick.retransmission {
            self.in_flight_bytes += usize::from(self.slots[pick.slot].len);
        }
        let (delivered, delivered_at) = (self.delivered, self.delivered_at);
        self.tx_counter = self.tx_counter.wrapping_add(1);
        if let State::InFlight(f) = &mut self.slots[pick.slot].state {
            f.sent_at = now;
            f.tx_order = self.tx_counter;
            if !pick.retransmission {
                f.first_tx = self.tx_counter;
                f.first_sent = now;
            }
            if pick.retransmission {
                self.lost_bytes -= usize::from(self.slots[pick.slot].len);
            }
            f.needs_tx = false;
            f.prior_delivered = delivered;
            f.prior_at = delivered_at;
            if pick.retransmission {
                f.retransmits = f.retransmits.saturating_add(1);
            }
        }
        Some(pick)
    }

    /// How many times the frame in `slot` was sent before its latest copy.
    pub fn repeats(&self, slot: usize) -> u16 {
        match self.slots[slot].state {
            State::InFlight(f) => f.retransmits,
            _ => 0,
        }
    }

    /// Moves the send time of the frame just picked from `slot` to `at`, when
    /// its last byte is expected to leave: on a line of known rate a frame
    /// waits behind the bytes queued ahead of it, and that wait is neither
    /// round trip nor reason to time out.
    pub fn departed(&mut self, slot: usize, at: Instant) {
        let State::InFlight(f) = &mut self.slots[slot].state else { return };
        f.sent_at = at;
        if f.retransmits == 0 {
            f.first_sent = at;
        }
        // A lost acknowledgement is made good by the next frame's, one frame
        // time later: the two frames sent before this one wait for it.
        let order = f.tx_order;
        for s in self.slots.iter_mut() {
            if let State::InFlight(g) = &mut s.state {
                if (1..=2).contains(&order.wrapping_sub(g.tx_order)) {
                    g.covered_until = g.covered_until.max(at);
                }
            }
        }
    }

    fn choose(&mut self, now: Instant, peer_limit: u16, max_bytes: usize, cut: Cut) -> Option<Pick> {
        let mut best: Option<(u16, usize)> = None;
        for (i, s) in self.slots.iter().enumerate() {
            if let State::InFlight(f) = s.state {
                if f.needs_tx {
                    let d = f.seq.wrapping_sub(self.una);
                    if best.is_none_or(|(bd, _)| d < bd) {
                        best = Some((d, i));
                    }
                }
            }
        }
        // On a path paced by its measured rate (spec 6.8) the bound counts
        // what is in the path, repeats included, so a burst of repeats cannot
        // fill its buffers either; on a line of known rate repeats are never
        // held and the bound is on first transmissions.
        let paced = self.progress_restarts_timers;
        let pipe = if paced { self.in_flight_bytes - self.lost_bytes } else { self.in_flight_bytes };
        let full = max_bytes > 0 && pipe >= max_bytes;
        if let Some((_, i)) = best {
            if paced && full {
                return None;
            }
            let State::InFlight(f) = self.slots[i].state else { unreachable!() };
            return Some(Pick { slot: i, seq: f.seq, retransmission: true });
        }
        if !self.window_open(peer_limit) {
            return None;
        }
        // A line with a known rate needs only its round trip's worth in flight;
        // more just waits in buffers, inflating the RTT the timers depend on.
        if full {
            return None;
        }
        // Highest priority first; within a priority, a channel other than the
        // one just served goes ahead, so a keystroke or a request does not
        // queue behind another channel's backlog of equal priority (spec 8);
        // within a channel, oldest first (its bytes stay in order).
        let mut best: Option<(u8, bool, u32, usize)> = None;
        for (i, s) in self.slots.iter().enumerate() {
            if s.state == State::Queued {
                let age = s.order.wrapping_sub(self.next_order); // older = smaller
                let other = self.last_channel != Some(s.channel);
                let better = |&(p, o, a, _): &(u8, bool, u32, usize)| {
                    (s.priority, other, core::cmp::Reverse(age)) > (p, o, core::cmp::Reverse(a))
                };
                if best.as_ref().is_none_or(better) {
                    best = Some((s.priority, other, age, i));
                }
            }
        }
        let (_, _, _, i) = best?;
        // Fragments are cut to the size wanted now, not the one of when they
        // were queued: the sizer may have moved since, and the line may have
        // become shared (spec 6.6).
        let channel = self.slots[i].channel;
        if self.others_busy(channel) || self.last_channel.is_some_and(|c| c != channel) {
            self.shared_until = Some(now + SHARED_HOLD);
        }
        self.last_channel = Some(channel);
        let shared = self.shared_until.is_some_and(|t| now < t);
        let size = if shared { cut.shared } else { cut.alone }.clamp(1, N);
        self.fill_to(i, size);
        // A reset's reason is no stream data: it goes whole (it is at most
        // MIN_PAYLOAD bytes, which every peer accepts).
        let reset = self.slots[i].flags & flags::RST != 0;
        if usize::from(self.slots[i].len) > size && !reset {
            match self.alloc() {
                Some(j) => self.split(i, j, size),
                // No slot for the rest: wait until an acknowledgement frees one,
                // unless nothing is in flight to bring it. The fragment then goes
                // as it is, which the peer accepts (it was cut within the limit).
                None if self.in_flight() > 0 => return None,
                None => {}
            }
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.by_seq[seq as usize % W] = i as u16;
        self.queued -= 1;
        self.slots[i].state = State::InFlight(InFlight {
            seq,
            sent_at: Instant::ZERO,
            first_sent: Instant::ZERO,
            covered_until: Instant::ZERO,
            tx_order: 0,
            first_tx: 0,
            retransmits: 0,
            prior_delivered: 0,
            prior_at: Instant::ZERO,
            needs_tx: true,
            sacked: false,
        });
        Some(Pick { slot: i, seq, retransmission: false })
    }

    /// Whether a new sequence number may be used now.
    pub fn window_open(&self, peer_limit: u16) -> bool {
        (self.in_flight() as usize) < W && seq_lt(self.next_seq, peer_limit)
    }

    /// Whether the peer's advertised limit (not our own pool) stops new frames.
    pub fn blocked_by_peer(&self, peer_limit: u16) -> bool {
        !seq_lt(self.next_seq, peer_limit)
    }

    /// Applies a cumulative ack and, for ACK frames, a SACK bitmap.
    pub fn on_ack(
        &mut self,
        now: Instant,
        ack: u16,
        sack: Option<&AckRepr>,
        reorder: u8,
        full: u16,
    ) -> AckOutcome {
        let mut out = AckOutcome::default();
        // A cumulative ack must lie in [una, next_seq]; anything else is stale.
        if ack.wrapping_sub(self.una) > self.in_flight() {
            return out;
        }
        let mut newest: Option<(u32, Duration)> = None;
        let min_rtt = self.min_rtt;
        let mut spurious = 0;
        // The newest frame sent once among those acknowledged now: the
        // delivery-rate sample is taken from its departure state (spec 6.8).
        let mut rate_from: Option<(u64, Instant)> = None;
        let mut sample = |f: &InFlight, highest: &mut u32| {
            if f.retransmits == 0 && rate_from.is_none_or(|(d, _)| f.prior_delivered >= d) {
                rate_from = Some((f.prior_delivered, f.prior_at));
            }
            let evidence = if f.retransmits == 0 { f.tx_order } else { f.first_tx };
            if evidence.wrapping_sub(*highest) < 0x8000_0000 {
                *highest = evidence;
            }
            // Karn's rule: only a frame sent once tells which copy was acknowledged ...
            let mut rtt = (f.retransmits == 0).then(|| now.since(f.sent_at));
            // ... or one whose acknowledgement came sooner after its latest copy left
            // than any acknowledgement ever took: that was for an earlier copy, and
            // with one earlier copy the sample is unambiguous. Without it a timer
            // that fires before every acknowledgement (too short for the queue on a
            // slow line) would retransmit every frame and never learn (spec 6.4).
            if f.retransmits > 0 && now < f.sent_at + min_rtt.unwrap_or(Duration::ZERO) {
                spurious += 1;
                if f.retransmits == 1 {
                    rtt = Some(now.since(f.first_sent));
                }
            }
            if let Some(rtt) = rtt {
                if newest.is_none_or(|(o, _)| evidence > o) {
                    newest = Some((evidence, rtt));
                }
            }
        };
        while self.una != ack {
            let at = self.una as usize % W;
            let i = core::mem::replace(&mut self.by_seq[at], NONE);
            if i != NONE {
                if let State::InFlight(f) = self.slots[i as usize].state {
                    if !f.sacked {
                        self.in_flight_bytes -= usize::from(self.slots[i as usize].len);
                        if f.needs_tx {
                            self.lost_bytes -= usize::from(self.slots[i as usize].len);
                        }
                        self.delivered += u64::from(self.slots[i as usize].len);
                        sample(&f, &mut self.highest_acked_tx);
                        out.acked += 1;
                        out.acked_full += u32::from(self.slots[i as usize].len >= full);
                    }
                    self.complete(i as usize);
                }
            }
            self.una = self.una.wrapping_add(1);
            out.advanced = true;
        }
        if let Some(sack) = sack {
            for k in 0..sack.sack_len as usize * 8 {
                if !sack.sacked(k) {
                    continue;
                }
                let seq = ack.wrapping_add(1 + k as u16);
                if seq.wrapping_sub(self.una) >= self.in_flight() {
                    break;
                }
                let i = self.by_seq[seq as usize % W];
                if i == NONE {
                    continue;
                }
                let len = self.slots[i as usize].len;
                let full_size = len >= full;
                if let State::InFlight(f) = &mut self.slots[i as usize].state {
                    if !f.sacked {
                        self.in_flight_bytes -= usize::from(len);
                        if f.needs_tx {
                            self.lost_bytes -= usize::from(len);
                        }
                        self.delivered += u64::from(len);
                        f.sacked = true;
                        f.needs_tx = false;
                        out.acked += 1;
                        out.acked_full += u32::from(full_size);
                        let copy = *f;
                        sample(&copy, &mut self.highest_acked_tx);
                    }
                }
            }
        }
        out.rtt = newest.map(|(_, d)| d);
        out.spurious = spurious;
        if out.acked > 0 {
            self.delivered_at = now;
            self.progress = now;
            out.rate_sample = rate_from.map(|(d, at)| (self.delivered - d, now.since(at)));
        }
        if let Some(rtt) = out.rtt {
            self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        }
        // Loss detection by transmission order: a frame is lost once one sent
        // `reorder` transmissions after it has been acknowledged.
        let threshold = u32::from(reorder.max(1));
        for s in self.slots.iter_mut() {
            if let State::InFlight(f) = &mut s.state {
                if !f.sacked && !f.needs_tx {
                    let gap = self.highest_acked_tx.wrapping_sub(f.tx_order);
                    if (threshold..0x8000_0000).contains(&gap) {
                        f.needs_tx = true;
                        self.lost_bytes += usize::from(s.len);
                        out.lost += 1;
                    }
                }
            }
        }
        out
    }

    /// A fragment was received in order by the peer.
    fn complete(&mut self, i: usize) {
        let (stream, head) = (self.slots[i].stream, self.slots[i].head as usize);
        if stream {
            if self.slots[i].flags & (flags::FIN | flags::RST) != 0 {
                // The stream ended (or was reset) and the peer has all of it: nothing to abort.
                let ch = self.slots[i].channel;
                self.stream_used[ch as usize / 32] &= !(1 << (ch % 32));
            }
            self.release(i);
            return;
        }
        let h = &mut self.slots[head];
        h.pending = h.pending.saturating_sub(1);
        let done = h.pending == 0;
        if i == head {
            self.slots[i].state = State::Done(Outcome::Acked);
        } else {
            self.release(i);
        }
        if done {
            self.slots[head].state = State::Done(Outcome::Acked);
        }
    }

    /// When the oldest timer-eligible frame times out.
    pub fn rto_deadline(&self, rto: Duration) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                State::InFlight(f) if !f.sacked && !f.needs_tx => Some(f.expiry(rto, self.progress())),
                _ => None,
            })
            .min()
    }

    /// Marks every frame whose timer expired as lost; returns how many. On a
    /// path paced by its measured rate (spec 6.8), before any DATA frame's
    /// round trip was measured, only the oldest: the timer then rests on the
    /// HELLO's round trip, which says nothing of how long frames wait in the
    /// path's buffers, and resending everything there would only queue it
    /// twice (the acknowledgements that follow measure the real round trip).
    pub fn on_timeout(&mut self, now: Instant, rto: Duration) -> u32 {
        let progress = self.progress();
        let only_oldest = self.progress_restarts_timers && self.min_rtt.is_none();
        let una = self.una;
        let mut oldest: Option<(u16, usize)> = None;
        let mut n = 0;
        for (i, s) in self.slots.iter_mut().enumerate() {
            if let State::InFlight(f) = &mut s.state {
                if !f.sacked && !f.needs_tx && f.expiry(rto, progress) <= now {
                    if only_oldest {
                        let d = f.seq.wrapping_sub(una);
                        if oldest.is_none_or(|(o, _)| d < o) {
                            oldest = Some((d, i));
                        }
                    } else {
                        f.needs_tx = true;
                        self.lost_bytes += usize::from(s.len);
                        n += 1;
                    }
                }
            }
        }
        if let Some((_, i)) = oldest {
            if let State::InFlight(f) = &mut self.slots[i].state {
                f.needs_tx = true;
                self.lost_bytes += usize::from(self.slots[i].len);
                n = 1;
            }
            // The others' timers start again.
            self.progress = now;
        }
        n
    }

    /// The session ended: every packet not fully acknowledged — in flight or
    /// still queued — becomes `Unconfirmed`, stream data is dropped, and
    /// sequence numbers start again at zero. Nothing of one session leaks into
    /// the next: a request queued for the old peer would reach the new one out
    /// of context (a file transfer's data ahead of the new peer's handshake).
    pub fn reset(&mut self) {
        for i in 0..W {
            let touched = match self.slots[i].state {
                State::InFlight(_) | State::Queued => true,
                State::Done(Outcome::Acked) => self.slots[i].pending > 0,
                _ => false,
            };
            if touched && !self.slots[i].stream {
                let h = self.slots[i].head as usize;
                if self.slots[h].state == State::Queued {
                    self.queued -= 1;
                }
                self.slots[h].state = State::Done(Outcome::Unconfirmed);
                self.slots[h].pending = 0;
            }
        }
        for i in 0..W {
            let s = &self.slots[i];
            let h = s.head as usize;
            let orphan = matches!(s.state, State::Queued | State::InFlight(_))
                && h != i
                && self.slots[h].state == State::Done(Outcome::Unconfirmed)
                && self.slots[h].packet == s.packet;
            if s.stream && s.state != State::Free || orphan {
                self.release(i);
            }
        }
        for k in 0..8 {
            self.stream_aborted[k] |= core::mem::take(&mut self.stream_used[k]);
        }
        self.by_seq = [NONE; W];
        self.next_seq = 0;
        self.una = 0;
        self.in_flight_bytes = 0;
        self.lost_bytes = 0;
        self.highest_acked_tx = self.tx_counter;
        self.delivered = 0;
    }

    /// Withdraws queued fragments longer than `max` (cut before the peer's limit
    /// was known, and never sent): their packets are reported `Unconfirmed` and
    /// their streams aborted rather than sent to a peer that would drop them.
    pub fn withdraw_oversized(&mut self, max: usize) {
        for i in 0..W {
            let s = &self.slots[i];
            if s.state != State::Queued || (s.len as usize) <= max {
                continue;
            }
            if s.stream {
                let ch = s.channel;
                self.stream_aborted[ch as usize / 32] |= 1 << (ch % 32);
                self.stream_used[ch as usize / 32] &= !(1 << (ch % 32));
                for j in 0..W {
                    if self.slots[j].stream
                        && self.slots[j].channel == ch
                        && self.slots[j].state == State::Queued
                    {
                        self.release(j);
                    }
                }
            } else {
                let (h, packet) = (s.head as usize, s.packet);
                for j in 0..W {
                    let t = &self.slots[j];
                    if j != h && !t.stream && t.packet == packet && t.state != State::Free {
                        self.release(j);
                    }
                }
                if self.slots[h].state == State::Queued {
                    self.queued -= 1;
                }
                self.slots[h].state = State::Done(Outcome::Unconfirmed);
                self.slots[h].pending = 0;
            }
        }
    }

    /// Next packet or stream outcome to report, freeing its slot.
    pub fn poll_report(&mut self) -> Option<Event> {
        for k in 0..8 {
            if self.stream_aborted[k] != 0 {
                let b = self.stream_aborted[k].trailing_zeros();
                self.stream_aborted[k] &= !(1 << b);
                return Some(Event::StreamAborted { channel: (k * 32) as u8 + b as u8 });
            }
        }
        let mut best: Option<(u32, usize)> = None;
        for (i, s) in self.slots.iter().enumerate() {
            if matches!(s.state, State::Done(_)) && s.pending == 0 {
                let age = s.packet.wrapping_sub(self.next_packet);
                if best.is_none_or(|(a, _)| age < a) {
                    best = Some((age, i));
                }
            }
        }
        let (_, i) = best?;
        let s = &self.slots[i];
        let ev = match s.state {
            State::Done(Outcome::Acked) => Event::Acked(s.packet),
            _ => Event::Unconfirmed(s.packet),
        };
        self.release(i);
        Some(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Buf = SendBuffer<8, 32>;
    const LIM: u16 = 1000;
    const T0: Instant = Instant::from_millis(1);
    /// Cut at the slot size, which is what these tests queue with.
    const ALL: Cut = Cut { alone: 32, shared: 32 };

    fn send_all(b: &mut Buf, now: Instant) -> heapless::Vec<u16, 8> {
        let mut v = heapless::Vec::new();
        while let Some(p) = b.pick(now, LIM, 0, ALL) {
            v.push(p.seq).unwrap();
        }
        v
    }

    fn sack(bits: &[usize]) -> AckRepr {
        let mut s = AckRepr::new(100);
        for &b in bits {
            s.sack[b / 8] |= 1 << (b % 8);
        }
        s.sack_len = 4;
        s
    }

    #[test]
    fn fragments_and_reports_each_packet_once() {
        let mut b = Buf::new();
        let id = b.queue_packet(2, 1, &[7u8; 70], 32).unwrap();
        assert_eq!(b.free(), 5);
        assert_eq!(&send_all(&mut b, T0)[..], &[0, 1, 2]);
        assert_eq!(b.frame_of(0).1 & flags::MORE, flags::MORE);
        assert_eq!(b.poll_report(), None);
        b.on_ack(T0, 2, None, 1, 0);
        assert_eq!(b.poll_report(), None, "one fragment still out");
        b.on_ack(T0, 3, None, 1, 0);
        assert_eq!(b.poll_report(), Some(Event::Acked(id)));
        assert_eq!(b.poll_report(), None);
        assert!(b.is_idle());
    }

    #[test]
    fn priority_overtakes_queued_bulk_but_fifo_within_channel() {
        let mut b = Buf::new();
        b.queue_packet(2, 10, b"bulk1", 32).unwrap();
        b.queue_packet(2, 10, b"bulk2", 32).unwrap();
        b.queue_packet(1, 20, b"key", 32).unwrap();
        let mut order: heapless::Vec<heapless::Vec<u8, 8>, 3> = heapless::Vec::new();
        while let Some(p) = b.pick(T0, LIM, 0, ALL) {
            order.push(heapless::Vec::from_slice(b.frame_of(p.slot).2).unwrap()).unwrap();
        }
        assert_eq!(order, [&b"key"[..], b"bulk1", b"bulk2"]);
    }

    #[test]
    fn a_channel_of_equal_priority_does_not_wait_behind_another_channels_backlog() {
        let mut b = Buf::new();
        assert_eq!(b.write_stream(20, 0, &[0u8; 96], 32, usize::MAX), 96);
        let p = b.pick(T0, LIM, 0, ALL).unwrap();
        assert_eq!(b.frame_of(p.slot).0, 20);
        b.queue_packet(21, 0, b"request", 32).unwrap();
        let p = b.pick(T0, LIM, 0, ALL).unwrap();
        assert_eq!(b.frame_of(p.slot).2, b"request", "ahead of the older bulk fragments");
        let mut rest = heapless::Vec::<u8, 4>::new();
        while let Some(p) = b.pick(T0, LIM, 0, ALL) {
            rest.push(b.frame_of(p.slot).0).unwrap();
        }
        assert_eq!(&rest[..], &[20, 20], "the backlog follows, in order");
    }

    #[test]
    fn sack_gap_triggers_fast_retransmit_of_the_hole_only() {
        let mut b = Buf::new();
        for _ in 0..4 {
            b.queue_packet(1, 1, b"x", 32).unwrap();
        }
        send_all(&mut b, T0);
        // Peer has 0, missed 1, got 2 and 3.
        let out = b.on_ack(T0, 1, Some(&sack(&[0, 1])), 1, 0);
        assert_eq!(out.lost, 1);
        let p = b.pick(T0, LIM, 0, ALL).unwrap();
        assert!(p.retransmission);
        assert_eq!(p.seq, 1);
        assert!(b.pick(T0, LIM, 0, ALL).is_none());
    }

    #[test]
    fn ack_of_a_retransmitted_frame_does_not_condemn_frames_sent_after_its_first_copy() {
        let mut b = Buf::new();
        for ch in 0..4 {
            b.queue_packet(ch, 1, b"x", 32).unwrap();
        }
        b.pick(T0, LIM, 0, ALL).unwrap(); // seq 0
                                          // Seq 0 times out and is resent after seqs 1..3 went out.
        for _ in 0..3 {
            b.pick(T0, LIM, 0, ALL).unwrap();
        }
        assert_eq!(b.on_timeout(T0 + Duration::from_millis(60), Duration::from_millis(50)), 4);
        let p = b.pick(T0 + Duration::from_millis(60), LIM, 0, ALL).unwrap();
        assert_eq!((p.seq, p.retransmission), (0, true));
        // The original copy of 0 arrives: only 0 is acknowledged. Frames 1..3 were
        // also marked by the timeout, so resend them and check nothing more is lost.
        while b.pick(T0 + Duration::from_millis(60), LIM, 0, ALL).is_some() {}
        let out = b.on_ack(T0 + Duration::from_millis(61), 1, None, 1, 0);
        assert_eq!(out.lost, 0);
    }

    #[test]
    fn an_ack_sooner_than_the_repeat_could_have_crossed_is_for_the_first_copy() {
        // The loop this breaks: on a slow line a frame waits behind ~200 ms of queued
        // bytes, the timer fires first, the frame is sent again, and its ACK (for the
        // first copy) gives Karn's rule no sample, so the timer never learns.
        let ms = Duration::from_millis;
        let mut b = Buf::new();
        b.queue_packet(1, 1, b"x", 32).unwrap();
        let p = b.pick(T0, LIM, 0, ALL).unwrap();
        b.departed(p.slot, T0 + ms(10));
        assert_eq!(b.on_timeout(T0 + ms(60), ms(50)), 1);
        let p = b.pick(T0 + ms(60), LIM, 0, ALL).unwrap();
        assert!(p.retransmission);
        // The repeat leaves behind 140 ms of bytes; the ACK comes long before that.
        b.departed(p.slot, T0 + ms(200));
        let out = b.on_ack(T0 + ms(80), 1, None, 1, 0);
        assert_eq!(out.spurious, 1);
        assert_eq!(out.rtt, Some(ms(70)), "timed from the first copy's departure");
    }

    #[test]
    fn an_ack_after_the_repeat_crossed_is_ambiguous_and_gives_no_sample() {
        let ms = Duration::from_millis;
        let mut b = Buf::new();
        for ch in 0..2 {
            b.queue_packet(ch, 1, b"x", 32).unwrap();
        }
        // Frame 0 measures the path: 5 ms from departure to ACK.
        let p = b.pick(T0, LIM, 0, ALL).unwrap();
        b.departed(p.slot, T0);
        assert_eq!(b.on_ack(T0 + ms(5), 1, None, 1, 0).rtt, Some(ms(5)));
        let p = b.pick(T0 + ms(10), LIM, 0, ALL).unwrap();
        b.departed(p.slot, T0 + ms(10));
        assert_eq!(b.on_timeout(T0 + ms(70), ms(60)), 1);
        let p = b.pick(T0 + ms(70), LIM, 0, ALL).unwrap();
        b.departed(p.slot, T0 + ms(70));
        // 6 ms after the repeat left: it could be for either copy.
        let out = b.on_ack(T0 + ms(76), 2, None, 1, 0);
        assert_eq!((out.spurious, out.rtt), (0, None));
    }

    #[test]
    fn queued_fragments_are_cut_at_their_first_transmission() {
        // A packet queued in large fragments goes out in the size wanted when each
        // is sent: here 40, then 30 once the sizer moved.
        let mut b = SendBuffer::<8, 128>::new();
        let id = b.queue_packet(1, 1, &[7u8; 100], 128).unwrap();
        assert_eq!(b.free(), 7, "one fragment while queued");
        let cut = |n| Cut { alone: n, shared: n };
        let mut sizes = heapless::Vec::<(usize, u8), 8>::new();
        let mut n = 40;
        while let Some(p) = b.pick(T0, LIM, 0, cut(n)) {
            let (_, fl, data) = b.frame_of(p.slot);
            sizes.push((data.len(), fl & flags::MORE)).unwrap();
            n = 30;
        }
        assert_eq!(&sizes[..], &[(40, flags::MORE), (30, flags::MORE), (30, 0)]);
        b.on_ack(T0, 2, None, 1, 0);
        assert_eq!(b.poll_report(), None, "the last fragment is still out");
        b.on_ack(T0, 3, None, 1, 0);
        assert_eq!(b.poll_report(), Some(Event::Acked(id)));
        assert!(b.is_idle());
    }

    #[test]
    fn a_stream_fragment_cut_at_transmission_keeps_its_fin_on_the_last_piece() {
        let mut b = Buf::new();
        assert_eq!(b.write_stream(1, 1, &[1u8; 30], 32, usize::MAX), 30);
        assert_eq!(b.finish_stream(1, 1), Some(true));
        let cut = Cut { alone: 20, shared: 20 };
        let p = b.pick(T0, LIM, 0, cut).unwrap();
        assert_eq!((b.frame_of(p.slot).1, b.frame_of(p.slot).2.len()), (0, 20));
        let p = b.pick(T0, LIM, 0, cut).unwrap();
        assert_eq!((b.frame_of(p.slot).1, b.frame_of(p.slot).2.len()), (flags::FIN, 10));
        b.on_ack(T0, 2, None, 1, 0);
        assert!(b.is_idle());
    }

    #[test]
    fn frames_are_short_while_another_channel_shares_the_line() {
        let ms = Duration::from_millis;
        let mut b = SendBuffer::<16, 128>::new();
        let cut = Cut { alone: 100, shared: 25 };
        let len_of = |b: &SendBuffer<16, 128>, p: Pick| b.frame_of(p.slot).2.len();
        b.queue_packet(2, 1, &[0u8; 400], 128).unwrap();
        let p = b.pick(T0, LIM, 0, cut).unwrap();
        assert_eq!(len_of(&b, p), 100, "bulk alone: long frames");
        b.queue_packet(1, 2, b"keystroke", 128).unwrap();
        let p = b.pick(T0, LIM, 0, cut).unwrap();
        assert_eq!(b.frame_of(p.slot).2, b"keystroke", "higher priority goes first");
        let p = b.pick(T0 + ms(10), LIM, 0, cut).unwrap();
        assert_eq!(len_of(&b, p), 25, "the line was just shared: short frames");
        let later = T0 + SHARED_HOLD + ms(20);
        let p = b.pick(later, LIM, 0, cut).unwrap();
        assert_eq!(len_of(&b, p), 25, "the keystroke is still in flight");
        b.on_ack(later, 3, None, 1, 0);
        let p = b.pick(later + SHARED_HOLD, LIM, 0, cut).unwrap();
        assert_eq!(len_of(&b, p), 100, "alone again for the hold time: long frames");
    }

    #[test]
    fn karn_no_rtt_sample_from_retransmitted_frame() {
        let mut b = Buf::new();
        b.queue_packet(1, 1, b"x", 32).unwrap();
        send_all(&mut b, T0);
        assert_eq!(b.on_timeout(T0 + Duration::from_millis(100), Duration::from_millis(50)), 1);
        b.pick(T0 + Duration::from_millis(100), LIM, 0, ALL).unwrap();
        let out = b.on_ack(T0 + Duration::from_millis(120), 1, None, 1, 0);
        assert_eq!(out.rtt, None);
    }

    #[test]
    fn window_and_peer_limit_bound_new_sequence_numbers() {
        let mut b = Buf::new();
        for ch in 0..8 {
            b.queue_packet(ch, 1, b"x", 32).unwrap();
        }
        assert_eq!(b.queue_packet(9, 1, b"x", 32), Err(SendError::WouldBlock), "pool full");
        assert_eq!(b.queue_packet(1, 1, &[0; 32 * 9], 32), Err(SendError::TooLarge));
        let mut n = 0;
        while b.pick(T0, 3, 0, ALL).is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn a_channel_queues_only_a_few_fragments_ahead() {
        let mut b = Buf::new();
        assert_eq!(b.write_stream(1, 1, &[0; 1000], 32, usize::MAX), 32 * QUEUE_AHEAD);
        assert_eq!(b.queue_packet(1, 1, b"p", 32), Err(SendError::WouldBlock));
        assert!(b.queue_packet(2, 1, b"p", 32).is_ok(), "other channels are not held up");
        b.pick(T0, LIM, 0, ALL).unwrap();
        assert_eq!(b.write_stream(1, 1, &[0; 1000], 32, usize::MAX), 32);
    }

    #[test]
    fn in_flight_bytes_cap_holds_new_frames_not_retransmissions() {
        let mut b = Buf::new();
        for ch in 0..4 {
            b.queue_packet(ch, 1, &[0u8; 30], 32).unwrap();
        }
        assert!(b.pick(T0, LIM, 60, ALL).is_some());
        assert!(b.pick(T0, LIM, 60, ALL).is_some());
        assert!(b.pick(T0, LIM, 60, ALL).is_none(), "60 bytes in flight");
        assert_eq!(b.on_timeout(T0 + Duration::from_millis(100), Duration::from_millis(50)), 2);
        assert!(b.pick(T0, LIM, 60, ALL).unwrap().retransmission, "retransmissions are never held");
        b.on_ack(T0, 1, None, 1, 0);
        assert!(b.pick(T0, LIM, 60, ALL).unwrap().retransmission, "seq 1 is still owed first");
        assert!(!b.pick(T0, LIM, 60, ALL).unwrap().retransmission, "the ack made room for a new frame");
        assert!(b.pick(T0, LIM, 60, ALL).is_none());
    }

    #[test]
    fn stale_or_bogus_acks_change_nothing() {
        let mut b = Buf::new();
        b.queue_packet(1, 1, b"x", 32).unwrap();
        send_all(&mut b, T0);
        let out = b.on_ack(T0, 5, None, 1, 0);
        assert!(!out.advanced);
        assert_eq!(b.in_flight(), 1);
    }

    #[test]
    fn reset_reports_everything_unacknowledged_and_starts_clean() {
        let mut b = Buf::new();
        let acked = b.queue_packet(2, 1, b"done", 32).unwrap();
        b.pick(T0, LIM, 0, ALL).unwrap();
        b.on_ack(T0, 1, None, 1, 0);
        let sent = b.queue_packet(1, 1, &[1u8; 40], 32).unwrap(); // 2 fragments
        b.pick(T0, LIM, 0, ALL).unwrap(); // only the first goes out
        let queued = b.queue_packet(1, 1, b"queued", 32).unwrap();
        assert_eq!(b.write_stream(3, 1, b"stream", 32, usize::MAX), 6);
        b.reset();
        assert_eq!(b.poll_report(), Some(Event::StreamAborted { channel: 3 }));
        assert_eq!(b.poll_report(), Some(Event::Acked(acked)), "acknowledged before the reset");
        assert_eq!(b.poll_report(), Some(Event::Unconfirmed(sent)));
        assert_eq!(b.poll_report(), Some(Event::Unconfirmed(queued)));
        assert_eq!(b.poll_report(), None);
        assert!(b.is_idle());
        assert!(b.pick(T0, LIM, 0, ALL).is_none(), "nothing of the old session is sent in the new one");
        let fresh = b.queue_packet(1, 1, b"fresh", 32).unwrap();
        let p = b.pick(T0, LIM, 0, ALL).unwrap();
        assert_eq!((p.seq, b.frame_of(p.slot).2), (0, &b"fresh"[..]));
        b.on_ack(T0, 1, None, 1, 0);
        assert_eq!(b.poll_report(), Some(Event::Acked(fresh)));
    }

    #[test]
    fn oversized_queued_fragments_are_withdrawn_and_reported() {
        let mut b = Buf::new();
        let big = b.queue_packet(1, 1, &[0u8; 60], 32).unwrap(); // 32 + 28
        let small = b.queue_packet(2, 1, &[0u8; 10], 32).unwrap();
        b.write_stream(3, 1, &[0u8; 20], 32, usize::MAX);
        b.withdraw_oversized(16);
        assert_eq!(b.poll_report(), Some(Event::StreamAborted { channel: 3 }));
        assert_eq!(b.poll_report(), Some(Event::Unconfirmed(big)));
        assert_eq!(b.poll_report(), None);
        let p = b.pick(T0, LIM, 0, ALL).unwrap();
        assert_eq!(b.frame_of(p.slot).2.len(), 10);
        b.on_ack(T0, 1, None, 1, 0);
        assert_eq!(b.poll_report(), Some(Event::Acked(small)));
        assert!(b.is_idle());
    }

    #[test]
    fn finished_and_acknowledged_streams_are_not_aborted() {
        let mut b = Buf::new();
        b.write_stream(1, 1, b"all", 32, usize::MAX);
        assert_eq!(b.finish_stream(1, 1), Some(true));
        b.pick(T0, LIM, 0, ALL).unwrap();
        b.on_ack(T0, 1, None, 1, 0);
        b.reset();
        assert_eq!(b.poll_report(), None);
    }

    #[test]
    fn an_abort_drops_unsent_stream_bytes_and_sends_the_reset_after_what_went_out() {
        let mut b = Buf::new();
        assert_eq!(b.write_stream(1, 1, &[1u8; 64], 32, usize::MAX), 64);
        let first = b.pick(T0, LIM, 0, ALL).unwrap();
        assert!(b.abort_stream(1, 1, b"why"));
        assert_eq!(b.write_stream(1, 1, b"more", 32, usize::MAX), 0, "the stream is over");
        assert_eq!(b.finish_stream(1, 1), Some(false), "no end after a reset");
        let p = b.pick(T0, LIM, 0, Cut { alone: 2, shared: 2 }).unwrap();
        let (_, fl, data) = b.frame_of(p.slot);
        assert_eq!((fl, data), (flags::RST, &b"why"[..]), "whole, though longer than the cut");
        assert!(b.pick(T0, LIM, 0, ALL).is_none(), "the unsent 32 bytes were dropped");
        assert_eq!((first.seq, p.seq), (0, 1));
        b.on_ack(T0, 2, None, 1, 0);
        assert!(b.is_idle());
        b.reset();
        assert_eq!(b.poll_report(), None, "a reset stream that was acknowledged is not aborted again");
    }

    #[test]
    fn stream_writes_coalesce_into_queued_fragment() {
        let mut b = Buf::new();
        assert_eq!(b.write_stream(1, 1, b"abc", 8, usize::MAX), 3);
        assert_eq!(b.write_stream(1, 1, b"defghij", 8, usize::MAX), 7);
        assert_eq!(b.finish_stream(1, 1), Some(true));
        let eight = Cut { alone: 8, shared: 8 };
        let p = b.pick(T0, LIM, 0, eight).unwrap();
        assert_eq!(b.frame_of(p.slot).2, b"abcdefgh");
        let p = b.pick(T0, LIM, 0, eight).unwrap();
        let (_, fl, data) = b.frame_of(p.slot);
        assert_eq!((data, fl & flags::FIN), (&b"ij"[..], flags::FIN));
        assert_eq!(b.write_stream(1, 1, b"late", 8, usize::MAX), 4, "a new stream after FIN went out");
    }
}
