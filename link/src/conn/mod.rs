//! Spec sections 5-8: one connection — the session with one peer, the ARQ
//! in both directions, flow control, channels and streams. It speaks frames
//! (header, payload, CRC); how frames travel (COBS on a byte stream, one per
//! datagram, KISS) is the framing's business (`crate::framing`), and which
//! connection a frame belongs to is the endpoint's (`crate::endpoint`).
//!
//! The parts, each in its own module:
//!
//! | module | what |
//! |---|---|
//! | [`session`] | handshake, the session contract of 5.3, restarts |
//! | `frames` | taking frames in, building frames out, the ACK scheduler, timers |
//! | `strength` | FEC strength and the payload caps that follow from it (6.7) |
//! | `tx` | the send pool: queue, scheduler, recovery (6.3) |
//! | `rx` | the receive ring (6.2) |
//! | `ledger` | written-up-to counts (8.3) |
//!
//! Storage is the caller's ([`ConnStorage`]); nothing large is built here.

mod frames;
pub mod ledger;
pub mod rx;
pub mod session;
mod strength;
pub mod tx;

use crate::config::Config;
use crate::event::{Event, PacketId};
use crate::fec::{policy, Strength};
use crate::pacer::Pacer;
use crate::rtt::RttEstimator;
use crate::sizing::Sizer;
use crate::stats::Stats;
use crate::storage::Buf;
use crate::time::Instant;
use crate::wire::{MIN_PAYLOAD, OVERHEAD};
use heapless::Deque;
use ledger::{Ledger, StreamEntry};
use rx::{Delivery, RecvBuffer, RxSlot};
use session::Session;
use tx::{SendBuffer, SendError, TxSlot, QUEUE_AHEAD};

/// The memory of one connection, provided by the caller and initialised by
/// [`Connection::new`]: a window of W slots each way (a power of two, at
/// most 4096), payload arenas of W times the largest payload, and a stream
/// ledger of one entry per channel that will carry a byte stream.
pub struct ConnStorage<'a> {
    /// Send pool metadata, W entries.
    pub tx_slots: Buf<'a, TxSlot>,
    /// Send payloads, W x the largest payload bytes.
    pub tx_data: Buf<'a, u8>,
    /// Receive ring metadata, W entries.
    pub rx_slots: Buf<'a, RxSlot>,
    /// Receive payloads, W x the largest payload bytes.
    pub rx_data: Buf<'a, u8>,
    /// Written-up-to counts, one entry per stream channel (8.3).
    pub streams: Buf<'a, StreamEntry>,
}

impl ConnStorage<'static> {
    /// Owned storage for a window of `window` frames of payloads of at most
    /// `payload` bytes, with room for `streams` stream channels.
    #[cfg(feature = "alloc")]
    pub fn owned(window: usize, payload: usize, streams: usize) -> Self {
        ConnStorage {
            tx_slots: Buf::filled(window, TxSlot::EMPTY),
            tx_data: Buf::filled(window * payload, 0),
            rx_slots: Buf::filled(window, RxSlot::EMPTY),
            rx_data: Buf::filled(window * payload, 0),
            streams: Buf::filled(streams, StreamEntry::EMPTY),
        }
    }
}

/// One strand connection: a session with one peer.
pub struct Connection<'a> {
    config: Config,
    stats: Stats,
    rng: u64,
    /// Our session id for this connection; frames carrying it are ours.
    session: u32,
    /// DATA and ACK frames sent this session: the next frame's counter (3.1).
    frames_sent: u32,
    /// Node address of the peer (0: any, a point-to-point line).
    peer_addr: u16,
    state: Session,
    tx: SendBuffer<'a>,
    rx: RecvBuffer<'a>,
    rtt: RttEstimator,
    sizer: Sizer,
    /// The peer's receive limit (absolute sequence number, spec 7).
    peer_limit: u16,
    /// Largest payload both sides accept, from the handshake.
    negotiated_payload: u16,
    /// The peer's HELLO said it cannot decode in-frame FEC: plain frames only.
    peer_no_fec: bool,
    /// Largest raw frame we accept: our slots' payload plus the overhead.
    max_raw: u16,
    acks: frames::AckState,
    /// When to POLL for written confirmations still missing while nothing is
    /// in flight (spec 8.3), and how often that was done in a row.
    confirm_probe_at: Option<Instant>,
    confirm_probes: u32,
    ledger: Ledger<'a>,
    /// The path's measured delivery rate and shortest round trip (spec 6.8).
    pacer: Pacer,
    /// The payload cap the measured rate set last (0: none).
    rate_cap: u16,
    last_rx: Instant,
    window_probe_at: Option<Instant>,
    down: bool,
    stalled: bool,
    version_reported: bool,
    events: Deque<Event, 16>,
    /// FEC strength for frames sent now, chosen from the peer's reports.
    strength: Strength,
    /// The last error report acted on: the choice is redone only when it changes.
    last_hint: u8,
}

/// Splitmix64: spreads the caller's entropy into session ids.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A fresh non-zero session id, different from `old`.
fn new_session_id(rng: &mut u64, old: u32) -> u32 {
    loop {
        let s = splitmix(rng) as u32;
        if s != 0 && s != old {
            return s;
        }
    }
}

impl<'a> Connection<'a> {
    /// A new connection over `storage`, to the node `peer_addr` (0: whoever
    /// answers, on a point-to-point line). `seed` must differ between runs
    /// (the OS or a hardware RNG): it makes the session id that tells the peer
    /// we restarted (spec 5.1).
    pub fn new(config: Config, storage: ConnStorage<'a>, peer_addr: u16, now: Instant, seed: u64) -> Self {
        let mut rng = seed;
        let session = new_session_id(&mut rng, 0);
        let tx = SendBuffer::new(storage.tx_slots, storage.tx_data);
        let rx = RecvBuffer::new(storage.rx_slots, storage.rx_data);
        let max_raw = (tx.slot_size().min(rx.slot_size()) + OVERHEAD).min(usize::from(u16::MAX)) as u16;
        let rtt = RttEstimator::new(config.initial_rto, config.min_rto, config.max_rto);
        let max = config.max_payload.min(max_raw - OVERHEAD as u16);
        let sizer = if config.adaptive_payload && cfg!(feature = "adaptive") {
            Sizer::new(config.min_payload, max)
        } else {
            Sizer::fixed(max)
        };
        Connection {
            config,
            stats: Stats::default(),
            rng,
            session,
            frames_sent: 0,
            peer_addr,
            state: Session::opening(now),
            tx,
            rx,
            rtt,
            sizer,
            peer_limit: 0,
            negotiated_payload: max_raw - OVERHEAD as u16,
            peer_no_fec: false,
            max_raw,
            acks: frames::AckState::default(),
            confirm_probe_at: None,
            confirm_probes: 0,
            ledger: Ledger::new(storage.streams),
            pacer: Pacer::new(),
            rate_cap: 0,
            last_rx: now,
            window_probe_at: None,
            down: false,
            stalled: false,
            version_reported: false,
            events: Deque::new(),
            strength: Strength::Off,
            last_hint: policy::NO_ESTIMATE,
        }
    }

    /// The window: frames each way.
    pub fn window(&self) -> usize {
        self.tx.window()
    }

    /// Largest raw frame (header, payload, CRC) this connection accepts.
    pub fn max_raw(&self) -> usize {
        usize::from(self.max_raw)
    }

    /// Queues a packet on `channel`; it is fragmented and reassembled in order
    /// by the peer (see [`Delivery::more`]). It is queued in fragments of the
    /// largest payload the sizer may choose (or larger if the packet would
    /// otherwise need more than W), and each is cut down to the size wanted
    /// at its first transmission (spec 6.6). `TooLarge` means the packet
    /// exceeds W fragments of the largest payload both sides accept; before
    /// the handshake such a size is not known yet and a packet over W x
    /// [`MIN_PAYLOAD`] bytes gets `WouldBlock`.
    pub fn send(&mut self, channel: u8, data: &[u8]) -> Result<PacketId, SendError> {
        let w = self.window();
        let connected = self.is_connected();
        let cap = if connected { self.config.max_payload.min(self.negotiated_payload) } else { MIN_PAYLOAD };
        let cap = usize::from(cap.max(1));
        if !connected && data.len() > w * cap {
            return Err(SendError::WouldBlock);
        }
        let upper = usize::from(if connected { self.sizer.max() } else { MIN_PAYLOAD });
        let size = upper.max(data.len().div_ceil(w)).min(cap);
        let prio = self.config.priority(channel);
        self.tx.queue_packet(channel, prio, data, size)
    }

    /// Appends bytes to the stream on `channel`; returns how many were taken
    /// (fewer than offered when the send window is full; none while the
    /// stream ledger has no room for a new channel, spec 8.3).
    pub fn write_stream(&mut self, channel: u8, data: &[u8]) -> usize {
        if !self.ledger.has_room(channel) {
            return 0;
        }
        let (prio, size) = (self.config.priority(channel), self.max_payload());
        // Unsent stream bytes wait ahead of other channels' data of the same
        // priority: bound them by fragments of the shared size, not the bulk one.
        let ahead = QUEUE_AHEAD * self.shared_size(size);
        let n = self.tx.write_stream(channel, prio, data, size, ahead);
        self.ledger.on_queued(channel, n);
        n
    }

    /// Ends the stream on `channel`; false if the send window is full (retry).
    pub fn finish_stream(&mut self, channel: u8) -> bool {
        if !self.ledger.has_room(channel) {
            return false;
        }
        let prio = self.config.priority(channel);
        match self.tx.finish_stream(channel, prio) {
            Some(added) => {
                if added {
                    self.ledger.on_queued(channel, 1);
                }
                true
            }
            None => false,
        }
    }

    /// Aborts the stream on `channel` (spec 8.3): its bytes not yet sent are
    /// dropped and a reset goes out in their place, carrying `reason` (cut to
    /// [`MIN_PAYLOAD`] bytes) for the peer's application. False if the send
    /// window is full (retry).
    pub fn abort_stream(&mut self, channel: u8, reason: &[u8]) -> bool {
        let prio = self.config.priority(channel);
        let reason = &reason[..reason.len().min(usize::from(MIN_PAYLOAD))];
        self.tx.abort_stream(channel, prio, reason)
    }

    /// Tells the core that the application wrote `n` more bytes of the stream
    /// on `channel` to their destination (count one more for an end of stream
    /// once the output is closed). The count goes back to the peer in ACK
    /// frames (spec 8.3): the peer's application counts as delivered only
    /// what this confirms. False if the ledger is full (more stream channels
    /// than the caller gave it room for).
    pub fn stream_written(&mut self, now: Instant, channel: u8, n: u32) -> bool {
        let kept = self.ledger.add_written(channel, n);
        if n > 0 && self.is_connected() {
            self.acks.due_by(now + self.config.ack_delay);
        }
        kept
    }

    /// Stream bytes (and ends of stream) written on `channel` this session
    /// that the peer has not confirmed written to their destination yet.
    pub fn stream_unconfirmed(&self, channel: u8) -> u32 {
        self.ledger.unconfirmed_on(channel)
    }

    /// The same summed over every channel.
    pub fn unconfirmed(&self) -> u64 {
        self.ledger.unconfirmed()
    }

    /// Hands the next in-order fragment to `f`.
    pub fn recv<R>(&mut self, f: impl FnOnce(Delivery, &[u8]) -> R) -> Option<R> {
        let closed_before = self.rx.ready() >= self.rx.window();
        let mut len = 0;
        let r = self.rx.recv(|d, p| {
            len = p.len();
            f(d, p)
        })?;
        self.stats.delivered_bytes += len as u64;
        // Tell a peer whose window was closed that it opened again.
        if closed_before && self.is_connected() {
            self.acks.now = true;
        }
        Some(r)
    }

    /// The channel of the next fragment [`recv`](Self::recv) would hand out, if any.
    /// A driver that takes a fragment only when that channel's consumer has room
    /// lets a slow consumer close the window, instead of buffering without bound.
    pub fn peek_channel(&self) -> Option<u8> {
        self.rx.peek_channel()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front().or_else(|| self.tx.poll_report())
    }

    /// Payload size used for new fragments right now. Until the handshake tells
    /// the peer's limit, fragments are cut to [`MIN_PAYLOAD`], which every peer accepts.
    pub fn max_payload(&self) -> usize {
        let size = self.sizer.current();
        usize::from(if self.is_connected() { size } else { size.min(MIN_PAYLOAD) })
    }

    /// Caps the payload size (e.g. a radio's MTU), up to what both sides accept;
    /// the adaptive sizer stays below it.
    pub fn set_max_payload(&mut self, max: u16) {
        self.config.max_payload = max.max(1);
        self.apply_payload_bounds();
    }

    /// Whether the handshake completed for the current session.
    pub fn is_connected(&self) -> bool {
        self.state.is_connected()
    }

    /// Whether the peer was heard within `link_timeout`.
    pub fn is_up(&self) -> bool {
        self.is_connected() && !self.down
    }

    /// When a valid frame of the peer's session (or a HELLO) last arrived;
    /// the time of creation or of the last session change before that. A
    /// driver declares the peer dead when this lies too far back (spec 9.1).
    pub fn last_heard(&self) -> Instant {
        self.last_rx
    }

    /// Nothing is queued, in flight or unreported on the sending side.
    pub fn is_send_idle(&self) -> bool {
        self.tx.is_idle()
    }

    /// Whether an acknowledgement is due to the peer (at once, or when the
    /// delayed-ack timer runs out): a driver about to close lets it leave first.
    pub fn is_ack_owed(&self) -> bool {
        self.acks.owed() || self.state.hello_ack_owed() || self.ledger.has_news()
    }

    /// Free fragment slots for `send` / `write_stream`.
    pub fn send_capacity(&self) -> usize {
        self.tx.free()
    }

    /// This side's session id.
    pub fn session(&self) -> u32 {
        self.session
    }

    /// The peer's session id, once known.
    pub fn peer_session(&self) -> Option<u32> {
        self.state.peer()
    }

    /// The peer's node address (0: any).
    pub fn peer_addr(&self) -> u16 {
        self.peer_addr
    }

    /// Counters and gauges of this connection.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.srtt_us = self.rtt.srtt().map_or(0, |d| d.as_micros());
        s.rto_us = self.rtt.rto().as_micros();
        s.payload_size = self.sizer.current();
        s.fec_strength = self.strength;
        s.fec_hint = self.last_hint;
        s.in_flight = self.tx.in_flight();
        s.path_rate = self.pacer.rate().unwrap_or(0);
        s
    }

    /// The payload size while the line is shared between channels (6.6).
    fn shared_size(&self, size: usize) -> usize {
        match self.config.shared_payload {
            0 => size,
            s => size.min(usize::from(s)),
        }
    }

    fn push_event(&mut self, ev: Event) {
        // Only state changes go here (packet outcomes are kept in the send
        // pool), so the queue fills only if the driver never polls.
        let _ = self.events.push_back(ev);
    }

    fn heard(&mut self, now: Instant) {
        self.last_rx = now;
        self.acks.next_probe = None;
        if self.down {
            self.down = false;
            self.push_event(Event::LinkUp);
        }
    }
}
