//! An endpoint: the connections of one node on one medium, and what they
//! share — the line's pacing (spec 6.3), the measure of damage on what
//! arrives (6.7), and which connection each frame belongs to.
//!
//! Routing (spec 5.6): HELLO and HELLO_ACK frames carry node addresses where
//! a medium is shared (4.1); DATA and ACK frames carry the sender's session
//! id, which names one connection of one node — so no address is needed in
//! them, and frames of other nodes' conversations overheard on a shared
//! medium, of stale sessions or of strangers are dropped and counted
//! (`foreign_session`) without disturbing any live connection. A
//! point-to-point line is an endpoint of one connection with no addresses.

use crate::config::Config;
use crate::conn::Connection;
use crate::fec::{policy, Strength};
use crate::stats::Stats;
use crate::storage::Buf;
use crate::time::Duration;
use crate::time::{earliest, Instant};
use crate::wire::{Error as WireError, Frame, FrameType, Header, HelloPayload, HelloRepr};

/// A frame [`Endpoint::poll_frame`] built: how long, how to protect it, and
/// where it came from (for [`Endpoint::frame_sent`]).
#[derive(Debug, Clone, Copy)]
pub struct Outgoing {
    /// Raw frame length (header, payload, CRC).
    pub len: usize,
    /// The in-frame FEC strength the connection wants for it (6.7).
    pub strength: Strength,
    conn: usize,
    slot: Option<usize>,
}

/// What the framing knows about a frame's trip (for the damage measure, 6.7).
#[derive(Debug, Clone, Copy, Default)]
pub struct Reception {
    /// Bytes the frame took on the line (its protected form, if protected).
    pub wire_len: usize,
    /// Symbols in-frame FEC corrected, if the frame was protected.
    pub corrected: Option<u32>,
}

/// The connections of one node on one medium.
pub struct Endpoint<'a> {
    config: Config,
    /// This node's address on a shared medium (0: a point-to-point line).
    addr: u16,
    conns: Buf<'a, Connection<'a>>,
    /// Where the next round of polling starts: connections take turns.
    turn: usize,
    stats: Stats,
    /// This side's measure of damaged bytes, reported to peers in ACKs.
    meter: policy::ErrorMeter,
    /// When the line will have sent every byte handed out so far (only with
    /// `Config::line_rate`): the next frame leaves behind them.
    line_free_at: Instant,
    /// When the line's queue will be short enough for a DATA frame that
    /// `Config::max_queue` holds back.
    paced_until: Option<Instant>,
}

impl<'a> Endpoint<'a> {
    /// An endpoint of node `addr` (0 on a point-to-point line) with the
    /// given connections. `config` holds the line's settings (`line_rate`,
    /// `max_queue`, `shared_queue`); each connection has its own copy for the
    /// rest.
    pub fn new(config: Config, addr: u16, conns: Buf<'a, Connection<'a>>, now: Instant) -> Self {
        Endpoint {
            config,
            addr,
            conns,
            turn: 0,
            stats: Stats::default(),
            meter: policy::ErrorMeter::default(),
            line_free_at: now,
            paced_until: None,
        }
    }

    /// The connections.
    pub fn connections(&self) -> &[Connection<'a>] {
        &self.conns
    }

    /// Connection `i`.
    pub fn connection(&self, i: usize) -> &Connection<'a> {
        &self.conns[i]
    }

    /// Connection `i`, to send, receive and poll events on.
    pub fn connection_mut(&mut self, i: usize) -> &mut Connection<'a> {
        &mut self.conns[i]
    }

    /// This node's address.
    pub fn addr(&self) -> u16 {
        self.addr
    }

    /// The line's counters (framing, CRC, routing) merged with those of every
    /// connection.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        for c in self.conns.iter() {
            s.absorb(&c.stats());
        }
        s
    }

    /// A frame arrived damaged beyond what its FEC repairs (the framing saw
    /// a protected frame it could not repair): it counts as damage of at
    /// least `symbols` symbols in `wire_len` bytes (6.7).
    pub fn frame_unrepairable(&mut self, wire_len: usize, symbols: u32) {
        self.stats.fec_failed += 1;
        self.stats.crc_errors += 1;
        self.meter.on_frame(wire_len, u64::from(symbols));
    }

    /// Bytes that did not make a frame (bad COBS, an overflow, a KISS error).
    pub fn framing_error(&mut self) {
        self.stats.framing_errors += 1;
    }

    /// Counts bytes that arrived from the line.
    pub fn bytes_received(&mut self, n: usize) {
        self.stats.bytes_rx += n as u64;
    }

    /// A raw frame (header, payload, CRC) from the framing: checked, routed
    /// to its connection (spec 3.3, 5).
    pub fn handle_frame(&mut self, now: Instant, raw: &[u8], rx: Reception) {
        if let Some(corrected) = rx.corrected {
            self.stats.fec_frames_rx += 1;
            self.stats.fec_corrected += u64::from(corrected);
            self.meter.on_frame(rx.wire_len, u64::from(corrected));
        }
        let plain = rx.corrected.is_none();
        let frame = match Frame::new_checked(raw) {
            Ok(f) => f,
            Err(WireError::Truncated) => {
                self.stats.framing_errors += 1;
                return;
            }
            Err(_) => {
                self.stats.crc_errors += 1;
                if plain {
                    self.meter.on_frame(rx.wire_len, 1);
                }
                return;
            }
        };
        if plain {
            self.meter.on_frame(rx.wire_len, 0);
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
                        for c in self.conns.iter_mut() {
                            c.other_version(p.min_version(), p.max_version());
                        }
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
            FrameType::Hello | FrameType::HelloAck => self.route_hello(now, &header, payload),
            FrameType::Data | FrameType::Ack => self.route_session_frame(now, &header, payload),
        }
    }

    fn route_hello(&mut self, now: Instant, h: &Header, payload: &[u8]) {
        let Ok(repr) = HelloPayload::new_checked(payload).and_then(|p| HelloRepr::parse(&p)) else {
            self.stats.invalid_frames += 1;
            return;
        };
        if repr.dst != 0 && self.addr != 0 && repr.dst != self.addr {
            // For another node on the medium.
            self.stats.foreign_session += 1;
            return;
        }
        match self.conns.iter().position(|c| c.takes_hello(h.session, repr.src, repr.echo)) {
            Some(i) => self.conns[i].on_hello(now, h, repr),
            None => self.stats.foreign_session += 1,
        }
    }

    fn route_session_frame(&mut self, now: Instant, h: &Header, payload: &[u8]) {
        if let Some(i) = self.conns.iter().position(|c| c.peer_session() == Some(h.session)) {
            self.conns[i].on_session_frame(now, h, payload);
        } else if self.conns.len() == 1 && self.addr == 0 {
            // A point-to-point line: a stranger's data may mean the peer
            // restarted and has not said hello yet (5.2). On a shared medium
            // it is another node's conversation.
            self.conns[0].on_session_frame(now, h, payload);
        } else {
            self.stats.foreign_session += 1;
        }
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Due: the next poll may send. Not a deadline any more, so a driver
        // that cannot write just now does not spin on it.
        if self.paced_until.is_some_and(|t| t <= now) {
            self.paced_until = None;
        }
        for c in self.conns.iter_mut() {
            c.handle_timeout(now);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns.iter().fold(self.paced_until, |t, c| earliest(t, c.poll_timeout()))
    }

    /// Builds the next frame to send into `out` (at least the largest raw
    /// frame of any connection): control frames first (HELLO, HELLO_ACK,
    /// ACK), then DATA while the line's queue allows (6.3); connections take
    /// turns. Returns `None` when there is nothing to send now.
    pub fn poll_frame(&mut self, now: Instant, out: &mut [u8]) -> Option<Outgoing> {
        self.handle_timeout(now);
        self.paced_until = None;
        let n = self.conns.len();
        let hint = self.meter.hint();
        for k in 0..n {
            let i = (self.turn + k) % n;
            if let Some(len) = self.conns[i].poll_control(now, hint, self.addr, out) {
                return Some(self.built(i, len, None));
            }
        }
        let shared = self.conns.iter().any(|c| c.is_shared(now));
        let q = match self.config.shared_queue {
            s if s > Duration::ZERO && shared => s.min(self.config.max_queue),
            _ => self.config.max_queue,
        };
        if self.config.line_rate > 0 && q > Duration::ZERO && self.line_free_at > now + q {
            // Enough is queued ahead already: a frame handed out now would only
            // wait, and a packet arriving meanwhile would wait behind it.
            let at = Instant::from_micros(self.line_free_at.as_micros() - q.as_micros());
            self.paced_until = Some(at);
            return None;
        }
        for k in 0..n {
            let i = (self.turn + k) % n;
            if let Some(d) = self.conns[i].poll_data(now, out) {
                self.turn = (i + 1) % n;
                return Some(self.built(i, d.len, Some(d.slot)));
            }
        }
        None
    }

    fn built(&mut self, conn: usize, len: usize, slot: Option<usize>) -> Outgoing {
        let strength = self.conns[conn].frame_strength(len, slot);
        Outgoing { len, strength, conn, slot }
    }

    /// The framing handed the frame `out` to the line as `wire_len` bytes at
    /// `now` (protected with `protected` parity, if any): the departure time
    /// of its last byte follows from the line rate (6.3).
    pub fn frame_sent(&mut self, now: Instant, out: &Outgoing, wire_len: usize, protected: bool) {
        if self.config.line_rate > 0 {
            let wire = Duration::on_the_wire(wire_len, self.config.line_rate);
            self.line_free_at = self.line_free_at.max(now) + wire;
            if let Some(slot) = out.slot {
                self.conns[out.conn].departed(slot, self.line_free_at);
            }
        }
        if protected {
            self.conns[out.conn].count_protected();
        }
        self.stats.frames_tx += 1;
        self.stats.bytes_tx += wire_len as u64;
    }
}
