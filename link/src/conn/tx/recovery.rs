//! Taking acknowledgements (spec 6.3): cumulative and selective, loss
//! detection by transmission order, retransmission timers, delivery-rate
//! samples (6.8), and what becomes of packets when a session ends (5.4).

use super::{AckOutcome, InFlight, Outcome, SendBuffer, State, NONE};
use crate::event::Event;
use crate::time::Duration;
use crate::time::Instant;
use crate::wire::{flags, AckRepr};

impl SendBuffer<'_> {
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
            let at = self.una as usize % self.w();
            let i = core::mem::replace(&mut self.slots[at].by_seq, NONE);
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
                let i = self.slots[seq as usize % self.w()].by_seq;
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
        for i in 0..self.w() {
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
        for i in 0..self.w() {
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
        for slot in self.slots.iter_mut() {
            slot.by_seq = NONE;
        }
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
        for i in 0..self.w() {
            let s = &self.slots[i];
            if s.state != State::Queued || (s.len as usize) <= max {
                continue;
            }
            if s.stream {
                let ch = s.channel;
                self.stream_aborted[ch as usize / 32] |= 1 << (ch % 32);
                self.stream_used[ch as usize / 32] &= !(1 << (ch % 32));
                for j in 0..self.w() {
                    if self.slots[j].stream
                        && self.slots[j].channel == ch
                        && self.slots[j].state == State::Queued
                    {
                        self.release(j);
                    }
                }
            } else {
                let (h, packet) = (s.head as usize, s.packet);
                for j in 0..self.w() {
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
