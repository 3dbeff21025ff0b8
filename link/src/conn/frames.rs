//! Frames in and out of a connection (spec 4, 6, 7): DATA and ACK frames of
//! the peer's session, the frames we owe (HELLO, HELLO_ACK, ACK) and the DATA
//! frames we may send, the ACK scheduler (6.5) and the timers.

use super::tx::Cut;
use super::Connection;
use crate::conn::rx::Accept;
use crate::event::Event;
use crate::fec::policy;
use crate::time::{earliest, Instant};
use crate::wire::{
    flags, hello_flags, seq_lt, AckPayload, AckRepr, FrameType, Header, HelloRepr, HELLO_MAX_LEN,
    MAX_SACK_BYTES, MAX_WRITTEN, PROTOCOL, WRITTEN_LEN,
};

/// What the ACK scheduler owes the peer (spec 6.5, 9.1).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AckState {
    /// An ACK is due at once.
    pub now: bool,
    /// An ACK is due by then (delayed ack).
    pub deadline: Option<Instant>,
    /// In-order DATA frames since the last ACK.
    pub unacked: u8,
    /// The next ACK carries POLL (keepalive, window probe, timeout, probation).
    pub probe_owed: bool,
    /// When the next keepalive POLL is due while the peer is silent.
    pub next_probe: Option<Instant>,
    /// The next ACK answers a POLL: it carries every written count (8.3).
    pub answer_poll: bool,
}

impl AckState {
    /// Whether an acknowledgement is owed, now or by a deadline.
    pub fn owed(&self) -> bool {
        self.now || self.deadline.is_some() || self.probe_owed
    }

    /// An ACK is due by `t` at the latest.
    pub fn due_by(&mut self, t: Instant) {
        self.deadline = Some(self.deadline.map_or(t, |d| d.min(t)));
    }
}

/// A DATA frame just built: where it came from, for its departure time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BuiltData {
    /// Its raw length.
    pub len: usize,
    /// The send-pool slot it was built from.
    pub slot: usize,
}

impl Connection<'_> {
    /// A CRC-checked DATA or ACK frame of session `h.session` (the endpoint
    /// routed it here because that is our peer's, or because we have no peer
    /// yet and it is the only connection).
    pub(crate) fn on_session_frame(&mut self, now: Instant, h: &Header, payload: &[u8]) {
        if self.state.peer() != Some(h.session) {
            if self.is_connected() {
                self.stats.foreign_session += 1;
            } else {
                self.on_foreign(now);
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
        self.confirm_by_data();
        self.heard(now);
        self.clear_candidate();
        if let Some(a) = &sack {
            self.on_ack_payload(a);
        }
        if h.flags & flags::ACK != 0 {
            self.on_cumulative_ack(now, h.ack, sack.as_ref());
        }
        if h.flags & flags::POLL != 0 {
            self.acks.now = true;
            self.acks.answer_poll = true;
        }
        if h.frame_type == FrameType::Data {
            self.on_data(now, h, payload);
        }
        self.update_stall();
        self.update_confirm_probe(now);
    }

    /// The receive limit, written counts and error report of an ACK.
    fn on_ack_payload(&mut self, a: &AckRepr) {
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
        if a.hint != self.last_hint && self.sends_fec() {
            self.last_hint = a.hint;
            if let Some(noise) = policy::noise_of_hint(a.hint) {
                self.choose_strength(noise);
            }
        }
    }

    fn on_cumulative_ack(&mut self, now: Instant, ack: u16, sack: Option<&AckRepr>) {
        let full = self.sizer.current();
        let out = self.tx.on_ack(now, ack, sack, self.config.reorder_threshold, full);
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

    fn on_data(&mut self, now: Instant, h: &Header, payload: &[u8]) {
        match self.rx.on_data(h.seq, h.channel, h.flags, payload) {
            Accept::New { in_order: true } if !self.rx.has_gap() => {
                self.acks.unacked = self.acks.unacked.saturating_add(1);
                if self.acks.unacked >= self.config.ack_every {
                    self.acks.now = true;
                } else if self.acks.deadline.is_none() {
                    self.acks.deadline = Some(now + self.config.ack_delay);
                }
            }
            Accept::New { .. } => self.acks.now = true,
            Accept::Duplicate => {
                self.stats.duplicates += 1;
                self.acks.now = true;
            }
            Accept::OutOfWindow => {
                self.stats.out_of_window += 1;
                self.acks.now = true;
            }
        }
    }

    /// Arms the POLL for missing written confirmations (spec 8.3) while
    /// everything sent is acknowledged and only they are missing: the ACK that
    /// carried them may have been lost, and nothing else would bring them.
    fn update_confirm_probe(&mut self, now: Instant) {
        let waiting = self.is_connected()
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

    pub(crate) fn update_stall(&mut self) {
        let stalled = self.is_connected() && self.tx.has_queued() && self.tx.blocked_by_peer(self.peer_limit);
        if stalled != self.stalled {
            self.stalled = stalled;
            self.window_probe_at = stalled.then(|| self.last_rx + self.rtt.rto());
            self.push_event(if stalled { Event::WindowStalled } else { Event::WindowOpened });
        }
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.acks.deadline.is_some_and(|d| d <= now) {
            self.acks.deadline = None;
            self.acks.now = true;
        }
        let rto = self.rtt.rto();
        if self.tx.rto_deadline(rto).is_some_and(|d| d <= now) {
            let n = self.tx.on_timeout(now, rto);
            if n > 0 {
                self.stats.timeouts += 1;
                // A small POLL gets through where a long frame did not; its
                // answer tells lost frames (noise) from a silent peer (outage).
                self.acks.probe_owed = true;
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
        if self.is_connected() && silent >= self.config.keepalive {
            match self.acks.next_probe {
                Some(t) if t > now => {}
                _ => {
                    self.acks.probe_owed = true;
                    self.acks.next_probe = Some(now + self.config.keepalive);
                }
            }
        }
        if self.window_probe_at.is_some_and(|t| t <= now) {
            // The ACK that reopens the peer's window may have been lost: ask again.
            self.acks.probe_owed = true;
            self.window_probe_at = Some(now + rto);
        }
        if self.confirm_probe_at.is_some_and(|t| t <= now) {
            // Back off to the keepalive: the peer may just be slow to write.
            self.acks.probe_owed = true;
            self.stats.confirm_polls += 1;
            self.confirm_probes = (self.confirm_probes + 1).min(16);
            let wait = (rto * (1 << self.confirm_probes.min(8))).min(self.config.keepalive.max(rto));
            self.confirm_probe_at = Some(now + wait);
        }
        self.candidate_timers(now);
        if !self.down && silent >= self.config.link_timeout {
            self.down = true;
            self.push_event(Event::LinkDown);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.hello_deadline();
        t = earliest(t, self.acks.deadline);
        t = earliest(t, self.window_probe_at);
        t = earliest(t, self.tx.rto_deadline(self.rtt.rto()));
        t = earliest(t, self.confirm_probe_at);
        t = earliest(t, self.candidate_deadline());
        if self.is_connected() {
            let keepalive = match self.acks.next_probe {
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

    /// Builds the HELLO, HELLO_ACK or ACK frame owed now into `out` (at least
    /// [`Connection::max_raw`] bytes); returns its length. `hint` is the
    /// endpoint's error report for the ACK (6.7); `own_addr` goes into HELLOs.
    pub(crate) fn poll_control(
        &mut self,
        now: Instant,
        hint: u8,
        own_addr: u16,
        out: &mut [u8],
    ) -> Option<usize> {
        if let Some((frame_type, echo)) = self.hello_due(now) {
            let mut hello = [0u8; HELLO_MAX_LEN];
            let n = self.hello_repr(echo, own_addr).emit(&mut hello);
            return Some(self.header(frame_type, 0).emit_frame(&hello[..n], out));
        }
        if !self.is_connected() || !(self.acks.now || self.acks.probe_owed) {
            return None;
        }
        Some(self.build_ack(hint, out))
    }

    /// Builds the next DATA frame into `out`, if the windows allow one.
    pub(crate) fn poll_data(&mut self, now: Instant, out: &mut [u8]) -> Option<BuiltData> {
        if !self.is_connected() {
            return None;
        }
        let alone = usize::from(self.sizer.current());
        let cut = Cut { alone, shared: self.shared_size(alone) };
        let pick = self.tx.pick(now, self.peer_limit, self.in_flight_cap(), cut);
        self.update_stall();
        let pick = pick?;
        let mut h = self.header(FrameType::Data, flags::ACK);
        let (channel, fl, data) = self.tx.frame_of(pick.slot);
        h.flags |= fl;
        h.channel = channel;
        h.seq = pick.seq;
        h.ack = self.rx.cum_ack();
        let len = h.emit_frame(data, out);
        let sent = data.len();
        if pick.retransmission {
            self.stats.retransmits += 1;
            self.stats.retransmitted_bytes += sent as u64;
        } else {
            self.stats.data_tx += 1;
        }
        self.sizer.on_sent(sent);
        // The piggybacked ack covers an in-order receiver; gaps still need
        // SACK, and new written counts an ACK frame of their own.
        if !self.rx.has_gap() && !self.ledger.has_news() {
            self.acks.unacked = 0;
            self.acks.deadline = None;
        }
        Some(BuiltData { len, slot: pick.slot })
    }

    /// Whether the line counts as shared between channels now (6.6).
    pub(crate) fn is_shared(&self, now: Instant) -> bool {
        self.tx.is_shared(now)
    }

    /// The DATA frame from `slot` leaves the line at `at` (6.3).
    pub(crate) fn departed(&mut self, slot: usize, at: Instant) {
        self.tx.departed(slot, at);
    }

    fn build_ack(&mut self, hint: u8, out: &mut [u8]) -> usize {
        let mut fl = flags::ACK;
        if core::mem::take(&mut self.acks.probe_owed) {
            fl |= flags::POLL;
        }
        self.acks.now = false;
        self.acks.deadline = None;
        self.acks.unacked = 0;
        let mut h = self.header(FrameType::Ack, fl);
        h.ack = self.rx.cum_ack();
        let mut ack = self.rx.sack();
        ack.hint = hint;
        // Written counts fill what the peer's frame limit leaves; the answer
        // to a POLL carries every one (in turn, if they do not all fit).
        let all = core::mem::take(&mut self.acks.answer_poll);
        let room = usize::from(self.negotiated_payload).saturating_sub(5 + usize::from(ack.sack_len));
        ack.written_len = self.ledger.records(room / WRITTEN_LEN, all, &mut ack.written) as u8;
        let mut payload = [0u8; 5 + MAX_SACK_BYTES + MAX_WRITTEN * WRITTEN_LEN];
        let n = ack.emit(&mut payload);
        self.stats.acks_tx += 1;
        h.emit_frame(&payload[..n], out)
    }

    /// A header of this session; DATA and ACK frames take the next counter
    /// value (first copies and repeats alike, so no two frames share one),
    /// masked with the session id (spec 3.1): a small count would put zero
    /// bytes in every header, and on a byte stream each zero becomes a COBS
    /// code byte that in-frame parity cannot repair when it is hit.
    fn header(&mut self, frame_type: FrameType, fl: u8) -> Header {
        let mut counter = 0;
        if matches!(frame_type, FrameType::Data | FrameType::Ack) {
            counter = self.frames_sent ^ self.session;
            self.frames_sent = self.frames_sent.wrapping_add(1);
        }
        Header { frame_type, flags: fl, channel: 0, session: self.session, seq: 0, ack: 0, counter }
    }

    fn hello_repr(&self, echo: u32, own_addr: u16) -> HelloRepr {
        HelloRepr {
            min_version: PROTOCOL,
            max_version: PROTOCOL,
            max_frame: self.max_raw,
            // Counted from sequence 0 of this session: after a restart, slots
            // still holding the old session's undelivered data are not offered.
            window: self.rx.limit().min(0x7fff),
            echo,
            src: own_addr,
            dst: self.peer_addr,
            flags: if cfg!(feature = "fec") && self.config.fec { 0 } else { hello_flags::NO_FEC },
        }
    }
}
