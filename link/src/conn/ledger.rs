//! Spec section 8.3: end-to-end delivery of byte streams — how many bytes of
//! each channel's stream the peer has *written to their destination* (its
//! stdout, a socket, a file), as opposed to merely received.
//!
//! A link acknowledgement frees a retransmission buffer once the peer's core
//! holds a fragment; the application behind it may still fail to write it
//! (a full disk, a closed pipe, a kill). So the receiving application tells
//! its core how much it wrote (`Connection::stream_written`), the core reports
//! that cumulative count per channel in its ACK frames, and the sending
//! application counts as delivered only what came back that way.
//!
//! Counts are per channel and per session, include one unit per end of stream
//! (FIN), and travel modulo 2^32: the sender never has more than its window of
//! bytes unconfirmed, far below 2^31, so the difference to its own count tells
//! the exact value. The table is the caller's memory, one entry per channel
//! that carries a stream this session (the host gives it 256, a small node a
//! few); a stream on a channel beyond that is refused at its first write.

use crate::storage::Buf;
use crate::wire::{Written, MAX_WRITTEN};

/// The counts of one channel. Public so a caller can provide the memory.
#[derive(Debug, Clone, Copy)]
pub struct StreamEntry {
    channel: u8,
    used: bool,
    /// Sender: units accepted from our application.
    sent: u32,
    /// Sender: of those, confirmed written by the peer.
    confirmed: u32,
    /// Receiver: what our application reported written.
    written: u32,
    /// Receiver: changed since last reported.
    dirty: bool,
    /// Receiver: has a count to report.
    known: bool,
}

impl StreamEntry {
    /// An unused entry, to fill the caller's array with.
    pub const EMPTY: Self = StreamEntry {
        channel: 0,
        used: false,
        sent: 0,
        confirmed: 0,
        written: 0,
        dirty: false,
        known: false,
    };
}

/// Both sides of the written-up-to accounting of one session.
#[derive(Debug)]
pub(crate) struct Ledger<'a> {
    entries: Buf<'a, StreamEntry>,
    /// Sender: sum over channels of `sent - confirmed`.
    unconfirmed: u64,
    /// Receiver: where a full report (the answer to a POLL) resumes.
    cursor: usize,
}

impl<'a> Ledger<'a> {
    pub fn new(mut entries: Buf<'a, StreamEntry>) -> Self {
        entries.fill(StreamEntry::EMPTY);
        Ledger { entries, unconfirmed: 0, cursor: 0 }
    }

    /// A new session: every count starts again at zero.
    pub fn clear(&mut self) {
        self.entries.fill(StreamEntry::EMPTY);
        self.unconfirmed = 0;
        self.cursor = 0;
    }

    fn find(&self, channel: u8) -> Option<usize> {
        self.entries.iter().position(|e| e.used && e.channel == channel)
    }

    /// The entry of `channel`, taken if the table has room.
    fn entry(&mut self, channel: u8) -> Option<&mut StreamEntry> {
        let i = match self.find(channel) {
            Some(i) => i,
            None => {
                let i = self.entries.iter().position(|e| !e.used)?;
                self.entries[i] = StreamEntry { channel, used: true, ..StreamEntry::EMPTY };
                i
            }
        };
        Some(&mut self.entries[i])
    }

    /// Whether `channel` has (or can get) an entry.
    pub fn has_room(&self, channel: u8) -> bool {
        self.find(channel).is_some() || self.entries.iter().any(|e| !e.used)
    }

    /// Sender: `n` stream bytes (or 1 for a FIN) were queued on `channel`.
    /// False if the table is full (the caller checked [`has_room`](Self::has_room)).
    pub fn on_queued(&mut self, channel: u8, n: usize) -> bool {
        let Some(e) = self.entry(channel) else { return false };
        e.sent = e.sent.wrapping_add(n as u32);
        self.unconfirmed += n as u64;
        true
    }

    /// Sender: the peer reports `w.written` for `w.channel`. Returns how many
    /// units it newly confirms; a count behind the last one (an old ACK) or
    /// beyond what was sent (a corrupt or hostile one) changes nothing.
    pub fn on_record(&mut self, w: Written) -> u32 {
        let Some(i) = self.find(w.channel) else { return 0 };
        let e = &mut self.entries[i];
        let ahead = w.written.wrapping_sub(e.confirmed);
        let outstanding = e.sent.wrapping_sub(e.confirmed);
        if ahead == 0 || ahead > outstanding {
            return 0;
        }
        e.confirmed = w.written;
        self.unconfirmed -= u64::from(ahead);
        ahead
    }

    /// Sender: units of `channel` not yet confirmed written.
    pub fn unconfirmed_on(&self, channel: u8) -> u32 {
        self.find(channel).map_or(0, |i| self.entries[i].sent.wrapping_sub(self.entries[i].confirmed))
    }

    /// Sender: units of all channels not yet confirmed written.
    pub fn unconfirmed(&self) -> u64 {
        self.unconfirmed
    }

    /// Receiver: our application wrote `n` more units of `channel`. False if
    /// the table is full and the count cannot be kept.
    pub fn add_written(&mut self, channel: u8, n: u32) -> bool {
        if n == 0 {
            return true;
        }
        let Some(e) = self.entry(channel) else { return false };
        e.written = e.written.wrapping_add(n);
        e.dirty = true;
        e.known = true;
        true
    }

    /// Receiver: whether a count changed since it was last reported.
    pub fn has_news(&self) -> bool {
        self.entries.iter().any(|e| e.used && e.dirty)
    }

    /// Receiver: the records for the next ACK, at most `max`: changed counts
    /// first; with `all` (the answer to a POLL, which a sender waiting for a
    /// confirmation sends) the others too, in turn, so a lost ACK is made good.
    pub fn records(&mut self, max: usize, all: bool, out: &mut [Written; MAX_WRITTEN]) -> usize {
        let max = max.min(MAX_WRITTEN);
        let mut n = 0;
        for e in self.entries.iter_mut() {
            if n == max {
                return n;
            }
            if e.used && e.dirty {
                e.dirty = false;
                out[n] = Written { channel: e.channel, written: e.written };
                n += 1;
            }
        }
        if all {
            let (len, start) = (self.entries.len(), self.cursor);
            for k in 0..len {
                if n == max {
                    break;
                }
                let i = (start + k) % len;
                let e = self.entries[i];
                if e.used && e.known && !out[..n].iter().any(|w| w.channel == e.channel) {
                    out[n] = Written { channel: e.channel, written: e.written };
                    n += 1;
                    self.cursor = (i + 1) % len;
                }
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    fn ledger(n: usize) -> Ledger<'static> {
        Ledger::new(Buf::Borrowed(std::vec![StreamEntry::EMPTY; n].leak()))
    }

    #[test]
    fn sender_counts_what_comes_back_and_ignores_stale_or_impossible_counts() {
        let mut l = ledger(4);
        l.on_queued(1, 1000);
        l.on_queued(1, 1); // FIN
        l.on_queued(2, 5);
        assert_eq!((l.unconfirmed_on(1), l.unconfirmed()), (1001, 1006));
        assert_eq!(l.on_record(Written { channel: 1, written: 400 }), 400);
        assert_eq!(l.on_record(Written { channel: 1, written: 300 }), 0, "an older ACK");
        assert_eq!(l.on_record(Written { channel: 1, written: 2000 }), 0, "more than was sent");
        assert_eq!(l.on_record(Written { channel: 1, written: 1001 }), 601);
        assert_eq!(l.on_record(Written { channel: 9, written: 1 }), 0, "a channel never written");
        assert_eq!((l.unconfirmed_on(1), l.unconfirmed()), (0, 5));
    }

    #[test]
    fn counts_wrap_modulo_two_to_the_32() {
        let mut l = ledger(2);
        l.on_queued(3, u32::MAX as usize);
        assert_eq!(l.on_record(Written { channel: 3, written: u32::MAX }), u32::MAX);
        l.on_queued(3, 10);
        assert_eq!(l.unconfirmed_on(3), 10);
        assert_eq!(l.on_record(Written { channel: 3, written: 9 }), 10, "past the wrap");
        assert_eq!(l.unconfirmed(), 0);
    }

    #[test]
    fn receiver_reports_changes_then_everything_in_turn_when_polled() {
        let mut l = ledger(8);
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

    #[test]
    fn a_full_table_refuses_a_new_channel_and_keeps_the_others() {
        let mut l = ledger(2);
        assert!(l.on_queued(1, 10) && l.add_written(2, 3));
        assert!(!l.has_room(3));
        assert!(!l.on_queued(3, 1) && !l.add_written(3, 1));
        assert!(l.has_room(1) && l.on_queued(1, 5));
        assert_eq!(l.unconfirmed(), 15);
    }
}
