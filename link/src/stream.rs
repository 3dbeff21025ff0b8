//! Spec section 8.3: end-to-end delivery of byte streams — how many bytes of
//! each channel's stream the peer has *written to their destination* (its
//! stdout, a socket, a file), as opposed to merely received.
//!
//! A link acknowledgement frees a retransmission buffer once the peer's core
//! holds a fragment; the application behind it may still fail to write it
//! (a full disk, a closed pipe, a kill). So the receiving application tells
//! its core how much it wrote ([`Link::stream_written`](crate::Link::stream_written)),
//! the core reports that cumulative count per channel in its ACK frames, and
//! the sending application counts as delivered only what came back that way.
//!
//! Counts are per channel and per session, include one unit per end of stream
//! (FIN), and travel modulo 2^32: the sender never has more than its window of
//! bytes unconfirmed, far below 2^31, so the difference to its own count tells
//! the exact value.

use crate::wire::{Written, MAX_WRITTEN};

/// A 256-bit channel set.
#[derive(Debug, Clone, Copy, Default)]
struct ChannelSet([u32; 8]);

impl ChannelSet {
    fn insert(&mut self, ch: u8) {
        self.0[usize::from(ch / 32)] |= 1 << (ch % 32);
    }
    fn remove(&mut self, ch: u8) {
        self.0[usize::from(ch / 32)] &= !(1 << (ch % 32));
    }
    fn contains(&self, ch: u8) -> bool {
        self.0[usize::from(ch / 32)] & (1 << (ch % 32)) != 0
    }
}

/// Both sides of the written-up-to accounting of one session.
#[derive(Debug, Clone)]
pub(crate) struct Ledger {
    /// Sender: stream bytes (and FINs) accepted from our application, per channel.
    sent: [u32; 256],
    /// Sender: of those, confirmed written by the peer.
    confirmed: [u32; 256],
    /// Sender: sum over channels of `sent - confirmed`.
    unconfirmed: u64,
    /// Receiver: what our application reported written, per channel.
    written: [u32; 256],
    /// Receiver: channels whose count changed since it was last reported.
    dirty: ChannelSet,
    /// Receiver: channels with a count to report (non-zero this session).
    known: ChannelSet,
    /// Receiver: where a full report (the answer to a POLL) resumes.
    cursor: u8,
}

impl Ledger {
    pub fn new() -> Self {
        Ledger {
            sent: [0; 256],
            confirmed: [0; 256],
            unconfirmed: 0,
            written: [0; 256],
            dirty: ChannelSet::default(),
            known: ChannelSet::default(),
            cursor: 0,
        }
    }

    /// Sender: `n` stream bytes (or 1 for a FIN) were queued on `channel`.
    pub fn on_queued(&mut self, channel: u8, n: usize) {
        let c = usize::from(channel);
        self.sent[c] = self.sent[c].wrapping_add(n as u32);
        self.unconfirmed += n as u64;
    }

    /// Sender: the peer reports `w.written` for `w.channel`. Returns how many
    /// units it newly confirms; a count behind the last one (an old ACK) or
    /// beyond what was sent (a corrupt or hostile one) changes nothing.
    pub fn on_record(&mut self, w: Written) -> u32 {
        let c = usize::from(w.channel);
        let ahead = w.written.wrapping_sub(self.confirmed[c]);
        let outstanding = self.sent[c].wrapping_sub(self.confirmed[c]);
        if ahead == 0 || ahead > outstanding {
            return 0;
        }
        self.confirmed[c] = w.written;
        self.unconfirmed -= u64::from(ahead);
        ahead
    }

    /// Sender: units of `channel` not yet confirmed written.
    pub fn unconfirmed_on(&self, channel: u8) -> u32 {
        let c = usize::from(channel);
        self.sent[c].wrapping_sub(self.confirmed[c])
    }

    /// Sender: units of all channels not yet confirmed written.
    pub fn unconfirmed(&self) -> u64 {
        self.unconfirmed
    }

    /// Receiver: our application wrote `n` more units of `channel`.
    pub fn add_written(&mut self, channel: u8, n: u32) {
        if n == 0 {
            return;
        }
        let c = usize::from(channel);
        self.written[c] = self.written[c].wrapping_add(n);
        self.dirty.insert(channel);
        self.known.insert(channel);
    }

    /// Receiver: whether a count changed since it was last reported.
    pub fn has_news(&self) -> bool {
        self.dirty.0.iter().any(|&w| w != 0)
    }

    /// Receiver: the records for the next ACK, at most `max`: changed counts
    /// first; with `all` (the answer to a POLL, which a sender waiting for a
    /// confirmation sends) the others too, in turn, so a lost ACK is made good.
    pub fn records(&mut self, max: usize, all: bool, out: &mut [Written; MAX_WRITTEN]) -> usize {
        let max = max.min(MAX_WRITTEN);
        let mut n = 0;
        for ch in 0..=255u8 {
            if n == max {
                return n;
            }
            if self.dirty.contains(ch) {
                self.dirty.remove(ch);
                out[n] = Written { channel: ch, written: self.written[usize::from(ch)] };
                n += 1;
            }
        }
        if all {
            let start = self.cursor;
            for k in 0..=255u8 {
                if n == max {
                    break;
                }
                let ch = start.wrapping_add(k);
                if self.known.contains(ch) && !out[..n].iter().any(|w| w.channel == ch) {
                    out[n] = Written { channel: ch, written: self.written[usize::from(ch)] };
                    n += 1;
                    self.cursor = ch.wrapping_add(1);
                }
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_counts_what_comes_back_and_ignores_stale_or_impossible_counts() {
        let mut l = Ledger::new();
        l.on_queued(1, 1000);
        l.on_queued(1, 1); // FIN
        l.on_queued(2, 5);
        assert_eq!((l.unconfirmed_on(1), l.unconfirmed()), (1001, 1006));
        assert_eq!(l.on_record(Written { channel: 1, written: 400 }), 400);
        assert_eq!(l.on_record(Written { channel: 1, written: 300 }), 0, "an older ACK");
        assert_eq!(l.on_record(Written { channel: 1, written: 2000 }), 0, "more than was sent");
        assert_eq!(l.on_record(Written { channel: 1, written: 1001 }), 601);
        assert_eq!((l.unconfirmed_on(1), l.unconfirmed()), (0, 5));
    }

    #[test]
    fn counts_wrap_modulo_two_to_the_32() {
        let mut l = Ledger::new();
        l.on_queued(3, u32::MAX as usize);
        assert_eq!(l.on_record(Written { channel: 3, written: u32::MAX }), u32::MAX);
        l.on_queued(3, 10);
        assert_eq!(l.unconfirmed_on(3), 10);
        assert_eq!(l.on_record(Written { channel: 3, written: 9 }), 10, "past the wrap");
        assert_eq!(l.unconfirmed(), 0);
    }

    #[test]
    fn receiver_reports_changes_then_everything_in_turn_when_polled() {
        let mut l = Ledger::new();
        let mut out = [Written::default(); MAX_WRITTEN];
        for ch in [5u8, 9, 200] {
            l.add_written(ch, 10);
        }
        assert_eq!(l.records(2, false, &mut out), 2);
        assert_eq!((out[0].channel, out[1].channel), (5, 9));
        assert!(l.has_news());
        assert_eq!(l.records(16, false, &mut out), 1);
        assert_eq!(out[0], Written { channel: 200, written: 10 });
        assert!(!l.has_news());
        assert_eq!(l.records(16, false, &mut out), 0, "nothing new");
        // A POLL: every known count, the cursor moving on when they do not fit.
        assert_eq!(l.records(2, true, &mut out), 2);
        assert_eq!((out[0].channel, out[1].channel), (5, 9));
        assert_eq!(l.records(2, true, &mut out), 2);
        assert_eq!((out[0].channel, out[1].channel), (200, 5));
    }
}
