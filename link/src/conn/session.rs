//! Spec section 5: the handshake and the session contract — who the peer
//! is, when the connection is up, and when a HELLO of another session ends
//! it (the probation of 5.3). All of it is here; no driver second-guesses it.

use super::{frames::AckState, new_session_id, Connection};
use crate::event::Event;
use crate::time::Duration;
use crate::time::Instant;
use crate::wire::{hello_flags, FrameType, Header, HelloRepr, OVERHEAD, PROTOCOL};

/// A HELLO from a session other than the connected peer's, on probation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    session: u32,
    hello: HelloRepr,
    /// When it arrived: the current peer heard after this clears it.
    since: Instant,
    /// When the current peer was last POLLed to prove it is alive.
    polled: Instant,
}

/// Where the handshake stands.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Sending HELLOs; a tentative peer is whoever spoke last (5.2).
    Opening {
        peer: Option<u32>,
        /// When the next HELLO is due.
        hello_at: Instant,
        /// Doublings of the HELLO interval so far (at most 3).
        backoff: u32,
        /// When the first HELLO left (the HELLO round trip is an RTT sample).
        first: Option<Instant>,
    },
    /// Handshake complete: data flows.
    Connected { peer: u32, candidate: Option<Candidate> },
}

/// The session state of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Session {
    phase: Phase,
    /// A HELLO_ACK owed, echoing this session id.
    hello_ack_owed: Option<u32>,
    /// When the last HELLO_ACK left: they go out at most once per
    /// `hello_interval`, so a flood of stale HELLOs cannot make a storm.
    last_hello_ack: Option<Instant>,
    /// When the last HELLO left.
    last_hello: Option<Instant>,
}

impl Session {
    /// A new session: HELLOs from `now` on.
    pub fn opening(now: Instant) -> Self {
        Session {
            phase: Phase::Opening { peer: None, hello_at: now, backoff: 0, first: None },
            hello_ack_owed: None,
            last_hello_ack: None,
            last_hello: None,
        }
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Connected { .. })
    }

    pub fn peer(&self) -> Option<u32> {
        match self.phase {
            Phase::Opening { peer, .. } => peer,
            Phase::Connected { peer, .. } => Some(peer),
        }
    }

    pub fn hello_ack_owed(&self) -> bool {
        self.hello_ack_owed.is_some()
    }

    /// When the next HELLO is due, while opening.
    pub fn hello_due(&self) -> Option<Instant> {
        match self.phase {
            Phase::Opening { hello_at, .. } => Some(hello_at),
            Phase::Connected { .. } => None,
        }
    }
}

impl Connection<'_> {
    /// Whether a HELLO or HELLO_ACK from `session` at node `src` is for this
    /// connection (the endpoint routes by it): the peer's own, one for this
    /// connection's peer node, or — on a point-to-point line — any.
    pub(crate) fn takes_hello(&self, session: u32, src: u16, echo: u32) -> bool {
        if echo != 0 {
            return echo == self.session;
        }
        self.state.peer() == Some(session) || self.peer_addr == 0 || self.peer_addr == src
    }

    fn version_mismatch(&mut self, peer_min: u8, peer_max: u8) {
        if !self.version_reported {
            self.version_reported = true;
            self.push_event(Event::VersionMismatch { peer_min, peer_max });
        }
    }

    /// A peer's version range seen in a frame of another layout (9.2).
    pub(crate) fn other_version(&mut self, peer_min: u8, peer_max: u8) {
        self.version_mismatch(peer_min, peer_max);
    }

    /// A HELLO or HELLO_ACK (spec 5.2, 5.3).
    pub(crate) fn on_hello(&mut self, now: Instant, h: &Header, repr: HelloRepr) {
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
        match self.state.phase {
            Phase::Connected { peer, .. } if peer == h.session => {
                self.heard(now);
                self.clear_candidate();
                if !is_ack {
                    // Our HELLO_ACK was lost: the peer asks again.
                    self.state.hello_ack_owed = Some(h.session);
                }
            }
            // Our HELLOs were answered when we connected: a late copy.
            Phase::Connected { .. } if is_ack => self.stats.foreign_session += 1,
            Phase::Connected { .. } => self.on_candidate(now, h.session, repr),
            Phase::Opening { peer, backoff, first, .. } => {
                // The handshake is open: whoever speaks to us now is the peer. A
                // stale HELLO replaces a tentative peer without any session
                // change, because nothing has been sent under this session yet.
                if peer != Some(h.session) {
                    self.accept_peer(h.session, &repr);
                }
                self.heard(now);
                if is_ack {
                    if let (Some(t), 0) = (first, backoff) {
                        self.rtt.sample(now.since(t));
                    }
                    self.connect();
                } else {
                    self.state.hello_ack_owed = Some(h.session);
                }
            }
        }
    }

    /// A DATA or ACK frame of a session not our peer's while opening: someone
    /// sends data without a handshake with us, so say hello now — but not
    /// more often than HELLOs go anyway (a buffer full of a dead session's
    /// frames must not become a HELLO storm).
    pub(crate) fn on_foreign(&mut self, now: Instant) {
        self.stats.foreign_session += 1;
        let interval = self.config.hello_interval;
        let last = self.state.last_hello;
        if let Phase::Opening { hello_at, .. } = &mut self.state.phase {
            if last.is_none_or(|t| now >= t + interval) {
                *hello_at = now;
            }
        }
    }

    /// A DATA or ACK frame of our peer's session while opening: the peer sends
    /// them only once it holds our HELLO_ACK, which names our current
    /// session, so the handshake is complete (5.2).
    pub(crate) fn confirm_by_data(&mut self) {
        if !self.is_connected() {
            self.connect();
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
        let Phase::Connected { candidate, .. } = &mut self.state.phase else { return };
        match candidate {
            Some(c) if c.session == session => c.hello = hello,
            _ => {
                *candidate = Some(Candidate { session, hello, since: now, polled: now });
                self.acks.probe_owed = true;
            }
        }
    }

    /// How long a HELLO of another session waits for the current peer.
    fn probation(&self) -> Duration {
        self.config.keepalive.max(self.rtt.rto())
    }

    /// The current peer was heard: a HELLO of another session on probation was stale.
    pub(crate) fn clear_candidate(&mut self) {
        if let Phase::Connected { candidate, .. } = &mut self.state.phase {
            if candidate.take().is_some() {
                self.stats.stale_hellos += 1;
            }
        }
    }

    fn candidate(&self) -> Option<Candidate> {
        match self.state.phase {
            Phase::Connected { candidate, .. } => candidate,
            Phase::Opening { .. } => None,
        }
    }

    /// When a candidate HELLO becomes a restart, the peer silent until then,
    /// or the next POLL is due, whichever comes first.
    pub(crate) fn candidate_deadline(&self) -> Option<Instant> {
        self.candidate().map(|c| (c.since + self.probation()).min(c.polled + self.rtt.rto()))
    }

    /// The candidate's timers: a POLL each timeout; the restart at the end of
    /// the probation.
    pub(crate) fn candidate_timers(&mut self, now: Instant) {
        let Some(c) = self.candidate() else { return };
        if now >= c.since + self.probation() {
            self.restart_to(now, c);
        } else if now >= c.polled + self.rtt.rto() {
            self.acks.probe_owed = true;
            if let Phase::Connected { candidate: Some(c), .. } = &mut self.state.phase {
                c.polled = now;
            }
        }
    }

    /// The peer stayed silent after a HELLO of another session: it restarted.
    fn restart_to(&mut self, now: Instant, c: Candidate) {
        self.new_session(now);
        self.stats.peer_restarts += 1;
        self.push_event(Event::PeerRestarted);
        self.accept_peer(c.session, &c.hello);
        self.heard(now);
        self.state.hello_ack_owed = Some(c.session);
    }

    fn accept_peer(&mut self, session: u32, repr: &HelloRepr) {
        if let Phase::Opening { peer, .. } = &mut self.state.phase {
            *peer = Some(session);
        }
        self.peer_limit = repr.window;
        let own = self.max_raw - OVERHEAD as u16;
        self.negotiated_payload = own.min(repr.max_frame - OVERHEAD as u16);
        self.peer_no_fec = repr.flags & hello_flags::NO_FEC != 0;
        if self.peer_no_fec {
            self.strength = crate::fec::Strength::Off;
        }
        self.apply_payload_bounds();
    }

    fn connect(&mut self) {
        let Phase::Opening { peer: Some(peer), .. } = self.state.phase else { return };
        // Fragments kept from an earlier session may be larger than this peer takes.
        self.tx.withdraw_oversized(usize::from(self.negotiated_payload));
        self.state.phase = Phase::Connected { peer, candidate: None };
        self.push_event(Event::Connected { peer });
    }

    /// Ends the current session from this side (spec 5.3): what is in flight
    /// is reported as after a peer restart (`Unconfirmed`, `StreamAborted`),
    /// a new session id is taken and the handshake runs again. A driver that
    /// declared its peer gone calls it, so that both sides start afresh when
    /// the line comes back instead of resuming half-torn-down streams.
    pub fn restart_session(&mut self, now: Instant) {
        self.new_session(now);
    }

    /// Starts a fresh session: our own id changes too, so no frame of the old
    /// session can be mistaken for one of the new. Constructed, not reset field
    /// by field: what a session holds is what `Session::opening` and
    /// `AckState::default` make.
    fn new_session(&mut self, now: Instant) {
        self.tx.reset();
        self.rx.rebase();
        self.session = new_session_id(&mut self.rng, self.session);
        self.frames_sent = 0;
        self.state = Session::opening(now);
        self.peer_limit = 0;
        self.acks = AckState::default();
        self.stalled = false;
        self.window_probe_at = None;
        self.confirm_probe_at = None;
        self.confirm_probes = 0;
        self.ledger.clear();
    }

    /// The HELLO or HELLO_ACK due now, if any: its type and echo.
    pub(crate) fn hello_due(&mut self, now: Instant) -> Option<(FrameType, u32)> {
        let allowed = self.state.last_hello_ack.map_or(Instant::ZERO, |t| t + self.config.hello_interval);
        if self.state.hello_ack_owed.is_some() && now >= allowed {
            let echo = self.state.hello_ack_owed.take().unwrap_or(0);
            self.state.last_hello_ack = Some(now);
            return Some((FrameType::HelloAck, echo));
        }
        let interval = self.config.hello_interval;
        let Phase::Opening { hello_at, backoff, first, .. } = &mut self.state.phase else { return None };
        if *hello_at > now {
            return None;
        }
        if first.is_none() {
            *first = Some(now);
        } else {
            *backoff = (*backoff + 1).min(3);
        }
        *hello_at = now + interval * (1 << *backoff);
        self.state.last_hello = Some(now);
        Some((FrameType::Hello, 0))
    }

    /// When the next HELLO or HELLO_ACK may leave.
    pub(crate) fn hello_deadline(&self) -> Option<Instant> {
        let ack = self
            .state
            .hello_ack_owed
            .map(|_| self.state.last_hello_ack.map_or(Instant::ZERO, |t| t + self.config.hello_interval));
        match (ack, self.state.hello_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
