//! Choosing the next DATA frame (spec 6.3, 8.1): a lost frame first, else
//! the most urgent queued fragment the windows allow, cut to the size of the
//! moment; and when it leaves the line.

use super::{Cut, InFlight, Pick, SendBuffer, State, SHARED_HOLD};
use crate::time::Instant;
use crate::wire::{flags, seq_lt};

impl SendBuffer<'_> {
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
        let len = usize::from(self.slots[pick.slot].len);
        self.tx_counter = self.tx_counter.wrapping_add(1);
        if let State::InFlight(f) = &mut self.slots[pick.slot].state {
            f.sent_at = now;
            f.tx_order = self.tx_counter;
            if !pick.retransmission {
                f.first_tx = self.tx_counter;
                f.first_sent = now;
            }
            if pick.retransmission {
                self.lost_bytes -= len;
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
        let size = if shared { cut.shared } else { cut.alone }.clamp(1, self.n);
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
        let at = seq as usize % self.w();
        self.slots[at].by_seq = i as u16;
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
        (self.in_flight() as usize) < self.w() && seq_lt(self.next_seq, peer_limit)
    }

    /// Whether the peer's advertised limit (not our own pool) stops new frames.
    pub fn blocked_by_peer(&self, peer_limit: u16) -> bool {
        !seq_lt(self.next_seq, peer_limit)
    }
}
