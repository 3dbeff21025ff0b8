//! Spec section 6 (sender side): the transmit pool, sequence numbers,
//! SACK processing, loss detection and retransmission timers, in parts:
//! this module holds the pool (slot metadata beside a payload arena, both
//! the caller's memory); [`queue`] cuts packets and streams into it,
//! [`scheduler`] picks what goes next, [`recovery`] takes acknowledgements,
//! judges losses and runs the timers.
//!
//! The pool holds `W` fragment slots. A packet is split into fragments when it
//! is queued; a fragment gets its sequence number only when first sent, which
//! lets a higher-priority channel overtake bulk data still waiting in the pool.
//! Sequence numbers in flight always lie within `W` of the oldest unacknowledged
//! one, so `seq % W` indexes them (W is a power of two, so this holds across the
//! 16-bit wrap).

mod queue;
mod recovery;
mod scheduler;
#[cfg(test)]
mod tests;

use crate::event::PacketId;
use crate::storage::Buf;
use crate::time::Duration;
use crate::time::Instant;

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

/// One slot of the send pool: a fragment's metadata (its bytes live in the
/// arena, at the slot's index times the slot size). Public so a caller can
/// provide the memory; its fields are the core's.
#[derive(Debug, Clone, Copy)]
pub struct TxSlot {
    state: State,
    channel: u8,
    priority: u8,
    /// MORE / FIN / RST as they go on the wire.
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
    /// The slot holding the frame whose sequence number is this slot's
    /// index modulo W (`NONE` if none): sequence numbers in flight lie within
    /// W of the oldest, so the pool's length indexes them.
    by_seq: u16,
}

impl TxSlot {
    /// An empty slot, to fill the caller's array with.
    pub const EMPTY: Self = TxSlot {
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
        by_seq: NONE,
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
pub(crate) struct SendBuffer<'a> {
    slots: Buf<'a, TxSlot>,
    /// The slots' payloads, `n` bytes each.
    data: Buf<'a, u8>,
    /// Payload capacity of one slot.
    n: usize,
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

fn bit_set(set: &mut [u32; 8], ch: u8) {
    set[ch as usize / 32] |= 1 << (ch % 32);
}

impl<'a> SendBuffer<'a> {
    /// A pool over the caller's memory: `slots` (W of them, a power of two
    /// at most 4096) and `data` (W times the largest payload). Both are
    /// initialised here.
    pub fn new(mut slots: Buf<'a, TxSlot>, data: Buf<'a, u8>) -> Self {
        let w = slots.len();
        debug_assert!(w.is_power_of_two() && w <= 4096, "the window is a power of two <= 4096");
        slots.fill(TxSlot::EMPTY);
        let n = data.len() / w.max(1);
        SendBuffer {
            slots,
            data,
            n,
            next_seq: 0,
            una: 0,
            next_order: 0,
            next_packet: 0,
            tx_counter: 0,
            highest_acked_tx: 0,
            free: w,
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

    /// The window: slots in the pool.
    fn w(&self) -> usize {
        self.slots.len()
    }

    /// Largest payload one slot holds.
    pub fn slot_size(&self) -> usize {
        self.n
    }

    /// Slots in the pool: the window.
    pub fn window(&self) -> usize {
        self.w()
    }

    /// Slot `i`'s payload bytes (all `n` of them, whatever its length).
    fn bytes_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.data[i * self.n..(i + 1) * self.n]
    }

    /// Moves `len` payload bytes from slot `from` at `src` to slot `to` at
    /// `dst`; within one slot only towards its start (`dst <= src`).
    fn move_bytes(&mut self, from: usize, src: usize, to: usize, dst: usize, len: usize) {
        let n = self.n;
        let (s, d) = (from * n + src, to * n + dst);
        if from != to {
            // Two slots never overlap: a plain copy.
            let (lo, hi) = self.data.split_at_mut(s.max(d));
            let (from, into) =
                if s < d { (&lo[s..s + len], &mut hi[..len]) } else { (&hi[..len], &mut lo[d..d + len]) };
            into.copy_from_slice(from);
            return;
        }
        // Within a slot the bytes move towards its start, so a forward copy in
        // chunks is safe without memmove (1.3 KB of a Cortex-M0's flash).
        debug_assert!(dst <= src);
        let mut chunk = [0u8; 64];
        let mut done = 0;
        while done < len {
            let k = (len - done).min(chunk.len());
            chunk[..k].copy_from_slice(&self.data[s + done..s + done + k]);
            // Else the optimiser fuses the two copies back into a memmove.
            let chunk = core::hint::black_box(&mut chunk);
            self.data[d + done..d + done + k].copy_from_slice(&chunk[..k]);
            done += k;
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
        self.free == self.w()
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

    /// Payload and wire fields of a slot.
    pub fn frame_of(&self, i: usize) -> (u8, u8, &[u8]) {
        let s = &self.slots[i];
        (s.channel, s.flags, &self.data[i * self.n..i * self.n + s.len as usize])
    }
}
