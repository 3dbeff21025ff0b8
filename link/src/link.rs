//! Spec sections 5-8: the link state machine. It is fed bytes and timestamps
//! and returns bytes to send, deliveries and events — the same poll API that
//! every strand transport and the firmware drive:
//!
//! ```text
//! loop {
//!     link.handle_input(now, &bytes_from_line);
//!     link.handle_timeout(now);
//!     while let Some(n) = link.poll_transmit(now, &mut buf) { line.write(&buf[..n]) }
//!     while let Some(ev) = link.poll_event() { .. }
//!     while link.recv(|d, payload| ..).is_some() {}
//!     sleep until link.poll_timeout() or the line is readable
//! }
//! ```

use crate::config::Config;
use crate::event::{Event, PacketId};
use crate::fec::{self, policy, Repair, Strength};
use crate::framing::{self, DeframeError, Deframer, FeedResult};
use crate::pacer::Pacer;
use crate::recv::{Accept, Delivery, RecvBuffer};
use crate::rtt::RttEstimator;
use crate::send::{Cut, SendBuffer, SendError, QUEUE_AHEAD};
use crate::sizing::Sizer;
use crate::stats::Stats;
use crate::stream::Ledger;
use crate::time::{earliest, Instant};
use crate::wire::{
    flags, seq_lt, AckPayload, AckRepr, Error as WireError, Frame, FrameType, Header, HelloPayload,
    HelloRepr, HELLO_LEN, MAX_SACK_BYTES, MAX_WRITTEN, MIN_MAX_FRAME, MIN_PAYLOAD, OVERHEAD, PROTOCOL,
    WRITTEN_LEN,
};
use core::time::Duration;
use heapless::Deque;

/// A strand link endpoint.
///
/// `W` is the window: fragment slots for sending and for receiving (a power
/// of two, at most 4096). `N` is the frame capacity: the largest COBS-encoded
/// frame on the wire, delimiter excluded. Memory is about `2·W·N` bytes.
pub struct Link<const W: usize, const N: usize> {
    deframer: Deframer<N>,
    core: Core<W, N>,
}

/// Everything but the input accumulator, so a frame borrowed from the
/// accumulator can be processed while the rest of the state changes.
struct Core<const W: usize, const N: usize> {
    config: Config,
    stats: Stats,
    rng: u64,
    session: u32,
    peer: Option<u32>,
    connected: bool,
    tx: SendBuffer<W, N>,
    rx: RecvBuffer<W, N>,
    rtt: RttEstimator,
    sizer: Sizer,
    peer_limit: u16,
    /// Largest payload both sides accept, from the handshake.
    negotiated_payload: u16,
    hello_at: Option<Instant>,
    hello_backoff: u32,
    hello_first: Option<Instant>,
    hello_ack_owed: Option<u32>,
    /// When the last HELLO_ACK left: they go out at most once per
    /// `hello_interval`, so a flood of stale HELLOs cannot make a storm.
    last_hello_ack: Option<Instant>,
    /// When the last HELLO left.
    last_hello: Option<Instant>,
    /// A HELLO of another session heard while connected: a restart of the
    /// peer, or a stale or replayed frame. Taken as a restart only if the
    /// current peer stays silent for a retransmission timeout (spec 5.3).
    candidate: Option<Candidate>,
    ack_now: bool,
    /// The next ACK answers a POLL: it carries every written count (8.3).
    answer_poll: bool,
    ack_deadline: Option<Instant>,
    unacked: u8,
    probe_owed: bool,
    next_probe: Option<Instant>,
    window_probe_at: Option<Instant>,
    /// When to POLL for written confirmations still missing while nothing is
    /// in flight (spec 8.3), and how often that was done in a row.
    confirm_probe_at: Option<Instant>,
    confirm_probes: u32,
    /// Written-up-to accounting of both directions (spec 8.3).
    ledger: Ledger,
    /// The path's measured delivery rate and shortest round trip (spec 6.8).
    pacer: Pacer,
    /// The payload cap the measured rate set last (0: none).
    rate_cap: u16,
    last_rx: Instant,
    last_tx: Option<Instant>,
    /// When the line will have sent every byte handed out so far (only with
    /// `Config::line_rate`): the next frame leaves behind them.
    line_free_at: Instant,
    /// The send-pool slot of the DATA frame in `scratch`, if it holds one.
    built_data: Option<usize>,
    /// When the line's queue will be short enough for the DATA frame that
    /// `Config::max_queue` holds back.
    paced_until: Option<Instant>,
    down: bool,
    stalled: bool,
    version_reported: bool,
    events: Deque<Event, 16>,
    scratch: [u8; N],
    /// The protected form of `scratch` when FEC is on.
    protected: [u8; N],
    /// This side's measure of damaged bytes, reported to the peer in ACKs.
    meter: policy::ErrorMeter,
    /// FEC strength for frames sent now, chosen from the peer's reports.
    strength: Strength,
    /// The last error report acted on: the choice is redone only when it changes.
    last_hint: u8,
}

/// A HELLO from a session other than the connected peer's, on probation.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    session: u32,
    hello: HelloRepr,
    /// When it arrived: the current peer heard after this clears it.
    since: Instant,
    /// When the current peer was last POLLed to prove it is alive.
    polled: Instant,
}

/// Splitmix64: spreads the caller's entropy into session ids.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<const W: usize, const N: usize> Link<W, N> {
    /// Bytes `poll_transmit` may write at most: a leading delimiter, the
    /// encoded frame and the trailing delimiter.
    pub const MAX_WIRE: usize = N + 2;

    const VALID: () = assert!(
        W.is_power_of_two()
            && W <= 4096
            && framing::max_raw_for_encoded(N) >= MIN_MAX_FRAME as usize
            && N <= 65535,
        "W must be a power of two <= 4096, and N must hold a frame of MIN_PAYLOAD bytes"
    );

    /// Largest raw frame (header + payload + CRC) that fits the capacity.
    const MAX_RAW: usize = framing::max_raw_for_encoded(N);

    /// A new endpoint. `seed` must differ between runs (e.g. from the OS RNG or
    /// a hardware RNG): it makes the session id that tells peers we restarted.
    pub fn new(config: Config, now: Instant, seed: u64) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID;
        let mut rng = seed;
        let session = loop {
            let s = splitmix(&mut rng) as u32;
            if s != 0 {
                break s;
            }
        };
        let rtt = RttEstimator::new(config.initial_rto, config.min_rto, config.max_rto);
        let max = config.max_payload.min((Self::MAX_RAW - OVERHEAD) as u16);
        let sizer =
            if config.adaptive_payload { Sizer::new(config.min_payload, max) } else { Sizer::fixed(max) };
        Link {
            deframer: Deframer::new(),
            core: Core {
                config,
                stats: Stats::default(),
                rng,
                session,
                peer: None,
                connected: false,
                tx: SendBuffer::new(),
                rx: RecvBuffer::new(),
                rtt,
                sizer,
                peer_limit: 0,
                negotiated_payload: (Self::MAX_RAW - OVERHEAD) as u16,
                hello_at: Some(now),
                hello_backoff: 0,
                hello_first: None,
                hello_ack_owed: None,
                last_hello_ack: None,
                last_hello: None,
                candidate: None,
                ack_now: false,
                answer_poll: false,
                ack_deadline: None,
                unacked: 0,
                probe_owed: false,
                next_probe: None,
                window_probe_at: None,
                confirm_probe_at: None,
                confirm_probes: 0,
                ledger: Ledger::new(),
                pacer: Pacer::new(),
                rate_cap: 0,
                last_rx: now,
                last_tx: None,
                line_free_at: now,
                built_data: None,
                paced_until: None,
                down: false,
                stalled: false,
                version_reported: false,
                events: Deque::new(),
                scratch: [0; N],
                protected: [0; N],
                meter: policy::ErrorMeter::default(),
                strength: Strength::Off,
                last_hint: policy::NO_ESTIMATE,
            },
        }
    }

    /// Feeds bytes read from the line.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.core.stats.bytes_rx += bytes.len() as u64;
        let mut input = bytes;
        loop {
            match self.deframer.feed(input) {
                FeedResult::Consumed => break,
                FeedResult::Frame { frame, rest } => {
                    self.core.on_frame(now, frame);
                    input = rest;
                }
                FeedResult::Error { error: DeframeError::Overflow | DeframeError::Cobs, rest } => {
                    self.core.stats.framing_errors += 1;
                    input = rest;
                }
            }
        }
    }

    /// Ends the current session from this side (spec 5.3): what is in flight
    /// is reported as after a peer restart (`Unconfirmed`, `StreamAborted`),
    /// a new session id is taken and the handshake runs again. A driver that
    /// declared its peer gone calls it, so that both sides start afresh when
    /// the line comes back instead of resuming half-torn-down streams.
    pub fn restart_session(&mut self, now: Instant) {
        self.core.new_session(now);
    }

    /// Forgets a partial frame, e.g. after the line was reopened.
    pub fn reset_input(&mut self) {
        self.deframer.reset();
    }

    /// Runs timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.on_timers(now);
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.next_deadline()
    }

    /// Writes the next frame to send into `out` (at least [`Self::MAX_WIRE`]
    /// bytes) and returns its length, or `None` when there is nothing to send.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if out.len() < Self::MAX_WIRE {
            debug_assert!(false, "poll_transmit buffer smaller than MAX_WIRE");
            return None;
        }
        self.core.on_timers(now);
        let raw_len = self.core.build_frame(now)?;
        let c = &mut self.core;
        let frame_len = c.protect(raw_len);
        let lead = c.last_tx.is_none_or(|t| now.since(t) >= c.config.idle_resync);
        let at = usize::from(lead);
        if lead {
            out[0] = framing::DELIMITER;
        }
        let frame = if frame_len > 0 { &c.protected[..frame_len] } else { &c.scratch[..raw_len] };
        let n = at + framing::encode(frame, &mut out[at..])?;
        if let Some(rate) = c.line_rate() {
            // The frame's last byte leaves once the bytes handed out before it
            // and its own have crossed the line.
            let wire = Duration::from_micros(n as u64 * 1_000_000 / rate);
            c.line_free_at = c.line_free_at.max(now) + wire;
            if let Some(slot) = c.built_data {
                c.tx.departed(slot, c.line_free_at);
            }
        }
        c.last_tx = Some(now);
        c.stats.frames_tx += 1;
        c.stats.bytes_tx += n as u64;
        Some(n)
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.events.pop_front().or_else(|| self.core.tx.poll_report())
    }

    /// Queues a packet on `channel`; it is fragmented and reassembled in order
    /// by the peer (see [`Delivery::more`]). It is queued in fragments of the
    /// largest payload the sizer may choose (or larger if the packet would
    /// otherwise need more than `W`), and each is cut down to the size wanted
    /// at its first transmission (spec 6.6). `TooLarge` means the packet
    /// exceeds `W` fragments of the largest payload both sides accept; before
    /// the handshake such a size is not known yet and a packet over `W` x
    /// [`MIN_PAYLOAD`] bytes gets `WouldBlock`.
    pub fn send(&mut self, channel: u8, data: &[u8]) -> Result<PacketId, SendError> {
        let c = &self.core;
        let cap = if c.connected { c.config.max_payload.min(c.negotiated_payload) } else { MIN_PAYLOAD };
        let cap = usize::from(cap.max(1));
        if !c.connected && data.len() > W * cap {
            return Err(SendError::WouldBlock);
        }
        let upper = usize::from(if c.connected { c.sizer.max() } else { MIN_PAYLOAD });
        let size = upper.max(data.len().div_ceil(W)).min(cap);
        let prio = self.core.config.priority(channel);
        self.core.tx.queue_packet(channel, prio, data, size)
    }

    /// Appends bytes to the stream on `channel`; returns how many were taken
    /// (fewer than offered when the send window is full).
    pub fn write_stream(&mut self, channel: u8, data: &[u8]) -> usize {
        let (prio, size) = (self.core.config.priority(channel), self.max_payload());
        // Unsent stream bytes wait ahead of other channels' data of the same
        // priority: bound them by fragments of the shared size, not the bulk one.
        let ahead = QUEUE_AHEAD * self.core.shared_size(size);
        let n = self.core.tx.write_stream(channel, prio, data, size, ahead);
        self.core.ledger.on_queued(channel, n);
        n
    }

    /// Ends the stream on `channel`; false if the send window is full (retry).
    pub fn finish_stream(&mut self, channel: u8) -> bool {
        let prio = self.core.config.priority(channel);
        match self.core.tx.finish_stream(channel, prio) {
            Some(added) => {
                if added {
                    self.core.ledger.on_queued(channel, 1);
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
        let prio = self.core.config.priority(channel);
        let reason = &reason[..reason.len().min(usize::from(MIN_PAYLOAD))];
        self.core.tx.abort_stream(channel, prio, reason)
    }

    /// Tells the core that the application wrote `n` more bytes of the stream
    /// on `channel` to their destination (count one more for an end of stream
    /// once the output is closed). The count goes back to the peer in ACK
    /// frames (spec 8.3): the peer's application counts as delivered only
    /// what this confirms.
    pub fn stream_written(&mut self, now: Instant, channel: u8, n: u32) {
        let c = &mut self.core;
        c.ledger.add_written(channel, n);
        if n > 0 && c.connected {
            let due = now + c.config.ack_delay;
            c.ack_deadline = Some(c.ack_deadline.map_or(due, |d| d.min(due)));
        }
    }

    /// Stream bytes (and ends of stream) written on `channel` this session
    /// that the peer has not confirmed written to their destination yet.
    pub fn stream_unconfirmed(&self, channel: u8) -> u32 {
        self.core.ledger.unconfirmed_on(channel)
    }

    /// The same summed over every channel.
    pub fn unconfirmed(&self) -> u64 {
        self.core.ledger.unconfirmed()
    }

    /// Hands the next in-order fragment to `f`.
    pub fn recv<R>(&mut self, f: impl FnOnce(Delivery, &[u8]) -> R) -> Option<R> {
        let c = &mut self.core;
        let closed_before = c.rx.ready() >= W;
        let mut len = 0;
        let r = c.rx.recv(|d, p| {
            len = p.len();
            f(d, p)
        })?;
        c.stats.delivered_bytes += len as u64;
        // Tell a peer whose window was closed that it opened again.
        if closed_before && c.connected {
            c.ack_now = true;
        }
        Some(r)
    }

    /// The channel of the next fragment [`recv`](Self::recv) would hand out, if any.
    /// A driver that takes a fragment only when that channel's consumer has room
    /// lets a slow consumer close the window, instead of buffering without bound.
    pub fn peek_channel(&self) -> Option<u8> {
        self.core.rx.peek_channel()
    }

    /// Payload size used for new fragments right now. Until the handshake tells
    /// the peer's limit, fragments are cut to [`MIN_PAYLOAD`], which every peer accepts.
    pub fn max_payload(&self) -> usize {
        let c = &self.core;
        let size = c.sizer.current();
        usize::from(if c.connected { size } else { size.min(MIN_PAYLOAD) })
    }

    /// Caps the payload size (e.g. a radio's MTU), up to what both sides accept;
    /// the adaptive sizer stays below it.
    pub fn set_max_payload(&mut self, max: u16) {
        let c = &mut self.core;
        c.config.max_payload = max.max(1);
        c.apply_payload_bounds();
    }

    /// Whether the handshake completed for the current session.
    pub fn is_connected(&self) -> bool {
        self.core.connected
    }

    /// When a valid frame of the peer's session (or a HELLO) last arrived;
    /// the time of creation or of the last session change before that. A
    /// driver declares the peer dead when this lies too far back.
    pub fn last_heard(&self) -> Instant {
        self.core.last_rx
    }

    /// Whether the peer was heard within `link_timeout`.
    pub fn is_up(&self) -> bool {
        self.core.connected && !self.core.down
    }

    /// Nothing is queued, in flight or unreported on the sending side.
    pub fn is_send_idle(&self) -> bool {
        self.core.tx.is_idle()
    }

    /// Whether an acknowledgement is due to the peer (at once, or when the
    /// delayed-ack timer runs out): a driver about to close lets it leave first.
    pub fn is_ack_owed(&self) -> bool {
        let c = &self.core;
        c.ack_now
            || c.ack_deadline.is_some()
            || c.probe_owed
            || c.hello_ack_owed.is_some()
            || c.ledger.has_news()
    }

    /// Free fragment slots for `send` / `write_stream`.
    pub fn send_capacity(&self) -> usize {
        self.core.tx.free()
    }

    /// This endpoint's session id.
    pub fn session(&self) -> u32 {
        self.core.session
    }

    /// The peer's session id, once known.
    pub fn peer_session(&self) -> Option<u32> {
        self.core.peer
    }

    /// Counters and gauges.
    pub fn stats(&self) -> Stats {
        let c = &self.core;
        let mut s = c.stats.clone();
        s.srtt_us = c.rtt.srtt().map_or(0, |d| d.as_micros() as u64);
        s.rto_us = c.rtt.rto().as_micros() as u64;
        s.payload_size = c.sizer.current();
        s.fec_strength = c.strength;
        s.fec_hint = c.last_hint;
        s.in_flight = c.tx.in_flight();
        s.path_rate = c.pacer.rate().unwrap_or(0);
        s
    }
}

impl<const W: usize, const N: usize> Core<W, N> {
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
        self.next_probe = None;
        if self.down {
            self.down = false;
            self.push_event(Event::LinkUp);
        }
    }

    fn on_frame(&mut self, now: Instant, buf: &mut [u8]) {
        let total = buf.len();
        let raw: &[u8] = match fec::repair(buf, |b| Frame::new_checked(b).is_ok()) {
            Repair::Plain => buf,
            Repair::Repaired { start, len, corrected } => {
                self.stats.fec_frames_rx += 1;
                self.stats.fec_corrected += corrected as u64;
                self.meter.on_frame(total, corrected as u64);
                &buf[start..start + len]
            }
            Repair::Failed => {
                self.stats.fec_failed += 1;
                self.stats.crc_errors += 1;
                // More damage than the parity of a codeword repairs: at least that much.
                let s = Strength::from_first_byte(buf.first().copied().unwrap_or(0));
                self.meter.on_frame(total, (s.corrects() + 1) as u64);
                return;
            }
        };
        let plain = raw.len() == total;
        let frame = match Frame::new_checked(raw) {
            Ok(f) => f,
            Err(WireError::Truncated) => {
                self.stats.framing_errors += 1;
                return;
            }
            Err(_) => {
                self.stats.crc_errors += 1;
                if plain {
                    self.meter.on_frame(total, 1);
                }
                return;
            }
        };
        if plain {
            self.meter.on_frame(total, 0);
        }
        self.stats.frames_rx += 1;
        let header = match Header::parse(&frame) {
            Ok(h) => h,
            Err(WireError::UnknownVersion(_)) => {
                self.stats.invalid_frames += 1;
                // Every version keeps the HELLO layout, so its version range is readable.
                let t = frame.frame_type();
                if t == FrameType::Hello as u8 || t == FrameType::HelloAck as u8 {
                    if let Ok(p) = HelloPayload::new_checked(frame.payload()) {
                        self.version_mismatch(p.min_version(), p.max_version());
                    }
                }
                return;
            }
            Err(_) => {
                self.stats.invalid_frames += 1;
                return;
            }
        };
        let payload = frame.payload();
        match header.frame_type {
            FrameType::Hello | FrameType::HelloAck => self.on_hello(now, &header, payload),
            FrameType::Data | FrameType::Ack => self.on_session_frame(now, &header, payload),
        }
    }

    fn version_mismatch(&mut self, peer_min: u8, peer_max: u8) {
        if !self.version_reported {
            self.version_reported = true;
            self.push_event(Event::VersionMismatch { peer_min, peer_max });
        }
    }

    fn on_hello(&mut self, now: Instant, h: &Header, payload: &[u8]) {
        let Ok(repr) = HelloPayload::new_checked(payload).and_then(|p| HelloRepr::parse(&p)) else {
            self.stats.invalid_frames += 1;
            return;
        };
        if !(repr.min_version..=repr.max_version).contains(&PROTOCOL) {
            self.version_mismatch(repr.min_version, repr.max_version);
            return;
        }
        let is_ack = h.frame_type == FrameType::HelloAck;
        if is_ack && repr.echo != self.session {
            // Answers a HELLO of one of our earlier sessions.
            self.stats.foreign_session += 1;
            return;
        }
        if self.connected {
            if self.peer == Some(h.session) {
                self.heard(now);
                self.clear_candidate();
                if !is_ack {
                    // Our HELLO_ACK was lost: the peer asks again.
                    self.hello_ack_owed = Some(h.session);
                }
            } else if is_ack {
                // Our HELLOs were answered when we connected: a late copy.
                self.stats.foreign_session += 1;
            } else {
                self.on_candidate(now, h.session, repr);
            }
            return;
        }
        // The handshake is open: whoever speaks to us now is the peer. A stale
        // HELLO replaces a tentative peer without any session change, because
        // nothing has been sent under this session yet.
        if self.peer != Some(h.session) {
            self.accept_peer(h.session, &repr);
        }
        self.heard(now);
        if is_ack {
            if let (Some(t), 0) = (self.hello_first, self.hello_backoff) {
                self.rtt.sample(now.since(t));
            }
            self.connect();
        } else {
            self.hello_ack_owed = Some(h.session);
        }
    }

    /// A HELLO from another session while connected (spec 5.3): the peer may
    /// have restarted, or the frame is stale (left in a buffer by a dead
    /// session) or replayed. The live session is not torn down for it: the
    /// current peer is POLLed (again each retransmission timeout), and only
    /// if it stays silent for the probation — a keepalive interval, at least a
    /// timeout — is the HELLO taken as a restart. A live peer is heard far
    /// sooner; a process stalled on a busy host for a few timeouts is not
    /// mistaken for a dead one (seen with a 50 ms timeout on loopback TCP).
    fn on_candidate(&mut self, now: Instant, session: u32, hello: HelloRepr) {
        match &mut self.candidate {
            Some(c) if c.session == session => c.hello = hello,
            _ => {
                self.candidate = Some(Candidate { session, hello, since: now, polled: now });
                self.probe_owed = true;
            }
        }
    }

    /// How long a HELLO of another session waits for the current peer.
    fn probation(&self) -> Duration {
        self.config.keepalive.max(self.rtt.rto())
    }

    /// The current peer was heard: a HELLO of another session on probation was stale.
    fn clear_candidate(&mut self) {
        if self.candidate.take().is_some() {
            self.stats.stale_hellos += 1;
        }
    }

    /// When a candidate HELLO becomes a restart, the peer silent until then,
    /// or the next POLL is due, whichever comes first.
    fn candidate_deadline(&self) -> Option<Instant> {
        self.candidate.map(|c| (c.since + self.probation()).min(c.polled + self.rtt.rto()))
    }

    /// The peer stayed silent after a HELLO of another session: it restarted.
    fn restart_to(&mut self, now: Instant, c: Candidate) {
        self.new_session(now);
        self.stats.peer_restarts += 1;
        self.push_event(Event::PeerRestarted);
        self.accept_peer(c.session, &c.hello);
        self.heard(now);
        self.hello_ack_owed = Some(c.session);
    }

    fn accept_peer(&mut self, session: u32, repr: &HelloRepr) {
        self.peer = Some(session);
        self.peer_limit = repr.window;
        let own = (Link::<W, N>::MAX_RAW - OVERHEAD) as u16;
        self.negotiated_payload = own.min(repr.max_frame - OVERHEAD as u16);
        self.apply_payload_bounds();
    }

    fn apply_payload_bounds(&mut self) {
        let cap = self.config.max_payload.min(self.payload_cap(self.strength)).min(self.rate_cap());
        self.sizer.set_bounds(self.config.min_payload.min(cap), cap);
    }

    /// Whether the path is paced by its measured rate (spec 6.8): its rate is
    /// not known. (A line of known rate is paced by that rate: there a low
    /// measured rate is as likely an application with little to send, and
    /// pacing by it would keep it low.)
    fn rate_limited(&self) -> bool {
        self.config.line_rate == 0
    }

    /// The rate frames leave at, for the departure times of spec 6.3.
    fn line_rate(&self) -> Option<u64> {
        (self.config.line_rate > 0).then_some(u64::from(self.config.line_rate))
    }

    /// Payload bytes new frames may add to what is in flight: the driver's
    /// bound (`max_in_flight_bytes`) and, on a rate-limited path, about two
    /// rate-round-trip products (spec 6.8). 0: no bound.
    fn in_flight_cap(&self) -> usize {
        let fixed = self.config.max_in_flight_bytes as usize;
        if !self.rate_limited() {
            return fixed;
        }
        let window = self.pacer.window(usize::from(self.sizer.current()));
        if fixed == 0 {
            window
        } else {
            fixed.min(window)
        }
    }

    /// The payload cap from the measured rate: [`crate::pacer::FRAME_TIME`]
    /// of it on a rate-limited path, never below 256 bytes.
    fn rate_cap(&self) -> u16 {
        match self.rate_cap {
            0 => u16::MAX,
            c => c,
        }
    }

    /// Takes in what an acknowledgement measured of the path (spec 6.8).
    fn on_path_sample(&mut self, now: Instant, rate: Option<(u64, Duration)>, rtt: Option<Duration>) {
        if let Some((bytes, interval)) = rate {
            self.pacer.on_rate_sample(now, bytes, interval);
        }
        if let Some(rtt) = rtt {
            self.pacer.on_rtt(now, rtt);
        }
        self.tx.progress_restarts_timers = self.rate_limited();
        self.rtt.wide = self.rate_limited();
        let cap = match self.pacer.frame_cap() {
            Some(c) if self.rate_limited() => c.clamp(256, u64::from(u16::MAX)) as u16,
            _ => 0,
        };
        // Re-bound the sizer only when the cap moved by a quarter.
        if cap.abs_diff(self.rate_cap) > self.rate_cap / 4 {
            self.rate_cap = cap;
            if self.strength == Strength::Off {
                self.apply_payload_bounds();
            }
        }
    }

    /// The largest payload whose frame, protected at `s`, fits the peer's
    /// limit, and fits it at [`Strength::ROOM`] too: a fragment keeps the size
    /// it was cut at until it is acknowledged, so one cut plain on a clean line
    /// must still take real protection if the line turns bad (a plain 4 KiB
    /// frame almost never crosses a line at BER 1e-3).
    fn payload_cap(&self, s: Strength) -> u16 {
        let limit = usize::from(self.negotiated_payload) + OVERHEAD;
        let mut p = self.negotiated_payload;
        while p > 1
            && [s, Strength::ROOM].iter().any(|&s| fec::protected_len(usize::from(p) + OVERHEAD, s) > limit)
        {
            p -= 1;
        }
        p
    }

    /// Follows the peer's error report: the strength with the best expected
    /// share of the line, each strength judged at its best payload size.
    fn choose_strength(&mut self, noise: policy::Noise) {
        if !self.config.fec {
            return;
        }
        let (pick, size) =
            policy::pick(self.strength, |s| policy::best_payload(s, usize::from(self.payload_cap(s)), noise));
        self.strength = pick;
        if pick == Strength::Off {
            // Plain frames: the loss-driven sizer finds the size.
            self.apply_payload_bounds();
        } else {
            // With parity the sender sees no losses to steer by; the model does.
            let p = (size as u16).min(self.config.max_payload).min(self.rate_cap()).max(1);
            self.sizer.set_bounds(p, p);
        }
    }

    /// Protects the raw frame in `scratch` into `protected`; returns its
    /// length, or 0 to send the plain frame. The current strength, unless the
    /// frame was cut longer than frames are cut now (then the strength best
    /// for its length) or was lost twice already (then the strongest); either
    /// only among the strengths that fit the peer's limit (spec 6.7).
    fn protect(&mut self, raw_len: usize) -> usize {
        if !self.config.fec {
            return 0;
        }
        let limit = (usize::from(self.negotiated_payload) + OVERHEAD).min(N);
        let fits = |s: Strength| s == Strength::Off || fec::protected_len(raw_len, s) <= limit;
        let payload = raw_len.saturating_sub(OVERHEAD);
        // A fragment cut longer than frames are cut now (the line has turned
        // worse since) gets the strength best for its own length: the one
        // chosen for today's shorter frames may never carry it across. Only
        // such frames need the report decoded.
        let longer = payload > usize::from(self.sizer.current());
        let noise = if longer { policy::noise_of_hint(self.last_hint) } else { None };
        let s = match noise {
            Some(noise) => {
                let option =
                    |s| (payload, if fits(s) { policy::efficiency(payload, s, noise) } else { -1.0 });
                policy::pick(self.strength, option).0
            }
            None => {
                let mut s = self.strength;
                while !fits(s) {
                    s = s.weaker();
                }
                s
            }
        };
        // A frame lost twice already met more noise than the peer's report
        // says (the report lags when the line turns worse, and frames that die
        // whole tell the receiver little): its further copies get the strongest
        // code that fits (sim test `line_turning_bad_mid_transfer_still_delivers`:
        // 73-75% of the line after the turn; 61-70% without escalating, 71-72%
        // stepping up one code per loss).
        let repeats = self.built_data.map_or(0, |slot| self.tx.repeats(slot));
        let s = if repeats >= 2 {
            Strength::ALL.iter().rev().copied().find(|&x| fits(x)).unwrap_or(s)
        } else {
            s
        };
        if s == Strength::Off {
            return 0;
        }
        match fec::protect(&self.scratch[..raw_len], s, &mut self.protected) {
            Some(n) => {
                self.stats.fec_frames_tx += 1;
                n
            }
            None => 0,
        }
    }

    fn connect(&mut self) {
        // Fragments kept from an earlier session may be larger than this peer takes.
        self.tx.withdraw_oversized(usize::from(self.negotiated_payload));
        self.connected = true;
        self.hello_at = None;
        if let Some(peer) = self.peer {
            self.push_event(Event::Connected { peer });
        }
    }

    /// Starts a fresh session after the peer restarted: our own id changes too,
    /// so no frame of the old session can be mistaken for one of the new.
    fn new_session(&mut self, now: Instant) {
        self.tx.reset();
        self.rx.rebase();
        self.session = loop {
            let s = splitmix(&mut self.rng) as u32;
            if s != 0 && s != self.session {
                break s;
            }
        };
        self.peer = None;
        self.connected = false;
        self.peer_limit = 0;
        self.hello_at = Some(now);
        self.hello_backoff = 0;
        self.hello_first = None;
        self.hello_ack_owed = None;
        self.ack_now = false;
        self.ack_deadline = None;
        self.unacked = 0;
        self.probe_owed = false;
        self.stalled = false;
        self.window_probe_at = None;
        self.candidate = None;
        self.answer_poll = false;
        self.confirm_probe_at = None;
        self.confirm_probes = 0;
        self.ledger = Ledger::new();
    }

    fn on_session_frame(&mut self, now: Instant, h: &Header, payload: &[u8]) {
        if self.peer != Some(h.session) {
            self.stats.foreign_session += 1;
            if self.connected {
                return;
            }
            // Someone sends data without a handshake with us: say hello now,
            // but not more often than HELLOs go anyway (a buffer full of a
            // dead session's frames must not become a HELLO storm).
            if self.last_hello.is_none_or(|t| now >= t + self.config.hello_interval) {
                self.hello_at = Some(now);
            }
            return;
        }
        let sack = if h.frame_type == FrameType::Ack {
            let Ok(p) = AckPayload::new_checked(payload) else {
                self.stats.invalid_frames += 1;
                return;
            };
            Some(AckRepr::parse(&p))
        } else {
            None
        };
        if !self.connected {
            // The peer sends DATA/ACK only once it holds our HELLO_ACK, which
            // names our current session: the handshake is complete.
            self.connect();
        }
        self.heard(now);
        self.clear_candidate();
        if let Some(a) = &sack {
            if seq_lt(self.peer_limit, a.limit) {
                self.peer_limit = a.limit;
            }
            let mut confirmed = 0;
            for w in a.written() {
                confirmed += self.ledger.on_record(*w);
            }
            if confirmed > 0 {
                self.confirm_probes = 0;
                self.confirm_probe_at = None;
            }
            if a.hint != self.last_hint {
                self.last_hint = a.hint;
                if let Some(noise) = policy::noise_of_hint(a.hint) {
                    self.choose_strength(noise);
                }
            }
        }
        if h.flags & flags::ACK != 0 {
            let full = self.sizer.current();
            let out = self.tx.on_ack(now, h.ack, sack.as_ref(), self.config.reorder_threshold, full);
            if let Some(rtt) = out.rtt {
                self.rtt.sample(rtt);
            }
            self.on_path_sample(now, out.rate_sample, out.rtt);
            // A spurious retransmission was counted as a loss when it was sent:
            // take that back before the sizer looks again.
            self.sizer.on_not_lost(out.spurious);
            self.sizer.on_delivered(out.acked, out.acked_full);
            self.sizer.on_lost(out.lost);
            self.stats.spurious_retransmits += u64::from(out.spurious);
            if out.advanced {
                // Progress: the line works, so drop the timeout backoff even
                // if every acked frame was a retransmission (Karn gives no sample).
                self.rtt.reset_backoff();
            }
            self.stats.fast_retransmits += u64::from(out.lost);
        }
        if h.flags & flags::POLL != 0 {
            self.ack_now = true;
            self.answer_poll = true;
        }
        if h.frame_type == FrameType::Data {
            match self.rx.on_data(h.seq, h.channel, h.flags, payload) {
                Accept::New { in_order: true } if !self.rx.has_gap() => {
                    self.unacked = self.unacked.saturating_add(1);
                    if self.unacked >= self.config.ack_every {
                        self.ack_now = true;
                    } else if self.ack_deadline.is_none() {
                        self.ack_deadline = Some(now + self.config.ack_delay);
                    }
                }
                Accept::New { .. } => self.ack_now = true,
                Accept::Duplicate => {
                    self.stats.duplicates += 1;
                    self.ack_now = true;
                }
                Accept::OutOfWindow => {
                    self.stats.out_of_window += 1;
                    self.ack_now = true;
                }
            }
        }
        self.update_stall();
        self.update_confirm_probe(now);
    }

    /// Arms the POLL for missing written confirmations (spec 8.3) while
    /// everything sent is acknowledged and only they are missing: the ACK that
    /// carried them may have been lost, and nothing else would bring them.
    fn update_confirm_probe(&mut self, now: Instant) {
        let waiting = self.connected
            && self.ledger.unconfirmed() > 0
            && self.tx.in_flight() == 0
            && !self.tx.has_queued();
        if !waiting {
            self.confirm_probe_at = None;
            self.confirm_probes = 0;
        } else if self.confirm_probe_at.is_none() {
            self.confirm_probe_at = Some(now + self.rtt.rto());
        }
    }

    fn update_stall(&mut self) {
        let stalled = self.connected && self.tx.has_queued() && self.tx.blocked_by_peer(self.peer_limit);
        if stalled != self.stalled {
            self.stalled = stalled;
            self.window_probe_at = stalled.then(|| self.last_rx + self.rtt.rto());
            self.push_event(if stalled { Event::WindowStalled } else { Event::WindowOpened });
        }
    }

    fn on_timers(&mut self, now: Instant) {
        // Due: the next poll_transmit may send. Not a deadline any more, so a
        // driver that cannot write just now does not spin on it.
        if self.paced_until.is_some_and(|t| t <= now) {
            self.paced_until = None;
        }
        if self.ack_deadline.is_some_and(|d| d <= now) {
            self.ack_deadline = None;
            self.ack_now = true;
        }
        let rto = self.rtt.rto();
        if self.tx.rto_deadline(rto).is_some_and(|d| d <= now) {
            let n = self.tx.on_timeout(now, rto);
            if n > 0 {
                self.stats.timeouts += 1;
                // A small POLL gets through where a long frame did not; its
                // answer tells lost frames (noise) from a silent peer (outage).
                self.probe_owed = true;
                if now.since(self.last_rx) < rto {
                    // Noise, on a line of known rate; on a rate-limited path
                    // a timeout while the peer is heard is as likely a queue,
                    // and frame length is not what to cut for delay (6.8).
                    if !self.rate_limited() {
                        self.sizer.on_lost(n);
                    }
                } else {
                    self.rtt.on_timeout();
                }
            }
        }
        let silent = now.since(self.last_rx);
        if self.connected && silent >= self.config.keepalive {
            match self.next_probe {
                Some(t) if t > now => {}
                _ => {
                    self.probe_owed = true;
                    self.next_probe = Some(now + self.config.keepalive);
                }
            }
        }
        if self.window_probe_at.is_some_and(|t| t <= now) {
            // The ACK that reopens the peer's window may have been lost: ask again.
            self.probe_owed = true;
            self.window_probe_at = Some(now + rto);
        }
        if self.confirm_probe_at.is_some_and(|t| t <= now) {
            // Back off to the keepalive: the peer may just be slow to write.
            self.probe_owed = true;
            self.stats.confirm_polls += 1;
            self.confirm_probes = (self.confirm_probes + 1).min(16);
            let wait = (rto * (1 << self.confirm_probes.min(8))).min(self.config.keepalive.max(rto));
            self.confirm_probe_at = Some(now + wait);
        }
        if let Some(c) = self.candidate {
            if now >= c.since + self.probation() {
                self.candidate = None;
                self.restart_to(now, c);
            } else if now >= c.polled + rto {
                self.probe_owed = true;
                self.candidate = Some(Candidate { polled: now, ..c });
            }
        }
        if !self.down && silent >= self.config.link_timeout {
            self.down = true;
            self.push_event(Event::LinkDown);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut t = if self.connected { None } else { self.hello_at };
        t = earliest(t, self.ack_deadline);
        t = earliest(t, self.window_probe_at);
        t = earliest(t, self.tx.rto_deadline(self.rtt.rto()));
        t = earliest(t, self.paced_until);
        t = earliest(t, self.confirm_probe_at);
        t = earliest(t, self.candidate_deadline());
        if self.hello_ack_owed.is_some() {
            t = earliest(t, Some(self.hello_ack_allowed()));
        }
        if self.connected {
            let keepalive = match self.next_probe {
                Some(p) => p,
                None => self.last_rx + self.config.keepalive,
            };
            t = earliest(t, Some(keepalive));
        }
        if !self.down {
            t = earliest(t, Some(self.last_rx + self.config.link_timeout));
        }
        t
    }

    /// Builds the next frame into `scratch`; returns its raw length.
    fn build_frame(&mut self, now: Instant) -> Option<usize> {
        self.built_data = None;
        self.paced_until = None;
        let mut hello = [0u8; HELLO_LEN];
        if self.hello_ack_owed.is_some() && now >= self.hello_ack_allowed() {
            let echo = self.hello_ack_owed.take().unwrap_or(0);
            self.last_hello_ack = Some(now);
            self.hello_repr(echo).emit(&mut hello);
            return Some(self.header(FrameType::HelloAck, 0).emit_frame(&hello, &mut self.scratch));
        }
        if !self.connected {
            let due = self.hello_at?;
            if due > now {
                return None;
            }
            if self.hello_first.is_none() {
                self.hello_first = Some(now);
            } else {
                self.hello_backoff = (self.hello_backoff + 1).min(3);
            }
            self.hello_at = Some(now + self.config.hello_interval * (1 << self.hello_backoff));
            self.last_hello = Some(now);
            self.hello_repr(0).emit(&mut hello);
            return Some(self.header(FrameType::Hello, 0).emit_frame(&hello, &mut self.scratch));
        }
        if self.ack_now || self.probe_owed {
            return Some(self.build_ack());
        }
        let q = match self.config.shared_queue {
            s if s > Duration::ZERO && self.tx.is_shared(now) => s.min(self.config.max_queue),
            _ => self.config.max_queue,
        };
        if self.line_rate().is_some() && q > Duration::ZERO && self.line_free_at > now + q {
            // Enough is queued ahead already: a frame handed out now would only
            // wait, and a packet arriving meanwhile would wait behind it.
            let at = Instant::from_micros(self.line_free_at.as_micros() - q.as_micros() as u64);
            self.paced_until = Some(at);
            return None;
        }
        let alone = usize::from(self.sizer.current());
        let cut = Cut { alone, shared: self.shared_size(alone) };
        let pick = self.tx.pick(now, self.peer_limit, self.in_flight_cap(), cut);
        self.update_stall();
        let pick = pick?;
        self.built_data = Some(pick.slot);
        let (channel, fl, data) = self.tx.frame_of(pick.slot);
        let mut h = self.header(FrameType::Data, fl | flags::ACK);
        h.channel = channel;
        h.seq = pick.seq;
        h.ack = self.rx.cum_ack();
        let len = h.emit_frame(data, &mut self.scratch);
        if pick.retransmission {
            self.stats.retransmits += 1;
            self.stats.retransmitted_bytes += data.len() as u64;
        } else {
            self.stats.data_tx += 1;
        }
        self.sizer.on_sent(data.len());
        // The piggybacked ack covers an in-order receiver; gaps still need
        // SACK, and new written counts an ACK frame of their own.
        if !self.rx.has_gap() && !self.ledger.has_news() {
            self.unacked = 0;
            self.ack_deadline = None;
        }
        Some(len)
    }

    fn build_ack(&mut self) -> usize {
        let mut fl = flags::ACK;
        if core::mem::take(&mut self.probe_owed) {
            fl |= flags::POLL;
        }
        self.ack_now = false;
        self.ack_deadline = None;
        self.unacked = 0;
        let mut h = self.header(FrameType::Ack, fl);
        h.ack = self.rx.cum_ack();
        let mut ack = self.rx.sack();
        ack.hint = self.meter.hint();
        // Written counts fill what the peer's frame limit leaves; the answer
        // to a POLL carries every one (in turn, if they do not all fit).
        let all = core::mem::take(&mut self.answer_poll);
        let room = usize::from(self.negotiated_payload).saturating_sub(5 + usize::from(ack.sack_len));
        ack.written_len = self.ledger.records(room / WRITTEN_LEN, all, &mut ack.written) as u8;
        let mut payload = [0u8; 5 + MAX_SACK_BYTES + MAX_WRITTEN * WRITTEN_LEN];
        let n = ack.emit(&mut payload);
        self.stats.acks_tx += 1;
        h.emit_frame(&payload[..n], &mut self.scratch)
    }

    /// When the next HELLO_ACK may leave: one per `hello_interval`.
    fn hello_ack_allowed(&self) -> Instant {
        self.last_hello_ack.map_or(Instant::ZERO, |t| t + self.config.hello_interval)
    }

    fn header(&self, frame_type: FrameType, fl: u8) -> Header {
        Header { frame_type, flags: fl, channel: 0, session: self.session, seq: 0, ack: 0 }
    }

    fn hello_repr(&self, echo: u32) -> HelloRepr {
        HelloRepr {
            min_version: PROTOCOL,
            max_version: PROTOCOL,
            max_frame: Link::<W, N>::MAX_RAW as u16,
            // Counted from sequence 0 of this session: after a restart, slots
            // still holding the old session's undelivered data are not offered.
            window: self.rx.limit().min(0x7fff),
            echo,
        }
    }
}
